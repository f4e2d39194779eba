/* Fetching: the queues by priority, the fetcher threads that read, verify
 * and place chunks, and the readers' bounded waits (cache.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "mount/cache.h"

/* ---- queues and fetchers -------------------------------------------------- */

static int fifo_push(fifo *q, fetch_item it)
{
	if (q->head > 0 && q->head + q->len == q->cap) {
		memmove(q->v, q->v + q->head, q->len * sizeof(*q->v));
		q->head = 0;
	}
	if (q->head + q->len == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 64;
		fetch_item *v = realloc(q->v, cap * sizeof(*v));
		if (!v) return -ENOMEM;
		q->v = v;
		q->cap = cap;
	}
	q->v[q->head + q->len++] = it;
	q->bytes += it.f->cstart[it.c0 + it.n] - it.f->cstart[it.c0];
	return 0;
}

int mcache_queue_missing(mcache *c, mfile *f, uint32_t c0, uint32_t c1, int prio, int retry)
{
	uint32_t i = c0;
	while (i < c1) {
		if (!(f->state[i] == CH_MISSING || (retry && f->state[i] == CH_FAILED))) {
			i++;
			continue;
		}
		fetch_item it = {f, i, 0};
		uint64_t bytes = 0;
		uint32_t most = prio == PRIO_HYDRATE ? RUN_MAX_CHUNKS : RUN_READ_CHUNKS;
		while (i < c1 && it.n < most && bytes < RUN_MAX_BYTES &&
		       (f->state[i] == CH_MISSING || (retry && f->state[i] == CH_FAILED))) {
			f->state[i] = CH_FETCHING;
			bytes += f->e->chunks[i].size;
			it.n++;
			i++;
		}
		if (fifo_push(&c->q[prio], it) < 0) {
			for (uint32_t k = it.c0; k < it.c0 + it.n; k++) f->state[k] = CH_MISSING;
			return -ENOMEM;
		}
		pthread_cond_signal(&c->work_cv);
	}
	return 0;
}

