#include "writer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cairn.h"
#include "error.h"
#include "format.h"
#include "index.h"
#include "io.h"
#include "pack.h"
#include "quota.h"
#include "session.h"

#define SEGMENT_ENTRIES_MAX (4u * 1024u * 1024u)

/* Full packs are committed by threads of their own: a commit waits for the
 * store (an fsync, a RADOS op, a PUT), and the workers go on compressing
 * meanwhile. At most FLUSH_PACKS packs are committed at once or wait for
 * it; a worker with a full pack beyond them waits. */
#define FLUSH_PACKS 2
typedef struct flush_item {
	pack_writer *pw;
	uint8_t id[PACK_ID_LEN];
} flush_item;

/* The blobs this writer stores, one packed record each: the dedup set of
 * the take and, once their pack is committed, its index entries. Records
 * sit in blocks that never move (no copy as they grow, no malloc each),
 * found through a table of 32-bit positions; the pack is a number into the
 * writer's list of packs, not its 16-byte id. */
#define NO_PACK UINT32_MAX
#define BLOBS_BLOCK 4096
typedef struct own_blob {
	oid id;
	uint32_t pack; /* into packs, NO_PACK until its pack is committed */
	uint32_t offset, raw_len, stored_len;
	uint8_t type, comp;
} own_blob;

typedef struct own_blobs {
	own_blob **block;
	size_t nblocks, count;
	uint32_t *slot; /* position + 1, 0 = empty; at most half full */
	size_t nslots;  /* power of two */
	uint64_t mul;   /* random odd multiplier: slots not predictable from ids */
	uint8_t (*packs)[PACK_ID_LEN];
	size_t npacks, cappacks;
} own_blobs;

struct snap_writer {
	cairn_repo *repo;
	pthread_mutex_t lock; /* guards everything below */
	own_blobs blobs;      /* blobs stored or being stored by this writer */
	pthread_mutex_t pack_lock; /* guards pw and pw_id: held while a blob is written out */
	pack_writer *pw;           /* the pack being filled, streamed to the store */
	uint8_t pw_id[PACK_ID_LEN];
	quota_tracker *tracker; /* the blobs the snapshot references, for its user's usage */
	int dry_run;            /* store nothing */
	chunk_index *marked;    /* marked for deletion by gc: never deduplicated against (gc.h) */

	pthread_mutex_t flush_lock; /* guards the fields below */
	pthread_cond_t flush_cv;    /* a pack queued or committed, or the flushers asked to stop */
	pthread_t flushers[FLUSH_PACKS];
	int nflushers;
	flush_item queue[FLUSH_PACKS]; /* FIFO */
	size_t queue_head, nqueued;
	size_t inflight;    /* queued or being committed */
	int flush_stop;     /* the flushers drop what is queued and end */
	int flush_rc;       /* the first failed commit's code; queued packs are then dropped */
	char flush_msg[1024]; /* and its message (error messages are per thread) */
};

static own_blob *blob_at(const own_blobs *b, size_t pos) { return &b->block[pos / BLOBS_BLOCK][pos % BLOBS_BLOCK]; }

static size_t blob_slot(const own_blobs *b, const oid *id)
{
	uint64_t w;
	memcpy(&w, id->b, sizeof(w));
	size_t mask = b->nslots - 1;
	for (size_t i = (size_t)((w * b->mul) >> 32) & mask;; i = (i + 1) & mask)
		if (!b->slot[i] || !memcmp(blob_at(b, b->slot[i] - 1)->id.b, id->b, OID_LEN)) return i;
}

/* The record of id, NULL if this writer has none. */
static own_blob *blobs_find(const own_blobs *b, const oid *id)
{
	if (!b->nslots) return NULL;
	uint32_t pos1 = b->slot[blob_slot(b, id)];
	return pos1 ? blob_at(b, pos1 - 1) : NULL;
}

