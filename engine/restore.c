/* Restore, ls and cat: reading snapshots back out of the repository.
 *
 * Restore runs in passes so that every byte lands inside the target and every
 * time stamp ends exact:
 *   1. the calling thread walks the trees depth-first, creating directories,
 *      symlinks and special files, and queueing regular files;
 *   2. worker threads create and fill the queued files (concurrently with 1);
 *   3. hardlink members after the first are linked to it;
 *   4. directory metadata is applied bottom-up, after everything inside.
 * Every syscall is relative to a directory fd opened with O_NOFOLLOW, so paths
 * longer than PATH_MAX work and symlinks in the target are never followed.
 * Directories are remembered by index (parent, name), and later passes reach
 * them again through a cursor that keeps only the current chain open. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"
#include "damaged.h"
#include "format.h"
#include "io.h"
#include "repo.h"
#include "restored.h"
#include "restore_write.h"
#include "tree.h"
#include "util.h"

#define PROGRESS_NS 100000000LL /* at most one progress event per 100 ms */
#define QUEUE_CAP 8192          /* queued file jobs */
#define MAX_THREADS 256
#define REMOTE_WORKERS_PER_CPU 2 /* RADOS, S3: the 351 MiB fixture into a tmpfs, 0.57-0.99 s -> 0.50-0.61 s */
#define LOCAL_WORKERS_PER_CPU 2 /* a directory: a worker waits for its O_DIRECT writes and pack reads */
#define ZERO_LEN (64u * 1024u)
/* Directory fds a deep chain may hold open: the walk's (above the one it
 * is in; the rest are reopened with ".." on the way back) and each cursor's
 * of passes 3 and 4, so that restore needs the same few fds at any depth. */
#define WALK_FDS 64
#define CURSOR_FDS 32
#define REMOVE_FDS 16

static const uint8_t zeros[ZERO_LEN];

static char *short_id(char out[13], const char *id)
{
	snprintf(out, 13, "%.12s", id);
	return out;
}

/* ---- content ------------------------------------------------------------- */

typedef int (*emit_fn)(void *ctx, uint64_t off, const uint8_t *p, size_t n);

#define CONTENT_BATCH 1024 /* chunks looked up and read together */

/* Where content_walk is: the next chunk's bytes go to extent xi at xoff. */
typedef struct content_pos {
	const tree_entry *e;
	const tree_extent *ext;
	uint32_t next, xi, first; /* extents; chunk index of the batch's slot 0 */
	uint64_t xoff;
	emit_fn emit;
	void *ctx;
	atomic_int *stop;
} content_pos;

static int content_chunk(void *payload, size_t slot, const uint8_t *p, size_t len, const char *what)
{
	content_pos *cp = payload;
	const tree_chunk *c = &cp->e->chunks[cp->first + slot];
	if (cp->stop && atomic_load(cp->stop)) return error_set(CAIRN_EIO, "interrupted");
	if (len != c->size) return error_set(CAIRN_ECORRUPT, "%s: %zu bytes, tree says %u", what, len, c->size);
	while (len > 0) {
		while (cp->xi < cp->next && cp->xoff == cp->ext[cp->xi].length) {
			cp->xi++;
			cp->xoff = 0;
		}
		/* cannot run out: the sums were checked before */
		uint64_t room = cp->ext[cp->xi].length - cp->xoff;
		size_t n = len < room ? len : (size_t)room;
		int rc = cp->emit(cp->ctx, cp->ext[cp->xi].offset + cp->xoff, p, n);
		if (rc < 0) return rc;
		p += n;
		len -= n;
		cp->xoff += n;
	}
	return 0;
}

/* Read e's chunks in order, verified, and hand their bytes to emit at their
 * file offsets (ascending). Extents and chunk sizes are checked against the
 * entry's size before anything is read. Neighbouring chunks in a pack are
 * read together (repo_read_blobs), in scratch when given. stop, when set,
 * aborts early. */
static int content_walk(cairn_repo *r, const tree_entry *e, emit_fn emit, void *ctx,
                        atomic_int *stop, buf *scratch)
{
	tree_extent dense = {0, e->size};
	const tree_extent *ext = e->nextents ? e->extents : &dense;
	uint32_t next = e->nextents ? e->nextents : 1;
	uint64_t end = 0, data = 0, csum = 0;

	if (e->nextents && !e->extents) return error_set(CAIRN_ECORRUPT, "extents missing");
	if (e->nchunks && !e->chunks) return error_set(CAIRN_ECORRUPT, "chunks missing");
	for (uint32_t i = 0; i < next; i++) {
		if (ext[i].length > e->size || ext[i].offset > e->size - ext[i].length ||
		    ext[i].offset < end)
			return error_set(CAIRN_ECORRUPT, "extent %u [%llu,+%llu) out of order or past size %llu",
			                 i, (unsigned long long)ext[i].offset,
			                 (unsigned long long)ext[i].length, (unsigned long long)e->size);
		end = ext[i].offset + ext[i].length;
		data += ext[i].length;
	}
	for (uint32_t c = 0; c < e->nchunks; c++) csum += e->chunks[c].size;
	if (csum != data)
		return error_set(CAIRN_ECORRUPT, "chunks hold %llu bytes, extents %llu",
		                 (unsigned long long)csum, (unsigned long long)data);

	content_pos cp = {e, ext, next, 0, 0, 0, emit, ctx, stop};
	oid ids[CONTENT_BATCH];
	for (uint32_t c = 0; c < e->nchunks;) {
		uint32_t n = e->nchunks - c < CONTENT_BATCH ? e->nchunks - c : CONTENT_BATCH;
		if (stop && atomic_load(stop)) return error_set(CAIRN_EIO, "interrupted");
		for (uint32_t k = 0; k < n; k++) ids[k] = e->chunks[c + k].id;
		cp.first = c;
		int rc = repo_read_blobs(r, ids, n, BLOB_DATA, REPO_READ_IN_ORDER | REPO_READ_UNCACHED, scratch,
		                         content_chunk, &cp);
		if (rc < 0) return rc;
		c += n;
	}
	return 0;
}

/* The snapshot's top tree (format.h): exactly one entry, "root", a DIR whose
 * metadata is the captured directory's and whose subtree is the content. */
static int load_top(cairn_repo *r, const snapshot_manifest *m, const char *snap_id, tree *top)
{
	char sid[13];
	int rc = repo_load_tree(r, &m->tree, top);
	if (rc < 0) {
		error_prefix("snapshot %s: top tree", short_id(sid, snap_id));
		return rc;
	}
	if (top->n != 1 || top->entries[0].type != TREE_DIR || top->entries[0].name_len != 4 ||
	    memcmp(top->entries[0].name, "root", 4) != 0) {
		tree_free(top);
		return error_set(CAIRN_ECORRUPT,
		                 "snapshot %s: top tree must hold exactly one directory \"root\"",
		                 short_id(sid, snap_id));
	}
	return 0;
}

/* ---- restore state ------------------------------------------------------- */

/* A directory restored, remembered for the later passes. Index 0 is the target. */
typedef struct rdir {
	uint32_t parent, depth; /* depth: 0 for the target */
	uint16_t name_len;
	char *name;
	uint32_t mode, uid, gid, nxattrs;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	tree_xattr *xattrs; /* one block with the names and values */
} rdir;

/* A directory being restored: its decoded tree and an O_PATH fd, shared by
 * the walk and every queued file job of the directory. Far above the
 * directory being walked, the fd is closed (-1) and the directory known by
 * dev and ino until the walk comes back to it (park_dir, unpark_dir). */
typedef struct dctx {
	atomic_int refs;
	int fd;
	uint32_t dir;
	dev_t dev;
	ino_t ino;
	tree t;
} dctx;