static int write_at(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return error_errno(CAIRN_EIO, w < 0 ? errno : ENOSPC, "write");
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Write chunk k's bytes to their file offsets in the cache file. */
static int place_chunk(mfile *f, int fd, uint32_t k, const uint8_t *p)
{
	uint64_t d = f->cstart[k], dend = f->cstart[k + 1];
	uint32_t lo = 0, hi = nextents(f);
	while (hi - lo > 1) { /* the last extent starting at or before d */
		uint32_t mid = lo + (hi - lo) / 2;
		if (f->xstart[mid] <= d) lo = mid;
		else hi = mid;
	}
	for (uint32_t x = lo; d < dend && x < nextents(f); x++) {
		tree_extent ex = extent_at(f, x);
		uint64_t in = d - f->xstart[x];
		if (in >= ex.length) continue;
		uint64_t n = ex.length - in < dend - d ? ex.length - in : dend - d;
		int rc = write_at(fd, p, (size_t)n, ex.offset + in);
		if (rc < 0) return rc;
		p += n;
		d += n;
	}
	return 0;
}

static void count_fetch(mcache *c)
{
	pthread_mutex_lock(&c->mu);
	c->fetches++;
	pthread_mutex_unlock(&c->mu);
}

/* The end of a fetch of f's chunks [c0, c0 + n): the first ok are placed
 * (readers may use them now; their record waits until they are durable),
 * the rest failed (err, msg) or were not tried. With backing (a reader's
 * fetch or its read-ahead, not hydration), a file complete now gets its
 * passthrough backing at once: its open will cost the server nothing. */
static void run_done(mcache *c, mfile *f, uint32_t c0, uint32_t n, uint32_t ok, int err, const char *msg,
                     int backing)
{
	pthread_mutex_lock(&c->mu);
	if (ok > 0 && c->logfd >= 0 && !c->log_broken) {
		if (c->npending == c->pcap) {
			size_t cap = c->pcap ? 2 * c->pcap : 256;
			fetch_item *v = realloc(c->pending, cap * sizeof(*v));
			if (v) {
				c->pending = v;
				c->pcap = cap;
			}
		}
		if (c->npending < c->pcap) {
			/* the syncer waits for a first run; later ones join its interval */
			if (c->npending == 0) pthread_cond_signal(&c->sync_cv);
			c->pending[c->npending++] = (fetch_item){f, c0, ok};
		}
	}
	for (uint32_t k = c0; k < c0 + ok; k++) {
		f->state[k] = CH_DONE;
		f->ndone++;
		c->bytes_local += f->e->chunks[k].size;
		c->fetched_bytes += f->e->chunks[k].size;
	}
	c->fetched += ok;
	for (uint32_t k = c0 + ok; k < c0 + n; k++) f->state[k] = err ? CH_FAILED : CH_MISSING;
	if (err && !f->logged[c0 + ok]) {
		char path[512];
		f->logged[c0 + ok] = 1;
		nodes_path(c->nodes, f->node, path, sizeof(path));
		logf_(c, "read of %s failed: %s", path, msg);
	}
	if (f->ndone == f->e->nchunks) {
		if (backing && ok > 0 && f->cached_opens == 0 && f->backing_id < 0 &&
		    c->backed_ahead < BACKED_AHEAD_MAX && mcache_backing_open(c, f) == 0) {
			f->backed_ahead = 1;
			c->backed_ahead++;
			c->backed++;
		}
		if (f->cached_opens == 0 && f->fd >= 0) {
			close(f->fd);
			f->fd = -1;
		}
	}
	pthread_cond_broadcast(&c->done_cv);
	pthread_cond_broadcast(&c->room_cv);
	pthread_mutex_unlock(&c->mu);
}

/* Fetch, verify and place one run a chunk at a time; then make it durable
 * and record it. */
static void fetch_run(mcache *c, fetch_item it, int backing)
{
	mfile *f = it.f;
	uint32_t ok = 0;
	int err = 0, fd;
	char msg[768] = "";
	pthread_mutex_lock(&c->mu);
	fd = mcache_file_fd(c, f);
	pthread_mutex_unlock(&c->mu);
	if (fd < 0) {
		err = fd;
		snprintf(msg, sizeof(msg), "mount cache files/%s: %s", f->name, strerror(-fd));
	}
	for (; !err && ok < it.n; ok++) {
		uint32_t k = it.c0 + ok;
		uint8_t *data;
		size_t len;
		int rc = repo_read_blob(c->r, &f->e->chunks[k].id, BLOB_DATA, &data, &len);
		count_fetch(c);
		if (rc == 0 && len != f->e->chunks[k].size) {
			char hex[OID_HEX_LEN + 1];
			oid_hex(hex, &f->e->chunks[k].id);
			rc = error_set(CAIRN_ECORRUPT, "chunk %s: %zu bytes, the tree says %u", hex, len,
			               f->e->chunks[k].size);
			free(data);
		}
		if (rc < 0) {
			char hex[OID_HEX_LEN + 1];
			oid_hex(hex, &f->e->chunks[k].id);
			err = -EIO;
			/* the chunk is named even when what failed was its index lookup */
			if (strstr(cairn_error_last(), hex))
				snprintf(msg, sizeof(msg), "%s", cairn_error_last());
			else
				snprintf(msg, sizeof(msg), "chunk %s: %s", hex, cairn_error_last());
			break;
		}
		rc = place_chunk(f, fd, k, data);
		free(data);
		if (rc < 0) {
			err = -EIO;
			snprintf(msg, sizeof(msg), "mount cache files/%s: %s", f->name, cairn_error_last());
			break;
		}
	}
	run_done(c, f, it.c0, it.n, ok, err, msg, backing);
}

/* A batch of runs, possibly of several files, read with as few pack reads
 * as their places allow (repo_read_blobs: neighbours in a pack are one
 * range). Slots number the batch's chunks run after run. */
typedef struct batch {
	const fetch_item *it;
	size_t n;
	uint32_t *first;  /* n + 1: the slot of run i's first chunk */
	int *fd;
	uint8_t *placed;  /* per slot */
	buf *plain;       /* the fetcher's: each chunk decompressed here, then placed */
} batch;

/* A fetcher's memory, reused from batch to batch: fresh multi-MiB buffers
 * a batch would each be mapped, faulted in page by page and unmapped. */
typedef struct fetcher_mem {
	buf scratch; /* the packs' ranges */
	buf plain;   /* one chunk's bytes */
} fetcher_mem;

/* Pack ranges go through the page cache, advised ahead (take_advice).
 * REPO_READ_UNCACHED (O_DIRECT for ranges of 1 MiB or more, as a restore
 * reads) cut the server's CPU for a cold full read by about 8% but, with
 * no read-ahead left for a stream, made it slower on a quiet machine
 * (docs/performance.md, session 15, later). */
#define FETCH_READ_FLAGS 0u

static int batch_dst(void *payload, size_t slot, size_t len, uint8_t **out)
{
	(void)slot;
	batch *b = payload;
	b->plain->len = 0;
	if (buf_reserve(b->plain, len) < 0) return ERR_OOM();
	*out = b->plain->data;
	return 0;
}

static int batch_place(void *payload, size_t slot, const uint8_t *plain, size_t len, const char *what)
{
	batch *b = payload;
	size_t lo = 0, hi = b->n;
	while (hi - lo > 1) { /* the run holding slot */
		size_t mid = lo + (hi - lo) / 2;
		if (b->first[mid] <= slot) lo = mid;
		else hi = mid;
	}
	mfile *f = b->it[lo].f;
	uint32_t k = b->it[lo].c0 + (uint32_t)(slot - b->first[lo]);
	if (len != f->e->chunks[k].size)
		return error_set(CAIRN_ECORRUPT, "%s: %zu bytes, the tree says %u", what, len, f->e->chunks[k].size);
	int rc = place_chunk(f, b->fd[lo], k, plain);
	if (rc == 0) b->placed[slot] = 1;
	return rc;
}

/* Fetch a batch of runs. On any failure, what it did not place is fetched
 * again a chunk at a time, so that the error names its own chunk and file. */
static void fetch_batch(mcache *c, const fetch_item *it, size_t n, int backing, fetcher_mem *mem)
{
	batch b = {it, n, NULL, NULL, NULL, &mem->plain};
	oid *ids = NULL;
	int rc = -1;
	if (n == 1 && it[0].n == 1) goto fallback;
	b.first = malloc((n + 1) * sizeof(uint32_t));
	b.fd = malloc(n * sizeof(int));
	if (!b.first || !b.fd) goto fallback;
	b.first[0] = 0;
	for (size_t i = 0; i < n; i++) b.first[i + 1] = b.first[i] + it[i].n;
	ids = malloc(((size_t)b.first[n] + 1) * sizeof(oid));
	b.placed = calloc((size_t)b.first[n] + 1, 1);
	if (!ids || !b.placed) goto fallback;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < n; i++) b.fd[i] = mcache_file_fd(c, it[i].f);
	pthread_mutex_unlock(&c->mu);
	size_t nids = 0;
	for (size_t i = 0; i < n; i++) {
		if (b.fd[i] < 0) goto fallback;
		for (uint32_t k = 0; k < it[i].n; k++) ids[nids++] = it[i].f->e->chunks[it[i].c0 + k].id;
	}
	rc = repo_read_blobs_into(c->r, ids, nids, BLOB_DATA, FETCH_READ_FLAGS, &mem->scratch, batch_dst,
	                          batch_place, &b);
	count_fetch(c);
	if (rc < 0) error_clear();
fallback:
	for (size_t i = 0; i < n; i++) {
		uint32_t k = 0;
		while (k < it[i].n) { /* placed chunks are done, the others fetched again */
			uint32_t k0 = k;
			int placed = b.placed && b.placed[b.first[i] + k];
			while (k < it[i].n && (b.placed && b.placed[b.first[i] + k]) == placed) k++;
			if (placed) run_done(c, it[i].f, it[i].c0 + k0, k - k0, k - k0, 0, "", backing);
			else fetch_run(c, (fetch_item){it[i].f, it[i].c0 + k0, k - k0}, backing);
		}
	}
	free(ids);
	free(b.first);
	free(b.fd);
	free(b.placed);
}

