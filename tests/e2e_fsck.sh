#!/bin/bash
# e2e_fsck: every kind of repository file (pack, index segment, tree object,
# snapshot manifest, config) damaged three ways (a flipped byte, a
# truncation, a deletion), each on a fresh copy: fsck exits 4 and names the
# damaged object and the affected snapshot, not the untouched one; restore
# of a damaged snapshot exits 4 and never 0 with a wrong byte; --read-data
# and --json; --repair rebuilds the index, quarantines a damaged pack,
# marks what is lost (restore then refuses it with 4) and never deletes a
# snapshot; a damaged index segment is repaired completely.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
. "$SRCDIR/tests/admin_lib.sh"
e2e_start fsck
e2e_seed

BASE=$W/base
small_tree "$W/a" "$SEED"
small_tree "$W/b" "$((SEED + 1))"
SUM_A=$(tree_sum "$W/a")
SUM_B=$(tree_sum "$W/b")
cairn_ok init init --repo "$BASE" --chunk-avg 16K || e2e_finish
take_json take-a --repo "$BASE" --root "$W/a" --name alpha --user alice || e2e_finish
A=$SNAP
take_json take-b --repo "$BASE" --root "$W/b" --name beta --user bob || e2e_finish
B=$SNAP
fsck_ok base "$BASE"
cairn fsck-json fsck --repo "$BASE" --json
check "fsck --json: ok is true" [ "$(json_get "$OUT" - ok)" = true ]
check "fsck --json: counts both snapshots" [ "$(json_get "$OUT" - snapshots)" = 2 ]
cairn fsck-data fsck --repo "$BASE" --read-data --json
check "fsck --read-data passes on the intact repository" [ "$RC" = 0 ]

# alpha's own objects: its index segment and pack (the entries of its top tree)
TOP_A=$(cd "$BASE" && "$PY" -c "
import sys; d=open('snapshots/$A','rb').read(); print(d[16:48].hex())")
read -r SEG_A PACK_A _ < <(index_entries "$BASE" | awk -v t="$TOP_A" '$6 == t')
PACK_A=packs/${PACK_A:0:2}/$PACK_A
SEG_A=index/$SEG_A
# a tree of alpha below the top: a type-2 entry in its segment other than the top
read -r _ _ TREE_OFF TREE_LEN _ TREE_ID < <(index_entries "$BASE" | awk -v s="${SEG_A#index/}" -v t="$TOP_A" '$1 == s && $5 == 2 && $6 != t' | head -n1)
say "alpha $A: $SEG_A, $PACK_A, tree $TREE_ID at $TREE_OFF"

# damage REPO FILE MODE [OFFSET]
damage() {
	"$PY" - "$1/$2" "$3" "${4:-}" <<'PYEOF'
import os, sys
path, mode, off = sys.argv[1], sys.argv[2], sys.argv[3]
size = os.path.getsize(path)
os.chmod(path, 0o644)
if mode == "delete":
    os.unlink(path)
elif mode == "truncate":
    os.truncate(path, int(off) if off else size // 2)
else:
    pos = int(off) if off else size // 2
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x40]))
PYEOF
}

# case NAME FILE MODE [OFFSET] [--both]: fsck exits 4 naming FILE's object
# and alpha (and beta only with --both); restoring alpha never succeeds with
# wrong content.
case_() {
	local name=$1 file=$2 mode=$3 off=${4:-} both=${5:-}
	local R=$W/r-$name
	rm -rf "$R"
	cp -a "$BASE" "$R"
	if [ "$mode" = drop ]; then index_drop "$R/$SEG_A" "$off"; else damage "$R" "$file" "$mode" "$off"; fi
	cairn "fsck-$name" fsck --repo "$R"
	if [ "$RC" = 4 ]; then ok "$name: fsck exits 4"; else fail "$name: fsck exits 4 (got $RC)"; show "$OUT"; show "$ERR"; fi
	check "$name: fsck names alpha (${A:0:12})" grep -q "${A:0:12}" "$OUT"
	if [ "$both" = --both ]; then
		check "$name: fsck names beta too" grep -q "${B:0:12}" "$OUT"
	else
		check "$name: fsck does not blame beta" bash -c "! grep -q '${B:0:12}' '$OUT'"
	fi
	check "$name: one error line on stderr" one_error_line "$ERR"
	cairn "restore-$name" restore --repo "$R" "$A" "$W/out-$name" -q
	if [ "$RC" = 0 ]; then
		check "$name: a restore that exits 0 is exact" [ "$(tree_sum "$W/out-$name")" = "$SUM_A" ]
	else
		check "$name: restore exits 4 or 6 (got $RC)" [ "$RC" = 4 -o "$RC" = 6 ]
	fi
	rm -rf "$W/out-$name"
	[ "$name" = pack-flip ] || [ "$name" = index-flip ] || rm -rf "$R"
}