typedef struct fjob {
	dctx *d;
	uint32_t i;
	uint32_t item; /* in rstate.items */
} fjob;

typedef struct hl_first {
	uint32_t group, dir;
	char *name;
} hl_first;

typedef struct hl_link {
	uint32_t group, dir;
	char *name;
	uint8_t type;
} hl_link;

typedef struct rstate {
	cairn_repo *repo;
	const cairn_restore_options *opts;
	int lenient; /* not root: ownership and privileged xattrs are best effort */
	int rootfd;

	pthread_mutex_t mu;
	pthread_cond_t cv_work, cv_space;
	fjob *q;
	size_t qhead, qlen, inflight, live_dirs, max_dirs;
	int closed;
	atomic_int stop;
	int err;
	char errmsg[1024];

	pthread_mutex_t dirs_mu; /* dirs may move while workers name a path */
	rdir *dirs;
	size_t ndirs, dirs_cap;

	hl_first *hl;
	size_t hl_cap, hl_n;
	hl_link *links;
	size_t nlinks, links_cap;

	/* the restore record (restored.h), in tree order: the walk adds items
	 * (push_item), workers fill in the inode numbers and ctimes of the
	 * files they write, under mu */
	inode_list items;

	restore_write_mode wmode; /* how file data is written (restore_write.h) */
	atomic_uint_fast64_t files, bytes;
	uint64_t dirs_done, symlinks, specials, hardlinks;
	uint64_t total_files, total_bytes;
	int64_t last_progress;
} rstate;

static void progress(rstate *st)
{
	if (!st->opts->event_cb) return;
	int64_t now = mono_ns();
	if (now - st->last_progress < PROGRESS_NS) return;
	st->last_progress = now;
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CAIRN_EVENT_PROGRESS;
	ev.files = atomic_load(&st->files);
	ev.bytes = atomic_load(&st->bytes);
	ev.total_files = st->total_files;
	ev.total_bytes = st->total_bytes;
	st->opts->event_cb(&ev, st->opts->event_payload);
}

/* Wait on cv for at most 100 ms (so the caller can report progress). mu held. */
static void wait_a_bit(rstate *st, pthread_cond_t *cv)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += PROGRESS_NS;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, &st->mu, &ts);
}

/* Keep the first failure (its message is thread-local) and stop everyone. */
static void record_error(rstate *st, int rc)
{
	pthread_mutex_lock(&st->mu);
	if (!st->err) {
		st->err = rc;
		snprintf(st->errmsg, sizeof(st->errmsg), "%s", cairn_error_last());
	}
	atomic_store(&st->stop, 1);
	pthread_cond_broadcast(&st->cv_work);
	pthread_cond_broadcast(&st->cv_space);
	pthread_mutex_unlock(&st->mu);
}

/* "/a/b" for directory idx ("" for the target), plus "/name" when name is
 * given; malloc'd (NULL when out of memory). For messages only: syscalls
 * never see whole paths. Callers other than the walking thread hold dirs_mu. */
static char *entry_path(const rstate *st, uint32_t idx, const char *name)
{
	size_t len = name ? strlen(name) + 1 : 0;
	for (uint32_t x = idx; x != 0; x = st->dirs[x].parent) len += st->dirs[x].name_len + 1u;
	char *p = malloc(len + 1);
	if (!p) return NULL;
	size_t at = len;
	p[at] = 0;
	if (name) {
		size_t n = strlen(name);
		at -= n;
		memcpy(p + at, name, n);
		p[--at] = '/';
	}
	for (uint32_t x = idx; x != 0; x = st->dirs[x].parent) {
		at -= st->dirs[x].name_len;
		memcpy(p + at, st->dirs[x].name, st->dirs[x].name_len);
		p[--at] = '/';
	}
	return p;
}

/* Prefix the current message with the path of dir/name. */
static int fail_at(rstate *st, int locked, uint32_t dir, const char *name, int rc)
{
	if (locked) pthread_mutex_lock(&st->dirs_mu);
	char *p = entry_path(st, dir, name);
	if (locked) pthread_mutex_unlock(&st->dirs_mu);
	const char *show = p ? p : name ? name : "/";
	size_t len = strlen(show);
	if (len == 0)
		error_prefix("/");
	else if (len > 400) /* keep room for the message itself */
		error_prefix("%.150s...%s", show, show + len - 200);
	else
		error_prefix("%s", show);
	free(p);
	return rc;
}

static int sys_fail(rstate *st, int locked, uint32_t dir, const char *name, const char *op)
{
	int err = errno;
	error_errno(err == ENOMEM ? CAIRN_ENOMEM : CAIRN_EIO, err, "%s", op);
	return fail_at(st, locked, dir, name, err == ENOMEM ? CAIRN_ENOMEM : CAIRN_EIO);
}

/* Failures a non-root restore may ignore. */
static int tolerable(const rstate *st, int err)
{
	return st->lenient && (err == EPERM || err == EACCES);
}

/* Copy e's xattrs into one block that outlives e's tree. */
static int copy_xattrs(const tree_entry *e, tree_xattr **out)
{
	*out = NULL;
	if (e->nxattrs == 0) return 0;
	size_t size = (size_t)e->nxattrs * sizeof(tree_xattr);
	for (uint32_t i = 0; i < e->nxattrs; i++)
		size += (size_t)e->xattrs[i].name_len + 1 + e->xattrs[i].value_len;
	tree_xattr *x = malloc(size);
	if (!x) return ERR_OOM();
	char *p = (char *)(x + e->nxattrs);
	for (uint32_t i = 0; i < e->nxattrs; i++) {
		const tree_xattr *s = &e->xattrs[i];
		x[i] = *s;
		memcpy(p, s->name, s->name_len);
		p[s->name_len] = 0;
		x[i].name = p;
		p += s->name_len + 1;
		if (s->value_len) memcpy(p, s->value, s->value_len);
		x[i].value = (const uint8_t *)p;
		p += s->value_len;
	}
	*out = x;
	return 0;
}

static int dir_add(rstate *st, uint32_t parent, const tree_entry *e, uint32_t *idx)
{
	if (st->ndirs >= UINT32_MAX) return error_set(CAIRN_EIO, "too many directories");
	rdir d;
	memset(&d, 0, sizeof(d));
	d.parent = parent;
	d.depth = st->dirs[parent].depth + 1; /* only this thread adds to dirs */
	d.name_len = e->name_len;
	d.mode = e->mode;
	d.uid = e->uid;
	d.gid = e->gid;
	d.mtime_sec = e->mtime_sec;
	d.mtime_nsec = e->mtime_nsec;
	d.nxattrs = e->nxattrs;
	if (!(d.name = strndup(e->name, e->name_len))) return ERR_OOM();
	if (copy_xattrs(e, &d.xattrs) < 0) {
		free(d.name);
		return ERR_OOM();
	}
	pthread_mutex_lock(&st->dirs_mu);
	if (st->ndirs == st->dirs_cap) {
		size_t cap = st->dirs_cap ? st->dirs_cap * 2 : 256;
		rdir *n = realloc(st->dirs, cap * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&st->dirs_mu);
			free(d.name);
			free(d.xattrs);
			return ERR_OOM();
		}
		st->dirs = n;
		st->dirs_cap = cap;
	}
	*idx = (uint32_t)st->ndirs;
	st->dirs[st->ndirs++] = d;
	pthread_mutex_unlock(&st->dirs_mu);
	return 0;
}

/* ---- hardlink groups ------------------------------------------------------ */

static hl_first *hl_find(rstate *st, uint32_t group)
{
	if (!st->hl_cap) return NULL;
	size_t mask = st->hl_cap - 1;
	for (size_t i = (group * 2654435761u) & mask;; i = (i + 1) & mask) {
		if (st->hl[i].group == group) return &st->hl[i];
		if (st->hl[i].group == 0) return NULL;
	}
}

