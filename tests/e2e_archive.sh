#!/bin/bash
# e2e_archive: export and import through libarchive.
#  - take -> export (pax) -> bsdtar -xpf equals cairn restore entry by entry;
#  - import of that export (plain, gzip, zstd, from stdin) equals the source;
#  - a GNU tar (posix, xattrs, ACLs, sparse) archive of the fixture imports
#    and restores equal to the source;
#  - gnutar and ustar exports of a small tree round-trip content and modes;
#  - three OCI layers with whiteouts and an opaque directory imported one
#    over another equal the tree built by applying them by hand;
#  - hostile and broken archives: a clear error, nothing committed, nothing
#    written outside.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start archive
e2e_seed
command -v bsdtar >/dev/null || { echo "SKIP: bsdtar not installed (libarchive-tools)"; exit 77; }
command -v tar >/dev/null || { echo "SKIP: GNU tar not installed"; exit 77; }

R=$(e2e_repo repo)
SRC=$W/src
IGN=(--ignore /datadrive --ignore /special/sock)

make_tree "$SRC"
cairn_ok init init --repo "$R" || e2e_finish
take_json take --repo "$R" --root "$SRC" --name src || e2e_finish
S=$SNAP

say "export (pax) and bsdtar -xpf equal cairn restore"
cairn_ok restore restore --repo "$R" "$S" "$W/restored"
cairn_ok export export --repo "$R" "$S" -o "$W/s.tar"
check "the export is a pax archive (has pax headers)" bash -c 'bsdtar -tvf "$1" >/dev/null && grep -qa "SCHILY.xattr" "$1"' _ "$W/s.tar"
mkdir "$W/bsd"
run bsdtar-x bash -c 'cd "$1" && bsdtar -xpf "$2"' _ "$W/bsd" "$W/s.tar"
check "bsdtar -xpf of the export exits 0" test "$RC" = 0
show "$ERR"
# bsdtar sets the mode and owner of "." but leaves its mtime to the
# extraction: the root's own mtime is compared only between cairn's paths.
treecmp_check "bsdtar -xpf of the export equals restore" "$W/restored" "$W/bsd" --no-root
check "bsdtar gave the root the snapshot's mode and owner" \
	test "$(stat -c %f.%u.%g "$W/restored")" = "$(stat -c %f.%u.%g "$W/bsd")"

say "import of the export: plain, gzip, zstd (detected), and from stdin"
cairn_ok export-gz export --repo "$R" "$S" --compress gzip -o "$W/s.tar.gz"
cairn_ok export-zst export --repo "$R" "$S" --compress zstd -o "$W/s.tar.zst"
check "gzip export starts with the gzip magic" bash -c '[ "$(head -c2 "$1" | od -An -tx1 | tr -d " ")" = 1f8b ]' _ "$W/s.tar.gz"
check "zstd export starts with the zstd magic" bash -c '[ "$(head -c4 "$1" | od -An -tx1 | tr -d " ")" = 28b52ffd ]' _ "$W/s.tar.zst"
for f in s.tar s.tar.gz s.tar.zst; do
	cairn_ok "import-$f" import --repo "$R" --name "imp-$f" --json "$W/$f" || continue
	id=$(json_get "$OUT" done snapshot || true)
	new=$(json_get "$OUT" done new_bytes || true)
	check "import of $f adds no chunk data (new_bytes $new)" test "$new" = 0
	# every field diff compares (all but inode numbers and ctimes) equal:
	# cheaper than a restore, and the plain import is restored below
	cairn_ok "diff-$f" diff --repo "$R" "$S" "$id" && check "diff of the take and the import of $f lists nothing" test ! -s "$OUT"
	[ "$f" = s.tar ] || continue
	if cairn_ok "restore-$f" restore --repo "$R" "$id" "$W/r-$f"; then
		treecmp_check "import of $f restores equal to the source" "$SRC" "$W/r-$f" "${IGN[@]}"
	fi
