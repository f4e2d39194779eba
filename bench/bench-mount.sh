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
#               cold `cairn restore` of everything; wall and CPU (the mount's
#               server; the restore process)
#   hydrated    reading the weights once the mount hydrated them (passthrough),
#               against the same files on local disk (the restored tree) and
#               the mount's cache files read directly; ratios within a run
#
# usage: bench/bench-mount.sh [options]
#   --starts N        starts per variant (default 10)
#   --weights-mib M   model weight bytes in the instance (default 1024)
#   --repo ADDR       repository address (default: a directory under the work dir)
#   --build DIR       meson build directory (default: build)
#   --work DIR        work directory (default: a new one under $TMPDIR or /tmp)
#   --keep            keep the work directory
#   --reuse           the repository at --repo/--work already holds the instance (a
#                     run with --keep made it): skip building and taking it
#   --sections LIST   what to measure, of ready,full,hydrated (default: all)
#   --restore-starts N  starts of the restore variant (default: --starts; a
#                     restore of a 10 GB instance takes a minute)
#   --hyd-runs N      runs of the hydrated reads, each reading every way (default 9)
#   --hydrate MODE    the readiness mounts' --hydrate (default none)
#   --weights-step-mib S  write the weights S MiB at a time, each step taken in
#                     upper mode over the last (`take --upper DIR --base SNAP`)
#                     and deleted, so that the disk holds the instance once
#                     (a 30 GB instance on a disk with 40 GB free); default:
#                     all at once. The last step's snapshot is the instance.
# Every result line ends with the load average when it was printed: five
# helpers share this machine's two cores.
set -euo pipefail
PY=${PYTHON:-/usr/bin/python3}
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
starts=10
weights=1024
build=$SRCDIR/build
work=
repo=
keep=0
reuse=0
sections=ready,full,hydrated
rstarts=
hydruns=9
hydrate=none
wstep=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--starts) starts=$2; shift 2 ;;
	--weights-mib) weights=$2; shift 2 ;;
	--repo) repo=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	--reuse) reuse=1; shift ;;
	--sections) sections=$2; shift 2 ;;
	--restore-starts) rstarts=$2; shift 2 ;;
	--hyd-runs) hydruns=$2; shift 2 ;;
	--hydrate) hydrate=$2; shift 2 ;;
	--weights-step-mib) wstep=$2; shift 2 ;;
	-h|--help) usage ;;
	*) echo "bench-mount: unknown option $1" >&2; usage ;;
	esac
done
CAIRN=$build/tools/cairn
[ "$(id -u)" = 0 ] || { echo "bench-mount: run as root" >&2; exit 1; }
[ -x "$CAIRN" ] || { echo "bench-mount: build first (no $CAIRN)" >&2; exit 1; }
NUMPY_DEB=$(ls /var/cache/apt/archives/python3-numpy_*.deb 2>/dev/null | head -n1)
[ -n "$NUMPY_DEB" ] || { echo "bench-mount: no python3-numpy .deb in /var/cache/apt/archives (apt-get download python3-numpy)" >&2; exit 1; }
rstarts=${rstarts:-$starts}
want() { case ",$sections," in *",$1,"*) return 0 ;; esac; return 1; }
load() { echo "(load $(cut -d' ' -f1-3 /proc/loadavg))"; }
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
SNAP=instance
if [ "$reuse" = 0 ]; then
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
# weights DIR FIRST MIB: MIB MiB of random files of 256 MiB, numbered from FIRST
weights() {
	"$PY" - "$1" "$2" "$3" <<'EOF'
import os, sys
top, i, left = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
while left > 0:
    n = min(left, 256)
    with open(os.path.join(top, "weights-%03d.bin" % i), "wb") as f:
        for _ in range(n):
            f.write(os.urandom(1 << 20))
    left -= n
    i += 1
EOF
}
[ "$wstep" -gt 0 ] && [ "$wstep" -lt "$weights" ] || wstep=$weights
weights "$ROOT/models" 0 "$wstep"
chroot "$ROOT" python3 -c 'import numpy; print("numpy", numpy.__version__)' ||
	{ echo "bench-mount: the instance does not run python3 -c 'import numpy'" >&2; exit 1; }
du -sh "$ROOT"

"$CAIRN" init --repo "$repo" >/dev/null
"$CAIRN" take --repo "$repo" --root "$ROOT" --name instance -q
rm -rf "$ROOT" # the repository holds it now: disk is shared
# the rest of the weights a step at a time, each an upper layer over the last
done_mib=$wstep step=0
while [ "$done_mib" -lt "$weights" ]; do
	n=$((weights - done_mib)); [ "$n" -le "$wstep" ] || n=$wstep
	UP=$work/upper-step
	rm -rf "$UP"; mkdir -p "$UP/models"
	weights "$UP/models" $(((done_mib + 255) / 256)) "$n"
	"$CAIRN" take --repo "$repo" --upper "$UP" --base "$SNAP" --name "instance-$((step + 1))" -q
	step=$((step + 1))
	SNAP=instance-$step
	rm -rf "$UP"
	done_mib=$((done_mib + n))
	echo "  weights: $done_mib of $weights MiB taken"