static int hl_insert(rstate *st, uint32_t group, uint32_t dir, const char *name)
{
	if ((st->hl_n + 1) * 2 > st->hl_cap) {
		size_t cap = st->hl_cap ? st->hl_cap * 2 : 64;
		hl_first *n = calloc(cap, sizeof(*n));
		if (!n) return ERR_OOM();
		hl_first *old = st->hl;
		size_t old_cap = st->hl_cap;
		st->hl = n;
		st->hl_cap = cap;
		for (size_t i = 0; i < old_cap; i++) {
			if (!old[i].group) continue;
			size_t j = (old[i].group * 2654435761u) & (cap - 1);
			while (n[j].group) j = (j + 1) & (cap - 1);
			n[j] = old[i];
		}
		free(old);
	}
	char *copy = strdup(name);
	if (!copy) return ERR_OOM();
	size_t j = (group * 2654435761u) & (st->hl_cap - 1);
	while (st->hl[j].group) j = (j + 1) & (st->hl_cap - 1);
	st->hl[j] = (hl_first){group, dir, copy};
	st->hl_n++;
	return 0;
}

static int link_add(rstate *st, uint32_t group, uint32_t dir, const char *name, uint8_t type)
{
	if (st->nlinks == st->links_cap) {
		size_t cap = st->links_cap ? st->links_cap * 2 : 64;
		hl_link *n = realloc(st->links, cap * sizeof(*n));
		if (!n) return ERR_OOM();
		st->links = n;
		st->links_cap = cap;
	}
	char *copy = strdup(name);
	if (!copy) return ERR_OOM();
	st->links[st->nlinks++] = (hl_link){group, dir, copy, type};
	return 0;
}

/* ---- directory cursor ----------------------------------------------------- */

/* The directory above childfd, which must be dir, known by dev and ino:
 * climbing follows no name, and a directory moved or replaced meanwhile is
 * refused rather than written into. */
static int open_parent(rstate *st, int childfd, uint32_t dir, dev_t dev, ino_t ino, int *out)
{
	struct stat sb;
	int fd = openat(childfd, "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) return sys_fail(st, 0, dir, NULL, "open");
	if (fstat(fd, &sb) < 0) {
		int rc = sys_fail(st, 0, dir, NULL, "stat");
		close(fd);
		return rc;
	}
	if (sb.st_dev != dev || sb.st_ino != ino) {
		close(fd);
		return fail_at(st, 0, dir, NULL, error_set(CAIRN_EIO, "moved or replaced during the restore"));
	}
	*out = fd;
	return 0;
}

/* One level of a cursor's chain: its directory, and its fd while open or
 * its identity once closed. */
typedef struct clevel {
	int fd;
	uint32_t id;
	dev_t dev;
	ino_t ino;
} clevel;

/* The chain of directories from the target down to one directory, with
 * O_PATH fds open for at most CURSOR_FDS of its deepest levels (lo..n-1),
 * however deep it is. Moving it to another directory reopens only below
 * the common ancestor, climbing to that with ".." when it was closed. */
typedef struct dcursor {
	clevel *l;
	uint32_t *chain;
	size_t n, lo, cap;
} dcursor;

static void cursor_free(dcursor *c)
{
	while (c->n > c->lo) close(c->l[--c->n].fd);
	free(c->l);
	free(c->chain);
	memset(c, 0, sizeof(*c));
}

static int cursor_open(rstate *st, dcursor *c, uint32_t dir, int *fd)
{
	size_t len = st->dirs[dir].depth;
	int rc;
	if (len > c->cap) {
		size_t cap = len * 2;
		clevel *l = realloc(c->l, cap * sizeof(*l));
		if (l) c->l = l;
		uint32_t *chain = realloc(c->chain, cap * sizeof(*chain));
		if (chain) c->chain = chain;
		if (!l || !chain) return ERR_OOM();
		c->cap = cap;
	}
	/* up from dir to the deepest directory the chain has: levels keep..len-1 are new */
	size_t keep = len;
	for (uint32_t x = dir; x != 0 && !(keep <= c->n && c->l[keep - 1].id == x); x = st->dirs[x].parent)
		c->chain[--keep] = x;
	if (keep > 0 && keep - 1 < c->lo) {
		/* the common ancestor was closed: climb to it from the shallowest
		 * open level, the only one kept of those below it */
		while (c->n > c->lo + 1) close(c->l[--c->n].fd);
		while (c->lo > keep - 1) {
			clevel *up = &c->l[c->lo - 1];
			if ((rc = open_parent(st, c->l[c->lo].fd, up->id, up->dev, up->ino, &up->fd)) < 0) return rc;
			close(c->l[c->lo].fd);
			c->n = c->lo--;
		}
	}
	while (c->n > keep) close(c->l[--c->n].fd);
	if (c->lo > c->n) c->lo = c->n;
	for (size_t k = keep; k < len; k++) {
		uint32_t id = c->chain[k];
		int pfd = k ? c->l[k - 1].fd : st->rootfd;
		int f = openat(pfd, st->dirs[id].name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (f < 0) return sys_fail(st, 0, id, NULL, "open");
		c->l[k] = (clevel){f, id, 0, 0};
		c->n = k + 1;
		if (c->n - c->lo > CURSOR_FDS) {
			/* close the shallowest open level, known from now on by its identity */
			struct stat sb;
			clevel *o = &c->l[c->lo];
			if (fstat(o->fd, &sb) < 0) return sys_fail(st, 0, o->id, NULL, "stat");
			o->dev = sb.st_dev;
			o->ino = sb.st_ino;
			close(o->fd);
			c->lo++;
		}
	}
	*fd = c->n ? c->l[c->n - 1].fd : st->rootfd;
	return 0;
}

/* ---- pass 2: regular files (worker threads) ------------------------------ */

typedef struct file_out {
	rstate *st;
	restore_writer *w;
} file_out;

static int file_emit(void *ctx, uint64_t off, const uint8_t *p, size_t n)
{
	file_out *o = ctx;
	int rc = restore_writer_put(o->w, off, p, n);
	if (rc < 0) return rc;
	atomic_fetch_add(&o->st->bytes, n);
	return 0;
}

/* Owner, then xattrs (chown clears security.capability), then mode (chown
 * clears setuid/setgid), then times: through an fd of a file or directory. */
static int meta_fd(rstate *st, int fd, uint32_t mode, uint32_t uid, uint32_t gid, int64_t sec,
                   uint32_t nsec, uint32_t nxattrs, const tree_xattr *xattrs)
{
	if (fchown(fd, uid, gid) < 0 && !tolerable(st, errno))
		return error_errno(CAIRN_EIO, errno, "chown %u:%u", uid, gid);
	for (uint32_t i = 0; i < nxattrs; i++)
		if (fsetxattr(fd, xattrs[i].name, xattrs[i].value, xattrs[i].value_len, 0) < 0 &&
		    !tolerable(st, errno))
			return error_errno(CAIRN_EIO, errno, "set xattr %s", xattrs[i].name);
	if (fchmod(fd, mode & 07777) < 0) return error_errno(CAIRN_EIO, errno, "chmod %o", mode & 07777);
	struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
	if (futimens(fd, ts) < 0) return error_errno(CAIRN_EIO, errno, "set times");
	return 0;
}

/* sb gets the file as left: its inode and its ctime after the last change. */
static int restore_file(rstate *st, restore_writer *w, buf *scratch, dctx *d, const tree_entry *e,
                        struct stat *sb)
{
	int rc;
	file_out o = {st, w};
	int fd = restore_writer_open(w, d->fd, e->name, e->size);
	if (fd < 0) return fail_at(st, 1, d->dir, e->name, fd);
	if ((rc = content_walk(st->repo, e, file_emit, &o, &st->stop, scratch)) < 0) goto fail;
	if ((rc = restore_writer_end(w)) < 0) goto fail;
	rc = meta_fd(st, fd, e->mode, e->uid, e->gid, e->mtime_sec, e->mtime_nsec, e->nxattrs,
	             e->xattrs);
	if (rc < 0) goto fail;
	if (fstat(fd, sb) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "stat");
		goto fail;
	}
	int closing = fd;
	fd = -1;
	if (close(closing) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "close");
		goto fail;
	}
	/* bytes counts data written, not holes, as take counts data read */
	atomic_fetch_add(&st->files, 1);
	return 0;
fail:
	/* never leave a file with wrong bytes behind */
	if (fd >= 0) close(fd);
	unlinkat(d->fd, e->name, 0);
	return fail_at(st, 1, d->dir, e->name, rc);
}

