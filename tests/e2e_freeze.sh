#!/bin/bash
# e2e_freeze: take of a live instance. A workload (a loop writing a counter
# to one file and appending it to another, and a process creating and
# removing files beside it) runs in a fresh cgroup; takes
# with --cgroup freeze it (cgroup v2 and the v1 freezer), give SPEC's event
# order, capture one instant, resume or release it; failures, SIGTERM,
# --max-pause and a SIGKILL of cairn (the guardian) all leave it thawed with
# nothing committed. Also a root of /proc/PID/root of a process in its own
# mount namespace.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start freeze
e2e_seed

# ---- cgroups: what this machine has ------------------------------------------
. "$SRCDIR/tests/freeze_lib.sh"
if [ -n "$V2" ] && cg_new "$V2" probe && [ -e "$CG/cgroup.freeze" ]; then :; else V2=; fi
if [ -n "$V1" ] && cg_new "$V1" probe && [ -e "$CG/freezer.state" ]; then :; else V1=; fi
if [ -z "$V2" ] && [ -z "$V1" ]; then
	echo "SKIP: neither a cgroup v2 hierarchy with cgroup.freeze nor a v1 freezer hierarchy can be used here"
	exit 77
fi
echo "cgroup v2: ${V2:-none}; v1 freezer: ${V1:-none}"


ROOT=$W/root
mkdir -p "$ROOT/state" "$ROOT/big" "$ROOT/mid"
cat > "$W/workload.sh" <<'EOF'
# the instance: a counter in a, appended to b; builtins only, so it is fast.
# Beside it a second process creates c/fJ and removes c/f(J-3): files
# come and go while the take walks. It ends with the loop below ($$ is the
# loop's pid) and never holds the test's output open.
mkdir -p "$1/c"
(
	j=0
	while kill -0 $$; do
		j=$((j + 1))
		echo $j > "$1/c/f$j" || exit 0
		[ $j -le 3 ] || rm -f "$1/c/f$((j - 3))"
	done
) > /dev/null 2>&1 &
i=0
while :; do
	i=$((i + 1))
	echo $i > "$1/a"
	echo $i >> "$1/b"
	printf '%08d\n' $i > "$1/m"
	touch -d @1000000000 "$1/m"
done
EOF

# start_workload CG DIR: the loop, started inside CG; sets WPID
start_workload() {
	mkdir -p "$2"
	bash -c 'echo $$ > "$0/cgroup.procs" && exec bash "$1" "$2"' "$1" "$W/workload.sh" "$2" &
	WPID=$!
	PIDS+=("$WPID")
	local n=0
	until [ -s "$2/a" ] && [ "$(procs "$1")" -ge 1 ]; do
		sleep 0.05
		n=$((n + 1))
		[ $n -lt 100 ] || { echo "workload did not start in $1"; exit 1; }
	done
}

# advancing DIR: the counter moves within half a second
advancing() {
	local a b
	a=$(wc -l < "$1/b")
	sleep 0.5
	b=$(wc -l < "$1/b")
	[ "$b" -gt "$a" ]
}

# events FILE: the take's JSON events, progress left out, as "event:state" words
events() {
	"$PY" - "$1" <<'EOF'
import json, sys
out = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    o = json.loads(line)
    if o["event"] == "progress":
        continue
    out.append(o["event"] + (":" + o["state"] if o["event"] == "state" else ""))
print(" ".join(out))
EOF
}

# consistent REPO SNAP DIR: the snapshot's a, b and m are from one instant:
# b holds 1..n in order and a is n, or n+1 (frozen between the two
# writes), or empty (frozen between truncating and writing a); m, rewritten
# after b with the same size and mtime each time (only its ctime tells a
# change), is n or n-1, or empty. A stale m (a copy reused though the file
# changed) fails.
consistent() {
	"$CAIRN" cat --repo "$1" "$2" "$3/a" > "$W/snap-a"
	"$CAIRN" cat --repo "$1" "$2" "$3/b" > "$W/snap-b"
	"$CAIRN" cat --repo "$1" "$2" "$3/m" > "$W/snap-m" 2> /dev/null || : > "$W/snap-m"
	"$PY" - "$W/snap-a" "$W/snap-b" "$W/snap-m" <<'EOF'
import sys
a = open(sys.argv[1]).read().strip()
b = open(sys.argv[2]).read().split("\n")
m = open(sys.argv[3]).read().strip()
if b and b[-1] == "":
    b.pop()
n = len(b)
if b != [str(i) for i in range(1, n + 1)]:
    sys.exit("b is not 1..n (a write was caught half-way?)")
if a not in ("", str(n), str(n + 1)):
    sys.exit("a=%s but b ends at %d: not one instant" % (a, n))
if m and int(m) not in (n, n - 1):
    sys.exit("m=%s but b ends at %d: not one instant (a stale copy?)" % (m, n))
print("a=%s b ends at %d m=%s" % (a or "''", n, m or "''"))
EOF
}

