/* The FUSE session: mount(2) of a "fuse.cairn" filesystem on a /dev/fuse
 * descriptor, and threads that each read a request, answer it and read the
 * next. A read that waits for a fetch holds only its own thread, so the
 * others keep answering metadata. Everything is read-only and never changes:
 * entries, attributes and negative lookups are cached by the kernel for as
 * long as it likes, directories and file pages too. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <stdatomic.h>
#include <sys/uio.h>
#include <unistd.h>

#include "error.h"
#include "mount/fuse_abi.h"
#include "mount/mount.h"

#define TIMEOUT_SEC UINT32_MAX      /* "for ever": metadata never changes */
#define MAX_WRITE (1u << 20)
#define IN_BUF (MAX_WRITE + 64 * 1024) /* the kernel wants room for max_write and headers */
#define OUT_BUF (MAX_WRITE + 4096)
/* reads of up to 255 pages: a reply's header and its pages fit a pipe of
 * 1 MiB, pipe-max-size's default (read_splice) */
#define MAX_PAGES 255
#define READAHEAD_KB (MAX_PAGES * 4)
#define SPLICE_PIPE (2 << 20)         /* a reply's header and 257 pages fit */
#define OVERLAY_XATTR "trusted.overlay."

struct msession {
	node_table *nodes;
	mcache *c;
	msession_options o;
	char *mountpoint;
	int fd;
	int passthrough;
	pthread_t *threads;
	unsigned nthreads;
	/* requests answered, for the log line at the end (how a workload
	 * reached the server: a file read whole in passthrough costs an open
	 * and nothing else) */
	atomic_uint_fast64_t nreq, nopen, npass, nread, nspliced, nflush;
};

/* a server thread's buffers: the reply, and the pipe a READ's pages go
 * through on their way from the cache file to /dev/fuse (-1: none) */
typedef struct worker {
	uint8_t *in, *out;
	int pipe[2];
	uint64_t pipe_pages, page; /* the pipe's buffers; at most a page of a file each */
} worker;

/* one open regular file */
typedef struct ofile {
	uint32_t node;
	mfile *f;
	int32_t backing_id;
} ofile;

#define logf_(s, ...) mount_log((s)->o.log, (s)->o.log_payload, __VA_ARGS__)

static void reply(msession *s, uint64_t unique, int err, const void *data, size_t len)
{
	struct fuse_out_header h;
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)data, err ? 0 : len}};
	h.len = (uint32_t)(sizeof(h) + iov[1].iov_len);
	h.error = err;
	h.unique = unique;
	/* ENOENT: the request was interrupted meanwhile; nothing to do */
	if (writev(s->fd, iov, iov[1].iov_len ? 2 : 1) < 0 && errno != ENOENT && errno != ENODEV)
		logf_(s, "mount: reply to the kernel: %s", strerror(errno));
}

static uint64_t data_bytes(const tree_entry *e)
{
	if (!e->nextents) return e->size;
	uint64_t n = 0;
	for (uint32_t i = 0; i < e->nextents; i++) n += e->extents[i].length;
	return n;
}

static void fill_attr(const msession *s, uint32_t id, struct fuse_attr *a)
{
	const mnode *n = &s->nodes->v[id];
	const tree_entry *e = n->e;
	memset(a, 0, sizeof(*a));
	a->ino = id;
	a->mode = e->mode;
	a->nlink = n->nlink;
	a->uid = e->uid;
	a->gid = e->gid;
	a->blksize = 4096;
	switch (e->type) {
	case TREE_REG:
		a->size = e->size;
		a->blocks = (data_bytes(e) + 4095) / 4096 * 8;
		break;
	case TREE_SYMLINK: a->size = e->target_len; break;
	case TREE_DIR: a->size = 4096; a->blocks = 8; break;
	case TREE_CHR:
	case TREE_BLK: {
		/* the kernel decodes rdev with new_decode_dev */
		uint32_t ma = e->rdev_major, mi = e->rdev_minor;
		a->rdev = (mi & 0xff) | (ma << 8) | ((mi & ~0xffu) << 12);
		break;
	}
	default: break;
	}
	a->atime = a->mtime = a->ctime = (uint64_t)e->mtime_sec;
	a->atimensec = a->mtimensec = a->ctimensec = e->mtime_nsec;
}

