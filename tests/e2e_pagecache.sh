#!/bin/bash
# e2e_pagecache: a take into a directory leaves its packs of file data out
# of the page cache once they are durable (STORE_UNCACHED: nobody reads them
# back soon, and a large take would fill the host's memory with them), and
# keeps the packs that hold trees, which the next take reads. Checked with
# fincore(1) against each pack's own directory (which blob types it holds);
# then the take restores exactly and fsck --read-data reads every pack.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
. "$SRCDIR/tests/admin_lib.sh"
e2e_start pagecache
e2e_seed

command -v fincore > /dev/null || { echo "SKIP: fincore (util-linux) is missing"; exit 77; }
resident() { fincore --bytes --noheadings --output RES "$1" | tr -d ' '; }
# Dropping clean pages needs a filesystem with a page cache of its own (not tmpfs).
probe=$W/probe
head -c 1048576 /dev/urandom > "$probe"
python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$probe"
[ "$(resident "$probe")" = 0 ] || { echo "SKIP: $W keeps pages after POSIX_FADV_DONTNEED (tmpfs?)"; exit 77; }

R=$W/repo
cairn_ok init init --repo "$R" || e2e_finish
export CAIRN_REPO=$R
say "a tree of 120 MiB of incompressible data and small files: several packs"
small_tree "$W/t" "$SEED" 6
for i in 1 2 3; do head -c $((40 << 20)) /dev/urandom > "$W/t/big$i"; done
SUM=$(tree_sum "$W/t")
take_json t1 --root "$W/t" --name t1 || e2e_finish

# "trees|data PATH" for every pack, by the blob types of its directory
# (format.h: footer count:u32 dir_offset:u32, then the check; 48-byte
# entries with the type at byte 32)
pack_types() {
	python3 - "$R" <<'EOF'
import os, struct, sys
for root, _, files in os.walk(os.path.join(sys.argv[1], "packs")):
    for f in files:
        data = open(os.path.join(root, f), "rb").read()
        count, off = struct.unpack_from("<II", data, len(data) - 16)
        types = {data[off + 48 * i + 32] for i in range(count)}
        print("trees" if 2 in types else "data", os.path.join(root, f))
EOF
}
# residency first: reading a pack's directory brings pages back
declare -A RES
while read -r pack; do RES[$pack]=$(resident "$pack"); done < <(find "$R/packs" -type f)
DATA=0 DATA_CACHED= TREES=0 TREES_DROPPED=
while read -r kind pack; do
	res=${RES[$pack]}
	if [ "$kind" = data ]; then
		DATA=$((DATA + 1))
		[ "$res" = 0 ] || DATA_CACHED="$DATA_CACHED ${pack##*/}:$res"
	else
		TREES=$((TREES + 1))
		[ "$res" != 0 ] || TREES_DROPPED="$TREES_DROPPED ${pack##*/}"
	fi
done < <(pack_types)
check "the take wrote several packs of file data only ($DATA) and one or more with trees ($TREES)" \
	bash -c '[ "$1" -ge 2 ] && [ "$2" -ge 1 ]' _ "$DATA" "$TREES"
check "packs of file data are out of the page cache (${DATA_CACHED:-none cached})" [ -z "$DATA_CACHED" ]
check "packs holding trees stay cached (${TREES_DROPPED:-none dropped})" [ -z "$TREES_DROPPED" ]

say "the snapshot reads back from the disk"
rm -rf "$W/out"
cairn_ok restore restore t1 "$W/out" -q && check "t1 restores exactly" [ "$(tree_sum "$W/out")" = "$SUM" ]
cairn_ok fsck fsck --read-data -q
e2e_finish
