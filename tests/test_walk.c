/* walk: a tree with every file type and awkward names, walked with io_uring
 * and with plain syscalls; both results must be identical and match lstat,
 * readlink and the xattrs of the real files. Needs root (mknod, chown,
 * trusted.* xattrs, mounts). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "error.h"
#include "format.h"
#include "t.h"
#include "walk.h"

#define DEEP_LEVELS 60
#define DEEP_NAME 200
#define MANY 5000

/* What the walk must report, tallied while the tree is built. */
static struct {
	uint64_t files, dirs, symlinks, specials, bytes, sockets, excluded, mounts;
} want;

static char base[PATH_MAX - 64], rootpath[PATH_MAX];

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* ---- building the tree ---- */

static void put(int dfd, const char *name, const void *data, size_t len, mode_t mode)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) die(name);
	if (len && write(fd, data, len) != (ssize_t)len) die("write");
	if (fchmod(fd, mode) < 0) die("fchmod"); /* umask-free */
	close(fd);
	want.files++;
	want.bytes += len;
}

static int mkdir_open(int dfd, const char *name, mode_t mode)
{
	if (mkdirat(dfd, name, mode) < 0) die(name);
	if (fchmodat(dfd, name, mode, 0) < 0) die("fchmodat");
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) die(name);
	want.dirs++;
	return fd;
}

static void link_to(int dfd, const char *name, const char *target)
{
	if (symlinkat(target, dfd, name) < 0) die(name);
	want.symlinks++;
}

static void special(int dfd, const char *name, mode_t mode, dev_t dev)
{
	if (mknodat(dfd, name, mode, dev) < 0) die(name);
	if (fchmodat(dfd, name, mode & 07777, 0) < 0) die("fchmodat");
	want.specials++;
}

static void setx(int dfd, const char *name, const char *xname, const void *v, size_t len)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", dfd, name);
	if (lsetxattr(p, xname, v, len, 0) < 0) die(xname);
}

/* A socket needs a short path for bind: bind relative to the cwd. */
static void make_socket(int dfd, const char *name)
{
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || fchdir(dfd) < 0) die("fchdir");
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", name);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) die("bind");
	close(s);
	if (fchdir(cwd) < 0) die("fchdir back");
	close(cwd);
	want.sockets++;
}

static void rm_tree_at(int dfd, const char *name)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return;
	if (S_ISDIR(st.st_mode)) {
		int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			DIR *d = fdopendir(fd);
			struct dirent *e;
			char **names = NULL;
			size_t n = 0;
			while (d && (e = readdir(d))) {
				if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
				names = realloc(names, (n + 1) * sizeof(*names));
				names[n++] = strdup(e->d_name);
			}
			for (size_t i = 0; i < n; i++) {
				rm_tree_at(dirfd(d), names[i]);
				free(names[i]);
			}
			free(names);
			if (d) closedir(d);
		}
		unlinkat(dfd, name, AT_REMOVEDIR);
	} else {
		unlinkat(dfd, name, 0);
	}
}

static char deep_name[DEEP_LEVELS][DEEP_NAME + 1];
static char long_name[256], allbytes_name[256];
static int mounted_tmpfs, mounted_bind, mounted_fbind;

/* Seeded random subtree: random byte names, types, modes, owners, xattrs. */
static void random_tree(int dfd, int depth)
{
	int n = 5 + (int)(t_rand() % 20);
	for (int i = 0; i < n; i++) {
		char name[64];
		size_t len = 1 + t_rand() % 40;
		for (size_t k = 0; k < len; k++) {
			uint8_t b;
			do b = (uint8_t)(1 + t_rand() % 255); while (b == '/');
			name[k] = (char)b;
		}
		name[len] = 0;
		if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
		struct stat st;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) continue; /* taken */
		int kind = (int)(t_rand() % 6);
		if (kind == 0 && depth < 3) {
			int fd = mkdir_open(dfd, name, 0700 | (mode_t)(t_rand() % 0100));
			if (fchown(fd, (uid_t)(t_rand() % 70000), (gid_t)(t_rand() % 70000)) < 0) die("fchown");
			random_tree(fd, depth + 1);
			close(fd);
		} else if (kind == 1) {
			char tgt[300];
			size_t tl = 1 + t_rand() % 299;
			for (size_t k = 0; k < tl; k++) tgt[k] = (char)(1 + t_rand() % 255);
			tgt[tl] = 0;
			link_to(dfd, name, tgt);
			if (fchownat(dfd, name, (uid_t)(t_rand() % 70000), (gid_t)(t_rand() % 70000), AT_SYMLINK_NOFOLLOW) < 0)
				die("lchown");
		} else if (kind == 2) {
			special(dfd, name, S_IFIFO | (mode_t)(t_rand() % 01000), 0);
		} else {
			uint8_t data[3000];
			size_t dl = t_rand() % sizeof(data);
			t_fill(data, dl);
			put(dfd, name, data, dl, (mode_t)(t_rand() % 010000));
			if (fchownat(dfd, name, (uid_t)(t_rand() % 70000), (gid_t)(t_rand() % 70000), 0) < 0) die("chown");
			int nx = (int)(t_rand() % 4);
			for (int x = 0; x < nx; x++) {
				char xn[32];
				uint8_t v[200];
				size_t vl = t_rand() % sizeof(v);
				t_fill(v, vl);
				snprintf(xn, sizeof(xn), "%s.r%u", (t_rand() & 1) ? "user" : "trusted",
				         (unsigned)(t_rand() % 1000));
				setx(dfd, name, xn, v, vl);
			}
		}
	}
}

