/* Every index segment of a repository (index.h): the set a lookup probes,
 * whole-repository loads and compaction. */
#define ERROR_CLASS "index"
#include "index.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"

/* ---- every segment of a repository ---------------------------------------- */

#define SET_RETRIES 20

typedef struct seg_list {
	index_segment **seg;
	size_t n, cap;
} seg_list;

struct index_set {
	store *st;
	pthread_rwlock_t lock;
	seg_list l;
	uint64_t gen; /* bumped by every reload */
	int stale;    /* segments were added: list them before the next lookup */
	int cached;   /* index_set_cache was called: segments keep blocks */
	atomic_size_t cache_left; /* bytes of blocks they may still keep */
};

struct set_list {
	index_set *set;
	seg_list *l;
	int vanished;
};

static int set_visit(const char *name, void *payload)
{
	struct set_list *sl = payload;
	seg_list *l = sl->l;
	index_segment *s;
	int rc = index_segment_open(sl->set->st, name, &s);
	if (rc == CAIRN_ENOTFOUND) { /* replaced: its successor may not be listed */
		sl->vanished = 1;
		return 1;
	}
	if (rc < 0) return rc;
	index_segment **p = vec_grow(l->seg, &l->cap, l->n + 1, sizeof(*p));
	if (!p) {
		index_segment_close(s);
		return ERR_OOM();
	}
	l->seg = p;
	l->seg[l->n++] = s;
	if (sl->set->cached) index_segment_cache(s, &sl->set->cache_left);
	return 0;
}

static void list_free(seg_list *l)
{
	for (size_t i = 0; i < l->n; i++) index_segment_close(l->seg[i]);
	free(l->seg);
	memset(l, 0, sizeof(*l));
}

/* List and open every segment; again while one vanishes between the
 * listing and its open. The set changes only on success. Caller holds the
 * write lock (or owns the set). */
static int set_load(index_set *set)
{
	for (int tries = 0;; tries++) {
		seg_list l = {NULL, 0, 0};
		struct set_list sl = {set, &l, 0};
		int rc = store_list(set->st, "index", set_visit, &sl);
		if (rc >= 0 && !sl.vanished) {
			list_free(&set->l);
			set->l = l;
			return 0;
		}
		list_free(&l);
		if (rc < 0) return rc;
		if (tries == SET_RETRIES) return error_set(CAIRN_EBUSY, "index: kept changing while being read");
	}
}

int index_set_open(store *st, index_set **out)
{
	*out = NULL;
	index_set *set = calloc(1, sizeof(*set));
	if (!set) return ERR_OOM();
	set->st = st;
	pthread_rwlock_init(&set->lock, NULL);
	int rc = set_load(set);
	if (rc < 0) {
		index_set_free(set);
		return rc;
	}
	*out = set;
	return 0;
}

void index_set_free(index_set *set)
{
	if (!set) return;
	list_free(&set->l);
	pthread_rwlock_destroy(&set->lock);
	free(set);
}

size_t index_set_segments(index_set *set)
{
	pthread_rwlock_rdlock(&set->lock);
	size_t n = set->l.n;
	pthread_rwlock_unlock(&set->lock);
	return n;
}

void index_set_stale(index_set *set)
{
	pthread_rwlock_wrlock(&set->lock);
	set->stale = 1;
	pthread_rwlock_unlock(&set->lock);
}

void index_set_cache(index_set *set, size_t bytes)
{
	pthread_rwlock_wrlock(&set->lock);
	if (set->cached) { /* the first budget stays */
		pthread_rwlock_unlock(&set->lock);
		return;
	}
	atomic_init(&set->cache_left, bytes);
	set->cached = 1;
	for (size_t i = 0; i < set->l.n; i++) index_segment_cache(set->l.seg[i], &set->cache_left);
	pthread_rwlock_unlock(&set->lock);
}

int index_set_find(index_set *set, const oid *id, index_entry *out)
{
	for (int tries = 0;; tries++) {
		int rc = 0;
		pthread_rwlock_rdlock(&set->lock);
		uint64_t gen = set->gen;
		int stale = set->stale;
		for (size_t i = 0; i < set->l.n && rc == 0 && !stale; i++)
			rc = index_segment_find(set->l.seg[i], id, out);
		pthread_rwlock_unlock(&set->lock);
		if ((rc != CAIRN_ENOTFOUND && !stale) || tries == SET_RETRIES) return rc;
		/* a segment went (its replacement was written before) or came: list again */
		rc = 0;
		pthread_rwlock_wrlock(&set->lock);
		if (set->gen == gen) {
			rc = set_load(set);
			if (rc == 0) set->stale = 0;
			set->gen++;
		}
		pthread_rwlock_unlock(&set->lock);
		if (rc < 0) return rc;
	}
}

/* ---- whole-repository loads and compaction ------------------------------- */

#define SEGMENT_MAX (1024u * 1024u * 1024u)

struct load_all {
	store *st;
	chunk_index *ix;
	int vanished;
};

