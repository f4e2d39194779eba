#!/bin/bash
# bench-small.sh: a million small files in little memory (issue 21). Builds a
# tree of DIRS directories of files of ~130 bytes on a fresh ext4 (a
# loop-mounted image file), then for cairn, restic and borg in turn: a first
# take, a small change (a file in every tenth directory rewritten, a new file
# in each), an incremental take; each under /usr/bin/time (peak RSS, wall).
# Beside them, the same run: a `find -printf` stat walk of the tree (the floor
# of an incremental take). Prints a table with cairn's ratios. Not part of CI.
# Run as root (loop mount, owners). Memory scales about linearly with --files.
#
# usage: bench/bench-small.sh [options]
#   --files N       files in the tree (default 1000000, 1000 a directory)
#   --cairn PATH    the cairn binary (default: BUILD/tools/cairn)
#   --base PATH     a second cairn binary to measure beside it (e.g. main's)
#   --tools LIST    comma-separated, from cairn,restic,borg (default: all)
#   --build DIR     meson build directory (default: build)
#   --work DIR      work directory (default /var/tmp/memory)
#   --keep          keep the image and repositories
set -euo pipefail
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
files=1000000
build=$SRCDIR/build
CAIRN=
BASE=
tools=cairn,restic,borg
work=/var/tmp/memory
keep=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--files) files=$2; shift 2 ;;
	--cairn) CAIRN=$2; shift 2 ;;
	--base) BASE=$2; shift 2 ;;
	--tools) tools=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) usage ;;
	*) echo "bench-small: unknown option $1" >&2; usage ;;
	esac
done
[ -n "$CAIRN" ] || CAIRN=$build/tools/cairn
[ "$(id -u)" = 0 ] || { echo "bench-small: run as root" >&2; exit 1; }
[ -x "$CAIRN" ] || { echo "bench-small: no cairn binary at $CAIRN (build first)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-small: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
has() { case ",$tools," in *",$1,"*) command -v "$1" > /dev/null || [ "$1" = cairn ] ;; *) return 1 ;; esac; }