static void build(void)
{
	int r = open(rootpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r < 0) die(rootpath);
	want.dirs = 1; /* the root */

	char buf[8192];
	memset(buf, 'x', sizeof(buf));
	put(r, "file", "hello, walk\n", 12, 0644);
	put(r, "empty", "", 0, 0600);
	put(r, "setuid", "#!/bin/sh\n", 10, 04755);
	if (fchownat(r, "setuid", 1234, 5678, 0) < 0) die("chown");
	if (fchmodat(r, "setuid", 04755, 0) < 0) die("chmod"); /* chown clears setuid */
	/* sparse: 16 MiB with 4 KiB of data in the middle */
	int fd = openat(r, "sparse", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, 16 << 20) < 0 || pwrite(fd, buf, 4096, 8 << 20) != 4096) die("sparse");
	close(fd);
	want.files++;
	want.bytes += 16 << 20;
	/* hardlinks */
	put(r, "hl1", buf, 100, 0644);
	if (linkat(r, "hl1", r, "hl2", 0) < 0) die("link");
	want.files++;
	want.bytes += 100;

	int d = mkdir_open(r, "dir", 0755);
	int s = mkdir_open(d, "sub", 0750);
	put(s, "f", "sub file", 8, 0640);
	close(s);
	int dd = mkdir_open(d, "datadrive", 0755); /* only /datadrive is special */
	put(dd, "kept", "k", 1, 0644);
	close(dd);
	close(d);
	int st = mkdir_open(r, "sticky", 01777);
	close(st);

	link_to(r, "link", "file");
	link_to(r, "dangling", "nowhere/at/all");
	char tgt[3000];
	memset(tgt, 'T', sizeof(tgt) - 1);
	tgt[sizeof(tgt) - 1] = 0;
	link_to(r, "longlink", tgt);
	special(r, "fifo", S_IFIFO | 0640, 0);
	special(r, "chr", S_IFCHR | 0666, makedev(1, 3));
	special(r, "blk", S_IFBLK | 0660, makedev(259, 70000));
	make_socket(r, "sock");

	/* xattrs, set out of order; the walk must sort them */
	put(r, "xfile", "x", 1, 0644);
	setx(r, "xfile", "user.zeta", "z", 1);
	setx(r, "xfile", "trusted.alpha", "a\0b", 3);
	setx(r, "xfile", "user.alpha", buf, 3000);
	setx(r, "xfile", "user.empty", "", 0);
	setx(r, "dir", "trusted.dirattr", "d", 1);
	setx(r, "link", "trusted.linkattr", "l", 1);

	/* every byte but NUL and '/' in names */
	int nd = mkdir_open(r, "names", 0755);
	size_t al = 0;
	for (int b = 1; b < 256; b++) {
		if (b == '/') continue;
		allbytes_name[al++] = (char)b;
		if (b == '.') continue; /* "." alone is not a name */
		char nm[2] = {(char)b, 0};
		put(nd, nm, nm, 1, 0644);
	}
	allbytes_name[al] = 0;
	put(nd, allbytes_name, "all", 3, 0644);
	memset(long_name, 'L', 255);
	long_name[255] = 0;
	put(nd, long_name, "long", 4, 0644);
	close(nd);

	/* 60 levels of 200-byte names: ~12 KB of path */
	int cur = mkdir_open(r, "deep", 0755);
	for (int i = 0; i < DEEP_LEVELS; i++) {
		memset(deep_name[i], 'a' + i % 26, DEEP_NAME);
		snprintf(deep_name[i], 4, "%03d", i);
		deep_name[i][3] = 'x';
		int nx = mkdir_open(cur, deep_name[i], 0755);
		close(cur);
		cur = nx;
	}
	put(cur, "bottom", "deep content\n", 13, 0644);
	link_to(cur, "bottomlink", "bottom");
	close(cur);

	/* a big directory */
	int m = mkdir_open(r, "many", 0755);
	for (int i = 0; i < MANY; i++) {
		char nm[32], c[32];
		snprintf(nm, sizeof(nm), "f%05d", i);
		int cl = snprintf(c, sizeof(c), "file %d\n", i);
		put(m, nm, c, (size_t)cl, 0644);
	}
	close(m);

	/* wide and two deep: with few fds, parents get closed and reopened */
	int wd = mkdir_open(r, "wide", 0755);
	for (int i = 0; i < 40; i++) {
		char nm[16];
		snprintf(nm, sizeof(nm), "w%02d", i);
		int a = mkdir_open(wd, nm, 0755);
		int b = mkdir_open(a, "sub", 0755);
		put(b, "leaf", nm, 3, 0644);
		close(b);
		close(a);
	}
	close(wd);

	/* excluded: not tallied */
	if (mkdirat(r, "excl", 0755) < 0) die("excl");
	want.dirs++;
	int e = openat(r, "excl", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mkdirat(e, "a", 0755) < 0 || mkdirat(e, "keep", 0755) < 0) die("excl/a");
	want.dirs++; /* excl/keep */
	int ea = openat(e, "a", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fe = openat(ea, "gone", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fe < 0 || write(fe, "zz", 2) != 2) die("excl/a/gone");
	close(fe);
	close(ea);
	close(e);
	want.excluded += 2; /* /excl/a and /dir/sub/f */
	want.files--;       /* dir/sub/f is excluded */
	want.bytes -= 8;

	/* /datadrive: kept empty */
	if (mkdirat(r, "datadrive", 0711) < 0) die("datadrive");
	fchmodat(r, "datadrive", 0711, 0);
	want.dirs++;
	want.mounts++;
	e = openat(r, "datadrive", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fe = openat(e, "data", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	close(fe);
	close(e);

	/* random subtree */
	int rd = mkdir_open(r, "rand", 0755);
	random_tree(rd, 0);
	close(rd);

	/* mounts: a tmpfs and a bind mount of our own filesystem (same st_dev,
	 * different mount id) */
	if (mkdirat(r, "mnt", 0755) < 0 || mkdirat(r, "bind", 0755) < 0) die("mnt");
	want.dirs += 2;
	char p[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/mnt", rootpath);
	if (mount("walktest", p, "tmpfs", 0, "mode=0700") == 0) {
		mounted_tmpfs = 1;
		want.mounts++;
		int mf = openat(r, "mnt", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int x = openat(mf, "inside", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		close(x);
		close(mf);
	} else {
		printf("note: mount -t tmpfs failed (%s); mount-point checks skipped\n", strerror(errno));
	}
	char src[PATH_MAX + 16];
	snprintf(src, sizeof(src), "%s/dir", rootpath);
	snprintf(p, sizeof(p), "%s/bind", rootpath);
	if (mount(src, p, NULL, MS_BIND, NULL) == 0) {
		mounted_bind = 1;
		want.mounts++;
	} else {
		printf("note: bind mount failed (%s); bind-mount checks skipped\n", strerror(errno));
	}
	/* a file mounted over a file: left out */
	put(r, "fmnt", "under", 5, 0644);
	snprintf(src, sizeof(src), "%s/file", rootpath);
	snprintf(p, sizeof(p), "%s/fmnt", rootpath);
	if (mount(src, p, NULL, MS_BIND, NULL) == 0) {
		mounted_fbind = 1;
		want.mounts++;
		want.files--;
		want.bytes -= 5;
	} else {
		printf("note: file bind mount failed (%s); checks skipped\n", strerror(errno));
	}
	close(r);
}

/* ---- comparing ---- */

static const walk_node *kid(const walk_node *n, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; n && i < n->nkids; i++)
		if (n->kids[i]->name_len == len && !memcmp(n->kids[i]->name, name, len)) return n->kids[i];
	return NULL;
}

static const walk_node *lookup(const walk_node *n, const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *save, *c = strtok_r(tmp, "/", &save); c && n; c = strtok_r(NULL, "/", &save)) n = kid(n, c);
	return n;
}

static int same_node(const walk_node *a, const walk_node *b)
{
	if (a->name_len != b->name_len || memcmp(a->name, b->name, a->name_len) || a->name[a->name_len] ||
	    b->name[b->name_len])
		return 0;
	if (a->type != b->type || a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
	    a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec || a->ctime_sec != b->ctime_sec ||
	    a->ctime_nsec != b->ctime_nsec || a->ino != b->ino || a->size != b->size || a->blocks != b->blocks ||
	    a->nlink != b->nlink || a->dev_major != b->dev_major || a->dev_minor != b->dev_minor ||
	    a->rdev_major != b->rdev_major || a->rdev_minor != b->rdev_minor || a->is_mount != b->is_mount ||
	    a->nxattrs != b->nxattrs || a->target_len != b->target_len || a->nkids != b->nkids)
		return 0;
	if ((a->target == NULL) != (b->target == NULL)) return 0;
	if (a->target && memcmp(a->target, b->target, a->target_len + 1)) return 0;
	for (uint32_t i = 0; i < a->nxattrs; i++) {
		const walk_xattr *x = &a->xattrs[i], *y = &b->xattrs[i];
		if (strcmp(x->name, y->name) || x->value_len != y->value_len ||
		    memcmp(x->value, y->value, x->value_len))
			return 0;
	}
	return 1;
}

/* Node by node, in order; reports the first difference. */
static int same_tree(const walk_node *a, const walk_node *b)
{
	if (!same_node(a, b)) {
		char *p = walk_path(a);
		fprintf(stderr, "trees differ at '%s'\n", p ? p : "?");
		free(p);
		return 0;
	}
	if ((a->parent == NULL) != (b->parent == NULL)) return 0;
	for (size_t i = 0; i < a->nkids; i++) {
		if (a->kids[i]->parent != a || b->kids[i]->parent != b) return 0;
		if (!same_tree(a->kids[i], b->kids[i])) return 0;
	}
	return 1;
}

static int name_order(const walk_node *a, const walk_node *b)
{
	size_t l = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(a->name, b->name, l);
	return c ? c : (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

static uint64_t nchecked;
static const char *const excluded_paths[] = {"excl/a", "dir/sub/f"};

static int is_excluded(const walk_node *dir, const char *name)
{
	char *p = walk_path(dir);
	char full[PATH_MAX * 4];
	snprintf(full, sizeof(full), "%s%s%s", p, *p ? "/" : "", name);
	free(p);
	for (size_t i = 0; i < sizeof(excluded_paths) / sizeof(*excluded_paths); i++)
		if (!strcmp(full, excluded_paths[i])) return 1;
	return 0;
}

static int xattr_cmp_t(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* n against the real entry (dfd, name): lstat, readlink, xattrs. */
static void check_real(const walk_node *n, int dfd, const char *name)
{
	struct stat st;
	int r = name ? fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) : fstat(dfd, &st);
	CHECK(r == 0);
	if (r) return;
	nchecked++;
	CHECK_EQ(n->mode, st.st_mode);
	CHECK_EQ(n->uid, st.st_uid);
	CHECK_EQ(n->gid, st.st_gid);
	CHECK_EQ(n->ino, st.st_ino);
	CHECK_EQ(n->size, st.st_size);
	CHECK_EQ(n->blocks, st.st_blocks);
	CHECK_EQ(n->nlink, st.st_nlink);
	CHECK_EQ(n->mtime_sec, st.st_mtim.tv_sec);
	CHECK_EQ(n->mtime_nsec, st.st_mtim.tv_nsec);
	CHECK_EQ(n->ctime_sec, st.st_ctim.tv_sec);
	CHECK_EQ(n->ctime_nsec, st.st_ctim.tv_nsec);
	CHECK_EQ(n->dev_major, major(st.st_dev));
	CHECK_EQ(n->dev_minor, minor(st.st_dev));
	CHECK_EQ(n->rdev_major, major(st.st_rdev));
	CHECK_EQ(n->rdev_minor, minor(st.st_rdev));
	int type = S_ISREG(st.st_mode) ? TREE_REG : S_ISDIR(st.st_mode) ? TREE_DIR : S_ISLNK(st.st_mode) ? TREE_SYMLINK
	         : S_ISFIFO(st.st_mode) ? TREE_FIFO : S_ISCHR(st.st_mode) ? TREE_CHR : S_ISBLK(st.st_mode) ? TREE_BLK : -1;
	CHECK_EQ(n->type, type);
	if (S_ISLNK(st.st_mode)) {
		char t[8192];
		ssize_t l = readlinkat(dfd, name, t, sizeof(t));
		CHECK(l >= 0 && n->target && (size_t)l == n->target_len && !memcmp(t, n->target, (size_t)l) &&
		      n->target[l] == 0);
	} else {
		CHECK(n->target == NULL && n->target_len == 0);
	}
	if (n->is_mount) {
		CHECK_EQ(n->nxattrs, 0);
		return;
	}
	/* xattrs through a route independent of the walker's */
	char path[PATH_MAX], list[65536];
	if (name) snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, name);
	ssize_t ll = name ? llistxattr(path, list, sizeof(list)) : flistxattr(dfd, list, sizeof(list));
	if (ll < 0) ll = 0;
	char *names[256];
	size_t nn = 0;
	for (ssize_t i = 0; i < ll && nn < 256; i += (ssize_t)strlen(list + i) + 1) names[nn++] = list + i;
	qsort(names, nn, sizeof(*names), xattr_cmp_t);
	CHECK_EQ(n->nxattrs, nn);
	for (size_t i = 0; i < nn && i < n->nxattrs; i++) {
		static uint8_t v[65536];
		ssize_t vl = name ? lgetxattr(path, names[i], v, sizeof(v)) : fgetxattr(dfd, names[i], v, sizeof(v));
		CHECK(!strcmp(n->xattrs[i].name, names[i]));
		CHECK(vl >= 0 && (size_t)vl == n->xattrs[i].value_len && !memcmp(v, n->xattrs[i].value, (size_t)vl));
	}
}

/* Recursively compare directory node dir (open as dfd) with the real one:
 * every kid exists and matches; every real entry missing from the kids is
 * a socket or excluded; mount points and /datadrive have no kids. */
static void check_dir(const walk_node *dir, int dfd)
{
	for (size_t i = 1; i < dir->nkids; i++) CHECK(name_order(dir->kids[i - 1], dir->kids[i]) < 0);
	for (size_t i = 0; i < dir->nkids; i++) {
		const walk_node *k = dir->kids[i];
		CHECK(k->parent == dir);
		check_real(k, dfd, k->name);
		if (k->type == TREE_DIR && !k->is_mount) {
			int fd = openat(dfd, k->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			CHECK(fd >= 0);
			if (fd >= 0) {
				check_dir(k, fd);
				close(fd);
			}
		}
		if (k->type != TREE_DIR || k->is_mount) CHECK_EQ(k->nkids, 0);
	}
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fdopendir(fd);
	CHECK(d != NULL);
	struct dirent *e;
	size_t real = 0;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
		real++;
		if (kid(dir, e->d_name)) continue;
		struct stat st;
		int sock = fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode);
		int ex = is_excluded(dir, e->d_name) || (dir->parent == NULL && !strcmp(e->d_name, "fmnt"));
		if (!sock && !ex) {
			char *p = walk_path(dir);
			fprintf(stderr, "missing from the walk: %s/%s\n", p, e->d_name);
			free(p);
		}
		CHECK(sock || ex);
	}
	if (d) closedir(d);
	CHECK(real >= dir->nkids);
}

static void tally(const walk_node *n, walk_stats *s)
{
	switch (n->type) {
	case TREE_REG: s->files++; s->bytes += n->size; break;
	case TREE_DIR: s->dirs++; break;
	case TREE_SYMLINK: s->symlinks++; break;
	default: s->specials++; break;
	}
	for (size_t i = 0; i < n->nkids; i++) tally(n->kids[i], s);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	while (d && readdir(d)) n++;
	if (d) closedir(d);
	return n;
}

/* ---- walk_open from several threads ---- */

static const walk_node *many_node;
static int open_rootfd;
static atomic_int open_bad;

static void *opener(void *arg)
{
	size_t start = (size_t)(uintptr_t)arg;
	for (size_t i = start; i < many_node->nkids; i += 4) {
		const walk_node *k = many_node->kids[i];
		int fd = walk_open(open_rootfd, k);
		if (fd < 0) {
			atomic_fetch_add(&open_bad, 1);
			continue;
		}
		char got[64], wantc[64];
		ssize_t l = read(fd, got, sizeof(got));
		int wl = snprintf(wantc, sizeof(wantc), "file %d\n", atoi(k->name + 1));
		if (l != wl || memcmp(got, wantc, (size_t)wl)) atomic_fetch_add(&open_bad, 1);
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || (fl & O_NONBLOCK) || (fl & O_ACCMODE) != O_RDONLY) atomic_fetch_add(&open_bad, 1);
		close(fd);
	}
	return NULL;
}

/* ---- churn while walking: vanishing entries are skipped, not errors ---- */

static atomic_int churn_stop;
static int churn_fd;

static void *churner(void *arg)
{
	(void)arg;
	unsigned i = 0;
	while (!atomic_load(&churn_stop)) {
		char f[32], d[32];
		snprintf(f, sizeof(f), "f%u", i % 200);
		snprintf(d, sizeof(d), "d%u", i % 50);
		int fd = openat(churn_fd, f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0) close(fd);
		char lk[32];
		snprintf(lk, sizeof(lk), "l%u", i % 100);
		symlinkat("target", churn_fd, lk);
		if (mkdirat(churn_fd, d, 0755) == 0) {
			int dfd = openat(churn_fd, d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd >= 0) {
				int x = openat(dfd, "inner", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
				if (x >= 0) close(x);
				close(dfd);
			}
		}
		if (i % 3 == 0) {
			snprintf(f, sizeof(f), "f%u", (i * 7) % 200);
			unlinkat(churn_fd, f, 0);
			snprintf(lk, sizeof(lk), "l%u", (i * 3) % 100);
			unlinkat(churn_fd, lk, 0);
			snprintf(d, sizeof(d), "d%u", (i * 11) % 50);
			int dfd = openat(churn_fd, d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd >= 0) {
				unlinkat(dfd, "inner", 0);
				close(dfd);
			}
			unlinkat(churn_fd, d, AT_REMOVEDIR);
		}
		i++;
	}
	return NULL;
}

/* ---- the tests ---- */

static walk_node *walk_ok(const char *root, const walk_options *o, walk_stats *s)
{
	walk_node *n = NULL;
	int rc = walk_run(&n, root, o, s);
	if (rc) fprintf(stderr, "walk_run(%s): %d: %s\n", root, rc, cairn_error_last());
	CHECK_EQ(rc, 0);
	return n;
}

/* A streamed walk (walk_options.on_dir_done): each directory handed over
 * once, after every subdirectory below it, with the kids a whole walk
 * finds; kept (0), the tree is the whole walk's; freed (1), nothing but
 * the root's kids stays, and the counts are the same either way. */
#define STREAM_SEEN 7 /* user_kind of a directory handed over */
static struct {
	const walk_node *whole;
	size_t calls, bad;
	int free_kids;
} stream_t;

static int same_entry(const walk_node *a, const walk_node *b)
{
	return a->name_len == b->name_len && !memcmp(a->name, b->name, a->name_len) && a->type == b->type &&
	       a->ino == b->ino && a->size == b->size && a->mode == b->mode && a->nxattrs == b->nxattrs &&
	       a->target_len == b->target_len && a->is_mount == b->is_mount;
}

/* dir's namesake in the whole walk, through the parent links (deep paths
 * are longer than lookup takes) */
static const walk_node *namesake(const walk_node *whole, const walk_node *dir)
{
	if (!dir->parent) return whole;
	const walk_node *up = namesake(whole, dir->parent);
	return up ? kid(up, dir->name) : NULL;
}

static int stream_dir(void *payload, walk_node *dir)
{
	(void)payload;
	size_t bad0 = stream_t.bad;
	stream_t.calls++;
	const walk_node *ref = namesake(stream_t.whole, dir);
	if (!ref || ref->nkids != dir->nkids || dir->user_kind == STREAM_SEEN) stream_t.bad++;
	for (size_t i = 0; ref && i < dir->nkids && i < ref->nkids; i++) {
		const walk_node *k = dir->kids[i];
		if (!same_entry(k, ref->kids[i]) || k->parent != dir) stream_t.bad++;
		/* a subdirectory is handed over first (a mount point never is) */
		if (k->type == TREE_DIR && !k->is_mount &&
		    (k->user_kind != STREAM_SEEN || (stream_t.free_kids && k->nkids)))
			stream_t.bad++;
	}
	if (stream_t.bad > bad0 && !bad0) {
		char *path = walk_path(dir);
		fprintf(stderr, "streamed walk: '%s' differs\n", path ? path : "?");
		free(path);
	}
	dir->user_kind = STREAM_SEEN;
	return stream_t.free_kids;
}

static void test_streamed(const walk_node *whole, const walk_stats *ws, walk_options o)
{
	o.on_dir_done = stream_dir;
	size_t dirs = 0; /* handed over: every directory walked into but the root */
	walk_stats t;
	memset(&t, 0, sizeof(t));
	tally(whole, &t);
	for (int free_kids = 0; free_kids < 2; free_kids++) {
		walk_stats s;
		stream_t.whole = whole;
		stream_t.calls = stream_t.bad = 0;
		stream_t.free_kids = free_kids;
		walk_node *n = walk_ok(rootpath, &o, &s);
		if (!n) continue;
		CHECK_EQ(stream_t.bad, 0);
		if (!free_kids) {
			CHECK(same_tree(n, whole));
			dirs = stream_t.calls;
		} else {
			for (size_t i = 0; i < n->nkids; i++)
				if (n->kids[i]->type == TREE_DIR) CHECK_EQ(n->kids[i]->nkids, 0);
		}
		CHECK_EQ(stream_t.calls, dirs);
		CHECK(!memcmp(&s, ws, offsetof(walk_stats, used_uring)));
		walk_free(n);
	}
	CHECK(dirs > 10);
	CHECK(dirs < t.dirs); /* not the root, nor mount points */
	printf("streamed walk: %zu directories handed over, kept or freed\n", dirs);
}

static void test_main_tree(void)
{
	const char *env = getenv("CAIRN_NO_URING"); /* as the CLI maps it */
	int env_off = env && !strcmp(env, "1");
	const char *ex[] = {"/excl//a/", "//dir/sub/f", "/does/not/exist", "/./excl/a"};
	walk_options o = {.excludes = ex, .nexcludes = 4, .no_uring = env_off};
	walk_stats su, sp;

	int fds0 = count_fds();
	walk_node *a = walk_ok(rootpath, &o, &su);
	o.uring_always = 1; /* every statx through the ring */
	walk_stats sr;
	walk_node *r = walk_ok(rootpath, &o, &sr);
	o.uring_always = 0;
	o.no_uring = 1;
	walk_node *b = walk_ok(rootpath, &o, &sp);
	CHECK_EQ(count_fds(), fds0); /* nothing leaked */
	if (!a || !b || !r) goto done;
	/* the ring's statx give the tree the plain ones give */
	CHECK(same_tree(r, b));
	CHECK(!memcmp(&sr, &sp, offsetof(walk_stats, used_uring)));
	CHECK_EQ(sp.ring_statx, 0);
	if (!env_off) CHECK(sr.ring_statx >= sr.files + sr.dirs - 1);
	printf("statx through the ring: %llu adaptive, %llu with uring_always\n",
	       (unsigned long long)su.ring_statx, (unsigned long long)sr.ring_statx);

	if (env_off) {
		printf("CAIRN_NO_URING=1: both walks use plain syscalls\n");
		CHECK_EQ(su.used_uring, 0);
		CHECK(strstr(su.notice, "disabled by option") != NULL);
	} else {
		CHECK_EQ(su.used_uring, 1); /* io_uring works on this machine */
		CHECK(su.notice[0] == 0);
	}
	CHECK_EQ(sp.used_uring, 0);
	CHECK(sp.notice[0] != 0);
	printf("notice without io_uring: %s\n", sp.notice);

	/* identical either way, node by node */
	CHECK(same_tree(a, b));

	/* counts: against what was built, and against the tree itself */
	walk_stats t;
	memset(&t, 0, sizeof(t));
	tally(a, &t);
	CHECK_EQ(su.files, want.files);
	CHECK_EQ(su.dirs, want.dirs);
	CHECK_EQ(su.symlinks, want.symlinks);
	CHECK_EQ(su.specials, want.specials);
	CHECK_EQ(su.bytes, want.bytes);
	CHECK_EQ(su.sockets_skipped, want.sockets);
	CHECK_EQ(su.excluded, want.excluded);
	CHECK_EQ(su.mounts_skipped, want.mounts);
	CHECK_EQ(t.files, su.files);
	CHECK_EQ(t.dirs, su.dirs);
	CHECK_EQ(t.symlinks, su.symlinks);
	CHECK_EQ(t.specials, su.specials);
	CHECK_EQ(t.bytes, su.bytes);
	CHECK(!memcmp(&su, &sp, offsetof(walk_stats, used_uring)));
	o.no_uring = env_off;
	test_streamed(a, &su, o);

	/* against the real files */
	int rfd = open(rootpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(a->parent == NULL && a->name_len == 0 && a->name[0] == 0 && a->type == TREE_DIR);
	check_real(a, rfd, NULL);
	nchecked = 0;
	check_dir(a, rfd);
	printf("checked %llu entries against lstat/readlink/xattrs\n", (unsigned long long)nchecked);
	CHECK(nchecked > MANY + 300);

	/* the rules */
	CHECK(kid(a, "sock") == NULL);
	CHECK(lookup(a, "excl") && !kid(lookup(a, "excl"), "a") && kid(lookup(a, "excl"), "keep"));
	CHECK(lookup(a, "dir/sub") && lookup(a, "dir/sub")->nkids == 0);
	const walk_node *dd = kid(a, "datadrive");
	CHECK(dd && dd->type == TREE_DIR && dd->is_mount && dd->nkids == 0 && (dd->mode & 07777) == 0711);
	const walk_node *ndd = lookup(a, "dir/datadrive");
	CHECK(ndd && !ndd->is_mount && kid(ndd, "kept"));
	const walk_node *mnt = kid(a, "mnt"), *bind = kid(a, "bind");
	CHECK(mnt && bind);
	if (mnt && bind) {
		CHECK_EQ(mnt->is_mount, mounted_tmpfs);
		CHECK_EQ(bind->is_mount, mounted_bind);
		CHECK_EQ(mnt->nkids, 0);
		CHECK_EQ(bind->nkids, 0);
		if (mounted_bind) CHECK(bind->dev_major == a->dev_major && bind->dev_minor == a->dev_minor);
		if (mounted_tmpfs) CHECK((mnt->mode & 07777) == 0700); /* the tmpfs root's metadata */
	}
	for (size_t i = 0; i < a->nkids; i++)
		if (a->kids[i]->is_mount) CHECK(a->kids[i]->type == TREE_DIR);
	CHECK((kid(a, "fmnt") == NULL) == mounted_fbind);

	/* types, modes, owners */
	const walk_node *n;
	CHECK((n = kid(a, "file")) && n->type == TREE_REG && n->size == 12 && n->nlink == 1);
	CHECK((n = kid(a, "empty")) && n->type == TREE_REG && n->size == 0 && (n->mode & 07777) == 0600);
	CHECK((n = kid(a, "setuid")) && n->mode == (S_IFREG | 04755) && n->uid == 1234 && n->gid == 5678);
	CHECK((n = kid(a, "sticky")) && n->mode == (S_IFDIR | 01777));
	CHECK((n = kid(a, "sparse")) && n->size == 16u << 20 && n->blocks * 512 < n->size);
	const walk_node *h1 = kid(a, "hl1"), *h2 = kid(a, "hl2");
	CHECK(h1 && h2 && h1->ino == h2->ino && h1->nlink == 2 && h2->nlink == 2);
	CHECK((n = kid(a, "link")) && n->type == TREE_SYMLINK && n->target_len == 4 && !strcmp(n->target, "file"));
	CHECK((n = kid(a, "dangling")) && n->type == TREE_SYMLINK && !strcmp(n->target, "nowhere/at/all"));
	CHECK((n = kid(a, "longlink")) && n->target_len == 2999);
	CHECK((n = kid(a, "fifo")) && n->type == TREE_FIFO);
	CHECK((n = kid(a, "chr")) && n->type == TREE_CHR && n->rdev_major == 1 && n->rdev_minor == 3);
	CHECK((n = kid(a, "blk")) && n->type == TREE_BLK && n->rdev_major == 259 && n->rdev_minor == 70000);
	n = kid(a, "xfile");
	CHECK(n && n->nxattrs == 4);
	if (n && n->nxattrs == 4) {
		CHECK(!strcmp(n->xattrs[0].name, "trusted.alpha") && n->xattrs[0].value_len == 3 &&
		      !memcmp(n->xattrs[0].value, "a\0b", 3));
		CHECK(!strcmp(n->xattrs[1].name, "user.alpha") && n->xattrs[1].value_len == 3000);
		CHECK(!strcmp(n->xattrs[2].name, "user.empty") && n->xattrs[2].value_len == 0);
		CHECK(!strcmp(n->xattrs[3].name, "user.zeta"));
	}
	CHECK((n = kid(a, "dir")) && n->nxattrs == 1 && !strcmp(n->xattrs[0].name, "trusted.dirattr"));
	CHECK((n = kid(a, "link")) && n->nxattrs == 1 && !strcmp(n->xattrs[0].name, "trusted.linkattr"));

	/* names */
	const walk_node *names = kid(a, "names");
	CHECK(names && names->nkids == 253 + 2);
	for (int c = 1; c < 256 && names; c++) {
		if (c == '/' || c == '.') continue;
		char nm[2] = {(char)c, 0};
		CHECK(kid(names, nm) != NULL);
	}
	CHECK((n = kid(names, allbytes_name)) && n->name_len == 254);
	CHECK((n = kid(names, long_name)) && n->name_len == 255);

	/* the deep chain: path beyond PATH_MAX, walk_path, walk_open */
	const walk_node *dp = kid(a, "deep");
	for (int i = 0; i < DEEP_LEVELS && dp; i++) dp = kid(dp, deep_name[i]);
	CHECK(dp != NULL);
	const walk_node *bottom = kid(dp, "bottom");
	CHECK(bottom && bottom->size == 13);
	CHECK((n = kid(dp, "bottomlink")) && !strcmp(n->target, "bottom"));
	if (bottom) {
		char *p = walk_path(bottom);
		size_t wl = strlen("deep") + DEEP_LEVELS * (DEEP_NAME + 1) + strlen("/bottom");
		CHECK(p && strlen(p) == wl && wl > PATH_MAX);
		CHECK(p && !strncmp(p, "deep/", 5) && !strcmp(p + wl - 7, "/bottom"));
		CHECK(p && !memcmp(p + 5, deep_name[0], DEEP_NAME) && p[5 + DEEP_NAME] == '/');
		free(p);
		int fd = walk_open(rfd, bottom);
		CHECK(fd >= 0);
		char got[32];
		CHECK(fd >= 0 && read(fd, got, sizeof(got)) == 13 && !memcmp(got, "deep content\n", 13));
		if (fd >= 0) close(fd);
	}
	char *rp = walk_path(a);
	CHECK(rp && rp[0] == 0);
	free(rp);
	rp = walk_path(lookup(a, "dir/sub"));
	CHECK(rp && !strcmp(rp, "dir/sub"));
	free(rp);

	/* few fds allowed: directories are closed and reopened from their
	 * parents; the result is the same */
	struct rlimit rl, low;
	getrlimit(RLIMIT_NOFILE, &rl);
	low = rl;
	low.rlim_cur = 32; /* a budget of 16 directory fds */
	if (setrlimit(RLIMIT_NOFILE, &low) == 0) {
		walk_stats sl;
		o.no_uring = 0;
		walk_node *c = walk_ok(rootpath, &o, &sl);
		setrlimit(RLIMIT_NOFILE, &rl);
		CHECK(c && same_tree(a, c));
		walk_free(c);
	}

	/* io_uring off by option: plain syscalls, said once */
	walk_stats se;
	o.no_uring = 1;
	walk_node *c = walk_ok(rootpath, &o, &se);
	CHECK_EQ(se.used_uring, 0);
	CHECK(strstr(se.notice, "disabled by option") != NULL);
	CHECK(c && same_tree(a, c));
	walk_free(c);

	/* xattrs through the procfs route give the same result */
	o.no_xattrat = 1;
	o.no_uring = env_off;
	c = walk_ok(rootpath, &o, &se);
	CHECK(c && same_tree(a, c));
	walk_free(c);
	o.no_uring = 1;
	c = walk_ok(rootpath, &o, &se);
	CHECK(c && same_tree(a, c));
	walk_free(c);
	o.no_xattrat = 0;

	/* walk_open: refuses what is not a regular file, never blocks on a
	 * FIFO, reports a vanished file as not found */
	int fd = walk_open(rfd, kid(a, "fifo"));
	CHECK_EQ(fd, CAIRN_EIO);
	fd = walk_open(rfd, kid(a, "link")); /* a symlink is not followed */
	CHECK(fd < 0);
	fd = walk_open(rfd, a);
	CHECK(fd < 0);
	fd = walk_open(rfd, kid(a, "setuid"));
	CHECK(fd >= 0);
	if (fd >= 0) close(fd);

	/* concurrent walk_open */
	many_node = kid(a, "many");
	CHECK(many_node && many_node->nkids == MANY);
	if (many_node) {
		for (size_t i = 0; i < many_node->nkids; i++) {
			char nm[32];
			snprintf(nm, sizeof(nm), "f%05u", (unsigned)i);
			if (strcmp(many_node->kids[i]->name, nm)) {
				CHECK(0 && "many: order");
				break;
			}
		}
		open_rootfd = rfd;
		pthread_t th[4];
		for (uintptr_t i = 0; i < 4; i++) pthread_create(&th[i], NULL, opener, (void *)i);
		for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
		CHECK_EQ(atomic_load(&open_bad), 0);
	}

	/* a directory swapped for a symlink after the walk: walk_open must not
	 * follow it (short path through openat2, long path by descent) */
	int dfd = open(rootpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (renameat(dfd, "dir", dfd, "dir.moved") == 0) {
		if (symlinkat("dir.moved", dfd, "dir") < 0) die("symlink swap");
		const walk_node *sf = lookup(b, "dir/datadrive/kept");
		CHECK(sf != NULL);
		if (sf) CHECK(walk_open(rfd, sf) < 0);
		unlinkat(dfd, "dir", 0);
		if (renameat(dfd, "dir.moved", dfd, "dir") < 0) die("rename back");
	}
	char deep0[DEEP_NAME + 32];
	snprintf(deep0, sizeof(deep0), "deep/%s", deep_name[0]);
	if (bottom && renameat(dfd, deep0, dfd, "deep.moved") == 0) {
		if (symlinkat("../deep.moved", dfd, deep0) < 0) die("symlink swap");
		CHECK(walk_open(rfd, bottom) < 0);
		unlinkat(dfd, deep0, 0);
		if (renameat(dfd, "deep.moved", dfd, deep0) < 0) die("rename back");
	}
	/* removed: not found */
	const walk_node *hl2 = kid(a, "hl2");
	if (hl2 && unlinkat(dfd, "hl2", 0) == 0) {
		CHECK_EQ(walk_open(rfd, hl2), CAIRN_ENOTFOUND);
		if (linkat(dfd, "hl1", dfd, "hl2", 0) < 0) die("relink");
	}
	close(dfd);
	close(rfd);

done:
	walk_free(a);
	walk_free(b);
	walk_free(r);
}

static void test_errors(void)
{
	walk_node *n = (walk_node *)1;
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/no-such-dir", base);
	CHECK_EQ(walk_run(&n, p, NULL, NULL), CAIRN_ENOTFOUND);
	CHECK(n == NULL);
	CHECK(strstr(cairn_error_last(), "no-such-dir") != NULL);
	snprintf(p, sizeof(p), "%s/file", rootpath);
	CHECK_EQ(walk_run(&n, p, NULL, NULL), CAIRN_EUSAGE);
	CHECK(n == NULL);
	const char *bad[][1] = {{"var/cache"}, {"/"}, {"///"}, {"/a/../b"}};
	for (size_t i = 0; i < 4; i++) {
		walk_options o = {.excludes = bad[i], .nexcludes = 1};
		walk_stats s;
		CHECK_EQ(walk_run(&n, rootpath, &o, &s), CAIRN_EUSAGE);
		CHECK(n == NULL);
	}
	walk_free(NULL);
}

/* A tmpfs root: 64 KiB xattr values, and the root itself a mount. */
static void test_tmpfs_root(void)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/tm", base);
	if (mkdir(p, 0755) < 0) die("tm");
	if (mount("walktest2", p, "tmpfs", 0, NULL) < 0) {
		printf("note: tmpfs root test skipped (mount: %s)\n", strerror(errno));
		return;
	}
	int r = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	static uint8_t big[65536];
	t_fill(big, sizeof(big));
	int fd = openat(r, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	close(fd);
	int okx = 1;
	char xp[64];
	snprintf(xp, sizeof(xp), "/proc/self/fd/%d/f", r);
	if (lsetxattr(xp, "trusted.big", big, sizeof(big), 0) < 0) okx = 0;
	if (fsetxattr(r, "trusted.rootattr", "R", 1, 0) < 0) okx = 0;
	walk_stats s1, s2;
	walk_options o = {.no_uring = 0};
	walk_node *a = walk_ok(p, &o, &s1);
	o.no_uring = 1;
	walk_node *b = walk_ok(p, &o, &s2);
	CHECK(a && b && same_tree(a, b));
	if (a && okx) {
		const walk_node *f = kid(a, "f");
		CHECK(f && f->nxattrs == 1 && f->xattrs[0].value_len == sizeof(big) &&
		      !memcmp(f->xattrs[0].value, big, sizeof(big)));
		CHECK(a->nxattrs == 1 && !strcmp(a->xattrs[0].name, "trusted.rootattr"));
		CHECK_EQ(s1.mounts_skipped, 0);
	} else if (!okx) {
		printf("note: 64 KiB xattr not supported here; checked the walk only\n");
	}
	walk_free(a);
	walk_free(b);
	close(r);
	umount2(p, MNT_DETACH);
}

/* walk_options.prior: an entry unchanged since the prior walk keeps its
 * xattrs and symlink target (shown by forging them in the prior tree);
 * one changed since (setxattr, a new symlink, a removed xattr) is read
 * again; an entry whose ctime is not before prior_start is read again. */
/* on_file: each regular file once, in the tree by then, with its namesake in
 * the prior walk; a failed walk ends with one on_file(NULL) before its tree
 * is freed. */
typedef struct file_calls {
	size_t files, with_prior, not_in_tree, wrong_prior, after_end, ends;
} file_calls;

static int in_kids(const walk_node *n)
{
	for (size_t i = 0; n->parent && i < n->parent->nkids; i++)
		if (n->parent->kids[i] == n) return 1;
	return 0;
}

static void on_file(void *payload, walk_node *n, const walk_node *prior)
{
	file_calls *fc = payload;
	if (!n) {
		fc->ends++;
		return;
	}
	if (fc->ends) fc->after_end++;
	fc->files++;
	if (n->type != TREE_REG || !in_kids(n)) fc->not_in_tree++;
	if (prior) {
		fc->with_prior++;
		if (prior->type != TREE_REG || strcmp(prior->name, n->name) != 0) fc->wrong_prior++;
	}
}

static void test_on_file(void)
{
	for (int mode = 0; mode < 2; mode++) {
		file_calls fc = {0};
		walk_stats st;
		walk_options o = {.no_uring = mode, .on_file = on_file, .payload = &fc};
		walk_node *first = walk_ok(rootpath, &o, &st);
		CHECK_EQ(fc.files, st.files);
		CHECK(fc.files > 0);
		CHECK_EQ(fc.with_prior, 0);
		CHECK_EQ(fc.not_in_tree, 0);
		CHECK_EQ(fc.ends, 0); /* a walk that succeeds does not end the calls */
		/* again with the first walk as prior: every file has its namesake */
		memset(&fc, 0, sizeof(fc));
		o.prior = first;
		walk_node *second = walk_ok(rootpath, &o, &st);
		CHECK_EQ(fc.files, st.files);
		CHECK_EQ(fc.with_prior, st.files);
		CHECK_EQ(fc.wrong_prior, 0);
		walk_free(second);
		walk_free(first);
	}

	/* a walk that fails part way: no descriptor left for a subdirectory */
	pid_t pid = fork();
	if (pid < 0) die("fork");
	if (pid == 0) {
		file_calls fc = {0};
		walk_options o = {.no_uring = 1, .on_file = on_file, .payload = &fc};
		struct rlimit rl = {64, 64};
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) _exit(3);
		int last = -1;
		for (int fd; (fd = dup(0)) >= 0;) last = fd;
		if (last >= 0) close(last); /* one left: the root's */
		walk_node *n = NULL;
		int rc = walk_run(&n, rootpath, &o, NULL);
		printf("walk with one descriptor: rc %d, %zu files before the end (%s)\n", rc, fc.files,
		       rc ? cairn_error_last() : "no error");
		fflush(stdout);
		_exit(rc < 0 && n == NULL && fc.ends == 1 && fc.after_end == 0 ? 0 : 1);
	}
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* walk_options.prior_dir and prior_done: a prior whose directories have
 * their kids hidden until prior_dir gives them back (as a take loads its
 * parent a directory at a time) is compared with as a whole one is: every
 * file finds its namesake, so each directory was loaded before its first
 * entry was compared; each loaded directory is done once, after which its
 * kids may go; an error from prior_dir ends the walk with it. */
typedef struct lazy_dir {
	walk_node *dir;
	walk_node **kids;
	size_t nkids;
	int loads, dones;
} lazy_dir;

typedef struct lazy_prior {
	file_calls fc;
	lazy_dir *v;
	size_t n;
	int fail_at, calls, unknown;
} lazy_prior;

static lazy_dir *lazy_find(lazy_prior *lp, const walk_node *d)
{
	for (size_t i = 0; i < lp->n; i++)
		if (lp->v[i].dir == d) return &lp->v[i];
	lp->unknown++;
	return NULL;
}

static int lazy_load(void *payload, const walk_node *pd)
{
	lazy_prior *lp = payload;
	if (++lp->calls == lp->fail_at) return error_set(CAIRN_EIO, "prior directory: forced failure");
	lazy_dir *d = lazy_find(lp, pd);
	if (!d) return 0;
	d->loads++;
	d->dir->kids = d->kids;
	d->dir->nkids = d->nkids;
	return 0;
}

static void lazy_done(void *payload, const walk_node *pd)
{
	lazy_dir *d = lazy_find(payload, pd);
	if (!d) return;
	d->dones++;
	d->dir->kids = NULL; /* as if freed: the walk must not look again */
	d->dir->nkids = 0;
}

static void lazy_file(void *payload, walk_node *n, const walk_node *prior)
{
	on_file(&((lazy_prior *)payload)->fc, n, prior);
}

/* Every directory of the tree at dir, kids hidden (stack on the heap: the
 * tree has deep paths). */
static void lazy_hide(lazy_prior *lp, walk_node *root)
{
	size_t cap = 64;
	walk_node **stack = malloc(cap * sizeof(*stack));
	size_t top = 0;
	if (!stack) die("malloc");
	stack[top++] = root;
	while (top > 0) {
		walk_node *d = stack[--top];
		lazy_dir *v = realloc(lp->v, (lp->n + 1) * sizeof(*v));
		if (!v) die("realloc");
		lp->v = v;
		lp->v[lp->n++] = (lazy_dir){d, d->kids, d->nkids, 0, 0};
		for (size_t i = 0; i < d->nkids; i++) {
			if (d->kids[i]->type != TREE_DIR) continue;
			if (top == cap && !(stack = realloc(stack, (cap *= 2) * sizeof(*stack)))) die("realloc");
			stack[top++] = d->kids[i];
		}
		d->kids = NULL;
		d->nkids = 0;
	}
	free(stack);
}

static void lazy_restore(lazy_prior *lp)
{
	for (size_t i = 0; i < lp->n; i++) {
		lp->v[i].dir->kids = lp->v[i].kids;
		lp->v[i].dir->nkids = lp->v[i].nkids;
	}
	free(lp->v);
	lp->v = NULL;
	lp->n = 0;
}

static void test_prior_lazy(void)
{
	for (int mode = 0; mode < 2; mode++) {
		walk_stats st;
		walk_options fo = {.no_uring = mode};
		walk_node *first = walk_ok(rootpath, &fo, &st);
		lazy_prior lp = {0};
		lazy_hide(&lp, first);
		walk_options o = {.no_uring = mode, .prior = first, .on_file = lazy_file, .prior_dir = lazy_load,
		                  .prior_done = lazy_done, .payload = &lp};
		walk_node *second = walk_ok(rootpath, &o, &st);
		CHECK_EQ(lp.fc.files, st.files);
		CHECK_EQ(lp.fc.with_prior, st.files);
		CHECK_EQ(lp.fc.wrong_prior, 0);
		CHECK_EQ(lp.unknown, 0);
		size_t loaded = 0, twice = 0, undone = 0;
		for (size_t i = 0; i < lp.n; i++) {
			loaded += lp.v[i].loads > 0;
			twice += lp.v[i].loads > 1 || lp.v[i].dones > 1;
			undone += lp.v[i].loads != lp.v[i].dones;
		}
		CHECK(loaded > 1);
		CHECK_EQ(twice, 0);
		CHECK_EQ(undone, 0);
		walk_free(second);

		/* prior_dir fails at its third call: the walk fails with its error */
		lazy_restore(&lp);
		lazy_hide(&lp, first);
		memset(&lp.fc, 0, sizeof(lp.fc));
		lp.calls = 0;
		lp.fail_at = 3;
		walk_node *n = NULL;
		int rc = walk_run(&n, rootpath, &o, NULL);
		CHECK_EQ(rc, CAIRN_EIO);
		CHECK(n == NULL);
		CHECK(strstr(cairn_error_last(), "forced failure") != NULL);
		CHECK_EQ(lp.fc.ends, 1);
		error_clear();
		lazy_restore(&lp);
		walk_free(first);
	}
}

/* A part walked on its own (walk_options.subtree) and grafted into a walk
 * that excluded it: the tree of one whole walk. */
static void test_graft(void)
{
	char p[PATH_MAX + 16], q[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/dir", rootpath);
	walk_options o = {0}, po = {.subtree = 1};
	const char *ex[] = {"/dir"};
	walk_options mo = {.excludes = ex, .nexcludes = 1};
	walk_stats full_st, main_st, part_st;
	walk_node *full = walk_ok(rootpath, &o, &full_st);
	walk_node *a = walk_ok(rootpath, &mo, &main_st);
	walk_node *b = walk_ok(p, &po, &part_st);
	if (full && a && b) {
		/* only the capture root's datadrive is special, not a part's */
		const walk_node *dd = kid(b, "datadrive");
		CHECK(dd && !dd->is_mount && dd->nkids == 1);
		CHECK(kid(a, "dir") == NULL);
		CHECK_EQ(main_st.excluded, 1);
		CHECK_EQ(walk_graft(a, b, "dir", 3), 0);
		b = NULL;
		CHECK(same_tree(a, full));
		CHECK_EQ(main_st.files + part_st.files, full_st.files);
		CHECK_EQ(main_st.dirs + part_st.dirs, full_st.dirs);
		CHECK_EQ(main_st.bytes + part_st.bytes, full_st.bytes);
		CHECK_EQ(main_st.root_mnt, part_st.root_mnt);
	}
	walk_free(a); /* the part's nodes with it (ASan: nothing leaks) */
	walk_free(b);
	walk_free(full);

	/* the same directory as a root of its own: its datadrive is kept empty */
	walk_node *whole = walk_ok(p, &o, NULL);
	const walk_node *dd = kid(whole, "datadrive");
	CHECK(dd && dd->is_mount && dd->nkids == 0);
	walk_free(whole);

	/* a part that became a symlink is not followed */
	snprintf(q, sizeof(q), "%s/dirlink", base);
	if (symlink(p, q) < 0) die("symlink dirlink");
	walk_node *n = (walk_node *)1;
	CHECK_EQ(walk_run(&n, q, &po, NULL), CAIRN_EUSAGE);
	CHECK(n == NULL);
	walk_free(walk_ok(q, &o, NULL)); /* a capture root may be one */
	unlink(q);
}

/* Names asked in ascending order, with ones in between that are missing
 * (a proper prefix, a longer name), as a merge of two directories asks them. */
typedef struct query {
	char name[300];
	size_t len;
} query;

static int query_cmp(const void *pa, const void *pb)
{
	const query *a = pa, *b = pb;
	int c = memcmp(a->name, b->name, a->len < b->len ? a->len : b->len);
	return c ? c : a->len < b->len ? -1 : a->len > b->len;
}

static void check_find_from(const walk_node *dir)
{
	size_t nq = 0;
	query *q = calloc(3 * dir->nkids + 1, sizeof(*q));
	if (!q) die("calloc");
	for (size_t i = 0; i < dir->nkids; i++) {
		const walk_node *k = dir->kids[i];
		memcpy(q[nq].name, k->name, k->name_len);
		q[nq++].len = k->name_len;
		if (k->name_len > 1) {
			memcpy(q[nq].name, k->name, k->name_len - 1);
			q[nq++].len = k->name_len - 1;
		}
		memcpy(q[nq].name, k->name, k->name_len);
		q[nq].name[k->name_len] = '\x01';
		q[nq++].len = k->name_len + 1;
	}
	qsort(q, nq, sizeof(*q), query_cmp);
	/* strictly ascending, as a merge asks: a kid's name may also be another
	 * kid's name less its last byte ("a" beside "ab"), asked once */
	size_t uq = 0;
	for (size_t i = 0; i < nq; i++)
		if (uq == 0 || query_cmp(&q[uq - 1], &q[i]) != 0) q[uq++] = q[i];
	nq = uq;
	size_t at = 0;
	for (size_t i = 0; i < nq; i++) {
		const walk_node *want = walk_find_kid(dir, q[i].name, q[i].len);
		CHECK(walk_find_kid_from(dir, &at, q[i].name, q[i].len) == want);
	}
	free(q);
	for (size_t i = 0; i < dir->nkids; i++)
		if (dir->kids[i]->nkids) check_find_from(dir->kids[i]);
}

static void test_find_kid_from(void)
{
	walk_options o = {0};
	walk_node *root = walk_ok(rootpath, &o, NULL);
	if (root) check_find_from(root);
	walk_free(root);
}

static void test_prior(void)
{
	char p[PATH_MAX + 16], q[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/prior", base);
	if (mkdir(p, 0755) < 0) die("prior");
	const char *names[] = {"keep", "setx", "d"};
	for (int i = 0; i < 3; i++) {
		snprintf(q, sizeof(q), "%s/%s", p, names[i]);
		if (i == 2 ? mkdir(q, 0755) < 0 : close(open(q, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0) die("prior entry");
		if (lsetxattr(q, "user.v", "old", 3, 0) < 0) {
			printf("note: prior test skipped (user xattrs: %s)\n", strerror(errno));
			return;
		}
	}
	snprintf(q, sizeof(q), "%s/link", p);
	if (symlink("old-target", q) < 0) die("symlink");
	snprintf(q, sizeof(q), "%s/samelink", p);
	if (symlink("same-target", q) < 0) die("symlink");
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL); /* the entries' ctimes are now in an earlier clock tick */
	struct timespec start;
	clock_gettime(CLOCK_REALTIME_COARSE, &start);
	walk_options o = {.no_uring = 0};
	walk_node *first = walk_ok(p, &o, NULL);
	CHECK(first != NULL);
	if (!first) return;

	/* changes after the prior walk began */
	snprintf(q, sizeof(q), "%s/setx", p);
	CHECK(lsetxattr(q, "user.v", "new", 3, 0) == 0);
	snprintf(q, sizeof(q), "%s/d", p);
	CHECK(lremovexattr(q, "user.v") == 0);
	snprintf(q, sizeof(q), "%s/link", p);
	CHECK(unlink(q) == 0 && symlink("new-target", q) == 0);
	/* forge what the prior walk saw of the unchanged entries */
	walk_node *fk = (walk_node *)kid(first, "keep"), *fl = (walk_node *)kid(first, "samelink");
	CHECK(fk && fk->nxattrs == 1 && fl && fl->target_len == 11);
	if (fk && fk->nxattrs == 1) memcpy(fk->xattrs[0].value, "FRG", 3);
	if (fl && fl->target_len == 11) memcpy(fl->target, "forged-targ", 11);

	for (int mode = 0; mode < 2; mode++) {
		walk_options po = {.no_uring = mode, .prior = first, .prior_start = start};
		walk_node *second = walk_ok(p, &po, NULL);
		const walk_node *k = second ? kid(second, "keep") : NULL, *x = second ? kid(second, "setx") : NULL;
		const walk_node *d = second ? kid(second, "d") : NULL, *l = second ? kid(second, "link") : NULL;
		const walk_node *sl = second ? kid(second, "samelink") : NULL;
		CHECK(k && k->nxattrs == 1 && !memcmp(k->xattrs[0].value, "FRG", 3)); /* copied */
		CHECK(sl && sl->target_len == 11 && !memcmp(sl->target, "forged-targ", 11));
		CHECK(x && x->nxattrs == 1 && !memcmp(x->xattrs[0].value, "new", 3)); /* read again */
		CHECK(d && d->nxattrs == 0);
		CHECK(l && l->target && !strcmp(l->target, "new-target"));
		walk_free(second);

		/* a prior_start before the entries' ctimes: nothing is taken from the prior walk */
		po.prior_start = (struct timespec){0, 0};
		second = walk_ok(p, &po, NULL);
		k = second ? kid(second, "keep") : NULL;
		sl = second ? kid(second, "samelink") : NULL;
		CHECK(k && k->nxattrs == 1 && !memcmp(k->xattrs[0].value, "old", 3));
		CHECK(sl && sl->target && !strcmp(sl->target, "same-target"));
		walk_free(second);
	}
	walk_free(first);
}

static void test_churn(void)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/churn", base);
	if (mkdir(p, 0755) < 0) die("churn");
	churn_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pthread_t th;
	pthread_create(&th, NULL, churner, NULL);
	for (int i = 0; i < 30; i++) {
		walk_options o = {.no_uring = i & 1};
		walk_stats s;
		walk_node *n = NULL;
		int rc = walk_run(&n, p, &o, &s);
		if (rc) fprintf(stderr, "churn walk %d: %s\n", i, cairn_error_last());
		CHECK_EQ(rc, 0);
		if (n)
			for (size_t k = 1; k < n->nkids; k++) CHECK(name_order(n->kids[k - 1], n->kids[k]) < 0);
		walk_free(n);
	}
	atomic_store(&churn_stop, 1);
	pthread_join(th, NULL);
	close(churn_fd);
}

/* io_uring refused the way a container's seccomp profile refuses it: the
 * walk falls back, says why, and gives the same result. In a child, since a
 * seccomp filter cannot be removed. */
static void test_seccomp_fallback(void)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) die("fork");
	if (pid == 0) {
		int failures0 = t_failures;
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = {(unsigned short)(sizeof(f) / sizeof(f[0])), f};
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
			printf("note: seccomp unavailable (%s); fallback test skipped\n", strerror(errno));
			_exit(0);
		}
		unsetenv("CAIRN_NO_URING");
		walk_options o = {.no_uring = 0};
		walk_stats s1, s2;
		walk_node *a = walk_ok(rootpath, &o, &s1);
		CHECK_EQ(s1.used_uring, 0);
		CHECK(!strcmp(s1.notice, "io_uring unavailable (Operation not permitted); using plain syscalls"));
		printf("notice under seccomp: %s\n", s1.notice);
		o.no_uring = 1;
		walk_node *b = walk_ok(rootpath, &o, &s2);
		CHECK(a && b && same_tree(a, b));
		walk_free(a);
		walk_free(b);
		fflush(stdout);
		_exit(t_failures != failures0);
	}
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void timings(void)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/many", rootpath);
	for (int mode = 0; mode < 2; mode++) {
		double best = 1e9;
		walk_stats s;
		for (int i = 0; i < 5; i++) {
			walk_options o = {.no_uring = mode};
			walk_node *n = NULL;
			double t0 = now();
			int rc = walk_run(&n, p, &o, &s);
			double t = now() - t0;
			CHECK_EQ(rc, 0);
			walk_free(n);
			if (t < best) best = t;
		}
		printf("walk of %d files, %s: best of 5 %.2f ms\n", MANY, s.used_uring ? "io_uring" : "plain syscalls",
		       best * 1e3);
	}
}

int main(void)
{
	if (geteuid() != 0) {
		printf("test_walk needs root (mknod, chown, trusted.* xattrs, mounts); skipped\n");
		return 77;
	}
	t_seed();
	/* Mounts made here stay private to this process and vanish with it. */
	int ns = unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	if (!ns) printf("note: no private mount namespace (%s); mounts are undone at the end\n", strerror(errno));

	const char *tmp = getenv("TMPDIR");
	snprintf(base, sizeof(base), "%s/cairn-walk-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base)) die("mkdtemp");
	snprintf(rootpath, sizeof(rootpath), "%s/root", base);
	if (mkdir(rootpath, 0755) < 0) die("mkdir root");
	umask(0);
	build();

	test_main_tree();
	test_errors();
	test_tmpfs_root();
	test_prior();
	test_on_file();
	test_prior_lazy();
	test_graft();
	test_find_kid_from();
	test_churn();
	test_seccomp_fallback();
	timings();

	char p[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/mnt", rootpath);
	if (mounted_tmpfs) umount2(p, MNT_DETACH);
	snprintf(p, sizeof(p), "%s/bind", rootpath);
	if (mounted_bind) umount2(p, MNT_DETACH);
	snprintf(p, sizeof(p), "%s/fmnt", rootpath);
	if (mounted_fbind) umount2(p, MNT_DETACH);
	int bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rm_tree_at(bfd, "root");
	rm_tree_at(bfd, "churn");
	rm_tree_at(bfd, "prior");
	rm_tree_at(bfd, "tm");
	close(bfd);
	rmdir(base);
	return t_done();
}