# churn_consistent REPO SNAP DIR: the snapshot's DIR/c is one instant of the
# churn loop: a run of consecutive fJ (three, or four between a create and
# the remove after it), each holding its own J, the newest maybe still empty
churn_consistent() {
	"$CAIRN" ls --repo "$1" "$2" "$3/c" > "$W/churn-ls" || return 1
	local f
	: > "$W/churn-content"
	for f in $(cat "$W/churn-ls"); do
		printf '%s %s\n' "$f" "$("$CAIRN" cat --repo "$1" "$2" "$3/c/$f")" >> "$W/churn-content"
	done
	"$PY" - "$W/churn-content" <<'EOF'
import sys
rows = [l.rstrip("\n").split(" ", 1) + [""] for l in open(sys.argv[1]) if l.strip()]
nums = sorted(int(r[0][1:]) for r in rows)
if not nums:
    sys.exit("c/ is empty")
if nums != list(range(nums[0], nums[0] + len(nums))) or len(nums) not in (3, 4):
    sys.exit("files %s are not one instant of the churn" % nums)
for r in rows:
    j = int(r[0][1:])
    if r[1] != str(j) and not (j == nums[-1] and r[1] == ""):
        sys.exit("%s holds %r" % (r[0], r[1]))
print("c/ holds f%d..f%d" % (nums[0], nums[-1]))
EOF
}

# (/mid was 48 MiB, then 128 MiB: each time the engine got faster, that take
# got too quick for the 0.4 s sampling below; keep a wide margin)
say "setup: fresh random data, so that a first take stays paused for a while (384 MiB in /mid, 160 MiB in /big)"
head -c 384M /dev/urandom > "$ROOT/mid/data"
head -c 160M /dev/urandom > "$ROOT/big/data"