static int blobs_grow_slots(own_blobs *b)
{
	size_t n = b->nslots ? b->nslots * 2 : 4096;
	if (n > SIZE_MAX / sizeof(uint32_t)) return ERR_OOM();
	uint32_t *old = b->slot;
	size_t nold = b->nslots;
	if (!(b->slot = calloc(n, sizeof(uint32_t)))) {
		b->slot = old;
		return ERR_OOM();
	}
	b->nslots = n;
	for (size_t i = 0; i < nold; i++)
		if (old[i]) b->slot[blob_slot(b, &blob_at(b, old[i] - 1)->id)] = old[i];
	free(old);
	return 0;
}

/* A record for id, not yet in a pack (the caller found none). */
static int blobs_add(own_blobs *b, const oid *id)
{
	if (b->count >= UINT32_MAX - 1) return error_set(CAIRN_ENOMEM, "writer: more than %u blobs", UINT32_MAX - 1);
	if (!b->mul) {
		uint64_t key = 0;
		if (getrandom(&key, sizeof(key), GRND_NONBLOCK) != (ssize_t)sizeof(key))
			key = (uint64_t)(uintptr_t)b * 0x9E3779B97F4A7C15ull;
		b->mul = key | 1;
	}
	if ((b->count + 1) * 2 > b->nslots && blobs_grow_slots(b) < 0) return ERR_OOM();
	if (b->count == b->nblocks * BLOBS_BLOCK) {
		own_blob **v = realloc(b->block, (b->nblocks + 1) * sizeof(*v));
		if (!v) return ERR_OOM();
		b->block = v;
		if (!(v[b->nblocks] = malloc(BLOBS_BLOCK * sizeof(own_blob)))) return ERR_OOM();
		b->nblocks++;
	}
	own_blob *r = blob_at(b, b->count);
	memset(r, 0, sizeof(*r));
	r->id = *id;
	r->pack = NO_PACK;
	b->slot[blob_slot(b, id)] = (uint32_t)++b->count;
	return 0;
}

static void blobs_free(own_blobs *b)
{
	for (size_t i = 0; i < b->nblocks; i++) free(b->block[i]);
	free(b->block);
	free(b->slot);
	free(b->packs);
	memset(b, 0, sizeof(*b));
}

