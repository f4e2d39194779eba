/* Repository: init, open, config, and the shared read paths. */
#include "repo.h"

#include <stddef.h>

#include "cairn/sys/backend.h"
#include "options.h"
#include "store_fault.h"

#include "readcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "format.h"
#include "io.h"
#include "pack.h"
#include "session.h"
#include "util.h"

#define CONFIG_MAX 4096
#define SEGMENT_MAX (1024u * 1024u * 1024u)
#define MANIFEST_MAX (16u * 1024u * 1024u)

void repo_pack_name(char out[64], const uint8_t pack_id[PACK_ID_LEN])
{
	char hex[2 * PACK_ID_LEN + 1];
	hex_encode(hex, pack_id, PACK_ID_LEN);
	snprintf(out, 64, "packs/%.2s/%s", hex, hex);
}

static const size_t open_options_sizes[] = {sizeof(cairn_repo_open_options)};

CAIRN_EXTERN int cairn_repo_open(cairn_repo **out, const char *path)
{
	return cairn_repo_open_ext(out, path, NULL);
}

CAIRN_EXTERN int cairn_repo_open_ext(cairn_repo **out, const char *path, const cairn_repo_open_options *opts)
{
	int rc;
	uint8_t *data = NULL;
	size_t len;
	cairn_repo_open_options o = CAIRN_REPO_OPEN_OPTIONS_INIT;
	*out = NULL;
	if ((rc = options_copy(&o, opts, open_options_sizes, 1, "repository open")) < 0) {
		if (opts && opts->backend && opts->backend->ops && opts->backend->ops->free)
			opts->backend->ops->free(opts->backend);
		return rc;
	}
	cairn_repo *r = calloc(1, sizeof(*r));
	if (!r) {
		if (o.backend) o.backend->ops->free(o.backend);
		return ERR_OOM();
	}
	pthread_mutex_init(&r->lock, NULL);
	r->path = strdup(path);
	r->settings.state_dir = strdup(o.state_dir && *o.state_dir ? o.state_dir : CAIRN_DEFAULT_STATE_DIR);
	r->settings.no_uring = o.no_uring;
	r->settings.no_prior_cuts = o.no_prior_cuts;
	r->settings.test_uring_always = o.test_uring_always;
	r->settings.test_no_xattrat = o.test_no_xattrat;
	if (!r->path || !r->settings.state_dir) {
		rc = ERR_OOM();
		if (o.backend) o.backend->ops->free(o.backend);
		goto fail;
	}
	if ((rc = repo_store_open(&r->st, path, &o)) < 0) goto fail;
	rc = store_get(r->st, "config", CONFIG_MAX, &data, &len);
	if (rc == CAIRN_ENOTFOUND) {
		rc = error_set(CAIRN_ENOTFOUND, "%s: not a cairn repository (no config)", path);
		goto fail;
	}
	if (rc < 0) goto fail;
	if ((rc = repo_config_decode(&r->cfg, data, len)) < 0) {
		error_prefix("repository %s", path);
		goto fail;
	}
	chunker_init(&r->chunker, r->cfg.secret, r->cfg.chunk_min, r->cfg.chunk_avg, r->cfg.chunk_max);
	/* the segments' fences only: lookups read a block at a time */
	if ((rc = index_new(&r->index)) < 0 || (rc = index_set_open(r->st, &r->segs)) < 0) goto fail;
	free(data);
	*out = r;
	return 0;
fail:
	free(data);
	cairn_repo_free(r);
	return rc;
}

void repo_session(cairn_repo *r)
{
	if (!r->session) gc_session_begin(r);
}

CAIRN_EXTERN void cairn_repo_free(cairn_repo *r)
{
	if (!r) return;
	gc_session_end(r);
	repo_prefetch_drop(r);
	index_free(r->index);
	index_set_free(r->segs);
	store_free(r->st);
	pthread_mutex_destroy(&r->lock);
	free(r->settings.state_dir);
	free(r->path);
	free(r);
}

