#!/usr/bin/env python3
"""treecmp.py A B [--ignore PATH]... [--no-root] [--no-holes] [--holes] [--quiet]

Compares two directory trees entry by entry: the set of names (as bytes),
type, full mode, uid, gid, size, content SHA-256, mtime (ns, directories and
symlinks included), rdev, xattrs (names and values, ACLs included, read
without following symlinks), symlink targets, hardlink groups (the partition
of paths by inode must be equal) and the layout of holes (data extents from
SEEK_DATA/SEEK_HOLE, compared only when both trees are on the same kind of
filesystem that reports holes).

Paths are handled as bytes and through directory file descriptors, so names
of arbitrary bytes and trees deeper than PATH_MAX work.

--ignore PATH   skip PATH (relative to each root, e.g. /datadrive) and all
                below it; may be repeated
--no-root       do not compare the metadata of the two roots themselves
--no-holes      do not compare hole layouts
--holes         compare hole layouts whatever the filesystems (a cairn mount
                answers SEEK_DATA/SEEK_HOLE from the snapshot)
--max-diffs N   stop printing after N differences (default 200; all are counted)

Prints every difference with its path, then "compared N entries, D
differences". Exit 0 when the trees are equal, 1 when they differ, 2 on a
usage error.
"""
import errno
import hashlib
import os
import stat
import subprocess
import sys

HOLEY_FS = {"ext2/ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs", "zfs", "bcachefs", "nfs"}


def show(path):
    """A printable form of a bytes path: ASCII as is, other bytes as \\xNN."""
    out = []
    for c in path:
        if c == 0x5C:
            out.append("\\\\")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    s = "".join(out)
    if not s.startswith("/"):
        s = "/" + s
    if len(s) > 300:
        s = s[:120] + "...(%d bytes)..." % len(path) + s[-120:]
    return s


def fs_type(path):
    try:
        r = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True)
        if r.returncode == 0:
            return r.stdout.decode().strip()
    except OSError:
        pass
    return "?"


def kind(mode):
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chr"), (stat.S_ISBLK, "blk"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "?"


class Side:
    def __init__(self, root):
        self.root = root
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        self.inodes = {}  # (dev, ino) -> [relpath], non-directories only


def proc_path(dfd, name):
    # xattr calls take no dir_fd; /proc/self/fd/N/name keeps the path short.
    return b"/proc/self/fd/%d/%s" % (dfd, name)


def xattrs(dfd, name):
    path = proc_path(dfd, name)
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return out
        raise
    for n in names:
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            out[n] = "<error %s>" % e.strerror
    return out