static void dctx_release(rstate *st, dctx *d)
{
	if (!d || atomic_fetch_sub(&d->refs, 1) != 1) return;
	int had_fd = d->fd >= 0; /* live_dirs counts open ones */
	if (had_fd) close(d->fd);
	tree_free(&d->t);
	free(d);
	if (!had_fd) return;
	pthread_mutex_lock(&st->mu);
	st->live_dirs--;
	pthread_cond_broadcast(&st->cv_space);
	pthread_mutex_unlock(&st->mu);
}

static void *worker(void *arg)
{
	rstate *st = arg;
	restore_writer w;
	restore_writer_init(&w, &st->wmode);
	buf scratch; /* runs of chunks read from packs */
	buf_init(&scratch);
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (st->qlen == 0 && !st->closed) pthread_cond_wait(&st->cv_work, &st->mu);
		if (st->qlen == 0) break;
		fjob j = st->q[st->qhead];
		st->qhead = (st->qhead + 1) % QUEUE_CAP;
		st->qlen--;
		st->inflight++;
		pthread_cond_broadcast(&st->cv_space);
		pthread_mutex_unlock(&st->mu);

		struct stat sb = {0};
		if (!atomic_load(&st->stop)) {
			int rc = restore_file(st, &w, &scratch, j.d, &j.d->t.entries[j.i], &sb);
			if (rc < 0) record_error(st, rc);
		}
		dctx_release(st, j.d);

		pthread_mutex_lock(&st->mu);
		if (sb.st_ino && j.item != UINT32_MAX) {
			inode_item *it = &st->items.v[j.item];
			it->value = sb.st_ino;
			it->ctime_sec = sb.st_ctim.tv_sec;
			it->ctime_nsec = (uint32_t)sb.st_ctim.tv_nsec;
		}
		st->inflight--;
		pthread_cond_broadcast(&st->cv_space);
	}
	pthread_mutex_unlock(&st->mu);
	restore_writer_free(&w);
	buf_free(&scratch);
	return NULL;
}

static void enqueue(rstate *st, dctx *d, uint32_t i, uint32_t item)
{
	atomic_fetch_add(&d->refs, 1);
	pthread_mutex_lock(&st->mu);
	while (st->qlen == QUEUE_CAP && !atomic_load(&st->stop)) {
		wait_a_bit(st, &st->cv_space);
		pthread_mutex_unlock(&st->mu);
		progress(st);
		pthread_mutex_lock(&st->mu);
	}
	if (atomic_load(&st->stop)) {
		pthread_mutex_unlock(&st->mu);
		dctx_release(st, d);
		return;
	}
	st->q[(st->qhead + st->qlen) % QUEUE_CAP] = (fjob){d, i, item};
	st->qlen++;
	pthread_cond_signal(&st->cv_work);
	pthread_mutex_unlock(&st->mu);
}

/* Count a new open directory, first waiting (bounded fds) while workers still
 * hold many, as long as they have work that will release some. */
static void reserve_dir(rstate *st)
{
	pthread_mutex_lock(&st->mu);
	while (st->live_dirs >= st->max_dirs && st->qlen + st->inflight > 0 &&
	       !atomic_load(&st->stop)) {
		wait_a_bit(st, &st->cv_space);
		pthread_mutex_unlock(&st->mu);
		progress(st);
		pthread_mutex_lock(&st->mu);
	}
	st->live_dirs++;
	pthread_mutex_unlock(&st->mu);
}

static void unreserve_dir(rstate *st)
{
	pthread_mutex_lock(&st->mu);
	st->live_dirs--;
	pthread_cond_broadcast(&st->cv_space);
	pthread_mutex_unlock(&st->mu);
}

/* ---- pass 1: the walk ---------------------------------------------------- */

/* A directory being removed: its stream while open, its identity. */
typedef struct rmlevel {
	DIR *dp;
	char *name;
	dev_t dev;
	ino_t ino;
} rmlevel;

/* Open directory name in parentfd to remove what it holds, never following a
 * symlink nor entering another filesystem. */
static int rm_open(int parentfd, const char *name, dev_t dev, rmlevel *l)
{
	struct stat sb;
	int rc, fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	memset(l, 0, sizeof(*l));
	if (fd < 0) return error_errno(CAIRN_EIO, errno, "open %s", name);
	if (fstat(fd, &sb) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "stat %s", name);
		close(fd);
		return rc;
	}
	if (sb.st_dev != dev) {
		close(fd);
		return error_set(CAIRN_EIO, "%s: a mount point is in the way", name);
	}
	if (!(l->name = strdup(name))) {
		close(fd);
		return ERR_OOM();
	}
	if (!(l->dp = fdopendir(fd))) {
		rc = error_errno(CAIRN_EIO, errno, "open %s", name);
		close(fd);
		free(l->name);
		return rc;
	}
	l->dev = sb.st_dev;
	l->ino = sb.st_ino;
	return 0;
}

/* The level above l, closed since (lv[lo..] are open): reopened through
 * "..", which must still be the directory it was. Read again from its
 * start, it holds only what is left to remove. */
static int rm_reopen_parent(rmlevel *l, rmlevel *up)
{
	struct stat sb;
	int fd = openat(dirfd(l->dp), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) return error_errno(CAIRN_EIO, errno, "open %s/..", l->name);
	if (fstat(fd, &sb) < 0 || sb.st_dev != up->dev || sb.st_ino != up->ino) {
		close(fd);
		return error_set(CAIRN_EIO, "%s: moved or replaced while it was being removed", up->name);
	}
	if (!(up->dp = fdopendir(fd))) {
		int rc = error_errno(CAIRN_EIO, errno, "open %s", up->name);
		close(fd);
		return rc;
	}
	return 0;
}

/* Remove everything in directory name in parentfd (not name itself), never
 * following symlinks nor crossing into another filesystem. Depth first, the
 * levels on a heap stack with at most REMOVE_FDS of them open: any depth
 * costs memory, not C stack or fds. */
