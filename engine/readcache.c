/* The read caches of remote stores (readcache.h). Each is a short list,
 * most recently used first: at 48 blocks, or a few dozen segments, a scan
 * costs less than a table. */
#include "readcache.h"

#include "store_backend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "readahead.h"

typedef struct block {
	struct block *next;
	char *name;
	uint64_t idx;
	uint8_t *data;
	size_t len; /* < BLOCK_LEN: the object ends in this block */
} block;

struct block_cache {
	pthread_mutex_t lock;
	block *head;
	uint64_t bytes;
};

block_cache *block_cache_new(void)
{
	block_cache *c = calloc(1, sizeof(*c));
	if (c) pthread_mutex_init(&c->lock, NULL);
	return c;
}

static void block_free(block *b)
{
	free(b->name);
	free(b->data);
	free(b);
}

void block_cache_free(block_cache *c)
{
	if (!c) return;
	while (c->head) {
		block *b = c->head;
		c->head = b->next;
		block_free(b);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* From block idx of name, if cached: its bytes from "from" on into out (at
 * most want), how many in *got, the block's length in *blen. */
static int cached(block_cache *c, const char *name, uint64_t idx, size_t from, uint8_t *out, size_t want,
                  size_t *got, size_t *blen)
{
	int hit = 0;
	pthread_mutex_lock(&c->lock);
	for (block **pp = &c->head, *b; (b = *pp) != NULL; pp = &b->next) {
		if (b->idx != idx || strcmp(b->name, name) != 0) continue;
		size_t k = from < b->len ? b->len - from : 0;
		if (k > want) k = want;
		memcpy(out, b->data + from, k);
		*got = k;
		*blen = b->len;
		*pp = b->next; /* to the front */
		b->next = c->head;
		c->head = b;
		hit = 1;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

static int fill(block_cache *c, store *st, block_fetch_fn fetch, const char *name, uint64_t idx)
{
	block *b = calloc(1, sizeof(*b));
	if (!b || !(b->name = strdup(name)) || !(b->data = malloc(BLOCK_LEN))) {
		if (b) block_free(b);
		return ERR_OOM();
	}
	b->idx = idx;
	int rc = fetch(st, name, idx * BLOCK_LEN, b->data, BLOCK_LEN, &b->len);
	if (rc < 0) {
		block_free(b);
		return rc;
	}
	pthread_mutex_lock(&c->lock);
	b->next = c->head;
	c->head = b;
	c->bytes += b->len;
	while (c->bytes > BLOCK_CACHE_BYTES && c->head->next) { /* drop the least recently used */
		block **pp = &c->head;
		while ((*pp)->next) pp = &(*pp)->next;
		c->bytes -= (*pp)->len;
		block_free(*pp);
		*pp = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int block_cache_read(block_cache *c, store *st, block_fetch_fn fetch, const char *name, uint64_t off,
                     void *out, size_t len)
{
	size_t done = 0;
	while (done < len) {
		uint64_t at = off + done, idx = at / BLOCK_LEN;
		size_t from = (size_t)(at % BLOCK_LEN), got = 0, blen = 0;
		if (!cached(c, name, idx, from, (uint8_t *)out + done, len - done, &got, &blen)) {
			int rc = fill(c, st, fetch, name, idx);
			if (rc < 0) return rc;
			continue; /* read it from the cache (fetched again if others evicted it at once) */
		}
		done += got;
		if (done < len && from + got >= blen && blen < BLOCK_LEN) return 1; /* past the end */
	}
	return 0;
}

void block_cache_drop(block_cache *c, const char *name)
{
	pthread_mutex_lock(&c->lock);
	for (block **pp = &c->head, *b; (b = *pp) != NULL;) {
		if (strcmp(b->name, name) == 0) {
			*pp = b->next;
			c->bytes -= b->len;
			block_free(b);
		} else {
			pp = &b->next;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- index segments, whole ---- */

typedef struct whole {
	struct whole *next;
	char *name;
	uint8_t *data; /* NULL: too large to keep (read by range) */
	size_t len;
} whole;

struct whole_cache {
	pthread_mutex_t lock;
	whole *head;
	uint64_t bytes;
};

whole_cache *whole_cache_new(void)
{
	whole_cache *c = calloc(1, sizeof(*c));
	if (c) pthread_mutex_init(&c->lock, NULL);
	return c;
}

static void whole_free(whole *w)
{
	free(w->name);
	free(w->data);
	free(w);
}

void whole_cache_free(whole_cache *c)
{
	if (!c) return;
	while (c->head) {
		whole *w = c->head;
		c->head = w->next;
		whole_free(w);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* 0 not cached, 1 copied, 2 cached as too large or the range is past its end */
static int whole_lookup(whole_cache *c, const char *name, uint64_t off, void *out, size_t len)
{
	int rc = 0;
	pthread_mutex_lock(&c->lock);
	for (whole **pp = &c->head, *w; (w = *pp) != NULL; pp = &w->next) {
		if (strcmp(w->name, name) != 0) continue;
		if (!w->data || off > w->len || len > w->len - off) {
			rc = 2;
		} else {
			memcpy(out, w->data + off, len);
			rc = 1;
		}
		*pp = w->next; /* to the front */
		w->next = c->head;
		c->head = w;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Read name whole (or note that it is too large) and keep it; 1 when it
 * is missing, else 0 or an error. */
static int whole_fill(whole_cache *c, store *st, const char *name)
{
	uint64_t size;
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = store_size(st, name, &size);
	if (rc == 0 && size <= WHOLE_CACHE_ONE) rc = store_get(st, name, WHOLE_CACHE_ONE, &data, &len);
	else if (rc == 0) len = (size_t)size;
	if (rc == CAIRN_ENOTFOUND) {
		error_clear();
		return 1;
	}
	if (rc < 0) return rc;
	whole *w = calloc(1, sizeof(*w));
	if (!w || !(w->name = strdup(name))) {
		free(w);
		free(data);
		return ERR_OOM();
	}
	w->data = data;
	w->len = len;
	pthread_mutex_lock(&c->lock);
	w->next = c->head;
	c->head = w;
	if (data) c->bytes += len;
	while (c->bytes > WHOLE_CACHE_BYTES) { /* drop the least recently used, never the new one */
		whole **pp = &c->head->next;
		if (!*pp) break;
		while ((*pp)->next) pp = &(*pp)->next;
		if ((*pp)->data) c->bytes -= (*pp)->len;
		whole_free(*pp);
		*pp = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int whole_cache_read(whole_cache *c, store *st, const char *name, uint64_t off, void *out, size_t len)
{
	int rc = whole_lookup(c, name, off, out, len);
	if (rc == 0) {
		if ((rc = whole_fill(c, st, name)) != 0) return rc;
		rc = whole_lookup(c, name, off, out, len);
	}
	return rc == 1 ? 0 : 1; /* not found again (evicted at once), too large or past the end: read directly */
}

void whole_cache_drop(whole_cache *c, const char *name)
{
	pthread_mutex_lock(&c->lock);
	for (whole **pp = &c->head, *w; (w = *pp) != NULL; pp = &w->next) {
		if (strcmp(w->name, name) != 0) continue;
		*pp = w->next;
		if (w->data) c->bytes -= w->len;
		whole_free(w);
		break;
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- the wrapping backend ------------------------------------------------ */

typedef struct cached_store {
	store base;
	store_ops ops; /* the template with the inner backend's kind and pack size */
	store *inner;
	readcache_classify_fn classify;
	block_cache *blocks;
	whole_cache *segments;
	readahead *ahead; /* packs' ranges a reader advised */
} cached_store;

static cached_store *cs_of(store *st) { return (cached_store *)st; }

static void cs_free(store *st)
{
	cached_store *c = cs_of(st);
	readahead_free(c->ahead); /* its threads read from inner */
	block_cache_free(c->blocks);
	whole_cache_free(c->segments);
	store_free(c->inner);
	free(c);
}

static int cs_get_range(store *st, const char *name, uint64_t off, void *out, size_t len)
{
	cached_store *c = cs_of(st);
	/* A read past the object's end goes to the backend, which names it. */
	switch (len ? c->classify(name) : READCACHE_NONE) {
	case READCACHE_BLOCKS: {
		int rc = readahead_read(c->ahead, name, off, out, len);
		if (rc != 1) return rc;
		if (len < BLOCK_LEN) {
			rc = block_cache_read(c->blocks, c->inner, store_get_upto, name, off, out, len);
			if (rc != 1) return rc;
		}
		break;
	}
	case READCACHE_WHOLE: {
		int rc = whole_cache_read(c->segments, c->inner, name, off, out, len);
		if (rc != 1) return rc;
		break;
	}
	default:
		break;
	}
	return store_get_range(c->inner, name, off, out, len);
}

static int cs_del(store *st, const char *name)
{
	cached_store *c = cs_of(st);
	int rc = store_delete(c->inner, name);
	readahead_drop(c->ahead, name);
	block_cache_drop(c->blocks, name);
	whole_cache_drop(c->segments, name);
	return rc;
}

static int cs_put(store *st, const char *name, const void *data, size_t len, unsigned flags)
{
	return store_put(cs_of(st)->inner, name, data, len, flags);
}

static int cs_get(store *st, const char *name, size_t max, uint8_t **out, size_t *len)
{
	return store_get(cs_of(st)->inner, name, max, out, len);
}

static int cs_get_upto(store *st, const char *name, uint64_t off, void *out, size_t len, size_t *got)
{
	return store_get_upto(cs_of(st)->inner, name, off, out, len, got);
}

static int cs_size(store *st, const char *name, uint64_t *size) { return store_size(cs_of(st)->inner, name, size); }

static void cs_uncache(store *st, const char *name, uint64_t off, size_t len)
{
	store_uncache(cs_of(st)->inner, name, off, len);
}

/* A pack's ranges fetched ahead, several at once (readahead.h); other
 * objects are read whole or through the block cache. */
static int cs_advise(store *st, const char *name, uint64_t off, size_t len)
{
	cached_store *c = cs_of(st);
	if (len && c->classify(name) == READCACHE_BLOCKS) readahead_advise(c->ahead, name, off, len);
	return 0;
}

static int cs_list(store *st, const char *dir, int (*cb)(const char *name, void *payload), void *payload)
{
	return store_list(cs_of(st)->inner, dir, cb, payload);
}

/* Writers and locks are the inner backend's own: their later calls go
 * straight to it. */
static int cs_write_begin(store *st, const char *name, store_writer **out)
{
	return store_write_begin(cs_of(st)->inner, name, out);
}

static int cs_lock_acquire(store_lock **out, store *st, const char *name, uint64_t ttl_ms, uint64_t wait_ms)
{
	return store_lock_acquire(out, cs_of(st)->inner, name, ttl_ms, wait_ms);
}

static int cs_unfinished_list(store *st, store_unfinished_cb cb, void *payload)
{
	return store_unfinished_list(cs_of(st)->inner, cb, payload);
}

static int cs_unfinished_abort(store *st, const char *name, const char *id)
{
	return store_unfinished_abort(cs_of(st)->inner, name, id);
}

static const store_ops cached_ops = {
	.version = CAIRN_BACKEND_OPS_VERSION,
	.free = cs_free,
	.put = cs_put,
	.get = cs_get,
	.get_range = cs_get_range,
	.get_upto = cs_get_upto,
	.uncache = cs_uncache,
	.size = cs_size,
	.list = cs_list,
	.del = cs_del,
	.write_begin = cs_write_begin,
	.lock_acquire = cs_lock_acquire,
	.unfinished_list = cs_unfinished_list,
	.unfinished_abort = cs_unfinished_abort,
	.advise = cs_advise,
};

int readcache_wrap(store **out, store *inner, readcache_classify_fn classify)
{
	*out = NULL;
	cached_store *c = calloc(1, sizeof(*c));
	if (!c || !(c->blocks = block_cache_new()) || !(c->segments = whole_cache_new()) ||
	    !(c->ahead = readahead_new(inner))) {
		if (c) {
			block_cache_free(c->blocks);
			whole_cache_free(c->segments);
		}
		free(c);
		store_free(inner);
		return ERR_OOM();
	}
	c->ops = cached_ops;
	c->ops.kind = inner->ops->kind;
	c->ops.pack_target = store_pack_target(inner);
	c->base.ops = &c->ops;
	c->inner = inner;
	c->classify = classify;
	*out = &c->base;
	return 0;
}
