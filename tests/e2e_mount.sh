#!/bin/bash
# e2e_mount: cairn mount and umount. The fixture tree mounted equals its
# source entry by entry (holes and xattrs included); a hydrated file is read
# by the kernel in passthrough (reads go on while the server is stopped);
# overlayfs over the mount, written to, and its upper taken with --upper
# restores exactly; SIGKILL of the server while readers hash large files:
# every reader gets the right bytes or an error and none hangs, umount
# cleans up, and a new mount on the same cache gives the right bytes; a
# corrupt chunk is EIO and named in the log; store read faults are EIO,
# never other bytes; a store that never answers is EIO after the fetch
# timeout; gc --grace 0 beside a mount of a forgotten snapshot leaves it
# readable until unmounted. --hydrate all makes every file local; the
# access trace a mount stores is what --hydrate trace fetches. A file's
# first read fetches its directory's next small files too, their chunks in
# batched store reads; the mount's read-ahead is 1 MiB; a sequential
# reader's read-ahead grows. A file fetched ahead is backed for passthrough
# by its fetch; no close costs a FLUSH request; a first open in passthrough
# queues the directory's next files and is traced, as a first read is.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
. "$SRCDIR/tests/admin_lib.sh"
if [ ! -c /dev/fuse ]; then
	echo "SKIP: e2e_mount needs /dev/fuse"
	exit 77
fi
e2e_start mount
e2e_seed
RANDOM=$SEED

MOUNTS=()
# gone PID: the process has ended (a zombie not yet reaped has ended too)
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }
mount_cleanup() {
	local rc=$? m
	for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
	return $rc
}
trap 'mount_cleanup; e2e_cleanup' EXIT

R=$(e2e_repo repo)
SRC=$W/src
IGN=(--ignore /datadrive --ignore /special/sock)
TMO=(--fetch-timeout 5000)

# mount_at LABEL SNAP DIR [ARGS...]: cairn mount --json in the background;
# PID gets the server's pid. 1 when it fails.
mount_at() {
	local label=$1 snap=$2 dir=$3
	shift 3
	mkdir -p "$dir"
	PID=
	cairn "$label" mount --repo "${MREPO:-$R}" "$snap" "$dir" --json "$@"
	if [ "$RC" != 0 ]; then
		fail "mount ($label) exits 0 (got $RC)"
		show "$ERR"
		return 1
	fi
	MOUNTS+=("$dir")
	PID=$(sed -n 's/.*"event":"ready".*"pid":\([0-9]*\).*/\1/p' "$OUT")
	if [ -z "$PID" ] || ! grep -q '"ms":[0-9]' "$OUT"; then
		fail "mount ($label) prints a ready event with ms and pid"
		show "$OUT"
		return 1
	fi
	ok "mount ($label): $(cat "$OUT")"
}

# sums DIR > FILE: "sha256 NUL path NUL" of every regular file below DIR
# (names are arbitrary bytes).
sums() {
	"$PY" - "$1" <<'PYEOF'
import hashlib, os, sys
top = os.fsencode(sys.argv[1])
out = sys.stdout.buffer
for d, dirs, files in os.walk(top):
    dirs.sort()
    if os.path.relpath(d, top) == b"datadrive":
        dirs[:] = []
        continue
    for f in sorted(files):
        p = os.path.join(d, f)
        if os.path.isfile(p) and not os.path.islink(p):
            h = hashlib.sha256(open(p, "rb").read()).hexdigest().encode()
            out.write(h + b"\0" + os.path.relpath(p, top) + b"\0")
PYEOF
}