static int remove_tree(int parentfd, const char *name, dev_t dev)
{
	size_t n = 0, lo = 0, cap = 16;
	rmlevel *lv = malloc(cap * sizeof(*lv));
	if (!lv) return ERR_OOM();
	int rc = rm_open(parentfd, name, dev, &lv[0]);
	if (rc == 0) n = 1;
	while (rc == 0 && n > 0) {
		rmlevel *l = &lv[n - 1];
		int fd = dirfd(l->dp);
		errno = 0;
		struct dirent *de = readdir(l->dp);
		if (!de && errno) {
			rc = error_errno(CAIRN_EIO, errno, "read %s", l->name);
			break;
		}
		if (!de) { /* empty: its parent removes it */
			if (n == 1) break;
			rmlevel *up = &lv[n - 2];
			if (!up->dp) {
				if ((rc = rm_reopen_parent(l, up)) < 0) break;
				lo = n - 2;
			}
			closedir(l->dp);
			l->dp = NULL;
			if (unlinkat(dirfd(up->dp), l->name, AT_REMOVEDIR) < 0)
				rc = error_errno(CAIRN_EIO, errno, "remove %s", l->name);
			free(l->name);
			n--;
			continue;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
		int isdir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) {
			struct stat cs;
			if (fstatat(fd, de->d_name, &cs, AT_SYMLINK_NOFOLLOW) < 0) {
				rc = error_errno(CAIRN_EIO, errno, "stat %s", de->d_name);
				break;
			}
			isdir = S_ISDIR(cs.st_mode);
		}
		if (!isdir) {
			if (unlinkat(fd, de->d_name, 0) < 0) rc = error_errno(CAIRN_EIO, errno, "remove %s", de->d_name);
			continue;
		}
		if (n == cap) {
			rmlevel *nl = realloc(lv, (cap *= 2) * sizeof(*lv));
			if (!nl) {
				rc = ERR_OOM();
				break;
			}
			lv = nl;
		}
		if ((rc = rm_open(fd, de->d_name, dev, &lv[n])) < 0) break;
		n++;
		if (n - lo > REMOVE_FDS) {
			closedir(lv[lo].dp);
			lv[lo++].dp = NULL;
		}
	}
	while (n > 0) {
		if (lv[--n].dp) closedir(lv[n].dp);
		free(lv[n].name);
	}
	free(lv);
	return rc;
}

/* With --force, in a directory that existed before: clear what is in the way
 * of name. *reuse = 1 when an existing directory can take a directory's place. */
static int clear_way(rstate *st, dctx *d, const tree_entry *e, int *reuse)
{
	struct stat sb;
	*reuse = 0;
	if (fstatat(d->fd, e->name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT) return 0;
		return sys_fail(st, 0, d->dir, e->name, "stat");
	}
	if (S_ISDIR(sb.st_mode)) {
		if (e->type == TREE_DIR) {
			*reuse = 1;
			return 0;
		}
		int rc = remove_tree(d->fd, e->name, sb.st_dev);
		if (rc < 0) return fail_at(st, 0, d->dir, e->name, rc);
		if (unlinkat(d->fd, e->name, AT_REMOVEDIR) < 0)
			return sys_fail(st, 0, d->dir, e->name, "remove");
		return 0;
	}
	if (unlinkat(d->fd, e->name, 0) < 0) return sys_fail(st, 0, d->dir, e->name, "remove");
	return 0;
}

/* Metadata of a symlink or special file just created in d: through the
 * directory fd, never following the name. */