int repo_index_lookup(cairn_repo *r, const oid *id, index_entry *out)
{
	pthread_mutex_lock(&r->lock);
	const index_entry *e = index_lookup(r->index, id);
	if (e) *out = *e;
	pthread_mutex_unlock(&r->lock);
	if (e) return 1;
	return r->segs ? index_set_find(r->segs, id, out) : 0;
}

void repo_index_cache(cairn_repo *r, size_t bytes)
{
	if (r->segs) index_set_cache(r->segs, bytes);
}

int repo_index_add(cairn_repo *r, const index_entry *e, size_t n)
{
	int rc = 0;
	if (r->segs) { /* listed again at the next lookup: no copy of the new entries in memory */
		index_set_stale(r->segs);
	} else {
		pthread_mutex_lock(&r->lock);
		for (size_t i = 0; i < n && rc == 0; i++)
			if (index_insert(r->index, &e[i]) < 0) rc = ERR_OOM();
		pthread_mutex_unlock(&r->lock);
	}
	if (rc < 0 || !r->segs || index_set_segments(r->segs) + 1 <= REPO_COMPACT_SEGMENTS) return rc;
	/* gc and fsck hold this lock while they run: a merge must not bring back
	 * an entry gc drops; if it is taken, gc compacts itself */
	store_lock *l;
	if (store_lock_acquire(&l, r->st, "gc", GC_LOCK_TTL_MS, 0) == 0) {
		index_compact(r->st, REPO_COMPACT_SEGMENTS, REPO_COMPACT_BYTES);
		store_lock_release(l);
	}
	error_clear();
	return 0;
}

int repo_read_blob(cairn_repo *r, const oid *id, uint8_t type, uint8_t **out, size_t *len)
{
	int rc;
	char hex[OID_HEX_LEN + 1], pack[64], what[160];
	index_entry e;
	uint8_t *raw = NULL;

	*out = NULL;
	*len = 0;
	oid_hex(hex, id);
	int found = repo_index_lookup(r, id, &e);
	if (found < 0) return found;
	if (!found)
		return error_set(CAIRN_ECORRUPT, "%s %s: missing from the index",
		                 type == BLOB_TREE ? "tree" : "chunk", hex);
	if (e.type != type)
		return error_set(CAIRN_ECORRUPT, "blob %s: index says type %u, expected %u", hex, e.type, type);
	repo_pack_name(pack, e.pack);
	snprintf(what, sizeof(what), "%s %s in %s", type == BLOB_TREE ? "tree" : "chunk", hex, pack);

	size_t raw_size = (size_t)e.stored_len + BLOB_OVERHEAD;
	if (!(raw = malloc(raw_size))) return ERR_OOM();
	rc = store_get_range(r->st, pack, e.offset, raw, raw_size);
	if (rc < 0) {
		error_prefix("%s", what);
		goto done;
	}
	pack_blob want = {e.id, e.type, e.comp, e.raw_len, e.stored_len, e.offset};
	if ((rc = pack_blob_open(raw, raw_size, &want, what, out)) < 0) goto done;
	*len = e.raw_len;
done:
	free(raw);
	return rc;
}

/* Plain tree bytes by id, for repo_load_tree; filled by repo_prefetch_trees. */
struct tree_ahead {
	chunk_index *at;   /* id -> index into data and len */
	int (*skip)(void *payload, const oid *id); /* the caller's, with its payload */
	void *skip_payload;
	uint8_t **data;
	size_t *len;
	size_t n, cap, bytes, max_bytes;
};