# readcheck LABEL DIR SUMS: read and hash every file of SUMS below DIR, a
# read that takes over 60 s counting as hung; sets NOK NBAD NERR NHANG.
readcheck() {
	local label=$1 dir=$2 list=$3
	"$PY" - "$dir" "$list" > "$LOG/$label.read" <<'PYEOF' || true
import hashlib, os, sys, threading
top, lst = os.fsencode(sys.argv[1]), sys.argv[2]
v = open(lst, "rb").read().split(b"\0")
def read(path, res):
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        res.append(h.hexdigest().encode())
    except OSError as e:
        res.append(e)
for i in range(0, len(v) - 1, 2):
    want, rel = v[i], v[i + 1]
    res = []
    t = threading.Thread(target=read, args=(os.path.join(top, rel), res), daemon=True)
    t.start()
    t.join(60)
    name = rel.decode(errors="replace")
    if t.is_alive():
        print("hang", name)
        sys.stdout.flush()
        os._exit(0)
    elif isinstance(res[0], OSError):
        print("err", name, res[0].strerror)
    elif res[0] == want:
        print("ok", name)
    else:
        print("bad", name)
PYEOF
	NOK=$(grep -c '^ok ' "$LOG/$label.read" || true)
	NBAD=$(grep -c '^bad ' "$LOG/$label.read" || true)
	NERR=$(grep -c '^err ' "$LOG/$label.read" || true)
	NHANG=$(grep -c '^hang ' "$LOG/$label.read" || true)
	echo "    $label: $NOK right, $NBAD wrong, $NERR errors, $NHANG hung"
}

# data_pack REPO: the largest pack of REPO holding file data only (no trees:
# a mount must not need it to start).
data_pack() {
	"$PY" - "$1" <<'PYEOF'
import os, struct, sys
top = sys.argv[1]
best = None
for d, _, files in os.walk(os.path.join(top, "packs")):
    for f in files:
        p = os.path.join(d, f)
        b = open(p, "rb").read()
        count, dir_off = struct.unpack_from("<II", b, len(b) - 16)
        types = {b[dir_off + 48 * i + 32] for i in range(count)}
        if types == {1} and (best is None or len(b) > best[0]):
            best = (len(b), p)
print(best[1] if best else "")
PYEOF
}

# random_files DIR NAMEFMT N KIB: N files of KIB KiB (a multiple of 64) of
# seeded random bytes
random_files() {
	"$PY" - "$@" "$SEED" <<'EOF'
import os, random, sys
top, fmt, n, kib, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)
os.makedirs(top)
for i in range(n):
    with open(os.path.join(top, fmt % i), "wb") as f:
        for _ in range(kib // 64):
            f.write(rnd.randbytes(64 << 10))
EOF
}

say "the fixture tree, taken and mounted"
make_tree "$SRC"
cairn_ok init init --repo "$R" || e2e_finish
take_json fixture --repo "$R" --root "$SRC" --name fixture || e2e_finish
S=$SNAP
sums "$SRC" > "$W/fixture.sums"
M=$W/mnt
mount_at fixture "$S" "$M" --cache "$W/cache" "${TMO[@]}" || e2e_finish
check "the mount is listed as fuse.cairn" grep -q " $M .* - fuse.cairn " /proc/self/mountinfo
treecmp_check "the mount equals its source (holes included)" "$SRC" "$M" "${IGN[@]}" --holes
treecmp_check "the mount, read again from its cache, equals its source" "$SRC" "$M" "${IGN[@]}" --holes
check "trusted.overlay.* answers as absent" sh -c "! getfattr -n trusted.overlay.opaque '$M' >/dev/null 2>&1"
check "writes are refused" sh -c "! touch '$M/newfile' 2>/dev/null"
check "statfs answers" stat -f "$M"

say "passthrough: a file whose bytes are all local is read with the server stopped"
BIG=$(cd "$M" && find files -type f -size +1M | head -n1)
# stopped_read DIR SUMS: open every file of SUMS below DIR, stop the server
# ($PID), then read and hash them; prints "files N right K stalled B", B
# True when the reads did not finish within 10 s with the server stopped
# (only bytes the kernel reads in passthrough can answer then).
stopped_read() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
	"$PY" - "$1" "$PID" "$2" <<'PYEOF'