say "packs"
case_ pack-flip "$PACK_A" flip
case_ pack-truncate "$PACK_A" truncate
case_ pack-delete "$PACK_A" delete
say "index segments"
case_ index-flip "$SEG_A" flip
case_ index-truncate "$SEG_A" truncate
case_ index-delete "$SEG_A" delete
say "tree objects"
case_ tree-flip "$PACK_A" flip $((TREE_OFF + 44 + TREE_LEN / 2))
case_ tree-truncate "$PACK_A" truncate $((TREE_OFF + 44 + 1))
case_ tree-delete "" drop "$TREE_ID"
say "manifests"
case_ manifest-flip "snapshots/$A" flip
case_ manifest-truncate "snapshots/$A" truncate
# a deleted manifest is a forgotten snapshot as far as the data goes; its
# owner's usage records still name it
R=$W/r-manifest-delete
cp -a "$BASE" "$R"
rm -f "$R/snapshots/$A"
cairn fsck-manifest-delete fsck --repo "$R"
check "manifest-delete: fsck reports alpha's data as unreferenced (info)" grep -q "no snapshot references" "$OUT"
if grep -q "users/alice" "$OUT"; then
	check "manifest-delete: fsck exits 4 for alice's usage records" [ "$RC" = 4 ]
fi
say "inodes records (only an accelerator): damaged or orphan is an info, exit 0"
R=$W/r-inodes
cp -a "$BASE" "$R"
damage "$R" "inodes/$A" flip
echo stale > "$R/inodes/$(printf '%064d' 5)"
cairn fsck-inodes fsck --repo "$R" --json
check "inodes: fsck exits 0 (got $RC)" [ "$RC" = 0 ]
check "inodes: the damaged record is an info naming it" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
p = [x for x in d["problems"] if x["kind"] == "inodes"]
ok = any(x["severity"] == "info" and x["object"].endswith(sys.argv[2]) and "reads every file" in x["message"] for x in p)
ok = ok and any(x["severity"] == "info" and "gone" in x["message"] for x in p) and len(p) == 2
sys.exit(0 if ok else 1)' "$OUT" "$A"
take_json take-after-inodes --repo "$R" --root "$W/a" --user alice --name alpha2 && {
	check "inodes: the next take from alpha reads every file (reused_files $(done_field "$OUT" reused_files))" \
		[ "$(done_field "$OUT" reused_files)" = 0 ]
}
say "config"
case_ config-flip config flip "" --both
case_ config-truncate config truncate "" --both
case_ config-delete config delete "" --both

say "fsck --repair of a damaged pack: quarantine, rebuilt index, alpha marked, beta intact"
R=$W/r-pack-flip
cairn repair-pack fsck --repo "$R" --repair --json
check "repair: exit 4 (alpha's data is lost)" [ "$RC" = 4 ]
check "repair: the pack is in quarantine/" [ -f "$R/quarantine/$PACK_A" ]
check "repair: the pack left packs/" [ ! -e "$R/$PACK_A" ]
check "repair: alpha is marked damaged" [ -f "$R/damaged/$A" ]
check "repair: both manifests are kept" [ -f "$R/snapshots/$A" -a -f "$R/snapshots/$B" ]
expect_rc 4 restore-marked restore --repo "$R" "$A" "$W/out-marked"
check "restore of a marked snapshot names the marker" grep -q "marked damaged" "$ERR"
cairn_ok restore-beta restore --repo "$R" "$B" "$W/out-beta" -q && \
	check "beta restores exactly after the repair" [ "$(tree_sum "$W/out-beta")" = "$SUM_B" ]
cairn fsck-after-pack fsck --repo "$R"
check "fsck after the repair: still exit 4, naming alpha only" bash -c "[ $RC = 4 ] && grep -q '${A:0:12}' '$OUT' && ! grep -q '${B:0:12}' '$OUT'"

say "fsck --repair of a damaged index segment: nothing is lost"
R=$W/r-index-flip
cairn repair-index fsck --repo "$R" --repair
check "repair of the index: exit 0" [ "$RC" = 0 ]
fsck_ok after-index-repair "$R"
check "no snapshot was marked" [ ! -d "$R/damaged" -o -z "$(ls "$R/damaged" 2>/dev/null)" ]
cairn_ok restore-after-index restore --repo "$R" "$A" "$W/out-ai" -q && \
	check "alpha restores exactly after the index rebuild" [ "$(tree_sum "$W/out-ai")" = "$SUM_A" ]

say "fsck waits for gc's lock, bounded (exit 5)"
R=$W/r-lock
cp -a "$BASE" "$R"
sleep 1000 &
HOLDER=$!
printf '%s %s %d %d\n' 0123456789abcdef0123456789abcdef "$(hostname)" "$HOLDER" $(( ($(date +%s) + 600) * 1000 )) > "$R/locks/gc"
expect_rc 5 fsck-busy fsck --repo "$R" --wait 1
expect_rc 5 gc-busy gc --repo "$R" --wait 1
kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || true
cairn_ok fsck-takeover fsck --repo "$R" -q --wait 5

e2e_finish
