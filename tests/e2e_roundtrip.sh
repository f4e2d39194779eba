#!/bin/bash
# e2e_roundtrip: take the fixture tree, restore it, and compare everything;
# ls and cat against the source; an unchanged second take and a take of a
# copy add no chunk data; restore refuses a non-empty target unless --force;
# the same without io_uring.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start roundtrip
e2e_seed

R=$(e2e_repo repo)
SRC=$W/src
IGN=(--ignore /datadrive --ignore /special/sock)

say "fixture tree, a cp -a copy of it, then a chain beyond PATH_MAX in the source"
make_tree "$SRC"
# 12 MiB that do not compress: more than one RADOS pack, less than a directory's
"$PY" -c 'import random, sys; random.seed(int(sys.argv[1])); sys.stdout.buffer.write(random.randbytes(12 << 20))' \
	"$SEED" > "$SRC/files/incompressible"
cp -a "$SRC" "$W/copy"
add_long_chain "$SRC"
random_size=$(stat -c %s "$SRC/files/random")

say "init"
cairn_ok init init --repo "$R" || e2e_finish

say "first take: events and counters"
take_json take1 --repo "$R" --root "$SRC" --name rt1 || e2e_finish
S1=$SNAP
cp "$OUT" "$LOG/take1.json"
last=$(tail -n1 "$LOG/take1.json")
check "the done event is the last line" grep -q '"event" *: *"done"' <<<"$last"
saved=$("$PY" -c '
import json, sys
ids = [o.get("snapshot") for o in map(json.loads, filter(str.strip, open(sys.argv[1])))
       if o.get("event") == "state" and o.get("state") == "saved"]
print(",".join(ids))' "$LOG/take1.json" || true)
check "one saved state event names the snapshot ($saved)" test "$saved" = "$S1"
files=$(done_field "$LOG/take1.json" files || true)
bytes=$(done_field "$LOG/take1.json" bytes || true)
new=$(done_field "$LOG/take1.json" new_bytes || true)
stored=$(done_field "$LOG/take1.json" stored_bytes || true)
for f in files bytes new stored; do
	check "done event: $f is a number (${!f})" is_uint "${!f}"
done
if is_uint "$files" && is_uint "$bytes" && is_uint "$new" && is_uint "$stored"; then
	check "files ($files) counts the 5000-entry directory and more" test "$files" -gt 5000
	check "new_bytes ($new) <= bytes ($bytes) - size of a duplicated file ($random_size): dedup within a take" \
		test "$new" -le $((bytes - random_size))
	check "stored_bytes ($stored) > 0" test "$stored" -gt 0
fi
check "stderr of the take is empty" test ! -s "$ERR"

say "restore into an absent target and compare with the source"
if cairn_ok restore1 restore --repo "$R" "$S1" "$W/r1"; then
	treecmp_check "restored tree equals the source" "$SRC" "$W/r1" "${IGN[@]}"
	check "/datadrive restored as an empty directory" \
		bash -c '[ -d "$1/datadrive" ] && [ -z "$(ls -A "$1/datadrive")" ]' _ "$W/r1"
	check "/datadrive keeps its mode and owner" \
		test "$(stat -c %f.%u.%g "$SRC/datadrive")" = "$(stat -c %f.%u.%g "$W/r1/datadrive" 2>/dev/null)"
	check "the socket was skipped" test ! -e "$W/r1/special/sock"
	check "the root of the restore has the source root's mode and owner" \
		test "$(stat -c %f.%u.%g "$SRC")" = "$(stat -c %f.%u.%g "$W/r1")"
fi

say "ls"
cairn_ok ls-files ls --repo "$R" rt1 /files && {
	for n in empty one small page 64k random dup-of-random text zeros incompressible; do
		check "ls rt1 /files lists $n" grep -qE "(^|[[:space:]/])$n\$" "$OUT"
	done
	check "ls rt1 /files lists nothing else" test "$(grep -c '' "$OUT")" = 10
}
cairn_ok ls-root ls --repo "$R" "${S1:0:12}" && {
	for n in acl datadrive deep deep-long dirs files hard links modes names other owners sparse special xattr; do
		check "ls of the root (by id prefix) lists $n" grep -qE "(^|[[:space:]/])$n\$" "$OUT"
	done
}
cairn_ok ls-datadrive ls --repo "$R" rt1 /datadrive && check "ls rt1 /datadrive is empty" test ! -s "$OUT"
cairn_ok ls-special ls --repo "$R" rt1 /special && check "ls rt1 /special has no socket" bash -c '! grep -q sock "$1"' _ "$OUT"
cairn_ok ls-l ls --repo "$R" rt1 /files -l && {
	for n in empty random zeros; do
		check "ls -l rt1 /files has a line ending with ' $n'" grep -qE "[[:space:]]$n\$" "$OUT"
	done
	check "ls -l lines carry more than the name" bash -c '! grep -qE "^(empty|one|small|page|64k|random|dup-of-random|text|zeros)\$" "$1"' _ "$OUT"
}
cairn_ok ls-R ls --repo "$R" rt1 /dirs -R && {
	check "ls -R /dirs reaches the 5000 files of bigdir" test "$(grep -cE 'f[0-9]{5}$' "$OUT")" = 5000
	check "ls -R /dirs reaches /dirs/a/b/c/leaf" grep -qE '(^|[[:space:]/])leaf$' "$OUT"
}
cairn "ls-R-deep" ls --repo "$R" rt1 /deep-long -R
check "ls -R of a chain beyond PATH_MAX exits 0 and reaches the bottom" \
	bash -c '[ "$1" = 0 ] && grep -q "bottom" "$2"' _ "$RC" "$OUT"

say "cat"
deep_bottom=$(cd "$SRC" && find deep -name bottom)
for p in files/empty files/one files/small files/random files/text files/zeros \
	sparse/holes sparse/all-hole sparse/tail-data hard/h2 other/h3 dirs/datadrive/kept \
	"$deep_bottom" "names/with space" "names/$(printf '\xff')" "names/new
line" "dirs/bigdir/f04999"; do
	label=cat-$(echo "$p" | tr -c 'A-Za-z0-9' '_' | tail -c 40)
	cairn "$label" cat --repo "$R" rt1 "/$p"
	if [ "$RC" = 0 ]; then
		cmp_check "cat rt1 /$(printf '%q' "$p" | tail -c 60) equals the source" "$OUT" "$SRC/$p"
	else
		fail "cat rt1 /$(printf '%q' "$p" | tail -c 60) exits 0 (got $RC)"
		show "$ERR"
	fi
done
long_rel=$(cd "$SRC" && "$PY" -c '
import os
p = [b"deep-long"]
fd = os.open(b"deep-long", os.O_RDONLY)
while True:
    subs = [n for n in os.listdir(fd) if n.startswith("long-")]
    if not subs:
        break
    p.append(os.fsencode(subs[0]))
    fd = os.open(subs[0], os.O_RDONLY, dir_fd=fd)
print(os.fsdecode(b"/".join(p)))')
cairn cat-long cat --repo "$R" rt1 "/$long_rel/bottom"
check "cat of a file beyond PATH_MAX (${#long_rel} bytes of path)" \
	bash -c '[ "$1" = 0 ] && [ "$(cat "$2")" = "$(printf "beyond PATH_MAX\n%.0s" $(seq 100))" ]' _ "$RC" "$OUT"

say "packs have the backend's size: 4 MiB on rados, 32 MiB elsewhere (plus at most a chunk)"
read -r largest npacks < <(repo_ls "$R" packs | awk '$2 > n {n = $2} END {print n + 0, NR}')
if [ "${CAIRN_TEST_BACKEND:-dir}" = rados ]; then
	check "rados: largest pack $largest <= 6 MiB + 64 KiB, $npacks packs >= 3" \
		bash -c '[ "$1" -le $(((6 << 20) + 65536)) ] && [ "$2" -ge 3 ]' _ "$largest" "$npacks"
else
	check "largest pack $largest holds the 12 MiB file (> 12 MiB, <= 34 MiB + 64 KiB)" \
		bash -c '[ "$1" -gt $((12 << 20)) ] && [ "$1" -le $(((34 << 20) + 65536)) ]' _ "$largest"
fi

say "second take of the unchanged tree adds no chunk data"
p0=$(packs_bytes "$R")
take_json take2 --repo "$R" --root "$SRC" --name rt2 && {
	S2=$SNAP
	p1=$(packs_bytes "$R")
	new=$(done_field "$OUT" new_bytes || true)
	stored=$(done_field "$OUT" stored_bytes || true)
	check "second take: new_bytes == 0 (got $new)" test "$new" = 0
	check "second take: stored_bytes <= 1 MiB, trees only (got $stored)" \
		bash -c 'case "$1" in ""|*[!0-9]*) exit 1;; esac; [ "$1" -le 1048576 ]' _ "$stored"
	check "second take: packs grew by <= 1 MiB ($p0 -> $p1)" test $((p1 - p0)) -le 1048576
	check "second take is a new snapshot" test "$S2" != "$S1"
}

say "a take of a cp -a copy (new inodes, another root) adds no chunk data"
take_json take-copy --repo "$R" --root "$W/copy" --name rtcopy && {
	new=$(done_field "$OUT" new_bytes || true)
	check "take of the copy: new_bytes == 0 (got $new)" test "$new" = 0
}

say "snapshots --json lists them"
cairn_ok snapshots snapshots --repo "$R" --json && {
	check "snapshots --json is JSON and lists rt1, rt2, rtcopy" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
d = d.get("snapshots", d) if isinstance(d, dict) else d
ids = {s.get("id") for s in d}
names = {s.get("name") for s in d}
sys.exit(0 if sys.argv[2] in ids and {"rt1", "rt2", "rtcopy"} <= names else 1)' "$OUT" "$S1"
}

say "restore into a non-empty target: exit 2 unless --force"
mkdir -p "$W/ne/files"
echo extra > "$W/ne/extra"
echo wrong > "$W/ne/files/small"
chmod 0600 "$W/ne/files/small"
ls -la --time-style=full-iso "$W/ne" "$W/ne/files" > "$LOG/ne-before"
expect_rc 2 restore-nonempty restore --repo "$R" "$S1" "$W/ne"
ls -la --time-style=full-iso "$W/ne" "$W/ne/files" > "$LOG/ne-after"
check "the refused restore left the target untouched" cmp -s "$LOG/ne-before" "$LOG/ne-after"
if cairn_ok restore-force restore --repo "$R" "$S1" "$W/ne" --force; then
	treecmp_check "restore --force over a non-empty target equals the source" "$SRC" "$W/ne" "${IGN[@]}" --ignore /extra
fi

say "restore into an existing empty directory"
mkdir "$W/empty-target"
if cairn_ok restore-empty restore --repo "$R" rt2 "$W/empty-target"; then
	treecmp_check "restore of rt2 into an empty directory equals the source" "$SRC" "$W/empty-target" "${IGN[@]}"
fi

say "without io_uring (CAIRN_NO_URING=1)"
export CAIRN_NO_URING=1
take_json take-nouring --repo "$R" --root "$SRC" --name rt-nouring --no-parent && {
	S3=$SNAP
	new=$(done_field "$OUT" new_bytes || true)
	check "take without io_uring: new_bytes == 0 (got $new)" test "$new" = 0
	if cairn_ok restore-nouring restore --repo "$R" "$S3" "$W/r3"; then
		treecmp_check "restore without io_uring equals the source" "$SRC" "$W/r3" "${IGN[@]}"
	fi
}
unset CAIRN_NO_URING

e2e_finish
