/* RADOS (internal.h): objects (one atomic op each, or pieces in flight for
 * the rare object larger than an op), listings, deletes, streamed writes. */
#include "internal.h"

/* ---- objects -------------------------------------------------------------- */

static int write_pieces(rados_store *st, const char *name, const char *oid, const uint8_t *data,
                        size_t len, unsigned flags);

int rados_put(store *base, const char *name, const void *data, size_t len, unsigned flags)
{
	rados_store *st = (rados_store *)base;
	char *oid;
	int rc = rados_oid_of(st, name, &oid);
	if (rc < 0) return rc;
	if (len > RADOS_OP_MAX) {
		rc = write_pieces(st, name, oid, data, len, flags);
		free(oid);
		return rc;
	}
	rados_write_op_t op = rados_lib.rados_create_write_op();
	if (!op) {
		free(oid);
		return ERR_OOM();
	}
	if (flags & STORE_EXCL) rados_lib.rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
	/* still one op, but extents of at most a piece: librados copies each
	 * into a buffer of its own, and 4 MiB ones come from malloc's reused
	 * memory where a 32 MiB one gets fresh pages (tools/main.c) */
	const char *p = data;
	size_t first = len < PIECE_LEN ? len : PIECE_LEN;
	rados_lib.rados_write_op_write_full(op, p, first);
	for (size_t off = first; off < len; off += PIECE_LEN)
		rados_lib.rados_write_op_write(op, p + off, len - off < PIECE_LEN ? len - off : PIECE_LEN, off);
	int err = rados_lib.rados_write_op_operate(op, st->io, oid, NULL, 0);
	rados_lib.rados_release_write_op(op);
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
		int r = rados_lib.rados_read(st->io, oid, (char *)out + *got, n, off + *got);
		if (r < 0) return rados_fail(st, r, name, "read");
		*got += (size_t)r;
		if ((size_t)r < n) break; /* end of object */
	}
	return 0;
}