static void fill_entry(const msession *s, uint32_t id, struct fuse_entry_out *o)
{
	memset(o, 0, sizeof(*o));
	o->nodeid = id;
	o->generation = 1;
	o->entry_valid = o->attr_valid = TIMEOUT_SEC;
	if (id) fill_attr(s, id, &o->attr);
}

static int node_ok(const msession *s, uint64_t id) { return id >= NODE_ROOT && id < s->nodes->n; }

static const tree_entry *entry_of(const msession *s, uint64_t id)
{
	return node_ok(s, id) ? s->nodes->v[id].e : NULL;
}

/* ---- operations ------------------------------------------------------------ */

static void op_init(msession *s, const struct fuse_in_header *h, const void *in)
{
	const struct fuse_init_in *ii = in;
	struct cairn_fuse_init_out o;
	uint64_t kflags = ii->flags;
	if (ii->flags & FUSE_INIT_EXT) kflags |= (uint64_t)ii->flags2 << 32;
	uint64_t want = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |
	                FUSE_PARALLEL_DIROPS | FUSE_CACHE_SYMLINKS | FUSE_MAX_PAGES | FUSE_POSIX_ACL |
	                FUSE_INIT_EXT;
	if (!s->o.no_passthrough) want |= FUSE_PASSTHROUGH;
	uint64_t got = want & kflags;
	memset(&o, 0, sizeof(o));
	o.major = FUSE_KERNEL_VERSION;
	o.minor = ii->minor < CAIRN_FUSE_MINOR ? ii->minor : CAIRN_FUSE_MINOR;
	o.max_readahead = ii->max_readahead;
	o.flags = (uint32_t)got;
	o.flags2 = (uint32_t)(got >> 32);
	o.max_background = 64;
	o.congestion_threshold = 48;
	o.max_write = MAX_WRITE;
	o.time_gran = 1;
	o.max_pages = MAX_PAGES;
	if (got & FUSE_PASSTHROUGH) {
		o.max_stack_depth = 1; /* the cache lives on a plain filesystem */
		s->passthrough = 1;
		mcache_passthrough(s->c, s->fd);
	}
	if (ii->major != FUSE_KERNEL_VERSION) {
		logf_(s, "mount: the kernel speaks FUSE %u.%u; this server speaks 7.%d", ii->major,
		      ii->minor, CAIRN_FUSE_MINOR);
		reply(s, h->unique, -EPROTO, NULL, 0);
		return;
	}
	reply(s, h->unique, 0, &o, sizeof(o));
}

static void op_lookup(msession *s, const struct fuse_in_header *h, const char *name, size_t len)
{
	struct fuse_entry_out o;
	size_t n = strnlen(name, len);
	if (!node_ok(s, h->nodeid) || n == len) {
		reply(s, h->unique, -EINVAL, NULL, 0);
		return;
	}
	/* an absent name answers with node 0: the kernel caches that too */
	fill_entry(s, nodes_lookup(s->nodes, (uint32_t)h->nodeid, name, n), &o);
	reply(s, h->unique, 0, &o, sizeof(o));
}

static void op_getattr(msession *s, const struct fuse_in_header *h)
{
	struct fuse_attr_out o;
	if (!node_ok(s, h->nodeid)) {
		reply(s, h->unique, -ENOENT, NULL, 0);
		return;
	}
	memset(&o, 0, sizeof(o));
	o.attr_valid = TIMEOUT_SEC;
	fill_attr(s, (uint32_t)h->nodeid, &o.attr);
	reply(s, h->unique, 0, &o, sizeof(o));
}

static void op_readlink(msession *s, const struct fuse_in_header *h)
{
	const tree_entry *e = entry_of(s, h->nodeid);
	if (!e || e->type != TREE_SYMLINK) {
		reply(s, h->unique, -EINVAL, NULL, 0);
		return;
	}
	reply(s, h->unique, 0, e->target, e->target_len);
}

