/* Ceph RADOS backend of the storage interface (librados). An address
 * "POOL[/PREFIX]" names a pool and an object-name prefix, so that one pool
 * holds several repositories: object "packs/ab/ab12..." of prefix "r1" is
 * the RADOS object "r1/packs/ab/ab12...".
 *
 * - put is one write op (create-exclusive when STORE_EXCL, then write_full):
 *   RADOS applies an op to one object atomically, so readers see all of the
 *   object or none, and two hosts racing for a commit point get one winner.
 * - A streamed write is kept in memory and committed as one such op, so
 *   nothing of it is visible before commit (fsck and gc never meet half a
 *   pack); several takes' workers commit packs at once, each its own op.
 * - Only an object larger than one op allows (RADOS_OP_MAX; packs are
 *   about 4 MiB, RADOS_PACK_TARGET) is written in pieces, several in
 *   flight (aio), under its final name, since RADOS has no rename: the
 *   first piece is an exclusive create, abort removes what was written,
 *   and such an object is visible while it grows. Only pack names, fresh
 *   random ids that nothing references before the index segment naming
 *   them is committed, are ever that large; an orphan is an unindexed
 *   pack that gc reclaims.
 * - Locks are RADOS advisory exclusive locks (cls_lock) on "locks/NAME" with
 *   a duration, so a lock of a host that died expires; the holder's host and
 *   pid are kept in the lock object so a dead process on this host is
 *   broken at once and EBUSY names the holder.
 * - list walks the pool's object list (librados pages it) and keeps the
 *   names under PREFIX/DIR/.
 * The cluster's configuration file, the client id (default admin) and a
 * timeout in seconds come from the open options (cairn.h; the CLI maps
 * CEPH_CONF or --ceph-conf, CEPH_CLIENT_ID and CAIRN_RADOS_TIMEOUT to
 * them); the timeout bounds connecting and every operation, so that an
 * unreachable cluster or a stopped OSD fails a command instead of hanging. */
#include "store_backend.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <rados/librados.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"

/* librados is opened with dlopen when the first rados: repository is, not
 * linked: it drags in libceph-common (130 MiB of static data, 40 more
 * libraries), which every other command would pay for at start and exit.
 * The prototypes still come from librados.h, so calls are type-checked. */
#define LIBRADOS_FUNCTIONS(X) \
	X(rados_create) \
	X(rados_conf_read_file) \
	X(rados_conf_parse_env) \
	X(rados_conf_set) \
	X(rados_conf_get) \
	X(rados_connect) \
	X(rados_shutdown) \
	X(rados_ioctx_create) \
	X(rados_ioctx_destroy) \
	X(rados_create_write_op) \
	X(rados_release_write_op) \
	X(rados_write_op_create) \
	X(rados_write_op_write_full) \
	X(rados_write_op_write) \
	X(rados_write_op_operate) \
	X(rados_write_full) \
	X(rados_read) \
	X(rados_stat) \
	X(rados_remove) \
	X(rados_nobjects_list_open) \
	X(rados_nobjects_list_next) \
	X(rados_nobjects_list_close) \
	X(rados_lock_exclusive) \
	X(rados_unlock) \
	X(rados_list_lockers) \
	X(rados_break_lock) \
	X(rados_aio_create_completion) \
	X(rados_aio_write) \
	X(rados_aio_wait_for_complete) \
	X(rados_aio_get_return_value) \
	X(rados_aio_release)

static struct {
#define X(f) __typeof__(f) *f;
	LIBRADOS_FUNCTIONS(X)
#undef X
} lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static char lib_error[256];

