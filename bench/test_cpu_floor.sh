#!/bin/bash
# test_cpu_floor.sh CPU_FLOOR: the floor reads the bytes a take reads: a
# file's data once whatever its number of names (hardlinks), no holes, no
# skipped top-level directory.
set -euo pipefail
FLOOR=$1
D=$(mktemp -d "${TMPDIR:-/tmp}/cpu-floor.XXXXXX")
trap 'rm -rf "$D"' EXIT
mkdir -p "$D/a" "$D/b" "$D/skipme"
head -c 1048576 /dev/urandom > "$D/a/data"
ln "$D/a/data" "$D/b/data-again"
ln "$D/a/data" "$D/a/data-third"
printf 'small\n' > "$D/b/small"
truncate -s 8M "$D/b/sparse"
printf 'tail' | dd of="$D/b/sparse" bs=1 seek=$((4 << 20)) conv=notrunc status=none
head -c 4096 /dev/urandom > "$D/skipme/x"
read -r files bytes _ < <("$FLOOR" "$D" --skip skipme)
# data (1 MiB, three names), small (6), the sparse file's one data block (4 KiB on ext4/tmpfs)
want_min=$((1048576 + 6 + 4)) want_max=$((1048576 + 6 + 65536))
echo "files $files bytes $bytes (want 3 files, $want_min..$want_max bytes)"
[ "$files" = 3 ] && [ "$bytes" -ge "$want_min" ] && [ "$bytes" -le "$want_max" ]