static void op_open(msession *s, const struct fuse_in_header *h, const struct fuse_open_in *in)
{
	const tree_entry *e = entry_of(s, h->nodeid);
	struct cairn_fuse_open_out o;
	mfile *f;
	int rc;
	if (!e) {
		reply(s, h->unique, -ENOENT, NULL, 0);
		return;
	}
	if ((in->flags & O_ACCMODE) != O_RDONLY || (in->flags & O_TRUNC)) {
		reply(s, h->unique, -EROFS, NULL, 0);
		return;
	}
	if (e->type != TREE_REG) {
		reply(s, h->unique, -EINVAL, NULL, 0);
		return;
	}
	ofile *of = calloc(1, sizeof(*of));
	if (!of) {
		reply(s, h->unique, -ENOMEM, NULL, 0);
		return;
	}
	if (mcache_file(s->c, (uint32_t)h->nodeid, &f) < 0) {
		logf_(s, "%s", cairn_error_last());
		free(of);
		reply(s, h->unique, -EIO, NULL, 0);
		return;
	}
	if ((rc = mcache_open(s->c, f, s->passthrough ? s->fd : -1, &of->backing_id)) < 0) {
		free(of);
		reply(s, h->unique, rc, NULL, 0);
		return;
	}
	of->node = (uint32_t)h->nodeid;
	of->f = f;
	memset(&o, 0, sizeof(o));
	o.fh = (uint64_t)(uintptr_t)of;
	/* nothing is ever written: a close needs no FLUSH round trip */
	if (of->backing_id >= 0) {
		o.open_flags = FOPEN_PASSTHROUGH | FOPEN_NOFLUSH;
		o.backing_id = of->backing_id;
		s->npass++;
	} else {
		o.open_flags = FOPEN_KEEP_CACHE | FOPEN_NOFLUSH;
	}
	int pass = of->backing_id >= 0; /* of is the kernel's once answered: a release may free it */
	reply(s, h->unique, 0, &o, sizeof(o));
	mcache_opened(s->c, f, (uint32_t)h->nodeid, pass);
}

/* The pipe a READ reply goes through: 2 MiB where the process may exceed
 * pipe-max-size, else as large as that allows (1 MiB by default: a reply
 * of MAX_PAGES and its header fit). A reply that does not fit, or no pipe,
 * takes the copying path. */
static void pipe_open(worker *w)
{
	if (pipe2(w->pipe, O_CLOEXEC) < 0) {
		w->pipe[0] = w->pipe[1] = -1;
		return;
	}
	if (fcntl(w->pipe[1], F_SETPIPE_SZ, SPLICE_PIPE) < 0) {
		FILE *f = fopen("/proc/sys/fs/pipe-max-size", "re");
		int max = 0;
		if (f && fscanf(f, "%d", &max) != 1) max = 0;
		if (f) fclose(f);
		if (max > 0) fcntl(w->pipe[1], F_SETPIPE_SZ, max); /* else the default: small replies */
	}
	long page = sysconf(_SC_PAGESIZE), size = fcntl(w->pipe[1], F_GETPIPE_SZ);
	w->page = page > 0 ? (uint64_t)page : 4096;
	w->pipe_pages = size > 0 ? (uint64_t)size / w->page : 0;
}

/* a failed splice may leave bytes in the pipe: start with an empty one */
static void pipe_reset(worker *w)
{
	if (w->pipe[0] >= 0) {
		close(w->pipe[0]);
		close(w->pipe[1]);
	}
	pipe_open(w);
}

/* Answer a READ of len bytes at off of the cache file fd by splicing its
 * pages into the pipe behind the reply's header and the pipe into
 * /dev/fuse: the kernel copies them once, into the reader's pages, where
 * pread + writev copy them twice. 1 when the reply went (or the request
 * is gone), 0 when nothing reached the device: the caller answers the
 * copying way. */
static int read_splice(msession *s, worker *w, uint64_t unique, int fd, uint64_t off, size_t len)
{
	struct fuse_out_header h;
	uint64_t pages = (off + len + w->page - 1) / w->page - off / w->page;
	if (w->pipe[0] < 0 || 1 + pages > w->pipe_pages) return 0;
	h.len = (uint32_t)(sizeof(h) + len);
	h.error = 0;
	h.unique = unique;
	if (write(w->pipe[1], &h, sizeof(h)) != (ssize_t)sizeof(h)) goto fail;
	loff_t pos = (loff_t)off;
	for (size_t got = 0; got < len;) {
		/* never waits on a full pipe, whatever the counts above missed */
		ssize_t n = splice(fd, &pos, w->pipe[1], NULL, len - got, SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) goto fail; /* short: the copying path says so */
		got += (size_t)n;
	}
	/* the device takes a reply in one piece, or none of it */
	ssize_t n = splice(w->pipe[0], NULL, s->fd, NULL, h.len, 0);
	if (n == (ssize_t)h.len) {
		s->nspliced++;
		return 1;
	}
	int err = n < 0 ? errno : EIO;
	pipe_reset(w);
	if (err == ENOENT || err == ENODEV) return 1; /* interrupted meanwhile, or unmounted */
	return 0;
fail:
	pipe_reset(w);
	return 0;
}