/* Under c->mu, after a fetcher took its batch from queue q: the chunks of
 * the runs next in line that no fetcher advised yet, up to ADVISE_BYTES,
 * into ids (room for ADVISE_CHUNKS). Their pack ranges are then advised
 * to the store (repo_advise_blobs) by this fetcher, not by a reader: a
 * store that stalls must hold up fetchers only, whose waits readers bound. */
static size_t take_advice(fifo *q, oid *ids)
{
	size_t n = 0;
	uint64_t bytes = 0;
	for (; q->advised < q->len && bytes < ADVISE_BYTES; q->advised++) {
		const fetch_item *it = &q->v[q->head + q->advised];
		if (n + it->n > ADVISE_CHUNKS) break;
		for (uint32_t k = 0; k < it->n; k++) ids[n++] = it->f->e->chunks[it->c0 + k].id;
		bytes += it->f->cstart[it->c0 + it->n] - it->f->cstart[it->c0];
	}
	return n;
}

void *mcache_fetcher(void *arg)
{
	mcache *c = arg;
	fetch_item items[BATCH_RUNS];
	oid advice[ADVISE_CHUNKS];
	fetcher_mem mem;
	buf_init(&mem.scratch);
	buf_init(&mem.plain);
	pthread_mutex_lock(&c->mu);
	for (;;) {
		int p = 0;
		while (p < NPRIO && c->q[p].len == 0) p++;
		if (c->stop) break;
		if (p == NPRIO) {
			pthread_cond_wait(&c->work_cv, &c->mu);
			continue;
		}
		/* the queue's next runs, up to a batch: neighbours in a pack
		 * (a file's chunks, the small files of a directory) share reads.
		 * While other fetchers are idle, this one takes only its share of
		 * the queue's bytes (small files stay one batch), so that a
		 * sequential reader's read-ahead is verified by several at once,
		 * a core each, instead of one after the other; when all are busy
		 * the queue grows and batches with it. */
		unsigned idle = c->live > c->running ? c->live - c->running : 1;
		uint64_t most = c->q[p].bytes / idle;
		if (most < SHARE_MIN_BYTES) most = SHARE_MIN_BYTES;
		if (most > BATCH_BYTES) most = BATCH_BYTES;
		size_t n = 0;
		uint64_t bytes = 0;
		while (c->q[p].len > 0 && n < BATCH_RUNS && bytes < most) {
			fetch_item it = c->q[p].v[c->q[p].head++];
			c->q[p].len--;
			items[n++] = it;
			bytes += it.f->cstart[it.c0 + it.n] - it.f->cstart[it.c0];
		}
		c->q[p].bytes -= bytes;
		c->q[p].advised = c->q[p].advised > n ? c->q[p].advised - n : 0;
		if (c->q[p].len == 0) c->q[p].head = 0;
		size_t nadvice = take_advice(&c->q[p], advice);
		c->running++;
		pthread_mutex_unlock(&c->mu);
		if (nadvice) repo_advise_blobs(c->r, advice, nadvice, BLOB_DATA, FETCH_READ_FLAGS);
		fetch_batch(c, items, n, p != PRIO_HYDRATE, &mem);
		pthread_mutex_lock(&c->mu);
		c->running--;
	}
	c->live--;
	pthread_cond_broadcast(&c->room_cv);
	pthread_mutex_unlock(&c->mu);
	buf_free(&mem.scratch);
	buf_free(&mem.plain);
	return NULL;
}

