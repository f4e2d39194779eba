/* The filesystem walker.
 *
 * Directories are processed breadth-first. Each one is read whole with
 * getdents64, then one statx per entry is issued. Each is tried as a plain
 * syscall first, completed at once: cheapest when the inodes are cached. One
 * that had to wait on the disk sends the entries after it through io_uring,
 * where many directories' statx are in flight at once (up to MAX_INFLIGHT),
 * so the kernel's workers stat in parallel while this thread reads the next
 * directories and does readlink/xattrs for finished entries. Without io_uring
 * every statx is a plain syscall.
 *
 * No syscall ever sees a path longer than one name: everything is relative to
 * a directory fd. Open directory fds are bounded (fd_budget): a directory
 * whose fd is not pinned by in-flight work sits in an LRU and may be closed;
 * it is reopened from its parent (recursively, the root stays open) when a
 * subdirectory needs it. */
#include "walk.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "error.h"
#include "format.h"
#include "util.h"

#define DENTS_BUF (64u * 1024u)
#define RING_SQ 512u
#define MAX_INFLIGHT 4096u
#define STATX_WANT (STATX_BASIC_STATS | STATX_MNT_ID)
#define XATTR_LIST_BUF (64u * 1024u)  /* XATTR_LIST_MAX */
#define XATTR_VALUE_BUF (64u * 1024u) /* XATTR_SIZE_MAX */
#define SYMLINK_MAX (1u << 20)        /* sanity cap; the tree format takes 4095 */
/* A plain statx slower than this waited on the disk (a cached one costs a
 * few microseconds); the entries after it go through the ring, a window of
 * RING_WINDOW_MIN doubling while the probes stay slow. One slow statx alone
 * is more often the thread losing its core (workers hash beside the walk):
 * the ring is taken at a second one within SLOW_PAIR_SPAN plain calls, which
 * a cold tree gives at once. */
#define SLOW_STATX_NS 40000
#define SLOW_PAIR_SPAN 16u
#define RING_WINDOW_MIN 256u
#define RING_WINDOW_MAX 16384u

/* Excludes as a trie of path components. */
typedef struct excl {
	char *name;
	size_t len;
	int terminal;
	struct excl **kids;
	size_t nkids;
} excl;

/* Per-directory state during the walk (walk_node.user points here). */
typedef struct dstate {
	walk_node *node;       /* NULL once the directory vanished */
	const excl *ex;        /* exclude trie node of this path, or NULL */
	int fd;                /* -1 when closed */
	uint32_t pins;         /* users of fd: scanning, in-flight statx, reopen chain */
	int in_lru;
	struct dstate *lru_prev, *lru_next;
	struct dstate *down;   /* acquire's path from an open ancestor */
	walk_node **ents;      /* entries read by getdents, statx not yet issued */
	size_t nents, next;
	size_t outstanding;    /* statx issued, not completed */
	int scanned;           /* all entries issued */
	const walk_node *prior; /* this directory in the prior walk, or NULL */
} dstate;

typedef struct req {
	walk_node *node;
	dstate *dir;
	int via_ring;
	struct statx stx;
} req;

typedef struct walker {
	const char *root;
	int no_xattrat; /* tests: xattrs through /proc paths (walk_options) */
	int rootfd;
	int have_mnt;
	uint64_t root_mnt;
	uint32_t root_dev_major, root_dev_minor;
	walk_stats *st;
	excl *ex_root;

	int use_ring;
	struct io_uring ring;
	size_t ring_left, ring_window; /* entries still to send through the ring, and the window */
	uint64_t nplain, last_slow;    /* plain statx made, and the number of the last slow one */
	size_t inflight, max_inflight;
	req *reqs;
	uint32_t *free_reqs;
	size_t nfree;

	dstate **dirs; /* every directory, in BFS order; [head..ndirs) not yet scanned */
	size_t ndirs, cap_dirs, head;
	dstate *cur;   /* directory whose entries are being issued */

	dstate *lru_head, *lru_tail; /* idle open fds, most recent at head */
	size_t open_fds, idle_fds, fd_budget;

	uint8_t *dents;
	char *xlist;
	const walk_node *prior;          /* walk_options.prior */
	void (*on_file)(void *payload, walk_node *n, const walk_node *prior);
	void *payload;
	int subtree; /* walk_options.subtree */
	struct timespec prior_start;
	uint8_t *xval;
	int xattrat; /* listxattrat/getxattrat available */
	int stuck;   /* statx left in flight: the tree is leaked, not freed */
} walker;

/* ---- small helpers ---- */

static int kid_cmp(const void *pa, const void *pb)
{
	const walk_node *a = *(walk_node *const *)pa, *b = *(walk_node *const *)pb;
	return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

walk_node *walk_find_kid_from(const walk_node *dir, size_t *at, const char *name, size_t len)
{
	for (; *at < dir->nkids; ++*at) {
		const walk_node *k = dir->kids[*at];
		int c = name_cmp(k->name, k->name_len, name, len);
		if (c == 0) return dir->kids[(*at)++];
		if (c > 0) break;
	}
	return NULL;
}

walk_node *walk_find_kid(const walk_node *dir, const char *name, size_t len)
{
	size_t lo = 0, hi = dir->nkids;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const walk_node *k = dir->kids[mid];
		int c = name_cmp(k->name, k->name_len, name, len);
		if (c == 0) return dir->kids[mid];
		if (c < 0) lo = mid + 1;
		else hi = mid;
	}
	return NULL;
}

