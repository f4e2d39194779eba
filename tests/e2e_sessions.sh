#!/bin/bash
# e2e_sessions: what writes a gc session, and what gc leaves of writers.
#  - short reads (snapshots, info, ls, diff, stats, usage, quota show)
#    write nothing: they run with every write made to crash, and as a user
#    who cannot write, on a repository nobody can write (cat too);
#  - a writer's temporary files are safe from gc --grace 0 run over and
#    over, whatever their age: quota set and forget with every fsync slowed
#    (strace) succeed beside a loop of gcs; a killed writer's are removed.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start sessions
e2e_seed
e2e_local || { echo "SKIP: looks at the repository's files (tmp/, modes)"; exit 77; }

R=$W/repo
cairn_ok init init --repo "$R" || e2e_finish
export CAIRN_REPO=$R
mkdir -p "$W/src/d"
head -c 200000 /dev/urandom > "$W/src/d/f"
echo small > "$W/src/g"
take_json a --root "$W/src" --name a || e2e_finish
echo more >> "$W/src/g"
take_json b --root "$W/src" --name b || e2e_finish

say "short reads write nothing (every write would crash, exit 99)"
for c in "snapshots" "info a" "ls a d" "diff a b" "stats" "usage" "quota show"; do
	# shellcheck disable=SC2086
	run "crash-${c%% *}" env CAIRN_FAULT=write:1:CRASH "$CAIRN" $c
	check "$c: exit 0 without a write (got $RC)" test "$RC" = 0
done
check "no session left behind" test -z "$(ls "$R/gc/sessions" 2>/dev/null)"

say "... and run on a repository nobody can write, as a user who cannot write"
chmod -R a-w "$R"
chmod a+rx "$W"
for c in "snapshots" "info a" "ls a d" "cat a g" "diff a b" "usage"; do
	RC=0
	# shellcheck disable=SC2086
	setpriv --reuid=nobody --regid=nogroup --clear-groups env CAIRN_STATE_DIR=/nonexistent "$CAIRN" $c --repo "$R" \
		> "$LOG/ro.out" 2> "$LOG/ro.err" || RC=$?
	check "read-only, as nobody: $c exits 0 with nothing on stderr (got $RC: $(head -c 200 "$LOG/ro.err"))" \
		test "$RC" = 0 -a ! -s "$LOG/ro.err"
done
chmod -R u+w "$R"

say "writers' temporary files beside gc --grace 0 in a loop"
if ! command -v strace > /dev/null || ! strace -o /dev/null true 2> /dev/null; then
	echo "no strace (or no ptrace here): the race is not tried"
else
	# LeakSanitizer (sanitizer builds) cannot work under ptrace
	NOLEAK=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
	gc_loop() {
		while [ ! -e "$W/stop" ]; do "$CAIRN" gc --grace 0 --wait 60 -q > /dev/null 2>> "$LOG/gc-loop.err" || true; done
	}
	# slow WHAT ARGS: the command with each fsync 0.3 s late, so that its
	# temporary files live across many gc runs
	slow() {
		local label=$1
		shift
		run "$label" env ASAN_OPTIONS="$NOLEAK" strace -f -o /dev/null -e trace=fsync -e inject=fsync:delay_enter=300000 "$CAIRN" "$@"
	}
	rm -f "$W/stop"
	gc_loop &
	GCL=$!
	slow slow-quota quota set u1 5M
	check "quota set beside gc --grace 0: exit 0 (got $RC: $(head -c 300 "$ERR"))" test "$RC" = 0
	slow slow-forget forget a
	check "forget beside gc --grace 0: exit 0 (got $RC: $(head -c 300 "$ERR"))" test "$RC" = 0
	echo again >> "$W/src/g"
	slow slow-take take --root "$W/src" --name c -q
	check "take beside gc --grace 0: exit 0 (got $RC: $(head -c 300 "$ERR"))" test "$RC" = 0
	touch "$W/stop"
	wait "$GCL"
	check "quota set took effect" grep -q '5242880' <("$CAIRN" quota show --json)
	check "forget took effect" test -z "$("$CAIRN" snapshots --json | "$PY" -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin) if s["name"] == "a"))')"
	fsck_out=$("$CAIRN" fsck 2>&1) && ok "fsck passes" || { fail "fsck passes"; echo "$fsck_out" | head; }

	say "a killed writer's temporary file goes at the next gc"
	ASAN_OPTIONS=$NOLEAK strace -f -o /dev/null -e trace=fsync -e inject=fsync:delay_enter=3000000 "$CAIRN" quota set u2 7M \
		> /dev/null 2>&1 &
	SP=$!
	n=0
	until [ -n "$(ls "$R/tmp")" ] || [ $n -ge 100 ]; do sleep 0.05; n=$((n + 1)); done
	check "the writer has a temporary file ($(ls "$R/tmp" | head -n1))" test -n "$(ls "$R/tmp")"
	cairn_ok gc-live gc --grace 0 --json
	check "gc keeps it while its writer runs" test -n "$(ls "$R/tmp")"
	pkill -KILL -P "$SP" 2>/dev/null || true
	kill -KILL "$SP" 2>/dev/null || true
	wait "$SP" 2>/dev/null || true
	sleep 0.2
	cairn_ok gc-dead gc --grace 0 --json
	check "gc removed the dead writer's ($(json_get "$OUT" - tmp_deleted) deleted)" test -z "$(ls "$R/tmp")"
fi
e2e_finish
