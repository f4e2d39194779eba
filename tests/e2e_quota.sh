#!/bin/bash
# e2e_quota: per-user usage and quotas through the CLI. Identical data under
# two users gives equal usage in either order; a take that fits exactly
# passes and one byte less of quota refuses it (exit 3, nothing committed,
# usage unchanged); forget lowers usage at once; estimate equals what the
# take then adds and writes nothing; two concurrent takes that each fit but
# not together: exactly one commits; a tampered usage record is found.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start quota
e2e_seed

R=$(e2e_repo repo)
usage_of() { # usage_of USER FIELD
	run "usage-$1-$2" "$CAIRN" usage --repo "$R" --user "$1" --json
	"$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[0][sys.argv[2]])' "$OUT" "$2"
}

say "trees: shared data plus data of their own"
for t in t1 t2 a b; do mkdir -p "$W/$t"; rnd "$W/$t/shared" "$SEED" 700000; done
rnd "$W/t1/own" $((SEED + 1)) 300000
rnd "$W/t2/own" $((SEED + 2)) 500000
rnd "$W/a/own" $((SEED + 3)) 1500000
rnd "$W/b/own" $((SEED + 4)) 1500000
cairn_ok init init --repo "$R" --chunk-avg 64K || e2e_finish

say "identical data under two users, in either order"
take_json alice1 --repo "$R" --root "$W/t1" --user alice --name s1 || e2e_finish
take_json bob1 --repo "$R" --root "$W/t1" --user bob --name s1 || e2e_finish
take_json dave1 --repo "$R" --root "$W/t2" --user dave --name s1 || e2e_finish
take_json carol1 --repo "$R" --root "$W/t2" --user carol --name s1 || e2e_finish
UA=$(usage_of alice used_bytes); UB=$(usage_of bob used_bytes)
UC=$(usage_of carol used_bytes); UD=$(usage_of dave used_bytes)
check "alice ($UA) and bob ($UB): equal usage, alice first" [ "$UA" = "$UB" ]
check "dave ($UD) and carol ($UC): equal usage, dave first" [ "$UC" = "$UD" ]
check "usage counts the shared data ($UA > 900000)" [ "$UA" -gt 900000 ]
cairn usage-all usage --repo "$R" --json
check "usage --json lists every user with SPEC's fields" "$PY" -c '
import json, sys
v = json.load(open(sys.argv[1]))
assert [u["user"] for u in v] == ["alice", "bob", "carol", "dave"], v
for u in v:
    assert set(u) == {"user", "used_bytes", "quota_bytes", "snapshots"}, u
    assert u["quota_bytes"] is None and u["snapshots"] == 1, u' "$OUT"

say "exact fit: measure, forget, then quota = need - 1 refuses and quota = need passes"
take_json erin1 --repo "$R" --root "$W/t2" --user erin --name m || e2e_finish
NEED=$(usage_of erin used_bytes)
expect_rc 0 forget-erin forget --repo "$R" "$SNAP"
check "forget: erin's usage drops to 0 at once" [ "$(usage_of erin used_bytes)" = 0 ]
check "forget: erin has no snapshots" [ "$(usage_of erin snapshots)" = 0 ]
expect_rc 0 quota-set1 quota set erin $((NEED - 1)) --repo "$R"
expect_rc 3 take-over take --repo "$R" --root "$W/t2" --user erin --name x
check "the refusal gives needed, used and quota" grep -Eq "needs (at least )?$NEED bytes.*uses 0 of a quota of $((NEED - 1))" "$ERR"
check "refused take: usage unchanged" [ "$(usage_of erin used_bytes)" = 0 ]
cairn snaps-erin snapshots --repo "$R" --user erin --json
check "refused take: no snapshot" "$PY" -c 'import json,sys; assert json.load(open(sys.argv[1])) == []' "$OUT"
expect_rc 0 quota-set2 quota set erin "$NEED" --repo "$R"
expect_rc 0 take-fit take --repo "$R" --root "$W/t2" --user erin --name fits
check "exact fit: usage = quota = $NEED" [ "$(usage_of erin used_bytes)" = "$NEED" ]
cairn quota-show quota show erin --repo "$R" --json
check "quota show erin --json" "$PY" -c '
import json, sys
v = json.load(open(sys.argv[1]))
assert v == [{"user": "erin", "used_bytes": int(sys.argv[2]), "quota_bytes": int(sys.argv[2]), "snapshots": 1}], v' "$OUT" "$NEED"

say "a take refused during the take (early), usage unchanged"
expect_rc 0 quota-set3 quota set erin $((NEED + 1000)) --repo "$R"
expect_rc 3 take-early take --repo "$R" --root "$W/a" --user erin --name big --json
check "error event says quota_exceeded" grep -q '"code":"quota_exceeded"' "$OUT"
check "early refusal: usage unchanged" [ "$(usage_of erin used_bytes)" = "$NEED" ]
check "early refusal: still one snapshot" [ "$(usage_of erin snapshots)" = 1 ]

say "estimate against the real take, on a tree with shared and new data"
mkdir -p "$W/t3"; cp "$W/t1/shared" "$W/t3/shared"; rnd "$W/t3/new" $((SEED + 5)) 400000
repo_ls "$R" | grep -v '^locks/' > "$W/before"
cairn est estimate --repo "$R" --root "$W/t3" --user alice --json
EST=$(json_get "$OUT" - added_bytes || echo missing)
repo_ls "$R" | grep -v '^locks/' > "$W/after"
check "estimate writes nothing" cmp -s "$W/before" "$W/after"
check "estimate --json has SPEC's fields" "$PY" -c '
import json, sys
v = json.load(open(sys.argv[1]))
assert {"user", "added_bytes", "used_bytes", "quota_bytes", "fits"} <= set(v) and v["fits"] is True, v' "$OUT"
U0=$(usage_of alice used_bytes)
take_json alice2 --repo "$R" --root "$W/t3" --user alice --name s2 || e2e_finish
U1=$(usage_of alice used_bytes)
check "estimate ($EST) = what the take added ($((U1 - U0))), shared data not counted again" \
	[ "$EST" = $((U1 - U0)) -a "$EST" -lt 700000 ]

say "two concurrent takes that each fit but not together: exactly one commits"
expect_rc 0 quota-frank quota set frank 2400000 --repo "$R"
"$CAIRN" take --repo "$R" --root "$W/a" --user frank --name ca > "$LOG/ca.out" 2> "$LOG/ca.err" & PA=$!
"$CAIRN" take --repo "$R" --root "$W/b" --user frank --name cb > "$LOG/cb.out" 2> "$LOG/cb.err" & PB=$!
set +e; wait $PA; RA=$?; wait $PB; RB=$?; set -e
check "exit codes $RA and $RB: one 0, one 3" [ "$((RA + RB))" = 3 -a "$((RA * RB))" = 0 ]
check "frank has one snapshot" [ "$(usage_of frank snapshots)" = 1 ]
check "frank's usage within the quota" [ "$(usage_of frank used_bytes)" -le 2400000 ]

say "a tampered usage record is found"
if "$CAIRN" help fsck > /dev/null 2>&1; then
	expect_rc 0 fsck-clean fsck --repo "$R"
	TOP=$(repo_ls "$R" users/alice/log | cut -d' ' -f1 | sort | tail -n1)
	repo_rm "$R" "$TOP"
	expect_rc 4 fsck-tampered fsck --repo "$R"
	check "fsck names user alice" grep -q alice "$OUT" "$ERR"
else
	echo "   (no fsck command in this build: quota_verify is covered by test_quota)"
fi
e2e_finish