static int load_visit(const char *name, void *payload)
{
	struct load_all *la = payload;
	uint8_t *data = NULL;
	size_t len, n = 0;
	index_entry *e = NULL;
	int rc = store_get(la->st, name, SEGMENT_MAX, &data, &len);
	if (rc == CAIRN_ENOTFOUND) { /* replaced: list again */
		la->vanished = 1;
		return 1;
	}
	if (rc == 0) rc = index_segment_decode(data, len, name, &e, &n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int r = index_insert(la->ix, &e[i]);
		if (r < 0) rc = r;
	}
	free(e);
	free(data);
	return rc;
}

int index_load_all(store *st, chunk_index *ix)
{
	/* entries of a segment read before one vanished stay: they were in the
	 * index, and what replaced it holds them too */
	for (int tries = 0; tries <= SET_RETRIES; tries++) {
		struct load_all la = {st, ix, 0};
		int rc = store_list(st, "index", load_visit, &la);
		if (rc < 0 || !la.vanished) return rc;
	}
	return error_set(CAIRN_EBUSY, "index: kept changing while being read");
}

typedef struct seg_size {
	char *name;
	uint64_t size;
} seg_size;

struct size_list {
	store *st;
	seg_size *v;
	size_t n, cap;
};

static int size_visit(const char *name, void *payload)
{
	struct size_list *sl = payload;
	uint64_t size;
	int rc = store_size(sl->st, name, &size);
	if (rc == CAIRN_ENOTFOUND) return 0;
	if (rc < 0) return rc;
	seg_size *p = vec_grow(sl->v, &sl->cap, sl->n + 1, sizeof(*p));
	if (!p) return ERR_OOM();
	sl->v = p;
	if (!(sl->v[sl->n].name = strdup(name))) return ERR_OOM();
	sl->v[sl->n++].size = size;
	return 0;
}

static int cmp_size(const void *a, const void *b)
{
	const seg_size *x = a, *y = b;
	return x->size < y->size ? -1 : x->size > y->size;
}

int index_compact(store *st, size_t max_segments, uint64_t max_bytes)
{
	struct size_list sl = {st, NULL, 0, 0};
	index_entry *all = NULL;
	size_t nall = 0, capall = 0, k = 0;
	uint8_t *data = NULL;
	int rc = store_list(st, "index", size_visit, &sl);
	if (rc < 0 || sl.n <= max_segments) goto done;
	qsort(sl.v, sl.n, sizeof(*sl.v), cmp_size);
	/* the smallest ones, as many as fit max_bytes */
	uint64_t total = 0;
	while (k < sl.n && total + sl.v[k].size <= max_bytes) total += sl.v[k++].size;
	if (k < 2) {
		k = 0;
		goto done;
	}
	for (size_t i = 0; i < k; i++) {
		index_entry *e = NULL;
		size_t len, n = 0;
		rc = store_get(st, sl.v[i].name, SEGMENT_MAX, &data, &len);
		if (rc == CAIRN_ENOTFOUND) { /* gone already: nothing of it to carry */
			rc = 0;
			continue;
		}
		if (rc == 0) rc = index_segment_decode(data, len, sl.v[i].name, &e, &n);
		free(data);
		data = NULL;
		if (rc == 0 && nall + n > capall) {
			size_t cap = capall ? capall : 1024;
			while (cap < nall + n) cap *= 2;
			index_entry *p = realloc(all, cap * sizeof(*p));
			if (p) {
				all = p;
				capall = cap;
			} else rc = ERR_OOM();
		}
		if (rc == 0 && n) memcpy(all + nall, e, n * sizeof(*e));
		nall += rc == 0 ? n : 0;
		free(e);
		if (rc < 0) goto done;
	}
	/* an id in two inputs (two takes stored it at once) is kept once */
	if (nall) qsort(all, nall, sizeof(*all), index_entry_cmp);
	size_t m = 0;
	for (size_t i = 0; i < nall; i++)
		if (m == 0 || index_entry_cmp(&all[m - 1], &all[i]) != 0) all[m++] = all[i];
	size_t len;
	uint8_t rnd[16];
	char name[64], hex[33];
	if ((rc = index_segment_encode(all, m, &data, &len)) < 0) goto done;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		rc = error_errno(CAIRN_EIO, errno, "index: getrandom");
		goto done;
	}
	hex_encode(hex, rnd, sizeof(rnd));
	snprintf(name, sizeof(name), "index/%s", hex);
	/* the merged segment is durable before any input goes */
	if ((rc = store_put(st, name, data, len, STORE_EXCL)) < 0) goto done;
	for (size_t i = 0; i < k && rc == 0; i++) {
		rc = store_delete(st, sl.v[i].name);
		if (rc == CAIRN_ENOTFOUND) rc = 0;
	}
done:
	for (size_t i = 0; i < sl.n; i++) free(sl.v[i].name);
	free(sl.v);
	free(all);
	free(data);
	return rc < 0 ? rc : (int)k;
}
