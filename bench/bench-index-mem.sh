#!/bin/bash
# bench-index-mem.sh: what a big chunk index costs a take and a restore.
# Writes a repository whose index holds N synthetic entries (random ids, one
# pack that does not exist; bench/make_big_index), then takes the same tree
# into it and into an empty repository and restores both snapshots, each under
# /usr/bin/time (peak RSS, wall); also times opening each repository
# (`cairn snapshots`). Prints a table and the differences. Not part of CI.
# Run as root (the take keeps owners).
#
# usage: bench/bench-index-mem.sh [options]
#   --entries N     index entries of the big repository (default 10000000)
#   --mib M         size of the tree taken (default 200)
#   --build DIR     meson build directory (default: build)
#   --work DIR      work directory (default: a new one under $TMPDIR or /tmp)
#   --keep          keep the work directory
set -euo pipefail
PY=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || echo python3)}
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
entries=10000000
mib=200
build=$SRCDIR/build
work=
keep=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--entries) entries=$2; shift 2 ;;
	--mib) mib=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) usage ;;
	*) echo "bench-index-mem: unknown option $1" >&2; usage ;;
	esac
done
CAIRN=$build/tools/cairn
MAKE=$build/bench/make_big_index
[ "$(id -u)" = 0 ] || { echo "bench-index-mem: run as root" >&2; exit 1; }
[ -x "$CAIRN" ] && [ -x "$MAKE" ] || { echo "bench-index-mem: build first (no $CAIRN or $MAKE)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-index-mem: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }

if [ -z "$work" ]; then
	work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-index.XXXXXX")
else
	mkdir -p "$work"
fi
cleanup() { [ "$keep" = 1 ] && echo "kept $work" || rm -rf "$work"; }
trap cleanup EXIT
trap 'echo "bench-index-mem: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
RESULTS=$work/results
: > "$RESULTS"

# ---- the tree: 1 MiB files, half random, half text (compressible)
SRC=$work/src
mkdir -p "$SRC"
echo "writing a $mib MiB tree ..."
"$PY" - "$SRC" "$mib" <<'PYEOF'
import os, random, sys
root, mib = sys.argv[1], int(sys.argv[2])
rnd = random.Random(1)
words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(5000)]
for i in range(mib):
    d = os.path.join(root, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d" % i), "wb") as f:
        if i % 2:
            f.write(rnd.randbytes(1 << 20))
        else:
            out = bytearray()
            while len(out) < (1 << 20):
                out += b" ".join(rnd.choice(words) for _ in range(64)) + b"\n"
            f.write(out[: 1 << 20])
PYEOF
sync

# timed LABEL CMD...: wall seconds and peak RSS (KiB) of CMD
timed() {
	local label=$1
	shift
	echo "timing: $label"
	/usr/bin/time -f "%e %M" -o "$work/time.txt" "$@"
	read -r wall rss < "$work/time.txt"
	printf '%s\t%s\t%s\n' "$label" "$wall" "$rss" >> "$RESULTS"
}

EMPTY=$work/empty
BIG=$work/big
"$CAIRN" init --repo "$EMPTY" > /dev/null
"$CAIRN" init --repo "$BIG" > /dev/null
echo "writing $entries index entries ..."
/usr/bin/time -f "%e s, %M KiB peak" "$MAKE" "$BIG" "$entries"
index_bytes=$(du -sb "$BIG/index" | cut -f1)
sync

for r in empty big; do
	R=$work/$r
	timed "open ($r)" sh -c '"$1" snapshots --repo "$2" > /dev/null' _ "$CAIRN" "$R"
	timed "take ($r)" sh -c '"$1" take --repo "$2" --root "$3" --name bench --no-parent -q > /dev/null' _ "$CAIRN" "$R" "$SRC"
	timed "restore ($r)" sh -c '"$1" restore --repo "$2" bench "$3" > /dev/null' _ "$CAIRN" "$R" "$work/restored-$r"
	diff -r "$SRC" "$work/restored-$r" > /dev/null || { echo "bench-index-mem: restore ($r) differs" >&2; exit 1; }
	rm -rf "$work/restored-$r"
done

"$PY" - "$RESULTS" "$entries" "$index_bytes" "$mib" <<'PYEOF'
import sys
res, entries, index_bytes, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = {}
for line in open(res):
    label, wall, rss = line.rstrip("\n").split("\t")
    rows[label] = (float(wall), int(rss) / 1024)
print()
print("index: %d entries, %.0f MiB of segments; tree: %s MiB" % (entries, index_bytes / 2**20, mib))
print("| step | empty repo: wall s | peak RSS MiB | %dM-entry repo: wall s | peak RSS MiB | RSS difference MiB |" % (entries // 10**6))
print("| --- | --- | --- | --- | --- | --- |")
for step in ("open", "take", "restore"):
    e, b = rows["%s (empty)" % step], rows["%s (big)" % step]
    print("| %s | %.2f | %.1f | %.2f | %.1f | %+.1f |" % (step, e[0], e[1], b[0], b[1], b[1] - e[1]))
PYEOF