def content(dfd, name, holes):
    """SHA-256 of the content and, when holes, the list of data extents."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    try:
        h = hashlib.sha256()
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            h.update(b)
        extents = None
        if holes:
            extents = []
            size = os.fstat(fd).st_size
            off = 0
            while off < size:
                try:
                    start = os.lseek(fd, off, os.SEEK_DATA)
                except OSError as e:
                    if e.errno == errno.ENXIO:
                        break
                    raise
                end = os.lseek(fd, start, os.SEEK_HOLE)
                extents.append((start, end))
                off = end
        return h.hexdigest(), extents
    finally:
        os.close(fd)


class Cmp:
    def __init__(self, a, b, ignore, no_root, holes, max_diffs):
        self.a, self.b = Side(a), Side(b)
        self.ignore = ignore
        self.no_root = no_root
        self.holes = holes
        self.max_diffs = max_diffs
        self.ndiffs = 0
        self.count = 0

    def diff(self, rel, what):
        self.ndiffs += 1
        if self.ndiffs <= self.max_diffs:
            print("%s: %s" % (show(rel), what))
        elif self.ndiffs == self.max_diffs + 1:
            print("... (more differences not shown)")

    def ignored(self, rel):
        for ig in self.ignore:
            if rel == ig or rel.startswith(ig + b"/"):
                return True
        return False

    def entry(self, rel, da, db, name):
        """Compare one entry present in both trees; recurse into directories."""
        self.count += 1
        sa = os.lstat(name, dir_fd=da)
        sb = os.lstat(name, dir_fd=db)
        self.meta(rel, sa, sb, da, db, name)

    def meta(self, rel, sa, sb, da, db, name):
        ka, kb = kind(sa.st_mode), kind(sb.st_mode)
        if ka != kb:
            self.diff(rel, "type %s != %s" % (ka, kb))
            return
        if sa.st_mode != sb.st_mode:
            self.diff(rel, "mode %o != %o" % (sa.st_mode, sb.st_mode))
        if sa.st_uid != sb.st_uid:
            self.diff(rel, "uid %d != %d" % (sa.st_uid, sb.st_uid))
        if sa.st_gid != sb.st_gid:
            self.diff(rel, "gid %d != %d" % (sa.st_gid, sb.st_gid))
        if sa.st_mtime_ns != sb.st_mtime_ns:
            self.diff(rel, "mtime_ns %d != %d" % (sa.st_mtime_ns, sb.st_mtime_ns))
        if ka in ("chr", "blk") and sa.st_rdev != sb.st_rdev:
            self.diff(rel, "rdev %d:%d != %d:%d" % (os.major(sa.st_rdev), os.minor(sa.st_rdev),
                                                    os.major(sb.st_rdev), os.minor(sb.st_rdev)))
        if ka in ("file", "symlink") and sa.st_size != sb.st_size:
            self.diff(rel, "size %d != %d" % (sa.st_size, sb.st_size))
        xa, xb = xattrs(da, name), xattrs(db, name)
        for n in sorted(set(xa) | set(xb)):
            if n not in xb:
                self.diff(rel, "xattr %s only in A" % n)
            elif n not in xa:
                self.diff(rel, "xattr %s only in B" % n)
            elif xa[n] != xb[n]:
                self.diff(rel, "xattr %s value %r != %r" % (n, xa[n][:64], xb[n][:64]))
        if ka == "symlink":
            ta, tb = os.readlink(name, dir_fd=da), os.readlink(name, dir_fd=db)
            if ta != tb:
                self.diff(rel, "symlink target %r != %r" % (ta[:100], tb[:100]))
        if ka == "file":
            ha, ea = content(da, name, self.holes)
            hb, eb = content(db, name, self.holes)
            if ha != hb:
                self.diff(rel, "content sha256 %s != %s" % (ha[:16], hb[:16]))
            elif ea != eb:
                self.diff(rel, "data extents %s != %s" % (ea[:8], eb[:8]))
        if ka != "dir":
            self.a.inodes.setdefault((sa.st_dev, sa.st_ino), []).append(rel)
            self.b.inodes.setdefault((sb.st_dev, sb.st_ino), []).append(rel)
            return
        fa = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=da)
        try:
            fb = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=db)
            try:
                self.children(rel, fa, fb)
            finally:
                os.close(fb)
        finally:
            os.close(fa)

    def children(self, rel, fa, fb):
        na = set(os.fsencode(n) for n in os.listdir(fa))
        nb = set(os.fsencode(n) for n in os.listdir(fb))
        for n in sorted(na | nb):
            crel = rel + b"/" + n
            if self.ignored(crel):
                continue
            if n not in nb:
                self.diff(crel, "only in A (%s)" % kind(os.lstat(n, dir_fd=fa).st_mode))
            elif n not in na:
                self.diff(crel, "only in B (%s)" % kind(os.lstat(n, dir_fd=fb).st_mode))
            else:
                self.entry(crel, fa, fb, n)

    def run(self):
        if self.no_root:
            self.children(b"", self.a.fd, self.b.fd)
        else:
            # The roots: compare through their parents' view of them.
            self.count += 1
            sa, sb = os.fstat(self.a.fd), os.fstat(self.b.fd)
            self.meta(b"", sa, sb, self.a.fd, self.b.fd, b".")
        self.hardlinks()
        return self.ndiffs

    def hardlinks(self):
        def groups(side):
            by_path = {}
            for paths in side.inodes.values():
                g = tuple(sorted(paths))
                for p in paths:
                    by_path[p] = g
            return by_path
        ga, gb = groups(self.a), groups(self.b)
        for p in sorted(set(ga) & set(gb)):
            if ga[p] != gb[p]:
                self.diff(p, "hardlink group %s != %s" % ([show(x) for x in ga[p]][:6],
                                                          [show(x) for x in gb[p]][:6]))


def main(argv):
    args, ignore = [], []
    no_root = no_holes = force_holes = False
    max_diffs = 200
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--ignore" and i + 1 < len(argv):
            p = os.fsencode(argv[i + 1]).strip(b"/")
            ignore.append(b"/" + p)
            i += 2
            continue
        if a == "--no-root":
            no_root = True
        elif a == "--no-holes":
            no_holes = True
        elif a == "--holes":
            force_holes = True
        elif a == "--max-diffs" and i + 1 < len(argv):
            max_diffs = int(argv[i + 1])
            i += 1
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        elif a.startswith("-"):
            print("treecmp: unknown option %s" % a, file=sys.stderr)
            return 2
        else:
            args.append(os.fsencode(a))
        i += 1
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    holes = False
    if not no_holes:
        ta, tb = fs_type(args[0]), fs_type(args[1])
        holes = force_holes or (ta == tb and ta in HOLEY_FS)
        if not holes:
            print("treecmp: not comparing hole layouts (filesystems %s and %s)" % (ta, tb))
    sys.setrecursionlimit(100000)
    c = Cmp(args[0], args[1], ignore, no_root, holes, max_diffs)
    n = c.run()
    print("compared %d entries, %d differences" % (c.count, n))
    return 1 if n else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
