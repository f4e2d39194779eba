#!/bin/bash
# e2e_restore_write: restore's file data writer (engine/restore_write.c).
# Files of 256 KiB and more are written with O_DIRECT from whole blocks and
# stay out of the page cache, and the packs are read past it; the restored tree is exact whatever the sizes
# (0, 1, block +/- 1, the direct threshold and the staging buffer +/- 1),
# holes (extents ending inside a block, a file ending in a hole or in data),
# hardlinks, xattrs and times. Where the file system refuses O_DIRECT
# (forced: CAIRN_FAULT=direct:N:EINVAL, at the first request and in the
# middle of the restore) restore falls back to buffered writes and the tree
# is still exact; the same onto a tmpfs.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start restore_write
e2e_seed

R=$(e2e_repo repo)
SRC=$W/src
K=1024
M=$((1024 * 1024))

say "a tree of file sizes around the block, the direct threshold and the staging buffer"
mkdir -p "$SRC/sizes" "$SRC/sparse" "$SRC/links"
"$PY" - "$SRC" "$SEED" <<'EOF'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
K, M = 1024, 1 << 20
sizes = [0, 1, 511, 4095, 4096, 4097, 65537, 256 * K - 1, 256 * K, 256 * K + 1,
         M + 1, 2 * M - 1, 2 * M, 2 * M + 1, 5 * M + 123]
for n in sizes:
    with open(os.path.join(root, "sizes", "f%d" % n), "wb") as f:
        f.write(rng.randbytes(n))
def sparse(name, size, pieces):
    p = os.path.join(root, "sparse", name)
    with open(p, "wb") as f:
        f.truncate(size)
        for off, n in pieces:
            f.seek(off)
            f.write(rng.randbytes(n))
# data that ends inside a block, then a hole; the file ends in a hole
sparse("mid", 8 * M, [(M + 10, 100), (3 * M, 5000), (5 * M + 4096, 300 * K + 7)])
# the file ends in data that ends inside its last block
sparse("tail-data", 6 * M + 777, [(2 * M, 4096), (6 * M - 4096, 4096 + 777)])
# data right at the start, a hole at the end
sparse("head", 4 * M, [(0, M + 3)])
# nothing but a hole, larger than the threshold
sparse("all-hole", 3 * M, [])
EOF
head -c $((3 * M + 5)) /dev/urandom > "$SRC/links/big"
ln "$SRC/links/big" "$SRC/links/big-2"
ln "$SRC/links/big" "$SRC/sizes/big-3"
setfattr -n user.note -v "restore_write" "$SRC/links/big"
touch -d '2001-02-03 04:05:06.123456789' "$SRC/sizes/f$((5 * M + 123))" "$SRC/sparse/mid"
# every size restored must be what the source holds, holes included
treecmp() { treecmp_check "$1" "$SRC" "$2" --no-root; }

cairn_ok init init --repo "$R" || e2e_finish
cairn_ok take take --repo "$R" --root "$SRC" --name w1 -q || e2e_finish

resident() { fincore --bytes --noheadings --output RES "$1" | tr -d ' '; }
# fincore sees the page cache only on a file system that has one of its own
fstype=$(stat -f -c %T "$W")
pagecache=0
command -v fincore > /dev/null && case "$fstype" in ext2/ext3|ext4|xfs|btrfs) pagecache=1 ;; esac

say "restore: files >= 256 KiB written with O_DIRECT"
if cairn_ok restore restore --repo "$R" w1 "$W/r1"; then
	if [ "$pagecache" = 1 ]; then
		big=$W/r1/sizes/f$((5 * M + 123))
		check "a 5 MiB file restored directly keeps at most its last page cached (resident $(resident "$big"))" \
			test "$(resident "$big")" -le 4096
		check "a sparse file restored directly is not cached (resident $(resident "$W/r1/sparse/mid"))" \
			test "$(resident "$W/r1/sparse/mid")" -le 4096
		small=$W/r1/sizes/f65537
		check "a 64 KiB file is written buffered (resident $(resident "$small"))" test "$(resident "$small")" -gt 0
	else
		echo "   (no page-cache check: $W is $fstype)"
	fi
	treecmp "direct restore equals the source" "$W/r1"
fi

say "a restore reads large runs of a pack past the page cache"
if [ "$pagecache" = 1 ]; then
	# a snapshot of one 3 MiB file alone in its own repository, taken by one
	# thread, so that its chunks lie one after another in one pack and make
	# one large run (in w1's packs they interleave with other files' chunks
	# and make runs under 1 MiB, which are read through the page cache by
	# design: this check then measured 8 KiB to 3.1 MiB from run to run);
	# the packs out of the page cache first, as on a host that did not just
	# take them
	RB=$W/repo-big
	cairn_ok init-big init --repo "$RB" || e2e_finish
	cairn_ok take-big take --repo "$RB" --root "$SRC/links" --name big --threads 1 -q
	find "$RB/packs" -type f -print0 | xargs -0 "$PY" -c '
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)'
	if cairn_ok restore-big restore --repo "$RB" big "$W/rbig"; then
		res=$(find "$RB/packs" -type f -print0 | xargs -0 fincore --bytes --noheadings --output RES | awk '{s += $1} END {print s + 0}')
		check "after restoring 3 MiB, less than 2 MiB of the packs is cached ($res bytes)" test "$res" -lt $((2 * M))
		cmp_check "the 3 MiB file restored" "$W/rbig/big" "$SRC/links/big"
	fi
fi

say "the file system refuses O_DIRECT at the first request: buffered, exact"
export CAIRN_FAULT=direct:1:EINVAL
if cairn_ok refused-first restore --repo "$R" w1 "$W/r2"; then
	check "no message on stderr" test ! -s "$ERR"
	if [ "$pagecache" = 1 ]; then
		big=$W/r2/sizes/f$((5 * M + 123))
		check "the 5 MiB file went through the page cache (resident $(resident "$big"))" \
			test "$(resident "$big")" -gt $((4 * M))
	fi
	treecmp "restore after the refusal equals the source" "$W/r2"
fi

say "the refusal comes in the middle of the restore"
export CAIRN_FAULT=direct:4:EINVAL
cairn_ok refused-later restore --repo "$R" w1 "$W/r3" && treecmp "restore refused midway equals the source" "$W/r3"
unset CAIRN_FAULT

say "restore onto a tmpfs"
mkdir -p "$W/tmpfs"
if mount -t tmpfs -o size=128m tmpfs "$W/tmpfs" 2>/dev/null; then
	cairn_ok tmpfs restore --repo "$R" w1 "$W/tmpfs/r" && treecmp "restore onto a tmpfs equals the source" "$W/tmpfs/r"
	umount "$W/tmpfs"
else
	echo "   (no tmpfs: mount refused)"
fi

say "cat of a sparse file and of a file of block + 1 bytes equals the source"
for p in sparse/mid sparse/tail-data sizes/f4097; do
	cairn "cat-${p//\//-}" cat --repo "$R" w1 "/$p"
	cmp_check "cat /$p" "$OUT" "$SRC/$p"
done
e2e_finish
