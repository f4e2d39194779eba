#!/bin/bash
# e2e_osd_stop (rados only): the cluster's only OSD stops in the middle of a
# take. The take fails within its timeout (exit 1, one message naming the
# rados: repository) instead of hanging; no partial snapshot is visible;
# after the OSD is back the repository passes fsck, the earlier snapshot
# restores exactly, a new take works and gc clears the failed take's
# leftovers. Needs the cluster of tests/ceph-cluster.sh (CEPH_DIR).
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
. "$SRCDIR/tests/admin_lib.sh"
if [ "${CAIRN_TEST_BACKEND:-dir}" != rados ] || [ -z "${CEPH_DIR:-}" ]; then
	echo "SKIP: e2e_osd_stop needs CAIRN_TEST_BACKEND=rados and the cluster of tests/ceph-cluster.sh (CEPH_DIR)"
	exit 77
fi
e2e_start osd_stop
e2e_seed
CLUSTER=(env POOL="$CAIRN_TEST_POOL" bash "$SRCDIR/tests/ceph-cluster.sh")
# whatever happens, the OSD is running again when this test ends
trap '"${CLUSTER[@]}" start-osd >/dev/null 2>&1 || true; e2e_cleanup' EXIT
export CAIRN_RADOS_TIMEOUT=5

R=$(e2e_repo repo)
PFX=${R#rados:*/}
cairn_ok init init --repo "$R" || e2e_finish
export CAIRN_REPO=$R
small_tree "$W/base" "$SEED" 12
SUM=$(tree_sum "$W/base")
take_json base --root "$W/base" --name base || e2e_finish

say "a take of 400 MB; the OSD stops once its first pack is written"
mkdir -p "$W/big"
for i in 1 2 3 4; do head -c 100000000 /dev/urandom > "$W/big/f$i"; done
T0=$(date +%s)
timeout 300 "$CAIRN" take --root "$W/big" --name big > "$LOG/big.out" 2> "$LOG/big.err" & TAKE=$!
stopped=0 held=
# A take may finish its 400 MB in the seconds the OSD takes to stop: the
# take is stopped meanwhile (SIGSTOP), so the outage always lands mid-take.
# SIGSTOP goes to cairn itself, the child of timeout(1), and to timeout.
for _ in $(seq 1 600); do
	if rados -p "$CAIRN_TEST_POOL" ls 2>/dev/null | grep -q "^$PFX/packs/"; then
		held="$TAKE $(pgrep -P "$TAKE" || true)"
		kill -STOP $held 2>/dev/null || break
		"${CLUSTER[@]}" stop-osd
		kill -CONT $held
		stopped=1
		break
	fi
	kill -0 "$TAKE" 2>/dev/null || break
	sleep 0.1
done
set +e; wait "$TAKE"; RC=$?; set -e
T1=$(date +%s)
check "the OSD was stopped while the take ran" [ "$stopped" = 1 ]
check "cairn itself (under timeout) was held meanwhile: pids ${held:-none}" [ "$(wc -w <<< "${held:-}")" = 2 ]
check "the take failed with exit 1 (got $RC) in $((T1 - T0)) s, not hung" [ "$RC" = 1 ]
check "one error line naming the repository: '$(head -c 200 "$LOG/big.err")'" \
	bash -c "one_error_line() { [ \"\$(grep -c '' \"\$1\")\" = 1 ] && grep -q '^cairn: ' \"\$1\"; }; one_error_line '$LOG/big.err' && grep -q 'rados:' '$LOG/big.err'"

"${CLUSTER[@]}" start-osd
say "the repository after the OSD is back"
cairn_ok snaps snapshots --json
check "no snapshot of the failed take" bash -c "! grep -q '\"big\"' '$OUT'"
check "the earlier snapshot is listed" grep -q '"base"' "$OUT"
fsck_ok after-outage "$R"
rm -rf "$W/out"
cairn_ok restore-base restore base "$W/out" -q && check "base restores exactly" [ "$(tree_sum "$W/out")" = "$SUM" ]
small_tree "$W/next" "$((SEED + 1))" 12
take_json next --root "$W/next" --name next || true
cairn_ok gc gc --grace 0 --json
fsck_ok after-gc "$R"
cairn fsck-info fsck
check "no unindexed pack is left after gc" bash -c "! grep -q -E 'in no index segment' '$OUT'"
e2e_finish
