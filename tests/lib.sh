# Shared helpers for the end-to-end tests (sourced, bash).
#
# Environment: CAIRN (the built binary; default $SRCDIR/build/tools/cairn),
# SRCDIR (the source root; default: this file's parent directory),
# TMPDIR (where work directories go), CAIRN_E2E_KEEP=1 keeps the work
# directory for a look after the run.
#
# Conventions: every check prints "ok - what" or "FAIL - what" and the test
# goes on; e2e_finish exits 1 when any check failed. Commands that must work
# for the test to make sense (setup) abort the test through set -e.

: "${SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${CAIRN:=$SRCDIR/build/tools/cairn}"
TREECMP=$SRCDIR/tests/treecmp.py
MAKE_TREE=$SRCDIR/fixtures/make-tree.sh
# The system python3 first: a pyenv shim costs half a second a call.
PY=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
E2E_CHECKS=0
E2E_FAILS=0
E2E_NAME=
W=
LOG=

# e2e_start NAME: skip unless root, check the binary, make the work directory.
e2e_start() {
	E2E_NAME=$1
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: $E2E_NAME needs root (devices, owners, trusted xattrs)"
		exit 77
	fi
	if [ ! -x "$CAIRN" ]; then
		echo "FAIL: CAIRN=$CAIRN is not an executable (build first, or set CAIRN)"
		exit 1
	fi
	CAIRN=$(cd "$(dirname "$CAIRN")" && pwd)/$(basename "$CAIRN")
	W=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-$E2E_NAME.XXXXXX")
	LOG=$W/log
	mkdir -p "$LOG"
	trap e2e_cleanup EXIT
	trap 'echo "ERROR: $E2E_NAME: command failed at line $LINENO: $BASH_COMMAND" >&2' ERR
	unset CAIRN_REPO CAIRN_NO_URING
	export CAIRN_STATE_DIR=$W/state # restore records, never the host's /var/lib/cairn
	echo "== $E2E_NAME: binary $CAIRN, work directory $W"
	e2e_backend_check
}

# ---- repositories on any backend ------------------------------------------
# CAIRN_TEST_BACKEND=dir (default), rados (pool $CAIRN_TEST_POOL, cluster
# from CEPH_CONF) or s3 (bucket $CAIRN_TEST_BUCKET): e2e_repo gives an
# address there, and the repo_* helpers look inside without knowing where.
STORE_TOOL=$SRCDIR/tests/store_tool.py

# e2e_backend_check: skip (77) when the chosen backend has no cluster.
e2e_backend_check() {
	case "${CAIRN_TEST_BACKEND:-dir}" in
	dir) ;;
	rados) [ -n "${CAIRN_TEST_POOL:-}" ] && [ -n "${CEPH_CONF:-}" ] ||
		{ echo "SKIP: $E2E_NAME on rados: no cluster (tests/ceph-cluster.sh start; set CEPH_CONF, CAIRN_TEST_POOL)"; exit 77; } ;;
	s3) [ -n "${CAIRN_TEST_BUCKET:-}" ] && [ -n "${CAIRN_S3_ENDPOINT:-}" ] ||
		{ echo "SKIP: $E2E_NAME on s3: no endpoint (set CAIRN_S3_ENDPOINT, CAIRN_TEST_BUCKET, keys)"; exit 77; } ;;
	*) echo "FAIL: CAIRN_TEST_BACKEND=$CAIRN_TEST_BACKEND: dir, rados or s3"; exit 1 ;;
	esac
	echo "== backend: ${CAIRN_TEST_BACKEND:-dir}"
}

# e2e_local: true when repositories are directories (tests that look at
# or damage files directly do that part only then).
e2e_local() { [ "${CAIRN_TEST_BACKEND:-dir}" = dir ]; }

# e2e_repo NAME: a fresh repository address for this test; remote ones get
# a unique prefix and are purged at the end (unless CAIRN_E2E_KEEP=1).
e2e_repo() {
	local uniq="e2e-$E2E_NAME-$$-$(date +%s%N | tail -c 7)-$1" a
	case "${CAIRN_TEST_BACKEND:-dir}" in
	rados) a="rados:$CAIRN_TEST_POOL/$uniq" ;;
	s3) a="s3://$CAIRN_TEST_BUCKET/$uniq" ;;
	*) echo "$W/$1"; return ;;
	esac
	echo "$a" >> "$W/.remote-repos"
	echo "$a"
}

# repo_ls REPO [DIR]: "name size" of every object (under DIR/), sorted.
repo_ls() { "$PY" "$STORE_TOOL" ls "$@"; }
# repo_get REPO NAME: an object to stdout; repo_put REPO NAME < data;
# repo_rm REPO NAME...
repo_get() { "$PY" "$STORE_TOOL" get "$@"; }
repo_put() { "$PY" "$STORE_TOOL" put "$@"; }
repo_rm() { "$PY" "$STORE_TOOL" rm "$@"; }