static int meta_at(rstate *st, dctx *d, const tree_entry *e)
{
	char proc[64 + MAX_NAME_LEN];
	if (fchownat(d->fd, e->name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0 && !tolerable(st, errno))
		return error_errno(CAIRN_EIO, errno, "chown %u:%u", e->uid, e->gid);
	/* no fd-based lsetxattr: reach the name through the directory's fd */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", d->fd, e->name);
	for (uint32_t i = 0; i < e->nxattrs; i++)
		if (lsetxattr(proc, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].value_len, 0) < 0 &&
		    !tolerable(st, errno))
			return error_errno(CAIRN_EIO, errno, "set xattr %s", e->xattrs[i].name);
	if (e->type != TREE_SYMLINK &&
	    fchmodat(d->fd, e->name, e->mode & 07777, AT_SYMLINK_NOFOLLOW) < 0)
		return error_errno(CAIRN_EIO, errno, "chmod %o", e->mode & 07777);
	struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec}, {e->mtime_sec, e->mtime_nsec}};
	if (utimensat(d->fd, e->name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return error_errno(CAIRN_EIO, errno, "set times");
	return 0;
}

typedef struct frame {
	dctx *d;
	size_t next;
	int fresh;     /* created by us: nothing can be in the way */
	int64_t item;  /* its item in rstate.items (-1: the target) */
} frame;

typedef struct walk {
	frame *f;
	size_t n, cap;
} walk;

/* Close the fd of directory d, far above the one being walked, once no
 * queued file of d needs it; d is known by its identity until unpark_dir. */
static int park_dir(rstate *st, dctx *d)
{
	struct stat sb;
	pthread_mutex_lock(&st->mu);
	while (atomic_load(&d->refs) > 1 && !atomic_load(&st->stop)) {
		wait_a_bit(st, &st->cv_space);
		pthread_mutex_unlock(&st->mu);
		progress(st);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	if (atomic_load(&st->stop)) return 0; /* the walk ends at once */
	if (fstat(d->fd, &sb) < 0) return sys_fail(st, 0, d->dir, NULL, "stat");
	d->dev = sb.st_dev;
	d->ino = sb.st_ino;
	close(d->fd);
	d->fd = -1;
	unreserve_dir(st);
	return 0;
}

/* The walk is back in parked directory d from its subdirectory at childfd. */
static int unpark_dir(rstate *st, dctx *d, int childfd)
{
	reserve_dir(st);
	int rc = open_parent(st, childfd, d->dir, d->dev, d->ino, &d->fd);
	if (rc < 0) unreserve_dir(st);
	return rc;
}

static int push_dir(rstate *st, walk *w, int fd, uint32_t dir, const oid *subtree, int fresh,
                    int64_t item)
{
	int rc;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		frame *n = realloc(w->f, cap * sizeof(*n));
		if (!n) {
			close(fd);
			return ERR_OOM();
		}
		w->f = n;
		w->cap = cap;
	}
	dctx *d = calloc(1, sizeof(*d));
	if (!d) {
		close(fd);
		return ERR_OOM();
	}
	atomic_init(&d->refs, 1);
	d->fd = fd;
	d->dir = dir;
	reserve_dir(st);
	if ((rc = repo_load_tree(st->repo, subtree, &d->t)) < 0) {
		close(fd);
		free(d);
		unreserve_dir(st);
		return fail_at(st, 0, dir, NULL, rc);
	}
	w->f[w->n++] = (frame){d, 0, fresh, item};
	/* WALK_FDS open above the new top at most, whatever the depth */
	if (w->n > WALK_FDS && w->f[w->n - 1 - WALK_FDS].d->fd >= 0)
		return park_dir(st, w->f[w->n - 1 - WALK_FDS].d);
	return 0;
}

/* The next item of the restore record: a file's inode comes later, from
 * the worker that writes it; a directory's count when it is done. Only
 * this thread adds items; workers write theirs under mu, so the list moves
 * (grows) under mu too: rarely, as it is sized from the manifest. */
static int64_t push_item(rstate *st, uint8_t kind)
{
	int locked = st->items.n == st->items.cap;
	if (locked) pthread_mutex_lock(&st->mu);
	int64_t at = inodes_push(&st->items, kind, 0, 0, 0);
	if (locked) pthread_mutex_unlock(&st->mu);
	return at;
}

static int restore_entry(rstate *st, walk *w, frame *f, uint32_t i)
{
	dctx *d = f->d;
	const tree_entry *e = &d->t.entries[i];
	int rc, reuse = 0;
	int64_t item = -1;
	if (e->type == TREE_REG || e->type == TREE_DIR) {
		item = push_item(st, e->type == TREE_REG ? INODE_REG : INODE_DIR);
		if (item < 0) return (int)item;
	}

	if (!tree_name_ok(e->name, e->name_len) || strlen(e->name) != e->name_len) {
		rc = error_set(CAIRN_ECORRUPT, "entry %u: invalid name", i);
		return fail_at(st, 0, d->dir, NULL, rc);
	}
	if (!f->fresh && (rc = clear_way(st, d, e, &reuse)) < 0) return rc;

	if (e->hardlink && e->type != TREE_DIR) {
		if (hl_find(st, e->hardlink)) return link_add(st, e->hardlink, d->dir, e->name, e->type);
		if ((rc = hl_insert(st, e->hardlink, d->dir, e->name)) < 0) return rc;
	}

	switch (e->type) {
	case TREE_REG: /* hardlinked: links change the ctime later, so it stays out of the record */
		enqueue(st, d, i, e->hardlink ? UINT32_MAX : (uint32_t)item);
		return 0;
	case TREE_DIR: {
		uint32_t idx = 0;
		if (!reuse && mkdirat(d->fd, e->name, 0700) < 0)
			return sys_fail(st, 0, d->dir, e->name, "mkdir");
		if ((rc = dir_add(st, d->dir, e, &idx)) < 0) return rc;
		int fd = openat(d->fd, e->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) return sys_fail(st, 0, d->dir, e->name, "open");
		st->dirs_done++;
		return push_dir(st, w, fd, idx, &e->subtree, !reuse, item);
	}
	case TREE_SYMLINK:
		if (!e->target || e->target_len == 0 || strlen(e->target) != e->target_len) {
			rc = error_set(CAIRN_ECORRUPT, "bad symlink target");
			return fail_at(st, 0, d->dir, e->name, rc);
		}
		if (symlinkat(e->target, d->fd, e->name) < 0)
			return sys_fail(st, 0, d->dir, e->name, "symlink");
		st->symlinks++;
		break;
	case TREE_FIFO:
		if (mkfifoat(d->fd, e->name, 0600) < 0) return sys_fail(st, 0, d->dir, e->name, "mkfifo");
		st->specials++;
		break;
	case TREE_CHR:
	case TREE_BLK: {
		mode_t m = (e->type == TREE_CHR ? S_IFCHR : S_IFBLK) | 0600;
		if (mknodat(d->fd, e->name, m, makedev(e->rdev_major, e->rdev_minor)) < 0)
			return sys_fail(st, 0, d->dir, e->name, "mknod");
		st->specials++;
		break;
	}
	default:
		rc = error_set(CAIRN_ECORRUPT, "unknown entry type %u", e->type);
		return fail_at(st, 0, d->dir, e->name, rc);
	}
	if ((rc = meta_at(st, d, e)) < 0) return fail_at(st, 0, d->dir, e->name, rc);
	return 0;
}

static int walk_trees(rstate *st, const oid *root_tree, int fresh)
{
	walk w = {NULL, 0, 0};
	int rc, fd = fcntl(st->rootfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) return error_errno(CAIRN_EIO, errno, "target: dup");
	rc = push_dir(st, &w, fd, 0, root_tree, fresh, -1);
	while (rc == 0 && w.n > 0) {
		if (atomic_load(&st->stop)) break;
		frame *f = &w.f[w.n - 1];
		if (f->next == f->d->t.n) {
			if (f->item >= 0) st->items.v[f->item].value = st->items.n - (size_t)f->item - 1;
			if (w.n > 1 && w.f[w.n - 2].d->fd < 0) rc = unpark_dir(st, w.f[w.n - 2].d, f->d->fd);
			dctx_release(st, f->d);
			w.n--;
			continue;
		}
		rc = restore_entry(st, &w, f, (uint32_t)f->next++);
		progress(st);
	}
	while (w.n > 0) dctx_release(st, w.f[--w.n].d);
	free(w.f);
	return rc;
}

/* ---- passes 3 and 4 ------------------------------------------------------- */

static int link_members(rstate *st)
{
	dcursor from = {0}, to = {0};
	int rc = 0, ofd, nfd;
	for (size_t i = 0; i < st->nlinks && rc == 0; i++) {
		const hl_link *l = &st->links[i];
		const hl_first *first = hl_find(st, l->group);
		if ((rc = cursor_open(st, &from, first->dir, &ofd)) < 0) break;
		if ((rc = cursor_open(st, &to, l->dir, &nfd)) < 0) break;
		if (linkat(ofd, first->name, nfd, l->name, 0) < 0) {
			rc = sys_fail(st, 0, l->dir, l->name, "link");
			break;
		}
		st->hardlinks++;
		if (l->type == TREE_REG)
			atomic_fetch_add(&st->files, 1);
		else if (l->type == TREE_SYMLINK)
			st->symlinks++;
		else
			st->specials++;
		progress(st);
	}
	cursor_free(&from);
	cursor_free(&to);
	return rc;
}

/* Deepest first: a directory's index is always above its parent's (preorder),
 * so descending order finishes every directory after all it contains. */
static int dir_metadata(rstate *st)
{
	dcursor c = {0};
	int rc = 0, pfd;
	for (size_t k = st->ndirs; k-- > 0 && rc == 0;) {
		const rdir *d = &st->dirs[k];
		int fd;
		if (k == 0) {
			fd = fcntl(st->rootfd, F_DUPFD_CLOEXEC, 3);
		} else {
			if ((rc = cursor_open(st, &c, d->parent, &pfd)) < 0) break;
			fd = openat(pfd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0) {
			rc = sys_fail(st, 0, (uint32_t)k, NULL, "open");
			break;
		}
		rc = meta_fd(st, fd, d->mode, d->uid, d->gid, d->mtime_sec, d->mtime_nsec, d->nxattrs,
		             d->xattrs);
		close(fd);
		if (rc < 0) rc = fail_at(st, 0, (uint32_t)k, NULL, rc);
		progress(st);
	}
	cursor_free(&c);
	return rc;
}

/* The restore record, so that the first take of the target reads only what
 * changed since; that take reads every file without it: a notice, no failure. */
static void keep_record(rstate *st, const char *snap_id, const char *target)
{
	oid snap;
	if (hex_decode(snap.b, OID_LEN, snap_id) < 0 || restored_put(st->repo->settings.state_dir, st->rootfd, &snap, &st->items) == 0) return;
	if (st->opts->event_cb) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "restore record not kept (%s): the first take of %s reads every file",
		         cairn_error_last(), target);
		cairn_event ev = {.type = CAIRN_EVENT_NOTICE, .message = msg};
		st->opts->event_cb(&ev, st->opts->event_payload);
	}
	error_clear();
}

/* ---- the target ----------------------------------------------------------- */


/* Open target (creating it if absent). *empty = 1 when it has no entries. */
static int open_target(const char *target, int *fd_out, int *empty)
{
	int fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*empty = 0;
	if (fd < 0 && errno == ENOENT) {
		/* private until its own mode is applied at the end */
		if (io_mkdir_parents(target, 0700) < 0)
			return error_errno(CAIRN_EIO, errno, "target %s: mkdir", target);
		fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0) {
		if (errno == ENOTDIR)
			return error_set(CAIRN_EUSAGE, "target %s exists and is not a directory", target);
		return error_errno(CAIRN_EIO, errno, "target %s: open", target);
	}
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	DIR *dp = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!dp) {
		int err = errno;
		if (dfd >= 0) close(dfd);
		close(fd);
		return error_errno(CAIRN_EIO, err, "target %s: read", target);
	}
	*empty = 1;
	struct dirent *de;
	while ((de = readdir(dp)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			*empty = 0;
			break;
		}
	closedir(dp);
	*fd_out = fd;
	return 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static size_t dir_budget(int threads)
{
	struct rlimit rl;
	size_t limit = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) limit = rl.rlim_cur;
	else if (rl.rlim_cur == RLIM_INFINITY) limit = 1u << 20;
	/* half for directories; the rest for workers, the store and the caller */
	size_t reserve = 64 + 2 * (size_t)threads;
	size_t n = limit > 2 * reserve ? (limit - reserve) / 2 : 16;
	return n > 4096 ? 4096 : n < 16 ? 16 : n;
}

