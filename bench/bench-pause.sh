#!/bin/bash
# bench-pause.sh: how long Take Snapshot pauses an instance. A workload runs
# in a fresh cgroup over a rootfs copy; we time (pause_ms from take --json):
#   1. a full take (no parent),
#   2. an incremental take after ~1% of the bytes changed (parent found),
#   3. an upper-mode take (--upper/--base) of an overlay whose upper holds
#      the same ~1% change, over a base snapshot of the lower layer.
# Not part of CI. Run as root. Usage:
#   bench/bench-pause.sh [--src DIR]... [--work DIR] [--cairn PATH]
# Default sources: /usr/share and /usr/lib/x86_64-linux-gnu (~2-3 GB here).
set -euo pipefail
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=${CAIRN:-$SRCDIR/build/tools/cairn}
srcs=()
work=
while [ $# -gt 0 ]; do
	case "$1" in
	--src) srcs+=("$2"); shift 2 ;;
	--work) work=$2; shift 2 ;;
	--cairn) CAIRN=$2; shift 2 ;;
	*) sed -n '2,10p' "$0"; exit 2 ;;
	esac
done
[ ${#srcs[@]} -gt 0 ] || srcs=(/usr/share /usr/lib/x86_64-linux-gnu)
[ "$(id -u)" = 0 ] || { echo "bench-pause: run as root" >&2; exit 77; }
[ -x "$CAIRN" ] || { echo "bench-pause: build first ($CAIRN missing)" >&2; exit 1; }
work=${work:-$(mktemp -d /tmp/cairn-bench-pause.XXXX)}
mkdir -p "$work"
cg=
cleanup() {
	mountpoint -q "$work/merged" 2>/dev/null && umount "$work/merged"
	[ -n "$cg" ] && { cat "$cg/cgroup.procs" 2>/dev/null | xargs -r kill -9 2>/dev/null || true; sleep 0.2; rmdir "$cg" 2>/dev/null || true; }
	rm -rf "$work"
}
trap cleanup EXIT

# a cgroup with a workload in it (v2 where it is mounted, else the v1 freezer)
for base in /sys/fs/cgroup/unified /sys/fs/cgroup /sys/fs/cgroup/freezer; do
	if [ -e "$base/cgroup.procs" ] && { [ -e "$base/cgroup.freeze" ] || [ -e "$base/cgroup.subtree_control" ] || [ "$base" = /sys/fs/cgroup/freezer ]; }; then
		cg=$base/cairn-bench-$$
		mkdir "$cg" && break
	fi
done
[ -n "$cg" ] || { echo "bench-pause: no usable cgroup" >&2; exit 77; }
start_workload() {
	bash -c 'echo $$ > "$1/cgroup.procs"; n=0; while :; do n=$((n+1)); echo $n > "$2/counter"; sleep 0.01; done' _ "$cg" "$1" &
}

echo "== rootfs: copying ${srcs[*]}"
mkdir -p "$work/rootfs"
for s in "${srcs[@]}"; do cp -a "$s" "$work/rootfs/$(basename "$s")"; done
bytes=$(du -sb "$work/rootfs" | cut -f1)
files=$(find "$work/rootfs" -type f | wc -l)
echo "   $((bytes / 1048576)) MiB, $files files"

# ~1% of the bytes: new files, appends, in-place rewrites, deletions
change() {
	local dir=$1 target=$((bytes / 100))
	set +o pipefail # head closes the finds' pipes early
	mkdir -p "$dir/var/lib/newpkg"
	head -c $((target / 2)) /dev/urandom > "$dir/var/lib/newpkg/model.bin"
	find "$dir" -type f -size +1M 2>/dev/null | head -n 20 | while read -r f; do
		head -c $((target / 80)) /dev/urandom >> "$f"
	done
	find "$dir" -type f -size +4M 2>/dev/null | head -n 10 | while read -r f; do
		dd if=/dev/urandom of="$f" bs=4096 count=$((target / 80 / 4096 + 1)) seek=10 conv=notrunc status=none
	done
	find "$dir" -type f -name '*.gz' 2>/dev/null | head -n 200 | xargs -r rm -f
	set -o pipefail
}

pause_of() { /usr/bin/python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e=json.loads(l)
    if e.get("event")=="done": print(e["pause_ms"], e["duration_ms"], e["files"], e.get("reused_files",0))' "$1"; }

# Each step runs twice on the same data: into repository A with the default
# pre-copy (content copied while the instance runs, then only what changed
# since is read while frozen), and into B with --no-precopy (everything read
# while frozen).
A=$work/repo-precopy
B=$work/repo-frozen
"$CAIRN" init --repo "$A" >/dev/null
"$CAIRN" init --repo "$B" >/dev/null
start_workload "$work/rootfs"
sleep 0.5
# take_both STEP ARGS...: the take into A and into B; sets pA.. and pB..
take_both() {
	local step=$1
	shift
	sync; echo 3 > /proc/sys/vm/drop_caches
	"$CAIRN" take --repo "$A" "$@" --cgroup "$cg" --json > "$work/$step-a.json"
	read -r pa da fa ra < <(pause_of "$work/$step-a.json")
	sync; echo 3 > /proc/sys/vm/drop_caches
	"$CAIRN" take --repo "$B" "$@" --cgroup "$cg" --no-precopy --json > "$work/$step-b.json"
	read -r pb db fb rb < <(pause_of "$work/$step-b.json")
	printf '%s|%s|%s|%s|%s|%s|%s\n' "$step" "$pa" "$da" "$pb" "$db" "$fa" "$ra" >> "$work/rows"
}
: > "$work/rows"
echo "== 1. full take (cold cache)"
take_both "full take (cold cache)" --root "$work/rootfs" --name full --user bench --no-parent
echo "== 2. incremental take after ~1% change"
change "$work/rootfs"
take_both "incremental, ~1% changed" --root "$work/rootfs" --name incr --user bench

echo "== 3. upper mode over an overlay"
mkdir -p "$work/upper" "$work/ovlwork" "$work/merged"
"$CAIRN" take --repo "$A" --root "$work/rootfs" --name lower --user bench --json > /dev/null
"$CAIRN" take --repo "$B" --root "$work/rootfs" --name lower --user bench --json > /dev/null
mount -t overlay overlay -o "lowerdir=$work/rootfs,upperdir=$work/upper,workdir=$work/ovlwork" "$work/merged"
change "$work/merged"
take_both "upper mode, ~1% changed" --upper "$work/upper" --base lower --name upper --user bench

printf '\n%-28s %14s %14s %14s %14s %8s %8s\n' step pause_ms "(duration)" "no-precopy" "(duration)" files reused
while IFS='|' read -r step pa da pb db fa ra; do
	printf '%-28s %14s %14s %14s %14s %8s %8s\n' "$step" "$pa" "$da" "$pb" "$db" "$fa" "$ra"
done < "$work/rows"
printf 'rootfs %d MiB, %d files; the workload ran in %s\n' $((bytes / 1048576)) "$files" "$cg"