int repo_load_tree(cairn_repo *r, const oid *id, tree *out)
{
	uint8_t *data;
	size_t len;
	char what[80], hex[OID_HEX_LEN + 1];
	memset(out, 0, sizeof(*out));
	oid_hex(hex, id);
	snprintf(what, sizeof(what), "tree %s", hex);
	const uint8_t *ahead = NULL;
	size_t ahead_len = 0;
	pthread_mutex_lock(&r->lock);
	const index_entry *at = r->ahead ? index_key_get(r->ahead->at, id->b, OID_LEN) : NULL;
	if (at) {
		ahead = r->ahead->data[at->offset];
		ahead_len = r->ahead->len[at->offset];
	}
	pthread_mutex_unlock(&r->lock);
	if (ahead) /* verified when it was read ahead; the bytes stay until the drop */
		return tree_decode(out, ahead, ahead_len, what);
	int rc = repo_read_blob(r, id, BLOB_TREE, &data, &len);
	if (rc < 0) return rc;
	rc = tree_decode(out, data, len, what);
	free(data);
	return rc;
}

/* One tree of a batch: where it is, and which slot of the caller's it fills. */
typedef struct tree_loc {
	index_entry e;
	size_t slot;
} tree_loc;

static int loc_cmp(const void *pa, const void *pb)
{
	const tree_loc *a = pa, *b = pb;
	int c = memcmp(a->e.pack, b->e.pack, PACK_ID_LEN);
	if (c) return c;
	return (a->e.offset > b->e.offset) - (a->e.offset < b->e.offset);
}

static const char *blob_kind(uint8_t type) { return type == BLOB_TREE ? "tree" : "chunk"; }

int repo_read_blobs(cairn_repo *r, const oid *ids, size_t n, uint8_t type, unsigned flags,
                    buf *scratch, repo_blob_cb cb, void *payload)
{
	return repo_read_blobs_into(r, ids, n, type, flags, scratch, NULL, cb, payload);
}

static uint64_t loc_end(const tree_loc *l) { return (uint64_t)l->e.offset + l->e.stored_len + BLOB_OVERHEAD; }

/* The bytes v[j] adds to a run's own: none when it repeats the blob before
 * it (a file's repeated chunk), so that repeats cannot pass for a range
 * full of the run's own bytes. */
static uint64_t loc_held(const tree_loc *v, size_t j)
{
	if (j > 0 && v[j - 1].e.offset == v[j].e.offset && !memcmp(v[j - 1].e.pack, v[j].e.pack, PACK_ID_LEN))
		return 0;
	return loc_end(&v[j]) - v[j].e.offset;
}

/* The run of blobs starting at v[i] read as one range [*start, *end): its
 * neighbours in the same pack, in v's order, less than REPO_TREE_GAP apart
 * and at most REPO_TREE_RUN in all; then, where the next ones are out of
 * order (a take's workers append a file's chunks as they finish them), the
 * longest window of them in the pack whose range has no more than
 * REPO_TREE_GAP of other bytes beyond the run's own gaps: read as one range
 * and handed over in v's order, instead of a short range each. Returns the
 * index past the run. */
static size_t run_of(const tree_loc *v, size_t i, size_t n, uint64_t *start, uint64_t *end)
{
	uint64_t s = v[i].e.offset, e = loc_end(&v[i]), held = e - s;
	size_t k = i + 1;
	for (;;) {
		/* in the caller's order a run grows forward within its pack */
		while (k < n && !memcmp(v[k].e.pack, v[i].e.pack, PACK_ID_LEN) && v[k].e.offset >= s &&
		       v[k].e.offset <= e + REPO_TREE_GAP && loc_end(&v[k]) - s <= REPO_TREE_RUN) {
			if (loc_end(&v[k]) > e) e = loc_end(&v[k]);
			held += loc_held(v, k);
			k++;
		}
		uint64_t slack = e - s > held ? e - s - held : 0;
		uint64_t ws = s, we = e, wheld = held, bs = s, be = e, bheld = held;
		size_t best = k;
		for (size_t j = k; j < n && !memcmp(v[j].e.pack, v[i].e.pack, PACK_ID_LEN); j++) {
			if (v[j].e.offset < ws) ws = v[j].e.offset;
			if (loc_end(&v[j]) > we) we = loc_end(&v[j]);
			wheld += loc_held(v, j);
			if (we - ws > REPO_TREE_RUN) break;
			if (we - ws <= wheld + slack + REPO_TREE_GAP) {
				best = j + 1;
				bs = ws;
				be = we;
				bheld = wheld;
			}
		}
		if (best == k) break;
		k = best;
		s = bs;
		e = be;
		held = bheld;
	}
	*start = s;
	*end = e;
	return k;
}