e2e_cleanup() {
	local rc=$?
	if [ -n "$W" ] && [ -d "$W" ]; then
		if [ -s "$W/.remote-repos" ] && [ "${CAIRN_E2E_KEEP:-0}" != 1 ]; then
			local a
			while read -r a; do "$PY" "$STORE_TOOL" purge "$a" || true; done < "$W/.remote-repos"
		fi
		if [ "${CAIRN_E2E_KEEP:-0}" = 1 ]; then
			echo "kept work directory $W"
		else
			# Directories of mode 0000 and deep chains: rm copes as root.
			rm -rf "$W" || true
		fi
	fi
	return $rc
}

say() { echo "-- $*"; }

ok() {
	E2E_CHECKS=$((E2E_CHECKS + 1))
	echo "ok - $*"
}

fail() {
	E2E_CHECKS=$((E2E_CHECKS + 1))
	E2E_FAILS=$((E2E_FAILS + 1))
	echo "FAIL - $*"
}

# check DESCRIPTION COMMAND...: ok when COMMAND succeeds.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}

e2e_finish() {
	echo "== $E2E_NAME: $E2E_CHECKS checks, $E2E_FAILS failed"
	[ "$E2E_FAILS" = 0 ] || exit 1
	exit 0
}

# show FILE: print a captured output, indented, at most 40 lines.
show() {
	[ -s "$1" ] || return 0
	sed -n '1,40s/^/    | /p' "$1"
	local n
	n=$(wc -l < "$1")
	[ "$n" -le 40 ] || echo "    | ... ($n lines)"
}

# run LABEL CMD...: run CMD with no stdin, stdout to $LOG/LABEL.out, stderr
# to $LOG/LABEL.err; RC gets its exit code. Never fails.
RC=0
run() {
	local label=$1
	shift
	set +e
	"$@" < /dev/null > "$LOG/$label.out" 2> "$LOG/$label.err"
	RC=$?
	set -e
	OUT=$LOG/$label.out
	ERR=$LOG/$label.err
}

# cairn LABEL ARGS...: run the binary (see run).
cairn() {
	local label=$1 t0 t1
	shift
	t0=$(date +%s%N)
	run "$label" "$CAIRN" "$@"
	t1=$(date +%s%N)
	printf '   $ cairn %s  [exit %d, %d ms]\n' "$(echo "$*" | tr '\n' ' ' | cut -c1-180)" "$RC" $(( (t1 - t0) / 1000000 ))
}

# cairn_ok LABEL ARGS...: run the binary; a failed check unless it exits 0.
# Returns the exit code, so that callers can stop what depends on it.
cairn_ok() {
	cairn "$@"
	if [ "$RC" = 0 ]; then
		ok "cairn $2 ($1) exits 0"
		return 0
	fi
	fail "cairn $2 ($1) exits 0 (got $RC)"
	show "$ERR"
	return 1
}

# one_error_line FILE: stderr holds exactly one line, starting "cairn: ".
one_error_line() {
	local n
	n=$(grep -c '' "$1" || true)
	[ "$n" = 1 ] && head -n1 "$1" | grep -q '^cairn: '
}

# expect_rc CODE LABEL ARGS...: the binary exits CODE and, for a failure,
# prints exactly one stderr line starting with "cairn: ".
expect_rc() {
	local code=$1 label=$2
	shift 2
	cairn "$label" "$@"
	if [ "$RC" != "$code" ]; then
		fail "$label: exit $code (got $RC)"
		show "$ERR"
		return 0
	fi
	if [ "$code" != 0 ] && ! one_error_line "$ERR"; then
		fail "$label: exit $code with one stderr line 'cairn: ...'"
		show "$ERR"
		return 0
	fi
	if [ "$code" = 0 ]; then
		ok "$label: exit 0"
	else
		ok "$label: exit $code, '$(head -c 150 "$ERR" | head -n1)'"
	fi
}

# json_get FILE EVENT FIELD: the FIELD of the last JSON line whose "event" is
# EVENT ("-" for a file holding one JSON value). Prints nothing and returns 1
# when absent; returns 2 when the file is not JSON lines.
json_get() {
	"$PY" - "$@" <<'EOF'
import json, sys
path, event, field = sys.argv[1:4]
val, found = None, False
with open(path, "rb") as f:
    data = f.read().decode("utf-8", "replace")
if event == "-":
    try:
        objs = [json.loads(data)]
    except ValueError as e:
        print("json_get: %s: not JSON: %s" % (path, e), file=sys.stderr)
        sys.exit(2)
else:
    objs = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            objs.append(json.loads(line))
        except ValueError as e:
            print("json_get: %s line %d is not JSON: %r" % (path, n, line[:100]), file=sys.stderr)
            sys.exit(2)
for o in objs:
    if isinstance(o, dict) and (event == "-" or o.get("event") == event) and field in o:
        val, found = o[field], True
if not found:
    sys.exit(1)
if isinstance(val, bool):
    print("true" if val else "false")
elif val is None:
    print("null")
else:
    print(val)
EOF
}

