#!/bin/bash
# bench-remote.sh: take and restore throughput of one tree into a local
# directory, a RADOS pool and an S3 bucket, each a fresh repository, with
# the ratio to the directory. Backends without their environment are
# skipped: rados needs CEPH_CONF and CAIRN_TEST_POOL (or --pool), s3 needs
# CAIRN_S3_ENDPOINT, the AWS_* keys and CAIRN_TEST_BUCKET (or --bucket)
# (tests/ceph-cluster.sh start with RGW=1 prints all of them). Remote
# repositories get a unique prefix and are purged afterwards. Not part of CI.
#
# usage: bench/bench-remote.sh [options]
#   --tree fixture    fixtures/make-tree.sh --large-mib N (default)
#   --tree DIR        an existing directory, used in place
#   --mib N           size of the fixture's large part (default 300)
#   --backends LIST   space-separated subset of "dir rados s3" (default all)
#   --pool POOL       rados pool (default $CAIRN_TEST_POOL)
#   --bucket BUCKET   s3 bucket (default $CAIRN_TEST_BUCKET)
#   --cairn PATH      the binary (default: build/tools/cairn)
#   --work DIR        work directory (default: a new one under $TMPDIR or /tmp)
#   --keep            keep the work directory and the repositories
set -euo pipefail
PY=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || echo python3)}
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=${CAIRN:-$SRCDIR/build/tools/cairn}
STORE_TOOL=$SRCDIR/tests/store_tool.py
tree=fixture
mib=300
backends="dir rados s3"
pool=${CAIRN_TEST_POOL:-}
bucket=${CAIRN_TEST_BUCKET:-}
keep=0
work=

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--tree) tree=$2; shift 2 ;;
	--mib) mib=$2; shift 2 ;;
	--backends) backends=$2; shift 2 ;;
	--pool) pool=$2; shift 2 ;;
	--bucket) bucket=$2; shift 2 ;;
	--cairn) CAIRN=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) usage ;;
	*) echo "bench-remote: unknown option $1" >&2; usage ;;
	esac
done
[ -x "$CAIRN" ] || { echo "bench-remote: no binary at $CAIRN (build first or --cairn)" >&2; exit 1; }
if [ -z "$work" ]; then
	work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-remote.XXXXXX")
else
	mkdir -p "$work"
fi
REPOS=()
cleanup() {
	if [ "$keep" = 1 ]; then
		echo "kept $work ${REPOS[*]}"
		return
	fi
	local r
	for r in "${REPOS[@]}"; do "$PY" "$STORE_TOOL" purge "$r" || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "bench-remote: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

case "$tree" in
fixture)
	SRC=$work/src
	bash "$SRCDIR/fixtures/make-tree.sh" "$SRC" --seed 1 --large-mib "$mib" > /dev/null
	;;
*)
	[ -d "$tree" ] || { echo "bench-remote: $tree is not a directory" >&2; exit 2; }
	SRC=$(cd "$tree" && pwd)
	;;
esac
src_bytes=$(du -sb --apparent-size "$SRC" | cut -f1)
tar -cf - -C "$SRC" . 2> /dev/null | cat > /dev/null || true # every backend starts from a warm cache
sync # the fixture's own writeback is charged to no one's step
uniq=bench-$$-$(date +%s)

ms() { echo $(( $(date +%s%N) / 1000000 )); }
RESULTS=$work/results
: > "$RESULTS"
for b in $backends; do
	case "$b" in
	dir) R=$work/repo-dir ;;
	rados)
		if [ -z "$pool" ] || [ -z "${CEPH_CONF:-}" ]; then echo "skip rados: set CEPH_CONF and CAIRN_TEST_POOL (or --pool)"; continue; fi
		R=rados:$pool/$uniq ;;
	s3)
		if [ -z "$bucket" ] || [ -z "${CAIRN_S3_ENDPOINT:-}" ]; then echo "skip s3: set CAIRN_S3_ENDPOINT, AWS_* keys and CAIRN_TEST_BUCKET (or --bucket)"; continue; fi
		R=s3://$bucket/$uniq ;;
	*) echo "bench-remote: unknown backend $b" >&2; exit 2 ;;
	esac
	REPOS+=("$R")
	"$CAIRN" init --repo "$R" > /dev/null
	echo "$b: take into $R"
	sync # the step before's writeback is not this take's
	t0=$(ms)
	"$CAIRN" take --repo "$R" --root "$SRC" --name bench --json -q > "$work/take-$b.json"
	t1=$(ms)
	echo "$b: take again (unchanged)"
	"$CAIRN" take --repo "$R" --root "$SRC" --name bench2 --json -q > /dev/null
	t2=$(ms)
	echo "$b: restore"
	# Into a directory of its own, kept until the end: on ext4, creating
	# files where many were just deleted costs the kernel seconds of
	# searching for free inodes (recently_deleted), which is no store's cost.
	sync
	t2r=$(ms)
	"$CAIRN" restore --repo "$R" bench "$work/out-$b" -q
	sync
	t3=$(ms)
	# /datadrive is never taken (SPEC), sockets are not restored
	"$PY" "$SRCDIR/tests/treecmp.py" "$SRC" "$work/out-$b" --ignore /datadrive --ignore /special/sock > "$work/treecmp.txt" ||
		{ echo "bench-remote: $b: the restored tree differs from the source" >&2; exit 1; }
	stored=$("$PY" -c 'import json,sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o.get("event") == "done": print(o["stored_bytes"])' "$work/take-$b.json")
	printf '%s\t%d\t%d\t%d\t%s\n' "$b" $((t1 - t0)) $((t2 - t1)) $((t3 - t2r)) "$stored" >> "$RESULTS"
done

"$PY" - "$RESULTS" "$src_bytes" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
src = int(sys.argv[2])
mib = src / 1048576
print("\ntree: %.0f MiB (apparent size); wall times, MiB/s of the tree, ratio to dir" % mib)
print("%-6s %14s %8s %16s %14s %8s %14s" % ("store", "take first", "ratio", "take unchanged", "restore", "ratio", "stored MiB"))
base = {}
for b, t1, t2, t3, st in rows:
    t1, t2, t3 = int(t1), int(t2), int(t3)
    if b == "dir":
        base = {"take": t1, "restore": t3}
    def rate(ms):
        return "%6.1f s %5.0f" % (ms / 1000, mib / (ms / 1000) if ms else 0)
    rt = "%.0f%%" % (100 * base["take"] / t1) if base else "-"
    rr = "%.0f%%" % (100 * base["restore"] / t3) if base else "-"
    print("%-6s %14s %8s %16s %14s %8s %14.1f" % (b, rate(t1), rt, "%.1f s" % (t2 / 1000), rate(t3), rr, int(st) / 1048576))
EOF