static int xattr_cmp(const void *pa, const void *pb)
{
	return strcmp(((const walk_xattr *)pa)->name, ((const walk_xattr *)pb)->name);
}

/* ---- the tree's arena ---- */

/* Blocks of ARENA_BLOCK bytes, bump-allocated; a request of more than a
 * quarter block gets a block of its own (so the current one keeps
 * filling). Dropped nodes (vanished entries) stay until the tree goes. */
#define ARENA_BLOCK (256u * 1024u)
#define ARENA_ALIGN 16u

typedef struct arena_block {
	struct arena_block *next;
	size_t used, cap;
} arena_block;

struct walk_arena {
	arena_block *head;
};

#define BLOCK_HDR ((sizeof(arena_block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

static void *arena_alloc(struct walk_arena *a, size_t len)
{
	len = (len + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	arena_block *b = a->head;
	if (!b || b->cap - b->used < len) {
		int own = len > ARENA_BLOCK / 4;
		size_t cap = own ? len : ARENA_BLOCK - BLOCK_HDR;
		arena_block *nb = malloc(BLOCK_HDR + cap);
		if (!nb) return NULL;
		nb->used = 0;
		nb->cap = cap;
		if (own && b) { /* behind the current block, which keeps filling */
			nb->next = b->next;
			b->next = nb;
		} else {
			nb->next = b;
			a->head = nb;
		}
		b = nb;
	}
	void *p = (char *)b + BLOCK_HDR + b->used;
	b->used += len;
	memset(p, 0, len);
	return p;
}

void *walk_alloc(walk_node *n, size_t len) { return arena_alloc(n->arena, len ? len : 1); }

static char *arena_copy(struct walk_arena *a, const void *data, size_t len)
{
	char *p = arena_alloc(a, len + 1); /* NUL-terminated for names and targets */
	if (p && len) memcpy(p, data, len);
	return p;
}

walk_node *walk_node_new(const char *name, size_t len, walk_node *parent)
{
	struct walk_arena *a = parent ? parent->arena : calloc(1, sizeof(*a));
	if (!a) return NULL;
	walk_node *n = arena_alloc(a, sizeof(*n) + len + 1);
	if (!n) {
		if (!parent) free(a);
		return NULL;
	}
	n->name = (char *)(n + 1);
	memcpy(n->name, name, len);
	n->name[len] = 0;
	n->name_len = (uint16_t)len;
	n->parent = parent;
	n->arena = a;
	return n;
}

/* Where kid k is among dir's kids (sorted, unique): found by name. */
static size_t kid_index(const walk_node *dir, const walk_node *k)
{
	size_t lo = 0, hi = dir->nkids;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (dir->kids[mid] == k) return mid;
		if (name_cmp(dir->kids[mid]->name, dir->kids[mid]->name_len, k->name, k->name_len) < 0) lo = mid + 1;
		else hi = mid;
	}
	for (lo = 0; lo < dir->nkids && dir->kids[lo] != k; lo++) {} /* never: kids are sorted */
	return lo;
}

/* top and every node below it to arena a, depth first through the parent
 * links: no stack, C or heap, whatever the depth. */
static void set_arena(walk_node *top, struct walk_arena *a)
{
	walk_node *n = top;
	size_t next = 0; /* the kid of n to visit next */
	n->arena = a;
	for (;;) {
		if (next < n->nkids) {
			n = n->kids[next];
			n->arena = a;
			next = 0;
		} else if (n == top) {
			break;
		} else {
			next = kid_index(n->parent, n) + 1;
			n = n->parent;
		}
	}
}

int walk_graft(walk_node *dir, walk_node *sub, const char *name, size_t len)
{
	walk_node **kids = arena_alloc(dir->arena, (dir->nkids + 1) * sizeof(*kids));
	walk_node *n = kids ? walk_node_new(name, len, dir) : NULL;
	if (!n) return ERR_OOM();
	char *keep_name = n->name;
	*n = *sub;
	n->name = keep_name;
	n->name_len = (uint16_t)len;
	n->parent = dir;
	for (size_t i = 0; i < n->nkids; i++) n->kids[i]->parent = n;
	/* sub's blocks go behind dir's current one; its nodes point at dir's arena */
	struct walk_arena *from = sub->arena, *to = dir->arena;
	set_arena(n, to);
	arena_block *last = from->head;
	while (last && last->next) last = last->next;
	if (last) {
		last->next = to->head->next;
		to->head->next = from->head;
	}
	free(from);
	size_t at = 0;
	while (at < dir->nkids && name_cmp(dir->kids[at]->name, dir->kids[at]->name_len, name, len) < 0) at++;
	memcpy(kids, dir->kids, at * sizeof(*kids));
	kids[at] = n;
	memcpy(kids + at + 1, dir->kids + at, (dir->nkids - at) * sizeof(*kids));
	dir->kids = kids;
	dir->nkids++;
	return 0;
}

