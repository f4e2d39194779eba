# bench/instance.sh: sourced by bench scripts that rebuild bench/run.sh's
# --size small instance outside run.sh (bench-first-take.sh,
# bench-restore.sh), from run.sh's download cache.
#
# small_instance SRC CACHE LIB NCKPT CKPT_MIB: SRC (removed first) gets the
# bookworm rootfs, a 256 MiB library subset as /opt/cuda, node_modules,
# NCKPT incompressible checkpoints of CKPT_MIB each (the first hardlinked
# and with an xattr), the generated logs and CSV, a 1 GiB sparse disk image
# with 32 data extents, and a config file with two more links.

# need_cache SCRIPT CACHE FILE...: exit with a message naming the first of
# run.sh's cached FILEs missing under CACHE.
need_cache() {
	local script=$1 cache=$2 f
	shift 2
	for f in "$@"; do
		[ -e "$cache/$f" ] || { echo "$script: $cache/$f missing: run bench/run.sh once" >&2; exit 1; }
	done
}

bench_prng() { { openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:$1" < /dev/zero 2>/dev/null || true; } | head -c "$2"; }

small_instance() {
	local src=$1 cache=$2 lib=$3 nckpt=$4 ckpt_mib=$5 mib=1048576 i k
	rm -rf "$src"
	mkdir -p "$src/opt" "$src/srv/app" "$src/srv/data" "$src/root/checkpoints" "$src/var/log/app" "$src/var/lib/vm"
	tar -C "$src" --xattrs --xattrs-include='*' --acls --numeric-owner -xpf "$cache/rootfs-bookworm.tar"
	python3 "$lib" subset /usr/lib/x86_64-linux-gnu "$src/opt/cuda" $((256 * mib)) > /dev/null
	tar -C "$src/srv/app" -xf "$cache/node_modules.tar"
	for i in $(seq 1 "$nckpt"); do bench_prng "ckpt$i" $((ckpt_mib * mib)) > "$src/root/checkpoints/ckpt-000$i.pt"; done
	cp "$cache/gen-small/app.log" "$cache/gen-small/worker.log" "$src/var/log/app/"
	cp "$cache/gen-small/measurements.csv" "$src/srv/data/"
	truncate -s $((1024 * mib)) "$src/var/lib/vm/disk.img"
	for k in $(seq 0 31); do
		bench_prng "sparse$k" 262144 | dd of="$src/var/lib/vm/disk.img" bs=256K seek=$((k * 128 + 1)) conv=notrunc status=none
	done
	ln "$src/root/checkpoints/ckpt-0001.pt" "$src/srv/app/model-latest.pt"
	echo 'workers = 4' > "$src/srv/app/app.conf"
	mkdir -p "$src/srv/app/conf.d" "$src/etc/app"
	ln "$src/srv/app/app.conf" "$src/srv/app/conf.d/app.conf"
	ln "$src/srv/app/app.conf" "$src/etc/app/app.conf"
	setfattr -n user.sha256 -v "$(printf %064d 0)" "$src/root/checkpoints/ckpt-0001.pt"
	sync
}
