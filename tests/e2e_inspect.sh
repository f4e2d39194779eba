#!/bin/bash
# e2e_inspect: info, diff and stats on small trees with known content.
#  - info --json: counts and bytes equal what the tree holds and what take said;
#  - diff of two snapshots that differ in a few files lists exactly those,
#    and reads only the trees on the paths to them;
#  - stats --json: totals checked against the snapshot list and against the
#    index segments parsed independently here.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start inspect
e2e_seed

R=$W/repo
T=$W/tree
cairn_ok init init --repo "$R" --chunk-avg 64K || e2e_finish

say "a tree of known content: 40 directories of 10 files, a symlink, a hardlink, a fifo"
"$PY" - "$T" "$SEED" <<'EOF'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
total = 0
for d in range(40):
    os.makedirs(os.path.join(root, "d%02d" % d, "sub"))
    for f in range(10):
        data = rng.randbytes(rng.randrange(0, 3000))
        open(os.path.join(root, "d%02d" % d, "sub" if f >= 8 else "", "f%d" % f), "wb").write(data)
        total += len(data)
open(os.path.join(root, "big"), "wb").write(rng.randbytes(300000))
total += 300000
os.symlink("big", os.path.join(root, "link"))
os.link(os.path.join(root, "big"), os.path.join(root, "big-hard"))
os.mkfifo(os.path.join(root, "fifo"))
open(os.path.join(os.environ.get("W", root), "expected-bytes"), "w").write(str(total))
EOF
[ -f "$T/expected-bytes" ] && mv "$T/expected-bytes" "$W/expected-bytes"
BYTES=$(cat "$W/expected-bytes")
take_json take1 --repo "$R" --root "$T" --name one --label purpose=test || e2e_finish
S1=$SNAP
T1=$OUT
cp "$T1" "$LOG/take1.json"

say "info"
cairn_ok info-json info --repo "$R" one --json && {
	I=$OUT
	check "info: id is the snapshot" test "$(json_get "$I" - id)" = "$S1"
	check "info: name, user" test "$(json_get "$I" - name)/$(json_get "$I" - user)" = "one/default"
	check "info: files = 402 (400 + big + big-hard)" test "$(json_get "$I" - files)" = 402
	check "info: dirs = 81 (40 + 40 sub + the root)" test "$(json_get "$I" - dirs)" = 81
	check "info: symlinks = 1" test "$(json_get "$I" - symlinks)" = 1
	check "info: specials = 1" test "$(json_get "$I" - specials)" = 1
	check "info: hardlinks = 1" test "$(json_get "$I" - hardlinks)" = 1
	check "info: bytes = $BYTES (content, the hardlinked file once)" test "$(json_get "$I" - bytes)" = "$BYTES"
	for f in new_bytes stored_bytes; do
		check "info: $f equals the take's done event" test "$(json_get "$I" - $f)" = "$(json_get "$LOG/take1.json" done $f)"
	done
	check "info: parent is null" test "$(json_get "$I" - parent)" = null
	check "info: label purpose=test" "$PY" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["labels"] != {"purpose": "test"})' "$I"
	check "info: root is the captured directory" test "$(json_get "$I" - root)" = "$(cd "$T" && pwd -P)"
}
cairn_ok info-human info --repo "$R" "${S1:0:10}" && {
	check "info (human): sizes in human units" grep -qE '^bytes +[0-9.]+ (KiB|MiB)$' "$OUT"
	check "info (human): the label" grep -qE '^label purpose +test$' "$OUT"
}
expect_rc 6 info-missing info --repo "$R" no-such-snapshot

say "change a few files, keeping the directory mtime that changes"
"$PY" - "$T" <<'EOF'
import os, sys
root = sys.argv[1]
# only d33's mtime changes (entries added and removed); touching other
# directories would change their ctimes and so their parents' trees
t = os.stat(os.path.join(root, "d33")).st_mtime_ns
open(os.path.join(root, "d03/f1"), "ab").write(b"appended")        # content, size, mtime
os.chmod(os.path.join(root, "d17/sub/f9"), 0o600)                     # mode
os.setxattr(os.path.join(root, "d29/f2"), "user.note", b"v")          # xattrs
os.unlink(os.path.join(root, "d33/f4"))                               # removed
open(os.path.join(root, "d33/new"), "wb").write(b"new file\n")       # added
os.chown(os.path.join(root, "fifo"), 1234, 1234)                      # owner
os.utime(os.path.join(root, "d33"), ns=(t, t))
EOF
take_json take2 --repo "$R" --root "$T" --name two || e2e_finish
S2=$SNAP

