#!/bin/bash
# bench-mount.sh: instant start from a snapshot, `cairn mount` against
# `cairn restore`. Not part of CI. Run as root (mounts, chroot, drop_caches).
#
# The instance: a small Debian 12 root filesystem holding python3 and numpy
# (the host's python3.11, its standard library and the shared libraries
# they load, plus python3-numpy from the apt cache, dpkg -x), and --weights-mib
# MiB of incompressible "model weight" files the start does not read.
#
# Measured, each start with the page cache dropped and an empty mount cache
# (or an empty restore target):
#   readiness   from `cairn mount` to `chroot MERGED python3 -c 'import numpy'`
#               exiting, MERGED an overlayfs over the mount; beside it
#               `cairn restore` + the same command in the restored tree;
#               p50/p90 over --starts starts
#   full read   every file read through a cold mount (cat of all), against a
#               cold `cairn restore` of everything
#   hydrated    reading the weights once the mount hydrated them (passthrough),
#               against the same files on local disk (the restored tree)
#
# usage: bench/bench-mount.sh [options]
#   --starts N        starts per variant (default 10)
#   --weights-mib M   model weight bytes in the instance (default 1024)
#   --repo ADDR       repository address (default: a directory under the work dir)
#   --build DIR       meson build directory (default: build)
#   --work DIR        work directory (default: a new one under $TMPDIR or /tmp)
#   --keep            keep the work directory
set -euo pipefail
PY=${PYTHON:-/usr/bin/python3}
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
starts=10
weights=1024
build=$SRCDIR/build
work=
repo=
keep=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--starts) starts=$2; shift 2 ;;
	--weights-mib) weights=$2; shift 2 ;;
	--repo) repo=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) usage ;;
	*) echo "bench-mount: unknown option $1" >&2; usage ;;
	esac