static void op_read(msession *s, const struct fuse_in_header *h, const struct fuse_read_in *in,
                    worker *w)
{
	uint8_t *out = w->out;
	ofile *of = (ofile *)(uintptr_t)in->fh;
	const tree_entry *e = of ? s->nodes->v[of->node].e : NULL;
	if (!e) {
		reply(s, h->unique, -EBADF, NULL, 0);
		return;
	}
	uint64_t len = in->size > OUT_BUF ? OUT_BUF : in->size;
	if (in->offset >= e->size) {
		reply(s, h->unique, 0, NULL, 0);
		return;
	}
	if (len > e->size - in->offset) len = e->size - in->offset;
	int rc = mcache_need(s->c, of->f, of->node, in->offset, len);
	if (rc < 0) {
		reply(s, h->unique, rc, NULL, 0);
		return;
	}
	if (read_splice(s, w, h->unique, mcache_fd(of->f), in->offset, (size_t)len)) return;
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(mcache_fd(of->f), out + got, len - got, (off_t)(in->offset + got));
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) {
			logf_(s, "mount: read of the cache file of node %u: %s", of->node,
			      n < 0 ? strerror(errno) : "short");
			reply(s, h->unique, -EIO, NULL, 0);
			return;
		}
		got += (size_t)n;
	}
	reply(s, h->unique, 0, out, got);
}

static void op_release(msession *s, const struct fuse_in_header *h, const struct fuse_release_in *in)
{
	ofile *of = (ofile *)(uintptr_t)in->fh;
	if (of) {
		mcache_release(s->c, of->f, of->backing_id);
		free(of);
	}
	reply(s, h->unique, 0, NULL, 0);
}

static void op_opendir(msession *s, const struct fuse_in_header *h)
{
	const tree_entry *e = entry_of(s, h->nodeid);
	struct cairn_fuse_open_out o;
	if (!e || e->type != TREE_DIR) {
		reply(s, h->unique, e ? -ENOTDIR : -ENOENT, NULL, 0);
		return;
	}
	memset(&o, 0, sizeof(o));
	o.open_flags = FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE;
	reply(s, h->unique, 0, &o, sizeof(o));
}

/* Offsets: 1 after ".", 2 after "..", k + 3 after the directory's entry k. */
static void op_readdir(msession *s, const struct fuse_in_header *h, const struct fuse_read_in *in,
                       int plus, uint8_t *out)
{
	const mnode *d = node_ok(s, h->nodeid) ? &s->nodes->v[h->nodeid] : NULL;
	if (!d || d->e->type != TREE_DIR) {
		reply(s, h->unique, -ENOTDIR, NULL, 0);
		return;
	}
	const tree *t = &s->nodes->trees[d->tree];
	size_t max = in->size < OUT_BUF ? in->size : OUT_BUF, used = 0;
	for (uint64_t off = in->offset; off < t->n + 2; off++) {
		const char *name;
		size_t nlen;
		uint32_t id;
		if (off == 0) {
			name = ".", nlen = 1, id = (uint32_t)h->nodeid;
		} else if (off == 1) {
			name = "..", nlen = 2, id = d->parent;
		} else {
			const tree_entry *e = &t->entries[off - 2];
			name = e->name, nlen = e->name_len, id = s->nodes->kids[d->kids + off - 2];
		}
		size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
		size_t size = FUSE_DIRENT_ALIGN(head + nlen);
		if (used + size > max) break;
		struct fuse_dirent *de;
		memset(out + used, 0, size);
		if (plus) {
			struct fuse_direntplus *dp = (struct fuse_direntplus *)(out + used);
			if (off >= 2) fill_entry(s, id, &dp->entry_out);
			de = &dp->dirent;
		} else {
			de = (struct fuse_dirent *)(out + used);
		}
		de->ino = id;
		de->off = off + 1;
		de->namelen = (uint32_t)nlen;
		de->type = (s->nodes->v[id].e->mode >> 12) & 017;
		memcpy(de->name, name, nlen);
		used += size;
	}
	reply(s, h->unique, 0, out, used);
}

