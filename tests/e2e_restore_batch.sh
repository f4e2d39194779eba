#!/bin/bash
# e2e_restore_batch: restore's batches of small files (engine/restore/files.c).
# A directory's files under 256 KiB are restored together: their chunks read
# in pack order, neighbouring ranges as one read, then the files written
# whole. The tree stays exact (empty files, odd sizes, small sparse files,
# hardlinks inside a batch, xattrs, times, more files than a batch holds);
# the packs are read in a few large reads, not one a file; a damaged chunk
# still fails the restore with the file's path (one file at a time after the
# batch failed), and nothing is left of that file. More than FLUSH_BYTES
# (64 MiB) of small files are written out while the restore goes on (a
# syncfs of the flusher's), not all at the final syncfs.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start restore_batch
e2e_seed

R=$(e2e_repo repo)
SRC=$W/src
mkdir -p "$SRC/many" "$SRC/mixed/sub"
"$PY" - "$SRC" "$SEED" <<'EOF'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
K = 1024
# more files than one batch holds (64), each different
for i in range(300):
    with open(os.path.join(root, "many", "f%03d" % i), "w") as f:
        f.write("file %d %s\n" % (i, rng.randbytes(40 + i % 90).hex()))
# odd sizes, empty files, the batch limit -1, files and a subdirectory interleaved
for n in [0, 1, 4095, 4097, 65537, 100 * K + 3, 256 * K - 1, 0]:
    with open(os.path.join(root, "mixed", "s%d-%d" % (n, rng.randrange(1 << 30))), "wb") as f:
        f.write(rng.randbytes(n))
for i in range(5):
    with open(os.path.join(root, "mixed", "sub", "t%d" % i), "wb") as f:
        f.write(rng.randbytes(rng.randrange(1, 9000)))
def sparse(name, size, pieces):
    with open(os.path.join(root, "mixed", name), "wb") as f:
        f.truncate(size)
        for off, n in pieces:
            f.seek(off)
            f.write(rng.randbytes(n))
# small sparse files: a hole in the middle, at the end, at the start, nothing else
sparse("hole-mid", 200 * K, [(0, 4096), (150 * K, 5000)])
sparse("hole-end", 180 * K + 5, [(4096, 3000)])
sparse("hole-start", 120 * K, [(100 * K, 20 * K)])
sparse("all-hole", 64 * K, [])
# the damage test's file: incompressible, stored as is, found in its pack
with open(os.path.join(root, "mixed", "victim"), "wb") as f:
    f.write(rng.randbytes(6000))
EOF
ln "$SRC/many/f007" "$SRC/many/f007-link"
ln "$SRC/many/f007" "$SRC/mixed/f007-link"
ln "$SRC/mixed/sub/t1" "$SRC/mixed/t1-link"
setfattr -n user.note -v batch "$SRC/many/f010"
chmod 4755 "$SRC/many/f011"
touch -d '2001-02-03 04:05:06.123456789' "$SRC/many/f012" "$SRC/mixed/hole-mid"

cairn_ok init init --repo "$R" || e2e_finish
cairn_ok take take --repo "$R" --root "$SRC" --name b1 -q || e2e_finish

say "small files restored in batches equal the source"
if cairn_ok restore restore --repo "$R" b1 "$W/r1"; then
	treecmp_check "batched restore equals the source" "$SRC" "$W/r1" --no-root
fi

say "the packs are read in a few large reads, not one a file"
if command -v strace > /dev/null; then
	# -y: each fd's path, to count the reads of packs alone
	strace -f -qq -y -e trace=pread64 -o "$W/strace.txt" "$CAIRN" restore --repo "$R" b1 "$W/r2" > /dev/null 2>&1 || true
	reads=$(grep -c '/packs/' "$W/strace.txt" || true)
	# 330 files: one read a file before batches
	check "restoring 330 small files took $reads reads of packs (fewer than 60)" test "$reads" -lt 60
	treecmp_check "the traced restore equals the source" "$SRC" "$W/r2" --no-root
else
	echo "   (no strace: read count not checked)"
fi

say "100 MB of small files: written out during the restore, not all at its end"
mkdir -p "$W/bulk"
"$PY" - "$W/bulk" "$SEED" <<'EOF'
import os, random, sys
root, rng = sys.argv[1], random.Random(int(sys.argv[2]))
block = rng.randbytes(4096) # the same bytes again and again: a small repository
for i in range(400):
    with open(os.path.join(root, "b%03d" % i), "wb") as f:
        f.write(b"%d\n" % i + block * 62)
EOF
cairn_ok take-bulk take --repo "$R" --root "$W/bulk" --name bulk -q || e2e_finish
if command -v strace > /dev/null; then
	strace -f -qq -e trace=syncfs -o "$W/syncfs.txt" "$CAIRN" restore --repo "$R" bulk "$W/r4" > /dev/null 2>&1 || true
	syncs=$(grep -c 'syncfs(' "$W/syncfs.txt" || true)
	# one at the end only, without the flusher
	check "restoring 100 MB of small files made $syncs syncfs calls (2 or more)" test "$syncs" -ge 2
	treecmp_check "the bulk restore equals the source" "$W/bulk" "$W/r4" --no-root
else
	echo "   (no strace: flushes not checked)"
fi

say "a damaged chunk in a batch: the restore fails naming the file, nothing of it is left"
cp -a "$R" "$W/damaged"
"$PY" - "$W/damaged" "$SRC/mixed/victim" <<'EOF'
import os, sys
repo, victim = sys.argv[1], open(sys.argv[2], "rb").read()
needle = victim[1000:1064]
for d, _, files in os.walk(os.path.join(repo, "packs")):
    for name in files:
        p = os.path.join(d, name)
        data = bytearray(open(p, "rb").read())
        at = data.find(needle)
        if at >= 0:
            data[at + 10] ^= 0xff
            os.chmod(p, 0o644)
            open(p, "wb").write(data)
            sys.exit(0)
sys.exit("victim's bytes not found in any pack")
EOF
expect_rc 4 restore-damaged restore --repo "$W/damaged" b1 "$W/r3"
check "the message names the damaged file" grep -q "mixed/victim" "$ERR"
check "the damaged file is not left behind" test ! -e "$W/r3/mixed/victim"
e2e_finish
