#!/bin/bash
# bench/run.sh: cairn beside restic, borg, casync and tar | zstd on a realistic
# instance, all with the same data in the same run. Run as root on Debian 12;
# it installs what is missing from Debian's packages and builds cairn
# (meson, buildtype=release) from this tree.
#
# usage: bench/run.sh [options]
#   --size small|full   ~1 GB quick run (default) or the multi-GB instance
#   --out DIR           where results.csv, results.md and chart.png go
#                       (default: bench/results)
#   --tools LIST        comma-separated, from cairn,restic,borg,casync,tar
#                       (default: all)
#   --cache warm|cold   warm (default): every tool's input is read into the
#                       page cache before each timed step; cold: caches are
#                       dropped before each timed step. Same for every tool.
#   --keep              keep the instance, copies and repositories
#   --cairn PATH        use this binary instead of building one
#   --build DIR         cairn's build directory (default /tmp/bench/build)
#   --top DIR           datasets and caches (default /var/tmp/cairn-bench)
#
# The instance: a Debian bookworm rootfs (debootstrap, with python3 and
# build-essential), a large-library tree under /opt/cuda (a copy of
# /usr/local/cuda-* when there is one, else of /usr/lib/x86_64-linux-gnu; a
# subset for --size small), /srv/app/node_modules (npm install of a dozen
# packages), incompressible checkpoints, text logs, a CSV data set, a sparse
# disk image, hardlinks, xattrs (user, trusted, security.capability, ACLs)
# and a /datadrive that every tool must skip. Downloads are cached under
# TOP/cache (kept), the instance and repositories under TOP/run-SIZE.
#
# Steps, every tool in turn on the same tree:
#   1 first take; 2 take after user changes (packages, checkpoints, logs);
#   3 incremental take after ~1% more change (appends, an insert near the
#     start of a large file, an in-place rewrite, new files, deletions);
#   4 restore of the last snapshot, checked entry by entry (tests/treecmp.py);
#   4f the same restore with the page cache full of other files (a filler as
#     large as the memory, TOP/cache/filler, read first: a GPU host's cache
#     is full), 4d the same right after drop_caches (both whatever --cache);
#   5 take of a copy (cairn's exact restore: new inodes, same content; a
#     new instance from a snapshot: cairn's take uses its restore record).
# tar | zstd has no incremental mode: every take is a full archive and its
# "repository" is the sum of them. cairn takes run with --cgroup on a live
# workload (pause_ms); "3u" is an overlay upper-mode take (--upper --base)
# of the same 1% change. Floors, same run: durable write (fdatasync) of
# cairn's first-take stored bytes, buffered and with O_DIRECT (the device
# alone), a read of every file, a stat walk; for the restore, an O_DIRECT
# write of the instance's data bytes (the device floor of a restore).
set -euo pipefail
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
LIB=$SRCDIR/bench/benchlib.py
TREECMP=$SRCDIR/tests/treecmp.py
PY=/usr/bin/python3
size=small
out=$SRCDIR/bench/results
tools=cairn,restic,borg,casync,tar
cache=warm
keep=0
CAIRN=
build=/tmp/bench/build
top=/var/tmp/cairn-bench

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--size) size=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--tools) tools=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	--cairn) CAIRN=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--top) top=$2; shift 2 ;;
	-h|--help) usage ;;
	*) echo "bench: unknown option $1" >&2; usage ;;
	esac