done
run piped bash -c '"$1" export --repo "$2" "$3" --compress zstd | "$1" import --repo "$2" --name piped -q -' _ "$CAIRN" "$R" "$S"
check "export | import - exits 0" test "$RC" = 0
PIPED=$(cat "$OUT")
cairn_ok diff-piped diff --repo "$R" "$S" "$PIPED" && \
	check "diff of the take and its re-import lists nothing" test ! -s "$OUT"

say "GNU tar archive of the source (posix format, xattrs, ACLs, sparse)"
run gnutar tar --format=posix --xattrs --xattrs-include='*' --acls --sparse --numeric-owner \
	-cpf "$W/gnu.tar" -C "$SRC" --exclude ./datadrive/secret --exclude ./datadrive/sub .
check "GNU tar made the archive" test -s "$W/gnu.tar"
if cairn_ok import-gnu import --repo "$R" --name gnu "$W/gnu.tar" && cairn_ok restore-gnu restore --repo "$R" gnu "$W/r-gnu"; then
	# What tar cannot carry: sockets (GNU tar skips them). And libarchive
	# reads GNU tar's pax time of a pre-1970 instant with a fraction
	# (-315619199.876543211) as -315619199 s + 876543211 ns: /files/one's
	# mtime (1960-01-01 + 0.123456789 s) is checked to the second only.
	treecmp_check "GNU tar archive imported and restored equals the source" "$SRC" "$W/r-gnu" \
		--ignore /special/sock --ignore /files/one --ignore /datadrive
	check "/files/one: content and mtime seconds survive GNU tar" bash -c \
		'cmp -s "$1/files/one" "$2/files/one" && [ $(( $(stat -c %Y "$1/files/one") - $(stat -c %Y "$2/files/one") )) -le 2 ]' _ "$SRC" "$W/r-gnu"
fi

say "gnutar and ustar exports of a small tree round-trip content, modes and owners"
SMALL=$W/small
mkdir -p "$SMALL/d/e"
cp -a "$SRC/files" "$SMALL/files"
# tar headers hold no time before 1970 (gnutar writes 0, ustar refuses)
rm "$SMALL/files/one"
cp -a "$SRC/hard" "$SMALL/hard"
ln -s ../files/one "$SMALL/d/link"
mkfifo "$SMALL/d/fifo"
mknod "$SMALL/d/null" c 1 3
chown 1234:5678 "$SMALL/d/e"
take_json take-small --repo "$R" --root "$SMALL" --name small
for fmt in gnutar ustar; do
	cairn_ok "export-$fmt" export --repo "$R" small --format "$fmt" -o "$W/small-$fmt.tar" || continue
	mkdir "$W/x-$fmt"
	run "x-$fmt" bash -c 'cd "$1" && bsdtar -xpf "$2"' _ "$W/x-$fmt" "$W/small-$fmt.tar"
	check "$fmt: bsdtar -xpf exits 0" test "$RC" = 0
	check "$fmt: names, types, modes, owners, sizes, content, links and devices equal" "$PY" - "$SMALL" "$W/x-$fmt" <<'EOF'
