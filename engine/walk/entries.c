/* The walker (internal.h): an entry's metadata, symlink target and xattrs
 * (listed, or copied from the prior walk). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "cairn.h"
#include "error.h"

int read_target(walker *w, walk_node *n, int dirfd, uint64_t size_hint)
{
	size_t cap = size_hint + 1 > 64 ? (size_t)size_hint + 1 : 64;
	for (;;) {
		if (cap > SYMLINK_MAX + 1) return walk_fail_errno(w, n, ENAMETOOLONG, "readlink");
		char *t = malloc(cap);
		if (!t) return ERR_OOM();
		ssize_t r = readlinkat(dirfd, n->name, t, cap);
		if (r < 0) {
			int err = errno;
			free(t);
			return err == ENOENT ? 1 : walk_fail_errno(w, n, err, "readlink");
		}
		if ((size_t)r < cap) {
			n->target = arena_copy(n->arena, t, (size_t)r);
			n->target_len = (uint32_t)r;
			free(t);
			return n->target ? 0 : ERR_OOM();
		}
		free(t);
		cap *= 2;
	}
}

struct xattr_args_v0 { /* struct xattr_args of linux/xattr.h (6.13) */
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

#if !defined(SYS_listxattrat) && (defined(__x86_64__) || defined(__aarch64__))
#define SYS_getxattrat 464
#define SYS_listxattrat 465
#endif

static ssize_t xs_list(const walker *w, xsrc *x, char *buf, size_t size)
{
	if (x->fd >= 0) return flistxattr(x->fd, buf, size);
#ifdef SYS_listxattrat
	if (w->xattrat)
		return (ssize_t)syscall(SYS_listxattrat, x->dirfd, x->name, AT_SYMLINK_NOFOLLOW, buf, size);
#endif
	(void)w;
	snprintf(x->path, sizeof(x->path), "/proc/self/fd/%d/%s", x->dirfd, x->name);
	return llistxattr(x->path, buf, size);
}

static ssize_t xs_get(const walker *w, xsrc *x, const char *name, void *buf, size_t size)
{
	if (x->fd >= 0) return fgetxattr(x->fd, name, buf, size);
#ifdef SYS_getxattrat
	if (w->xattrat) {
		struct xattr_args_v0 a = {(uint64_t)(uintptr_t)buf, (uint32_t)size, 0};
		return (ssize_t)syscall(SYS_getxattrat, x->dirfd, x->name, AT_SYMLINK_NOFOLLOW, name, &a, sizeof(a));
	}
#endif
	return lgetxattr(x->path, name, buf, size); /* path set by xs_list */
}

/* Decide once whether the *xattrat calls work here (kernel, seccomp). */
void xattrat_probe(walker *w, int rootfd)
{
	w->xattrat = 0;
	if (w->no_xattrat) return;
#ifdef SYS_listxattrat
	char b[16];
	long r = syscall(SYS_listxattrat, rootfd, ".", AT_SYMLINK_NOFOLLOW, b, 0);
	if (r >= 0 || errno == ENOTSUP || errno == EOPNOTSUPP) w->xattrat = 1;
#else
	(void)rootfd;
#endif
}

/* Returns 0, 1 when n vanished, or an error. */
int read_xattrs(walker *w, walk_node *n, xsrc *src)
{
	ssize_t len = xs_list(w, src, w->xlist, XATTR_LIST_BUF);
	if (len < 0) {
		int err = errno;
		if (err == ENOTSUP || err == EOPNOTSUPP) return 0;
		if (err == ENOENT) return 1;
		return walk_fail_errno(w, n, err, "listxattr");
	}
	size_t count = 0;
	for (ssize_t i = 0; i < len; i++)
		if (!w->xlist[i]) count++;
	if (!count) return 0;
	walk_xattr *xs = arena_alloc(n->arena, count * sizeof(*xs));
	if (!xs) return ERR_OOM();
	uint32_t nx = 0;
	int rc = 0;
	for (ssize_t i = 0; i < len;) {
		const char *name = w->xlist + i;
		size_t nlen = strnlen(name, (size_t)(len - i));
		i += (ssize_t)nlen + 1;
		if (!nlen) continue;
		ssize_t vlen = xs_get(w, src, name, w->xval, XATTR_VALUE_BUF);
		if (vlen < 0) {
			int err = errno;
			if (err == ENODATA) continue; /* removed since the listing */
			if (err == ENOENT) {
				rc = 1;
				goto done;
			}
			char what[300];
			snprintf(what, sizeof(what), "getxattr %s", name);
			rc = walk_fail_errno(w, n, err, what);
			goto done;
		}
		walk_xattr *x = &xs[nx];
		x->name = arena_copy(n->arena, name, nlen);
		x->value = (uint8_t *)arena_copy(n->arena, w->xval, (size_t)vlen);
		if (!x->name || !x->value) {
			rc = ERR_OOM();
			goto done;
		}
		x->value_len = (uint32_t)vlen;
		nx++;
	}
	qsort(xs, nx, sizeof(*xs), xattr_cmp);
	n->xattrs = xs;
	n->nxattrs = nx;
done: /* on failure what was copied stays in the arena, unused */
	return rc;
}