/* The run starting at v[i] advised to the store; the index past it. */
static size_t advise_run(cairn_repo *r, const tree_loc *v, size_t i, size_t n)
{
	uint64_t start, end;
	char pack[64];
	size_t k = run_of(v, i, n, &start, &end);
	repo_pack_name(pack, v[i].e.pack);
	store_advise(r->st, pack, start, (size_t)(end - start));
	return k;
}

/* v[0..n) sorted by pack and offset, advised run by run. */
static void advise_sorted(cairn_repo *r, tree_loc *v, size_t n)
{
	qsort(v, n, sizeof(*v), loc_cmp);
	for (size_t i = 0; i < n;) i = advise_run(r, v, i, n);
}

/* Of the runs a read with flags makes of v[*from..n) (REPO_READ_IN_ORDER:
 * v in the caller's order, else sorted), whole runs up to at least want
 * bytes, *from moved past them: the blobs of those it reads through the
 * local caches go to tmp (*ntmp), to be advised. A run it reads past them
 * (REPO_READ_UNCACHED, REPO_UNCACHE_MIN or more: O_DIRECT, where the store
 * can, direct) is left out: advice would read its bytes twice and fill the
 * page cache for nothing. A remote store has no page cache: its advice
 * fetches into memory that the read takes, so every run is advised there.
 */
static void take_cached_runs(const tree_loc *v, size_t *from, size_t n, uint64_t want, unsigned flags,
                             int direct, tree_loc *tmp, size_t *ntmp)
{
	uint64_t bytes = 0;
	while (*from < n && bytes < want) {
		uint64_t start, end;
		size_t k = run_of(v, *from, n, &start, &end);
		if (!direct || !(flags & REPO_READ_UNCACHED) || end - start < REPO_UNCACHE_MIN)
			for (size_t j = *from; j < k; j++) tmp[(*ntmp)++] = v[j];
		bytes += end - start;
		*from = k;
	}
}

/* For a read of v[0..n) with flags about to read the run ending before
 * v[k]: once less than half of REPO_TREE_RUN is advised beyond it, the runs
 * after those advised (*ae), up to REPO_TREE_RUN more, are advised, sorted
 * and coalesced (tmp: room for them). A take's workers may write a file's
 * chunks a little out of order, so that its runs in the file's order are
 * short: a window of them is under way while the current one is
 * decompressed. */
static void advise_window(cairn_repo *r, const tree_loc *v, size_t k, size_t n, unsigned flags, size_t *ae,
                          tree_loc *tmp)
{
	uint64_t ahead = 0;
	size_t ntmp = 0;
	if (*ae < k) *ae = k;
	for (size_t j = k; j < *ae; j++) ahead += v[j].e.stored_len + BLOB_OVERHEAD;
	if (ahead >= REPO_TREE_RUN / 2) return;
	take_cached_runs(v, ae, n, REPO_TREE_RUN - ahead, flags, store_reads_direct(r->st), tmp, &ntmp);
	advise_sorted(r, tmp, ntmp);
}

