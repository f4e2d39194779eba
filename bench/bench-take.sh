#!/bin/bash
# bench-take.sh: time cairn take (first, unchanged, unchanged without
# io_uring) and cairn restore beside tar | zstd -T0 -3 and its extraction,
# with /usr/bin/time -v (wall, CPU, max RSS); print a table, the ratios
# cairn / tar+zstd and the stored sizes. Not part of CI. Run as root.
#
# usage: bench/bench-take.sh [options]
#   --tree usr        copies of /usr/lib and /usr/share (default, ~5 GB)
#   --tree share      a copy of /usr/share only
#   --tree fixture    fixtures/make-tree.sh --large-mib N (see --mib)
#   --tree DIR        an existing directory, used in place (not copied)
#   --mib N           size of the fixture's large part (default 300)
#   --cold            drop the page cache before every timed step
#   --full-nouring    also time a first take without io_uring (fresh repository)
#   --cairn PATH      the binary (default: build/tools/cairn)
#   --work DIR        work directory (default: $TMPDIR or /tmp, a new one)
#   --keep            keep the work directory
set -euo pipefail
PY=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || echo python3)}
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=${CAIRN:-$SRCDIR/build/tools/cairn}
tree=usr
mib=300
cold=0
full_nouring=0
keep=0
work=

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--tree) tree=$2; shift 2 ;;
	--mib) mib=$2; shift 2 ;;
	--cold) cold=1; shift ;;
	--full-nouring) full_nouring=1; shift ;;
	--cairn) CAIRN=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) usage ;;
	*) echo "bench-take: unknown option $1" >&2; usage ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "bench-take: run as root (owners, devices, drop_caches)" >&2; exit 1; }
[ -x "$CAIRN" ] || { echo "bench-take: no binary at $CAIRN (build first or --cairn)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-take: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
command -v zstd >/dev/null || { echo "bench-take: zstd missing" >&2; exit 1; }

if [ -z "$work" ]; then
	work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench.XXXXXX")
else
	mkdir -p "$work"
fi
cleanup() { [ "$keep" = 1 ] && echo "kept $work" || rm -rf "$work"; }
trap cleanup EXIT
trap 'echo "bench-take: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
RESULTS=$work/results
: > "$RESULTS"

# ---- the tree
case "$tree" in
usr|share)
	SRC=$work/src
	mkdir -p "$SRC"
	dirs=(/usr/share)
	[ "$tree" = usr ] && dirs=(/usr/lib /usr/share)
	echo "copying ${dirs[*]} to $SRC ..."
	for d in "${dirs[@]}"; do cp -a "$d" "$SRC/"; done
	;;
fixture)
	SRC=$work/src
	bash "$SRCDIR/fixtures/make-tree.sh" "$SRC" --seed 1 --large-mib "$mib"
	;;
*)
	[ -d "$tree" ] || { echo "bench-take: $tree is not a directory" >&2; exit 2; }
	SRC=$(cd "$tree" && pwd)
	;;
esac
src_bytes=$(du -sb --apparent-size "$SRC" | cut -f1)
src_entries=$(find "$SRC" | wc -l)
sync