done
echo "$SNAP" > "$work/snapshot-name"
fi

[ ! -f "$work/snapshot-name" ] || SNAP=$(cat "$work/snapshot-name")

# p50/p90 of the numbers on stdin
pct() { sort -n | "$PY" -c 'import sys; v=[int(x) for x in sys.stdin]; print("p50 %d ms  p90 %d ms  (n=%d, min %d, max %d)" % (v[len(v)//2], v[min(len(v)-1, (len(v)*9)//10)], len(v), v[0], v[-1]))'; }

M=$work/mnt U=$work/upper WK=$work/wk MG=$work/merged R=$work/restored
mkdir -p "$M" "$MG"
fetched_mib() { echo $(( $(du -sk "$work/cache/files" 2>/dev/null | cut -f1 || echo 0) / 1024 )); }

if want ready; then
echo
echo "readiness: cairn mount + overlay + chroot python3 -c 'import numpy' ($starts starts, restore $rstarts)"
: > "$work/ready.mount"
: > "$work/ready.restore"
: > "$work/fetched"
for i in $(seq "$starts"); do
	rm -rf "$work/cache" "$U" "$WK"
	mkdir -p "$U" "$WK"
	drop
	t0=$(now_ms)
	"$CAIRN" mount --repo "$repo" "$SNAP" "$M" --cache "$work/cache" --hydrate "$hydrate" > /dev/null
	MOUNTS+=("$M")
	mount -t overlay overlay -o "lowerdir=$M,upperdir=$U,workdir=$WK" "$MG"
	MOUNTS+=("$MG")
	chroot "$MG" python3 -c 'import numpy'
	t1=$(now_ms)
	echo $((t1 - t0)) >> "$work/ready.mount"
	fetched_mib >> "$work/fetched"
	umount "$MG"
	"$CAIRN" umount "$M"
	echo "  start $i: $((t1 - t0)) ms, $(tail -n1 "$work/fetched") MiB in the cache $(load)"

	[ "$i" -le "$rstarts" ] || continue
	rm -rf "$R"
	drop
	t0=$(now_ms)
	"$CAIRN" restore --repo "$repo" "$SNAP" "$R" -q
	chroot "$R" python3 -c 'import numpy'
	t1=$(now_ms)
	echo $((t1 - t0)) >> "$work/ready.restore"
	rm -rf "$R"
done
echo "  mount:   $(pct < "$work/ready.mount") $(load)"
echo "  restore: $(pct < "$work/ready.restore")"
echo "  fetched before ready (MiB, whole chunks): $(pct < "$work/fetched" | sed 's/ ms//g')"
fi

if want full; then
echo
echo "full read of every file: cold mount against cold restore (3 runs each, alternating)"
: > "$work/full.mount"
: > "$work/full.restore"
: > "$work/full.mount-cpu"
: > "$work/full.restore-cpu"
for i in 1 2 3; do
	rm -rf "$work/cache"
	drop
	t0=$(now_ms)
	pid=$("$CAIRN" mount --repo "$repo" "$SNAP" "$M" --cache "$work/cache" --hydrate none |
		sed -n 's/.*server pid \([0-9]*\).*/\1/p')
	(cd "$M" && find . -type f -print0 | xargs -0 cat > /dev/null)
	t1=$(now_ms)
	# the server's CPU (user + system): firmer than wall time under load
	mcpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%d", ($14 + $15) * 1000 / hz}' "/proc/$pid/stat")
	"$CAIRN" umount "$M"
	echo $((t1 - t0)) >> "$work/full.mount"
	echo "$mcpu" >> "$work/full.mount-cpu"
	rm -rf "$R"
	drop
	t0=$(now_ms)
	/usr/bin/time -f '%U %S' -o "$work/time.out" "$CAIRN" restore --repo "$repo" "$SNAP" "$R" -q
	t1=$(now_ms)
	rcpu=$(awk '{printf "%d", ($1 + $2) * 1000}' "$work/time.out")
	echo $((t1 - t0)) >> "$work/full.restore"
	echo "$rcpu" >> "$work/full.restore-cpu"
	echo "  run $i: mount $(tail -n1 "$work/full.mount") ms (server $mcpu CPU-ms), restore $(tail -n1 "$work/full.restore") ms ($rcpu CPU-ms) $(load)"
done
echo "  mount + read all: $(pct < "$work/full.mount") $(load)"
echo "  restore:          $(pct < "$work/full.restore")"
echo "  CPU-ms, mount's server: $(pct < "$work/full.mount-cpu" | sed 's/ ms//g'); restore: $(pct < "$work/full.restore-cpu" | sed 's/ ms//g')"
fi