CAIRN_EXTERN int cairn_restore(cairn_restore_result *out, cairn_repo *repo, const char *snap_id,
                               const char *target, const cairn_restore_options *opts)
{
	const cairn_restore_options defaults = CAIRN_RESTORE_OPTIONS_INIT;
	snapshot_manifest m;
	tree top;
	rstate st;
	pthread_t *tids = NULL;
	int nthreads = 0, started = 0, rc, empty;
	int64_t t0 = mono_ns();
	pthread_condattr_t ca;

	repo_session(repo); /* a restore may outlast gc's grace period */
	memset(&m, 0, sizeof(m));
	memset(&top, 0, sizeof(top));
	memset(&st, 0, sizeof(st));
	st.rootfd = -1;
	if (out) memset(out, 0, sizeof(*out));
	if (!opts) opts = &defaults;
	if (opts->version != CAIRN_RESTORE_OPTIONS_VERSION)
		return error_set(CAIRN_EUSAGE, "restore: unsupported options version %u", opts->version);
	if (opts->threads < 0) return error_set(CAIRN_EUSAGE, "restore: threads must be >= 0");
	if (!target || !*target) return error_set(CAIRN_EUSAGE, "restore: no target given");
	if (!snap_id) return error_set(CAIRN_EUSAGE, "restore: no snapshot given");

	if ((rc = damaged_check(repo, snap_id)) < 0) return rc; /* fsck --repair marked it */
	if ((rc = repo_load_snapshot(repo, snap_id, &m)) < 0) return rc;
	if ((rc = load_top(repo, &m, snap_id, &top)) < 0) goto done_early;
	const tree_entry *root = &top.entries[0];

	nthreads = opts->threads;
	if (nthreads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		nthreads = n > 0 ? (int)n : 1;
		/* a worker waits: for reads from a remote store, for its pack
		 * reads and O_DIRECT writes from a directory; more workers
		 * than cores keep the cores busy */
		nthreads *= strcmp(store_kind(repo->st), "dir") != 0 ? REMOTE_WORKERS_PER_CPU : LOCAL_WORKERS_PER_CPU;
	}
	if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;

	raise_nofile();
	if ((rc = open_target(target, &st.rootfd, &empty)) < 0) goto done_early;
	if (!empty && !opts->force) {
		rc = error_set(CAIRN_EUSAGE, "target %s is not empty; use --force", target);
		goto done_early;
	}
	/* every directory's tree in a few large reads, not one round trip each */
	repo_prefetch_trees(repo, &root->subtree, REPO_TREES_AHEAD, NULL, NULL);

	st.repo = repo;
	st.opts = opts;
	st.lenient = geteuid() != 0;
	st.max_dirs = dir_budget(nthreads);
	st.total_files = m.files;
	st.total_bytes = m.bytes;
	st.last_progress = mono_ns();
	restore_write_init(&st.wmode, 1);
	atomic_init(&st.stop, 0);
	atomic_init(&st.files, 0);
	atomic_init(&st.bytes, 0);
	pthread_mutex_init(&st.mu, NULL);
	pthread_mutex_init(&st.dirs_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st.cv_work, &ca);
	pthread_cond_init(&st.cv_space, &ca);
	pthread_condattr_destroy(&ca);

	/* dirs[0] is the target itself */
	st.dirs = calloc(256, sizeof(rdir));
	st.q = malloc(QUEUE_CAP * sizeof(fjob));
	tids = calloc((size_t)nthreads, sizeof(*tids));
	if (!st.dirs || !st.q || !tids || !(st.dirs[0].name = strdup(""))) {
		rc = ERR_OOM();
		goto done;
	}
	st.dirs_cap = 256;
	if (m.files + m.dirs < (1u << 26)) { /* a hint: the walk grows it past a manifest's counts */
		st.items.cap = (size_t)(m.files + m.dirs);
		if (st.items.cap && !(st.items.v = malloc(st.items.cap * sizeof(*st.items.v)))) {
			rc = ERR_OOM();
			goto done;
		}
	}
	st.ndirs = 1;
	/* the target takes the captured directory's own metadata, last of all */
	st.dirs[0].mode = root->mode;
	st.dirs[0].uid = root->uid;
	st.dirs[0].gid = root->gid;
	st.dirs[0].mtime_sec = root->mtime_sec;
	st.dirs[0].mtime_nsec = root->mtime_nsec;
	st.dirs[0].nxattrs = root->nxattrs;
	if ((rc = copy_xattrs(root, &st.dirs[0].xattrs)) < 0) goto done;

	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&tids[i], NULL, worker, &st) != 0) break;
		started++;
	}
	if (started == 0) {
		rc = error_set(CAIRN_EIO, "restore: cannot start worker threads");
		goto done;
	}

	/* pass 1, with pass 2 running alongside in the workers */
	rc = walk_trees(&st, &root->subtree, empty);
	if (rc < 0) record_error(&st, rc);

	pthread_mutex_lock(&st.mu);
	st.closed = 1;
	pthread_cond_broadcast(&st.cv_work);
	while (st.qlen + st.inflight > 0) {
		wait_a_bit(&st, &st.cv_space);
		pthread_mutex_unlock(&st.mu);
		progress(&st);
		pthread_mutex_lock(&st.mu);
	}
	pthread_mutex_unlock(&st.mu);
	for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
	started = 0;
	if (st.err) {
		rc = error_set(st.err, "%s", st.errmsg);
		goto done;
	}

	if ((rc = link_members(&st)) < 0) goto done;
	if ((rc = dir_metadata(&st)) < 0) goto done;
	/* done means durable: an instance started from this tree survives a
	 * host crash right after (one syncfs, not an fsync per file) */
	if (syncfs(st.rootfd) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "restore %s: syncfs", target);
		goto done;
	}
	keep_record(&st, snap_id, target);

	if (out) {
		out->files = atomic_load(&st.files);
		out->dirs = st.dirs_done;
		out->symlinks = st.symlinks;
		out->specials = st.specials;
		out->hardlinks = st.hardlinks;
		out->bytes = atomic_load(&st.bytes);
		out->duration_ms = (uint64_t)((mono_ns() - t0) / 1000000);
	}
done:
	if (started) {
		/* only reached on early failures, before any work was queued */
		pthread_mutex_lock(&st.mu);
		st.closed = 1;
		atomic_store(&st.stop, 1);
		pthread_cond_broadcast(&st.cv_work);
		pthread_mutex_unlock(&st.mu);
		for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
	}
	for (size_t i = 0; i < st.ndirs; i++) {
		free(st.dirs[i].name);
		free(st.dirs[i].xattrs);
	}
	if (st.ndirs == 0 && st.dirs) free(st.dirs[0].name); /* failed before ndirs was set */
	free(st.dirs);
	for (size_t i = 0; i < st.hl_cap; i++) free(st.hl[i].name);
	free(st.hl);
	for (size_t i = 0; i < st.nlinks; i++) free(st.links[i].name);
	free(st.links);
	inodes_free(&st.items);
	free(st.q);
	free(tids);
	pthread_cond_destroy(&st.cv_work);
	pthread_cond_destroy(&st.cv_space);
	pthread_mutex_destroy(&st.mu);
	pthread_mutex_destroy(&st.dirs_mu);
done_early:
	repo_prefetch_drop(repo);
	if (st.rootfd >= 0) close(st.rootfd);
	tree_free(&top);
	snapshot_manifest_free(&m);
	return rc;
}

/* ---- ls and cat ----------------------------------------------------------- */

/* Where a path leads: t is the tree of the directory holding the entry (or of
 * the root when e is NULL), dir its path relative to the root ("" or "a/b"). */
typedef struct resolved {
	snapshot_manifest m;
	tree t;
	const tree_entry *e;
	char *dir;
} resolved;

static void resolved_free(resolved *r)
{
	snapshot_manifest_free(&r->m);
	tree_free(&r->t);
	free(r->dir);
	memset(r, 0, sizeof(*r));
}