/* From an unchanged entry of the prior walk (walk_options.prior). */
int copy_target(walk_node *n, const walk_node *p)
{
	if (!(n->target = arena_copy(n->arena, p->target, p->target_len))) return ERR_OOM();
	n->target_len = p->target_len;
	return 0;
}

int walk_xattr_add(walk_node *n, const char *name, const void *value, uint32_t len)
{
	walk_xattr *x = &n->xattrs[n->nxattrs];
	x->name = arena_copy(n->arena, name, strlen(name));
	x->value = (uint8_t *)arena_copy(n->arena, value, len);
	if (!x->name || !x->value) return ERR_OOM();
	x->value_len = len;
	n->nxattrs++;
	return 0;
}

int copy_xattrs(walk_node *n, const walk_node *p)
{
	if (!p->nxattrs) return 0;
	if (!(n->xattrs = arena_alloc(n->arena, p->nxattrs * sizeof(*n->xattrs)))) return ERR_OOM();
	int rc = 0;
	for (uint32_t i = 0; i < p->nxattrs && rc == 0; i++)
		rc = walk_xattr_add(n, p->xattrs[i].name, p->xattrs[i].value, p->xattrs[i].value_len);
	return rc;
}

int walk_unchanged_since(const walk_node *n, const walk_node *p, const struct timespec *start)
{
	return n->type == p->type && n->ino == p->ino && n->dev_major == p->dev_major &&
	       n->dev_minor == p->dev_minor && n->ctime_sec == p->ctime_sec &&
	       n->ctime_nsec == p->ctime_nsec &&
	       (n->ctime_sec < start->tv_sec ||
	        (n->ctime_sec == start->tv_sec && n->ctime_nsec < (uint32_t)start->tv_nsec));
}

void fill_meta(walk_node *n, const struct statx *s)
{
	n->mode = s->stx_mode;
	n->uid = s->stx_uid;
	n->gid = s->stx_gid;
	n->mtime_sec = s->stx_mtime.tv_sec;
	n->mtime_nsec = s->stx_mtime.tv_nsec;
	n->ctime_sec = s->stx_ctime.tv_sec;
	n->ctime_nsec = s->stx_ctime.tv_nsec;
	n->ino = s->stx_ino;
	n->size = s->stx_size;
	n->blocks = s->stx_blocks;
	n->nlink = s->stx_nlink;
	n->dev_major = s->stx_dev_major;
	n->dev_minor = s->stx_dev_minor;
	n->rdev_major = s->stx_rdev_major;
	n->rdev_minor = s->stx_rdev_minor;
}

/* 0 for sockets (skipped), -1 for an unknown type. */
int walk_type_of(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return TREE_REG;
	case S_IFDIR: return TREE_DIR;
	case S_IFLNK: return TREE_SYMLINK;
	case S_IFIFO: return TREE_FIFO;
	case S_IFCHR: return TREE_CHR;
	case S_IFBLK: return TREE_BLK;
	case S_IFSOCK: return 0;
	default: return -1;
	}
}

int push_dir(walker *w, walk_node *n, const excl *ex, const walk_node *prior)
{
	if (w->ndirs == w->cap_dirs) {
		size_t nc = w->cap_dirs ? w->cap_dirs * 2 : 256;
		dstate **nd = realloc(w->dirs, nc * sizeof(*nd));
		if (!nd) return ERR_OOM();
		w->dirs = nd;
		w->cap_dirs = nc;
	}
	dstate *d = calloc(1, sizeof(*d));
	if (!d) return ERR_OOM();
	d->node = n;
	d->ex = ex;
	d->fd = -1;
	d->prior = prior;
	n->user = d;
	w->dirs[w->ndirs++] = d;
	return 0;
}

/* Directory d has every entry completed: put kids in their final order. */
void dir_finish(dstate *d)
{
	walk_node *n = d->node;
	if (n->nkids > 1) qsort(n->kids, n->nkids, sizeof(*n->kids), kid_cmp);
}