size_t repo_advise_blobs(cairn_repo *r, const oid *ids, size_t n, uint8_t type, unsigned flags)
{
	tree_loc *v = malloc((n ? n : 1) * 2 * sizeof(*v));
	if (!v) {
		error_clear(); /* only a hint */
		return 0;
	}
	size_t m = 0, from = 0, ntmp = 0;
	for (size_t i = 0; i < n; i++) {
		int found = repo_index_lookup(r, &ids[i], &v[m].e);
		if (found > 0 && v[m].e.type == type) m++;
		else if (found < 0) error_clear(); /* the read will say what is wrong */
	}
	if (!(flags & REPO_READ_IN_ORDER)) qsort(v, m, sizeof(*v), loc_cmp);
	take_cached_runs(v, &from, m, REPO_TREE_RUN, flags, store_reads_direct(r->st), v + m, &ntmp);
	advise_sorted(r, v + m, ntmp);
	free(v);
	return ntmp;
}

/* Whether a read with flags takes [start, end) past the local caches. */
static int run_uncached(unsigned flags, uint64_t start, uint64_t end)
{
	return (flags & REPO_READ_UNCACHED) && end - start >= REPO_UNCACHE_MIN;
}

/* With ahead, the first uncached run from v[k] on (past short ones, read
 * through the caches and advised) is read into it in flight
 * (store_ahead_start) while the caller works on those before it. */
static void start_next_run(cairn_repo *r, const tree_loc *v, size_t k, size_t n, unsigned flags,
                           store_ahead *inflight, buf *ahead)
{
	uint64_t start, end;
	char pack[64];
	if (!ahead || inflight->running) return;
	for (size_t j = k; j < n;) {
		size_t past = run_of(v, j, n, &start, &end);
		if (run_uncached(flags, start, end)) {
			repo_pack_name(pack, v[j].e.pack);
			store_ahead_start(inflight, r->st, pack, start, (size_t)(end - start), ahead);
			return;
		}
		j = past;
	}
}

/* What a blob's stored form is handed to, before cb has its plain bytes
 * (the walk over trees keeps it for a caller that asks: tree_walk.stored). */
typedef void (*stored_fn)(void *payload, size_t slot, const tree_stored *s);

