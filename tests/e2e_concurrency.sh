#!/bin/bash
# e2e_concurrency: four takes of different users, two restores and one gc
# (--grace 0, after forgetting snapshots, so that it deletes) all at once,
# repeated; every command succeeds, each restore is exact, and afterwards
# fsck passes and every snapshot restores exactly.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
. "$SRCDIR/tests/admin_lib.sh"
e2e_start concurrency
e2e_seed
RANDOM=$SEED
ROUNDS=${CONCURRENCY_ROUNDS:-4}

R=$(e2e_repo repo)
cairn_ok init init --repo "$R" --chunk-avg 16K || e2e_finish
export CAIRN_REPO=$R
declare -A EXP
for u in 0 1 2 3; do small_tree "$W/src$u" "$((SEED + u))" 16; done
# a shared part: every user's tree holds the same big file, so that the
# users deduplicate against each other (and against what gc marks)
head -c 600000 /dev/urandom > "$W/shared"
for u in 0 1 2 3; do cp "$W/shared" "$W/src$u/shared"; done
for u in 0 1; do
	name=seed$u
	EXP[$name]=$(tree_sum "$W/src$u")
	take_json "$name" --root "$W/src$u" --name "$name" --user "user$u" || e2e_finish
done

name_of() { "$CAIRN" snapshots --json | "$PY" -c '
import json, sys
for s in json.load(sys.stdin): print(s["id"], s["name"])'; }

for round in $(seq 1 "$ROUNDS"); do
	say "round $round"
	# garbage for gc: forget the oldest snapshots (two stay for the restores)
	mapfile -t ALL < <(name_of)
	while [ "${#ALL[@]}" -gt 4 ]; do
		"$CAIRN" forget "${ALL[0]%% *}" >/dev/null
		mapfile -t ALL < <(name_of)
	done
	pids=()
	for u in 0 1 2 3; do
		echo "round $round $RANDOM" >> "$W/src$u/d1/e1/f$((SEED + u))-1" 2>/dev/null || echo "r$round" > "$W/src$u/extra"
		name=c$round-u$u
		EXP[$name]=$(tree_sum "$W/src$u")
		"$CAIRN" take --root "$W/src$u" --name "$name" --user "user$u" -q > "$LOG/take-$name.log" 2>&1 &
		pids+=($!:take-$name)
	done
	k=0
	for line in "${ALL[@]:0:2}"; do
		k=$((k + 1))
		"$CAIRN" restore "${line%% *}" "$W/restore-$round-$k" -q > "$LOG/restore-$round-$k.log" 2>&1 &
		pids+=($!:restore-$round-$k:${line#* })
	done
	"$CAIRN" gc --grace 0 --wait 60 -q > "$LOG/gc-$round.log" 2>&1 &
	pids+=($!:gc-$round)
	for p in "${pids[@]}"; do
		IFS=: read -r pid what snapname <<<"$p"
		if wait "$pid"; then ok "round $round: $what exits 0"; else fail "round $round: $what exits 0"; show "$LOG/$what.log"; fi
		if [ -n "${snapname:-}" ]; then
			check "round $round: $what ($snapname) is exact" [ "$(tree_sum "$W/$what")" = "${EXP[$snapname]}" ]
			rm -rf "${W:?}/$what"
		fi
	done
	fsck_ok "round $round" "$R"
done

say "every snapshot restores exactly"
while read -r id name; do
	rm -rf "$W/out"
	if "$CAIRN" restore "$id" "$W/out" -q > "$LOG/final.log" 2>&1; then
		check "$name restores exactly" [ "$(tree_sum "$W/out")" = "${EXP[$name]}" ]
	else
		fail "$name restores"; show "$LOG/final.log"
	fi
done < <(name_of)
cairn_ok gc-final gc --grace 0 -q
fsck_ok final "$R"
e2e_finish