static int resolve(resolved *res, cairn_repo *repo, const char *snap_id, const char *path)
{
	int rc;
	char sid[13];
	size_t dlen = 0;
	memset(res, 0, sizeof(*res));
	if (!snap_id) return error_set(CAIRN_EUSAGE, "no snapshot given");
	if (!path) path = "";
	/* reject "." and ".." before touching the repository */
	for (const char *p = path; *p;) {
		while (*p == '/') p++;
		size_t n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return error_set(CAIRN_EUSAGE, "path %s: \".\" and \"..\" are not allowed", path);
		p += n;
	}
	if (!(res->dir = malloc(strlen(path) + 1))) return ERR_OOM();
	res->dir[0] = 0;
	if ((rc = repo_load_snapshot(repo, snap_id, &res->m)) < 0) goto fail;
	tree top;
	if ((rc = load_top(repo, &res->m, snap_id, &top)) < 0) goto fail;
	rc = repo_load_tree(repo, &top.entries[0].subtree, &res->t);
	tree_free(&top);
	if (rc < 0) {
		error_prefix("snapshot %s: root", short_id(sid, snap_id));
		goto fail;
	}
	const char *p = path;
	for (;;) {
		while (*p == '/') p++;
		if (!*p) break;
		size_t n = strcspn(p, "/");
		if (res->e) {
			/* descend into the entry found by the previous component */
			tree sub;
			if (res->e->type != TREE_DIR) {
				rc = error_set(CAIRN_ENOTFOUND, "path %s not found in snapshot %s", path,
				               short_id(sid, snap_id));
				goto fail;
			}
			if ((rc = repo_load_tree(repo, &res->e->subtree, &sub)) < 0) {
				error_prefix("%s", path);
				goto fail;
			}
			if (dlen) res->dir[dlen++] = '/';
			memcpy(res->dir + dlen, res->e->name, res->e->name_len);
			dlen += res->e->name_len;
			res->dir[dlen] = 0;
			tree_free(&res->t);
			res->t = sub;
			res->e = NULL;
		}
		if (!tree_name_ok(p, n) || !(res->e = tree_find(&res->t, p, n))) {
			rc = error_set(CAIRN_ENOTFOUND, "path %s not found in snapshot %s", path,
			               short_id(sid, snap_id));
			goto fail;
		}
		p += n;
	}
	return 0;
fail:
	resolved_free(res);
	return rc;
}

typedef struct lframe {
	tree t;
	size_t next, pathlen;
} lframe;

/* List tree t (the directory at dir) with cb, depth-first in name order when
 * recursive. Takes ownership of t. */
static int list_tree(cairn_repo *repo, tree *t, const char *dir, int recursive, cairn_ls_cb cb,
                     void *payload)
{
	int rc = 0;
	lframe *st = NULL;
	size_t n = 0, cap = 0, plen = strlen(dir), pcap = plen + 512;
	char *path = malloc(pcap);
	if (!path) {
		tree_free(t);
		return ERR_OOM();
	}
	memcpy(path, dir, plen + 1);
	if (!(st = malloc(sizeof(*st) * (cap = 16)))) {
		tree_free(t);
		rc = ERR_OOM();
		goto done;
	}
	st[n++] = (lframe){*t, 0, plen};
	memset(t, 0, sizeof(*t));
	while (n > 0) {
		lframe *f = &st[n - 1];
		if (f->next == f->t.n) {
			tree_free(&f->t);
			n--;
			continue;
		}
		const tree_entry *e = &f->t.entries[f->next++];
		cairn_entry ce;
		path[f->pathlen] = 0;
		tree_entry_public(&ce, e);
		if ((rc = cb(path, &ce, payload)) != 0) goto done;
		if (!recursive || e->type != TREE_DIR) continue;

		size_t need = f->pathlen + 1 + e->name_len + 1;
		if (need > pcap) {
			char *np = realloc(path, pcap = need * 2);
			if (!np) {
				rc = ERR_OOM();
				goto done;
			}
			path = np;
		}
		if (n == cap) {
			lframe *ns = realloc(st, sizeof(*st) * (cap *= 2));
			if (!ns) {
				rc = ERR_OOM();
				goto done;
			}
			st = ns;
			f = &st[n - 1];
		}
		size_t at = f->pathlen;
		if (at) path[at++] = '/';
		memcpy(path + at, e->name, e->name_len);
		at += e->name_len;
		path[at] = 0;
		tree sub;
		if ((rc = repo_load_tree(repo, &e->subtree, &sub)) < 0) {
			error_prefix("/%s", path);
			goto done;
		}
		st[n++] = (lframe){sub, 0, at};
	}
done:
	while (n > 0) tree_free(&st[--n].t);
	free(st);
	free(path);
	return rc;
}

CAIRN_EXTERN int cairn_ls(cairn_repo *repo, const char *snap_id, const char *path, int recursive,
                          cairn_ls_cb cb, void *payload)
{
	resolved res;
	if (!cb) return error_set(CAIRN_EUSAGE, "ls: no callback given");
	int rc = resolve(&res, repo, snap_id, path);
	if (rc < 0) return rc;
	if (res.e && res.e->type != TREE_DIR) {
		/* a file: that one entry */
		cairn_entry ce;
		tree_entry_public(&ce, res.e);
		rc = cb(res.dir, &ce, payload);
		goto done;
	}
	if (res.e) {
		tree sub;
		size_t dlen = strlen(res.dir);
		char *dir = malloc(dlen + 1 + res.e->name_len + 1);
		if (!dir) {
			rc = ERR_OOM();
			goto done;
		}
		if (dlen) {
			memcpy(dir, res.dir, dlen);
			dir[dlen++] = '/';
		}
		memcpy(dir + dlen, res.e->name, res.e->name_len + 1);
		if ((rc = repo_load_tree(repo, &res.e->subtree, &sub)) < 0) {
			error_prefix("/%s", dir);
			free(dir);
			goto done;
		}
		rc = list_tree(repo, &sub, dir, recursive, cb, payload);
		free(dir);
		goto done;
	}
	rc = list_tree(repo, &res.t, "", recursive, cb, payload);
done:
	resolved_free(&res);
	return rc;
}

typedef struct cat_out {
	int fd;
	uint64_t pos;
} cat_out;

static int write_zeros(int fd, uint64_t n)
{
	while (n > 0) {
		size_t k = n < ZERO_LEN ? (size_t)n : ZERO_LEN;
		int rc = io_write_full(fd, zeros, k, "output");
		if (rc < 0) return rc;
		n -= k;
	}
	return 0;
}

static int cat_emit(void *ctx, uint64_t off, const uint8_t *p, size_t n)
{
	cat_out *o = ctx;
	int rc = write_zeros(o->fd, off - o->pos);
	if (rc == 0) rc = io_write_full(o->fd, p, n, "output");
	o->pos = off + n;
	return rc;
}

CAIRN_EXTERN int cairn_cat(cairn_repo *repo, const char *snap_id, const char *path, int fd)
{
	resolved res;
	const char *shown = path && *path ? path : "/";
	repo_session(repo); /* it streams for as long as its reader lets it */
	int rc = resolve(&res, repo, snap_id, path);
	if (rc < 0) return rc;
	if (!res.e || res.e->type == TREE_DIR) {
		rc = error_set(CAIRN_EUSAGE, "%s is a directory", shown);
		goto done;
	}
	if (res.e->type != TREE_REG) {
		rc = error_set(CAIRN_EUSAGE, "%s is not a regular file", shown);
		goto done;
	}
	cat_out o = {fd, 0};
	if ((rc = content_walk(repo, res.e, cat_emit, &o, NULL, NULL)) == 0)
		rc = write_zeros(fd, res.e->size - o.pos);
	if (rc < 0) error_prefix("%s", shown);
done:
	resolved_free(&res);
	return rc;
}