/* ---- readers -------------------------------------------------------------- */

/* The chunks holding file bytes [off, off + len): [*c0, *c1), empty when the
 * range is all hole. */
static void chunks_of(const mfile *f, uint64_t off, uint64_t len, uint32_t *c0, uint32_t *c1)
{
	uint64_t end = off + len, d0 = UINT64_MAX, d1 = 0;
	*c0 = *c1 = 0;
	for (uint32_t x = 0; x < nextents(f); x++) {
		tree_extent ex = extent_at(f, x);
		if (ex.offset + ex.length <= off) continue;
		if (ex.offset >= end) break;
		uint64_t a = ex.offset > off ? ex.offset : off;
		uint64_t b = ex.offset + ex.length < end ? ex.offset + ex.length : end;
		if (a >= b) continue;
		if (d0 == UINT64_MAX) d0 = f->xstart[x] + (a - ex.offset);
		d1 = f->xstart[x] + (b - ex.offset);
	}
	if (d0 == UINT64_MAX) return;
	uint32_t n = f->e->nchunks, lo = 0, hi = n;
	while (lo < hi) { /* first chunk ending after d0 */
		uint32_t mid = lo + (hi - lo) / 2;
		if (f->cstart[mid + 1] <= d0) lo = mid + 1;
		else hi = mid;
	}
	*c0 = lo;
	hi = n;
	while (lo < hi) { /* first chunk starting at or after d1 */
		uint32_t mid = lo + (hi - lo) / 2;
		if (f->cstart[mid] < d1) lo = mid + 1;
		else hi = mid;
	}
	*c1 = lo;
}

