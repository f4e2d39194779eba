#!/bin/bash
# bench/bench-restore.sh: the restore step of bench/run.sh alone, on a
# benchmark-like instance built once from run.sh's cache, old and new cairn
# alternating, with the page cache full (the filler read first) and after
# drop_caches; restic beside them after drop_caches. Run as root.
#
# usage: bench/bench-restore.sh NEW_CAIRN [OLD_CAIRN] [options]
#   --runs N        pairs per state (default 3)
#   --states LIST   full,drop (default both)
#   --restic        restic's restore too (after drop_caches)
#   --top DIR       scratch (default /var/tmp/cairn-restore-bench); the
#                   instance and the repositories are kept there between
#                   calls; remove it when done
#   --cache DIR     run.sh's cache (default /var/tmp/cairn-bench/cache)
#   --perf          record the new binary's first drop-state restore with
#                   perf record -g (TOP/perf.data)
#   --fs fresh|same fresh (default): each restore into a new ext4 (a loop
#                   device, made again before every run); same: into TOP
#                   itself, as bench/run.sh does
# Each timed run: an empty target, sync, then drop_caches or a read of the
# filler, then the restore alone under /usr/bin/time. Prints every run and
# the medians, and the new/old ratio per pair.
#
# Why a fresh file system: on an ext4 without a journal (this VM's root),
# creating files soon after many were deleted (the previous run's target)
# costs the kernel a scan of every recently deleted inode per create
# (ext4's recently_deleted); in one profile that was 30% of a restore.
set -euo pipefail
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
LIB=$SRCDIR/bench/benchlib.py
. "$SRCDIR/bench/instance.sh"
NEW=${1:?usage: bench-restore.sh NEW_CAIRN [OLD_CAIRN] [options]}
shift
OLD=
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then OLD=$1; shift; fi
fs=fresh runs=3 states=full,drop with_restic=0 top=/var/tmp/cairn-restore-bench C=/var/tmp/cairn-bench/cache perf=0
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--states) states=$2; shift 2 ;;
	--restic) with_restic=1; shift ;;
	--top) top=$2; shift 2 ;;
	--cache) C=$2; shift 2 ;;
	--perf) perf=1; shift ;;
	--fs) fs=$2; shift 2 ;;
	*) echo "bench-restore: unknown option $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "bench-restore: run as root" >&2; exit 1; }
need_cache bench-restore "$C" rootfs-bookworm.tar node_modules.tar filler gen-small/done
MIB=1048576
SRC=$top/src R=$top/repo
mkdir -p "$top"
if [ ! -f "$top/src.done" ]; then
	# run.sh's --size small instance, without its later changes, larger checkpoints
	rm -rf "$SRC" "$R"
	small_instance "$SRC" "$C" "$LIB" 4 256
	touch "$top/src.done"
fi
take_bin=${OLD:-$NEW}
if [ ! -f "$top/repo.done" ]; then
	rm -rf "$R"
	mkdir -p "$R"
	"$take_bin" init --repo "$R/cairn" > /dev/null
	"$take_bin" take --repo "$R/cairn" --root "$SRC" --name s1 --user bench > /dev/null
	if [ "$with_restic" = 1 ]; then
		RESTIC_PASSWORD=bench restic -r "$R/restic" init --repository-version 2 > /dev/null
		RESTIC_PASSWORD=bench restic -r "$R/restic" --compression auto backup --host bench "$SRC" > /dev/null
	fi
	touch "$top/repo.done"
fi
echo "instance: $(du -s -B1 "$SRC" | awk '{printf "%.0f MiB", $1 / 1048576}') on disk in $(find "$SRC" | wc -l) entries; repo $(du -sb "$R/cairn" | awk '{printf "%.0f MiB", $1 / 1048576}')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"

. "$SRCDIR/bench/freshfs.sh"
trap freshfs_stop EXIT
trap "exit 1" INT TERM
[ "$fs" != fresh ] || freshfs_start "$top/fs.img" $(( $(du -s -B1 "$SRC" | cut -f1) * 2 + 1024 * MIB ))
# one STATE NAME CMD...: prepare, then time CMD; prints "NAME STATE wall user sys"
one() {
	local state=$1 name=$2
	shift 2
	if [ "$fs" = fresh ]; then
		freshfs_new "$top/target"
	else
		rm -rf "$top/target" && mkdir -p "$top/target"
	fi
	sync
	if [ "$state" = full ]; then cat "$C/filler" > /dev/null; else echo 3 > /proc/sys/vm/drop_caches; fi
	/usr/bin/time -f '%e %U %S' -o "$top/time.txt" "$@" > "$top/out.txt" 2>&1 || {
		echo "bench-restore: $name failed: $(tail -n 3 "$top/out.txt")" >&2
		exit 1
	}
	echo "$name $state $(cat "$top/time.txt")" | tee -a "$top/times.txt"
}
: > "$top/times.txt"
for state in ${states//,/ }; do
	for i in $(seq 1 "$runs"); do
		if [ "$perf" = 1 ] && [ "$state" = drop ] && [ "$i" = 1 ]; then
			one "$state" new-perf perf record -g -o "$top/perf.data" "$NEW" restore --repo "$R/cairn" s1 "$top/target/r"
		fi
		one "$state" new "$NEW" restore --repo "$R/cairn" s1 "$top/target/r"
		[ -z "$OLD" ] || one "$state" old "$OLD" restore --repo "$R/cairn" s1 "$top/target/r"
		if [ "$with_restic" = 1 ] && [ "$state" = drop ]; then
			one "$state" restic env RESTIC_PASSWORD=bench restic -r "$R/restic" restore latest --target "$top/target/r"
		fi
	done
done
freshfs_stop
rm -rf "$top/target"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$top/times.txt" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for name, state, wall, user, sys_ in rows:
    by.setdefault((state, name), []).append((float(wall), float(user) + float(sys_)))
for state in sorted({s for s, _ in by}):
    med = {n: statistics.median(w for w, _ in v) for (s, n), v in by.items() if s == state}
    cpu = {n: statistics.median(c for _, c in v) for (s, n), v in by.items() if s == state}
    line = ", ".join(f"{n} {med[n]:.2f} s ({cpu[n]:.1f} CPU-s)" for n in sorted(med))
    print(f"{state}: medians {line}")
    if "old" in med:
        pairs = [a[0] / b[0] for a, b in zip(by[(state, "new")], by[(state, "old")])]
        print(f"{state}: new/old per pair {', '.join(f'{p:.2f}' for p in pairs)}; median {statistics.median(pairs):.2f}")
    if "restic" in med:
        print(f"{state}: restic/new {med['restic'] / med['new']:.2f}x")
EOF