static int read_blobs(cairn_repo *r, const oid *ids, size_t n, uint8_t type, unsigned flags, buf *scratch,
                      buf *ahead, repo_dst_fn dst, stored_fn stored, repo_blob_cb cb, void *payload)
{
	int rc = 0;
	buf own;
	buf_init(&own);
	buf *run = scratch ? scratch : &own;
	store_ahead inflight = {0};
	size_t advised = 0; /* v[..advised) were advised (REPO_READ_AHEAD) */
	/* with REPO_READ_AHEAD, room after v for a window being advised */
	tree_loc *v = malloc((n ? n : 1) * ((flags & REPO_READ_AHEAD) ? 2 : 1) * sizeof(*v));
	if (!v) return ERR_OOM();
	for (size_t i = 0; i < n && rc == 0; i++) {
		v[i].slot = i;
		int found = repo_index_lookup(r, &ids[i], &v[i].e);
		if (found > 0 && v[i].e.type == type) continue;
		char hex[OID_HEX_LEN + 1];
		oid_hex(hex, &ids[i]);
		if (found < 0) rc = found;
		else if (!found) rc = error_set(CAIRN_ECORRUPT, "%s %s: missing from the index", blob_kind(type), hex);
		else
			rc = error_set(CAIRN_ECORRUPT, "blob %s: index says type %u, expected a %s", hex,
			               v[i].e.type, blob_kind(type));
	}
	if (rc == 0 && !(flags & REPO_READ_IN_ORDER)) qsort(v, n, sizeof(*v), loc_cmp);
	for (size_t i = 0; i < n && rc == 0;) {
		uint64_t start, end;
		size_t k = run_of(v, i, n, &start, &end);
		/* the next ranges come in while this one is decompressed */
		if (flags & REPO_READ_AHEAD) advise_window(r, v, k, n, flags, &advised, v + n);
		char pack[64];
		repo_pack_name(pack, v[i].e.pack);
		run->len = 0;
		size_t at = 0;
		/* large runs past the local caches: a restore reads each pack
		 * once; small ones (small files) from the page cache, where
		 * readahead serves the neighbours, and the advice put them */
		int got = run_uncached(flags, start, end)
		                  ? store_ahead_finish(&inflight, pack, start, (size_t)(end - start), &at)
		                  : 0;
		if (got > 0) {
			/* read in flight into ahead: the buffers change places */
			buf *t = run;
			run = ahead;
			ahead = t;
		} else if (got < 0)
			rc = got;
		else if (run_uncached(flags, start, end))
			rc = store_get_range_uncached(r->st, pack, start, (size_t)(end - start), run, &at);
		else if (buf_reserve(run, (size_t)(end - start)) < 0)
			rc = ERR_OOM();
		else
			rc = store_get_range(r->st, pack, start, run->data, (size_t)(end - start));
		if (rc < 0) {
			char hex[OID_HEX_LEN + 1];
			oid_hex(hex, &v[i].e.id);
			error_prefix("%s %s%s in %s", blob_kind(type), hex, k > i + 1 ? " and its neighbours" : "", pack);
		} else
			start_next_run(r, v, k, n, flags, &inflight, ahead);
		for (; rc == 0 && i < k; i++) {
			const index_entry *e = &v[i].e;
			char what[160], hex[OID_HEX_LEN + 1];
			oid_hex(hex, &e->id);
			snprintf(what, sizeof(what), "%s %s in %s", blob_kind(type), hex, pack);
			pack_blob want = {e->id, e->type, e->comp, e->raw_len, e->stored_len, e->offset};
			uint8_t *plain = NULL, *into = NULL;
			const uint8_t *raw = run->data + at + (e->offset - start);
			size_t raw_size = (size_t)e->stored_len + BLOB_OVERHEAD;
			if (dst && (rc = dst(payload, v[i].slot, e->raw_len, &into)) < 0) break;
			if (into)
				rc = pack_blob_open_into(raw, raw_size, &want, what, into);
			else
				rc = pack_blob_open(raw, raw_size, &want, what, &plain);
			if (rc == 0 && stored)
				stored(payload, v[i].slot,
				       &(tree_stored){raw + BLOB_HEADER_LEN, e->stored_len, e->raw_len, e->comp});
			if (rc == 0) {
				snprintf(what, sizeof(what), "%s %s", blob_kind(type), hex);
				rc = cb(payload, v[i].slot, into ? into : plain, e->raw_len, what);
			}
			free(plain);
		}
		i = k;
	}
	store_ahead_finish(&inflight, NULL, 0, 0, NULL); /* an error's: dropped */
	free(v);
	buf_free(&own);
	return rc;
}

int repo_read_blobs_into(cairn_repo *r, const oid *ids, size_t n, uint8_t type, unsigned flags,
                         buf *scratch, repo_dst_fn dst, repo_blob_cb cb, void *payload)
{
	return read_blobs(r, ids, n, type, flags, scratch, NULL, dst, NULL, cb, payload);
}

int repo_read_blobs_ahead(cairn_repo *r, const oid *ids, size_t n, uint8_t type, unsigned flags,
                          buf *scratch, buf *ahead, repo_dst_fn dst, repo_blob_cb cb, void *payload)
{
	return read_blobs(r, ids, n, type, flags, scratch, ahead, dst, NULL, cb, payload);
}

/* ---- walks over every tree below a root ---- */

/* One level of a walk: its trees go to visit, their subtrees not found
 * before to next. */
typedef struct walk_level {
	const tree_walk *w;
	chunk_index *seen; /* id -> seq */
	const oid *ids;    /* this level's trees */
	uint32_t first;    /* seq of ids[0] */
	size_t base;       /* slot of the batch's first id within ids */
	uint8_t *done;     /* per tree of the level: read (tolerate_damage retries the rest) */
	int visit_rc;      /* visit's error: never tolerated */
	tree_stored cur;   /* the stored form of the tree walk_one is given */
	oid *next;
	size_t nnext, cap_next;
	uint32_t nseq; /* the next seq to give */
} walk_level;