# ---- the main scenarios, on each kind of cgroup -------------------------------
scenarios() {
	local kind=$1 base=$2 CG S R
	cg_new "$base" "$kind"
	S=$ROOT/state/$kind
	start_workload "$CG" "$S"
	check "$kind: the workload runs before the take" advancing "$S"

	say "$kind: a slow take (--threads 1, new data, --no-precopy): frozen while paused, one instant captured"
	R=$W/repo-$kind-paused
	"$CAIRN" init --repo "$R" > /dev/null
	"$CAIRN" take --repo "$R" --root "$ROOT" --exclude /big --name live --cgroup "$CG" --threads 1 --no-precopy --json \
		> "$LOG/$kind-paused.out" 2> "$LOG/$kind-paused.err" &
	local cpid=$! c1 c2 f still
	if wait_state "$LOG/$kind-paused.out" paused; then
		c1=$(wc -l < "$S/b")
		sleep 0.4
		c2=$(wc -l < "$S/b")
		f=$(frozen "$CG")
		still=$(grep -c '"saved"' "$LOG/$kind-paused.out" || true)
		check "$kind: the take was still paused while sampling" test "$still" = 0
		check "$kind: the group is frozen while paused (cgroup says $f)" test "$f" = 1
		check "$kind: the counter does not move while paused ($c1 then $c2)" test "$c1" = "$c2"
	else
		fail "$kind: a paused event within 10 s"
	fi
	set +e; wait $cpid; RC=$?; set -e
	check "$kind: the take exits 0 (got $RC)" test "$RC" = 0
	show "$LOG/$kind-paused.err"
	local ev
	ev=$(events "$LOG/$kind-paused.out")
	check "$kind: events in SPEC order ($ev)" test "$ev" = "state:suspending state:paused state:saved state:resumed done"
	local snap pause
	snap=$(json_get "$LOG/$kind-paused.out" done snapshot || true)
	pause=$(json_get "$LOG/$kind-paused.out" done pause_ms || true)
	check "$kind: the saved event names the snapshot" test "$(json_get "$LOG/$kind-paused.out" state snapshot)" = "$snap"
	check "$kind: paused carries ms" is_uint "$(json_get "$LOG/$kind-paused.out" state ms || true)"
	check "$kind: done's pause_ms covers the sampling ($pause ms, $(json_get "$LOG/$kind-paused.out" done duration_ms || true) ms in all)" test "${pause:-0}" -ge 400
	"$CAIRN" snapshots --repo "$R" --json > "$LOG/$kind-list.json"
	check "$kind: the manifest records the pause" "$PY" -c '
import json, sys; s = json.load(open(sys.argv[1])); sys.exit(0 if s[0]["pause_ms"] >= 400 else 1)' "$LOG/$kind-list.json"
	check "$kind: the snapshot is one instant ($(consistent "$R" "$snap" "state/$kind" 2>&1 || true))" consistent "$R" "$snap" "state/$kind"
	check "$kind: files created and removed during the take: one instant ($(churn_consistent "$R" "$snap" "state/$kind" 2>&1 || true))" churn_consistent "$R" "$snap" "state/$kind"
	check "$kind: thawed after the take" test "$(frozen "$CG")" = 0
	check "$kind: the workload runs again" advancing "$S"

	say "$kind: a failing take (injected EIO while writing) thaws; error, then resumed; nothing committed"
	R=$W/repo-$kind
	"$CAIRN" init --repo "$R" > /dev/null
	# writes: the gc session, the freeze record (state directory), the user's lock
	CAIRN_FAULT=write:4:EIO cairn "$kind-fault" take --repo "$R" --root "$ROOT" --exclude /big --exclude /mid --name f \
		--cgroup "$CG" --release --no-precopy --json
	check "$kind: the failing take exits 1 (got $RC)" test "$RC" = 1
	ev=$(events "$OUT")
	check "$kind: events: error then resumed ($ev)" test "$ev" = "state:suspending state:paused error state:resumed"
	check "$kind: one stderr line" one_error_line "$ERR"
	check "$kind: nothing committed" test "$(snapshot_count "$R")" = 0
	check "$kind: thawed after the failure" test "$(frozen "$CG")" = 0
	check "$kind: --release did not kill on failure" kill -0 "$WPID"
	check "$kind: the workload runs after the failure" advancing "$S"

	say "$kind: SIGTERM while paused aborts: thawed, nothing committed"
	R=$W/repo-$kind-term
	"$CAIRN" init --repo "$R" > /dev/null
	"$CAIRN" take --repo "$R" --root "$ROOT" --name t --cgroup "$CG" --threads 1 --no-precopy --json \
		> "$LOG/$kind-term.out" 2> "$LOG/$kind-term.err" &
	cpid=$!
	wait_state "$LOG/$kind-term.out" paused || fail "$kind: a paused event within 10 s"
	sleep 0.2
	kill -TERM $cpid
	set +e; wait $cpid; RC=$?; set -e
	check "$kind: SIGTERM: exit 1 (got $RC)" test "$RC" = 1
	ev=$(events "$LOG/$kind-term.out")
	check "$kind: SIGTERM: error then resumed ($ev)" test "$ev" = "state:suspending state:paused error state:resumed"
	check "$kind: SIGTERM: the message says so" grep -q 'interrupted by SIGTERM' "$LOG/$kind-term.err"
	check "$kind: SIGTERM: nothing committed" test "$(snapshot_count "$R")" = 0
	check "$kind: SIGTERM: thawed" test "$(frozen "$CG")" = 0
	check "$kind: SIGTERM: the workload runs" advancing "$S"

	say "$kind: SIGKILL of cairn while paused: the guardian thaws within a second"
	R=$W/repo-$kind-kill
	"$CAIRN" init --repo "$R" > /dev/null
	"$CAIRN" take --repo "$R" --root "$ROOT" --name k --cgroup "$CG" --threads 1 --no-precopy --json \
		> "$LOG/$kind-kill.out" 2> "$LOG/$kind-kill.err" &
	cpid=$!
	wait_state "$LOG/$kind-kill.out" paused || fail "$kind: a paused event within 10 s"
	sleep 0.2
	check "$kind: frozen before the kill" test "$(frozen "$CG")" = 1
	local gpid
	gpid=$(pgrep -P $cpid -x cairn-guardian || true)
	check "$kind: cairn has its guardian process ($gpid)" test -n "$gpid"
	kill -KILL $cpid
	local t0 ms=-1 i
	t0=$(date +%s%N)
	for i in $(seq 200); do
		if [ "$(frozen "$CG")" = 0 ]; then
			ms=$(( ($(date +%s%N) - t0) / 1000000 ))
			break
		fi
		sleep 0.005
	done
	set +e; wait $cpid 2>/dev/null; set -e
	check "$kind: SIGKILL: thawed within 1000 ms (after $ms ms)" test "$ms" -ge 0 -a "$ms" -le 1000
	check "$kind: SIGKILL: the guardian said so" grep -q 'guardian: cairn exited' "$LOG/$kind-kill.err"
	check "$kind: SIGKILL: no snapshot visible" test "$(snapshot_count "$R")" = 0
	check "$kind: SIGKILL: the workload runs" advancing "$S"
	sleep 0.1
	check "$kind: SIGKILL: the guardian has exited (a zombie of init's at most)" \
		test -z "$(ps -o stat= -p "${gpid:-0}" | grep -v '^Z' || true)"

	say "$kind: --max-pause 1 on a take that needs longer: aborted and thawed"
	# 1.3 GiB of fresh random data on one thread: several seconds of work
	# even on an idle machine (288 MiB once fitted in one second)
	mkdir -p "$ROOT/huge"
	head -c 768M /dev/urandom > "$ROOT/huge/data"
	R=$W/repo-$kind-max
	"$CAIRN" init --repo "$R" > /dev/null
	cairn "$kind-max" take --repo "$R" --root "$ROOT" --name m --cgroup "$CG" --threads 1 --max-pause 1 --no-precopy --json
	rm -rf "$ROOT/huge"
	check "$kind: --max-pause: exit 1 (got $RC)" test "$RC" = 1
	ev=$(events "$OUT")
	check "$kind: --max-pause: error then resumed ($ev)" test "$ev" = "state:suspending state:paused error state:resumed"
	check "$kind: --max-pause: the message says so" grep -q 'paused longer than' "$ERR"
	check "$kind: --max-pause: nothing committed" test "$(snapshot_count "$R")" = 0
	check "$kind: --max-pause: thawed" test "$(frozen "$CG")" = 0
	check "$kind: --max-pause: the workload runs" advancing "$S"
	rm -rf "$R"

	say "$kind: the default pre-copy: copied while the instance runs; frozen, only what changed is read"
	R=$W/repo-$kind-pre
	"$CAIRN" init --repo "$R" > /dev/null
	cairn "$kind-pre" take --repo "$R" --root "$ROOT" --name p --cgroup "$CG" --json
	check "$kind: pre-copy: exit 0 (got $RC)" test "$RC" = 0
	ev=$(events "$OUT")
	check "$kind: pre-copy: events in SPEC order ($ev)" test "$ev" = "state:suspending state:paused state:saved state:resumed done"
	check "$kind: pre-copy: its progress events (phase precopy) come before suspending, the others after" "$PY" -c '
import json, sys
seen_suspend = n_pre = 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o["event"] == "state" and o["state"] == "suspending":
        seen_suspend = 1
    if o["event"] == "progress" and o.get("phase") == "precopy":
        n_pre += 1
        if seen_suspend:
            sys.exit("a precopy progress event after suspending")
    elif o["event"] == "progress" and not seen_suspend:
        sys.exit("a progress event without phase before suspending")
sys.exit(0 if n_pre > 0 else "no precopy progress event")' "$OUT"
	local reused precopy_ms
	reused=$(json_get "$OUT" done reused_files || true)
	precopy_ms=$(json_get "$OUT" done precopy_ms || true)
	check "$kind: pre-copy: the frozen capture reused the copied files ($reused reused, $precopy_ms ms of pre-copy, $(json_get "$OUT" done pause_ms || true) ms paused)" \
		test "${reused:-0}" -ge 2 -a "${precopy_ms:-0}" -gt 0
	snap=$(json_get "$OUT" done snapshot || true)
	check "$kind: pre-copy: the snapshot is one instant ($(consistent "$R" "$snap" "state/$kind" 2>&1 || true))" consistent "$R" "$snap" "state/$kind"
	check "$kind: pre-copy: files created and removed: one instant ($(churn_consistent "$R" "$snap" "state/$kind" 2>&1 || true))" churn_consistent "$R" "$snap" "state/$kind"
	"$CAIRN" cat --repo "$R" "$snap" mid/data > "$W/pre-mid"
	cmp_check "$kind: pre-copy: mid/data" "$ROOT/mid/data" "$W/pre-mid"
	rm -f "$W/pre-mid"
	check "$kind: pre-copy: thawed" test "$(frozen "$CG")" = 0
	check "$kind: pre-copy: fsck passes" "$CAIRN" fsck --repo "$R"
	rm -rf "$R"

	say "$kind: the frozen walk in two parts (two threads) gives the tree one thread gives"
	# /dirs holds three directories of 5,000 files each: the frozen walk's
	# second thread takes /dirs/bigdir and, to make half, small directories
	# (eight parts in all); dirs/datadrive stays an ordinary directory
	local T=$W/split-tree
	if [ ! -d "$T" ]; then
		make_tree "$T" > /dev/null
		cp -a "$T/dirs/bigdir" "$T/dirs/copy1"
		cp -a "$T/dirs/bigdir" "$T/dirs/copy2"
	fi
	R=$W/repo-$kind-split
	"$CAIRN" init --repo "$R" > /dev/null
	local trees=()
	for threads in 2 1; do
		cairn "$kind-split$threads" take --repo "$R" --root "$T" --name s$threads --cgroup "$CG" --threads $threads --no-parent --json
		check "$kind: split walk, --threads $threads: exit 0 (got $RC)" test "$RC" = 0
		trees+=("$("$PY" -c 'import json,sys; print(next(s["root_tree"] for s in json.load(open(sys.argv[1])) if s["name"] == sys.argv[2]))' \
			<("$CAIRN" snapshots --repo "$R" --json) "s$threads" || echo none$threads)")
	done
	check "$kind: split walk: one root tree for two threads and one (${trees[*]})" test "${trees[0]}" = "${trees[1]}"
	rm -rf "$W/split-out"
	if "$CAIRN" restore --repo "$R" s2 "$W/split-out" -q; then
		treecmp_check "$kind: split walk: the two-thread snapshot restores to the source" "$T" "$W/split-out" --ignore /datadrive \
			--ignore /special/sock
	fi
	rm -rf "$R" "$W/split-out"

	say "$kind: a failure during the pre-copy (a pack write): error, never frozen, nothing committed"
	R=$W/repo-$kind-prefault
	"$CAIRN" init --repo "$R" > /dev/null
	CAIRN_FAULT=write:3:EIO cairn "$kind-prefault" take --repo "$R" --root "$ROOT" --name f --cgroup "$CG" --json
	check "$kind: pre-copy failure: exit 1 (got $RC)" test "$RC" = 1
	ev=$(events "$OUT")
	check "$kind: pre-copy failure: only the error ($ev)" test "$ev" = "error"
	check "$kind: pre-copy failure: nothing committed" test "$(snapshot_count "$R")" = 0
	check "$kind: pre-copy failure: not frozen" test "$(frozen "$CG")" = 0

	say "$kind: SIGTERM during the pre-copy: error, never frozen, nothing committed"
	R=$W/repo-$kind-preterm
	"$CAIRN" init --repo "$R" > /dev/null
	"$CAIRN" take --repo "$R" --root "$ROOT" --name t --cgroup "$CG" --threads 1 --json \
		> "$LOG/$kind-preterm.out" 2> "$LOG/$kind-preterm.err" &
	cpid=$!
	local n=0
	until grep -q '"phase":"precopy"' "$LOG/$kind-preterm.out"; do
		sleep 0.02
		n=$((n + 1))
		[ $n -lt 500 ] || break
	done
	kill -TERM $cpid
	set +e; wait $cpid; RC=$?; set -e
	check "$kind: SIGTERM in the pre-copy: exit 1 (got $RC)" test "$RC" = 1
	ev=$(events "$LOG/$kind-preterm.out")
	check "$kind: SIGTERM in the pre-copy: only the error ($ev)" test "$ev" = "error"
	check "$kind: SIGTERM in the pre-copy: the message says so" grep -q 'interrupted by SIGTERM before' "$LOG/$kind-preterm.err"
	check "$kind: SIGTERM in the pre-copy: nothing committed" test "$(snapshot_count "$R")" = 0
	check "$kind: SIGTERM in the pre-copy: not frozen" test "$(frozen "$CG")" = 0
	check "$kind: SIGTERM in the pre-copy: the workload runs" advancing "$S"
	rm -rf "$R"

	say "$kind: --release: killed after the commit"
	R=$W/repo-$kind
	cairn "$kind-release" take --repo "$R" --root "$ROOT" --exclude /big --exclude /mid --name r --cgroup "$CG" --release --json
	check "$kind: --release: exit 0 (got $RC)" test "$RC" = 0
	ev=$(events "$OUT")
	check "$kind: --release: saved, then released ($ev)" test "$ev" = "state:suspending state:paused state:saved state:released done"
	check "$kind: --release: the snapshot is committed" test "$(snapshot_count "$R")" = 1
	snap=$(json_get "$OUT" done snapshot || true)
	check "$kind: --release: the snapshot is one instant" consistent "$R" "$snap" "state/$kind"
	check "$kind: --release: no process left in the group" test "$(procs "$CG")" = 0
	sleep 0.1
	check "$kind: --release: the workload is dead" test ! -d "/proc/$WPID"
	check "$kind: --release: the group is not left frozen" test "$(frozen "$CG")" = 0
}