say "diff"
cairn_ok diff diff --repo "$R" one two && {
	sort "$OUT" > "$LOG/diff.sorted"
	printf '%s\n' "+ /d33/new" "- /d33/f4" "M /d03/f1  (size, mtime, content)" \
		"M /d17/sub/f9  (mode)" "M /d29/f2  (xattrs)" "M /fifo  (owner)" | sort > "$LOG/diff.expected"
	check "diff lists exactly the changed paths and what changed" cmp -s "$LOG/diff.sorted" "$LOG/diff.expected"
	diff "$LOG/diff.expected" "$LOG/diff.sorted" | sed 's/^/    | /' || true
}
cairn_ok diff-json diff --repo "$R" one two --json && {
	check "diff --json: counts 1 added, 1 removed, 4 changed" \
		test "$(json_get "$OUT" - added)/$(json_get "$OUT" - removed)/$(json_get "$OUT" - changed)" = 1/1/4
	# the two top trees, then pairs of the root, d03, d17, d17/sub, d29 and
	# d33: 14 of the 164 trees of the two snapshots
	tr=$(json_get "$OUT" - trees_read)
	check "diff reads only the trees on the changed paths ($tr = 14)" test "$tr" = 14
	check "diff --json: /d29/f2 changed in xattrs only" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
e = [x for x in d["entries"] if x["path"] == "/d29/f2"]
sys.exit(not (len(e) == 1 and e[0]["status"] == "changed" and e[0]["changes"] == ["xattrs"]))' "$OUT"
}
cairn_ok diff-same diff --repo "$R" one one && check "diff of a snapshot with itself is empty" test ! -s "$OUT"
cairn_ok diff-rev diff --repo "$R" two one && check "diff the other way round swaps + and -" \
	bash -c 'grep -qx "+ /d33/f4" "$1" && grep -qx -- "- /d33/new" "$1"' _ "$OUT"
mkdir "$T/d05/newdir" "$T/d05/newdir/inner"
echo x > "$T/d05/newdir/inner/file"
rm -r "$T/d07"
take_json take3 --repo "$R" --root "$T" --name three
cairn_ok diff-dirs diff --repo "$R" two three && {
	check "an added directory is listed with everything in it" \
		bash -c 'grep -qx "+ /d05/newdir/" "$1" && grep -qx "+ /d05/newdir/inner/" "$1" && grep -qx "+ /d05/newdir/inner/file" "$1"' _ "$OUT"
	check "a removed directory is listed with its 10 files, sub and itself" test "$(grep -c '^- /d07/' "$OUT")" = 12
}
expect_rc 2 diff-one-arg diff --repo "$R" one
expect_rc 6 diff-missing diff --repo "$R" one no-such-snapshot

say "stats"
cairn_ok stats stats --repo "$R" --json && {
	cp "$OUT" "$LOG/stats.json"
	"$CAIRN" snapshots --repo "$R" --json > "$LOG/snaps.json"
	check "stats: every field against the snapshot list, the packs and the index segments" "$PY" - "$R" "$LOG/stats.json" "$LOG/snaps.json" <<'EOF'
import json, os, struct, sys
repo, stats, snaps = sys.argv[1:4]
s = json.load(open(stats))
snaps = json.load(open(snaps))
stored = chunks = trees = 0
seen = set()
for name in os.listdir(os.path.join(repo, "index")):
    b = open(os.path.join(repo, "index", name), "rb").read()
    assert b[:8] == b"CAIRNIDX", name
    n, per = struct.unpack_from("<I", b, len(b) - 24)[0], struct.unpack_from("<I", b, len(b) - 12)[0]
    for i in range(n):
        p = 16 + (i // per) * (per * 52 + 8) + (i % per) * 52
        e = b[p:p + 52]
        oid = e[:32]
        if oid in seen:
            continue
        seen.add(oid)
        stored += struct.unpack_from("<I", e, 44)[0]
        t = e[48]
        chunks += t == 1
        trees += t == 2
packs = sum(len(f) for _, _, f in os.walk(os.path.join(repo, "packs")))
logical = sum(x["bytes"] for x in snaps)
want = {"snapshots": len(snaps), "logical_bytes": logical, "stored_bytes": stored,
        "chunks": chunks, "trees": trees, "packs": packs}
bad = {k: (s.get(k), v) for k, v in want.items() if s.get(k) != v}
if abs(s["dedup_ratio"] - logical / stored) > 1e-3:
    bad["dedup_ratio"] = (s["dedup_ratio"], logical / stored)
if bad or s["dedup_ratio"] <= 2:
    print("stats differ (got, want):", bad, s)
    sys.exit(1)
EOF
}
cairn_ok stats-human stats --repo "$R" && check "stats (human): a dedup ratio line" grep -qE '^dedup ratio +[0-9.]+x$' "$OUT"

e2e_finish