static int walk_found(walk_level *l, const oid *id)
{
	if (l->w->skip && l->w->skip(l->w->payload, id)) return 0;
	int rc = index_key_put(l->seen, id->b, OID_LEN, l->nseq);
	if (rc != 0) return rc < 0 ? rc : 0; /* found before */
	if (l->nnext == l->cap_next) {
		size_t cap = l->cap_next ? 2 * l->cap_next : 256;
		oid *nn = realloc(l->next, cap * sizeof(*nn));
		if (!nn) return ERR_OOM();
		l->next = nn;
		l->cap_next = cap;
	}
	l->next[l->nnext++] = *id;
	l->nseq++;
	return 0;
}

static int walk_one(void *payload, size_t slot, const uint8_t *plain, size_t len, const char *what)
{
	walk_level *l = payload;
	slot += l->base;
	tree t;
	int rc = tree_decode(&t, plain, len, what);
	if (rc < 0) return rc;
	l->done[slot] = 1;
	/* the subtrees first: visit may take the tree */
	for (size_t i = 0; i < t.n && rc == 0; i++)
		if (t.entries[i].type == TREE_DIR) rc = walk_found(l, &t.entries[i].subtree);
	uint32_t seq = l->first + (uint32_t)slot;
	if (rc == 0 && l->w->stored && (rc = l->w->stored(l->w->payload, seq, &l->cur)) < 0) l->visit_rc = rc;
	if (rc == 0 && (rc = l->w->visit(l->w->payload, seq, &l->ids[slot], &t, plain, len)) < 0) l->visit_rc = rc;
	tree_free(&t);
	return rc;
}

static void walk_stored(void *payload, size_t slot, const tree_stored *s)
{
	(void)slot;
	((walk_level *)payload)->cur = *s;
}

/* One level: a batch, and with tolerate_damage, after a failure, the trees
 * not read yet one at a time, those that fail left out. */
static int walk_level_read(cairn_repo *r, walk_level *l, size_t n)
{
	stored_fn stored = l->w->stored ? walk_stored : NULL;
	int rc = read_blobs(r, l->ids, n, BLOB_TREE, 0, NULL, NULL, NULL, stored, walk_one, l);
	if (rc >= 0 || !l->w->tolerate_damage || l->visit_rc < 0 || rc == CAIRN_ENOMEM) return rc;
	for (size_t i = 0; i < n; i++) {
		if (l->done[i]) continue;
		error_clear();
		l->base = i;
		rc = read_blobs(r, &l->ids[i], 1, BLOB_TREE, 0, NULL, NULL, NULL, stored, walk_one, l);
		if (rc == 1 || l->visit_rc < 0 || rc == CAIRN_ENOMEM) return rc;
	}
	error_clear();
	return 0;
}

int repo_walk_trees(cairn_repo *r, const oid *root, const tree_walk *w)
{
	chunk_index *own = NULL;
	walk_level l = {.w = w, .seen = w->seen, .nseq = 1};
	int rc = 0;
	if (!l.seen && (rc = index_new(&own)) == 0) l.seen = own;
	oid *level = malloc(sizeof(*level));
	size_t nlevel = 1;
	if (!level && rc == 0) rc = ERR_OOM();
	if (rc == 0) {
		level[0] = *root;
		if ((rc = index_key_put(l.seen, root->b, OID_LEN, 0)) > 0) rc = 0;
	}
	while (rc == 0 && nlevel) {
		l.ids = level;
		l.base = 0;
		l.next = NULL;
		l.nnext = l.cap_next = 0;
		if (!(l.done = calloc(nlevel, 1))) rc = ERR_OOM();
		if (rc == 0) rc = walk_level_read(r, &l, nlevel);
		free(l.done);
		free(level);
		level = l.next;
		l.first += (uint32_t)nlevel;
		nlevel = l.nnext;
	}
	free(level);
	index_free(own);
	return rc < 0 ? rc : 0;
}

