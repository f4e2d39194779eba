#!/bin/bash
# bench/bench-small-restore.sh: restore of a tree of many small files (the
# issue's 1,000 directories of 1,000 files of ~130 bytes, scaled by --dirs)
# against `cp -a` of the same tree, each into a fresh ext4 (a loop device
# with direct I/O, made again before every run) after drop_caches; old and
# new cairn alternating; wall, CPU and peak RSS of each run. Run as root.
# 1,000,000 files (--dirs 1000) need ~4.5 GB for the tree and as much for
# the file system image.
#
# usage: bench/bench-small-restore.sh NEW_CAIRN [OLD_CAIRN] [--dirs N] [--files N] [--runs N] [--top DIR]
#   --dirs N    directories (default 100)
#   --files N   files a directory (default 1000)
#   --runs N    rounds (default 3)
#   --no-cp     cairn alone (old and new), no cp -a
#   --runs 0    only build the tree and the repository
#   --top DIR   scratch (default /var/tmp/cairn-small-restore-bench); kept
#               between calls; remove it when done
set -euo pipefail
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
NEW=${1:?usage: bench-small-restore.sh NEW_CAIRN [OLD_CAIRN] [options]}
shift
OLD=
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then OLD=$1; shift; fi
dirs=100 files=1000 runs=3 with_cp=1 top=/var/tmp/cairn-small-restore-bench
while [ $# -gt 0 ]; do
	case "$1" in
	--dirs) dirs=$2; shift 2 ;;
	--files) files=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--no-cp) with_cp=0; shift ;;
	--top) top=$2; shift 2 ;;
	*) echo "bench-small-restore: unknown option $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "bench-small-restore: run as root" >&2; exit 1; }
SRC=$top/src-$dirs-$files R=$top/repo-$dirs-$files
mkdir -p "$top"
if [ ! -f "$SRC.done" ]; then
	rm -rf "$SRC" "$R"
	# seeded: the same tree every time; ~130 bytes a file, each different
	python3 - "$SRC" "$dirs" "$files" <<'EOF'
import os, random, sys
root, ndirs, nfiles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(21)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(3, 9))) for _ in range(2000)]
for d in range(ndirs):
    dp = os.path.join(root, f"pkg{d:04d}")
    os.makedirs(dp)
    for f in range(nfiles):
        text = f"module.exports = {{ id: {d * nfiles + f}, name: '" + ' '.join(rng.choice(words) for _ in range(12))
        text = (text[:118] + "' };\n") if len(text) > 118 else text + "' };\n"
        with open(os.path.join(dp, f"f{f:04d}.js"), "w") as fh:
            fh.write(text)
EOF
	sync
	touch "$SRC.done"
fi
if [ ! -f "$R.done" ]; then
	rm -rf "$R"
	"$NEW" init --repo "$R" > /dev/null
	"$NEW" take --repo "$R" --root "$SRC" --name s1 --user bench > /dev/null
	touch "$R.done"
fi
echo "tree: $dirs dirs x $files files; load $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$runs" -gt 0 ] || exit 0

. "$SRCDIR/bench/freshfs.sh"
trap freshfs_stop EXIT
trap "exit 1" INT TERM
# room for the inodes: one per 4 KiB
freshfs_start "$top/fs.img" $((dirs * files * 4096 + 1073741824))
one() {
	local name=$1
	shift
	freshfs_new "$top/target" -i 4096
	sync
	echo 3 > /proc/sys/vm/drop_caches
	/usr/bin/time -f '%e %U %S %M' -o "$top/time.txt" "$@" > "$top/out.txt" 2>&1 || {
		echo "bench-small-restore: $name failed: $(tail -n 3 "$top/out.txt")" >&2
		exit 1
	}
	echo "$name $(cat "$top/time.txt")" | tee -a "$top/times.txt"
}
: > "$top/times.txt"
for i in $(seq 1 "$runs"); do
	one new "$NEW" restore --repo "$R" s1 "$top/target/r"
	[ -z "$OLD" ] || one old "$OLD" restore --repo "$R" s1 "$top/target/r"
	[ "$with_cp" = 0 ] || one cp-a cp -a "$SRC" "$top/target/r"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$top/times.txt" <<'EOF'
import statistics, sys
by, cpu, rss = {}, {}, {}
for name, wall, user, sys_, maxrss in (l.split() for l in open(sys.argv[1])):
    by.setdefault(name, []).append(float(wall))
    cpu.setdefault(name, []).append(float(user) + float(sys_))
    rss.setdefault(name, []).append(int(maxrss) / 1024)
med = {n: statistics.median(v) for n, v in by.items()}
print("medians: " + ", ".join(f"{n} {m:.2f} s ({statistics.median(cpu[n]):.1f} CPU-s, peak {max(rss[n]):.0f} MiB)"
                               for n, m in sorted(med.items())))
if "old" in med:
    pairs = [a / b for a, b in zip(by["new"], by["old"])]
    print(f"new/old per round {', '.join(f'{p:.2f}' for p in pairs)}; median {statistics.median(pairs):.2f}")
for n in ("new", "old"):
    if n in med and "cp-a" in med:
        pairs = [a / b for a, b in zip(by[n], by["cp-a"])]
        print(f"{n}/cp-a per round {', '.join(f'{p:.2f}' for p in pairs)}; median {statistics.median(pairs):.2f}")
EOF