void walk_free(walk_node *root)
{
	if (!root) return;
	struct walk_arena *a = root->arena;
	for (arena_block *b = a->head, *next; b; b = next) {
		next = b->next;
		free(b);
	}
	free(a);
}

char *walk_path(const walk_node *n)
{
	size_t len = 0;
	for (const walk_node *p = n; p && p->parent; p = p->parent) len += (size_t)p->name_len + 1;
	char *s = malloc(len ? len : 1);
	if (!s) return NULL;
	if (!len) {
		s[0] = 0;
		return s;
	}
	size_t at = len - 1;
	s[at] = 0;
	for (const walk_node *p = n; p && p->parent; p = p->parent) {
		at -= p->name_len;
		memcpy(s + at, p->name, p->name_len);
		if (at) s[--at] = '/';
	}
	return s;
}

/* Path for messages; never NULL. */
static const char *msg_path(const walk_node *n, char **hold)
{
	*hold = walk_path(n);
	return *hold ? *hold : "(path unavailable: out of memory)";
}

static int fail_errno(walker *w, const walk_node *n, int err, const char *what)
{
	char *p;
	int rc = error_errno(CAIRN_EIO, err, "walk %s: %s: %s", w->root, msg_path(n, &p), what);
	free(p);
	return rc;
}

/* ---- excludes ---- */

static void excl_free(excl *e)
{
	if (!e) return;
	for (size_t i = 0; i < e->nkids; i++) excl_free(e->kids[i]);
	free(e->kids);
	free(e->name);
	free(e);
}

static const excl *excl_find(const excl *e, const char *name, size_t len)
{
	if (!e) return NULL;
	for (size_t i = 0; i < e->nkids; i++)
		if (e->kids[i]->len == len && !memcmp(e->kids[i]->name, name, len)) return e->kids[i];
	return NULL;
}

static int excl_add(excl *root, const char *path)
{
	if (path[0] != '/')
		return error_set(CAIRN_EUSAGE, "exclude '%s': must be an absolute path inside the root (e.g. /var/cache)", path);
	excl *e = root;
	int ncomp = 0;
	const char *p = path;
	for (;;) {
		while (*p == '/') p++;
		if (!*p) break;
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 1 && p[0] == '.') {
			p += len;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return error_set(CAIRN_EUSAGE, "exclude '%s': '..' is not allowed", path);
		excl *k = (excl *)excl_find(e, p, len);
		if (!k) {
			k = calloc(1, sizeof(*k));
			excl **nk = k ? realloc(e->kids, (e->nkids + 1) * sizeof(*nk)) : NULL;
			if (k) k->name = malloc(len ? len : 1);
			if (!k || !nk || !k->name) {
				if (nk) e->kids = nk;
				if (k) free(k->name);
				free(k);
				return ERR_OOM();
			}
			memcpy(k->name, p, len);
			k->len = len;
			e->kids = nk;
			e->kids[e->nkids++] = k;
		}
		e = k;
		ncomp++;
		p += len;
	}
	if (!ncomp) return error_set(CAIRN_EUSAGE, "exclude '%s': would exclude the whole root", path);
	e->terminal = 1;
	return 0;
}

/* ---- directory fds ---- */

static void lru_unlink(walker *w, dstate *d)
{
	if (!d->in_lru) return;
	if (d->lru_prev) d->lru_prev->lru_next = d->lru_next;
	else w->lru_head = d->lru_next;
	if (d->lru_next) d->lru_next->lru_prev = d->lru_prev;
	else w->lru_tail = d->lru_prev;
	d->lru_prev = d->lru_next = NULL;
	d->in_lru = 0;
	w->idle_fds--;
}

static void pin(walker *w, dstate *d)
{
	lru_unlink(w, d);
	d->pins++;
}

static void unpin(walker *w, dstate *d)
{
	if (--d->pins || d->fd < 0) return;
	d->lru_prev = NULL;
	d->lru_next = w->lru_head;
	if (w->lru_head) w->lru_head->lru_prev = d;
	else w->lru_tail = d;
	w->lru_head = d;
	d->in_lru = 1;
	w->idle_fds++;
}

/* Close idle fds down to the budget (all of them when budget is 0). */
static void make_room(walker *w, size_t budget)
{
	while (w->open_fds >= budget && w->lru_tail) {
		dstate *d = w->lru_tail;
		lru_unlink(w, d);
		close(d->fd);
		d->fd = -1;
		w->open_fds--;
	}
}