/* ---- trees read ahead ---- */

static int ahead_keep(void *payload, uint32_t seq, const oid *id, tree *t, const uint8_t *plain, size_t len)
{
	(void)seq;
	(void)t;
	struct tree_ahead *ta = payload;
	if (ta->bytes >= ta->max_bytes) return 1; /* full: the rest is read where it is needed */
	if (ta->n == ta->cap) {
		size_t cap = ta->cap ? 2 * ta->cap : 256;
		uint8_t **d = realloc(ta->data, cap * sizeof(*d));
		if (!d) return ERR_OOM();
		ta->data = d;
		size_t *ln = realloc(ta->len, cap * sizeof(*ln));
		if (!ln) return ERR_OOM();
		ta->len = ln;
		ta->cap = cap;
	}
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy) return ERR_OOM();
	memcpy(copy, plain, len);
	int rc = index_key_put(ta->at, id->b, OID_LEN, (uint32_t)ta->n);
	if (rc < 0) {
		free(copy);
		return rc;
	}
	ta->data[ta->n] = copy;
	ta->len[ta->n++] = len;
	ta->bytes += len;
	return 0;
}

static int ahead_skip(void *payload, const oid *id)
{
	struct tree_ahead *ta = payload;
	return ta->skip(ta->skip_payload, id);
}

int repo_prefetch_trees(cairn_repo *r, const oid *root, size_t max_bytes,
                        int (*skip)(void *payload, const oid *id), void *payload)
{
	repo_prefetch_drop(r);
	struct tree_ahead *ta = calloc(1, sizeof(*ta));
	if (!ta || index_new(&ta->at) < 0) {
		free(ta);
		error_clear();
		return 0;
	}
	ta->max_bytes = max_bytes;
	ta->skip = skip;
	ta->skip_payload = payload;
	tree_walk w = {ahead_keep, skip ? ahead_skip : NULL, ta, NULL, 1, NULL};
	if (repo_walk_trees(r, root, &w) < 0)
		error_clear(); /* only a read-ahead: each tree is read again, and fails, where it is needed */
	pthread_mutex_lock(&r->lock);
	r->ahead = ta;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

void repo_prefetch_drop(cairn_repo *r)
{
	pthread_mutex_lock(&r->lock);
	struct tree_ahead *ta = r->ahead;
	r->ahead = NULL;
	pthread_mutex_unlock(&r->lock);
	if (!ta) return;
	for (size_t i = 0; i < ta->n; i++) free(ta->data[i]);
	free(ta->data);
	free(ta->len);
	index_free(ta->at);
	free(ta);
}

int repo_load_snapshot(cairn_repo *r, const char *id_hex, snapshot_manifest *out)
{
	char name[128], what[128];
	uint8_t *data = NULL;
	size_t len;
	oid want, got;
	memset(out, 0, sizeof(*out));
	if (hex_decode(want.b, OID_LEN, id_hex) < 0)
		return error_set(CAIRN_EUSAGE, "snapshot id %s: not a full hex id", id_hex);
	snprintf(name, sizeof(name), "snapshots/%s", id_hex);
	snprintf(what, sizeof(what), "snapshot %s", id_hex);
	int rc = store_get(r->st, name, MANIFEST_MAX, &data, &len);
	if (rc == CAIRN_ENOTFOUND) return error_set(CAIRN_ENOTFOUND, "%s: not found", what);
	if (rc < 0) return rc;
	hash_sha256(&got, data, len);
	if (oid_cmp(&got, &want) != 0)
		rc = error_set(CAIRN_ECORRUPT, "%s: content does not match its id", what);
	else
		rc = snapshot_decode(out, data, len, what);
	free(data);
	return rc;
}

CAIRN_EXTERN const char *cairn_version(void) { return CAIRN_VERSION_STRING; }
CAIRN_EXTERN int cairn_format_version(void) { return FORMAT_VERSION; }