import hashlib, os, signal, sys, threading
top, pid, lst = os.fsencode(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
v = open(lst, "rb").read().split(b"\0")
fds = [(v[i].decode(), os.open(os.path.join(top, v[i + 1]), os.O_RDONLY)) for i in range(0, len(v) - 1, 2)]
os.kill(pid, signal.SIGSTOP)
res = []
def read():
    for h, fd in fds:
        d = hashlib.sha256()
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            d.update(b)
        res.append(d.hexdigest() == h)
t = threading.Thread(target=read, daemon=True)
t.start()
t.join(10)
stalled = t.is_alive()
os.kill(pid, signal.SIGCONT)
t.join(60)
print("files %d right %d stalled %s" % (len(fds), sum(res), stalled))
PYEOF
}
# one_sum ROOT REL > FILE: SUMS of one file
one_sum() { printf '%s\0%s\0' "$(sha256sum "$1/$2" | cut -d' ' -f1)" "$2"; }
if [ -n "$BIG" ]; then
	one_sum "$SRC" "$BIG" > "$W/big1.sums"
	GOT=$(stopped_read "$M" "$W/big1.sums")
	check "passthrough: $BIG read right with the server stopped ($GOT)" test "$GOT" = "files 1 right 1 stalled False"
	# the control: without passthrough the same read needs the server
	M0=$W/mnt-nopt
	if mount_at nopt "$S" "$M0" --cache "$W/cache" --no-passthrough "${TMO[@]}"; then
		cat "$M0/$BIG" > /dev/null
		GOT=$(stopped_read "$M0" "$W/big1.sums")
		check "control: without passthrough the read waits for the stopped server ($GOT)" \
			test "$GOT" = "files 1 right 1 stalled True"
		cairn_ok umount-nopt umount "$M0"
	fi
else
	fail "the fixture has a file over 1 MiB"
fi

say "hydration: --hydrate all in the foreground, then every file is local"
MH=$W/mnt-hyd
mkdir -p "$MH"
"$CAIRN" mount --repo "$R" "$S" "$MH" --cache "$W/cache-hyd" --hydrate all --foreground --json \
	"${TMO[@]}" > "$LOG/hyd.out" 2> "$LOG/hyd.err" &
HPID=$!
MOUNTS+=("$MH")
for _ in $(seq 600); do grep -q '"event":"hydrated"' "$LOG/hyd.out" && break; sleep 0.1; done
check "--hydrate all: a ready event first" sh -c "head -n1 '$LOG/hyd.out' | grep -q '\"event\":\"ready\"'"
check "--hydrate all: then a hydrated event with bytes and ms" \
	grep -q '"event":"hydrated","bytes":[0-9]*,"ms":' "$LOG/hyd.out"
PID=$HPID stopped_read "$MH" "$W/fixture.sums" > "$LOG/hyd.read"
check "after hydration every file reads right with the server stopped ($(cat "$LOG/hyd.read"))" \
	grep -q "files \([0-9]*\) right \1 stalled False" "$LOG/hyd.read"
cairn_ok umount-hyd umount "$MH"
check "the foreground server exits 0 after umount" wait "$HPID"

say "overlayfs over the mount, written, and its upper taken"
U=$W/upper WK=$W/work MG=$W/merged
mkdir -p "$U" "$WK" "$MG"
if mount -t overlay overlay -o "lowerdir=$M,upperdir=$U,workdir=$WK" "$MG" 2> "$LOG/overlay.err"; then
	MOUNTS+=("$MG")
	echo "new content" > "$MG/new-file"
	echo "appended" >> "$MG/$BIG"
	rm -rf "$MG/links"
	mkdir -p "$MG/files/newdir" && echo x > "$MG/files/newdir/y"
	take_json upper --repo "$R" --upper "$U" --base "$S" --name upper || true
	if [ -n "$SNAP" ]; then
		cairn_ok restore-upper restore --repo "$R" "$SNAP" "$W/r-upper"
		treecmp_check "the upper-mode take restores to the merged view" "$MG" "$W/r-upper" "${IGN[@]}" --no-root
	fi
	umount "$MG"
else
	fail "overlayfs mounts over a cairn mount"
	show "$LOG/overlay.err"
fi

cairn_ok umount umount "$M"
check "umount: the mount is gone" sh -c "! grep -q ' $M .* - fuse.cairn ' /proc/self/mountinfo"
check "umount: the server ended" gone "$PID"
expect_rc 6 umount-not-cairn umount "$W"

say "the access trace: the first mount's reads, hydrated first by later mounts"
if e2e_local; then
	check "the first mount to end stored the snapshot's access trace" test -s "$R/traces/$S"
fi
MT=$W/mnt-trace
mkdir -p "$MT"
"$CAIRN" mount --repo "$R" "$S" "$MT" --cache "$W/cache-trace" --hydrate trace --foreground --json \
	"${TMO[@]}" > "$LOG/trace.out" 2> "$LOG/trace.err" &
