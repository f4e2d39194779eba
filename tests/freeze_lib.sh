# Shared by the freeze tests (sourced after lib.sh's e2e_start): the host's
# cgroup hierarchies, fresh groups removed at the end, and what a group and
# a take's events say.
V2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
V1=$(awk '$3 == "cgroup" && $4 ~ /(^|,)freezer(,|$)/ { print $2; exit }' /proc/mounts)
CGS=()
PIDS=()
# cg_new BASE NAME: a fresh group in CG, listed for the cleanup (not in a
# $(...) subshell: CGS would not keep it, and the group would outlive the test)
cg_new() {
	CG=$1/cairn-e2e-$$-$2
	mkdir "$CG" 2>/dev/null || return 1
	CGS+=("$CG")
}

# At exit: every group thawed, emptied and removed; every process in PIDS killed.
freeze_cleanup() {
	local cg p
	for cg in "${CGS[@]}"; do
		[ -d "$cg" ] || continue
		[ -e "$cg/cgroup.freeze" ] && echo 0 > "$cg/cgroup.freeze" 2>/dev/null || true
		[ -e "$cg/freezer.state" ] && echo THAWED > "$cg/freezer.state" 2>/dev/null || true
		for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
	done
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	sleep 0.2
	for cg in "${CGS[@]}"; do rmdir "$cg" 2>/dev/null || true; done
	e2e_cleanup
}
trap freeze_cleanup EXIT

# frozen CG: prints 1 when the group is frozen, else 0
frozen() {
	if [ -e "$1/cgroup.freeze" ]; then
		grep -q '^frozen 1' "$1/cgroup.events" && echo 1 || echo 0
	else
		grep -q '^FROZEN' "$1/freezer.state" && echo 1 || echo 0
	fi
}
procs() { grep -c '' "$1/cgroup.procs" || true; }

# wait_state FILE STATE: until the take's output has that state (10 s at most)
wait_state() {
	local n=0
	until grep -q "\"state\":\"$2\"" "$1" 2>/dev/null; do
		sleep 0.02
		n=$((n + 1))
		[ $n -lt 500 ] || return 1
	done
}

# snapshot_count REPO
snapshot_count() {
	"$CAIRN" snapshots --repo "$1" --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
