#!/bin/bash
# e2e_faults: through engine io's fault injection, the Nth write, fsync or
# rename fails with EIO, ENOSPC, or a short write, during take and during
# gc: the command fails (exit 1) with one clear line naming the object and
# the error, or succeeds; either way the repository stays valid (fsck
# passes) and every committed snapshot restores exactly.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
. "$SRCDIR/tests/admin_lib.sh"
e2e_start faults
e2e_seed
RANDOM=$SEED

R=$W/repo
small_tree "$W/a" "$SEED" 12
SUM_A=$(tree_sum "$W/a")
cairn_ok init init --repo "$R" --chunk-avg 16K || e2e_finish
export CAIRN_REPO=$R
take_json base --root "$W/a" --name base || e2e_finish
BASE=$SNAP

valid() { # valid LABEL: fsck passes and base restores exactly
	cairn "fsck-$1" fsck -q
	[ "$RC" = 0 ] || { fail "$1: fsck passes after the failure (exit $RC)"; show "$OUT"; return; }
	rm -rf "$W/out"
	"$CAIRN" restore "$BASE" "$W/out" -q >/dev/null 2>&1 && [ "$(tree_sum "$W/out")" = "$SUM_A" ] ||
		fail "$1: the committed snapshot restores exactly"
	rm -rf "$W/out"
}

FAILED_CLEANLY=0
for spec in write:1:EIO write:3:ENOSPC write:5:SHORT write:8:EIO fsync:2:EIO fsync:4:ENOSPC \
            fsync:7:EIO rename:2:EIO rename:3:ENOSPC rename:5:EIO write:$((RANDOM % 9 + 2)):SHORT \
            fsync:$((RANDOM % 9 + 2)):EIO; do
	echo "x$RANDOM" >> "$W/a/d0/e0/f$SEED-0"
	run "take-$spec" env CAIRN_FAULT="$spec" "$CAIRN" take --root "$W/a" --name "t-$spec" -q
	RC_T=$RC
	if [ "$RC_T" = 0 ]; then
		ok "take with $spec: the fault missed it, exit 0"
	elif [ "$RC_T" = 1 ] && one_error_line "$ERR" && grep -q -E 'Input/output error|No space left on device' "$ERR"; then
		ok "take with $spec: exit 1, '$(head -c 160 "$ERR")'"
		FAILED_CLEANLY=$((FAILED_CLEANLY + 1))
		check "take with $spec: no snapshot named t-$spec" bash -c "! '$CAIRN' snapshots | grep -q 't-$spec'"
	else
		fail "take with $spec: exit 1 with one line naming the error (got $RC_T)"; show "$ERR"
	fi
	valid "take-$spec"
	"$CAIRN" forget "t-$spec" >/dev/null 2>&1 || true
	run "gc-$spec" env CAIRN_FAULT="$spec" "$CAIRN" gc --grace 0 -q
	if [ "$RC" = 0 ] || { [ "$RC" = 1 ] && one_error_line "$ERR"; }; then
		ok "gc with $spec: exit $RC $(head -c 160 "$ERR")"
	else
		fail "gc with $spec: exit 0, or 1 with one line (got $RC)"; show "$ERR"
	fi
	valid "gc-$spec"
done
check "most injected faults made the take fail cleanly ($FAILED_CLEANLY)" [ "$FAILED_CLEANLY" -ge 6 ]

# The gc session's own temporary file is protected by nothing until it is
# renamed into place (a gc without grace may take it): registering tries
# up to four times, then fails cleanly.
echo "x$RANDOM" >> "$W/a/d0/e0/f$SEED-0"
run take-session-retry env CAIRN_FAULT=rename:1:EIO,rename:2:EIO "$CAIRN" take --root "$W/a" --name t-retry -q
check "a session registration that fails twice is tried again: exit 0 (got $RC)" [ "$RC" = 0 ]
run take-session-fails env CAIRN_FAULT=rename:1:EIO,rename:2:EIO,rename:3:EIO,rename:4:EIO "$CAIRN" take --root "$W/a" --name t-noreg -q
check "four failures: exit 1, one line naming the session ($(head -c 160 "$ERR"))" \
	bash -c '[ "$1" = 1 ] && grep -q "cannot register a session: gc/sessions/" "$2" && [ "$(grep -c "" "$2")" = 1 ]' _ "$RC" "$ERR"
valid session-retry