TPID=$!
MOUNTS+=("$MT")
for _ in $(seq 600); do grep -q '"event":"hydrated"' "$LOG/trace.out" && break; sleep 0.1; done
check "--hydrate trace: a hydrated event" grep -q '"event":"hydrated","bytes":[1-9]' "$LOG/trace.out"
PID=$TPID
GOT=$(stopped_read "$MT" "$W/big1.sums")
check "--hydrate trace: the traced file ($BIG) is local ($GOT)" test "$GOT" = "files 1 right 1 stalled False"
OTHER=$(cd "$SRC" && find files -type f -size +100k ! -path "$BIG" | head -n1)
one_sum "$SRC" "$OTHER" > "$W/other.sums"
GOT=$(stopped_read "$MT" "$W/other.sums")
check "--hydrate trace: a file the trace does not name ($OTHER) is not fetched ($GOT)" \
	test "$GOT" = "files 1 right 1 stalled True"
cairn_ok umount-trace umount "$MT"
check "the foreground server exits 0 after umount" wait "$TPID"

say "read-ahead: a file's first read fetches its directory's next small files, in batches"
RASRC=$W/rasrc
random_files "$RASRC" f%02d 12 64
take_json ahead --repo "$R" --root "$RASRC" --name ahead || e2e_finish
MRA=$W/mnt-ahead
if mount_at ahead "$SNAP" "$MRA" --cache "$W/cache-ahead" "${TMO[@]}"; then
	check "the mount reads ahead 255 pages (a read request's most), not the kernel's 128 KiB" \
		test "$(cat "/sys/class/bdi/$(mountpoint -d "$MRA")/read_ahead_kb")" = 1020
	cat "$MRA/f00" > /dev/null
	sleep 2 # the siblings' fetch runs behind the first read
	for f in f01 f02 f03 f04 f05 f06 f07 f08 f09 f10 f11; do one_sum "$RASRC" "$f"; done > "$W/ahead.sums"
	GOT=$(stopped_read "$MRA" "$W/ahead.sums")
	check "after reading f00 alone, f01..f11 are local ($GOT)" test "$GOT" = "files 11 right 11 stalled False"
	cairn_ok umount-ahead umount "$MRA"
	GOT=$(sed -n 's/.*mount: fetched \([0-9]*\) chunks, [0-9]* bytes, in \([0-9]*\) store calls.*/\1 \2/p' "$W/cache-ahead/mount.log")
	check "the 12 files' chunks came in fewer store calls than chunks ($GOT)" \
		sh -c "set -- $GOT; [ \"\$1\" -ge 12 ] && [ \"\$2\" -lt \"\$1\" ]"
	# f01..f11 were complete when opened: their fetch registered their
	# passthrough backing, so that their opens cost the server no syscall
	GOT=$(sed -n 's/.*store calls; \([0-9]*\) files backed for passthrough by their fetch, \([0-9]*\) of them opened.*/\1 \2/p' "$W/cache-ahead/mount.log")
	check "the 11 files fetched ahead were backed for passthrough by their fetch and opened so ($GOT)" \
		sh -c "set -- $GOT; [ \"\${1:-0}\" -ge 11 ] && [ \"\${2:-0}\" -ge 11 ]"
	# nothing is written through the mount: a close costs no FLUSH request
	GOT=$(sed -n 's/.*mount: answered [0-9]* requests: \([0-9]*\) opens (.*), [0-9]* reads ([0-9]* spliced), \([0-9]*\) flushes.*/\1 \2/p' "$W/cache-ahead/mount.log")
	check "12 files opened and closed, no FLUSH request ($GOT)" \
		sh -c "set -- $GOT; [ \"\${1:-0}\" -ge 12 ] && [ \"\${2:-1}\" = 0 ]"
	# the log's entries are what the next mount trusts: it fetches nothing
	if mount_at ahead-again "$SNAP" "$MRA" --cache "$W/cache-ahead" --hydrate none "${TMO[@]}"; then
		for f in f00 f01 f02 f03 f04 f05 f06 f07 f08 f09 f10 f11; do one_sum "$RASRC" "$f"; done > "$W/ahead-all.sums"
		readcheck ahead-again "$MRA" "$W/ahead-all.sums"
		cairn_ok umount-ahead-again umount "$MRA"
		check "a new mount on the same cache reads the 12 files right ($NOK) and fetches nothing" \
			sh -c "[ $NOK = 12 ] && [ \$(grep -c 'mount: fetched' '$W/cache-ahead/mount.log') = 1 ]"
	fi
