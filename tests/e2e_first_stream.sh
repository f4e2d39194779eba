#!/bin/bash
# e2e_first_stream: a first take (no parent) hands each directory of small
# files to the readers as the walk completes it and builds its tree once
# they are read; the rest (hardlinks, large files, mount points and their
# ancestors) is built at the end. Its trees and inodes record are those of
# a take that builds every directory at the end (a take whose parent is an
# empty snapshot of the same path), on a copy of the same repository; it
# restores, fsck passes, and the next take reuses every file.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start first_stream
e2e_seed

SRC=$W/src
IGN=(--ignore /datadrive --ignore /special/sock)
R=$(e2e_repo repo)
cairn_ok init init --repo "$R" || e2e_finish
cp -a "$R" "$W/ref"

say "the reference: an empty snapshot of the path, then the tree with it as parent (nothing unchanged: built at the end)"
mkdir -p "$SRC"
take_json ref-empty --repo "$W/ref" --root "$SRC" --user u --name empty || e2e_finish

make_tree "$SRC"
add_long_chain "$SRC"
# more files than the walk lets the readers fall behind by (8,192): it waits for them
"$PY" - "$SRC/many" "$SEED" <<'PYEOF'
import os, random, sys
root, r = sys.argv[1], random.Random(int(sys.argv[2]))
for d in range(12):
    for s in ("", "/sub"):
        os.makedirs(root + "/d%02d%s" % (d, s))
        for i in range(400):
            with open(root + "/d%02d%s/f%03d" % (d, s, i), "w") as f:
                f.write("%d %d %x\n" % (d, i, r.getrandbits(64)) * r.randrange(1, 4))
PYEOF
mkdir -p "$SRC/links/a" "$SRC/links/b" "$SRC/links/b/c" "$SRC/mixed/small" "$SRC/empty/x/y"
for i in $(seq 1 20); do echo "a $i" > "$SRC/links/a/f$i"; echo "c $i" > "$SRC/links/b/c/f$i"; done
ln "$SRC/links/a/f1" "$SRC/links/b/across" # a group across directories: both built at the end
: > "$SRC/links/a/empty"
head -c 600000 /dev/urandom > "$SRC/mixed/large" # read as the walk finds it: its directory built at the end
for i in $(seq 1 20); do echo "m $i" > "$SRC/mixed/m$i"; echo "s $i" > "$SRC/mixed/small/s$i"; done
truncate -s 100000 "$SRC/mixed/small/sparse"
nfiles=$(find "$SRC" -type f | wc -l)

tree_of() {
	cairn "info-${3:0:12}" info --repo "$2" "$3" --json
	printf -v "$1" '%s' "$(grep -o '"root_tree":"[0-9a-f]*"' "$OUT")"
}
# the inodes record but for the snapshot id in its header and its checksum
record_of() { local f=$1/inodes/$2; head -c $(($(stat -c %s "$f") - 8)) "$f" | tail -c +49 | sha256sum | cut -c1-16; }

say "a first take of the tree, streamed, and the reference"
take_json first --repo "$R" --root "$SRC" --user u --name first || e2e_finish
S1=$SNAP
take_json ref --repo "$W/ref" --root "$SRC" --user u --name ref || e2e_finish
SR=$SNAP
check "the reference take read every file (reused $(done_field "$OUT" reused_files))" \
	test "$(done_field "$OUT" reused_files)" = 0
tree_of t1 "$R" "$S1"
tree_of tr "$W/ref" "$SR"
check "first take: the reference's tree ($t1, $tr)" test -n "$t1" -a "$t1" = "$tr"
check "first take: the reference's inodes record" test "$(record_of "$R" "$S1")" = "$(record_of "$W/ref" "$SR")"
if cairn_ok restore restore --repo "$R" "$S1" "$W/restored"; then
	treecmp_check "first take: the snapshot restores to the tree" "$SRC" "$W/restored" "${IGN[@]}"
fi
cairn_ok fsck fsck --repo "$R"
# the inodes record fits the trees: the next take reuses what the reference's does (every leader)
take_json ref2 --repo "$W/ref" --root "$SRC" --user u --name ref2 && reused_ref=$(done_field "$OUT" reused_files) &&
	take_json second --repo "$R" --root "$SRC" --user u --name second &&
	check "after a streamed first take: every file reused (got $(done_field "$OUT" reused_files), the reference $reused_ref, of $nfiles)" \
		test "$(done_field "$OUT" reused_files)" = "$reused_ref" -a "$reused_ref" -gt $((nfiles - 10))

e2e_finish
