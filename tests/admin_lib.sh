# Helpers shared by the storage-admin tests (fsck, gc, crash, faults,
# concurrency); sourced after tests/lib.sh.

# small_tree DIR SEED [FILES [SIZE]]: a small tree of random files (some
# larger than a chunk, some empty, nested directories, a symlink and a
# hardlink), fast to take, restore and compare. With SIZE every file has
# SIZE bytes, so the tree's total does not depend on the seed.
small_tree() {
	"$PY" - "$1" "$2" "${3:-24}" "${4:-}" <<'PYEOF'
import os, random, sys
top, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fixed = int(sys.argv[4]) if sys.argv[4] else None
rnd = random.Random(seed)
os.makedirs(top, exist_ok=True)
for i in range(n):
    d = os.path.join(top, "d%d" % (i % 4), "e%d" % (i % 3))
    os.makedirs(d, exist_ok=True)
    size = fixed if fixed is not None else rnd.choice([0, 100, 5000, 40000, 150000, 400000])
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
        n, nblocks, npacks, per = struct.unpack_from("<IIII", data, len(data) - 24)
        ptab = 16 + n * 52 + nblocks * 16
        packs = [data[ptab + 16 * i: ptab + 16 * (i + 1)].hex() for i in range(npacks)]
        for i in range(n):
            pos = 16 + (i // per) * (per * 52 + 8) + (i % per) * 52
            e = data[pos: pos + 52]
            pk, off, raw, stored = struct.unpack_from("<IIII", e, 32)
            print(name, packs[pk], off, stored, e[48], e[:32].hex())
    except Exception:
        pass
PYEOF
}

# snap_ids REPO: the ids of the committed snapshots.
snap_ids() { repo_ls "$1" snapshots | cut -d' ' -f1 | sed 's|^snapshots/||' | grep -E '^[0-9a-f]{64}$' || true; }

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
lib.XXH3_64bits_withSeed.restype = ctypes.c_uint64
lib.XXH3_64bits_withSeed.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
data = open(path, "rb").read()
n, nblocks, npacks, per = struct.unpack_from("<IIII", data, len(data) - 24)
ptab = 16 + n * 52 + nblocks * 16
packs = [data[ptab + 16 * i: ptab + 16 * (i + 1)] for i in range(npacks)]
entries = []
for i in range(n):
    pos = 16 + (i // per) * (per * 52 + 8) + (i % per) * 52
    e = data[pos: pos + 52]
    entries.append((e[:32], packs[struct.unpack_from("<I", e, 32)[0]], e[36:]))
kept = [e for e in entries if e[0] != drop]
assert len(kept) == n - 1, "entry not found"
# written again in the layout of format.h ("index seg"), the pack table
# holding only the packs still used
used = sorted(set(e[1] for e in kept))
head = data[:16]
blocks, fences = b"", b""
for b in range(0, len(kept), per):
    blk = b"".join(e[0] + struct.pack("<I", used.index(e[1])) + e[2] for e in kept[b: b + per])
    blocks += blk + struct.pack("<Q", lib.XXH3_64bits_withSeed(blk, len(blk), b // per))
    fences += kept[b][0][:8]
tail = fences + b"".join(used) + struct.pack("<IIII", len(kept), (len(kept) + per - 1) // per, len(used), per)
out = head + blocks + tail + struct.pack("<Q", lib.XXH3_64bits_withSeed(tail, len(tail), lib.XXH3_64bits(head, 16)))
os.chmod(path, 0o644)
open(path, "wb").write(out)
PYEOF
}

# fake_session REPO PID START_OFFSET_S: a session record (format.h) of
# process PID on this host, started START_OFFSET_S seconds from now (may be
# negative), expiring in 10 minutes.
fake_session() {
	"$PY" - "$1" "$2" "$3" "$(hostname)" "$STORE_TOOL" <<'PYEOF'
import ctypes, ctypes.util, os, struct, subprocess, sys, time
repo, pid, off, host = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
lib.XXH3_64bits.restype = ctypes.c_uint64
lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
now = time.time_ns()
rec = b"CAIRNSES" + struct.pack("<II", 1, 0) + struct.pack("<qqI", now + off * 10**9, now + 600 * 10**9, pid)
rec += struct.pack("<H", len(host)) + host
rec += struct.pack("<Q", lib.XXH3_64bits(rec, len(rec)))
subprocess.run([sys.executable, sys.argv[5], "put", repo, "gc/sessions/%032x" % pid], input=rec, check=True)
PYEOF
}

# repo_files REPO: the files in a repository other than config, the
# users/ records of the accounting module and locks/: a lock whose holder
# was killed stays until its expiry lets the next holder take it over
# (by design, on every backend; e2e_crash's last kill may leave one).
repo_files() {
	if [ -d "$1" ]; then
		(cd "$1" && find . -type f ! -name config ! -path './users/*' ! -path './locks/*' | sort)
	else
		repo_ls "$1" | cut -d' ' -f1 | grep -v -E '^(config$|users/|locks/)' | sed 's|^|./|' || true
	fi
}
