#!/bin/bash
# e2e_restore_creates: how restore creates small files (engine/restore/files.c).
# A small file is created with its permission bits and, when the tree says
# it belongs to whoever restores, gets neither chown nor chmod: the fstat
# that records its inode checks the guess. Where the guess is wrong (a
# umask, a set-group-id target of another group, a default ACL on the
# target, set-id bits, other owners, xattrs) the whole sequence runs and the
# tree is still exact; the skipped calls are really skipped; workers spread
# over many directories at once still restore every file exactly. A large
# file (restored alone) queued behind many batches is taken before them,
# largest first, so that it is not the restore's tail.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start restore_creates
e2e_seed

R=$(e2e_repo repo)
SRC=$W/src
mkdir -p "$SRC/modes" "$SRC/plain"
"$PY" - "$SRC" "$SEED" <<'EOF'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
# every permission pattern a umask or an ACL could spoil, and the set-id bits
for m in [0o644, 0o600, 0o755, 0o444, 0o000, 0o777, 0o640, 0o4755, 0o2755, 0o1644, 0o6711]:
    p = os.path.join(root, "modes", "m%04o" % m)
    with open(p, "w") as f:
        f.write("mode %o %s\n" % (m, rng.randbytes(20).hex()))
    os.chmod(p, m)
# 40 directories of 50 files: more directories than workers, files of the
# restorer (root) with the usual modes, a few of other owners
for d in range(40):
    dp = os.path.join(root, "plain", "d%02d" % d)
    os.mkdir(dp)
    for i in range(50):
        p = os.path.join(dp, "f%02d" % i)
        with open(p, "w") as f:
            f.write("%d/%d %s\n" % (d, i, rng.randbytes(rng.randrange(1, 200)).hex()))
        os.chmod(p, rng.choice([0o644, 0o644, 0o644, 0o755, 0o600]))
        if i % 17 == 3:
            os.chown(p, 1000 + d, 1000 + i)
        elif i % 17 == 5:
            os.chown(p, 0, 1234)
EOF
setfattr -n user.note -v creates "$SRC/plain/d03/f07"
chown 1000:1000 "$SRC/modes/m4755" "$SRC/modes/m2755"
chmod 4755 "$SRC/modes/m4755"
chmod 2755 "$SRC/modes/m2755"
touch -d '2001-02-03 04:05:06.123456789' "$SRC/plain/d05/f05" "$SRC/modes/m0444"

cairn_ok init init --repo "$R" || e2e_finish
cairn_ok take take --repo "$R" --root "$SRC" --name c1 -q || e2e_finish
treecmp() { treecmp_check "$1" "$SRC" "$2" --no-root; }

say "a restore with the usual umask, with umask 077 and with umask 0"
for u in 022 077 000; do
	if (umask "$u" && cairn_ok "restore-umask-$u" restore --repo "$R" c1 "$W/u$u"); then
		treecmp "restored under umask $u equals the source" "$W/u$u"
	else
		fail "restore under umask $u"
	fi
done

say "into a set-group-id target of another group: files and directories keep their own group"
mkdir "$W/sgid"
chgrp 4321 "$W/sgid"
chmod 2775 "$W/sgid"
cairn_ok restore-sgid restore --repo "$R" c1 "$W/sgid" && treecmp "restored into a set-group-id target equals the source" "$W/sgid"

if command -v setfacl > /dev/null && setfacl -d -m u::rwx,g::---,o::--- "$W" 2> /dev/null; then
	say "into a target with a default ACL that takes away group and other bits"
	mkdir "$W/acl"
	setfacl -d -m u::rwx,g::---,o::--- "$W/acl"
	setfacl -b "$W" # only the target's own, inherited by what restore creates
	if cairn_ok restore-acl restore --repo "$R" c1 "$W/acl"; then
		# directories inherit the target's default ACL (restore leaves it,
		# as before): every other difference, a file's mode above all, fails
		"$PY" "$TREECMP" "$SRC" "$W/acl" --no-root > "$W/acl.txt" || true
		grep -v -e 'xattr system.posix_acl_default only in B' -e '^compared ' "$W/acl.txt" > "$W/acl-other.txt" || true
		check "restored under a default ACL equals the source, but for the directories' inherited ACL" test ! -s "$W/acl-other.txt"
		show "$W/acl-other.txt"
	fi
else
	echo "   (no default ACLs here: not checked)"
fi

say "files of the restorer with plain modes get neither chown nor chmod"
if command -v strace > /dev/null; then
	# 2,000 files, ~130 of other owners or with xattrs; 41 directories and 11 odd modes
	strace -f -qq -e trace=fchown,fchmod -o "$W/strace.txt" "$CAIRN" restore --repo "$R" c1 "$W/traced" > /dev/null 2>&1 || true
	chowns=$(grep -c 'fchown(' "$W/strace.txt" || true)
	chmods=$(grep -c 'fchmod(' "$W/strace.txt" || true)
	check "2,011 files restored with $chowns fchown and $chmods fchmod (one a file and directory would be 2,052: fewer than 400 each)" test "$chowns" -lt 400 -a "$chmods" -lt 400
	treecmp "the traced restore equals the source" "$W/traced"
else
	echo "   (no strace: calls not counted)"
fi

say "large files queued behind many batches are taken first"
mkdir -p "$W/late/zz"
"$PY" - "$W/late" "$SEED" <<'EOF'
import os, random, sys
root, rng = sys.argv[1], random.Random(int(sys.argv[2]))
for d in range(60):
    os.mkdir(os.path.join(root, "b%02d" % d))
    for i in range(70):
        with open(os.path.join(root, "b%02d" % d, "f%02d" % i), "w") as f:
            f.write("%d %d %s\n" % (d, i, rng.randbytes(20).hex()))
for k in range(3): # last in the walk's order
    with open(os.path.join(root, "zz", "big%d" % k), "wb") as f:
        f.write(rng.randbytes(1 << 20) * 3)
EOF
cairn_ok take-late take --repo "$R" --root "$W/late" --name late -q || e2e_finish
if command -v strace > /dev/null; then
	strace -f -qq -e trace=openat -o "$W/late.txt" "$CAIRN" restore --repo "$R" --threads 2 late "$W/late-r" > /dev/null 2>&1 || true
	# small files created after the first large one: none or a few in walk order
	after=$(awk '/O_CREAT/ && /"big/ {seen = 1} /O_CREAT/ && /"f[0-9]/ && seen {n++} END {print n + 0}' "$W/late.txt")
	check "$after of 4,200 small files were created after the first large file (more than 800)" test "$after" -gt 800
	treecmp_check "the restore equals the source" "$W/late" "$W/late-r" --no-root
else
	echo "   (no strace: order not checked)"
fi
e2e_finish
