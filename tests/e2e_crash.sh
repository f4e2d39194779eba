#!/bin/bash
# e2e_crash: crash safety (DESIGN rule 6). A seeded loop kills cairn at
# random moments, CRASH_ROUNDS times (default 50): SIGKILL after a random
# delay, or CAIRN_FAULT=op:N:CRASH at a random N, during take and during
# gc (--grace 0, after forgetting a snapshot, so that it deletes). After
# each kill: fsck passes and every committed snapshot restores exactly.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
. "$SRCDIR/tests/admin_lib.sh"
e2e_start crash
e2e_seed
RANDOM=$SEED
ROUNDS=${CRASH_ROUNDS:-50}

R=$W/repo
cairn_ok init init --repo "$R" --chunk-avg 16K || e2e_finish
export CAIRN_REPO=$R
for k in 0 1 2; do small_tree "$W/src$k" "$((SEED + k))" 14; done
declare -A EXP # snapshot name -> tree sum at take time

# mutate K: change tree K a little, so that takes write new data
mutate() {
	"$PY" - "$W/src$1" "$RANDOM" <<'PYEOF'
import os, random, sys
top, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
files = sorted(os.path.join(r, f) for r, _, fs in os.walk(top) for f in fs if not os.path.islink(os.path.join(r, f)))
with open(rnd.choice(files), "ab") as f:
    f.write(rnd.randbytes(rnd.choice([10, 20000, 90000])))
PYEOF
}

# run_killed KIND ARGS...: run cairn ARGS, killed by SIGKILL after a random
# delay or by an injected crash; prints what was done.
run_killed() {
	local kind=$1 how pid ms op n
	shift
	if [ $((RANDOM % 2)) = 0 ]; then
		ms=$((RANDOM % 160))
		how="SIGKILL after ${ms} ms"
		"$CAIRN" "$@" </dev/null >/dev/null 2>&1 &
		pid=$!
		sleep "$(printf '0.%03d' "$ms")"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	else
		op=$(echo write fsync rename | cut -d' ' -f$((RANDOM % 3 + 1)))
		n=$((RANDOM % 12 + 1))
		how="CAIRN_FAULT=$op:$n:CRASH"
		CAIRN_FAULT=$op:$n:CRASH "$CAIRN" "$@" </dev/null >/dev/null 2>&1 || true
	fi
	echo "   round $ROUND: $kind, $how ($(( ($(date +%s%N) - T0) / 1000000 )) ms)"
}

# verify: fsck passes, every committed snapshot restores exactly (one
# python run compares them all: the loop must stay fast)
BAD=0
verify() {
	"$CAIRN" fsck -q > "$LOG/fsck.out" 2>&1 || { fail "round $ROUND: fsck passes"; show "$LOG/fsck.out"; BAD=1; return; }
	local id name
	rm -rf "$W/out" "$LOG/expect"
	mkdir -p "$W/out"
	for name in "${!EXP[@]}"; do echo "$name ${EXP[$name]}" >> "$LOG/expect"; done
	while read -r id name; do
		if ! "$CAIRN" restore "$id" "$W/out/$name" -q > "$LOG/restore.out" 2>&1; then
			fail "round $ROUND: $name ($id) restores"; show "$LOG/restore.out"; BAD=1
		fi
	done < <("$CAIRN" snapshots --json | "$PY" -c '
import json, sys
for s in json.load(sys.stdin): print(s["id"], s["name"])')
	"$PY" - "$W/out" "$LOG/expect" > "$LOG/compare.out" <<'PYEOF' || { fail "round $ROUND: every snapshot restores exactly"; show "$LOG/compare.out"; BAD=1; }
import hashlib, os, stat, sys
out, expect = sys.argv[1], dict(l.split() for l in open(sys.argv[2]))
def tree_sum(top):
    lines = []
    for root, dirs, files in os.walk(top):
        for name in sorted(dirs + files):
            p = os.path.join(root, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, top)
            if stat.S_ISLNK(st.st_mode):
                lines.append("%s l %s" % (rel, os.readlink(p)))
            elif stat.S_ISREG(st.st_mode):
                lines.append("%s f %o %d %s" % (rel, st.st_mode, st.st_size, hashlib.sha256(open(p, "rb").read()).hexdigest()))
            else:
                lines.append("%s d %o" % (rel, st.st_mode))
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
bad = 0
for name in os.listdir(out):
    if expect.get(name) != tree_sum(os.path.join(out, name)):
        print("snapshot %s: restored tree differs from what was taken" % name)
        bad = 1
sys.exit(bad)
PYEOF
	rm -rf "$W/out"
}

T0=$(date +%s%N)
for ROUND in $(seq 1 "$ROUNDS"); do
	# at most three snapshots: each round restores them all
	while [ "$(snap_ids "$R" | wc -l)" -gt 3 ]; do "$CAIRN" forget "$(snap_ids "$R" | head -n1)" >/dev/null; done
	NSNAP=$(snap_ids "$R" | wc -l)
	if [ $((RANDOM % 5)) -lt 3 ] || [ "$NSNAP" -lt 2 ]; then
		k=$((RANDOM % 3))
		mutate "$k"
		name=r$ROUND
		EXP[$name]=$(tree_sum "$W/src$k")
		run_killed "take of src$k as $name" take --root "$W/src$k" --name "$name" --user "u$k" -q
	else
		# forget the oldest so that gc has garbage to delete
		"$CAIRN" forget "$(snap_ids "$R" | head -n1)" >/dev/null
		run_killed "gc after a forget" gc --grace 0 -q
	fi
	verify
	# every few rounds an undisturbed take and gc, so that snapshots exist and leftovers go
	if [ $((ROUND % 5)) = 0 ]; then
		k=$((RANDOM % 3)); mutate "$k"; name=ok$ROUND
		EXP[$name]=$(tree_sum "$W/src$k")
		"$CAIRN" take --root "$W/src$k" --name "$name" --user "u$k" -q >/dev/null || { fail "round $ROUND: a take after the crashes works"; BAD=1; }
		while [ "$(snap_ids "$R" | wc -l)" -gt 3 ]; do "$CAIRN" forget "$(snap_ids "$R" | head -n1)" >/dev/null; done
		"$CAIRN" gc --grace 0 -q || { fail "round $ROUND: a gc after the crashes works"; BAD=1; }
		verify
	fi
done
[ "$BAD" = 0 ] && ok "$ROUNDS kills: fsck passed and every committed snapshot restored exactly after each"
say "finally: forget everything, gc, and only config and empty folders remain"
for s in $(snap_ids "$R"); do "$CAIRN" forget "$s" >/dev/null; done
cairn_ok gc-final gc --grace 0
LEFT=$(repo_files "$R")
check "nothing but config (and users/ records) left: '$(echo $LEFT)'" [ -z "$LEFT" ]
e2e_finish