if want hydrated; then
echo
echo "hydrated reads of the weights against local disk (page cache dropped before each; $hydruns runs, the order rotating)"
[ -d "$R/models" ] || "$CAIRN" restore --repo "$repo" "$SNAP" "$R" -q
if [ ! -d "$work/cache/files" ]; then # hydrate a cache first (the full read leaves one)
	"$CAIRN" mount --repo "$repo" "$SNAP" "$M" --cache "$work/cache" --hydrate none > /dev/null
	cat "$M"/models/* > /dev/null
	"$CAIRN" umount "$M"
fi
"$CAIRN" mount --repo "$repo" "$SNAP" "$M" --cache "$work/cache" --hydrate none > /dev/null
# Three ways to read the same 256 MiB files, the page cache dropped (after a
# sync) before each: through the mount (passthrough), the mount's cache
# files read directly (the same blocks without FUSE: what passthrough adds),
# and the restored tree (local disk). This disk's speed drifts by 2-3x from
# minute to minute under other load, so the ways take turns within a run
# (the order rotates) and the ratios are taken within a run, then their
# median; each file's time and its extents (filefrag) are printed, since
# a restored file and a cache file are not laid out alike.
rm -f "$work/hyd.direct"
"$PY" - "$hydruns" "$M" "$R" "$work/cache" "$work" <<'EOF'
import glob, os, subprocess, sys, time
runs, mnt, local, cache, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
names = sorted(os.listdir(os.path.join(local, "models")))
heads = {}
for n in names:
    with open(os.path.join(local, "models", n), "rb") as f:
        heads[f.read(1 << 16)] = n
direct = {}
for p in glob.glob(os.path.join(cache, "files", "*", "*")):
    if os.path.getsize(p) != os.path.getsize(os.path.join(local, "models", names[0])):
        continue
    with open(p, "rb") as f:
        h = f.read(1 << 16)
    if h in heads:
        direct[heads[h]] = p
ways = {"mount": [os.path.join(mnt, "models", n) for n in names],
        "direct": [direct.get(n) for n in names],
        "local": [os.path.join(local, "models", n) for n in names]}
if None in ways["direct"]:
    del ways["direct"] # a weight file not found whole in the cache
def extents(p):
    out = subprocess.run(["filefrag", p], capture_output=True, text=True).stdout
    return out.rsplit(":", 1)[-1].split()[0] if ":" in out else "?"
for w in ("direct", "local"):
    if w in ways:
        print("  extents a file, %s: %s" % (w, " ".join(extents(p) for p in ways[w])))
buf = memoryview(bytearray(128 << 10)) # cat's reads
def drop():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
order = list(ways)
res = {w: [] for w in order}
for r in range(runs):
    o = order[r % len(order):] + order[:r % len(order)]
    if r % 2:
        o.reverse()
    for w in o:
        drop()
        per = []
        for p in ways[w]:
            a = time.perf_counter()
            fd = os.open(p, os.O_RDONLY)
            while os.readv(fd, [buf]) > 0:
                pass
            os.close(fd)
            per.append(round((time.perf_counter() - a) * 1000))
        res[w].append(sum(per))
        print("  run %d %-6s %5d ms  (files %s)  (load %s)" % (r + 1, w, sum(per), " ".join(map(str, per)),
              " ".join(open("/proc/loadavg").read().split()[:3])), flush=True)
for w in order:
    with open(os.path.join(work, "hyd." + w), "w") as f:
        f.write("".join("%d\n" % v for v in res[w]))
med = lambda v: sorted(v)[len(v) // 2]
ratios = lambda a, b: "%.2fx" % med([x / y for x, y in zip(res[a], res[b])])
print("  median of the runs' ratios: mount/local %s" % ratios("mount", "local") +
      (", mount/direct %s (passthrough's cost), direct/local %s (the files' layout)" %
       (ratios("mount", "direct"), ratios("direct", "local")) if "direct" in res else ""))
EOF
# the same from the page cache: what the read path itself costs
warm_ms() { local a b; a=$(now_ms); cat "$1"/models/* > /dev/null; b=$(now_ms); echo $((b - a)); }
: > "$work/warm.mount"
: > "$work/warm.local"
cat "$M"/models/* "$R"/models/* > /dev/null
for i in $(seq "$hydruns"); do
	warm_ms "$M" >> "$work/warm.mount"
	warm_ms "$R" >> "$work/warm.local"
done
"$CAIRN" umount "$M"
echo "  mount (hydrated, passthrough): $(pct < "$work/hyd.mount") $(load)"
echo "  local disk:                    $(pct < "$work/hyd.local")"
[ ! -s "$work/hyd.direct" ] || echo "  cache files read directly:     $(pct < "$work/hyd.direct")"
echo "  from the page cache: mount $(pct < "$work/warm.mount")"
echo "                       local $(pct < "$work/warm.local")"
fi
