#!/bin/bash
# e2e_deep: a real 3000-deep directory (paths far beyond PATH_MAX), with
# every command under `ulimit -n 1024` (soft and hard, as a controller's
# service gets it) and `ulimit -s 256`: take (first, incremental, upper
# mode over it) and restore equal to the source (treecmp), and fsck, diff,
# export, ls -R and gc get through it. A walker holding one directory fd
# per level, or recursing on the C stack, fails here.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start deep

DEPTH=3000
R=$(e2e_repo repo)
SRC=$W/src
# every cairn command below runs with 1024 fds and a 256 KiB stack at most
# (threads too: glibc sizes their stacks by the limit)
cat > "$W/cairn-1024" <<WRAP
#!/bin/bash
ulimit -n 1024
ulimit -s 256
exec "$CAIRN" "\$@"
WRAP
chmod +x "$W/cairn-1024"
CAIRN=$W/cairn-1024

# The chain "d/d/...": a file every 500 levels, a side directory with a
# file every 700 (the restore's later passes move between branches), a
# symlink and a hardlink pair at the bottom.
"$PY" - "$SRC" "$DEPTH" <<'PYEOF'
import os, sys
root, depth = sys.argv[1], int(sys.argv[2])
os.mkdir(root)
fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
for i in range(depth):
    if i % 500 == 0:
        f = os.open("f%d" % i, os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
        os.write(f, b"level %d\n" % i)
        os.close(f)
    if i % 700 == 0:
        os.mkdir("side", 0o750, dir_fd=fd)
        s = os.open("side", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        f = os.open("g", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=s)
        os.write(f, b"side %d\n" % i)
        os.close(f)
        os.close(s)
    os.mkdir("d", 0o755 if i % 2 else 0o711, dir_fd=fd)
    n = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = n
f = os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
os.write(f, b"the bottom\n")
os.close(f)
os.link("bottom", "bottom-link", src_dir_fd=fd, dst_dir_fd=fd)
os.symlink("../../..", "up", dir_fd=fd)
os.close(fd)
PYEOF

cairn_ok init init --repo "$R" || e2e_finish
take_json take --repo "$R" --root "$SRC" --name deep || e2e_finish
S=$SNAP

say "restore under ulimit -n 1024 equals the source"
cairn_ok restore restore --repo "$R" "$S" "$W/restored"
treecmp_check "the restored 3000-deep tree equals the source" "$SRC" "$W/restored" --ignore /datadrive
say "restore --force over the restored tree, and over a tree in the way"
cairn_ok restore-force restore --repo "$R" "$S" "$W/restored" --force
treecmp_check "restore --force over itself equals the source" "$SRC" "$W/restored" --ignore /datadrive

say "fsck, diff, export, ls -R, gc"
cairn_ok fsck fsck --repo "$R" --read-data
# change the bottom file: diff walks both chains to the bottom
printf 'changed\n' > "$W/bottom"
"$PY" - "$SRC" "$DEPTH" "$W/bottom" <<'PYEOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
for i in range(int(sys.argv[2])):
    n = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = n
os.unlink("bottom-link", dir_fd=fd)
f = os.open("bottom", os.O_WRONLY | os.O_APPEND, dir_fd=fd)
os.write(f, open(sys.argv[3], "rb").read())
os.close(f)
os.close(fd)
PYEOF
take_json take2 --repo "$R" --root "$SRC" --name deep2 || e2e_finish
S2=$SNAP
cairn_ok diff diff --repo "$R" "$S" "$S2" --json
cp "$OUT" "$W/diff.json"
check "diff: the bottom file changed, the link removed, the bottom directory's mtime changed" \
	"$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
got = sorted((e["path"].rsplit("/", 1)[-1], e["status"]) for e in d["entries"])
want = [("bottom", "changed"), ("bottom-link", "removed"), ("d", "changed")]
print(got)
sys.exit(0 if got == want and d["entries"][0]["path"].count("/") == 3000 else 1)' "$W/diff.json"
cairn_ok export export --repo "$R" "$S" -o "$W/deep.tar"
run tar-t bsdtar -tf "$W/deep.tar"
# the chain, 6 files f*, 5 directories side with a file g each, bottom, bottom-link, up
check "the export lists every entry ($((DEPTH + 20)) with the root)" test "$(wc -l < "$OUT")" = $((DEPTH + 20))
cairn_ok ls ls --repo "$R" "$S" -R
check "ls -R lists every entry" test "$(wc -l < "$OUT")" = $((DEPTH + 19))
say "an upper-mode take: a 3000-deep upper merged over the deep base"
"$PY" - "$W/upper" "$DEPTH" <<'PYEOF'
import os, sys
os.mkdir(sys.argv[1])
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
for i in range(int(sys.argv[2])):
    os.mkdir("d", dir_fd=fd)
    n = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = n
f = os.open("new", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
os.write(f, b"from the upper\n")
os.close(f)
os.close(fd)
PYEOF
take_json take-upper --repo "$R" --upper "$W/upper" --base "$S" --name deep-upper || e2e_finish
cairn_ok restore-upper restore --repo "$R" "$SNAP" "$W/restored-upper"
check "the upper's file and the base's are both at the bottom" "$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
for i in range(int(sys.argv[2])):
    n = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = n
names = sorted(os.listdir(fd))
print(names)
sys.exit(0 if names == ["bottom", "bottom-link", "new", "up"] else 1)' "$W/restored-upper" "$DEPTH"

cairn_ok forget forget --repo "$R" "$S2"
cairn_ok gc gc --repo "$R"
cairn_ok fsck-after-gc fsck --repo "$R"
cairn_ok restore-after-gc restore --repo "$R" "$S" "$W/restored-again"
treecmp_check "after gc the restore still equals the first" "$W/restored" "$W/restored-again"
e2e_finish