static void op_statfs(msession *s, const struct fuse_in_header *h)
{
	struct fuse_statfs_out o;
	memset(&o, 0, sizeof(o));
	o.st.bsize = o.st.frsize = 4096;
	o.st.blocks = (s->nodes->data_bytes + 4095) / 4096;
	o.st.files = s->nodes->n - 1;
	o.st.namelen = 255;
	reply(s, h->unique, 0, &o, sizeof(o));
}

static int hidden_xattr(const char *name) { return strncmp(name, OVERLAY_XATTR, strlen(OVERLAY_XATTR)) == 0; }

/* size 0 asks for the length; a smaller buffer than the value is ERANGE */
static void reply_sized(msession *s, const struct fuse_in_header *h, uint32_t size, const void *v,
                        size_t len)
{
	if (size == 0) {
		struct fuse_getxattr_out o = {(uint32_t)len, 0};
		reply(s, h->unique, 0, &o, sizeof(o));
	} else if (len > size) {
		reply(s, h->unique, -ERANGE, NULL, 0);
	} else {
		reply(s, h->unique, 0, v, len);
	}
}

static void op_getxattr(msession *s, const struct fuse_in_header *h, const struct fuse_getxattr_in *in,
                        const char *name, size_t len)
{
	const tree_entry *e = entry_of(s, h->nodeid);
	if (!e || strnlen(name, len) == len) {
		reply(s, h->unique, e ? -EINVAL : -ENOENT, NULL, 0);
		return;
	}
	if (!hidden_xattr(name))
		for (uint32_t i = 0; i < e->nxattrs; i++)
			if (strcmp(e->xattrs[i].name, name) == 0) {
				reply_sized(s, h, in->size, e->xattrs[i].value, e->xattrs[i].value_len);
				return;
			}
	reply(s, h->unique, -ENODATA, NULL, 0);
}

static void op_listxattr(msession *s, const struct fuse_in_header *h, const struct fuse_getxattr_in *in,
                         uint8_t *out)
{
	const tree_entry *e = entry_of(s, h->nodeid);
	size_t len = 0;
	if (!e) {
		reply(s, h->unique, -ENOENT, NULL, 0);
		return;
	}
	for (uint32_t i = 0; i < e->nxattrs; i++) {
		if (hidden_xattr(e->xattrs[i].name)) continue;
		size_t n = (size_t)e->xattrs[i].name_len + 1;
		if (len + n > OUT_BUF) break;
		memcpy(out + len, e->xattrs[i].name, n - 1);
		out[len + n - 1] = 0;
		len += n;
	}
	reply_sized(s, h, in->size, out, len);
}

static void op_lseek(msession *s, const struct fuse_in_header *h, const struct fuse_lseek_in *in)
{
	const tree_entry *e = entry_of(s, h->nodeid);
	struct fuse_lseek_out o = {0};
	if (!e || e->type != TREE_REG) {
		reply(s, h->unique, -EINVAL, NULL, 0);
		return;
	}
	uint64_t off = in->offset;
	if (off >= e->size) {
		reply(s, h->unique, -ENXIO, NULL, 0);
		return;
	}
	if (in->whence != SEEK_DATA && in->whence != SEEK_HOLE) {
		reply(s, h->unique, -EINVAL, NULL, 0);
		return;
	}
	tree_extent dense = {0, e->size};
	const tree_extent *x = e->nextents ? e->extents : &dense;
	uint32_t nx = e->nextents ? e->nextents : 1;
	uint64_t at = in->whence == SEEK_DATA ? UINT64_MAX : off;
	for (uint32_t i = 0; i < nx; i++) {
		if (x[i].length == 0) continue;
		uint64_t end = x[i].offset + x[i].length;
		if (in->whence == SEEK_DATA) {
			if (end > off) {
				at = x[i].offset > off ? x[i].offset : off;
				break;
			}
		} else if (x[i].offset <= at && end > at) {
			at = end; /* inside data: the hole starts where the data (run) ends */
		}
	}
	if (at == UINT64_MAX) {
		reply(s, h->unique, -ENXIO, NULL, 0);
		return;
	}
	o.offset = at;
	reply(s, h->unique, 0, &o, sizeof(o));
}