static int openat_dir(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

static dstate *dstate_of(const walk_node *n) { return n->user; }

/* Give d an open fd and pin it, reopening evicted ancestors from the
 * nearest open one (the root always is). Returns 0, 1 when d or an ancestor
 * has vanished, or an error. Iterative: depth is unbounded. */
static int acquire(walker *w, dstate *d)
{
	dstate *c = d;
	while (c->fd < 0) {
		dstate *p = dstate_of(c->node->parent);
		p->down = c;
		c = p;
	}
	pin(w, c);
	while (c != d) {
		dstate *next = c->down;
		make_room(w, w->fd_budget);
		int fd = openat_dir(c->fd, next->node->name);
		int err = errno;
		if (fd < 0 && (err == EMFILE || err == ENFILE) && w->lru_tail) {
			/* fds are short (other threads?): give back every idle one */
			make_room(w, 0);
			fd = openat_dir(c->fd, next->node->name);
			err = errno;
		}
		unpin(w, c);
		if (fd < 0) return err == ENOENT ? 1 : fail_errno(w, next->node, err, "open directory");
		next->fd = fd;
		w->open_fds++;
		pin(w, next);
		c = next;
	}
	return 0;
}

/* ---- entries ---- */

static int read_target(walker *w, walk_node *n, int dirfd, uint64_t size_hint)
{
	size_t cap = size_hint + 1 > 64 ? (size_t)size_hint + 1 : 64;
	for (;;) {
		if (cap > SYMLINK_MAX + 1) return fail_errno(w, n, ENAMETOOLONG, "readlink");
		char *t = malloc(cap);
		if (!t) return ERR_OOM();
		ssize_t r = readlinkat(dirfd, n->name, t, cap);
		if (r < 0) {
			int err = errno;
			free(t);
			return err == ENOENT ? 1 : fail_errno(w, n, err, "readlink");
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

/* Where an entry's xattrs are read from: the root by its fd; others by
 * (dirfd, name) with listxattrat/getxattrat (Linux 6.13) or, before that, by
 * "/proc/self/fd/<dirfd>/<name>" with the l* calls. Both work at any depth
 * and neither follows a final symlink; the *at calls skip the procfs lookup,
 * which costs more than the statx itself. */
typedef struct xsrc {
	int fd;           /* root: f*xattr on this fd */
	int dirfd;        /* else: the entry's directory */
	const char *name;
	char path[64 + MAX_NAME_LEN];
} xsrc;

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
static void xattrat_probe(walker *w, int rootfd)
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
static int read_xattrs(walker *w, walk_node *n, xsrc *src)
{
	ssize_t len = xs_list(w, src, w->xlist, XATTR_LIST_BUF);
	if (len < 0) {
		int err = errno;
		if (err == ENOTSUP || err == EOPNOTSUPP) return 0;
		if (err == ENOENT) return 1;
		return fail_errno(w, n, err, "listxattr");
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
			rc = fail_errno(w, n, err, what);
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
static int copy_target(walk_node *n, const walk_node *p)
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

static int copy_xattrs(walk_node *n, const walk_node *p)
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

static void fill_meta(walk_node *n, const struct statx *s)
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
static int type_of(uint32_t mode)
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

static int push_dir(walker *w, walk_node *n, const excl *ex, const walk_node *prior)
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
static void dir_finish(dstate *d)
{
	walk_node *n = d->node;
	if (n->nkids > 1) qsort(n->kids, n->nkids, sizeof(*n->kids), kid_cmp);
}

/* One statx finished (res is 0 or -errno). Takes ownership of r->node. */
static int complete(walker *w, req *r, int res)
{
	walk_node *n = r->node;
	dstate *d = r->dir;
	const struct statx *s = &r->stx;
	int rc = 0, t = 0, foreign;
	r->node = NULL;
	if (res < 0 && res != -ENOENT && r->via_ring) {
		/* io_uring may refuse what the plain call allows (an LSM, an
		 * old kernel's flags): the plain call decides */
		res = statx(d->fd, n->name, AT_SYMLINK_NOFOLLOW, STATX_WANT, &r->stx) < 0 ? -errno : 0;
	}
	if (res == -ENOENT) goto drop; /* vanished since getdents: the instance may be live */
	if (res < 0) {
		rc = fail_errno(w, n, -res, "statx");
		goto drop;
	}
	fill_meta(n, s);
	t = type_of(s->stx_mode);
	if (t < 0) {
		char *p;
		rc = error_set(CAIRN_EIO, "walk %s: %s: unknown file type (mode 0%o)", w->root,
		               msg_path(n, &p), (unsigned)s->stx_mode);
		free(p);
		goto drop;
	}
	if (t == 0) {
		w->st->sockets_skipped++;
		goto drop;
	}
	n->type = (uint8_t)t;
	/* Another filesystem: by mount id (a bind mount has the same device);
	 * by device only for directories when the kernel lacks STATX_MNT_ID,
	 * since overlayfs reports lower-layer devices for files. */
	if (w->have_mnt && (s->stx_mask & STATX_MNT_ID))
		foreign = s->stx_mnt_id != w->root_mnt;
	else
		foreign = t == TREE_DIR &&
		          (s->stx_dev_major != w->root_dev_major || s->stx_dev_minor != w->root_dev_minor);
	if (foreign && t != TREE_DIR) {
		/* a file mounted over a file (e.g. a runtime's resolv.conf): its
		 * content belongs to another filesystem; left out */
		w->st->mounts_skipped++;
		goto drop;
	}
	if (t == TREE_DIR && (foreign || (d->node->parent == NULL && !w->subtree && n->name_len == 9 &&
	                                  !memcmp(n->name, "datadrive", 9)))) {
		/* Kept as an empty directory; nothing beyond statx is asked of
		 * a foreign filesystem. */
		n->is_mount = 1;
		w->st->mounts_skipped++;
	}
	/* this entry in the prior walk; p: the same and unchanged since */
	const walk_node *prior = d->prior ? walk_find_kid(d->prior, n->name, n->name_len) : NULL;
	const walk_node *p = prior && prior->is_mount == n->is_mount &&
	                     walk_unchanged_since(n, prior, &w->prior_start) ? prior : NULL;
	if (t == TREE_SYMLINK) {
		rc = p ? copy_target(n, p) : read_target(w, n, d->fd, s->stx_size);
		if (rc) goto drop;
	}
	if (!n->is_mount) {
		xsrc x = {.fd = -1, .dirfd = d->fd, .name = n->name};
		rc = p ? copy_xattrs(n, p) : read_xattrs(w, n, &x);
		if (rc) goto drop;
	}
	d->node->kids[d->node->nkids++] = n;
	if (t == TREE_REG && w->on_file) w->on_file(w->payload, n, prior);
	if (t == TREE_DIR && !n->is_mount) {
		rc = push_dir(w, n, excl_find(d->ex, n->name, n->name_len),
		              prior && prior->type == TREE_DIR ? prior : NULL);
		if (rc) {
			d->node->nkids--;
			goto drop;
		}
	}
	n = NULL;
drop: /* a dropped node stays in the arena, unlinked */
	if (rc == 1) rc = 0; /* vanished during readlink/xattrs */
	d->outstanding--;
	if (d->scanned && !d->outstanding) dir_finish(d);
	unpin(w, d);
	w->free_reqs[w->nfree++] = (uint32_t)(r - w->reqs);
	return rc;
}

static int issue(walker *w, dstate *d, walk_node *n)
{
	req *r = &w->reqs[w->free_reqs[--w->nfree]];
	r->node = n;
	r->dir = d;
	r->via_ring = w->ring_left > 0;
	d->outstanding++;
	pin(w, d);
	if (!w->ring_left) {
		/* A plain statx first: an io_uring statx always goes to a kernel
		 * worker thread, which on a cached tree costs more than the call
		 * (the walk of the benchmark's instance: 211 ms against 150). The
		 * ring is for a cold tree, where statx waits on the disk. */
		int64_t t0 = w->use_ring ? mono_ns() : 0;
		int res = statx(d->fd, n->name, AT_SYMLINK_NOFOLLOW, STATX_WANT, &r->stx) < 0 ? -errno : 0;
		w->nplain++;
		if (w->use_ring && mono_ns() - t0 > SLOW_STATX_NS) {
			/* a probe after a window, or the second slow one in a short run */
			if (w->ring_window || (w->last_slow && w->nplain - w->last_slow <= SLOW_PAIR_SPAN)) {
				w->ring_window = w->ring_window ? w->ring_window * 2 : RING_WINDOW_MIN;
				if (w->ring_window > RING_WINDOW_MAX) w->ring_window = RING_WINDOW_MAX;
				w->ring_left = w->ring_window;
			}
			w->last_slow = w->nplain;
		} else {
			w->ring_window = 0;
		}
		return complete(w, r, res);
	}
	if (w->ring_left != SIZE_MAX) w->ring_left--;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	if (!sqe) {
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	if (!sqe) { /* cannot happen after a submit; undo and fail */
		r->node = NULL;
		d->outstanding--;
		unpin(w, d);
		w->nfree++;
		return error_set(CAIRN_EIO, "walk %s: io_uring: no submission slot", w->root);
	}
	io_uring_prep_statx(sqe, d->fd, n->name, AT_SYMLINK_NOFOLLOW, STATX_WANT, &r->stx);
	io_uring_sqe_set_data(sqe, r);
	w->inflight++;
	w->st->ring_statx++;
	return 0;
}

/* Read directory d whole and queue its entries. Returns 0 (d->ents set, or
 * d vanished) or an error. */
/* d vanished before it could be read: drop it from its parent. */
static void drop_dir(dstate *d)
{
	walk_node *n = d->node, *p = n->parent;
	for (size_t i = 0; i < p->nkids; i++)
		if (p->kids[i] == n) {
			memmove(p->kids + i, p->kids + i + 1, (p->nkids - i - 1) * sizeof(*p->kids));
			p->nkids--;
			break;
		}
	d->node = NULL; /* n stays in the arena, unlinked */
}

static int scan(walker *w, dstate *d)
{
	int rc = acquire(w, d);
	if (rc == 1) {
		drop_dir(d);
		return 0;
	}
	if (rc) return rc;
	size_t cap = 0;
	int vanished = 0;
	for (;;) {
		long got = syscall(SYS_getdents64, d->fd, w->dents, DENTS_BUF);
		if (got < 0 && errno == ENOENT) {
			/* removed while open: as if it had vanished before */
			vanished = 1;
			goto done;
		}
		if (got < 0) {
			rc = fail_errno(w, d->node, errno, "getdents64");
			goto done;
		}
		if (got == 0) break;
		for (long off = 0; off < got;) {
			/* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name */
			uint16_t reclen;
			memcpy(&reclen, w->dents + off + 16, 2);
			if (reclen < 20 || reclen > got - off) {
				rc = fail_errno(w, d->node, EIO, "getdents64: bad record");
				goto done;
			}
			const char *name = (const char *)w->dents + off + 19;
			size_t len = strnlen(name, (size_t)reclen - 19);
			off += reclen;
			if (len == (size_t)reclen - 19) {
				rc = fail_errno(w, d->node, EIO, "getdents64: unterminated name");
				goto done;
			}
			if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
				continue;
			if (len > MAX_NAME_LEN) {
				rc = fail_errno(w, d->node, ENAMETOOLONG, "getdents64");
				goto done;
			}
			const excl *ex = excl_find(d->ex, name, len);
			if (ex && ex->terminal) {
				w->st->excluded++;
				continue;
			}
			if (d->nents == cap) {
				size_t nc = cap ? cap * 2 : 64;
				walk_node **ne = realloc(d->ents, nc * sizeof(*ne));
				if (!ne) {
					rc = ERR_OOM();
					goto done;
				}
				d->ents = ne;
				cap = nc;
			}
			walk_node *n = walk_node_new(name, len, d->node);
			if (!n) {
				rc = ERR_OOM();
				goto done;
			}
			d->ents[d->nents++] = n;
		}
	}
	if (d->nents) {
		d->node->kids = arena_alloc(d->node->arena, d->nents * sizeof(*d->node->kids));
		if (!d->node->kids) {
			rc = ERR_OOM();
			goto done;
		}
	}
	/* pin held until every entry is issued (see finish_issue) */
	w->cur = d;
	return 0;
done:
	free(d->ents); /* its nodes stay in the arena, unlinked */
	d->ents = NULL;
	d->nents = 0;
	unpin(w, d);
	if (vanished && !d->node->parent)
		rc = error_set(CAIRN_EIO, "walk %s: the root was removed during the walk", w->root);
	else if (vanished)
		drop_dir(d);
	return rc;
}

static void finish_issue(walker *w, dstate *d)
{
	free(d->ents);
	d->ents = NULL;
	d->nents = d->next = 0;
	d->scanned = 1;
	if (!d->outstanding) dir_finish(d);
	unpin(w, d);
	w->cur = NULL;
}

static int reap(walker *w, int wait)
{
	int rc = 0;
	if (wait) {
		int r = io_uring_submit_and_wait(&w->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			return error_errno(CAIRN_EIO, -r, "walk %s: io_uring_submit_and_wait", w->root);
	}
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(&w->ring, &cqe) == 0) {
		req *r = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&w->ring, cqe);
		w->inflight--;
		int c = complete(w, r, res);
		if (c && !rc) rc = c;
	}
	return rc;
}

static int run_loop(walker *w)
{
	int rc = 0;
	for (;;) {
		while (!rc && w->nfree) {
			dstate *d = w->cur;
			if (d && d->next < d->nents) {
				walk_node *n = d->ents[d->next];
				d->ents[d->next++] = NULL;
				rc = issue(w, d, n);
				continue;
			}
			if (d) finish_issue(w, d);
			if (w->head == w->ndirs) break;
			/* Directories with statx in flight hold their fds; a new one
			 * (and a reopen chain: two at a time) must fit in the budget,
			 * else wait for completions to release some. */
			if (w->inflight && w->open_fds - w->idle_fds + 2 >= w->fd_budget) break;
			rc = scan(w, w->dirs[w->head++]);
		}
		if (rc) break;
		if (!w->inflight) {
			if (!w->cur && w->head == w->ndirs) break;
			rc = error_set(CAIRN_EIO, "walk %s: internal error: walk stalled", w->root);
			break;
		}
		rc = reap(w, 1);
	}
	/* In-flight statx write into reqs and read names: drain before
	 * anything is freed. */
	while (w->use_ring && w->inflight) {
		int r = io_uring_submit_and_wait(&w->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			w->reqs = NULL; /* leaked on purpose: the kernel may still write there */
			w->stuck = 1;   /* and read names in the tree's arena */
			break;
		}
		int c = reap(w, 0);
		if (c && !rc) rc = c;
	}
	return rc;
}

static int ring_setup(walker *w, char *why, size_t whylen)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = MAX_INFLIGHT;
	int r = io_uring_queue_init_params(RING_SQ, &w->ring, &p);
	if (r == -EINVAL) r = io_uring_queue_init(RING_SQ, &w->ring, 0);
	if (r < 0) {
		snprintf(why, whylen, "io_uring unavailable (%s); using plain syscalls", strerror(-r));
		return -1;
	}
	struct io_uring_probe *probe = io_uring_get_probe_ring(&w->ring);
	int ok = probe && io_uring_opcode_supported(probe, IORING_OP_STATX);
	if (probe) io_uring_free_probe(probe);
	if (!ok) {
		io_uring_queue_exit(&w->ring);
		snprintf(why, whylen, "io_uring has no statx on this kernel; using plain syscalls");
		return -1;
	}
	w->max_inflight = w->ring.cq.ring_entries < MAX_INFLIGHT ? w->ring.cq.ring_entries : MAX_INFLIGHT;
	return 0;
}

static int open_root(walker *w, walk_node **rootp)
{
	int fd = open(w->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (w->subtree ? O_NOFOLLOW : 0));
	if (fd < 0) {
		int err = errno;
		if (err == ENOENT) return error_errno(CAIRN_ENOTFOUND, err, "walk %s", w->root);
		if (err == ENOTDIR || (err == ELOOP && w->subtree))
			return error_set(CAIRN_EUSAGE, "walk %s: not a directory", w->root);
		return error_errno(CAIRN_EIO, err, "walk %s: open", w->root);
	}
	w->rootfd = fd;
	struct statx s;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_WANT, &s) < 0)
		return error_errno(CAIRN_EIO, errno, "walk %s: statx", w->root);
	w->have_mnt = !!(s.stx_mask & STATX_MNT_ID);
	w->root_mnt = s.stx_mnt_id;
	w->st->root_mnt = w->have_mnt ? s.stx_mnt_id : 0;
	w->root_dev_major = s.stx_dev_major;
	w->root_dev_minor = s.stx_dev_minor;
	walk_node *n = walk_node_new("", 0, NULL);
	if (!n) return ERR_OOM();
	*rootp = n;
	fill_meta(n, &s);
	n->type = TREE_DIR;
	xattrat_probe(w, fd);
	if (!w->xattrat && access("/proc/self/fd", X_OK) < 0)
		return error_errno(CAIRN_EIO, errno, "walk %s: /proc/self/fd is needed for xattrs", w->root);
	xsrc x = {.fd = fd, .dirfd = -1, .name = ""};
	int rc = read_xattrs(w, n, &x);
	if (rc == 1) rc = error_set(CAIRN_EIO, "walk %s: root vanished", w->root);
	if (rc) return rc;
	rc = push_dir(w, n, w->ex_root, w->prior);
	if (rc) return rc;
	dstate *d = n->user;
	d->fd = fd;
	w->rootfd = -1; /* owned by d now */
	w->open_fds = 1;
	d->pins = 1;    /* never evicted: every reopen chain ends here */
	return 0;
}

static void count(walker *w)
{
	walk_stats *st = w->st;
	st->dirs++; /* the root */
	for (size_t i = 0; i < w->ndirs; i++) {
		const walk_node *d = w->dirs[i]->node;
		if (!d) continue;
		for (size_t k = 0; k < d->nkids; k++) {
			const walk_node *n = d->kids[k];
			switch (n->type) {
			case TREE_REG: st->files++; st->bytes += n->size; break;
			case TREE_DIR: st->dirs++; break;
			case TREE_SYMLINK: st->symlinks++; break;
			default: st->specials++; break;
			}
		}
	}
}

int walk_run(walk_node **out, const char *root, const walk_options *opts, walk_stats *stats)
{
	walker w;
	walk_stats dummy;
	walk_node *rootn = NULL;
	int rc = 0;
	memset(&w, 0, sizeof(w));
	w.root = root;
	w.rootfd = -1;
	if (opts && opts->prior) {
		w.prior = opts->prior;
		w.prior_start = opts->prior_start;
	}
	if (opts) {
		w.on_file = opts->on_file;
		w.payload = opts->payload;
		w.subtree = opts->subtree;
		w.no_xattrat = opts->no_xattrat;
	}
	if (!stats) stats = &dummy;
	memset(stats, 0, sizeof(*stats));
	w.st = stats;
	*out = NULL;

	w.ex_root = calloc(1, sizeof(*w.ex_root));
	if (!w.ex_root) {
		rc = ERR_OOM();
		goto done;
	}
	for (size_t i = 0; opts && i < opts->nexcludes; i++) {
		rc = excl_add(w.ex_root, opts->excludes[i]);
		if (rc) goto done;
	}

	struct rlimit rl;
	rlim_t soft = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
	if (soft == RLIM_INFINITY || soft > 4096) soft = 4096;
	w.fd_budget = soft / 4 < 16 ? 16 : (size_t)soft / 4;

	w.dents = malloc(DENTS_BUF);
	w.xlist = malloc(XATTR_LIST_BUF);
	w.xval = malloc(XATTR_VALUE_BUF);
	if (!w.dents || !w.xlist || !w.xval) {
		rc = ERR_OOM();
		goto done;
	}

	if (opts && opts->no_uring)
		snprintf(stats->notice, sizeof(stats->notice), "io_uring disabled by option; using plain syscalls");
	else if (ring_setup(&w, stats->notice, sizeof(stats->notice)) == 0) {
		w.use_ring = 1;
		stats->notice[0] = 0;
	}
	stats->used_uring = w.use_ring;
	if (w.use_ring && opts && opts->uring_always) w.ring_left = SIZE_MAX;
	if (!w.use_ring) w.max_inflight = 1;

	w.reqs = calloc(w.max_inflight, sizeof(*w.reqs));
	w.free_reqs = malloc(w.max_inflight * sizeof(*w.free_reqs));
	if (!w.reqs || !w.free_reqs) {
		rc = ERR_OOM();
		goto done;
	}
	for (size_t i = 0; i < w.max_inflight; i++) w.free_reqs[i] = (uint32_t)(w.max_inflight - 1 - i);
	w.nfree = w.max_inflight;

	rc = open_root(&w, &rootn);
	if (rc) goto done;
	rc = run_loop(&w);
	if (rc) goto done;
	count(&w);
done:
	if (w.cur) free(w.cur->ents); /* entries not issued: in the arena, unlinked */
	for (size_t i = 0; i < w.ndirs; i++) {
		dstate *d = w.dirs[i];
		if (d->fd >= 0) close(d->fd);
		if (d->node) d->node->user = NULL;
		free(d);
	}
	free(w.dirs);
	if (w.rootfd >= 0) close(w.rootfd);
	if (w.use_ring) io_uring_queue_exit(&w.ring);
	free(w.reqs);
	free(w.free_reqs);
	free(w.dents);
	free(w.xlist);
	free(w.xval);
	excl_free(w.ex_root);
	if (rc) {
		if (w.on_file) w.on_file(w.payload, NULL, NULL); /* done with the nodes */
		if (!w.stuck) walk_free(rootn);
		rootn = NULL;
		if (stats == &dummy) memset(stats, 0, sizeof(*stats));
	}
	*out = rootn;
	return rc;
}

/* ---- opening files found by the walk ---- */

static atomic_int no_openat2;

static int open_final(int dirfd, const char *name)
{
	int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
	int fd = openat(dirfd, name, flags | O_NOATIME);
	if (fd < 0 && errno == EPERM) fd = openat(dirfd, name, flags);
	return fd;
}

/* One openat2 refusing symlinks and escapes; -1 with errno, or ENOSYS-like
 * errnos when the caller should descend by hand. */
static int open_resolved(int rootfd, const char *rel)
{
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
	int fd = -1;
	for (int tries = 0; tries < 4; tries++) {
		how.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOATIME;
		fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
		if (fd < 0 && errno == EPERM) {
			how.flags &= ~(uint64_t)O_NOATIME;
			fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
		}
		if (fd >= 0 || errno != EAGAIN) break; /* EAGAIN: a racing rename; retry */
	}
	return fd;
}

int walk_open(int rootfd, const walk_node *n)
{
	char *path = NULL;
	const walk_node **chain = NULL;
	int fd = -1, dfd = rootfd, err = 0, rc;
	size_t depth = 0;
	for (const walk_node *p = n; p->parent; p = p->parent) depth++;
	path = walk_path(n);
	if (!path) {
		rc = ERR_OOM();
		goto done;
	}
	if (!depth) {
		rc = error_set(CAIRN_EUSAGE, "walk_open: the root is not a regular file");
		goto done;
	}
	int fallback = 1;
	if (strlen(path) < PATH_MAX && !atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
		fd = open_resolved(rootfd, path);
		err = errno;
		fallback = 0;
		if (fd < 0 && (err == ENOSYS || err == EAGAIN || err == E2BIG || err == EINVAL)) {
			if (err == ENOSYS) atomic_store_explicit(&no_openat2, 1, memory_order_relaxed);
			fallback = 1;
		}
	}
	if (fallback) {
		/* Descend one component at a time: O_PATH fds, never following a
		 * symlink, so any depth works and nothing escapes the root. */
		chain = malloc(depth * sizeof(*chain));
		if (!chain) {
			rc = ERR_OOM();
			goto done;
		}
		size_t i = depth;
		for (const walk_node *p = n; p->parent; p = p->parent) chain[--i] = p;
		fd = -1;
		err = 0;
		for (i = 0; i + 1 < depth; i++) {
			int nfd = openat(dfd, chain[i]->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			err = errno;
			if (dfd != rootfd) close(dfd);
			dfd = nfd;
			if (nfd < 0) break;
		}
		if (dfd >= 0) {
			fd = open_final(dfd, n->name);
			err = errno;
		}
	}
	if (fd < 0) {
		rc = error_errno(err == ENOENT ? CAIRN_ENOTFOUND : CAIRN_EIO, err, "open %s", path);
		goto done;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "open %s: fstat", path);
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = error_set(CAIRN_EIO, "open %s: no longer a regular file", path);
		goto done;
	}
	/* O_NONBLOCK only guarded against a FIFO swapped in; reads want blocking */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "open %s: fcntl", path);
		goto done;
	}
	rc = fd;
	fd = -1;
done:
	if (fd >= 0) close(fd);
	if (dfd >= 0 && dfd != rootfd) close(dfd);
	free(chain);
	free(path);
	return rc;
}