/* The access trace: f (node id) used for the first time. Under c->mu. */
static void trace_first(mcache *c, mfile *f, uint32_t id)
{
	if (f->traced) return;
	f->traced = 1;
	if (c->ntrace == c->tcap) {
		size_t cap = c->tcap ? 2 * c->tcap : 256;
		uint32_t *v = realloc(c->trace, cap * sizeof(*v));
		if (!v) return;
		c->trace = v;
		c->tcap = cap;
	}
	c->trace[c->ntrace++] = id;
}

/* A file's first open (or read): the next files of its directory are likely read
 * next (a program starting, a copy of a tree), and a take wrote them one
 * after the other into its packs. Their chunks are queued as read-ahead,
 * a bounded number of small files, so that their fetch overlaps this one
 * and shares its pack reads. With lead, nothing is queued while the next
 * lead of them are queued or local already: a reader going from file to
 * file tops the read-ahead up in batches, not a file at a time. Not under
 * c->mu. */
static void ahead_siblings(mcache *c, uint32_t id, unsigned lead)
{
	const node_table *t = c->nodes;
	const mnode *nd = &t->v[id], *d = &t->v[nd->parent];
	if (nd->parent == id || d->e->type != TREE_DIR) return;
	const tree *tr = &t->trees[d->tree];
	/* the node's place in its directory: hardlinks other than the first
	 * point into another directory's tree, and are skipped */
	uintptr_t at = (uintptr_t)nd->e, base = (uintptr_t)tr->entries;
	if (at < base || at >= base + tr->n * sizeof(tree_entry)) return;
	uint64_t bytes = 0;
	unsigned files = 0;
	for (size_t i = (at - base) / sizeof(tree_entry) + 1;
	     i < tr->n && files < AHEAD_FILES && bytes < AHEAD_FILE_BYTES; i++) {
		uint32_t k = t->kids[d->kids + i];
		const tree_entry *e = t->v[k].e;
		if (e->type != TREE_REG || e->nchunks == 0 || e->size > AHEAD_FILE_MAX) continue;
		if (lead) {
			pthread_mutex_lock(&c->mu);
			uint32_t slot = t->v[k].file;
			int handled = slot != NO_FILE && c->files[slot]->state[0] != CH_MISSING;
			pthread_mutex_unlock(&c->mu);
			if (handled) {
				if (--lead == 0) return;
				bytes += e->size;
				files++;
				continue;
			}
			lead = 0;
		}
		mfile *f;
		if (mcache_file(c, k, &f) < 0) {
			error_clear(); /* advisory: its own read will say what is wrong */
			return;
		}
		pthread_mutex_lock(&c->mu);
		mcache_queue_missing(c, f, 0, f->e->nchunks, PRIO_AHEAD, 0);
		pthread_mutex_unlock(&c->mu);
		bytes += e->size;
		files++;
	}
}

