#!/bin/bash
# e2e_freeze_guard: an instance is never left frozen, whatever kills the take.
#  - the controller's cgroup is killed (cgroup.kill, as `systemctl stop`
#    does) while the instance is frozen: the guardian, moved out of it into
#    a cgroup of its own before the freeze, survives and thaws within 1 s;
#  - the take and its guardian both SIGKILLed: the freeze record left in
#    the state directory makes `cairn recover` (and the next command) thaw;
#    a record whose take runs is left alone;
#  - the guardian killed while frozen: the take fails cleanly (thawed,
#    one error line, exit 1, nothing committed);
#  - --max-pause exceeded: one stderr line, not the guardian's as well.
# On cgroup v2, and the v1 freezer when the host has one.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start freeze_guard
e2e_seed

. "$SRCDIR/tests/freeze_lib.sh"
if [ -z "$V2" ] || ! cg_new "$V2" probe 2>/dev/null || [ ! -e "$CG/cgroup.kill" ]; then
	echo "SKIP: no cgroup v2 hierarchy with cgroup.kill (the controller's group is killed with it)"
	exit 77
fi

thawed_within() { # thawed_within CG MS: prints the ms it took, or -1
	local t0 i
	t0=$(date +%s%N)
	for i in $(seq 400); do
		if [ "$(frozen "$1")" = 0 ]; then echo $(( ($(date +%s%N) - t0) / 1000000 )); return; fi
		[ $(( ($(date +%s%N) - t0) / 1000000 )) -le "$2" ] || break
		sleep 0.005
	done
	echo -1
}

ROOT=$W/root
mkdir -p "$ROOT/data"
say "setup: 640 MiB of random data, so that a take on one thread stays frozen for a few seconds"
head -c 640M /dev/urandom > "$ROOT/data/blob"
R=$W/repo
"$CAIRN" init --repo "$R" > /dev/null
cg_new "$V2" controller
CTL=$CG

# start_instance BASE KIND: a process looping in a fresh group; sets INST
start_instance() {
	cg_new "$1" "inst-$2-$RANDOM"
	INST=$CG
	bash -c 'echo $$ > "$0/cgroup.procs" && exec bash -c "while :; do :; done"' "$INST" &
	PIDS+=($!)
	local n=0
	until [ "$(grep -c '' "$INST/cgroup.procs")" -ge 1 ]; do sleep 0.02; n=$((n + 1)); [ $n -lt 250 ] || exit 1; done
}
# slow_take LABEL [ARGS]: a take of the instance started inside the controller group; sets TPID
slow_take() {
	local label=$1
	shift
	bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CTL" "$CAIRN" take --repo "$R" --root "$ROOT" --name "$label" \
		--cgroup "$INST" --threads 1 --no-precopy --no-parent --json "$@" > "$LOG/$label.out" 2> "$LOG/$label.err" &
	TPID=$!
	PIDS+=($TPID)
	wait_state "$LOG/$label.out" paused || { fail "$label: paused within 10 s"; show "$LOG/$label.err"; }
	sleep 0.1
	GPID=$(pgrep -P "$TPID" -x cairn-guardian || true)
}
# kill_both: SIGKILL the take and its guardian; both stopped first, so that
# neither sees the other die (and thaws) before its own signal lands
kill_both() {
	kill -STOP ${GPID:+"$GPID"} "$TPID"
	kill -KILL "$TPID" ${GPID:+"$GPID"}
}
records() { ls "$CAIRN_STATE_DIR/freezes" 2>/dev/null | grep -vc '\.tmp$' || true; }

