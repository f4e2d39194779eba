#!/bin/bash
# e2e_gc: gc keeps every committed snapshot exact and reclaims the rest.
#  - the grace period: a first gc only marks; --grace 0 deletes;
#  - a take after the mark does not deduplicate against marked data (it
#    stores it again), so the old copies can go;
#  - a live session that started before a mark holds the deletion back;
#  - leftovers of a killed take (packs, index segments, tmp/) are removed;
#  - a pack that is mostly garbage is rewritten, its live blobs kept;
#  - --dry-run changes nothing and reports what a run would reclaim;
#  - after forgetting every snapshot, only config and empty folders remain.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
. "$SRCDIR/tests/admin_lib.sh"
e2e_start gc
e2e_seed

R=$(e2e_repo repo)
small_tree "$W/x" "$SEED"
small_tree "$W/y" "$((SEED + 7))"
SUM_X=$(tree_sum "$W/x")
SUM_Y=$(tree_sum "$W/y")
cairn_ok init init --repo "$R" --chunk-avg 16K || e2e_finish
export CAIRN_REPO=$R

# restore_check LABEL SNAP SUM
restore_check() {
	rm -rf "$W/out"
	if cairn_ok "restore-$1" restore "$2" "$W/out" -q; then
		check "$1: restores exactly" [ "$(tree_sum "$W/out")" = "$3" ]
	fi
	rm -rf "$W/out"
}

say "nothing to do on a fresh repository"
take_json x1 --root "$W/x" --name x1 || e2e_finish
X1=$SNAP
take_json y1 --root "$W/y" --name y1 --user yuri || e2e_finish
Y1=$SNAP
cairn_ok gc-noop gc --grace 0 --json
check "gc of a repository without garbage deletes nothing" [ "$(json_get "$OUT" - bytes_deleted)" = 0 ]

say "forget x1: a gc with the default grace only marks"
PACKS_BEFORE=$(packs_bytes "$R")
cairn_ok forget-x1 forget x1
cairn_ok gc-marks gc --json
check "default grace: nothing deleted" [ "$(json_get "$OUT" - packs_deleted)" = 0 ]
check "default grace: x1's blobs are pending" [ "$(json_get "$OUT" - pending_blobs)" -gt 0 ]
check "a marks object exists" [ -n "$(repo_ls "$R" gc/marks)" ]

say "a take of the same tree after the mark stores the data again"
take_json x2 --root "$W/x" --name x2 || e2e_finish
X2=$SNAP
check "x2 did not deduplicate against marked chunks (new_bytes $(done_field "$OUT" new_bytes))" \
	[ "$(done_field "$OUT" new_bytes)" -gt 0 ]
PACKS_BEFORE=$(packs_bytes "$R")
cairn_ok gc-dry gc --grace 0 --dry-run --json
DRY=$(json_get "$OUT" - bytes_reclaimed)
check "--dry-run reports bytes to reclaim ($DRY)" [ "$DRY" -gt 0 ]
check "--dry-run deleted nothing" [ "$(packs_bytes "$R")" = "$PACKS_BEFORE" ]
cairn_ok gc-zero gc --grace 0 --json
check "--grace 0: the marked copies go ($(json_get "$OUT" - bytes_reclaimed) bytes)" [ "$(json_get "$OUT" - bytes_reclaimed)" -gt 0 ]
check "--dry-run's figure was what the run reclaimed" [ "$(json_get "$OUT" - bytes_reclaimed)" = "$DRY" ]
fsck_ok after-first-gc "$R"
restore_check x2 "$X2" "$SUM_X"
restore_check y1 "$Y1" "$SUM_Y"

say "a live session that started before the mark holds deletion back"
cairn_ok forget-x2 forget x2
sleep 1000 &
SLEEPER=$!
fake_session "$R" "$SLEEPER" -5
cairn_ok gc-held gc --grace 0 --json
check "held: nothing deleted" [ "$(json_get "$OUT" - packs_deleted)" = 0 ]
check "held: x2's blobs pending" [ "$(json_get "$OUT" - pending_blobs)" -gt 0 ]
kill "$SLEEPER"; wait "$SLEEPER" 2>/dev/null || true
cairn_ok gc-released gc --grace 0 --json
check "released: the dead session is removed" [ "$(json_get "$OUT" - sessions_removed)" = 1 ]
check "released: x2's data deleted" [ "$(json_get "$OUT" - packs_deleted)" -gt 0 ]
fsck_ok after-held "$R"
restore_check y1-again "$Y1" "$SUM_Y"