# done_field FILE FIELD: a field of the done event of take --json; prints
# "missing" and returns 1 when absent.
done_field() {
	local v
	if v=$(json_get "$1" done "$2"); then
		echo "$v"
	else
		echo "missing"
		return 1
	fi
}

# is_uint VALUE
is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; esac; }

# take_json LABEL ARGS...: cairn take ... --json; sets SNAP to the done
# event's snapshot id (empty when the take failed).
SNAP=
take_json() {
	local label=$1
	shift
	SNAP=
	cairn "$label" take "$@" --json
	if [ "$RC" != 0 ]; then
		fail "take ($label) exits 0 (got $RC)"
		show "$ERR"
		return 1
	fi
	if ! SNAP=$(json_get "$OUT" done snapshot) || [ "${#SNAP}" != 64 ]; then
		fail "take ($label): the done event carries a 64-hex snapshot id"
		show "$OUT"
		SNAP=
		return 1
	fi
	ok "take ($label) -> ${SNAP:0:12} files=$(done_field "$OUT" files) bytes=$(done_field "$OUT" bytes) new_bytes=$(done_field "$OUT" new_bytes) stored_bytes=$(done_field "$OUT" stored_bytes)"
}

# treecmp_check WHAT A B [ARGS...]: a check that the trees are equal.
treecmp_check() {
	local what=$1 a=$2 b=$3
	shift 3
	local label
	label=treecmp-$(echo "$what" | tr -c 'A-Za-z0-9_-' '_' | cut -c1-60)
	run "$label" "$PY" "$TREECMP" "$a" "$b" "$@"
	if [ "$RC" = 0 ]; then
		ok "$what: $(tail -n1 "$OUT")"
	else
		fail "$what (treecmp exit $RC)"
		show "$OUT"
		show "$ERR"
	fi
}

# add_long_chain DIR: DIR/deep-long, a chain of 60 directories whose paths
# exceed PATH_MAX (about 4400 bytes), with a file and a symlink at the
# bottom; DIR's mtime is kept. cp -a and tar cannot copy such a tree.
add_long_chain() {
	"$PY" - "$1" <<'EOF'
import os, sys
top = os.fsencode(sys.argv[1])
st = os.stat(top)
os.mkdir(os.path.join(top, b"deep-long"))
fd = os.open(os.path.join(top, b"deep-long"), os.O_RDONLY | os.O_DIRECTORY)
fds = [fd]
for i in range(60):
    name = (b"long-%02d-" % i).ljust(72, b"L")
    os.mkdir(name, dir_fd=fd)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    fds.append(fd)
f = os.open(b"bottom", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=fd)
os.write(f, b"beyond PATH_MAX\n" * 100)
os.close(f)
os.symlink(b"bottom", b"link", dir_fd=fd)
os.utime(b"bottom", ns=(1234567890123456789, 1234567890123456789), dir_fd=fd)
# Directory times bottom-up, so that each stays set.
for i, d in enumerate(reversed(fds)):
    t = 1600000000 * 10**9 + i * 1000003
    os.utime(d, ns=(t, t))
    os.close(d)
os.utime(top, ns=(st.st_atime_ns, st.st_mtime_ns))
EOF
}

# packs_bytes REPO: total bytes of the repository's packs.
packs_bytes() {
	if ! [ -d "$1" ]; then
		repo_ls "$1" packs | awk '{n += $2} END {print n + 0}'
	elif [ -d "$1/packs" ]; then
		du -sb "$1/packs" | cut -f1
	else
		echo 0
	fi
}

# e2e_seed: SEED from CAIRN_TEST_SEED or the clock; printed so a failing
# run can be repeated.
e2e_seed() {
	SEED=${CAIRN_TEST_SEED:-$(( $(date +%s%N) / 1000 % 1000000007 ))}
	echo "seed $SEED (CAIRN_TEST_SEED=$SEED repeats this run)"
}

# rnd FILE SEED BYTES: a file of BYTES seeded random bytes.
rnd() { "$PY" -c 'import random,sys; open(sys.argv[1],"wb").write(random.Random(int(sys.argv[2])).randbytes(int(sys.argv[3])))' "$@"; }

# make_tree DIR: the fixture tree with $SEED.
make_tree() {
	bash "$MAKE_TREE" "$1" --seed "$SEED"
}

# cmp_check WHAT FILE1 FILE2: a check that two files have equal bytes.
cmp_check() {
	if cmp -s "$2" "$3"; then
		ok "$1"
	else
		fail "$1 ($(cmp "$2" "$3" 2>&1 | head -n1); sizes $(stat -c %s "$2") and $(stat -c %s "$3"))"
	fi
}