static void lib_load(void)
{
	void *h = dlopen("librados.so.2", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(lib_error, sizeof(lib_error), "%s", dlerror());
		return;
	}
#define X(f)                                                                                   \
	if (!(*(void **)&lib.f = dlsym(h, #f))) {                                                 \
		snprintf(lib_error, sizeof(lib_error), "librados.so.2 has no %s", #f);              \
		lib.rados_create = NULL;                                                           \
		return;                                                                            \
	}
	LIBRADOS_FUNCTIONS(X)
#undef X
}

#define RADOS_OP_MAX (64u * 1024u * 1024u)   /* below osd_max_write_size (90 MiB) */
/* Packs of 4 MiB, not a directory's 32: RADOS is made for objects of a few
 * MiB (RGW, RBD and CephFS stripe at 4 MiB). Measured on one bluestore OSD
 * (351 MiB take, 209 MiB stored): the OSD spent 3.1 CPU s on 32 MiB
 * objects, 0.8 s on 16 MiB ones, 0.4 s on 8 or 4 MiB ones; the take went
 * from 3.9-4.4 s to 1.5-1.9 s. */
#define RADOS_PACK_TARGET (4u * 1024u * 1024u)
#define RADOS_READ_PIECE (32u * 1024u * 1024u)
#define PIECE_LEN (4u * 1024u * 1024u)        /* streamed writes: bytes per aio */
#define PIECES_IN_FLIGHT 4
#define DEFAULT_TIMEOUT "60"
#define LOCK_NAME "cairn"

typedef struct rados_store {
	store base;
	rados_t cluster;
	rados_ioctx_t io;
	char *addr;   /* "rados:POOL[/PREFIX]", for messages */
	char *prefix; /* "PREFIX/" or "" */
	size_t prefix_len;
} rados_store;

static const store_ops rados_ops;

/* The RADOS object id of name; *oid is malloc'd. */
static int oid_of(rados_store *st, const char *name, char **oid)
{
	if (asprintf(oid, "%s%s", st->prefix, name) < 0) {
		*oid = NULL;
		return ERR_OOM();
	}
	return 0;
}

/* A librados error (negative errno) as a CAIRN_E* code with a message
 * naming the backend and the object. */
static int rados_fail(rados_store *st, int err, const char *name, const char *op)
{
	int e = err < 0 ? -err : err;
	const char *hint = "";
	int code = CAIRN_EIO;
	switch (e) {
	case ENOENT: code = CAIRN_ENOTFOUND; break;
	case EEXIST: code = CAIRN_EEXISTS; break;
	case ENOMEM: code = CAIRN_ENOMEM; break;
	case EBUSY: code = CAIRN_EBUSY; break;
	case ETIMEDOUT: hint = " (cluster or OSD unreachable? CAIRN_RADOS_TIMEOUT bounds the wait)"; break;
	case ENOSPC:
	case EDQUOT: hint = " (cluster or pool out of space)"; break;
	case EACCES:
	case EPERM: hint = " (the client's caps do not allow it)"; break;
	default: break;
	}
	return error_set(code, "%s: %s: %s: %s%s", st->addr, name, op, strerror(e), hint);
}

static void rados_free_store(store *base)
{
	rados_store *st = (rados_store *)base;
	if (st->io) lib.rados_ioctx_destroy(st->io);
	if (st->cluster) lib.rados_shutdown(st->cluster);
	free(st->addr);
	free(st->prefix);
	free(st);
}

/* Set a timeout option unless the configuration file set it already
 * (librados' defaults: 0 = wait forever, or 300 s to connect). */
static void set_timeout(rados_t c, const char *opt, const char *dflt, const char *env)
{
	char cur[64] = "";
	if (env && *env) {
		lib.rados_conf_set(c, opt, env);
		return;
	}
	if (lib.rados_conf_get(c, opt, cur, sizeof(cur)) == 0 && (atof(cur) == 0 || atof(cur) == 300))
		lib.rados_conf_set(c, opt, dflt);
}

int store_rados_open(store **out, const char *address, int create, const cairn_repo_open_options *o)
{
	(void)create; /* pools are made by the cluster's admin, never by cairn */
	*out = NULL;
	int rc = 0;
	const char *slash = strchr(address, '/');
	size_t pool_len = slash ? (size_t)(slash - address) : strlen(address);
	if (pool_len == 0)
		return error_set(CAIRN_EUSAGE, "repository rados:%s: no pool (rados:POOL[/PREFIX])", address);
	rados_store *st = calloc(1, sizeof(*st));
	if (!st) return ERR_OOM();
	st->base.ops = &rados_ops;
	char *pool = strndup(address, pool_len);
	/* the prefix without leading or trailing slashes, then one '/' */
	const char *p = slash ? slash : "";
	while (*p == '/') p++;
	size_t plen = strlen(p);
	while (plen > 0 && p[plen - 1] == '/') plen--;
	if (plen == 0) st->prefix = strdup("");
	else if (asprintf(&st->prefix, "%.*s/", (int)plen, p) < 0) st->prefix = NULL;
	if (asprintf(&st->addr, "rados:%s", address) < 0) st->addr = NULL;
	if (!pool || !st->prefix || !st->addr) {
		rc = ERR_OOM();
		goto done;
	}
	st->prefix_len = strlen(st->prefix);

	pthread_once(&lib_once, lib_load);
	if (!lib.rados_create) {
		rc = error_set(CAIRN_EIO, "%s: librados cannot be loaded (apt-get install librados2): %s", st->addr,
		               lib_error);
		goto done;
	}
	int err = lib.rados_create(&st->cluster, o->rados.client_id);
	if (err < 0) {
		st->cluster = NULL;
		rc = error_set(CAIRN_EIO, "%s: rados_create: %s", st->addr, strerror(-err));
		goto done;
	}
	const char *conf = o->rados.conf;
	if ((err = lib.rados_conf_read_file(st->cluster, conf && *conf ? conf : NULL)) < 0) {
		rc = error_set(CAIRN_EIO, "%s: ceph configuration %s: %s (give the configuration: CEPH_CONF or --ceph-conf)",
		               st->addr, conf && *conf ? conf : "(default search path)", strerror(-err));
		goto done;
	}
	const char *t = o->rados.timeout_s;
	set_timeout(st->cluster, "client_mount_timeout", "30", t);
	set_timeout(st->cluster, "rados_mon_op_timeout", DEFAULT_TIMEOUT, t);
	set_timeout(st->cluster, "rados_osd_op_timeout", DEFAULT_TIMEOUT, t);
	if ((err = lib.rados_connect(st->cluster)) < 0) {
		const char *why = -err == EACCES || -err == EPERM ? " (authentication refused: check the keyring)"
		                  : -err == ETIMEDOUT          ? " (no monitor answered: cluster unreachable?)"
		                                               : "";
		rc = error_set(CAIRN_EIO, "%s: connecting to the cluster: %s%s", st->addr, strerror(-err), why);
		goto done;
	}
	if ((err = lib.rados_ioctx_create(st->cluster, pool, &st->io)) < 0) {
		st->io = NULL;
		if (err == -ENOENT) rc = error_set(CAIRN_ENOTFOUND, "%s: no pool %s in the cluster", st->addr, pool);
		else rc = error_set(CAIRN_EIO, "%s: opening pool %s: %s", st->addr, pool, strerror(-err));
		goto done;
	}
done:
	free(pool);
	if (rc < 0) {
		rados_free_store(&st->base);
		return rc;
	}
	*out = &st->base;
	return 0;
}

/* ---- objects -------------------------------------------------------------- */

static int write_pieces(rados_store *st, const char *name, const char *oid, const uint8_t *data,
                        size_t len, unsigned flags);

static int rados_put(store *base, const char *name, const void *data, size_t len, unsigned flags)
{
	rados_store *st = (rados_store *)base;
	char *oid;
	int rc = oid_of(st, name, &oid);
	if (rc < 0) return rc;
	if (len > RADOS_OP_MAX) {
		rc = write_pieces(st, name, oid, data, len, flags);
		free(oid);
		return rc;
	}
	rados_write_op_t op = lib.rados_create_write_op();
	if (!op) {
		free(oid);
		return ERR_OOM();
	}
	if (flags & STORE_EXCL) lib.rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
	/* still one op, but extents of at most a piece: librados copies each
	 * into a buffer of its own, and 4 MiB ones come from malloc's reused
	 * memory where a 32 MiB one gets fresh pages (tools/main.c) */
	const char *p = data;
	size_t first = len < PIECE_LEN ? len : PIECE_LEN;
	lib.rados_write_op_write_full(op, p, first);
	for (size_t off = first; off < len; off += PIECE_LEN)
		lib.rados_write_op_write(op, p + off, len - off < PIECE_LEN ? len - off : PIECE_LEN, off);
	int err = lib.rados_write_op_operate(op, st->io, oid, NULL, 0);
	lib.rados_release_write_op(op);
	if (err == -EEXIST) rc = error_set(CAIRN_EEXISTS, "%s: %s: exists already", st->addr, name);
	else if (err < 0) rc = rados_fail(st, err, name, "write");
	free(oid);
	return rc;
}

/* Read len bytes at off into out, in pieces; *got is what the object had. */
static int read_at(rados_store *st, const char *name, const char *oid, uint64_t off, uint8_t *out,
                   size_t len, size_t *got)
{
	*got = 0;
	while (*got < len) {
		size_t n = len - *got < RADOS_READ_PIECE ? len - *got : RADOS_READ_PIECE;
		int r = lib.rados_read(st->io, oid, (char *)out + *got, n, off + *got);
		if (r < 0) return rados_fail(st, r, name, "read");
		*got += (size_t)r;
		if ((size_t)r < n) break; /* end of object */
	}
	return 0;
}

static int rados_get(store *base, const char *name, size_t max, uint8_t **out, size_t *len)
{
	rados_store *st = (rados_store *)base;
	char *oid;
	uint8_t *data = NULL;
	*out = NULL;
	*len = 0;
	int rc = oid_of(st, name, &oid);
	if (rc < 0) return rc;
	/* A non-exclusive put may replace the object between stat and read: read
	 * one byte more than its size and retry if the size moved. */
	for (int attempt = 0; attempt < 5; attempt++) {
		uint64_t size;
		time_t mtime;
		int err = lib.rados_stat(st->io, oid, &size, &mtime);
		if (err == -ENOENT) {
			rc = error_set(CAIRN_ENOTFOUND, "%s: %s: not found", st->addr, name);
			goto done;
		}
		if (err < 0) {
			rc = rados_fail(st, err, name, "stat");
			goto done;
		}
		if (size > max) {
			rc = error_set(CAIRN_ECORRUPT, "%s: %s: too large (%llu bytes)", st->addr, name,
			               (unsigned long long)size);
			goto done;
		}
		free(data);
		if (!(data = malloc((size_t)size + 1))) {
			rc = ERR_OOM();
			goto done;
		}
		size_t got;
		rc = read_at(st, name, oid, 0, data, (size_t)size + 1, &got);
		if (rc == CAIRN_ENOTFOUND) rc = error_set(CAIRN_ENOTFOUND, "%s: %s: not found", st->addr, name);
		if (rc < 0) goto done;
		if (got == size) {
			*out = data;
			*len = got;
			data = NULL;
			goto done;
		}
	}
	rc = error_set(CAIRN_EIO, "%s: %s: kept changing while read", st->addr, name);
done:
	free(data);
	free(oid);
	return rc;
}

/* At most len bytes at off: store.c's read caches fetch their blocks so
 * (one read op serves many blobs), and rados_get_range is this with the
 * length checked. */
static int rados_get_upto(store *base, const char *name, uint64_t off, void *out, size_t len, size_t *got)
{
	rados_store *st = (rados_store *)base;
	char *oid;
	*got = 0;
	int rc = oid_of(st, name, &oid);
	if (rc < 0) return rc;
	rc = read_at(st, name, oid, off, out, len, got);
	if (rc == CAIRN_ENOTFOUND) rc = error_set(CAIRN_ECORRUPT, "%s: %s: missing", st->addr, name);
	free(oid);
	return rc;
}

static int rados_get_range(store *base, const char *name, uint64_t off, void *out, size_t len)
{
	size_t got;
	int rc = rados_get_upto(base, name, off, out, len, &got);
	if (rc == 0 && got < len)
		rc = error_set(CAIRN_ECORRUPT, "%s: %s: short: %zu of %zu bytes at offset %llu",
		               ((rados_store *)base)->addr, name, got, len, (unsigned long long)off);
	return rc;
}

static int rados_size(store *base, const char *name, uint64_t *size)
{
	rados_store *st = (rados_store *)base;
	char *oid;
	time_t mtime;
	int rc = oid_of(st, name, &oid);
	if (rc < 0) return rc;
	int err = lib.rados_stat(st->io, oid, size, &mtime);
	if (err == -ENOENT) rc = error_set(CAIRN_ENOTFOUND, "%s: %s: not found", st->addr, name);
	else if (err < 0) rc = rados_fail(st, err, name, "stat");
	free(oid);
	return rc;
}

/* The names are collected first and the callbacks run after the listing is
 * closed: a callback may delete objects (gc) without disturbing the walk. */
static int rados_list(store *base, const char *dir, int (*cb)(const char *name, void *payload),
                      void *payload)
{
	rados_store *st = (rados_store *)base;
	rados_list_ctx_t ctx = NULL;
	char *want = NULL, **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	if (asprintf(&want, "%s%s/", st->prefix, dir) < 0) return ERR_OOM();
	size_t want_len = strlen(want);
	int err = lib.rados_nobjects_list_open(st->io, &ctx);
	if (err < 0) {
		rc = rados_fail(st, err, dir, "list");
		ctx = NULL;
		goto done;
	}
	for (;;) {
		const char *entry, *key, *nspace;
		err = lib.rados_nobjects_list_next(ctx, &entry, &key, &nspace);
		if (err == -ENOENT) break;
		if (err < 0) {
			rc = rados_fail(st, err, dir, "list");
			goto done;
		}
		if (strncmp(entry, want, want_len) != 0 || entry[want_len] == 0) continue;
		if (n == cap) {
			size_t c = cap ? cap * 2 : 64;
			char **v = realloc(names, c * sizeof(*v));
			if (!v) {
				rc = ERR_OOM();
				goto done;
			}
			names = v;
			cap = c;
		}
		if (!(names[n] = strdup(entry + st->prefix_len))) {
			rc = ERR_OOM();
			goto done;
		}
		n++;
	}
	lib.rados_nobjects_list_close(ctx);
	ctx = NULL;
	for (size_t i = 0; i < n && rc == 0; i++) rc = cb(names[i], payload);
done:
	if (ctx) lib.rados_nobjects_list_close(ctx);
	for (size_t i = 0; i < n; i++) free(names[i]);
	free(names);
	free(want);
	return rc;
}

static int rados_del(store *base, const char *name)
{
	rados_store *st = (rados_store *)base;
	char *oid;
	int rc = oid_of(st, name, &oid);
	if (rc < 0) return rc;
	int err = lib.rados_remove(st->io, oid);
	if (err == -ENOENT) rc = error_set(CAIRN_ENOTFOUND, "%s: %s: not found", st->addr, name);
	else if (err < 0) rc = rados_fail(st, err, name, "delete");
	free(oid);
	return rc;
}

/* ---- streamed writes: pieces in flight under the final name --------------- */

struct piece {
	rados_completion_t c;
	uint8_t *data; /* owned; kept until the write completes */
};

typedef struct rados_writer {
	store_writer base;
	rados_store *st;
	char *name, *oid;
	buf pending;       /* appended, not yet sent */
	uint64_t sent;     /* bytes handed to librados */
	int created;       /* the first piece created the object (exclusively) */
	int existed;       /* the name was taken: keep everything, decide at commit */
	int failed;        /* a piece failed: rc holds why */
	int rc;
	struct piece fly[PIECES_IN_FLIGHT];
	int nfly;
} rados_writer;

/* Wait for the oldest piece in flight. */
static void piece_reap(rados_writer *w)
{
	struct piece *p = &w->fly[0];
	lib.rados_aio_wait_for_complete(p->c);
	int err = lib.rados_aio_get_return_value(p->c);
	lib.rados_aio_release(p->c);
	free(p->data);
	if (err < 0 && !w->failed) {
		w->failed = 1;
		w->rc = rados_fail(w->st, err, w->name, "write");
	}
	memmove(&w->fly[0], &w->fly[1], (size_t)(w->nfly - 1) * sizeof(w->fly[0]));
	w->nfly--;
}

static void reap_all(rados_writer *w)
{
	while (w->nfly > 0) piece_reap(w);
}

/* Send data (len bytes, owned by us from now) at w->sent. The first piece
 * creates the object exclusively and synchronously, so that later pieces
 * never write into an object that someone else owns. */
static int piece_send(rados_writer *w, uint8_t *data, size_t len)
{
	if (w->failed) {
		free(data);
		return w->rc;
	}
	if (!w->created) {
		rados_write_op_t op = lib.rados_create_write_op();
		if (!op) {
			free(data);
			return ERR_OOM();
		}
		lib.rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
		lib.rados_write_op_write(op, (const char *)data, len, 0);
		int err = lib.rados_write_op_operate(op, w->st->io, w->oid, NULL, 0);
		lib.rados_release_write_op(op);
		free(data);
		if (err < 0) {
			w->failed = 1;
			return w->rc = rados_fail(w->st, err, w->name, "write");
		}
		w->created = 1;
		w->sent = len;
		return 0;
	}
	if (w->nfly == PIECES_IN_FLIGHT) piece_reap(w);
	struct piece *p = &w->fly[w->nfly];
	int err = lib.rados_aio_create_completion(NULL, NULL, NULL, &p->c);
	if (err < 0) {
		free(data);
		return ERR_OOM();
	}
	p->data = data;
	err = lib.rados_aio_write(w->st->io, w->oid, p->c, (const char *)data, len, w->sent);
	if (err < 0) {
		lib.rados_aio_release(p->c);
		free(data);
		w->failed = 1;
		return w->rc = rados_fail(w->st, err, w->name, "write");
	}
	w->nfly++;
	w->sent += len;
	return w->failed ? w->rc : 0;
}

/* Send every whole piece of pending. */
static int pending_send(rados_writer *w, int all)
{
	size_t off = 0;
	int rc = 0;
	while (rc == 0 && !w->existed && (w->pending.len - off >= PIECE_LEN || (all && off < w->pending.len))) {
		size_t n = w->pending.len - off < PIECE_LEN ? w->pending.len - off : PIECE_LEN;
		uint8_t *d = malloc(n);
		if (!d) return ERR_OOM();
		memcpy(d, w->pending.data + off, n);
		rc = piece_send(w, d, n);
		if (rc == CAIRN_EEXISTS && !w->created) {
			/* the name is taken: the data stays here for a replace at commit */
			w->existed = 1;
			w->failed = 0;
			error_clear();
			return 0;
		}
		off += n;
	}
	if (off > 0) {
		memmove(w->pending.data, w->pending.data + off, w->pending.len - off);
		w->pending.len -= off;
	}
	return rc;
}

static void writer_free(rados_writer *w)
{
	reap_all(w);
	buf_free(&w->pending);
	free(w->name);
	free(w->oid);
	free(w);
}

static int rados_write_begin(store *base, const char *name, store_writer **out)
{
	rados_store *st = (rados_store *)base;
	rados_writer *w = calloc(1, sizeof(*w));
	if (!w) return ERR_OOM();
	w->base.st = base;
	w->st = st;
	int rc = oid_of(st, name, &w->oid);
	if (rc < 0 || !(w->name = strdup(name))) {
		free(w->oid);
		free(w);
		return rc < 0 ? rc : ERR_OOM();
	}
	*out = &w->base;
	return 0;
}

static int rados_write_append(store_writer *base, const void *data, size_t len)
{
	rados_writer *w = (rados_writer *)base;
	if (w->failed) return w->rc;
	buf_put(&w->pending, data, len);
	if (w->pending.oom) return ERR_OOM();
	/* up to one op's worth, the object goes whole and atomically at commit */
	if (w->existed || (!w->created && w->pending.len <= RADOS_OP_MAX)) return 0;
	return pending_send(w, 0);
}

/* Remove what this writer created (never an object it did not create). */
static void writer_undo(rados_writer *w)
{
	reap_all(w);
	if (w->created) lib.rados_remove(w->st->io, w->oid);
}

/* End a pieced write begun with rc: wait for the pieces in flight; on any
 * failure remove what was written, keeping the failure's message. */
static int writer_end(rados_writer *w, int rc)
{
	if (rc == 0) {
		reap_all(w);
		if (w->failed) rc = w->rc;
	}
	if (rc < 0) {
		char keep[1024];
		snprintf(keep, sizeof(keep), "%s", cairn_error_last());
		writer_undo(w);
		error_set(rc, "%s", keep);
	}
	writer_free(w);
	return rc;
}

static int rados_write_commit(store_writer *base, unsigned flags)
{
	rados_writer *w = (rados_writer *)base;
	int rc = 0;
	if (!w->created && !w->failed) {
		/* never started (small), or the name existed: one atomic op */
		if (w->existed && (flags & STORE_EXCL))
			rc = error_set(CAIRN_EEXISTS, "%s: %s: exists already", w->st->addr, w->name);
		else
			rc = rados_put(&w->st->base, w->name, w->pending.data, w->pending.len, flags);
		writer_free(w);
		return rc;
	}
	return writer_end(w, pending_send(w, 1));
}

static void rados_write_abort(store_writer *base)
{
	rados_writer *w = (rados_writer *)base;
	writer_undo(w);
	writer_free(w);
}

/* A put too large for one op: the streamed writer's path. EXCL holds (the
 * first piece creates exclusively); without EXCL an existing object is
 * removed first, so the replace is not atomic: only fresh pack names are
 * ever this large. */
static int write_pieces(rados_store *st, const char *name, const char *oid, const uint8_t *data,
                        size_t len, unsigned flags)
{
	if (!(flags & STORE_EXCL)) {
		int err = lib.rados_remove(st->io, oid);
		if (err < 0 && err != -ENOENT) return rados_fail(st, err, name, "replace");
	}
	store_writer *sw;
	int rc = rados_write_begin(&st->base, name, &sw);
	if (rc < 0) return rc;
	rados_writer *w = (rados_writer *)sw;
	for (size_t off = 0; rc == 0 && off < len; off += PIECE_LEN) {
		size_t n = len - off < PIECE_LEN ? len - off : PIECE_LEN;
		uint8_t *d = malloc(n);
		if (!d) {
			rc = ERR_OOM();
			break;
		}
		memcpy(d, data + off, n);
		rc = piece_send(w, d, n);
	}
	if (rc == 0) {
		reap_all(w);
		if (w->failed) rc = w->rc;
	}
	if (rc == CAIRN_EEXISTS && !w->created) {
		rc = error_set(CAIRN_EEXISTS, "%s: %s: exists already", st->addr, name);
		writer_free(w);
		return rc;
	}
	return writer_end(w, rc);
}

/* ---- locks ------------------------------------------------------------------ */

typedef struct rados_lock {
	store_lock base;
	rados_store *st;
	char name[160];   /* "locks/NAME" */
	char *oid;
	char cookie[33];
	uint64_t ttl_ms;
} rados_lock;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int lock_op(rados_lock *l, int renew)
{
	struct timeval d = {(time_t)(l->ttl_ms / 1000), (suseconds_t)(l->ttl_ms % 1000) * 1000};
	char host[128] = "", desc[200];
	gethostname(host, sizeof(host) - 1);
	snprintf(desc, sizeof(desc), "%s %ld", host, (long)getpid());
	return lib.rados_lock_exclusive(l->st->io, l->oid, LOCK_NAME, l->cookie, desc, &d,
	                            renew ? LIBRADOS_LOCK_FLAG_MUST_RENEW : 0);
}

/* Record our host and pid in the lock object (for EBUSY and for taking
 * over a dead local holder); the lock itself is the cls_lock. */
static void lock_note(rados_lock *l)
{
	char host[128] = "", body[200];
	gethostname(host, sizeof(host) - 1);
	int n = snprintf(body, sizeof(body), "%s %s %ld\n", l->cookie, host, (long)getpid());
	lib.rados_write_full(l->st->io, l->oid, body, (size_t)n);
}

typedef struct holder {
	char client[512], cookie[512], host[128];
	long pid;
	int known; /* cookie matches the note: host and pid are the holder's */
} holder;

/* Who holds the lock: 1 when someone does, 0 when nobody, < 0 on error. */
static int lock_holder(rados_lock *l, holder *h)
{
	char tag[64], clients[512], cookies[512], addrs[512];
	size_t tag_len = sizeof(tag), cl = sizeof(clients), ck = sizeof(cookies), ad = sizeof(addrs);
	int excl = 0;
	memset(h, 0, sizeof(*h));
	ssize_t n = lib.rados_list_lockers(l->st->io, l->oid, LOCK_NAME, &excl, tag, &tag_len, clients, &cl,
	                               cookies, &ck, addrs, &ad);
	if (n == -ENOENT) return 0;
	if (n < 0) return rados_fail(l->st, (int)n, l->name, "list lockers");
	if (n == 0) return 0;
	snprintf(h->client, sizeof(h->client), "%s", clients);
	snprintf(h->cookie, sizeof(h->cookie), "%s", cookies);
	char note[300] = "", ck2[64] = "";
	int r = lib.rados_read(l->st->io, l->oid, note, sizeof(note) - 1, 0);
	if (r > 0) {
		note[r] = 0;
		if (sscanf(note, "%63s %127s %ld", ck2, h->host, &h->pid) == 3 && strcmp(ck2, h->cookie) == 0)
			h->known = 1;
	}
	return 1;
}

static int holder_dead_here(const holder *h)
{
	char host[128] = "";
	gethostname(host, sizeof(host) - 1);
	return h->known && strcmp(host, h->host) == 0 && h->pid > 0 && kill((pid_t)h->pid, 0) < 0 &&
	       errno == ESRCH;
}

static int rados_lock_acquire(store_lock **out, store *base, const char *name, uint64_t ttl_ms,
                              uint64_t wait_ms)
{
	rados_store *st = (rados_store *)base;
	uint8_t rnd[16];
	int rc;
	*out = NULL;
	rados_lock *l = calloc(1, sizeof(*l));
	if (!l) return ERR_OOM();
	l->base.st = base;
	l->st = st;
	l->ttl_ms = ttl_ms < 1000 ? 1000 : ttl_ms;
	snprintf(l->name, sizeof(l->name), "locks/%s", name);
	if ((rc = oid_of(st, l->name, &l->oid)) < 0) goto fail;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		rc = error_errno(CAIRN_EIO, errno, "lock %s: getrandom", name);
		goto fail;
	}
	for (int i = 0; i < 16; i++) snprintf(l->cookie + 2 * i, 3, "%02x", rnd[i]);

	uint64_t deadline = now_ms() + wait_ms;
	for (;;) {
		int err = lock_op(l, 0);
		if (err == 0) {
			lock_note(l);
			*out = &l->base;
			return 0;
		}
		if (err != -EBUSY && err != -EEXIST) {
			rc = rados_fail(st, err, l->name, "lock");
			goto fail;
		}
		holder h;
		rc = lock_holder(l, &h);
		if (rc < 0) goto fail;
		if (rc == 1 && holder_dead_here(&h)) {
			/* only that holder's lock is broken (client and cookie name it) */
			lib.rados_break_lock(st->io, l->oid, LOCK_NAME, h.client, h.cookie);
			continue;
		}
		if (now_ms() >= deadline) {
			if (h.known)
				rc = error_set(CAIRN_EBUSY, "lock %s: held by process %ld on %s (%s)", name, h.pid,
				               h.host, st->addr);
			else
				rc = error_set(CAIRN_EBUSY, "lock %s: held by %s (%s)", name,
				               rc == 1 ? h.client : "another client", st->addr);
			goto fail;
		}
		struct timespec ts = {0, 25 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
fail:
	free(l->oid);
	free(l);
	return rc;
}

static int rados_lock_refresh(store_lock *base)
{
	rados_lock *l = (rados_lock *)base;
	/* MUST_RENEW: only while our lock stands; expired (cls_lock drops expired
	 * lockers) or taken over means lost */
	int err = lock_op(l, 1);
	if (err == -EBUSY || err == -EEXIST || err == -ENOENT)
		return error_set(CAIRN_EBUSY, "%s: %s: lost to another process", l->st->addr, l->name);
	if (err < 0) return rados_fail(l->st, err, l->name, "refresh lock");
	return 0;
}

static void rados_lock_release(store_lock *base)
{
	rados_lock *l = (rados_lock *)base;
	/* cls_lock unlocks only our own (client, cookie): never another's lock */
	lib.rados_unlock(l->st->io, l->oid, LOCK_NAME, l->cookie);
	free(l->oid);
	free(l);
}

static const store_ops rados_ops = {
	.version = CAIRN_BACKEND_OPS_VERSION,
	.kind = "rados",
	.pack_target = RADOS_PACK_TARGET,
	.free = rados_free_store,
	.put = rados_put,
	.get = rados_get,
	.get_range = rados_get_range,
	.get_upto = rados_get_upto,
	.size = rados_size,
	.list = rados_list,
	.del = rados_del,
	.write_begin = rados_write_begin,
	.write_append = rados_write_append,
	.write_commit = rados_write_commit,
	.write_abort = rados_write_abort,
	.lock_acquire = rados_lock_acquire,
	.lock_refresh = rados_lock_refresh,
	.lock_release = rados_lock_release,
};