fi

say "read-ahead: opens in passthrough keep a directory's read-ahead going, and are traced"
DIRSRC=$W/dirsrc
random_files "$DIRSRC" f%02d 40 64
take_json dir40 --repo "$R" --root "$DIRSRC" --name dir40 || e2e_finish
MDR=$W/mnt-dir40
if mount_at dir40 "$SNAP" "$MDR" --cache "$W/cache-dir40" --hydrate none "${TMO[@]}"; then
	cat "$MDR/f00" > /dev/null # its first read queues f01..f32
	sleep 2
	# a reader of files fetched ahead: each opens in passthrough (no read
	# reaches the server); the opens queue the directory's next files
	for i in $(seq 1 39); do cat "$MDR/$(printf f%02d "$i")" > /dev/null; sleep 0.05; done
	cairn_ok umount-dir40 umount "$MDR"
	GOT=$(sed -n 's/.*mount: answered [0-9]* requests: \([0-9]*\) opens (\([0-9]*\) in passthrough).*/\1 \2/p' "$W/cache-dir40/mount.log")
	check "40 files read one after the other: all but the first opened in passthrough ($GOT)" test "$GOT" = "40 39"
	if e2e_local; then
		check "the access trace names a file read in passthrough (f20)" grep -aq f20 "$R/traces/$SNAP"
	fi
fi

say "SIGKILL of the server while readers hash large files"
BIGSRC=$W/bigsrc
random_files "$BIGSRC" big%d 3 $((24 << 10))
take_json big --repo "$R" --root "$BIGSRC" --name big || e2e_finish
SB=$SNAP
sums "$BIGSRC" > "$W/big.sums"
MB=$W/mnt-big
mount_at big "$SB" "$MB" --cache "$W/cache-big" "${TMO[@]}" || e2e_finish
DELAY=$((RANDOM % 800 + 50))
for f in big0 big1 big2; do
	(rc=0; timeout -s KILL 60 sha256sum "$MB/$f" > "$LOG/kill-$f.out" 2> "$LOG/kill-$f.err" || rc=$?; echo $rc > "$LOG/kill-$f.rc") &
done
sleep "0.$(printf %03d "$DELAY")"
kill -9 "$PID"
wait
for f in big0 big1 big2; do
	rc=$(cat "$LOG/kill-$f.rc")
	want=$(sha256sum "$BIGSRC/$f" | cut -d' ' -f1)
	if [ "$rc" = 137 ]; then
		fail "killed after ${DELAY} ms: the reader of $f does not hang"
	elif [ "$rc" = 0 ]; then
		check "killed after ${DELAY} ms: $f read whole has the right bytes" test "$(cut -d' ' -f1 "$LOG/kill-$f.out")" = "$want"
	else
		ok "killed after ${DELAY} ms: $f failed with an error ($(head -c 100 "$LOG/kill-$f.err"))"
	fi
done
check "a dead server's mount answers with an error" sh -c "! cat '$MB/big0' > /dev/null 2>&1"
cairn_ok umount-dead umount "$MB"
check "umount after a dead server: the mount is gone" sh -c "! grep -q ' $MB .* - fuse.cairn ' /proc/self/mountinfo"
if mount_at big-again "$SB" "$MB" --cache "$W/cache-big" "${TMO[@]}"; then
	readcheck big-again "$MB" "$W/big.sums"
	check "a new mount on the same cache reads every file right" test "$NOK" = 3
	cairn_ok umount-big umount "$MB"