int mcache_need(mcache *c, mfile *f, uint32_t id, uint64_t off, uint64_t len)
{
	uint32_t c0, c1;
	int rc = 0;
	if (off >= f->e->size) return 0;
	if (len > f->e->size - off) len = f->e->size - off;
	chunks_of(f, off, len, &c0, &c1);
	pthread_mutex_lock(&c->mu);
	trace_first(c, f, id);
	int first = !f->ahead_queued;
	f->ahead_queued = 1;
	if (c0 >= c1) goto done;
	if (mcache_queue_missing(c, f, c0, c1, PRIO_READ, 1) < 0) {
		rc = -ENOMEM;
		goto done;
	}
	/* a reader that stays near where its last read ended (the kernel's
	 * reads of a stream may come a little out of order) doubles the
	 * read-ahead at each step forward, up to a bound: the fetchers keep a
	 * stream's chunks coming several at once; a jump starts over */
	uint32_t win = f->ahead;
	if (win && c0 + win >= f->seq_end && c0 <= f->seq_end + win) {
		if (c1 > f->seq_end) {
			uint32_t most = c->o.readahead > AHEAD_MAX_CHUNKS ? c->o.readahead : AHEAD_MAX_CHUNKS;
			win = win < most / 2 ? 2 * win : most;
			f->seq_end = c1;
		}
	} else {
		win = c->o.readahead;
		f->seq_end = c1;
	}
	f->ahead = win;
	uint32_t ra = win < f->e->nchunks - c1 ? c1 + win : f->e->nchunks;
	mcache_queue_missing(c, f, c1, ra, PRIO_AHEAD, 0);
	if (first && c->o.readahead) { /* fetched while this read waits */
		pthread_mutex_unlock(&c->mu);
		ahead_siblings(c, id, 0);
		pthread_mutex_lock(&c->mu);
	}
	struct timespec dl = deadline(CLOCK_MONOTONIC, c->o.wait_ms);
	for (;;) {
		uint32_t k = c0;
		while (k < c1 && f->state[k] == CH_DONE) k++;
		if (k == c1) break;
		if (f->state[k] == CH_FAILED || c->stop) {
			rc = -EIO;
			break;
		}
		if (pthread_cond_timedwait(&c->done_cv, &c->mu, &dl) == ETIMEDOUT) {
			char path[512], hex[OID_HEX_LEN + 1];
			nodes_path(c->nodes, id, path, sizeof(path));
			oid_hex(hex, &f->e->chunks[k].id);
			logf_(c, "read of %s failed: chunk %s: no answer from the store in %llu ms", path, hex,
			      (unsigned long long)c->o.wait_ms);
			rc = -EIO;
			break;
		}
	}
done:
	pthread_mutex_unlock(&c->mu);
	return rc;
}


void mcache_opened(mcache *c, mfile *f, uint32_t id, int passthrough)
{
	if (!passthrough) return; /* its first read does both, its own chunks first */
	pthread_mutex_lock(&c->mu);
	trace_first(c, f, id); /* no read of it will come */
	int first = !f->ahead_queued;
	f->ahead_queued = 1;
	pthread_mutex_unlock(&c->mu);
	if (first && c->o.readahead) ahead_siblings(c, id, AHEAD_FILES / 2);
}