# timed LABEL CMD...: run CMD under /usr/bin/time -v, record wall, cpu, rss.
timed() {
	local label=$1
	shift
	if [ "$cold" = 1 ]; then
		sync
		echo 3 > /proc/sys/vm/drop_caches
	fi
	echo "timing: $label"
	/usr/bin/time -v -o "$work/time.txt" "$@"
	"$PY" - "$work/time.txt" "$label" >> "$RESULTS" <<'EOF'
import sys
v = {}
for line in open(sys.argv[1]):
    k, _, val = line.strip().rpartition(": ")
    v[k] = val
w = v["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
cpu = float(v["User time (seconds)"]) + float(v["System time (seconds)"])
rss = int(v["Maximum resident set size (kbytes)"]) / 1024
print("%s\t%.2f\t%.2f\t%.1f" % (sys.argv[2], wall, cpu, rss))
EOF
}

R=$work/repo
"$CAIRN" init --repo "$R"
timed "cairn take (first)" sh -c '"$1" take --repo "$2" --root "$3" --name bench1 --json -q > "$4"' _ "$CAIRN" "$R" "$SRC" "$work/take1.json"
timed "cairn take (unchanged)" sh -c '"$1" take --repo "$2" --root "$3" --name bench2 --json -q > "$4"' _ "$CAIRN" "$R" "$SRC" "$work/take2.json"
timed "cairn take (unchanged, no io_uring)" sh -c 'CAIRN_NO_URING=1 "$1" take --repo "$2" --root "$3" --name bench3 --json -q > "$4" 2>/dev/null' _ "$CAIRN" "$R" "$SRC" "$work/take3.json"
if [ "$full_nouring" = 1 ]; then
	"$CAIRN" init --repo "$work/repo-nouring"
	timed "cairn take (first, no io_uring)" sh -c 'CAIRN_NO_URING=1 "$1" take --repo "$2" --root "$3" --name b --json -q > /dev/null 2>&1' _ "$CAIRN" "$work/repo-nouring" "$SRC"
	rm -rf "$work/repo-nouring"
fi
repo_bytes=$(du -sb "$R" | cut -f1)
timed "cairn restore" sh -c '"$1" restore --repo "$2" bench1 "$3" > /dev/null' _ "$CAIRN" "$R" "$work/restored"
rm -rf "$work/restored"

timed "tar | zstd -T0 -3" sh -c 'tar --warning=no-file-ignored -cf - -C "$1" . | zstd -q -T0 -3 > "$2"' _ "$SRC" "$work/src.tar.zst"
tar_bytes=$(stat -c %s "$work/src.tar.zst")
mkdir "$work/extracted"
timed "zstd -d | tar -x" sh -c 'zstd -q -d -c "$1" | tar --warning=no-timestamp -xf - -C "$2"' _ "$work/src.tar.zst" "$work/extracted"
rm -rf "$work/extracted" "$work/src.tar.zst"

# ---- report
"$PY" - "$RESULTS" "$src_bytes" "$src_entries" "$repo_bytes" "$tar_bytes" \
	"$work/take1.json" "$work/take2.json" "$tree" "$cold" <<'EOF'
import json, sys
res, src_bytes, entries, repo_bytes, tar_bytes, t1, t2, tree, cold = sys.argv[1:]
rows = {}
order = []
for line in open(res):
    label, wall, cpu, rss = line.rstrip("\n").split("\t")
    rows[label] = (float(wall), float(cpu), float(rss))
    order.append(label)

def done(path):
    try:
        for line in open(path):
            o = json.loads(line)
            if o.get("event") == "done":
                return o
    except (OSError, ValueError):
        pass
    return {}

def human(n):
    n = float(n)
    for u in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or u == "TiB":
            return "%.1f %s" % (n, u)
        n /= 1024

print()
print("tree: %s, %s in %s entries, %s cache" % (tree, human(src_bytes), entries,
                                              "cold" if cold == "1" else "warm"))
print()
print("%-38s %9s %9s %12s" % ("step", "wall s", "cpu s", "max RSS MiB"))
for label in order:
    w, c, r = rows[label]
    print("%-38s %9.2f %9.2f %12.1f" % (label, w, c, r))
print()

def ratio(a, b, i):
    if a in rows and b in rows and rows[b][i] > 0:
        return "%.2f" % (rows[a][i] / rows[b][i])
    return "-"

print("ratios cairn / tar+zstd (wall, cpu):")
print("  first take vs tar | zstd      %s  %s" % (ratio("cairn take (first)", "tar | zstd -T0 -3", 0),
                                               ratio("cairn take (first)", "tar | zstd -T0 -3", 1)))
print("  unchanged take vs tar | zstd  %s  %s" % (ratio("cairn take (unchanged)", "tar | zstd -T0 -3", 0),
                                               ratio("cairn take (unchanged)", "tar | zstd -T0 -3", 1)))
print("  restore vs zstd -d | tar      %s  %s" % (ratio("cairn restore", "zstd -d | tar -x", 0),
                                               ratio("cairn restore", "zstd -d | tar -x", 1)))
print("  unchanged take, io_uring / plain syscalls  %s" % ratio("cairn take (unchanged)",
                                                             "cairn take (unchanged, no io_uring)", 0))
print()
d1, d2 = done(t1), done(t2)
print("stored: repository %s (after 3 takes), tar.zst %s, ratio %.3f; source %s" % (
    human(repo_bytes), human(tar_bytes), int(repo_bytes) / max(1, int(tar_bytes)), human(src_bytes)))
for name, d in (("first take", d1), ("unchanged take", d2)):
    if d:
        print("%s: bytes %s, new %s, stored %s" % (name, human(d.get("bytes", 0)),
              human(d.get("new_bytes", 0)), human(d.get("stored_bytes", 0))))
EOF