fi
if e2e_local; then
	# what the records say is complete is read from the cache, not the store
	RN=$W/repo-nodata
	cp -a "$R" "$RN"
	GONE=$(data_pack "$RN")
	rm -f "$GONE"
	if MREPO=$RN mount_at cache-only "$SB" "$MB" --cache "$W/cache-big" "${TMO[@]}"; then
		readcheck cache-only "$MB" "$W/big.sums"
		check "a complete cache is read without the store (a data pack removed: $NOK of 3 right)" test "$NOK" = 3
		cairn_ok umount-cache-only umount "$MB"
	fi
	# a torn tail of the log (its first entry kept, then half an entry) is
	# cut: what it named is fetched again and recorded after the cut, so that
	# the next mount reads everything without the store
	truncate -s $((16 + 52 + 30)) "$W/cache-big/records"
	if mount_at torn "$SB" "$MB" --cache "$W/cache-big" "${TMO[@]}"; then
		readcheck torn "$MB" "$W/big.sums"
		check "a torn log: every file right ($NOK of 3)" test "$NOK" = 3
		cairn_ok umount-torn umount "$MB"
		check "the torn entry was cut: the log is whole entries" \
			sh -c "[ \$(( (\$(stat -c %s '$W/cache-big/records') - 16) % 52 )) = 0 ]"
	fi
	if MREPO=$RN mount_at cache-only-again "$SB" "$MB" --cache "$W/cache-big" "${TMO[@]}"; then
		readcheck cache-only-again "$MB" "$W/big.sums"
		check "what was fetched again after the cut is recorded: read without the store ($NOK of 3 right)" \
			test "$NOK" = 3
		cairn_ok umount-cache-only-again umount "$MB"
	fi
fi
check "one inode a content: the cache holds no record files, one log" \
	sh -c "[ -s '$W/cache-big/records' ] && [ -z \"\$(find '$W/cache-big/files' -name '*.rec')\" ]"
