#!/bin/bash
# e2e_index: the chunk index stays on storage and its segment count bounded.
#  - every take adds a segment; once there are more than 8, a take's commit
#    merges the small ones (new segment first), so the count never passes 9;
#  - while gc holds its lock, takes do not merge (and still commit);
#  - every snapshot restores exactly and fsck passes after the merges;
#  - a segment of the old layout (version 1) is refused by name.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
. "$SRCDIR/tests/admin_lib.sh"
e2e_start index
e2e_seed

R=$(e2e_repo repo)
cairn_ok init init --repo "$R" --chunk-avg 16K || e2e_finish
export CAIRN_REPO=$R
segments() { repo_ls "$R" index | wc -l; }

small_tree "$W/t" "$SEED" 8
declare -A SUM SNAPS
max=0
say "10 takes, each adding files"
for i in $(seq 1 10); do
	small_tree "$W/t/add$i" "$((SEED + i))" 3
	take_json "take$i" --root "$W/t" --name "t$i" || e2e_finish
	SNAPS[$i]=$SNAP
	SUM[$i]=$(tree_sum "$W/t")
	n=$(segments)
	[ "$n" -gt "$max" ] && max=$n
done
check "segment count stayed at most 9 (max $max)" [ "$max" -le 9 ]
check "segments were merged (now $(segments))" [ "$(segments)" -lt 9 ]

say "every snapshot restores exactly after the merges"
for i in 1 5 10; do
	rm -rf "$W/out"
	if cairn_ok "restore$i" restore "${SNAPS[$i]}" "$W/out" -q; then
		check "t$i restores exactly" [ "$(tree_sum "$W/out")" = "${SUM[$i]}" ]
	fi
done
rm -rf "$W/out"
fsck_ok merged "$R"

if e2e_local; then
	say "no merge while gc holds its lock"
	# copies of a segment (an entry in two segments is allowed) make many
	seg=$(ls "$R/index" | head -n1)
	for k in 1 2 3 4 5 6 7 8; do cp "$R/index/$seg" "$R/index/$(printf '%031x%x' 0 "$k")"; done
	before=$(segments)
	printf '%s %s %s %s\n' 0123456789abcdef0123456789abcdef "$(hostname)" "$$" \
		"$(( $(date +%s) * 1000 + 600000 ))" > "$R/locks/gc"
	small_tree "$W/t/add11" "$((SEED + 11))" 2
	take_json locked --root "$W/t" --name t11 || e2e_finish
	check "a take under gc's lock commits and merges nothing" [ "$(segments)" = "$((before + 1))" ]
	rm -f "$R/locks/gc"
	small_tree "$W/t/add12" "$((SEED + 12))" 2
	take_json unlocked --root "$W/t" --name t12 || e2e_finish
	SUM12=$(tree_sum "$W/t")
	check "the next take merges ($(segments) left)" [ "$(segments)" -lt 9 ]
	rm -rf "$W/out"
	if cairn_ok restore12 restore "$SNAP" "$W/out" -q; then
		check "t12 restores exactly" [ "$(tree_sum "$W/out")" = "$SUM12" ]
	fi
	rm -rf "$W/out"
	fsck_ok unlocked "$R"

	say "an index segment of the old layout is refused by name"
	seg=$(ls "$R/index" | head -n1)
	cp -a "$R" "$W/old"
	printf '\001' | dd of="$W/old/index/$seg" bs=1 seek=8 conv=notrunc status=none
	expect_rc 4 old-layout snapshots --repo "$W/old"
	check "the message names the segment and its layout" grep -q "index/$seg.*layout 1" "$ERR"
fi
e2e_finish
