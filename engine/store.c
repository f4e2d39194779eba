/* The storage interface's front: picks the backend from the repository's
 * address and dispatches every call to it. It knows nothing of the
 * repository's layout: caching by kind of object is readcache.h's wrapper,
 * which the repository puts in front. */
#include "store_backend.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"
#include "format.h"

static int open_address(store **out, const char *address, int create, const cairn_repo_open_options *o)
{
	static const cairn_repo_open_options defaults = CAIRN_REPO_OPEN_OPTIONS_INIT;
	*out = NULL;
	if (!o) o = &defaults;
	if (strncmp(address, "dir:", 4) == 0) return store_dir_open(out, address + 4, create);
#ifdef CAIRN_HAVE_RADOS
	if (strncmp(address, "rados:", 6) == 0) return store_rados_open(out, address + 6, create, o);
#endif
#ifdef CAIRN_HAVE_S3
	if (strncmp(address, "s3://", 5) == 0) return store_s3_open(out, address + 5, create, o);
#endif
	if (strncmp(address, "rados:", 6) == 0 || strncmp(address, "s3://", 5) == 0)
		return error_set(CAIRN_EUSAGE, "repository %s: this build of cairn has no %s backend",
		                 address, address[0] == 'r' ? "rados" : "s3");
	return store_dir_open(out, address, create);
}

int store_open(store **out, const char *address, const cairn_repo_open_options *o)
{
	return open_address(out, address, 0, o);
}

int store_create(store **out, const char *address, const cairn_repo_open_options *o)
{
	return open_address(out, address, 1, o);
}

void store_free(store *st)
{
	if (st) st->ops->free(st);
}

int store_round_trips(const store *st) { return st->ops->get_upto != NULL; }
int store_reads_direct(const store *st) { return st->ops->get_range_direct != NULL; }

const char *store_kind(const store *st) { return st->ops->kind; }

size_t store_pack_target(const store *st)
{
	return st->ops->pack_target ? st->ops->pack_target : PACK_TARGET_LEN;
}

int store_put(store *st, const char *name, const void *data, size_t len, unsigned flags)
{
	return st->ops->put(st, name, data, len, flags);
}

int store_get(store *st, const char *name, size_t max, uint8_t **out, size_t *len)
{
	return st->ops->get(st, name, max, out, len);
}

int store_get_range(store *st, const char *name, uint64_t off, void *out, size_t len)
{
	return st->ops->get_range(st, name, off, out, len);
}

void store_uncache(store *st, const char *name, uint64_t off, size_t len)
{
	if (st->ops->uncache) st->ops->uncache(st, name, off, len);
}

void store_advise(store *st, const char *name, uint64_t off, size_t len)
{
	/* an ops table of version 1 ends before advise */
	if (st->ops->version < 2 || !st->ops->advise) return;
	if (st->ops->advise(st, name, off, len) < 0) error_clear(); /* only a hint */
}

int store_get_range_uncached(store *st, const char *name, uint64_t off, size_t len, buf *b, size_t *at)
{
	if (st->ops->get_range_direct) {
		/* room for the blocks around the range, at a block boundary */
		size_t room = len + 2 * CAIRN_BACKEND_DIRECT_ALIGN;
		if (buf_reserve(b, room + CAIRN_BACKEND_DIRECT_ALIGN) < 0) return ERR_OOM();
		size_t pad = (CAIRN_BACKEND_DIRECT_ALIGN - (uintptr_t)b->data % CAIRN_BACKEND_DIRECT_ALIGN) %
		             CAIRN_BACKEND_DIRECT_ALIGN;
		int rc = st->ops->get_range_direct(st, name, off, b->data + pad, len);
		*at = pad + (size_t)(off % CAIRN_BACKEND_DIRECT_ALIGN);
		if (rc <= 0) return rc;
	}
	*at = 0;
	if (buf_reserve(b, len ? len : 1) < 0) return ERR_OOM();
	int rc = store_get_range(st, name, off, b->data, len);
	if (rc == 0) store_uncache(st, name, off, len);
	return rc;
}

static void *ahead_run(void *arg)
{
	store_ahead *a = arg;
	a->rc = store_get_range_uncached(a->st, a->name, a->off, a->len, a->b, &a->at);
	if (a->rc < 0) snprintf(a->msg, sizeof(a->msg), "%s", cairn_error_last());
	error_clear();
	return NULL;
}