[ -z "$V2" ] || scenarios v2 "$V2"
[ -z "$V1" ] || scenarios v1 "$V1"
rm -f "$ROOT/big/data" "$ROOT/mid/data"

# ---- bad uses ------------------------------------------------------------------
say "bad uses: usage errors, missing or unfreezable groups, someone else's freeze"
R=$W/repo-bad
"$CAIRN" init --repo "$R" > /dev/null
BASE=${V2:-$V1}
cg_new "$BASE" bad
S=$ROOT/state/bad
start_workload "$CG" "$S"
expect_rc 2 release-alone take --repo "$R" --root "$ROOT" --name x --release
expect_rc 2 maxpause-alone take --repo "$R" --root "$ROOT" --name x --max-pause 5
expect_rc 2 noprecopy-alone take --repo "$R" --root "$ROOT" --name x --no-precopy
expect_rc 2 maxpause-zero take --repo "$R" --root "$ROOT" --name x --cgroup "$CG" --max-pause 0
expect_rc 6 no-cgroup take --repo "$R" --root "$ROOT" --name x --cgroup "$BASE/cairn-e2e-absent"
expect_rc 2 root-cgroup take --repo "$R" --root "$ROOT" --name x --cgroup "$W"
cairn missing-root take --repo "$R" --root "$W/absent" --name x --cgroup "$CG" --json
check "a missing root: exit 6 (got $RC)" test "$RC" = 6
ev=$(events "$OUT")
check "a missing root fails before freezing: no suspending, no resumed ($ev)" test "$ev" = "error"
check "not frozen after a failure before the freeze" test "$(frozen "$CG")" = 0
if [ -e "$CG/cgroup.freeze" ]; then echo 1 > "$CG/cgroup.freeze"; else echo FROZEN > "$CG/freezer.state"; fi
sleep 0.2
expect_rc 5 already-frozen take --repo "$R" --root "$ROOT" --name x --cgroup "$CG"
check "someone else's freeze is left alone" test "$(frozen "$CG")" = 1
if [ -e "$CG/cgroup.freeze" ]; then echo 0 > "$CG/cgroup.freeze"; else echo THAWED > "$CG/freezer.state"; fi
bash -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$CG" "$CAIRN" take --repo "$R" --root "$ROOT" --name x \
	--cgroup "$CG" > "$LOG/self.out" 2> "$LOG/self.err" || RC=$?
