# Helpers shared by the storage-admin tests (fsck, gc, crash, faults,
# concurrency); sourced after tests/lib.sh.

# small_tree DIR SEED [FILES]: a small tree of random files (some larger than
# a chunk, some empty, nested directories, a symlink and a hardlink), fast
# to take, restore and compare.
small_tree() {
	"$PY" - "$1" "$2" "${3:-24}" <<'PYEOF'
import os, random, sys
top, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
os.makedirs(top, exist_ok=True)
for i in range(n):
    d = os.path.join(top, "d%d" % (i % 4), "e%d" % (i % 3))
    os.makedirs(d, exist_ok=True)
    size = rnd.choice([0, 100, 5000, 40000, 150000, 400000])
    with open(os.path.join(d, "f%d-%d" % (seed, i)), "wb") as f:
        f.write(rnd.randbytes(size))
os.symlink("d0/e0", os.path.join(top, "link"))
first = os.path.join(top, "d0", "e0", "f%d-0" % seed)
os.link(first, os.path.join(top, "hard"))
PYEOF
}

# tree_sum DIR: one line per entry (path, type, mode, size, content hash,
# link target), sorted: equal sums mean equal trees for these tests.
tree_sum() {
	"$PY" - "$1" <<'PYEOF'
import hashlib, os, stat, sys
top = sys.argv[1]
out = []
for root, dirs, files in os.walk(top):
    for name in sorted(dirs + files):
        p = os.path.join(root, name)
        st = os.lstat(p)
        rel = os.path.relpath(p, top)
        if stat.S_ISLNK(st.st_mode):
            out.append("%s l %s" % (rel, os.readlink(p)))
        elif stat.S_ISREG(st.st_mode):
            h = hashlib.sha256(open(p, "rb").read()).hexdigest()
            out.append("%s f %o %d %s" % (rel, st.st_mode, st.st_size, h))
        else:
            out.append("%s d %o" % (rel, st.st_mode))
print(hashlib.sha256("\n".join(sorted(out)).encode()).hexdigest())
PYEOF
}

# index_entries REPO: "segment pack offset stored_len type id" for every entry
# of every index segment (format.h), one a line.
index_entries() {
	"$PY" - "$1" <<'PYEOF'
import os, struct, sys
repo = sys.argv[1]
for name in sorted(os.listdir(os.path.join(repo, "index"))):
    data = open(os.path.join(repo, "index", name), "rb").read()
    try:
        body = data[16:-8]
        (npacks,) = struct.unpack_from("<I", body, 0)
        packs = [body[4 + 16 * i: 20 + 16 * i].hex() for i in range(npacks)]
        pos = 4 + 16 * npacks
        (n,) = struct.unpack_from("<I", body, pos)
        pos += 4
        for i in range(n):
            e = body[pos + 52 * i: pos + 52 * (i + 1)]
            pk, off, raw, stored = struct.unpack_from("<IIII", e, 32)
            print(name, packs[pk], off, stored, e[48], e[:32].hex())
    except Exception:
        pass
PYEOF
}

# snap_ids REPO: the ids of the committed snapshots.
snap_ids() { ls "$1/snapshots" 2>/dev/null | grep -E '^[0-9a-f]{64}$' || true; }

# fsck_ok LABEL REPO: a check that fsck exits 0.
fsck_ok() {
	cairn "$1" fsck --repo "$2" -q
	if [ "$RC" = 0 ]; then ok "$1: fsck passes"; else fail "$1: fsck passes (exit $RC)"; show "$OUT"; show "$ERR"; fi
}

# index_drop SEGMENT_FILE ID: rewrite an index segment without the entry of
# blob ID (the checksum recomputed through libxxhash): the blob is gone as
# far as readers know, while its bytes stay in the pack.
index_drop() {
	"$PY" - "$1" "$2" <<'PYEOF'
import ctypes, ctypes.util, os, struct, sys
path, drop = sys.argv[1], bytes.fromhex(sys.argv[2])
lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
lib.XXH3_64bits.restype = ctypes.c_uint64
lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
data = open(path, "rb").read()
head, body = data[:16], data[16:-8]
(npacks,) = struct.unpack_from("<I", body, 0)
pos = 4 + 16 * npacks
(n,) = struct.unpack_from("<I", body, pos)
entries = [body[pos + 4 + 52 * i: pos + 4 + 52 * (i + 1)] for i in range(n)]
kept = [e for e in entries if e[:32] != drop]
assert len(kept) == n - 1, "entry not found"
out = head + body[:pos] + struct.pack("<I", len(kept)) + b"".join(kept)
out += struct.pack("<Q", lib.XXH3_64bits(out, len(out)))
os.chmod(path, 0o644)
open(path, "wb").write(out)
PYEOF
}

# fake_session REPO PID START_OFFSET_S: a session record (format.h) of
# process PID on this host, started START_OFFSET_S seconds from now (may be
# negative), expiring in 10 minutes.
fake_session() {
	"$PY" - "$1" "$2" "$3" "$(hostname)" <<'PYEOF'
import ctypes, ctypes.util, os, struct, sys, time
repo, pid, off, host = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
lib.XXH3_64bits.restype = ctypes.c_uint64
lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
now = time.time_ns()
rec = b"CAIRNSES" + struct.pack("<II", 1, 0) + struct.pack("<qqI", now + off * 10**9, now + 600 * 10**9, pid)
rec += struct.pack("<H", len(host)) + host
rec += struct.pack("<Q", lib.XXH3_64bits(rec, len(rec)))
os.makedirs(os.path.join(repo, "gc", "sessions"), exist_ok=True)
open(os.path.join(repo, "gc", "sessions", "%032x" % pid), "wb").write(rec)
PYEOF
}

# repo_files REPO: the files in a repository other than config and the
# users/ records of the accounting module, one a line.
repo_files() { (cd "$1" && find . -type f ! -name config ! -path './users/*' ! -name .takeover | sort); }