int store_ahead_start(store_ahead *a, store *st, const char *name, uint64_t off, size_t len, buf *b)
{
	if (a->running || !store_reads_direct(st) || strlen(name) >= sizeof(a->name)) return 0;
	a->st = st;
	a->b = b;
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->off = off;
	a->len = len;
	a->rc = 0;
	a->msg[0] = 0;
	if (pthread_create(&a->thread, NULL, ahead_run, a) != 0) return 0;
	a->running = 1;
	return 1;
}

int store_ahead_finish(store_ahead *a, const char *name, uint64_t off, size_t len, size_t *at)
{
	if (!a->running) return 0;
	pthread_join(a->thread, NULL);
	a->running = 0;
	if (!name || strcmp(name, a->name) != 0 || off != a->off || len != a->len) return 0;
	if (a->rc < 0) return error_set(a->rc, "%s", a->msg);
	*at = a->at;
	return 1;
}

int store_get_upto(store *st, const char *name, uint64_t off, void *out, size_t len, size_t *got)
{
	if (!st->ops->get_upto) {
		int rc = st->ops->get_range(st, name, off, out, len);
		*got = rc < 0 ? 0 : len;
		return rc;
	}
	return st->ops->get_upto(st, name, off, out, len, got);
}

int store_get_into(store *st, const char *name, size_t max, buf *b)
{
	uint64_t size;
	b->len = 0;
	int rc = store_size(st, name, &size);
	if (rc < 0) return rc;
	if (size > max) return error_set(CAIRN_ECORRUPT, "%s: too large (%llu bytes)", name,
	                                 (unsigned long long)size);
	if (buf_reserve(b, (size_t)size ? (size_t)size : 1) < 0) return ERR_OOM();
	if ((rc = store_get_range(st, name, 0, b->data, (size_t)size)) < 0) return rc;
	b->len = (size_t)size;
	return 0;
}

int store_size(store *st, const char *name, uint64_t *size) { return st->ops->size(st, name, size); }

int store_list(store *st, const char *dir, int (*cb)(const char *name, void *payload), void *payload)
{
	return st->ops->list(st, dir, cb, payload);
}

int store_delete(store *st, const char *name) { return st->ops->del(st, name); }

int store_unfinished_list(store *st, store_unfinished_cb cb, void *payload)
{
	return st->ops->unfinished_list ? st->ops->unfinished_list(st, cb, payload) : 0;
}

int store_unfinished_abort(store *st, const char *name, const char *id)
{
	if (!st->ops->unfinished_abort)
		return error_set(CAIRN_EUSAGE, "%s: %s: this storage has no unfinished writes", st->ops->kind, name);
	return st->ops->unfinished_abort(st, name, id);
}

/* ---- streamed writes: the backend's, or a buffer put whole at commit ---- */

typedef struct buffered_writer {
	store_writer base;
	char *name;
	buf b;
} buffered_writer;

int store_write_begin(store *st, const char *name, store_writer **out)
{
	*out = NULL;
	if (st->ops->write_begin) return st->ops->write_begin(st, name, out);
	buffered_writer *w = calloc(1, sizeof(*w));
	if (!w || !(w->name = strdup(name))) {
		free(w);
		return ERR_OOM();
	}
	w->base.st = st;
	*out = &w->base;
	return 0;
}

int store_write_append(store_writer *w, const void *data, size_t len)
{
	if (w->st->ops->write_append) return w->st->ops->write_append(w, data, len);
	buffered_writer *bw = (buffered_writer *)w;
	buf_put(&bw->b, data, len);
	return bw->b.oom ? ERR_OOM() : 0;
}

static void buffered_free(buffered_writer *bw)
{
	buf_free(&bw->b);
	free(bw->name);
	free(bw);
}

int store_write_commit(store_writer *w, unsigned flags)
{
	if (w->st->ops->write_commit) return w->st->ops->write_commit(w, flags);
	buffered_writer *bw = (buffered_writer *)w;
	int rc = store_put(w->st, bw->name, bw->b.data, bw->b.len, flags);
	buffered_free(bw);
	return rc;
}

void store_write_abort(store_writer *w)
{
	if (!w) return;
	if (w->st->ops->write_abort) {
		w->st->ops->write_abort(w);
		return;
	}
	buffered_free((buffered_writer *)w);
}

/* ---- locks ---- */

int store_lock_acquire(store_lock **out, store *st, const char *name, uint64_t ttl_ms,
                       uint64_t wait_ms)
{
	return st->ops->lock_acquire(out, st, name, ttl_ms, wait_ms);
}

int store_lock_refresh(store_lock *l) { return l->st->ops->lock_refresh(l); }

void store_lock_release(store_lock *l)
{
	if (l) l->st->ops->lock_release(l);
}