# what no record names is never trusted: garbage in the cache files, and a
# log whose header is not of this format (another version), are fetched again
for f in "$W"/cache-big/files/*/*; do
	"$PY" -c 'import os, sys; n = os.path.getsize(sys.argv[1]); open(sys.argv[1], "r+b").write(b"\xaa" * n)' "$f"
done
"$PY" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(8); v = f.read(1); f.seek(8); f.write(bytes([v[0] + 1]))' \
	"$W/cache-big/records"
if mount_at untrusted "$SB" "$MB" --cache "$W/cache-big" "${TMO[@]}"; then
	readcheck untrusted "$MB" "$W/big.sums"
	check "a log of another version is not trusted: every file right ($NOK of 3)" test "$NOK" = 3
	cairn_ok umount-untrusted umount "$MB"
fi

say "gc --grace 0 beside a mount of a forgotten snapshot"
small_tree "$W/gcsrc" "$SEED" 16
take_json gcme --repo "$R" --root "$W/gcsrc" --name gcme || e2e_finish
SG=$SNAP
sums "$W/gcsrc" > "$W/gc.sums"
MG2=$W/mnt-gc
if mount_at gc "$SG" "$MG2" --cache "$W/cache-gc" "${TMO[@]}"; then
	cairn_ok forget-gcme forget --repo "$R" "$SG"
	cairn_ok gc-grace0 gc --repo "$R" --grace 0
	readcheck gc "$MG2" "$W/gc.sums"
	check "after gc, every file of the mounted forgotten snapshot reads right" \
		test "$NBAD$NERR$NHANG" = 000 -a "$NOK" -gt 0
	cairn_ok umount-gc umount "$MG2"
	if e2e_local; then
		check "the mount of the forgotten snapshot stored its trace" test -s "$R/traces/$SG"
		cairn_ok gc-after gc --repo "$R" --grace 0
		check "gc removes a forgotten snapshot's trace" test ! -e "$R/traces/$SG"
	fi
fi

if e2e_local; then
	say "a corrupt chunk is EIO, and named in the log"
	RB=$W/repo-bad
	cp -a "$R" "$RB"
	PACK=$(cd "$RB" && find packs -type f -printf '%s %p\n' | sort -nr | head -n1 | cut -d' ' -f2)
	"$PY" - "$RB/$PACK" <<'EOF'
import os, sys
p = sys.argv[1]
size = os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(size // 2)
    b = f.read(1)
    f.seek(size // 2)
    f.write(bytes([b[0] ^ 0x5A]))
EOF
	MC=$W/mnt-bad
	if MREPO=$RB mount_at corrupt "$SB" "$MC" --cache "$W/cache-bad" "${TMO[@]}" --log "$LOG/corrupt.log"; then
		readcheck corrupt "$MC" "$W/big.sums"
		check "corrupt chunk: no reader gets wrong bytes or hangs" test "$NBAD$NHANG" = 00
		check "corrupt chunk: a read fails with EIO" grep -q 'Input/output error' "$LOG/corrupt.read"
		check "corrupt chunk: the log names the chunk and its pack" \
			grep -q -E 'chunk [0-9a-f]{64} in packs/' "$LOG/corrupt.log"
		show "$LOG/corrupt.log"
		cairn_ok umount-bad umount "$MC"
	fi
	say "a store that never answers: EIO after --fetch-timeout, and umount still ends the server"
	RS=$W/repo-stall
	cp -a "$R" "$RS"
	# a pack of file data only (no trees: the mount itself must not wait on it)
	STALL=$(data_pack "$RS")
	if [ -n "$STALL" ]; then
		rm "$STALL"
		mkfifo "$STALL" # opening it for reading waits for a writer that never comes
		MS=$W/mnt-stall
		if MREPO=$RS mount_at stall "$SB" "$MS" --cache "$W/cache-stall" --fetch-timeout 2000 --log "$LOG/stall.log"; then
			T0=$(date +%s%N)
			readcheck stall "$MS" "$W/big.sums"
			T1=$(date +%s%N)
			check "stalled store: no reader gets wrong bytes or hangs" test "$NBAD$NHANG" = 00
			check "stalled store: a read fails with EIO" grep -q 'Input/output error' "$LOG/stall.read"
			check "stalled store: the log says which chunk got no answer" \
				grep -q -E 'chunk [0-9a-f]{64}: no answer from the store in 2000 ms' "$LOG/stall.log"
			check "stalled store: three readers done in $(( (T1 - T0) / 1000000 )) ms (bounded waits)" \
				test $(( (T1 - T0) / 1000000 )) -lt 30000
			cairn_ok umount-stall umount "$MS"
			check "stalled store: umount ended the server" gone "$PID"
		fi
	else
		fail "the big snapshot has a pack without trees"
	fi

fi

say "store read faults are EIO, never other bytes"
FAULT_EIO=0
# The io layer fails reads n..n+7 (it takes 8 faults). Fetchers read a
# batch of chunks in one read, a failed batch again a chunk at a time, and
# a failed read-ahead is retried by its reader, so a fault reaches a reader
# only in the first fetches after the mount: find how many reads the mount
# makes (it fails while the faults fall among them), then fail the next.
fault_spec() { seq -s, -f "read:%g:EIO" "$1" $(($1 + 7)); }
lo=1 hi=4000
while [ "$lo" -lt "$hi" ]; do
	mid=$(((lo + hi) / 2))
	MF=$W/mnt-fault-probe
	mkdir -p "$MF"
	if CAIRN_FAULT=$(fault_spec "$mid") "$CAIRN" mount --repo "$R" "$S" "$MF" --cache "$W/cache-fault-probe" \
		--hydrate none "${TMO[@]}" > /dev/null 2>&1; then
		"$CAIRN" umount "$MF"
		hi=$mid
	else
		lo=$((mid + 1))
	fi
	rm -rf "$W/cache-fault-probe"
done
say "the mount makes $((lo - 1)) reads; reads from $lo on are the readers'"
for n in 60 "$lo" $((lo + 1)) $((lo + RANDOM % 8)); do
	MF=$W/mnt-fault-$n
	mkdir -p "$MF"
	spec=$(fault_spec "$n")
	run "mount-fault-$n" env CAIRN_FAULT="$spec" "$CAIRN" mount --repo "$R" "$S" "$MF" \
		--cache "$W/cache-fault-$n" --log "$LOG/fault-$n.log" "${TMO[@]}"
	if [ "$RC" != 0 ]; then
		check "fault read:$n at mount time: one error line, exit 1 or 4 (got $RC)" \
			sh -c "[ '$RC' = 1 -o '$RC' = 4 ] && [ \$(wc -l < '$ERR') = 1 ]"
		continue
	fi
	MOUNTS+=("$MF")
	readcheck "fault-$n" "$MF" "$W/fixture.sums"
	check "fault read:$n: no reader gets wrong bytes or hangs" test "$NBAD$NHANG" = 00
	if [ "$NERR" -gt 0 ]; then
		FAULT_EIO=$((FAULT_EIO + 1))
		check "fault read:$n: the failed read is EIO" grep -q 'Input/output error' "$LOG/fault-$n.read"
		check "fault read:$n: the log names the file and the error" grep -q 'read of /.* failed: ' "$LOG/fault-$n.log"
		readcheck "fault-$n-again" "$MF" "$W/fixture.sums"
		check "fault read:$n: read again, every file is right (the fault was passing)" test "$NOK" -gt 0 -a "$NBAD$NERR$NHANG" = 000
	fi
	cairn_ok "umount-fault-$n" umount "$MF"
done
check "some store fault reached a file read and was EIO ($FAULT_EIO)" test "$FAULT_EIO" -gt 0

say "read-ahead: a sequential reader's read-ahead grows (8 chunks, doubled at each read up to 64)"
SEQSRC=$W/seqsrc
random_files "$SEQSRC" seq%d 1 $((64 << 10))
take_json seq --repo "$R" --root "$SEQSRC" --name seq || e2e_finish
MSQ=$W/mnt-seq
if mount_at seq "$SNAP" "$MSQ" --cache "$W/cache-seq" --hydrate none "${TMO[@]}"; then
	dd if="$MSQ/seq0" of=/dev/null bs=1M count=8 2>/dev/null
	sleep 2 # the read-ahead's fetches end
	cairn_ok umount-seq umount "$MSQ"
	# 8 MiB read (and the kernel's 1 MiB ahead) of ~0.5 MiB chunks: 8 chunks
	# ahead are at most 25 MiB in all, 64 chunks ahead about 45 MiB
	GOT=$(sed -n 's/.*mount: fetched [0-9]* chunks, \([0-9]*\) bytes, in [0-9]* store calls.*/\1/p' "$W/cache-seq/mount.log")
	check "reading the first 8 MiB of a 64 MiB file fetched more than 32 MiB ($GOT bytes)" \
		test "${GOT:-0}" -gt $((32 << 20))