static int read_only_op(uint32_t op)
{
	switch (op) {
	case FUSE_SETATTR: case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_UNLINK: case FUSE_RMDIR:
	case FUSE_RENAME: case FUSE_LINK: case FUSE_SYMLINK: case FUSE_WRITE: case FUSE_SETXATTR:
	case FUSE_REMOVEXATTR: case FUSE_CREATE: case FUSE_FALLOCATE: case FUSE_RENAME2:
	case FUSE_COPY_FILE_RANGE: case FUSE_TMPFILE:
		return 1;
	default:
		return 0;
	}
}

static void handle(msession *s, const uint8_t *buf, size_t n, worker *w)
{
	uint8_t *out = w->out;
	const struct fuse_in_header *h = (const struct fuse_in_header *)buf;
	const uint8_t *in = buf + sizeof(*h);
	size_t inlen = n - sizeof(*h);
	if (h->len != n) {
		reply(s, h->unique, -EIO, NULL, 0);
		return;
	}
	s->nreq++;
/* the request's fixed part must be there before it is read */
#define NEED(type)                                        \
	do {                                                  \
		if (inlen < sizeof(type)) {                       \
			reply(s, h->unique, -EINVAL, NULL, 0);        \
			return;                                       \
		}                                                 \
	} while (0)
	switch (h->opcode) {
	case FUSE_INIT: NEED(struct fuse_init_in); op_init(s, h, in); break;
	case FUSE_DESTROY: reply(s, h->unique, 0, NULL, 0); break;
	case FUSE_LOOKUP: op_lookup(s, h, (const char *)in, inlen); break;
	case FUSE_FORGET: case FUSE_BATCH_FORGET: case FUSE_INTERRUPT: break; /* no answer */
	case FUSE_GETATTR: op_getattr(s, h); break;
	case FUSE_READLINK: op_readlink(s, h); break;
	case FUSE_OPEN: NEED(struct fuse_open_in); s->nopen++; op_open(s, h, (const void *)in); break;
	case FUSE_READ: NEED(struct fuse_read_in); s->nread++; op_read(s, h, (const void *)in, w); break;
	case FUSE_RELEASE: NEED(struct fuse_release_in); op_release(s, h, (const void *)in); break;
	case FUSE_OPENDIR: op_opendir(s, h); break;
	case FUSE_READDIR: NEED(struct fuse_read_in); op_readdir(s, h, (const void *)in, 0, out); break;
	case FUSE_READDIRPLUS: NEED(struct fuse_read_in); op_readdir(s, h, (const void *)in, 1, out); break;
	case FUSE_FLUSH: s->nflush++; reply(s, h->unique, 0, NULL, 0); break;
	case FUSE_RELEASEDIR: case FUSE_FSYNC: case FUSE_FSYNCDIR: case FUSE_ACCESS:
		reply(s, h->unique, 0, NULL, 0);
		break;
	case FUSE_STATFS: op_statfs(s, h); break;
	case FUSE_GETXATTR:
		NEED(struct fuse_getxattr_in);
		op_getxattr(s, h, (const void *)in, (const char *)in + sizeof(struct fuse_getxattr_in),
		            inlen - sizeof(struct fuse_getxattr_in));
		break;
	case FUSE_LISTXATTR: NEED(struct fuse_getxattr_in); op_listxattr(s, h, (const void *)in, out); break;
	case FUSE_LSEEK: NEED(struct fuse_lseek_in); op_lseek(s, h, (const void *)in); break;
	default: reply(s, h->unique, read_only_op(h->opcode) ? -EROFS : -ENOSYS, NULL, 0); break;
	}
#undef NEED
}

static void *serve(void *arg)
{
	msession *s = arg;
	worker w = {malloc(IN_BUF), malloc(OUT_BUF), {-1, -1}, 0, 4096};
	pipe_open(&w);
	while (w.in && w.out) {
		ssize_t n = read(s->fd, w.in, IN_BUF);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT) continue;
			if (errno != ENODEV) logf_(s, "mount: /dev/fuse: %s", strerror(errno));
			break; /* ENODEV: unmounted, or the connection was aborted */
		}
		if ((size_t)n < sizeof(struct fuse_in_header)) continue;
		handle(s, w.in, (size_t)n, &w);
	}
	if (w.pipe[0] >= 0) {
		close(w.pipe[0]);
		close(w.pipe[1]);
	}
	free(w.in);
	free(w.out);
	return NULL;
}