int rados_get(store *base, const char *name, size_t max, uint8_t **out, size_t *len)
{
	rados_store *st = (rados_store *)base;
	char *oid;
	uint8_t *data = NULL;
	*out = NULL;
	*len = 0;
	int rc = rados_oid_of(st, name, &oid);
	if (rc < 0) return rc;
	/* A non-exclusive put may replace the object between stat and read: read
	 * one byte more than its size and retry if the size moved. */
	for (int attempt = 0; attempt < 5; attempt++) {
		uint64_t size;
		time_t mtime;
		int err = rados_lib.rados_stat(st->io, oid, &size, &mtime);
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
int rados_get_upto(store *base, const char *name, uint64_t off, void *out, size_t len, size_t *got)
{
	rados_store *st = (rados_store *)base;
	char *oid;
	*got = 0;
	int rc = rados_oid_of(st, name, &oid);
	if (rc < 0) return rc;
	rc = read_at(st, name, oid, off, out, len, got);
	if (rc == CAIRN_ENOTFOUND) rc = error_set(CAIRN_ECORRUPT, "%s: %s: missing", st->addr, name);
	free(oid);
	return rc;
}

int rados_get_range(store *base, const char *name, uint64_t off, void *out, size_t len)
{
	size_t got;
	int rc = rados_get_upto(base, name, off, out, len, &got);
	if (rc == 0 && got < len)
		rc = error_set(CAIRN_ECORRUPT, "%s: %s: short: %zu of %zu bytes at offset %llu",
		               ((rados_store *)base)->addr, name, got, len, (unsigned long long)off);
	return rc;
}

int rados_size(store *base, const char *name, uint64_t *size)
{
	rados_store *st = (rados_store *)base;
	char *oid;
	time_t mtime;
	int rc = rados_oid_of(st, name, &oid);
	if (rc < 0) return rc;
	int err = rados_lib.rados_stat(st->io, oid, size, &mtime);
	if (err == -ENOENT) rc = error_set(CAIRN_ENOTFOUND, "%s: %s: not found", st->addr, name);
	else if (err < 0) rc = rados_fail(st, err, name, "stat");
	free(oid);
	return rc;
}

/* The names are collected first and the callbacks run after the listing is
 * closed: a callback may delete objects (gc) without disturbing the walk. */
int rados_list(store *base, const char *dir, int (*cb)(const char *name, void *payload),
                      void *payload)
{
	rados_store *st = (rados_store *)base;
	rados_list_ctx_t ctx = NULL;
	char *want = NULL, **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	if (asprintf(&want, "%s%s/", st->prefix, dir) < 0) return ERR_OOM();
	size_t want_len = strlen(want);
	int err = rados_lib.rados_nobjects_list_open(st->io, &ctx);
	if (err < 0) {
		rc = rados_fail(st, err, dir, "list");
		ctx = NULL;
		goto done;
	}
	for (;;) {
		const char *entry, *key, *nspace;
		err = rados_lib.rados_nobjects_list_next(ctx, &entry, &key, &nspace);
		if (err == -ENOENT) break;
		if (err < 0) {
			rc = rados_fail(st, err, dir, "list");
			goto done;
		}
		if (strncmp(entry, want, want_len) != 0 || entry[want_len] == 0) continue;
		char **v = vec_grow(names, &cap, n + 1, sizeof(*v));
		if (!v) {
			rc = ERR_OOM();
			goto done;
		}
		names = v;
		if (!(names[n] = strdup(entry + st->prefix_len))) {
			rc = ERR_OOM();
			goto done;
		}
		n++;
	}
	rados_lib.rados_nobjects_list_close(ctx);
	ctx = NULL;
	for (size_t i = 0; i < n && rc == 0; i++) rc = cb(names[i], payload);
done:
	if (ctx) rados_lib.rados_nobjects_list_close(ctx);
	for (size_t i = 0; i < n; i++) free(names[i]);
	free(names);
	free(want);
	return rc;
}

int rados_del(store *base, const char *name)
{
	rados_store *st = (rados_store *)base;
	char *oid;
	int rc = rados_oid_of(st, name, &oid);
	if (rc < 0) return rc;
	int err = rados_lib.rados_remove(st->io, oid);
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
	rados_lib.rados_aio_wait_for_complete(p->c);
	int err = rados_lib.rados_aio_get_return_value(p->c);
	rados_lib.rados_aio_release(p->c);
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
		rados_write_op_t op = rados_lib.rados_create_write_op();
		if (!op) {
			free(data);
			return ERR_OOM();
		}
		rados_lib.rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
		rados_lib.rados_write_op_write(op, (const char *)data, len, 0);
		int err = rados_lib.rados_write_op_operate(op, w->st->io, w->oid, NULL, 0);
		rados_lib.rados_release_write_op(op);
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
	int err = rados_lib.rados_aio_create_completion(NULL, NULL, NULL, &p->c);
	if (err < 0) {
		free(data);
		return ERR_OOM();
	}
	p->data = data;
	err = rados_lib.rados_aio_write(w->st->io, w->oid, p->c, (const char *)data, len, w->sent);
	if (err < 0) {
		rados_lib.rados_aio_release(p->c);
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

int rados_write_begin(store *base, const char *name, store_writer **out)
{
	rados_store *st = (rados_store *)base;
	rados_writer *w = calloc(1, sizeof(*w));
	if (!w) return ERR_OOM();
	w->base.st = base;
	w->st = st;
	int rc = rados_oid_of(st, name, &w->oid);
	if (rc < 0 || !(w->name = strdup(name))) {
		free(w->oid);
		free(w);
		return rc < 0 ? rc : ERR_OOM();
	}
	*out = &w->base;
	return 0;
}

int rados_write_append(store_writer *base, const void *data, size_t len)
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
	if (w->created) rados_lib.rados_remove(w->st->io, w->oid);
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

int rados_write_commit(store_writer *base, unsigned flags)
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

void rados_write_abort(store_writer *base)
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
		int err = rados_lib.rados_remove(st->io, oid);
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