check "cairn inside the group it would freeze: exit 2 (got $RC)" test "$RC" = 2
check "  ... and says why" grep -q 'cairn itself' "$LOG/self.err"
check "no snapshot from the bad uses" test "$(snapshot_count "$R")" = 0

say "over quota with --cgroup: refused during the pre-copy, the instance never paused"
"$CAIRN" quota set --repo "$R" small 100 > /dev/null
head -c 300000 /dev/urandom > "$ROOT/state/quota-data"
cairn quota-cg take --repo "$R" --root "$ROOT" --user small --name q --cgroup "$CG" --json
rm -f "$ROOT/state/quota-data"
check "over quota: exit 3 (got $RC)" test "$RC" = 3
ev=$(events "$OUT")
check "over quota: only the error, no suspending ($ev)" test "$ev" = "error"
check "over quota: the message gives the quota" grep -q 'quota of 100 bytes' "$ERR"
check "over quota: not frozen" test "$(frozen "$CG")" = 0
check "over quota: no usage charged" test "$("$CAIRN" usage --repo "$R" --json | "$PY" -c '
import json, sys; print(sum(u["used_bytes"] for u in json.load(sys.stdin) if u["user"] == "small"))')" = 0

# ---- /proc/PID/root ----------------------------------------------------------------
say "a root of /proc/PID/root: a process pivoted into its own mount namespace"
CT=$W/ct
mkdir -p "$CT/etc" "$CT/usr" "$CT/old" "$CT/data"
ln -s usr/bin "$CT/bin"
ln -s usr/lib "$CT/lib"
ln -s usr/lib64 "$CT/lib64"
echo "inside the container" > "$CT/etc/marker"
head -c 100000 /dev/urandom > "$CT/data/blob"
cg_new "$BASE" ct
unshare -m --propagation private bash -c '
	echo $$ > "$0/cgroup.procs" &&
	mount --bind "$1" "$1" && mount --bind /usr "$1/usr" && cd "$1" && pivot_root . old &&
	exec /usr/bin/sleep 120' "$CG" "$CT" 2> "$LOG/ct.err" &