int writer_new(snap_writer **out, cairn_repo *repo)
{
	*out = NULL;
	repo_session(repo); /* every writer is protected from gc (a no-op once registered) */
	snap_writer *w = calloc(1, sizeof(*w));
	if (!w) return ERR_OOM();
	w->repo = repo;
	pthread_mutex_init(&w->lock, NULL);
	pthread_mutex_init(&w->pack_lock, NULL);
	pthread_mutex_init(&w->flush_lock, NULL);
	pthread_cond_init(&w->flush_cv, NULL);
	int rc = quota_tracker_new(&w->tracker, repo);
	if (rc == 0) rc = gc_marks_load(repo, &w->marked);
	if (rc < 0) {
		writer_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

static void flushers_stop(snap_writer *w);

void writer_free(snap_writer *w)
{
	if (!w) return;
	flushers_stop(w);
	pack_writer_free(w->pw);
	blobs_free(&w->blobs);
	quota_tracker_free(w->tracker);
	index_free(w->marked);
	pthread_mutex_destroy(&w->lock);
	pthread_mutex_destroy(&w->pack_lock);
	pthread_mutex_destroy(&w->flush_lock);
	pthread_cond_destroy(&w->flush_cv);
	free(w);
}

/* Start the next pack under a fresh random name (caller holds pack_lock). */
static int start_pack(snap_writer *w)
{
	char name[64];
	int rc = io_random(w->pw_id, sizeof(w->pw_id));
	if (rc < 0) return rc;
	repo_pack_name(name, w->pw_id);
	return pack_writer_new_stream(&w->pw, w->repo->st, name);
}

/* Commit a full pack (its blobs are written already) and remember where its blobs are. */
static int flush_pack(snap_writer *w, pack_writer *pw, const uint8_t pack_id[PACK_ID_LEN])
{
	int rc;
	size_t nblobs;
	const pack_blob *blobs;

	/* not create-only: the name is 128 fresh random bits that nobody else
	 * writes, and on S3 a create-only multipart commit costs a lock object.
	 * File data is not read back soon; trees are, by the next take. */
	unsigned flags = pack_writer_holds(pw, BLOB_TREE) ? 0 : STORE_UNCACHED;
	if ((rc = pack_writer_commit(pw, flags, &blobs, &nblobs, NULL)) < 0) goto done;

	pthread_mutex_lock(&w->lock);
	own_blobs *b = &w->blobs;
	if (b->npacks == b->cappacks) {
		size_t cap = b->cappacks ? b->cappacks * 2 : 64;
		void *v = realloc(b->packs, cap * PACK_ID_LEN);
		if (!v) {
			pthread_mutex_unlock(&w->lock);
			rc = ERR_OOM();
			goto done;
		}
		b->packs = v;
		b->cappacks = cap;
	}
	memcpy(b->packs[b->npacks], pack_id, PACK_ID_LEN);
	for (size_t i = 0; i < nblobs && rc == 0; i++) {
		/* each was claimed by put_blob before it was added to a pack */
		own_blob *r = blobs_find(b, &blobs[i].id);
		if (!r) {
			rc = blobs_add(b, &blobs[i].id);
			if (rc < 0) break;
			r = blob_at(b, b->count - 1);
		}
		r->pack = (uint32_t)b->npacks;
		r->offset = blobs[i].offset;
		r->raw_len = blobs[i].raw_len;
		r->stored_len = blobs[i].stored_len;
		r->type = blobs[i].type;
		r->comp = blobs[i].comp;
	}
	b->npacks++;
	pthread_mutex_unlock(&w->lock);
done:
	pack_writer_free(pw);
	return rc;
}

/* ---- the flushers ---- */

static void *flusher(void *arg)
{
	snap_writer *w = arg;
	pthread_mutex_lock(&w->flush_lock);
	for (;;) {
		while (!w->nqueued && !w->flush_stop) pthread_cond_wait(&w->flush_cv, &w->flush_lock);
		if (!w->nqueued) break;
		flush_item it = w->queue[w->queue_head];
		w->queue_head = (w->queue_head + 1) % FLUSH_PACKS;
		w->nqueued--;
		int drop = w->flush_rc < 0 || w->flush_stop;
		pthread_mutex_unlock(&w->flush_lock);
		int rc = 0;
		if (drop) /* a commit failed, or the take ended without committing: not needed */
			pack_writer_free(it.pw);
		else
			rc = flush_pack(w, it.pw, it.id);
		pthread_mutex_lock(&w->flush_lock);
		if (rc < 0 && w->flush_rc == 0) {
			w->flush_rc = rc;
			snprintf(w->flush_msg, sizeof(w->flush_msg), "%s", cairn_error_last());
		}
		w->inflight--;
		pthread_cond_broadcast(&w->flush_cv);
	}
	pthread_mutex_unlock(&w->flush_lock);
	return NULL;
}

/* The first failed commit's error, set in this thread (caller holds flush_lock). */
static int flush_failed(snap_writer *w)
{
	return w->flush_rc < 0 ? error_set(w->flush_rc, "%s", w->flush_msg) : 0;
}

/* Hand a full pack to the flushers (started at the first); it is theirs
 * whatever this returns. */
static int flush_later(snap_writer *w, pack_writer *pw, const uint8_t id[PACK_ID_LEN])
{
	pthread_mutex_lock(&w->flush_lock);
	while (w->inflight >= FLUSH_PACKS && w->flush_rc == 0) pthread_cond_wait(&w->flush_cv, &w->flush_lock);
	int rc = flush_failed(w);
	if (rc == 0 && w->nflushers < FLUSH_PACKS && w->nflushers <= (int)w->inflight) {
		if (pthread_create(&w->flushers[w->nflushers], NULL, flusher, w) == 0) w->nflushers++;
		else if (!w->nflushers) rc = error_set(CAIRN_EIO, "writer: cannot start a thread to commit packs");
	}
	if (rc == 0) {
		flush_item *it = &w->queue[(w->queue_head + w->nqueued) % FLUSH_PACKS];
		it->pw = pw;
		memcpy(it->id, id, PACK_ID_LEN);
		w->nqueued++;
		w->inflight++;
		pthread_cond_broadcast(&w->flush_cv);
	}
	pthread_mutex_unlock(&w->flush_lock);
	if (rc < 0) pack_writer_free(pw);
	return rc;
}

/* Wait until every pack handed over is committed; the first error. */
static int flush_wait(snap_writer *w)
{
	pthread_mutex_lock(&w->flush_lock);
	while (w->inflight) pthread_cond_wait(&w->flush_cv, &w->flush_lock);
	int rc = flush_failed(w);
	pthread_mutex_unlock(&w->flush_lock);
	return rc;
}

/* End the flushers; packs still queued are dropped (a commit drained the
 * queue: only a take that failed leaves any). */
static void flushers_stop(snap_writer *w)
{
	pthread_mutex_lock(&w->flush_lock);
	w->flush_stop = 1;
	pthread_cond_broadcast(&w->flush_cv);
	pthread_mutex_unlock(&w->flush_lock);
	for (int i = 0; i < w->nflushers; i++) pthread_join(w->flushers[i], NULL);
	w->nflushers = 0;
}

/* Blobs still to count below trees counted for the first time: a heap
 * stack, so that a tree of any depth costs memory, not C stack. */
typedef struct ref_todo {
	struct ref_item {
		oid id;
		uint8_t type;
	} *v;
	size_t n, cap;
} ref_todo;

static int todo_push(ref_todo *todo, const oid *id, uint8_t type)
{
	if (todo->n == todo->cap) {
		size_t cap = todo->cap ? todo->cap * 2 : 64;
		struct ref_item *v = realloc(todo->v, cap * sizeof(*v));
		if (!v) return ERR_OOM();
		todo->v = v;
		todo->cap = cap;
	}
	todo->v[todo->n++] = (struct ref_item){*id, type};
	return 0;
}

/* Count blob id of stored size for the snapshot's user; a tree seen for
 * the first time has its children queued on todo, unless the caller has
 * counted them (kids_counted). */
static int count(snap_writer *w, ref_todo *todo, const oid *id, uint8_t type, const uint8_t *data,
                 size_t len, uint32_t size, int kids_counted)
{
	int rc = quota_tracker_add(w->tracker, id, size);
	if (rc <= 0 || type != BLOB_TREE || kids_counted) return rc < 0 ? rc : 0;
	tree t;
	char what[80], hex[OID_HEX_LEN + 1];
	oid_hex(hex, id);
	snprintf(what, sizeof(what), "tree %s", hex);
	if ((rc = tree_decode(&t, data, len, what)) < 0) return rc;
	for (size_t i = 0; i < t.n && rc == 0; i++) {
		const tree_entry *e = &t.entries[i];
		if (e->type == TREE_DIR) rc = todo_push(todo, &e->subtree, BLOB_TREE);
		for (uint32_t k = 0; k < e->nchunks && rc == 0; k++) rc = todo_push(todo, &e->chunks[k].id, BLOB_DATA);
	}
	tree_free(&t);
	return rc;
}

/* Marked for deletion by gc: not to be referenced without storing it
 * again. The set is loaded by writer_new and only read after: no lock. */
static int is_marked(snap_writer *w, const oid *id)
{
	return index_lookup(w->marked, id) != NULL;
}

/* writer_ref of one blob, a tree's children queued on todo. */
static int ref_one(snap_writer *w, ref_todo *todo, const oid *id, uint8_t type)
{
	if (quota_tracker_seen(w->tracker, id)) return 0;
	uint32_t size;
	if (type == BLOB_DATA && quota_tracker_known(w->tracker, id, &size)) {
		/* the parent's chunk: present while unmarked (as in writer_ref_chunks) */
		if (!is_marked(w, id)) return count(w, todo, id, type, NULL, 0, size, 0);
	}
	index_entry known;
	int e = repo_index_lookup(w->repo, id, &known);
	if (e < 0) return e;
	pthread_mutex_lock(&w->lock);
	int pending = !e && blobs_find(&w->blobs, id) != NULL;
	pthread_mutex_unlock(&w->lock);
	if (pending) return 0; /* counted by the thread storing it */
	char hex[OID_HEX_LEN + 1];
	oid_hex(hex, id);
	if (!e || known.type != type)
		return error_set(CAIRN_ECORRUPT, "%s %s: referenced, but not in the repository",
		                 type == BLOB_TREE ? "tree" : "chunk", hex);
	if (type != BLOB_TREE) return count(w, todo, id, type, NULL, 0, known.stored_len, 0);
	uint8_t *data;
	size_t len;
	int rc = repo_read_blob(w->repo, id, BLOB_TREE, &data, &len);
	if (rc < 0) return rc;
	rc = count(w, todo, id, type, data, len, known.stored_len, 0);
	free(data);
	return rc;
}

/* Reference everything queued on todo (and what it queues); frees it. */
static int drain(snap_writer *w, ref_todo *todo, int rc)
{
	while (rc == 0 && todo->n > 0) {
		struct ref_item it = todo->v[--todo->n];
		rc = ref_one(w, todo, &it.id, it.type);
	}
	free(todo->v);
	return rc;
}

/* count, and every blob below a tree counted for the first time. */
static int account(snap_writer *w, const oid *id, uint8_t type, const uint8_t *data, size_t len,
                   uint32_t size, int kids_counted)
{
	ref_todo todo = {NULL, 0, 0};
	return drain(w, &todo, count(w, &todo, id, type, data, len, size, kids_counted));
}

int writer_ref(snap_writer *w, const oid *id, uint8_t type)
{
	ref_todo todo = {NULL, 0, 0};
	return drain(w, &todo, ref_one(w, &todo, id, type));
}

void writer_parent(snap_writer *w, const char *user, const char *snap_hex)
{
	quota_tracker_parent(w->tracker, user, snap_hex);
}

int writer_ref_chunks(snap_writer *w, const tree_chunk *v, uint32_t n)
{
	uint32_t little[64], *size = n <= 64 ? little : malloc(n * sizeof(*size));
	int rc = 1;
	if (!size) return ERR_OOM();
	/* gc's marks are what protect a reused chunk (README "Garbage
	 * collection"); a chunk the parent references is in the index as long
	 * as it is unmarked, so its size comes from the parent's refs record */
	for (uint32_t i = 0; i < n && rc == 1; i++) {
		if (is_marked(w, &v[i].id)) rc = 0;
		else if (!quota_tracker_known(w->tracker, &v[i].id, &size[i])) {
			index_entry e;
			int found = repo_index_lookup(w->repo, &v[i].id, &e);
			if (found < 0) rc = found;
			else if (!found || e.type != BLOB_DATA) rc = 0;
			else size[i] = e.stored_len;
		}
	}
	if (rc == 1 && n) {
		int added = quota_tracker_add_each(w->tracker, &v[0].id, sizeof(*v), size, n);
		if (added < 0) rc = added;
	}
	if (size != little) free(size);
	return rc;
}

int writer_set_user(snap_writer *w, const char *user, int dry_run)
{
	w->dry_run = dry_run;
	return quota_tracker_bind(w->tracker, user, !dry_run);
}

uint64_t writer_charged(snap_writer *w) { return quota_tracker_added(w->tracker); }

int writer_restart_refs(snap_writer *w, size_t more) { return quota_tracker_restart(w->tracker, more); }

static int put_blob(snap_writer *w, const oid *id, uint8_t type, const uint8_t *data, size_t len,
                    size_t *stored, int kids_counted)
{
	int rc;
	uint8_t comp, *packed = NULL;
	size_t packed_len;
	pack_writer *full = NULL;
	uint8_t full_id[PACK_ID_LEN];

	*stored = 0;
	/* looked up outside the lock (it may read storage); should another
	 * take's entry appear meanwhile, the blob is just stored twice */
	index_entry found;
	/* the parent's blobs are known without a lookup (writer_ref_chunks) */
	int known = quota_tracker_known(w->tracker, id, &found.stored_len);
	if (!known && (known = repo_index_lookup(w->repo, id, &found)) < 0) return known;
	pthread_mutex_lock(&w->lock);
	if (known && is_marked(w, id)) known = 0; /* gc may delete it: store it again */
	if (known || blobs_find(&w->blobs, id)) {
		uint32_t size = known ? found.stored_len : 0;
		pthread_mutex_unlock(&w->lock);
		/* one this writer is storing is counted by the thread storing it */
		return known ? account(w, id, type, data, len, size, kids_counted) : 0;
	}
	rc = blobs_add(&w->blobs, id);
	pthread_mutex_unlock(&w->lock);
	if (rc < 0) return rc;

	/* compressed outside the lock: this is where the cores are spent */
	if ((rc = pack_compress(data, len, w->repo->cfg.zstd_level, &comp, &packed, &packed_len)) < 0)
		return rc;
	const uint8_t *bytes = packed ? packed : data;
	size_t bytes_len = packed ? packed_len : len;
	if (w->dry_run) { /* measured, not stored */
		free(packed);
		*stored = bytes_len;
		return account(w, id, type, data, len, (uint32_t)bytes_len, kids_counted);
	}

	pthread_mutex_lock(&w->pack_lock);
	if (!w->pw) rc = start_pack(w);
	if (rc == 0)
		rc = pack_writer_add(w->pw, id, type, comp, bytes, (uint32_t)bytes_len, (uint32_t)len);
	if (rc == 0 && pack_writer_size(w->pw) >= store_pack_target(w->repo->st)) {
		full = w->pw;
		memcpy(full_id, w->pw_id, PACK_ID_LEN);
		w->pw = NULL;
	}
	pthread_mutex_unlock(&w->pack_lock);
	free(packed);
	if (rc < 0) return rc;
	*stored = bytes_len;
	/* committed by the flushers: this thread goes on compressing */
	if (full) rc = flush_later(w, full, full_id);
	if (rc == 0) rc = account(w, id, type, data, len, (uint32_t)bytes_len, kids_counted);
	return rc;
}

int writer_seal_pack(snap_writer *w)
{
	pack_writer *pw = NULL;
	uint8_t id[PACK_ID_LEN];
	pthread_mutex_lock(&w->pack_lock);
	if (w->pw && pack_writer_size(w->pw) >= store_pack_target(w->repo->st) / 8) {
		pw = w->pw;
		memcpy(id, w->pw_id, PACK_ID_LEN);
		w->pw = NULL;
	}
	pthread_mutex_unlock(&w->pack_lock);
	return pw ? flush_later(w, pw, id) : 0;
}

int writer_put(snap_writer *w, const oid *id, uint8_t type, const uint8_t *data, size_t len,
               size_t *stored)
{
	return put_blob(w, id, type, data, len, stored, 0);
}

int writer_put_chunk(snap_writer *w, const uint8_t *data, size_t len, oid *id, size_t *stored)
{
	hash_sha256(id, data, len);
	return writer_put(w, id, BLOB_DATA, data, len, stored);
}

int writer_put_tree(snap_writer *w, const tree_entry *entries, size_t n, oid *id, size_t *stored)
{
	return writer_put_tree_counted(w, entries, n, id, stored, 0);
}

int writer_put_tree_counted(snap_writer *w, const tree_entry *entries, size_t n, oid *id, size_t *stored,
                            int kids_counted)
{
	uint8_t *data;
	size_t len;
	*stored = 0;
	int rc = tree_encode(entries, n, &data, &len);
	if (rc < 0) return rc;
	hash_sha256(id, data, len);
	rc = put_blob(w, id, BLOB_TREE, data, len, stored, kids_counted);
	free(data);
	return rc;
}

/* The index entries of the blobs in committed packs (all of them once the
 * flushers are done), *entries malloc'd. Frees the records as it goes: nothing
 * more is put once the commit has begun. */
static int take_entries(snap_writer *w, index_entry **entries, size_t *n)
{
	own_blobs *b = &w->blobs;
	*entries = NULL;
	*n = 0;
	free(b->slot); /* no more lookups */
	b->slot = NULL;
	b->nslots = 0;
	index_entry *v = malloc((b->count ? b->count : 1) * sizeof(*v));
	if (!v) return ERR_OOM();
	size_t k = 0;
	for (size_t i = 0; i < b->count; i++) {
		const own_blob *r = blob_at(b, i);
		if (r->pack != NO_PACK) {
			index_entry *e = &v[k++];
			memset(e, 0, sizeof(*e));
			e->id = r->id;
			memcpy(e->pack, b->packs[r->pack], PACK_ID_LEN);
			e->offset = r->offset;
			e->raw_len = r->raw_len;
			e->stored_len = r->stored_len;
			e->type = r->type;
			e->comp = r->comp;
		}
		if (i % BLOBS_BLOCK == BLOBS_BLOCK - 1 || i + 1 == b->count) { /* a block done */
			free(b->block[i / BLOBS_BLOCK]);
			b->block[i / BLOBS_BLOCK] = NULL;
		}
	}
	blobs_free(b);
	*entries = v;
	*n = k;
	return 0;
}

/* The entries as new index segments; sorts them. */
static int write_index(snap_writer *w, index_entry *entries, size_t nentries)
{
	int rc = 0;
	for (size_t start = 0; start < nentries && rc == 0; start += SEGMENT_ENTRIES_MAX) {
		size_t n = nentries - start;
		if (n > SEGMENT_ENTRIES_MAX) n = SEGMENT_ENTRIES_MAX;
		uint8_t *data, id[16];
		size_t len;
		char name[64], hex[33];
		if ((rc = index_segment_encode_sorting(entries + start, n, &data, &len)) < 0) break;
		if ((rc = io_random(id, sizeof(id))) == 0) {
			hex_encode(hex, id, sizeof(id));
			snprintf(name, sizeof(name), "index/%s", hex);
			rc = store_put(w->repo->st, name, data, len, STORE_EXCL);
		}
		free(data);
	}
	return rc;
}

int writer_commit(snap_writer *w, const snapshot_manifest *m, char id_out[OID_HEX_LEN + 1])
{
	int rc, committed = 0;
	uint8_t *mdata = NULL;
	size_t mlen;
	char name[OID_HEX_LEN + 16];
	oid sid;
	index_entry *entries = NULL;
	size_t nentries = 0;

	if (w->dry_run) return error_set(CAIRN_EUSAGE, "a dry run commits nothing");
	/* the user's lock is held from the quota check to the manifest */
	if ((rc = quota_commit_begin(w->tracker, m->user)) < 0) return rc;
	if (w->pw) {
		pack_writer *pw = w->pw;
		w->pw = NULL;
		if ((rc = flush_later(w, pw, w->pw_id)) < 0) goto done;
	}
	if ((rc = flush_wait(w)) < 0) goto done; /* the index names only committed packs */
	if ((rc = take_entries(w, &entries, &nentries)) < 0) goto done;
	if ((rc = write_index(w, entries, nentries)) < 0) goto done;
	/* the charge is final once the user's lock is held: recorded with the
	 * snapshot, it is what `info` tells the user the snapshot added */
	snapshot_manifest charged = *m;
	charged.has_added = 1;
	charged.added_bytes = quota_tracker_added(w->tracker);
	if ((rc = snapshot_encode(&charged, &mdata, &mlen)) < 0) goto done;
	hash_sha256(&sid, mdata, mlen);
	oid_hex(id_out, &sid);
	snprintf(name, sizeof(name), "snapshots/%s", id_out);
	if ((rc = gc_session_check(w->repo)) < 0) goto done; /* gc kept what we deduplicated against */
	if ((rc = quota_commit_charge(w->tracker, id_out)) < 0) goto done;
	rc = store_put(w->repo->st, name, mdata, mlen, STORE_EXCL); /* the commit point */
	committed = rc == 0;
done:
	quota_commit_end(w->tracker, committed);
	free(mdata);
	/* this handle now knows the new blobs too */
	if (rc == 0) rc = repo_index_add(w->repo, entries, nentries);
	free(entries);
	return rc;
}