fi

say "READ replies: spliced from the cache file to /dev/fuse"
if mount_at splice "$SNAP" "$MSQ" --cache "$W/cache-splice" --hydrate none "${TMO[@]}"; then
	# opened before it is local: the server answers its reads, each spliced
	# (the kernel copies the cache file's pages once, not through memory)
	check "seq0 read whole through the server is right" \
		test "$(sha256sum < "$MSQ/seq0")" = "$(sha256sum < "$SEQSRC/seq0")"
	cairn_ok umount-splice umount "$MSQ"
	GOT=$(sed -n 's/.*mount: answered [0-9]* requests: .*, \([0-9]*\) reads (\([0-9]*\) spliced).*/\1 \2/p' "$W/cache-splice/mount.log")
	check "every READ reply was spliced ($GOT)" \
		sh -c "set -- $GOT; [ \"\${1:-0}\" -ge 32 ] && [ \"\$1\" = \"\${2:-}\" ]"
fi

say "read-ahead advice: fetchers advise the store of the runs next in line; failed advice fails no read"
SEQSUM=$(sha256sum < "$SEQSRC/seq0")
MAV=$W/mnt-advise
mkdir -p "$MAV"
run mount-advise-eio env CAIRN_FAULT="$(seq -s, -f 'store.advise:%g:EIO' 1 8)" "$CAIRN" mount --repo "$R" "$SNAP" \
	"$MAV" --cache "$W/cache-advise-eio" --hydrate none "${TMO[@]}"
if [ "$RC" = 0 ]; then
	MOUNTS+=("$MAV")
	check "the first 8 advice fail: seq0 reads right through the mount" \
		test "$(sha256sum < "$MAV/seq0")" = "$SEQSUM"
	cairn_ok umount-advise-eio umount "$MAV"
else
	fail "mount with failing advice exits 0 (got $RC)"
fi
run mount-advise-crash env CAIRN_FAULT=store.advise:1:CRASH "$CAIRN" mount --repo "$R" "$SNAP" "$MAV" \
	--cache "$W/cache-advise-crash" --hydrate none --json "${TMO[@]}"
if [ "$RC" = 0 ]; then
	MOUNTS+=("$MAV")
	APID=$(sed -n 's/.*"event":"ready".*"pid":\([0-9]*\).*/\1/p' "$OUT")
	# the server ends at its first advice: a stream's read-ahead is advised
	check "a crash at the first advice: reading seq0 fails" sh -c "! cat '$MAV/seq0' > /dev/null 2>&1"
	check "a crash at the first advice: the server is gone" gone "$APID"
	cairn_ok umount-advise-crash umount "$MAV"
else
	fail "mount with a crash at the first advice exits 0 (got $RC)"
fi

e2e_finish