/* The kernel reads ahead 128 KiB on a FUSE mount by default: a sequential
 * reader of a file not yet local (or one open in the page-cache mode) would
 * wait on a request for every 128 KiB. READAHEAD_KB lets it ask for as much
 * as a request holds (MAX_PAGES), several in flight. Best effort: the
 * mount works without it. */
static void readahead_set(dev_t dev)
{
	char path[96];
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(dev), minor(dev));
	FILE *f = fopen(path, "we");
	if (!f) return;
	fprintf(f, "%u\n", READAHEAD_KB);
	fclose(f);
}

int msession_start(msession **out, node_table *nodes, mcache *c, const msession_options *o)
{
	int rc;
	char data[256];
	struct stat sb;
	sigset_t all, old;
	msession *s = calloc(1, sizeof(*s));
	*out = NULL;
	if (!s) return ERR_OOM();
	s->nodes = nodes;
	s->c = c;
	s->o = *o;
	s->fd = -1;
	if (!(s->mountpoint = strdup(o->mountpoint))) {
		rc = ERR_OOM();
		goto fail;
	}
	if (stat(o->mountpoint, &sb) < 0) {
		rc = error_errno(errno == ENOENT ? CAIRN_ENOTFOUND : CAIRN_EIO, errno, "mount point %s",
		                 o->mountpoint);
		goto fail;
	}
	if (!S_ISDIR(sb.st_mode)) {
		rc = error_set(CAIRN_EUSAGE, "mount point %s is not a directory", o->mountpoint);
		goto fail;
	}
	if ((s->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC)) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "mount: /dev/fuse");
		goto fail;
	}
	snprintf(data, sizeof(data),
	         "fd=%d,rootmode=%o,user_id=0,group_id=0,allow_other,default_permissions", s->fd,
	         (unsigned)(nodes->v[NODE_ROOT].e->mode & S_IFMT));
	if (mount(o->source, o->mountpoint, "fuse.cairn", MS_RDONLY | MS_NOATIME, data) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "mount %s%s",
		                 o->mountpoint, errno == EPERM ? " (mounting needs root)" : "");
		goto fail;
	}
	if (!(s->threads = calloc(o->threads, sizeof(pthread_t)))) {
		rc = ERR_OOM();
		goto unmount;
	}
	/* signals go to the caller's threads, not to the servers */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < o->threads; i++) {
		if (pthread_create(&s->threads[i], NULL, serve, s) != 0) break;
		s->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (s->nthreads == 0) {
		rc = error_set(CAIRN_EIO, "mount: cannot start server threads");
		goto unmount;
	}
	/* ready when the kernel got its INIT answer and the root answers */
	if (stat(o->mountpoint, &sb) < 0 || sb.st_ino != NODE_ROOT) {
		rc = error_errno(CAIRN_EIO, errno, "mount %s: the new mount does not answer", o->mountpoint);
		goto unmount;
	}
	readahead_set(sb.st_dev);
	*out = s;
	return 0;
unmount:
	umount2(o->mountpoint, MNT_DETACH);
fail:
	msession_free(s);
	return rc;
}

void msession_wait(msession *s)
{
	for (unsigned i = 0; i < s->nthreads; i++) pthread_join(s->threads[i], NULL);
	s->nthreads = 0;
}

void msession_unmount(msession *s) { umount2(s->mountpoint, MNT_DETACH); }

int msession_passthrough(const msession *s) { return s->passthrough; }

void msession_free(msession *s)
{
	if (!s) return;
	if (s->nthreads) {
		umount2(s->mountpoint, MNT_DETACH);
		msession_wait(s);
	}
	if (s->fd >= 0) {
		mcache_backing_close(s->c, s->fd);
		close(s->fd);
	}
	if (s->nreq)
		logf_(s, "mount: answered %llu requests: %llu opens (%llu in passthrough), %llu reads (%llu spliced), %llu flushes",
		      (unsigned long long)s->nreq, (unsigned long long)s->nopen, (unsigned long long)s->npass,
		      (unsigned long long)s->nread, (unsigned long long)s->nspliced, (unsigned long long)s->nflush);
	free(s->threads);
	free(s->mountpoint);
	free(s);
}