CTPID=$!
PIDS+=("$CTPID")
n=0
until [ "$(readlink "/proc/$CTPID/exe" 2>/dev/null)" = /usr/bin/sleep ]; do
	sleep 0.05
	n=$((n + 1))
	[ $n -lt 100 ] || { fail "the container process started"; show "$LOG/ct.err"; e2e_finish; }
done
check "realpath of /proc/PID/root reads as our own / (why it is not used)" test "$(realpath "/proc/$CTPID/root")" = /
take_json ct --repo "$R" --root "/proc/$CTPID/root" --name ct --cgroup "$CG"
if [ -n "$SNAP" ]; then
	"$CAIRN" ls --repo "$R" "$SNAP" / > "$LOG/ct-ls.out"
	check "the container's files, not ours: $(tr '\n' ' ' < "$LOG/ct-ls.out")" \
		test "$(sort "$LOG/ct-ls.out" | tr '\n' ' ')" = "bin data etc lib lib64 old usr "
	check "etc/marker is the container's" test "$("$CAIRN" cat --repo "$R" "$SNAP" etc/marker)" = "inside the container"
	check "mount points inside (old = our root, usr) are kept empty" \
		test -z "$("$CAIRN" ls --repo "$R" "$SNAP" old)$("$CAIRN" ls --repo "$R" "$SNAP" usr)"
	mkdir -p "$W/ct-restored"
	cairn_ok ct-restore restore --repo "$R" "$SNAP" "$W/ct-restored/r" || true
	cmp_check "data/blob restored" "$CT/data/blob" "$W/ct-restored/r/data/blob"
	check "the snapshot records the root as given" grep -q "\"root\":\"/proc/$CTPID/root\"" \
		<("$CAIRN" snapshots --repo "$R" --json | tr -d ' ')
fi
check "the container process runs again" test "$(frozen "$CG")" = 0

e2e_finish