mkdir -p "$work"
IMG=$work/ext4.img
MNT=$work/mnt
SRC=$MNT/src
R=$work/repos
RESULTS=$work/results
cleanup() {
	local rc=$?
	mountpoint -q "$MNT" && umount "$MNT"
	if [ "$keep" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
	return $rc
}
trap cleanup EXIT
trap 'echo "bench-small: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
: > "$RESULTS"

# ---- a fresh ext4 with inodes enough for the tree (4 KiB a file, 2x slack)
mountpoint -q "$MNT" && umount "$MNT"
rm -f "$IMG"
mkdir -p "$MNT"
img_mib=$(( files * 8 / 1024 + 256 ))
truncate -s "${img_mib}M" "$IMG"
mkfs.ext4 -q -F -i 4096 -b 4096 "$IMG"
mount -o loop "$IMG" "$MNT"

echo "writing $files files of ~130 bytes ..."
"$PY" - "$SRC" "$files" <<'PYEOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(21)
per = 1000
for d in range((n + per - 1) // per):
    dp = os.path.join(root, "pkg%04d" % d)
    os.makedirs(dp)
    for i in range(min(per, n - d * per)):
        # a small JSON-like file, mostly unique (a version and a hash each)
        body = '{"name":"m%04d-%04d","version":"%d.%d.%d","integrity":"%032x"}\n' % (
            d, i, rnd.randrange(9), rnd.randrange(99), rnd.randrange(99), rnd.getrandbits(128))
        with open(os.path.join(dp, "f%04d.json" % i), "w") as f:
            f.write(body.ljust(130, " "))
PYEOF
sync
echo "tree: $(find "$SRC" -type f | wc -l) files, $(du -sh "$SRC" | cut -f1) on disk"

# timed LABEL CMD...: wall seconds and peak RSS (KiB) of CMD
timed() {
	local label=$1
	shift
	echo "timing: $label"
	/usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/last.log" 2>&1 ||
		{ echo "bench-small: $label failed: $(tail -n 3 "$work/last.log")" >&2; exit 1; }
	read -r wall rss < "$work/time.txt"
	printf '%s\t%s\t%s\n' "$label" "$wall" "$rss" >> "$RESULTS"
}

# change: a file rewritten in every tenth directory and a new file in each
change() {
	local round=$1
	"$PY" - "$SRC" "$round" <<'PYEOF'
import os, sys
root, rnd = sys.argv[1], sys.argv[2]
for k, d in enumerate(sorted(os.listdir(root))):
    if k % 10 == 0:
        with open(os.path.join(root, d, "f0000.json"), "w") as f:
            f.write(("changed %s %s\n" % (rnd, d)).ljust(130, " "))
        with open(os.path.join(root, d, "new-%s.json" % rnd), "w") as f:
            f.write(("new %s %s\n" % (rnd, d)).ljust(130, " "))
PYEOF
	sync
}

export RESTIC_PASSWORD=cairn-bench RESTIC_CACHE_DIR=$work/restic-cache
export BORG_BASE_DIR=$work/borg-base BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export CAIRN_STATE_DIR=$work/cairn-state
rm -rf "$R"
mkdir -p "$R"

# the floor: a stat walk of the tree, warm (best of 3)
find "$SRC" -printf '%i %s %T@ %C@\n' > /dev/null
for i in 1 2 3; do timed "find stat walk" find "$SRC" -printf '%i %s %T@ %C@\n'; done

# take TOOL STEP: one take with TOOL
ntake=0
take() {
	local tool=$1 step=$2
	ntake=$((ntake + 1)) # archive names are unique
	case $tool in
	cairn|base)
		local bin=$CAIRN
		[ "$tool" = base ] && bin=$BASE
		[ -d "$R/$tool" ] || "$bin" init --repo "$R/$tool" > /dev/null
		timed "$tool $step" "$bin" take --repo "$R/$tool" --root "$SRC" --name "s-$ntake" --user bench -q ;;
	restic)
		[ -d "$R/restic" ] || restic -r "$R/restic" init --repository-version 2 > /dev/null
		timed "restic $step" restic -r "$R/restic" --compression auto backup --host bench "$SRC" ;;
	borg)
		[ -d "$R/borg" ] || borg init -e none "$R/borg" > /dev/null
		timed "borg $step" borg create --compression zstd,3 "$R/borg::s-$ntake" "$SRC" ;;
	esac
}

run=()
has cairn && run+=(cairn)
[ -n "$BASE" ] && run+=(base)
has restic && run+=(restic)
has borg && run+=(borg)
# every tool's first take, then one change, then every tool's incremental
# take of the same changed tree: each tool sees the same data
for t in "${run[@]}"; do take "$t" first; done
change 1
find "$SRC" -printf '%i %s %T@ %C@\n' > /dev/null
for t in "${run[@]}"; do take "$t" incremental; done
# the incremental again after a second change: a second sample, warm
change 2
for t in "${run[@]}"; do take "$t" incremental; done

"$PY" - "$RESULTS" "$files" <<'PYEOF'
import sys, statistics
res, files = sys.argv[1], int(sys.argv[2])
rows = {}
for line in open(res):
    label, wall, rss = line.rstrip("\n").split("\t")
    rows.setdefault(label, []).append((float(wall), int(rss) / 1024))
walk = min(w for w, _ in rows["find stat walk"])
print()
print("%d files; find stat walk %.2f s (best of 3)" % (files, walk))
print("| tool | first take s | peak MiB | incremental take s | peak MiB | incremental / stat walk |")
print("| --- | --- | --- | --- | --- | --- |")
for tool in ("cairn", "base", "restic", "borg"):
    if "%s first" % tool not in rows:
        continue
    f = rows["%s first" % tool][0]
    inc = rows["%s incremental" % tool]
    iw = statistics.median(w for w, _ in inc)
    ir = max(r for _, r in inc)
    print("| %s | %.2f | %.0f | %.2f | %.0f | %.1fx |" % (tool, f[0], f[1], iw, ir, iw / walk))
PYEOF