scenarios() {
	local kind=$1 base=$2 ms
	say "$kind: the controller's cgroup killed while the instance is frozen"
	start_instance "$base" "$kind"
	slow_take "$kind-kill"
	check "$kind: frozen, with a guardian ($GPID)" test "$(frozen "$INST")" = 1 -a -n "$GPID"
	check "$kind: the guardian left the controller's group ($(cat /proc/${GPID:-0}/cgroup 2>/dev/null | tr '\n' ' '))" \
		bash -c '! grep -qx "$1" "$2/cgroup.procs" && grep -q "cairn-guardian" "/proc/$1/cgroup"' _ "${GPID:-0}" "$CTL"
	check "$kind: a freeze record while frozen" test "$(records)" = 1
	echo 1 > "$CTL/cgroup.kill"
	ms=$(thawed_within "$INST" 1000)
	check "$kind: thawed within 1000 ms of the kill (after $ms ms)" test "$ms" -ge 0
	wait "$TPID" 2>/dev/null || true
	local n=0 # the guardian says it after the thaw: until it has exited
	while [ -n "$GPID" ] && [ -e "/proc/$GPID" ] && ! grep -q '^Z' <(ps -o stat= -p "$GPID") && [ $n -lt 100 ]; do
		sleep 0.01
		n=$((n + 1))
	done
	check "$kind: the guardian said so" grep -q 'guardian: cairn exited' "$LOG/$kind-kill.err"
	check "$kind: the guardian removed the record" test "$(records)" = 0
	check "$kind: nothing committed" test "$(snapshot_count "$R")" = 0

	say "$kind: take and guardian both SIGKILLed: recover thaws; a running take's record is kept"
	local inst1=$INST live_pid live_gpid
	start_instance "$base" "$kind-b"
	slow_take "$kind-live"
	live_pid=$TPID live_gpid=$GPID
	INST=$inst1
	slow_take "$kind-both"
	kill_both
	wait "$TPID" 2>/dev/null || true
	sleep 0.3
	check "$kind: still frozen with both dead" test "$(frozen "$inst1")" = 1
	check "$kind: both records there" test "$(records)" = 2
	INST=${CGS[${#CGS[@]}-1]} TPID=$live_pid GPID=$live_gpid
	cairn "$kind-recover" recover --json
	check "$kind: recover exits 0 (got $RC)" test "$RC" = 0
	check "$kind: recover thawed the dead take's group" test "$(frozen "$inst1")" = 0
	check "$kind: recover left the running take's group frozen" test "$(frozen "$INST")" = 1
	check "$kind: recover says what it did" "$PY" -c '
import json, sys
v = {r["cgroup"]: r["action"] for r in json.load(open(sys.argv[1]))}
sys.exit(0 if v.get(sys.argv[2]) == "thawed" and v.get(sys.argv[3]) == "kept" else "got %r" % v)' "$OUT" "$inst1" "$INST"
	check "$kind: one record left (the running take's)" test "$(records)" = 1

	say "$kind: the guardian killed while frozen: the take fails cleanly"
	kill -KILL "$GPID"
	local rc=0
	wait "$TPID" || rc=$?
	check "$kind: exit 1 (got $rc)" test "$rc" = 1
	check "$kind: thawed" test "$(frozen "$INST")" = 0
	check "$kind: one error line naming the guardian ($(head -c 200 "$LOG/$kind-live.err"))" \
		bash -c 'grep -q "guardian process .* died" "$1" && [ "$(grep -c "" "$1")" = 1 ]' _ "$LOG/$kind-live.err"
	check "$kind: nothing committed" test "$(snapshot_count "$R")" = 0
	check "$kind: no record left" test "$(records)" = 0

	say "$kind: the next command thaws what a dead take left frozen"
	slow_take "$kind-next"
	kill_both
	wait "$TPID" 2>/dev/null || true
	check "$kind: frozen with both dead" test "$(frozen "$INST")" = 1
	cairn "$kind-ls" snapshots --repo "$R"
	check "$kind: snapshots exits 0 (got $RC)" test "$RC" = 0
	check "$kind: ... and thawed the group" test "$(frozen "$INST")" = 0
	check "$kind: ... saying so on stderr" grep -q "thawed (take .* died" "$ERR"
	check "$kind: no record left" test "$(records)" = 0

	say "$kind: no freeze without its record: a state directory that cannot be made"
	: > "$W/not-a-dir"
	RC=0
	CAIRN_STATE_DIR=$W/not-a-dir/state "$CAIRN" take --repo "$R" --root "$ROOT" --name nr --cgroup "$INST" --json \
		> "$LOG/$kind-norec.out" 2> "$LOG/$kind-norec.err" || RC=$?
	check "$kind: exit 1 (got $RC), one line naming the record ($(head -c 200 "$LOG/$kind-norec.err"))" \
		bash -c '[ "$1" = 1 ] && grep -q "not frozen: freeze record" "$2" && [ "$(grep -c "" "$2")" = 1 ]' _ "$RC" "$LOG/$kind-norec.err"
	check "$kind: never suspended" bash -c '! grep -q suspending "$1"' _ "$LOG/$kind-norec.out"
	check "$kind: not frozen" test "$(frozen "$INST")" = 0

	say "$kind: --max-pause exceeded: one stderr line"
	cairn "$kind-max" take --repo "$R" --root "$ROOT" --name m --cgroup "$INST" --threads 1 --no-precopy --no-parent --max-pause 1
	check "$kind: --max-pause: exit 1 (got $RC)" test "$RC" = 1
	check "$kind: --max-pause: one line ($(tr '\n' '|' < "$ERR" | head -c 300))" one_error_line "$ERR"
	check "$kind: --max-pause: thawed" test "$(frozen "$INST")" = 0
}

scenarios v2 "$V2"
if [ -n "$V1" ] && mkdir "$V1/cairn-e2e-$$-probe" 2>/dev/null; then
	rmdir "$V1/cairn-e2e-$$-probe"
	scenarios v1 "$V1"
else
	echo "no v1 freezer hierarchy: v1 not tried"
fi

say "a non-root take that fails: one line (no notice about a state directory it cannot read)"
fails_in_one_line() { [ "$1" = 1 ] && one_error_line "$2"; }
if command -v setpriv > /dev/null; then
	mkdir -p "$W/nr" "$W/locked"
	echo x > "$W/nr/a"
	echo y > "$W/nr/secret"
	chmod 600 "$W/nr/secret"
	chmod 700 "$W/locked"
	chmod -R a+rwX "$R"
	chmod a+rx "$W" "$W/nr"
	RC=0
	CAIRN_STATE_DIR=$W/locked/state setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$CAIRN" take --repo "$R" --root "$W/nr" --name nr > "$LOG/nonroot.out" 2> "$LOG/nonroot.err" || RC=$?
	check "non-root take of an unreadable file, state directory unreadable: exit 1, one line ($(tr '\n' '|' < "$LOG/nonroot.err"))" \
		fails_in_one_line "$RC" "$LOG/nonroot.err"
fi
e2e_finish