import hashlib, os, stat, sys
def scan(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            rec = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                   st.st_mtime_ns // 10**9]
            if stat.S_ISREG(st.st_mode):
                rec += [st.st_size, hashlib.sha256(open(p, "rb").read()).hexdigest(), st.st_nlink]
            elif stat.S_ISLNK(st.st_mode):
                rec.append(os.readlink(p))
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                rec.append(st.st_rdev)
            out[rel] = rec
    return out
a, b = scan(sys.argv[1]), scan(sys.argv[2])
bad = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
for k in bad[:10]:
    print("differs:", k, a.get(k), b.get(k))
sys.exit(1 if bad else 0)
EOF
done
cairn_ok import-ustar import --repo "$R" --name small-ustar "$W/small-ustar.tar" && \
	cairn_ok ls-ustar ls --repo "$R" small-ustar /d -l && \
	check "ustar import keeps the device and the symlink" bash -c 'grep -q "^c.* 1, 3 .* null$" "$1" && grep -q "link -> ../files/one" "$1"' _ "$OUT"
expect_rc 2 export-ustar-deep export --repo "$R" "$S" --format ustar -o "$W/deep-ustar.tar"
check "a refused export leaves no partial file" test ! -e "$W/deep-ustar.tar"
expect_rc 2 export-bad-format export --repo "$R" "$S" --format zip -o "$W/x.zip"
expect_rc 2 export-bad-compress export --repo "$R" "$S" --compress lz4 -o "$W/x.tar"

say "three OCI layers with whiteouts and an opaque directory"
L=$W/layers
mkdir -p "$L"
"$PY" - "$L" <<'EOF'
import io, os, sys, tarfile
out = sys.argv[1]
T = 1600000000
def layer(name, members):
    with tarfile.open(os.path.join(out, name), "w", format=tarfile.PAX_FORMAT) as t:
        for path, kind, arg in members:
            ti = tarfile.TarInfo(path)
            ti.mtime = T + len(path)
            ti.uid = ti.gid = 0
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "file":
                ti.size, ti.mode = len(arg), 0o644
                t.addfile(ti, io.BytesIO(arg))
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
                t.addfile(ti)
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, arg
                t.addfile(ti)
layer("l1.tar", [
    ("etc", "dir", None), ("etc/passwd", "file", b"root:x:0:0\n"), ("etc/hosts", "file", b"127.0.0.1 localhost\n"),
    ("etc/conf.d", "dir", None), ("etc/conf.d/a.conf", "file", b"a=1\n"), ("etc/conf.d/b.conf", "file", b"b=1\n"),
    ("usr", "dir", None), ("usr/bin", "dir", None), ("usr/bin/tool", "file", b"#!/bin/sh\necho v1\n" * 50),
    ("usr/bin/tool-link", "hard", "usr/bin/tool"), ("usr/lib", "dir", None),
    ("usr/lib/libx.so", "file", os.urandom(70000)), ("usr/lib/libx.so.1", "sym", "libx.so"),
    ("var", "dir", None), ("var/cache", "dir", None), ("var/cache/old", "file", b"stale\n"),
    ("var/cache/sub", "dir", None), ("var/cache/sub/deep", "file", b"deep\n"),
])
layer("l2.tar", [
    ("etc", "dir", None), ("etc/.wh.hosts", "file", b""), ("etc/passwd", "file", b"root:x:0:0\nuser:x:1000:1000\n"),
    ("etc/conf.d", "dir", None), ("etc/conf.d/.wh..wh..opq", "file", b""), ("etc/conf.d/c.conf", "file", b"c=2\n"),
    ("var", "dir", None), ("var/cache", "dir", None), ("var/cache/.wh.sub", "file", b""),
    ("var/cache/new", "file", b"fresh\n"),
    ("opt", "dir", None), ("opt/app", "file", b"app v1\n"),
])
layer("l3.tar", [
    ("usr", "dir", None), ("usr/bin", "dir", None), ("usr/bin/.wh.tool", "file", b""),
    ("usr/lib", "dir", None), ("usr/lib/.wh.libx.so.1", "file", b""), ("usr/lib/libx.so.1", "file", b"now a file\n"),
    ("var", "dir", None), ("var/.wh..wh..opq", "file", b""), ("var/log", "dir", None), ("var/log/msg", "file", b"log\n"),
    ("opt", "dir", None), ("opt/app", "file", b"app v2\n"), ("opt/.wh.nothing-here", "file", b""),
])
EOF
# By hand: for each layer, apply its whiteouts to what is below (a whiteout
# hides only lower layers), then extract the rest of the layer over it.
EXP=$W/expected
mkdir "$EXP"
for l in l1 l2 l3; do
	"$PY" - "$L/$l.tar" "$EXP" "$L/$l-rest.tar" <<'EOF'
import os, shutil, sys, tarfile
src, root, rest = sys.argv[1:4]
with tarfile.open(src) as t, tarfile.open(rest, "w", format=tarfile.PAX_FORMAT) as out:
    for m in t.getmembers():
        d, n = os.path.split(m.name)
        if n == ".wh..wh..opq":
            p = os.path.join(root, d)
            for k in os.listdir(p) if os.path.isdir(p) else []:
                q = os.path.join(p, k)
                shutil.rmtree(q) if os.path.isdir(q) and not os.path.islink(q) else os.unlink(q)
        elif n.startswith(".wh."):
            q = os.path.join(root, d, n[4:])
            if os.path.lexists(q):
                shutil.rmtree(q) if os.path.isdir(q) and not os.path.islink(q) else os.unlink(q)
        else:
            out.addfile(m, t.extractfile(m) if m.isfile() else None)
EOF
	(cd "$EXP" && bsdtar -xpf "$L/$l-rest.tar")
done
# Directory times last, from the last layer that lists each directory
# (bsdtar leaves an existing directory's time to what happens inside it).
"$PY" - "$EXP" "$L/l1-rest.tar" "$L/l2-rest.tar" "$L/l3-rest.tar" <<'EOF'
import os, sys, tarfile
root, times = sys.argv[1], {}
for src in sys.argv[2:]:
    with tarfile.open(src) as t:
        for m in t.getmembers():
            if m.isdir():
                times[m.name] = int(m.mtime)
for name in sorted(times, key=lambda n: -n.count("/")):
    p = os.path.join(root, name)
    if os.path.isdir(p):
        os.utime(p, ns=(times[name] * 10**9, times[name] * 10**9))
EOF
cairn_ok import-l1 import --repo "$R" --name layer1 "$L/l1.tar" &&
cairn_ok import-l2 import --repo "$R" --name layer2 --base layer1 "$L/l2.tar" &&
cairn_ok import-l3 import --repo "$R" --name layer3 --base layer2 --json "$L/l3.tar" && {
	check "layer 3 reports its 4 whiteouts" test "$(json_get "$OUT" done whiteouts)" = 4
	cairn_ok restore-l3 restore --repo "$R" layer3 "$W/r-layers" &&
		treecmp_check "three layers imported over each other equal the layers applied by hand" "$EXP" "$W/r-layers" --no-root
	cairn_ok info-l2 info --repo "$R" layer2 --json
	L2=$(json_get "$OUT" - id || true)
	cairn_ok info-l3 info --repo "$R" layer3 --json &&
		check "layer3's parent is layer2 ($L2)" test "$(json_get "$OUT" - parent)" = "$L2"
}
check "hardlink kept while both names stayed (layer 2)" bash -c \
	'"$1" ls --repo "$2" layer2 /usr/bin -l | grep -c "tool" | grep -qx 2' _ "$CAIRN" "$R"
expect_rc 6 import-base-missing import --repo "$R" --name nobase --base no-such-snap "$L/l2.tar"

say "hostile and broken archives: a clear error, nothing committed, nothing written outside"
H=$W/hostile
mkdir -p "$H"
OUTSIDE=$W/outside-marker
"$PY" - "$H" "$OUTSIDE" <<'EOF'
import io, os, sys, tarfile
out, outside = sys.argv[1:3]
def tar(name, members):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path, kind, arg in members:
            ti = tarfile.TarInfo(path)
            if kind == "file":
                ti.size = len(arg)
                t.addfile(ti, io.BytesIO(arg))
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
                t.addfile(ti)
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, arg
                t.addfile(ti)
    open(os.path.join(out, name), "wb").write(bio.getvalue())
    return bio.getvalue()
ok = [("ok", "file", b"fine\n")]
rel = os.path.relpath(outside, "/")
tar("traversal.tar", ok + [("a/../../../../../../../../%s" % rel, "file", b"x")])
tar("dotdot.tar", ok + [("../outside-marker", "file", b"x")])
tar("absolute.tar", ok + [(outside, "file", b"x")])
tar("hardlink-escape.tar", ok + [("h", "hard", "../../../../../../etc/passwd")])
tar("hardlink-absolute.tar", ok + [("h", "hard", "/etc/passwd")])
tar("hardlink-unseen.tar", ok + [("h", "hard", "later"), ("later", "file", b"y")])
tar("symlink-through.tar", ok + [("link", "sym", os.path.dirname(outside)), ("link/outside-marker", "file", b"x")])
good = tar("good.tar", ok + [("big", "file", os.urandom(300000))])
open(os.path.join(out, "truncated.tar"), "wb").write(good[: len(good) // 2])
ti = tarfile.TarInfo("huge")
ti.size = 8 << 30
open(os.path.join(out, "huge-size.tar"), "wb").write(ti.tobuf(format=tarfile.PAX_FORMAT) + b"x" * 4096)
open(os.path.join(out, "garbage.tar"), "wb").write(os.urandom(20480))
EOF
"$CAIRN" snapshots --repo "$R" --json > "$LOG/snaps-before"
for case in traversal:2:'".."' dotdot:2:'".."' absolute:2:absolute hardlink-escape:2:'".."' \
	hardlink-absolute:2:absolute hardlink-unseen:2:'not in the tree' symlink-through:2:'not a directory' \
	truncated:4:runcated huge-size:4:runcated garbage:4:'not a readable tar'; do
	name=${case%%:*}
	rest=${case#*:}
	code=${rest%%:*}
	word=${rest#*:}
	expect_rc "$code" "hostile-$name" import --repo "$R" --name "evil-$name" "$H/$name.tar"
	check "hostile $name: the message says why ($word)" grep -q -- "$word" "$ERR"
done
"$CAIRN" snapshots --repo "$R" --json > "$LOG/snaps-after"
check "no hostile archive committed a snapshot" cmp -s "$LOG/snaps-before" "$LOG/snaps-after"
check "nothing was written outside ($OUTSIDE absent)" test ! -e "$OUTSIDE"
check "/etc/passwd untouched by the hardlink cases" bash -c '! grep -q "^fine$" /etc/passwd'

say "an archive that defines a path twice (directory x with x/y, then file x) is charged as the plain file x"
"$PY" - "$W/twice.tar" "$W/plain.tar" <<'PYEOF'
import io, sys, tarfile
def add(t, name, data=None):
    ti = tarfile.TarInfo(name)
    ti.mtime = 1700000000
    if data is None:
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        t.addfile(ti)
    else:
        ti.size, ti.mode = len(data), 0o644
        t.addfile(ti, io.BytesIO(data))
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "x")
    add(t, "x/y", b"the file x replaced\n")
    add(t, "x", b"plain x\n")
with tarfile.open(sys.argv[2], "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "x", b"plain x\n")
PYEOF
for k in twice plain; do
	RK=$(e2e_repo "repo-$k")
	cairn_ok "init-$k" init --repo "$RK"
	cairn_ok "import-$k" import --repo "$RK" --name "$k" --user u "$W/$k.tar"
	cairn_ok "usage-$k" usage --repo "$RK" --json
	"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["used_bytes"])' "$OUT" > "$W/used-$k"
	cairn "fsck-$k" fsck --repo "$RK"
	check "fsck of the $k import is clean (exit $RC)" test "$RC" = 0
	show "$OUT"
done
check "usage of the twice-defined import ($(cat "$W/used-twice")) equals the plain one's ($(cat "$W/used-plain"))" \
	cmp -s "$W/used-twice" "$W/used-plain"

say "a 1 TiB sparse file exports at once, its data in place"
mkdir "$W/sparse"
printf head > "$W/sparse/big"
truncate -s 1T "$W/sparse/big"
printf 'tail\n' | dd of="$W/sparse/big" bs=1 seek=$(( (1 << 40) - 5 )) conv=notrunc status=none
take_json take-sparse --repo "$R" --root "$W/sparse" --name sparse || e2e_finish
t0=$(date +%s%N)
cairn_ok export-sparse export --repo "$R" "$SNAP" -o "$W/sparse.tar"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "the export of a 1 TiB sparse file took $ms ms (under 10 s) and is small" \
	test "$ms" -lt 10000 -a "$(stat -c %s "$W/sparse.tar")" -lt 1048576
mkdir "$W/sparse-x"
run sparse-x bash -c 'cd "$1" && bsdtar -xpf "$2"' _ "$W/sparse-x" "$W/sparse.tar"
check "bsdtar extracts it: 1 TiB, head and tail in place" bash -c \
	'test "$(stat -c %s "$1")" = $((1 << 40)) && test "$(head -c 4 "$1")" = head && test "$(tail -c 5 "$1")" = tail' _ "$W/sparse-x/big"

e2e_finish