done
case "$size" in small|full) ;; *) echo "bench: --size small|full" >&2; exit 2 ;; esac
case "$cache" in warm|cold) ;; *) echo "bench: --cache warm|cold" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "bench: run as root (owners, xattrs, cgroups, drop_caches)" >&2; exit 1; }
has() { case ",$tools," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
MIB=1048576
if [ "$size" = small ]; then
	lib_budget=$((256 * MIB)) ckpt_n=2 ckpt_mib=64 log_mib=16 csv_mib=40 sparse_mib=1024 dd_mib=64 scale=0.5 need_gib=15
else
	lib_budget=0 ckpt_n=4 ckpt_mib=256 log_mib=64 csv_mib=200 sparse_mib=4096 dd_mib=512 scale=2 need_gib=40
fi

# ---- packages (Debian's)
pkgs=()
for p in restic:restic borg:borgbackup casync:casync zstd:zstd debootstrap:debootstrap \
	gnuplot:gnuplot-nox /usr/bin/time:time setfattr:attr setfacl:acl setcap:libcap2-bin \
	openssl:openssl meson:meson ninja:ninja-build chattr:e2fsprogs; do
	command -v "${p%%:*}" >/dev/null || pkgs+=("${p#*:}")
done
[ -f "$top/cache/node_modules.tar" ] || command -v npm >/dev/null || pkgs+=(npm)
if [ ${#pkgs[@]} -gt 0 ]; then
	echo "== installing ${pkgs[*]}"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# ---- cairn, release build from this tree
if [ -z "$CAIRN" ]; then
	echo "== building cairn (release) in $build"
	[ -f "$build/build.ninja" ] || (cd "$SRCDIR" && meson setup "$build" -Dbuildtype=release >/dev/null)
	nice -n 10 meson compile -C "$build" >/dev/null
	CAIRN=$build/tools/cairn
fi
[ -x "$CAIRN" ] || { echo "bench: no cairn binary at $CAIRN" >&2; exit 1; }

mkdir -p "$top/cache"
avail=$(df --output=avail -B1G "$top" | tail -1 | tr -d ' ')
# the filler of steps 4f/4d: as large as the memory, kept with the cache
mem_gib=$(( ($(awk '/^MemTotal/ {print $2}' /proc/meminfo) + 1048575) / 1048576 ))
[ -f "$top/cache/filler" ] || need_gib=$((need_gib + mem_gib))
[ "$avail" -ge "$need_gib" ] || { echo "bench: $top has ${avail} GiB free, --size $size needs ~${need_gib} GiB" >&2; exit 1; }
run=$top/run-$size
C=$top/cache
SRC=$run/src
R=$run/repos
cg=
wl=
cleanup() {
	local rc=$?
	mountpoint -q "$run/ovl/merged" 2>/dev/null && umount "$run/ovl/merged"
	if [ -n "$wl" ]; then kill "$wl" 2>/dev/null || true; wait "$wl" 2>/dev/null || true; fi
	if [ -n "$cg" ] && [ -d "$cg" ]; then sleep 0.1; rmdir "$cg" 2>/dev/null || true; fi
	freshfs_stop
	if [ "$keep" = 1 ]; then echo "kept $run"; else rm -rf "$run"; fi
	return $rc
}
. "$SRCDIR/bench/freshfs.sh"
trap cleanup EXIT
trap 'echo "bench: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
rm -rf "$run"
mkdir -p "$run/logs" "$R"

# ---- cached inputs
if [ ! -f "$C/rootfs-bookworm.tar" ]; then
	echo "== debootstrap bookworm (cached as $C/rootfs-bookworm.tar)"
	rm -rf "$C/rootfs.tmp"
	debootstrap --variant=minbase \
		--include=python3,python3-pip,python3-venv,git,curl,ca-certificates,openssh-client,procps,less,vim-tiny,build-essential \
		bookworm "$C/rootfs.tmp" http://deb.debian.org/debian > "$C/debootstrap.log" 2>&1
	tar -C "$C/rootfs.tmp" --xattrs --xattrs-include='*' --acls --numeric-owner -cf "$C/rootfs-bookworm.tar.tmp" .
	mv "$C/rootfs-bookworm.tar.tmp" "$C/rootfs-bookworm.tar"
	rm -rf "$C/rootfs.tmp"
fi
if [ ! -f "$C/node_modules.tar" ]; then
	echo "== npm install (cached as $C/node_modules.tar)"
	rm -rf "$C/npm" && mkdir -p "$C/npm"
	echo '{"name":"benchapp","version":"1.0.0","private":true}' > "$C/npm/package.json"
	(cd "$C/npm" && npm install --no-audit --no-fund express lodash moment typescript webpack webpack-cli \
		eslint @babel/core react react-dom jest > "$C/npm.log" 2>&1)
	tar -C "$C/npm" -cf "$C/node_modules.tar.tmp" node_modules package.json package-lock.json
	mv "$C/node_modules.tar.tmp" "$C/node_modules.tar"
	rm -rf "$C/npm"
fi
if ! ls "$C"/debs/*.deb >/dev/null 2>&1; then
	echo "== apt-get download of the 'new packages' of step 2"
	mkdir -p "$C/debs"
	(cd "$C/debs" && apt-get download python3-numpy python3-scipy python3-pandas python3-matplotlib >/dev/null 2>&1)
fi
G=$C/gen-$size
if [ ! -f "$G/done" ]; then
	mkdir -p "$G"
	"$PY" "$LIB" gen-text log "$G/app.log" $((log_mib * MIB)) 1
	"$PY" "$LIB" gen-text log "$G/worker.log" $((log_mib * MIB)) 2
	"$PY" "$LIB" gen-text csv "$G/measurements.csv" $((csv_mib * MIB)) 3
	touch "$G/done"
fi

# ---- the instance
# prng NAME BYTES: deterministic incompressible bytes
prng() { { openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:$1" < /dev/zero 2>/dev/null || true; } | head -c "$2"; }
echo "== building the instance in $SRC"
mkdir -p "$SRC"
tar -C "$SRC" --xattrs --xattrs-include='*' --acls --numeric-owner -xpf "$C/rootfs-bookworm.tar"
libsrc=$(ls -d /usr/local/cuda-* 2>/dev/null | head -1 || true)
[ -n "$libsrc" ] && [ -d "$libsrc" ] || libsrc=/usr/lib/x86_64-linux-gnu
mkdir -p "$SRC/opt"
if [ "$lib_budget" = 0 ]; then
	cp -a "$libsrc" "$SRC/opt/cuda"
else
	"$PY" "$LIB" subset "$libsrc" "$SRC/opt/cuda" "$lib_budget" >/dev/null
fi
mkdir -p "$SRC/srv/app" "$SRC/srv/data" "$SRC/root/checkpoints" "$SRC/var/log/app" "$SRC/var/lib/vm" "$SRC/datadrive"
tar -C "$SRC/srv/app" -xf "$C/node_modules.tar"
for i in $(seq 1 "$ckpt_n"); do
	prng "ckpt$i" $((ckpt_mib * MIB)) > "$SRC/root/checkpoints/ckpt-$(printf %04d "$i").pt"
done
cp "$G/app.log" "$G/worker.log" "$SRC/var/log/app/"
cp "$G/measurements.csv" "$SRC/srv/data/"
# a sparse disk image: 32 data extents of 256 KiB spread over sparse_mib
truncate -s $((sparse_mib * MIB)) "$SRC/var/lib/vm/disk.img"
for k in $(seq 0 31); do
	prng "sparse$k" 262144 | dd of="$SRC/var/lib/vm/disk.img" bs=256K seek=$((k * sparse_mib / 32 * 4 + 1)) conv=notrunc status=none
done
# hardlinks: the latest checkpoint under a second name, a config in three places
ln "$SRC/root/checkpoints/ckpt-0001.pt" "$SRC/srv/app/model-latest.pt"
echo 'workers = 4' > "$SRC/srv/app/app.conf"
mkdir -p "$SRC/srv/app/conf.d" "$SRC/etc/app"
ln "$SRC/srv/app/app.conf" "$SRC/srv/app/conf.d/app.conf"
ln "$SRC/srv/app/app.conf" "$SRC/etc/app/app.conf"
# xattrs, an ACL, a file capability
setfattr -n user.origin -v sensor-fleet-7 "$SRC/srv/data/measurements.csv"
setfattr -n user.sha256 -v "$(printf %064d 0)" "$SRC/root/checkpoints/ckpt-0001.pt"
setfattr -n trusted.app -v managed "$SRC/srv/app"
setfacl -m u:1000:rx "$SRC/srv/data"
cp "$SRC/usr/bin/true" "$SRC/usr/local/bin/netprobe"
setcap cap_net_raw+ep "$SRC/usr/local/bin/netprobe"
# /datadrive: never captured (nodump: how casync is told to skip it)
prng datadrive $((dd_mib * MIB)) > "$SRC/datadrive/scratch.bin"
chattr +d "$SRC/datadrive"
sync
src_bytes=$(du -s -B1 --exclude=./datadrive "$SRC" | cut -f1)
src_apparent=$(du -sb --exclude=./datadrive "$SRC" | cut -f1)
src_entries=$(find "$SRC" -path "$SRC/datadrive" -prune -o -print | wc -l)
echo "   $((src_bytes / MIB)) MiB on disk ($((src_apparent / MIB)) MiB apparent: a sparse image) in $src_entries entries (+ /datadrive, $dd_mib MiB, skipped)"

# ---- a live workload in a cgroup, for cairn's pause times
for base in /sys/fs/cgroup/unified /sys/fs/cgroup; do
	if [ -e "$base/cgroup.procs" ] && [ -e "$base/cgroup.subtree_control" ]; then
		cg=$base/cairn-bench-$$
		mkdir "$cg" && break
	fi
done
if [ -n "$cg" ]; then
	bash -c 'echo $$ > "$1/cgroup.procs"; n=0; while :; do n=$((n+1)); echo $n > "$2/counter"; sleep 0.01; done' _ "$cg" "$run" &
	wl=$!
fi

# ---- timing
RAW=$run/raw.tsv
printf 'step\ttool\twall_s\tcpu_s\trss_mib\tuser_s\trepo_bytes\tpause_ms\tnew_bytes\tnote\n' > "$RAW"
# prepare DIR...: the same cache state for every tool
prepare() {
	sync
	if [ "$cache" = cold ]; then
		echo 3 > /proc/sys/vm/drop_caches
	else
		local d
		for d in "$@"; do
			find "$d" -path "$d/datadrive" -prune -o -type f -print0 | xargs -0 -r cat > /dev/null
		done
	fi
}
# timed STEP TOOL CMD...: run under /usr/bin/time; ROW gets step, tool, wall, cpu, rss, user
timed() {
	local step=$1 tool=$2 rc=0
	shift 2
	echo "   $step $tool"
	/usr/bin/time -f '%e %U %S %M' -o "$run/time.txt" "$@" > "$run/logs/$tool-$step.log" 2>&1 || rc=$?
	ROW=$("$PY" "$LIB" time-row "$step" "$tool" "$run/time.txt")
	NOTE=
	if [ "$rc" != 0 ]; then
		NOTE="exit $rc"
		echo "bench: $tool step $step exited $rc: $(tail -n 3 "$run/logs/$tool-$step.log" | tr '\n' ' ')" >&2
	fi
}
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$ROW" "${1:-}" "${2:-}" "${3:-}" "${4:-$NOTE}" >> "$RAW"; }
dusb() { du -sb "$@" | awk '{s += $1} END {print s + 0}'; }

export RESTIC_PASSWORD=cairn-bench RESTIC_CACHE_DIR=$run/restic-cache
# cairn's step-4 restore keeps its restore record here, for step 5 (docs/architecture.md, "How it works")
export CAIRN_STATE_DIR=$run/cairn-state
export BORG_BASE_DIR=$run/borg-base BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
has cairn && "$CAIRN" init --repo "$R/cairn" >/dev/null
has restic && restic -r "$R/restic" init --repository-version 2 >/dev/null
has borg && borg init -e none "$R/borg" >/dev/null
has casync && mkdir -p "$R/casync/store"
has tar && mkdir -p "$R/tar"
tar_total=0

# take STEP ROOT: every tool's take of ROOT
take() {
	local step=$1 root=$2 t p n s
	for t in ${tools//,/ }; do
		prepare "$root"
		case $t in
		cairn)
			local cgopt=()
			[ -n "$cg" ] && cgopt=(--cgroup "$cg")
			timed "$step" cairn "$CAIRN" take --repo "$R/cairn" --root "$root" --name "s$step" --user bench "${cgopt[@]}" --json
			read -r p n s < <("$PY" "$LIB" take-json "$run/logs/cairn-$step.log")
			record "$(dusb "$R/cairn")" "$p" "$n" ;;
		restic)
			timed "$step" restic restic -r "$R/restic" --compression auto backup --host bench --exclude "$root/datadrive" "$root"
			record "$(dusb "$R/restic")" ;;
		borg)
			timed "$step" borg borg create --compression zstd,3 --exclude "$root/datadrive" "$R/borg::s$step" "$root"
			record "$(dusb "$R/borg")" ;;
		casync)
			# /datadrive has the nodump flag, which casync honours by default
			timed "$step" casync casync make --store="$R/casync/store" --compression=zstd "$R/casync/s$step.caidx" "$root"
			record "$(dusb "$R/casync")" ;;
		tar)
			timed "$step" tar tar -C "$root" --exclude=./datadrive --sparse --xattrs --xattrs-include='*' --acls \
				--numeric-owner --warning=no-file-ignored -I 'zstd -3 -T0' -cf "$R/tar/s$step.tar.zst" .
			tar_total=$((tar_total + $(stat -c %s "$R/tar/s$step.tar.zst")))
			# only the newest archive is kept on disk; its "repository" is the sum
			find "$R/tar" -name '*.tar.zst' ! -name "s$step.tar.zst" -delete
			record "$tar_total" ;;
		esac
	done
}

echo "== step 1: first take"
take 1 "$SRC"
if has cairn; then
	echo "== floors"
	stored=$(dusb "$R/cairn")
	prepare
	timed floor "write floor" "$PY" "$LIB" write-floor "$run/floor" "$stored"
	record "$stored" "" "" "fdatasync of cairn's first-take stored bytes"
	rm -rf "$run/floor"
	prepare
	timed floor "device floor" "$PY" "$LIB" write-floor "$run/floor" "$stored" direct
	[ -n "$NOTE" ] || record "$stored" "" "" "the same with O_DIRECT: the device alone, no page-cache copy"
	rm -rf "$run/floor"
	prepare "$SRC"
	timed floor "read floor" sh -c 'find "$1" -path "$1/datadrive" -prune -o -type f -print0 | xargs -0 cat > /dev/null' _ "$SRC"
	record "" "" "" "every file read once"
	prepare "$SRC"
	timed floor "stat walk" find "$SRC" -path "$SRC/datadrive" -prune -o -printf '%s\n'
	record "" "" "" "find -printf %s (lstat of every entry)"
	# the first take's own CPU floor: read + SHA-256 + zstd (the repository's level) of the same
	# bytes in chunk-sized blocks, one thread; its CPU seconds over the cores (benchlib.py)
	floor_tool=$(dirname "$CAIRN")/../bench/cpu_floor
	if [ -x "$floor_tool" ]; then
		prepare "$SRC"
		timed floor "cpu floor" "$floor_tool" "$SRC" --skip datadrive --level 3 --block 524288
		record "" "" "" "read + SHA-256 + zstd -3 of every file, 512 KiB blocks, one thread (bench/cpu_floor.c)"
	fi
fi

echo "== step 2: user changes (new packages, checkpoints, logs)"
for deb in "$C"/debs/*.deb; do dpkg-deb -x "$deb" "$SRC"; done
"$PY" "$LIB" change2 "$SRC" 2 "$scale"
take 2 "$SRC"

if has cairn && [ -n "$cg" ] && { grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null; }; then
	echo "== step 3u: the same ~1% change through an overlay, cairn take --upper"
	# a hardlink clone of the repository (its files are immutable), thrown away after
	cp -al "$R/cairn" "$run/cairn-upper"
	mkdir -p "$run/ovl/upper" "$run/ovl/work" "$run/ovl/merged"
	mount -t overlay overlay -o "lowerdir=$SRC,upperdir=$run/ovl/upper,workdir=$run/ovl/work" "$run/ovl/merged"
	"$PY" "$LIB" change3 "$run/ovl/merged" 3 0.01 > "$run/logs/change3-ovl.log"
	prepare "$run/ovl/upper"
	timed 3u cairn "$CAIRN" take --repo "$run/cairn-upper" --upper "$run/ovl/upper" --base s2 --name s3u --user bench --cgroup "$cg" --json
	read -r p n s < <("$PY" "$LIB" take-json "$run/logs/cairn-3u.log")
	record "" "$p" "$n" "overlay upper mode"
	umount "$run/ovl/merged"
	rm -rf "$run/ovl" "$run/cairn-upper"
fi

echo "== step 3: ~1% more change"
"$PY" "$LIB" change3 "$SRC" 3 0.01 | tee "$run/logs/change3.log"
take 3 "$SRC"

echo "== step 4: restore of the last snapshot, checked against the source"
mkdir -p "$run/restore"
for t in ${tools//,/ }; do
	T=$run/restore/$t
	mkdir -p "$T"
	case $t in
	cairn)
		prepare "$R/cairn"
		timed 4 cairn "$CAIRN" restore --repo "$R/cairn" s3 "$T"
		got=$T ;;
	restic)
		prepare "$R/restic"
		# bookworm's restic 0.14 has no restore --sparse (0.15 has)
		timed 4 restic restic -r "$R/restic" restore latest --target "$T"
		got=$T$SRC ;;
	borg)
		prepare "$R/borg"
		timed 4 borg sh -c 'cd "$1" && borg extract --sparse "$2"' _ "$T" "$R/borg::s3"
		got=$T$SRC ;;
	casync)
		prepare "$R/casync"
		rmdir "$T"
		timed 4 casync casync extract --store="$R/casync/store" "$R/casync/s3.caidx" "$T"
		got=$T ;;
	tar)
		prepare "$R/tar"
		timed 4 tar tar -C "$T" --xattrs --xattrs-include='*' --acls --numeric-owner -I 'zstd -d -T0' -xpf "$R/tar/s3.tar.zst"
		got=$T ;;
	esac
	fid=failed
	if [ -d "$got" ]; then
		"$PY" "$TREECMP" "$SRC" "$got" --ignore /datadrive --no-root --max-diffs 100 > "$run/logs/$t-treecmp.log" 2>&1 || true
		fid=$("$PY" "$LIB" fidelity "$run/logs/$t-treecmp.log")
	fi
	echo "      $t: $fid"
	[ -z "$NOTE" ] || fid="$fid; $NOTE"
	record "" "" "" "$fid"
	if [ "$t" = cairn ] && [ "$fid" = exact ]; then
		mv "$T" "$run/copy"
	else
		rm -rf "$T"
	fi
done

echo "== steps 4f, 4d: the same restores with the page cache full, and after drop_caches"
if [ ! -f "$C/filler" ]; then
	echo "   writing $C/filler ($mem_gib GiB)"
	dd if=/dev/zero of="$C/filler.tmp" bs=16M count=$((mem_gib * 64)) oflag=direct status=none
	mv "$C/filler.tmp" "$C/filler"
fi
# Each of these restores (and their floor) writes into a new ext4 on a direct-I/O
# loop device (bench/freshfs.sh): restoring where the previous target was just
# deleted made ext4 without a journal scan the freed inodes on every create
# (30% of a cold restore's samples, every tool alike).
freshfs_start "$run/restore.img" $(( $(du -s -B1 "$SRC" | cut -f1) * 2 + (1 << 30) ))
# fill_or_drop full|drop: the page cache full of the filler, or empty
fill_or_drop() {
	sync
	if [ "$1" = full ]; then cat "$C/filler" > /dev/null; else echo 3 > /proc/sys/vm/drop_caches; fi
}
for state in full drop; do
	step=4${state:0:1}
	for t in ${tools//,/ }; do
		freshfs_new "$run/restore/fs"
		T=$run/restore/fs/$t-$state
		mkdir -p "$T"
		fill_or_drop "$state"
		case $t in
		cairn) timed "$step" cairn "$CAIRN" restore --repo "$R/cairn" s3 "$T" ;;
		restic) timed "$step" restic restic -r "$R/restic" restore latest --target "$T" ;;
		borg) timed "$step" borg sh -c 'cd "$1" && borg extract --sparse "$2"' _ "$T" "$R/borg::s3" ;;
		casync) rmdir "$T"; timed "$step" casync casync extract --store="$R/casync/store" "$R/casync/s3.caidx" "$T" ;;
		tar) timed "$step" tar tar -C "$T" --xattrs --xattrs-include='*' --acls --numeric-owner -I 'zstd -d -T0' -xpf "$R/tar/s3.tar.zst" ;;
		esac
		record "" "" "" "$state; a new ext4"
	done
done
if has cairn; then
	data=$(du -s -B1 --exclude=./datadrive "$SRC" | cut -f1)
	freshfs_new "$run/restore/fs"
	prepare
	timed floor "restore device floor" "$PY" "$LIB" write-floor "$run/restore/fs/floor" "$data" direct
	record "$data" "" "" "O_DIRECT write of the instance's data bytes, into a new ext4"
	# the restore's own CPU floor: zstd decompress + SHA-256 of the same bytes, one thread
	# (bench/cpu_floor.c --restore times only those); its CPU seconds over the cores (benchlib.py)
	floor_tool=$(dirname "$CAIRN")/../bench/cpu_floor
	if [ -x "$floor_tool" ]; then
		prepare "$SRC"
		timed floor "restore cpu floor" "$floor_tool" "$SRC" --skip datadrive --level 3 --block 524288 --restore
		rcpu=$(awk 'END {print $3}' "$run/logs/restore cpu floor-floor.log")
		ROW=$(printf 'floor\trestore cpu floor\t%s\t%s\t0\t%s' "$rcpu" "$rcpu" "$rcpu")
		record "" "" "" "zstd -d + SHA-256 of every file's 512 KiB blocks, one thread, CPU s (bench/cpu_floor.c --restore)"
	fi
fi
freshfs_stop

echo "== step 5: take of a copy (new inodes, same content)"
if [ ! -d "$run/copy" ]; then
	cp -a "$SRC" "$run/copy"
	rm -rf "$run/copy/datadrive"/*
fi
chattr +d "$run/copy/datadrive"
take 5 "$run/copy"

echo "== results"
title="cairn vs peers, --size $size: $((src_bytes / MIB)) MiB ($((src_apparent / MIB)) MiB apparent) in $src_entries entries, $cache cache, $(nproc)-core VM ($(date -u +%Y-%m-%d))"
"$PY" "$LIB" report "$RAW" "$out" "$title"
echo "results in $out (results.csv, results.md, chart.png)"
