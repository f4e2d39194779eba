#!/bin/bash
# bench/bench-first-take.sh: step 1 of bench/run.sh --size small alone (the
# first take, with --cgroup and its pre-copy, into an empty repository), on
# the same instance built once from run.sh's cache, old and new cairn
# alternating, the page cache warm (every file read first, as run.sh's
# default) and after drop_caches; the CPU floor (bench/cpu_floor) beside
# them. Run as root.
#
# usage: bench/bench-first-take.sh NEW_CAIRN [OLD_CAIRN] [options]
#   --runs N        pairs per state (default 3)
#   --states LIST   warm,drop (default both)
#   --top DIR       scratch (default /var/tmp/cairn-take-bench); the instance
#                   is kept there between calls; remove it when done
#   --cache DIR     run.sh's cache (default /var/tmp/cairn-bench/cache)
#   --floor         also time cpu_floor (NEW's build dir) once per state
# Prints every run (wall, user, sys, the take's pause and pre-copy ms) and
# the medians of wall and CPU-s, and new/old per pair.
set -euo pipefail
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
LIB=$SRCDIR/bench/benchlib.py
. "$SRCDIR/bench/instance.sh"
NEW=${1:?usage: bench-first-take.sh NEW_CAIRN [OLD_CAIRN] [options]}
shift
OLD=
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then OLD=$1; shift; fi
runs=3 states=warm,drop top=/var/tmp/cairn-take-bench C=/var/tmp/cairn-bench/cache floor=0
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--states) states=$2; shift 2 ;;
	--top) top=$2; shift 2 ;;
	--cache) C=$2; shift 2 ;;
	--floor) floor=1; shift ;;
	*) echo "bench-first-take: unknown option $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "bench-first-take: run as root" >&2; exit 1; }
need_cache bench-first-take "$C" rootfs-bookworm.tar node_modules.tar gen-small/done
SRC=$top/src R=$top/repo
mkdir -p "$top"
if [ ! -f "$top/src.done" ]; then
	# run.sh's --size small instance as step 1 sees it (no /datadrive, no capability)
	small_instance "$SRC" "$C" "$LIB" 2 64
	touch "$top/src.done"
fi
echo "instance: $(du -s -B1 "$SRC" | awk '{printf "%.0f MiB", $1 / 1048576}') on disk in $(find "$SRC" | wc -l) entries"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"

# a live workload in a cgroup of its own, as run.sh's
cg=/sys/fs/cgroup/unified/cairn-take-bench-$$
[ -e /sys/fs/cgroup/unified/cgroup.procs ] || cg=/sys/fs/cgroup/cairn-take-bench-$$
mkdir "$cg"
bash -c 'echo $$ > "$1/cgroup.procs"; n=0; while :; do n=$((n+1)); echo $n > "$2/counter"; sleep 0.01; done' _ "$cg" "$top" &
wl=$!
# the loop's last sleep outlives its shell by up to 10 ms: the group is
# removed once nothing is left in it (2 s at most)
stop() {
	kill "$wl" 2>/dev/null || true
	wait "$wl" 2>/dev/null || true
	local n=0
	until grep -qs '^populated 0' "$cg/cgroup.events" || [ $n -ge 100 ]; do sleep 0.02; n=$((n + 1)); done
	rmdir "$cg" 2>/dev/null || echo "bench-first-take: could not remove $cg" >&2
	rm -rf "$R"
}
trap stop EXIT
trap "exit 1" INT TERM

prepare() {
	sync
	if [ "$1" = drop ]; then echo 3 > /proc/sys/vm/drop_caches; else find "$SRC" -type f -print0 | xargs -0 -r cat > /dev/null; fi
}
# one STATE NAME BIN: an empty repository, the cache state, then the take alone
one() {
	local state=$1 name=$2 bin=$3
	rm -rf "$R"
	"$bin" init --repo "$R" > /dev/null
	prepare "$state"
	/usr/bin/time -f '%e %U %S' -o "$top/time.txt" "$bin" take --repo "$R" --root "$SRC" --name s1 --user bench \
		--cgroup "$cg" --json > "$top/out.txt" 2>&1 || {
		echo "bench-first-take: $name failed: $(tail -n 3 "$top/out.txt")" >&2
		exit 1
	}
	local pj
	pj=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("event") == "done": print(e.get("pause_ms", 0), e.get("precopy_ms", 0))' "$top/out.txt")
	echo "$name $state $(cat "$top/time.txt") $pj" | tee -a "$top/times.txt"
}
: > "$top/times.txt"
for state in ${states//,/ }; do
	if [ "$floor" = 1 ]; then
		ft=$(dirname "$NEW")/../bench/cpu_floor
		prepare "$state"
		/usr/bin/time -f '%e %U %S' -o "$top/time.txt" "$ft" "$SRC" --level 3 --block 524288 > /dev/null
		echo "floor $state $(cat "$top/time.txt") 0 0" | tee -a "$top/times.txt"
	fi
	for i in $(seq 1 "$runs"); do
		one "$state" new "$NEW"
		[ -z "$OLD" ] || one "$state" old "$OLD"
	done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$top/times.txt" <<'PYEOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for name, state, wall, user, sys_, pause, pre in rows:
    by.setdefault((state, name), []).append((float(wall), float(user) + float(sys_), float(pause)))
for state in sorted({s for s, _ in by}):
    names = sorted(n for s, n in by if s == state)
    med = lambda n, k: statistics.median(r[k] for r in by[(state, n)])
    print(f"{state}: medians " + ", ".join(f"{n} {med(n, 0):.2f} s ({med(n, 1):.2f} CPU-s, pause {med(n, 2):.0f} ms)" for n in names))
    if "old" in names:
        for k, what in ((0, "wall"), (1, "CPU")):
            pairs = [a[k] / b[k] for a, b in zip(by[(state, "new")], by[(state, "old")])]
            print(f"{state}: new/old {what} per pair {', '.join(f'{p:.3f}' for p in pairs)}; median {statistics.median(pairs):.3f}")
PYEOF