done
CAIRN=$build/tools/cairn
[ "$(id -u)" = 0 ] || { echo "bench-mount: run as root" >&2; exit 1; }
[ -x "$CAIRN" ] || { echo "bench-mount: build first (no $CAIRN)" >&2; exit 1; }
NUMPY_DEB=$(ls /var/cache/apt/archives/python3-numpy_*.deb 2>/dev/null | head -n1)
[ -n "$NUMPY_DEB" ] || { echo "bench-mount: no python3-numpy .deb in /var/cache/apt/archives (apt-get download python3-numpy)" >&2; exit 1; }
work=${work:-$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-mount.XXXXXX")}
repo=${repo:-$work/repo}
MOUNTS=()
cleanup() {
	local m
	for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
	[ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# ---- the instance -----------------------------------------------------------
ROOT=$work/rootfs
echo "building the instance in $ROOT"
mkdir -p "$ROOT"/{usr/bin,usr/lib,usr/lib64,etc,tmp,proc,dev,models}
ln -s usr/bin "$ROOT/bin"
ln -s usr/lib "$ROOT/lib"
ln -s usr/lib64 "$ROOT/lib64"
cp -a /usr/bin/python3 /usr/bin/python3.11 "$ROOT/usr/bin/"
mkdir -p "$ROOT/usr/lib/python3.11" "$ROOT/usr/lib/python3/dist-packages"
cp -a /usr/lib/python3.11/. "$ROOT/usr/lib/python3.11/"
dpkg -x "$NUMPY_DEB" "$ROOT"
# every shared library python and numpy's extensions load, resolved on the host
libs() { { ldd "$1" 2>/dev/null || true; } | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'; }
{
	libs /usr/bin/python3.11
	find "$ROOT/usr/lib/python3" "$ROOT/usr/lib/python3.11" -name '*.so*' | while read -r so; do libs "$so"; done
} | sort -u | while read -r lib; do
	mkdir -p "$ROOT$(dirname "$lib")"
	cp -L "$lib" "$ROOT$lib"
done
cp -a /etc/ld.so.conf /etc/ld.so.conf.d "$ROOT/etc/" 2>/dev/null || true
"$PY" - "$ROOT/models" "$weights" <<'EOF'
import os, sys
top, mib = sys.argv[1], int(sys.argv[2])
left, i = mib, 0
while left > 0:
    n = min(left, 256)
    with open(os.path.join(top, "weights-%02d.bin" % i), "wb") as f:
        for _ in range(n):
            f.write(os.urandom(1 << 20))
    left -= n
    i += 1
EOF
chroot "$ROOT" python3 -c 'import numpy; print("numpy", numpy.__version__)' ||
	{ echo "bench-mount: the instance does not run python3 -c 'import numpy'" >&2; exit 1; }
du -sh "$ROOT"

"$CAIRN" init --repo "$repo" >/dev/null
"$CAIRN" take --repo "$repo" --root "$ROOT" --name instance -q
SNAP=instance

# p50/p90 of the numbers on stdin
pct() { sort -n | "$PY" -c 'import sys; v=[int(x) for x in sys.stdin]; print("p50 %d ms  p90 %d ms  (n=%d, min %d, max %d)" % (v[len(v)//2], v[min(len(v)-1, (len(v)*9)//10)], len(v), v[0], v[-1]))'; }

M=$work/mnt U=$work/upper WK=$work/wk MG=$work/merged R=$work/restored
mkdir -p "$M" "$MG"
echo
echo "readiness: cairn mount + overlay + chroot python3 -c 'import numpy' ($starts starts)"
: > "$work/ready.mount"
: > "$work/ready.restore"
: > "$work/fetched"
for i in $(seq "$starts"); do
	rm -rf "$work/cache" "$U" "$WK"
	mkdir -p "$U" "$WK"
	drop
	t0=$(now_ms)
	"$CAIRN" mount --repo "$repo" "$SNAP" "$M" --cache "$work/cache" > /dev/null
	MOUNTS+=("$M")
	mount -t overlay overlay -o "lowerdir=$M,upperdir=$U,workdir=$WK" "$MG"
	MOUNTS+=("$MG")
	chroot "$MG" python3 -c 'import numpy' 
	t1=$(now_ms)
	echo $((t1 - t0)) >> "$work/ready.mount"
	du -sb --apparent-size "$work/cache/files" 2>/dev/null | cut -f1 >> "$work/fetched" || true
	umount "$MG"
	"$CAIRN" umount "$M"

	rm -rf "$R"
	drop
	t0=$(now_ms)
	"$CAIRN" restore --repo "$repo" "$SNAP" "$R" -q
	chroot "$R" python3 -c 'import numpy'
	t1=$(now_ms)
	echo $((t1 - t0)) >> "$work/ready.restore"
done
echo "  mount:   $(pct < "$work/ready.mount")"
echo "  restore: $(pct < "$work/ready.restore")"

echo
echo "full read of every file: cold mount against cold restore (3 runs each, alternating)"
: > "$work/full.mount"
: > "$work/full.restore"
for i in 1 2 3; do
	rm -rf "$work/cache"
	drop
	t0=$(now_ms)
	"$CAIRN" mount --repo "$repo" "$SNAP" "$M" --cache "$work/cache" > /dev/null
	(cd "$M" && find . -type f -print0 | xargs -0 cat > /dev/null)
	t1=$(now_ms)
	"$CAIRN" umount "$M"
	echo $((t1 - t0)) >> "$work/full.mount"
	rm -rf "$R"
	drop
	t0=$(now_ms)
	"$CAIRN" restore --repo "$repo" "$SNAP" "$R" -q
	t1=$(now_ms)
	echo $((t1 - t0)) >> "$work/full.restore"
done
echo "  mount + read all: $(pct < "$work/full.mount")"
echo "  restore:          $(pct < "$work/full.restore")"

echo
echo "hydrated reads of the weights against local disk (page cache dropped before each; 5 runs each, alternating)"
"$CAIRN" mount --repo "$repo" "$SNAP" "$M" --cache "$work/cache" > /dev/null
read_ms() { drop; local a b; a=$(now_ms); cat "$1"/models/* > /dev/null; b=$(now_ms); echo $((b - a)); }
: > "$work/hyd.mount"
: > "$work/hyd.local"
for i in 1 2 3 4 5; do
	read_ms "$M" >> "$work/hyd.mount"
	read_ms "$R" >> "$work/hyd.local"
done
"$CAIRN" umount "$M"
echo "  mount (hydrated, passthrough): $(pct < "$work/hyd.mount")"
echo "  local disk:                    $(pct < "$work/hyd.local")"