# A store that fails to answer (an OSD down, a disk error) while the session
# is checked is not a gc: each stat a take makes fails in turn, and every
# failure names the error, never "removed by gc" (e2e_osd_stop_rados did).
echo "x$RANDOM" >> "$W/a/d0/e0/f$SEED-0"
STAT_FAILS=0 SESSION_STAT=0 STAT_BAD=
for n in $(seq 1 60); do
	run "take-stat-$n" env CAIRN_FAULT="stat:$n:EIO" "$CAIRN" take --root "$W/a" --name "t-stat-$n" -q
	[ "$RC" = 0 ] && break
	STAT_FAILS=$((STAT_FAILS + 1))
	if ! { [ "$RC" = 1 ] && one_error_line "$ERR" && grep -q 'stat: Input/output error' "$ERR" &&
	       ! grep -q 'removed by gc' "$ERR"; }; then
		STAT_BAD="$STAT_BAD $n:$RC:$(head -c 200 "$ERR")"
	fi
	grep -q 'session gc/sessions/[0-9a-f]*: cannot refresh: ' "$ERR" && SESSION_STAT=$((SESSION_STAT + 1))
done
check "a take failed at each of its $STAT_FAILS stats with exit 1 and the stat's error (${STAT_BAD:-all did})" \
	[ -z "$STAT_BAD" ]
check "the take succeeded once past its stats (exit $RC after $STAT_FAILS failures)" \
	bash -c '[ "$1" = 0 ] && [ "$2" -ge 2 ]' _ "$RC" "$STAT_FAILS"
check "a failed stat of the session says it cannot be refreshed ($SESSION_STAT takes)" [ "$SESSION_STAT" -ge 1 ]
valid session-stat

# Storage faults through the wrapping backend (store.OP:N:ERR), which any
# backend gets: every one of a take's puts and commits failing in turn
# fails it cleanly (exit 1, one line naming the object and the injected
# fault) or is retried past; restore's reads failing is damage or I/O
# (never a restored tree with wrong bytes).
STORE_BAD= STORE_FAILED=0
for spec in store.put:1:EIO store.put:2:EIO store.commit:1:EIO store.get:1:EIO store.size:3:EIO store.list:1:EIO; do
	echo "s$RANDOM" >> "$W/a/d0/e0/f$SEED-0"
	run "take-$spec" env CAIRN_FAULT="$spec" "$CAIRN" take --root "$W/a" --name "t-$spec" -q
	if [ "$RC" != 0 ] && ! { [ "$RC" = 1 ] || [ "$RC" = 4 ] || [ "$RC" = 6 ]; } || { [ "$RC" != 0 ] && ! one_error_line "$ERR"; }; then
		STORE_BAD="$STORE_BAD $spec:$RC:$(head -c 200 "$ERR")"
	fi
	[ "$RC" != 0 ] && ! grep -q 'injected fault' "$ERR" && STORE_BAD="$STORE_BAD $spec:unnamed"
	[ "$RC" != 0 ] && STORE_FAILED=$((STORE_FAILED + 1))
	valid "take-$spec"
done
check "takes under storage faults fail cleanly, naming the fault (${STORE_BAD:-all did})" [ -z "$STORE_BAD" ]
check "storage faults reached the takes ($STORE_FAILED of 6 failed)" [ "$STORE_FAILED" -ge 3 ]
RESTORE_BAD=
for n in 1 2 3; do
	rm -rf "$W/out"
	run "restore-range-$n" env CAIRN_FAULT="store.range:$n:EIO" "$CAIRN" restore "$BASE" "$W/out" -q
	if [ "$RC" = 0 ]; then
		[ "$(tree_sum "$W/out")" = "$SUM_A" ] || RESTORE_BAD="$RESTORE_BAD $n:wrong-bytes"
	elif ! { [ "$RC" = 1 ] || [ "$RC" = 4 ]; } || ! one_error_line "$ERR" || ! grep -q 'injected fault' "$ERR"; then
		RESTORE_BAD="$RESTORE_BAD $n:$RC:$(head -c 200 "$ERR")"
	fi
done
rm -rf "$W/out"
check "restores under read faults fail naming the fault, never with wrong bytes (${RESTORE_BAD:-all did})" [ -z "$RESTORE_BAD" ]
run "bad-store-fault" env CAIRN_FAULT="store.teleport:1:EIO" "$CAIRN" snapshots
check "an unknown storage op in CAIRN_FAULT is a usage error (exit $RC)" [ "$RC" = 2 ]
cairn_ok gc-clean gc --grace 0 -q
valid final
e2e_finish