say "leftovers of killed takes and tmp/ files are removed"
if e2e_local; then
	for n in 1 2 3 4; do
		CAIRN_FAULT="rename:$((n + 1)):CRASH" "$CAIRN" take --root "$W/x" --name dead$n -q >/dev/null 2>&1 || true
		"$CAIRN" forget dead$n >/dev/null 2>&1 || true # when the crash came after the commit
	done
else # no rename to crash in: a take killed once its first pack is committed
	mkdir -p "$W/big"
	for i in 1 2 3; do head -c 40000000 /dev/urandom > "$W/big/f$i"; done
	NP=$(repo_ls "$R" packs | wc -l)
	"$CAIRN" take --root "$W/big" --name dead -q >/dev/null 2>&1 & K=$!
	for _ in $(seq 1 300); do [ "$(repo_ls "$R" packs | wc -l)" -gt "$NP" ] && break; sleep 0.05; done
	kill -9 "$K" 2>/dev/null || true; wait "$K" 2>/dev/null || true
	"$CAIRN" forget dead >/dev/null 2>&1 || true # when the kill came after the commit
	rm -rf "$W/big"
	cairn fsck-unindexed fsck
	check "the killed take left an unindexed pack" grep -q 'in no index segment' "$OUT"
fi
echo leftover | repo_put "$R" tmp/0123456789abcdef.tmp
check "the killed takes left files behind" [ "$(repo_files "$R" | grep -c -E '^./(packs|index|tmp)/')" -gt "$(repo_ls "$R" index | wc -l)" ]
cairn_ok fsck-leftovers fsck -q
cairn_ok gc-leftovers gc --grace 0 --json
check "tmp leftovers removed" [ -z "$(repo_ls "$R" tmp)" ]
fsck_ok after-leftovers "$R"
cairn fsck-info fsck
check "no unindexed pack or unreferenced blob is left" bash -c "! grep -q -E 'in no index segment|no snapshot references' '$OUT'"

say "an inodes record whose snapshot is gone (a forget that crashed) is removed"
ORPHAN=inodes/$(printf '%064d' 7)
echo stale | repo_put "$R" "$ORPHAN"
cairn_ok gc-orphan-dry gc --dry-run --json
check "--dry-run counts the orphan inodes record ($(json_get "$OUT" - inodes_removed))" [ "$(json_get "$OUT" - inodes_removed)" = 1 ]
check "--dry-run keeps it" [ -n "$(repo_ls "$R" inodes | grep "${ORPHAN#inodes/}" || true)" ]
cairn_ok gc-orphan gc --json
check "gc removes it ($(json_get "$OUT" - inodes_removed))" [ "$(json_get "$OUT" - inodes_removed)" = 1 ]
check "it is gone" [ -z "$(repo_ls "$R" inodes | grep "${ORPHAN#inodes/}" || true)" ]
check "the live snapshots keep theirs ($(repo_ls "$R" inodes | wc -l) records, $(snap_ids "$R" | wc -l) snapshots)" \
	[ "$(repo_ls "$R" inodes | wc -l)" = "$(snap_ids "$R" | wc -l)" ]

say "a pack that is mostly garbage is rewritten"
# Fixed sizes, so that for every seed xz's data (about 1.9 MB) fits in one
# pack on every backend (RADOS cuts packs at 4 MiB) and z keeps only an
# eighth of it alive: a pack that is ~87% garbage.
small_tree "$W/z" "$((SEED + 3))" 4 60000
small_tree "$W/w" "$((SEED + 5))" 8 200000
SUM_Z=$(tree_sum "$W/z")
mkdir -p "$W/xz"
cp -a "$W/w/." "$W/xz/"
cp -a "$W/z" "$W/xz/zz"
take_json xz --root "$W/xz" --name xz || e2e_finish
XZ=$SNAP
take_json z --root "$W/z" --name z || e2e_finish
Z=$SNAP
cairn_ok forget-xz forget xz
cairn_ok gc-rewrite gc --grace 0 --json
check "a pack was rewritten (packs_rewritten $(json_get "$OUT" - packs_rewritten), packs_deleted $(json_get "$OUT" - packs_deleted))" \
	[ "$(json_get "$OUT" - packs_rewritten)" -ge 1 ]
fsck_ok after-rewrite "$R"
restore_check z "$Z" "$SUM_Z"
restore_check y1-after-rewrite "$Y1" "$SUM_Y"

say "forget everything: only config and empty folders remain"
for s in $(snap_ids "$R"); do cairn_ok "forget-${s:0:8}" forget "$s"; done
cairn_ok gc-all gc --grace 0 --json
LEFT=$(repo_files "$R")
check "only config (and the accounting's users/ records) remain: '$(echo $LEFT)'" [ -z "$LEFT" ]
fsck_ok empty "$R"

e2e_finish
