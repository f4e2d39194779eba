#!/bin/bash
# e2e_precopy_pack: a take with a pre-copy (--cgroup) hands the pack its
# file data went into to the flushers before the freeze, when it holds at
# least an eighth of the pack target (4 MiB of 32), so that its sync runs
# while the frozen capture walks instead of in the commit: the trees start a
# pack of their own. Below that (a pre-copy that stored little) data and
# trees share one pack, as before. Either way the snapshot is the one a take
# without a pre-copy gives (same root tree) and restores exactly.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start precopy_pack
e2e_seed
. "$SRCDIR/tests/freeze_lib.sh"
if [ -z "$V2" ] || ! cg_new "$V2" idle || [ ! -e "$CG/cgroup.freeze" ]; then
	echo "SKIP: no cgroup v2 hierarchy with cgroup.freeze here (${V2:-none})"
	exit 77
fi
bash -c 'echo $$ > "$0/cgroup.procs" && exec sleep 600' "$CG" &
PIDS+=("$!")

# packs REPO: how many pack files the repository has
packs() { find "$1/packs" -type f | wc -l; }
# root_tree REPO NAME: the root tree of snapshot NAME
root_tree() {
	"$CAIRN" snapshots --repo "$1" --json |
		"$PY" -c 'import json,sys; print([s["root_tree"] for s in json.load(sys.stdin) if s["name"] == sys.argv[1]][0])' "$2"
}

for case in big:12 small:1; do
	name=${case%%:*} mib=${case#*:}
	SRC=$W/src-$name
	mkdir -p "$SRC/d1" "$SRC/d2"
	rnd "$SRC/d1/weights.bin" "$SEED" $((mib << 20))
	for i in 1 2 3 4 5; do echo "config $i of $name" > "$SRC/d2/c$i.conf"; done
	R=$W/repo-$name
	"$CAIRN" init --repo "$R" > /dev/null
	take_json "$name-precopy" --repo "$R" --root "$SRC" --name s --cgroup "$CG" || continue
	precopy=$(done_field "$OUT" precopy_ms)
	check "$name: the take reports its pre-copy (precopy_ms $precopy)" is_uint "$precopy"
	n=$(packs "$R")
	if [ "$name" = big ]; then
		check "$name: $mib MiB pre-copied: file data and trees in two packs (got $n)" [ "$n" = 2 ]
	else
		check "$name: $mib MiB pre-copied: one pack for data and trees (got $n)" [ "$n" = 1 ]
	fi
	# the same repository (its chunker's secret), every file read again
	take_json "$name-plain" --repo "$R" --root "$SRC" --name plain --no-parent || continue
	check "$name: the same root tree as a take without a pre-copy" [ "$(root_tree "$R" s)" = "$(root_tree "$R" plain)" ]
	cairn_ok "$name-fsck" fsck --repo "$R" || true
	cairn_ok "$name-restore" restore --repo "$R" s "$W/out-$name" || continue
	treecmp_check "$name: restored" "$SRC" "$W/out-$name"
done
e2e_finish
