/* The chunk cache of a mount. A regular file's content (its size, extents
 * and chunk list) is identified by the SHA-256 of those, so two files or two
 * snapshots with the same content share one cache file: files/XX/<cid>, a
 * sparse file of the file's size where each fetched chunk lands at its file
 * offsets (holes are never written). files/XX/<cid>.rec records which
 * chunks are complete (format.h, "mount cache record"): entries are
 * appended only after the data they name is durable, so a later mount
 * trusts exactly what an earlier one finished. Readers do not wait for
 * that: a syncer thread makes the runs fetched in the last interval
 * durable with one syncfs, appends their entries, and syncs again (an
 * fdatasync per chunk would cost more than the fetch).
 *
 * Readers never fetch themselves: they queue runs of missing chunks and wait
 * at most wait_ms for fetcher threads, so a store that stalls gives EIO, not
 * a hung reader. A chunk being fetched is marked so, and a second reader of
 * it waits for the same fetch. Queues by priority: readers, then their
 * read-ahead, then background hydration. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "format.h"
#include "io.h"
#include "mount/fuse_abi.h"
#include "mount/mount.h"
#include "util.h"

enum { CH_MISSING, CH_FETCHING, CH_DONE, CH_FAILED };
enum { PRIO_READ, PRIO_AHEAD, PRIO_HYDRATE, NPRIO };

#define RUN_MAX_CHUNKS 32             /* one fetch batch: one record entry */
#define RUN_READ_CHUNKS 2             /* a reader's runs: small, so that fetchers share them */
#define RUN_MAX_BYTES (8u << 20)
#define REC_HEADER_LEN (FORMAT_HEADER_LEN + OID_LEN + 4 + FORMAT_CHECK_LEN)
#define REC_ENTRY_LEN 12
#define PROGRESS_NS 1000000000LL
#define SYNC_INTERVAL_MS 500
#define FETCHER_EXIT_WAIT_S 3

struct mfile {
	oid cid;
	char name[2 + 1 + OID_HEX_LEN + 1]; /* "XX/<cid hex>" under files/ */
	const tree_entry *e;
	uint32_t node;          /* the node that made it, for log lines */
	uint64_t *cstart;       /* nchunks + 1: data offset where chunk c starts */
	uint64_t *xstart;       /* nextents: data offset where extent x starts */
	uint8_t *state;         /* CH_* per chunk */
	uint8_t *logged;        /* a failure of the chunk was logged */
	uint32_t ndone;
	int fd, recfd;          /* -1 when closed (fd: only once complete) */
	int rec_new;            /* no record yet: the syncer makes it with the first entry */
	int32_t backing_id;
	int cached_opens, pass_opens;
	int traced;
};

typedef struct fetch_item {
	mfile *f;
	uint32_t c0, n;
} fetch_item;

typedef struct fifo {
	fetch_item *v;
	size_t head, len, cap;
} fifo;

struct mcache {
	cairn_repo *r;
	node_table *nodes;
	mcache_options o;
	int dirfd;
	pthread_mutex_t mu;
	pthread_cond_t done_cv, work_cv, room_cv;
	mfile **files;
	size_t nfiles, fcap;
	chunk_index *by_cid;
	uint8_t made[256];      /* files/XX made (by the first byte of the content id) */
	fifo q[NPRIO];
	pthread_t *fetchers;
	unsigned nfetchers, running, live;
	int stop, no_backing;
	uint32_t *trace;
	size_t ntrace, tcap;
	uint64_t bytes_local;   /* data bytes of distinct contents complete in the cache */
	/* runs complete in the file, not yet durable nor recorded (the syncer's) */
	fetch_item *pending;
	size_t npending, pcap;
	pthread_t syncer;
	pthread_cond_t sync_cv;
	int syncing, sync_stop;
	/* hydration */
	pthread_t hydrator;
	int hydrating, hydrate_all;
	uint32_t *order;
	size_t norder;
	cairn_event_cb hcb;
	void *hpayload;
};

#define logf_(c, ...) mount_log((c)->o.log, (c)->o.log_payload, __VA_ARGS__)

/* clock's now plus ms, for timed waits */
static struct timespec deadline(clockid_t clock, uint64_t ms)
{
	struct timespec dl;
	clock_gettime(clock, &dl);
	dl.tv_sec += (time_t)(ms / 1000);
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	return dl;
}

/* ---- the completion record ------------------------------------------------ */

static uint32_t entry_check(const oid *cid, uint32_t first, uint32_t n)
{
	uint8_t b[OID_LEN + 8];
	memcpy(b, cid->b, OID_LEN);
	memcpy(b + OID_LEN, &first, 4);
	memcpy(b + OID_LEN + 4, &n, 4);
	return (uint32_t)hash_xxh3(b, sizeof(b));
}

static void rec_header(uint8_t h[REC_HEADER_LEN], const mfile *f)
{
	memset(h, 0, REC_HEADER_LEN);
	memcpy(h, MAGIC_MOUNT_CACHE, 8);
	put_u32(h + 8, FORMAT_VERSION);
	memcpy(h + FORMAT_HEADER_LEN, f->cid.b, OID_LEN);
	put_u32(h + FORMAT_HEADER_LEN + OID_LEN, f->e->nchunks);
	put_u64(h + REC_HEADER_LEN - 8, hash_xxh3(h, REC_HEADER_LEN - 8));
}

/* Open (or start) f's record and mark the chunks it names done. A record
 * that does not match is started over: nothing of it is trusted. */
static int rec_open(mcache *c, mfile *f)
{
	char path[sizeof(f->name) + 16];
	uint8_t h[REC_HEADER_LEN], want[REC_HEADER_LEN];
	struct stat sb;
	snprintf(path, sizeof(path), "files/%s.rec", f->name);
	rec_header(want, f);
	f->recfd = openat(c->dirfd, path, O_RDWR | O_CLOEXEC);
	if (f->recfd < 0 && errno == ENOENT) { /* nothing of it is local yet */
		f->rec_new = 1;
		return 0;
	}
	if (f->recfd < 0) return error_errno(CAIRN_EIO, errno, "mount cache %s", path);
	if (fstat(f->recfd, &sb) < 0) return error_errno(CAIRN_EIO, errno, "mount cache %s", path);
	uint64_t valid = 0;
	if ((uint64_t)sb.st_size >= REC_HEADER_LEN && pread(f->recfd, h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
	    memcmp(h, want, sizeof(h)) == 0) {
		valid = REC_HEADER_LEN;
		uint8_t b[REC_ENTRY_LEN];
		while (valid + REC_ENTRY_LEN <= (uint64_t)sb.st_size &&
		       pread(f->recfd, b, sizeof(b), (off_t)valid) == (ssize_t)sizeof(b)) {
			uint32_t first = get_u32(b), n = get_u32(b + 4);
			if (get_u32(b + 8) != entry_check(&f->cid, first, n) || first > f->e->nchunks ||
			    n > f->e->nchunks - first)
				break; /* torn at a crash: what follows is not trusted */
			for (uint32_t i = first; i < first + n; i++)
				if (f->state[i] != CH_DONE) {
					f->state[i] = CH_DONE;
					f->ndone++;
					c->bytes_local += f->e->chunks[i].size;
				}
			valid += REC_ENTRY_LEN;
		}
	}
	if (valid == (uint64_t)sb.st_size) return 0;
	/* a bad tail (or header) goes before anything is appended after it */
	if (valid == 0) {
		close(f->recfd);
		f->recfd = -1;
		f->rec_new = 1;
		return 0;
	}
	if (ftruncate(f->recfd, (off_t)valid) < 0 || fdatasync(f->recfd) < 0)
		return error_errno(CAIRN_EIO, errno, "mount cache %s", path);
	return 0;
}

/* A new record: its header (durable with the syncer's next syncfs). */
static int rec_create(mcache *c, mfile *f)
{
	char path[sizeof(f->name) + 16];
	uint8_t h[REC_HEADER_LEN];
	snprintf(path, sizeof(path), "files/%s.rec", f->name);
	rec_header(h, f);
	int fd = openat(c->dirfd, path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || pwrite(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		int err = errno ? errno : EIO;
		if (fd >= 0) close(fd);
		return -err;
	}
	return fd;
}

static int rec_append(mfile *f, uint32_t first, uint32_t n)
{
	uint8_t b[REC_ENTRY_LEN];
	put_u32(b, first);
	put_u32(b + 4, n);
	put_u32(b + 8, entry_check(&f->cid, first, n));
	off_t end = lseek(f->recfd, 0, SEEK_END);
	if (end < 0 || pwrite(f->recfd, b, sizeof(b), end) != (ssize_t)sizeof(b)) return errno ? -errno : -EIO;
	return 0;
}

/* ---- files ---------------------------------------------------------------- */

static void file_free(mfile *f)
{
	if (!f) return;
	if (f->fd >= 0) close(f->fd);
	if (f->recfd >= 0) close(f->recfd);
	free(f->cstart);
	free(f->xstart);
	free(f->state);
	free(f->logged);
	free(f);
}

static int content_id(oid *out, const tree_entry *e)
{
	size_t n = 16 + (size_t)e->nextents * 16 + (size_t)e->nchunks * (OID_LEN + 4);
	uint8_t *b = malloc(n), *p = b;
	if (!b) return ERR_OOM();
	put_u64(p, e->size);
	put_u32(p + 8, e->nextents);
	put_u32(p + 12, e->nchunks);
	p += 16;
	for (uint32_t i = 0; i < e->nextents; i++, p += 16) {
		put_u64(p, e->extents[i].offset);
		put_u64(p + 8, e->extents[i].length);
	}
	for (uint32_t i = 0; i < e->nchunks; i++, p += OID_LEN + 4) {
		memcpy(p, e->chunks[i].id.b, OID_LEN);
		put_u32(p + OID_LEN, e->chunks[i].size);
	}
	hash_sha256(out, b, n);
	free(b);
	return 0;
}

/* Check e's extents and chunks against its size (as restore does) and lay
 * out where each chunk's and extent's data starts. */
static int file_layout(mfile *f, const char *path)
{
	const tree_entry *e = f->e;
	uint32_t nx = e->nextents ? e->nextents : 1;
	uint64_t end = 0, data = 0, sum = 0;
	f->cstart = malloc(((size_t)e->nchunks + 1) * sizeof(uint64_t));
	f->xstart = malloc((size_t)nx * sizeof(uint64_t));
	f->state = calloc((size_t)e->nchunks + 1, 1);
	f->logged = calloc((size_t)e->nchunks + 1, 1);
	if (!f->cstart || !f->xstart || !f->state || !f->logged) return ERR_OOM();
	for (uint32_t i = 0; i < e->nextents; i++) {
		const tree_extent *x = &e->extents[i];
		if (x->length > e->size || x->offset > e->size - x->length || x->offset < end)
			return error_set(CAIRN_ECORRUPT, "%s: extent %u out of order or past its size", path, i);
		end = x->offset + x->length;
		f->xstart[i] = data;
		data += x->length;
	}
	if (!e->nextents) {
		f->xstart[0] = 0;
		data = e->size;
	}
	for (uint32_t i = 0; i < e->nchunks; i++) {
		f->cstart[i] = sum;
		sum += e->chunks[i].size;
	}
	f->cstart[e->nchunks] = sum;
	if (sum != data)
		return error_set(CAIRN_ECORRUPT, "%s: chunks hold %llu bytes, extents %llu", path,
		                 (unsigned long long)sum, (unsigned long long)data);
	return 0;
}

static tree_extent extent_at(const mfile *f, uint32_t x)
{
	if (f->e->nextents) return f->e->extents[x];
	return (tree_extent){0, f->e->size};
}
static uint32_t nextents(const mfile *f) { return f->e->nextents ? f->e->nextents : 1; }

/* The cache file, opened (and sized) on first use. Under c->mu. */
static int file_fd(mcache *c, mfile *f)
{
	if (f->fd >= 0) return f->fd;
	char path[sizeof(f->name) + 8];
	snprintf(path, sizeof(path), "files/%s", f->name);
	int fd = openat(c->dirfd, path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0) {
		int err = errno;
		if (fd >= 0) close(fd);
		return -err;
	}
	if ((uint64_t)sb.st_size != f->e->size && ftruncate(fd, (off_t)f->e->size) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	f->fd = fd;
	return fd;
}

int mcache_file(mcache *c, uint32_t id, mfile **out)
{
	int rc = 0;
	mfile *f = NULL;
	*out = NULL;
	pthread_mutex_lock(&c->mu);
	mnode *nd = &c->nodes->v[id];
	if (nd->file != NO_FILE) {
		*out = c->files[nd->file];
		goto done;
	}
	oid cid;
	if ((rc = content_id(&cid, nd->e)) < 0) goto done;
	const index_entry *at = index_key_get(c->by_cid, cid.b, OID_LEN);
	if (at) {
		nd->file = at->offset;
		*out = c->files[at->offset];
		goto done;
	}
	char path[512];
	nodes_path(c->nodes, id, path, sizeof(path));
	if (!(f = calloc(1, sizeof(*f)))) {
		rc = ERR_OOM();
		goto done;
	}
	f->cid = cid;
	f->e = nd->e;
	f->node = id;
	f->fd = f->recfd = f->backing_id = -1;
	char hex[OID_HEX_LEN + 1];
	oid_hex(hex, &cid);
	snprintf(f->name, sizeof(f->name), "%.2s/%s", hex, hex);
	if ((rc = file_layout(f, path)) < 0) goto done;
	char sub[16];
	snprintf(sub, sizeof(sub), "files/%.2s", hex);
	if (!c->made[cid.b[0]]) {
		if (mkdirat(c->dirfd, sub, 0700) < 0 && errno != EEXIST) {
			rc = error_errno(CAIRN_EIO, errno, "mount cache %s", sub);
			goto done;
		}
		c->made[cid.b[0]] = 1;
	}
	if ((rc = rec_open(c, f)) < 0) goto done;
	if (f->ndone == f->e->nchunks && f->recfd >= 0) {
		close(f->recfd);
		f->recfd = -1;
	}
	if (c->nfiles == c->fcap) {
		size_t cap = c->fcap ? 2 * c->fcap : 1024;
		mfile **v = realloc(c->files, cap * sizeof(*v));
		if (!v) {
			rc = ERR_OOM();
			goto done;
		}
		c->files = v;
		c->fcap = cap;
	}
	if ((rc = index_key_put(c->by_cid, cid.b, OID_LEN, (uint32_t)c->nfiles)) < 0) goto done;
	nd->file = (uint32_t)c->nfiles;
	c->files[c->nfiles++] = f;
	*out = f;
	f = NULL;
done:
	pthread_mutex_unlock(&c->mu);
	file_free(f);
	return rc;
}

int mcache_fd(mfile *f) { return f->fd; }

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
	return 0;
}

/* Queue f's chunks [c0, c1) that are missing (failed ones too when retry),
 * in runs, marked as being fetched. Under c->mu. */
static int queue_missing(mcache *c, mfile *f, uint32_t c0, uint32_t c1, int prio, int retry)
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

/* Fetch, verify and place one run; then make it durable and record it. */
static void fetch_run(mcache *c, fetch_item it)
{
	mfile *f = it.f;
	uint32_t ok = 0;
	int err = 0, fd;
	char msg[768] = "";
	pthread_mutex_lock(&c->mu);
	fd = file_fd(c, f);
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
	pthread_mutex_lock(&c->mu);
	/* readers may use the bytes now; the record waits until they are durable */
	if (ok > 0 && (f->recfd >= 0 || f->rec_new)) {
		if (c->npending == c->pcap) {
			size_t cap = c->pcap ? 2 * c->pcap : 256;
			fetch_item *v = realloc(c->pending, cap * sizeof(*v));
			if (v) {
				c->pending = v;
				c->pcap = cap;
			}
		}
		if (c->npending < c->pcap) {
			c->pending[c->npending++] = (fetch_item){f, it.c0, ok};
			pthread_cond_signal(&c->sync_cv);
		}
	}
	for (uint32_t k = it.c0; k < it.c0 + ok; k++) {
		f->state[k] = CH_DONE;
		f->ndone++;
		c->bytes_local += f->e->chunks[k].size;
	}
	for (uint32_t k = it.c0 + ok; k < it.c0 + it.n; k++) f->state[k] = err ? CH_FAILED : CH_MISSING;
	if (err && !f->logged[it.c0 + ok]) {
		char path[512];
		f->logged[it.c0 + ok] = 1;
		nodes_path(c->nodes, f->node, path, sizeof(path));
		logf_(c, "read of %s failed: %s", path, msg);
	}
	if (f->ndone == f->e->nchunks) {
		if (f->cached_opens == 0 && f->fd >= 0) {
			close(f->fd);
			f->fd = -1;
		}
	}
	pthread_cond_broadcast(&c->done_cv);
	pthread_cond_broadcast(&c->room_cv);
	pthread_mutex_unlock(&c->mu);
}

static void *fetcher(void *arg)
{
	mcache *c = arg;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		int p = 0;
		while (p < NPRIO && c->q[p].len == 0) p++;
		if (c->stop) break;
		if (p == NPRIO) {
			pthread_cond_wait(&c->work_cv, &c->mu);
			continue;
		}
		fetch_item it = c->q[p].v[c->q[p].head++];
		c->q[p].len--;
		if (c->q[p].len == 0) c->q[p].head = 0;
		c->running++;
		pthread_mutex_unlock(&c->mu);
		fetch_run(c, it);
		pthread_mutex_lock(&c->mu);
		c->running--;
	}
	c->live--;
	pthread_cond_broadcast(&c->room_cv);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Every interval: the fetched runs durable (one syncfs for all files), then
 * their record entries, durable in turn. */
static void *syncer(void *arg)
{
	mcache *c = arg;
	fetch_item *batch = NULL;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		if (c->npending == 0) {
			if (c->sync_stop) break;
			pthread_cond_wait(&c->sync_cv, &c->mu);
			continue;
		}
		if (!c->sync_stop) { /* gather an interval's worth */
			struct timespec dl = deadline(CLOCK_REALTIME, SYNC_INTERVAL_MS);
			while (!c->sync_stop && pthread_cond_timedwait(&c->sync_cv, &c->mu, &dl) != ETIMEDOUT) {}
		}
		size_t n = c->npending;
		batch = c->pending;
		c->pending = NULL;
		c->npending = c->pcap = 0;
		pthread_mutex_unlock(&c->mu);
		int bad = syncfs(c->dirfd) < 0 ? errno : 0;
		for (size_t i = 0; i < n && !bad; i++) {
			mfile *f = batch[i].f;
			int rc = 0;
			if (f->recfd < 0 && f->rec_new) { /* only this thread makes records */
				int fd = rec_create(c, f);
				pthread_mutex_lock(&c->mu);
				if (fd >= 0) {
					f->recfd = fd;
					f->rec_new = 0;
				}
				pthread_mutex_unlock(&c->mu);
				rc = fd < 0 ? fd : 0;
			}
			if (rc == 0) rc = rec_append(f, batch[i].c0, batch[i].n);
			if (rc < 0) logf_(c, "mount cache files/%s.rec: %s", f->name, strerror(-rc));
		}
		if (!bad && syncfs(c->dirfd) < 0) bad = errno;
		if (bad) logf_(c, "mount cache: syncfs: %s (what was fetched is fetched again by the next mount)", strerror(bad));
		pthread_mutex_lock(&c->mu);
		/* a complete file's record is closed once its last entry is in */
		for (size_t i = 0; i < n; i++) {
			mfile *f = batch[i].f;
			if (f->ndone == f->e->nchunks && f->recfd >= 0) {
				int more = 0;
				for (size_t k = 0; k < c->npending && !more; k++) more = c->pending[k].f == f;
				if (!more) {
					close(f->recfd);
					f->recfd = -1;
				}
			}
		}
		free(batch);
		batch = NULL;
	}
	pthread_mutex_unlock(&c->mu);
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

int mcache_need(mcache *c, mfile *f, uint32_t id, uint64_t off, uint64_t len)
{
	uint32_t c0, c1;
	int rc = 0;
	if (off >= f->e->size) return 0;
	if (len > f->e->size - off) len = f->e->size - off;
	chunks_of(f, off, len, &c0, &c1);
	pthread_mutex_lock(&c->mu);
	if (!f->traced) {
		f->traced = 1;
		if (c->ntrace == c->tcap) {
			size_t cap = c->tcap ? 2 * c->tcap : 256;
			uint32_t *v = realloc(c->trace, cap * sizeof(*v));
			if (v) {
				c->trace = v;
				c->tcap = cap;
			}
		}
		if (c->ntrace < c->tcap) c->trace[c->ntrace++] = id;
	}
	if (c0 >= c1) goto done;
	if (queue_missing(c, f, c0, c1, PRIO_READ, 1) < 0) {
		rc = -ENOMEM;
		goto done;
	}
	uint32_t ra = c1 + c->o.readahead < f->e->nchunks ? c1 + c->o.readahead : f->e->nchunks;
	queue_missing(c, f, c1, ra, PRIO_AHEAD, 0);
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

/* ---- opens and passthrough ------------------------------------------------ */

int mcache_open(mcache *c, mfile *f, int devfd, int32_t *backing_id)
{
	int rc = 0;
	*backing_id = -1;
	pthread_mutex_lock(&c->mu);
	if (devfd >= 0 && !c->no_backing && f->ndone == f->e->nchunks && f->cached_opens == 0) {
		/* the cache file (made now for a file of holes only) backs the open */
		int fd = f->backing_id < 0 ? file_fd(c, f) : -1;
		if (fd >= 0) {
			struct cairn_fuse_backing_map map = {fd, 0, 0};
			int id = ioctl(devfd, CAIRN_FUSE_DEV_IOC_BACKING_OPEN, &map);
			if (id < 0) {
				c->no_backing = 1;
				logf_(c, "passthrough refused (%s): whole files are read through the server",
				      strerror(errno));
			} else {
				f->backing_id = id;
			}
			if (f->cached_opens == 0) { /* the kernel holds the file now */
				close(f->fd);
				f->fd = -1;
			}
		}
		if (f->backing_id >= 0) {
			f->pass_opens++;
			*backing_id = f->backing_id;
			goto done;
		}
	}
	if (f->ndone < f->e->nchunks || f->fd < 0) {
		int fd = file_fd(c, f);
		if (fd < 0) {
			rc = fd;
			logf_(c, "mount cache files/%s: %s", f->name, strerror(-fd));
			goto done;
		}
	}
	f->cached_opens++;
done:
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void mcache_release(mcache *c, mfile *f, int32_t backing_id)
{
	pthread_mutex_lock(&c->mu);
	if (backing_id >= 0) {
		if (f->pass_opens > 0) f->pass_opens--;
	} else if (f->cached_opens > 0 && --f->cached_opens == 0 && f->ndone == f->e->nchunks &&
	           f->fd >= 0) {
		close(f->fd); /* complete and unused: no descriptor kept per file */
		f->fd = -1;
	}
	pthread_mutex_unlock(&c->mu);
}

void mcache_backing_close(mcache *c, int devfd)
{
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->nfiles; i++)
		if (c->files[i]->backing_id >= 0) {
			uint32_t id = (uint32_t)c->files[i]->backing_id;
			ioctl(devfd, CAIRN_FUSE_DEV_IOC_BACKING_CLOSE, &id);
			c->files[i]->backing_id = -1;
		}
	pthread_mutex_unlock(&c->mu);
}

size_t mcache_trace(mcache *c, uint32_t **out)
{
	pthread_mutex_lock(&c->mu);
	size_t n = c->ntrace;
	*out = malloc((n ? n : 1) * sizeof(uint32_t));
	if (*out && n) memcpy(*out, c->trace, n * sizeof(uint32_t));
	pthread_mutex_unlock(&c->mu);
	return *out ? n : 0;
}

/* ---- hydration ------------------------------------------------------------ */

static void hydrate_event(mcache *c, int done, int64_t t0)
{
	if (!c->hcb) return;
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = done ? CAIRN_EVENT_STATE : CAIRN_EVENT_PROGRESS;
	ev.state = done ? "hydrated" : NULL;
	pthread_mutex_lock(&c->mu);
	ev.bytes = c->bytes_local;
	pthread_mutex_unlock(&c->mu);
	ev.total_bytes = c->nodes->data_bytes;
	ev.total_files = c->nodes->files;
	ev.ms = (uint64_t)((mono_ns() - t0) / 1000000);
	c->hcb(&ev, c->hpayload);
}

/* Queue one file's missing chunks behind every reader's, a few runs at a
 * time so that a reader's fetch never waits behind a long queue. */
static void hydrate_file(mcache *c, uint32_t id)
{
	mfile *f;
	if (c->nodes->v[id].e->type != TREE_REG || c->nodes->v[id].e->nchunks == 0) return;
	if (mcache_file(c, id, &f) < 0) {
		logf_(c, "hydration: %s", cairn_error_last());
		return;
	}
	pthread_mutex_lock(&c->mu);
	for (uint32_t k = 0; k < f->e->nchunks && !c->stop;) {
		while (!c->stop && c->q[PRIO_HYDRATE].len + c->q[PRIO_READ].len >= c->nfetchers)
			pthread_cond_wait(&c->room_cv, &c->mu);
		uint32_t end = k + RUN_MAX_CHUNKS < f->e->nchunks ? k + RUN_MAX_CHUNKS : f->e->nchunks;
		queue_missing(c, f, k, end, PRIO_HYDRATE, 0);
		k = end;
	}
	pthread_mutex_unlock(&c->mu);
}

static void *hydrator(void *arg)
{
	mcache *c = arg;
	int64_t t0 = mono_ns(), last = t0;
	node_table *t = c->nodes;
	for (size_t i = 0; i < c->norder && !c->stop; i++)
		if (c->order[i] > 0 && c->order[i] < t->n) hydrate_file(c, c->order[i]);
	for (size_t id = 1; c->hydrate_all && id < t->n && !c->stop; id++) {
		hydrate_file(c, (uint32_t)id);
		if (mono_ns() - last >= PROGRESS_NS) {
			hydrate_event(c, 0, t0);
			last = mono_ns();
		}
	}
	/* the last runs: wait until every queue has drained */
	pthread_mutex_lock(&c->mu);
	for (;;) {
		int busy = c->running > 0;
		for (int p = 0; p < NPRIO; p++) busy |= c->q[p].len > 0;
		if (!busy || c->stop) break;
		struct timespec dl = deadline(CLOCK_REALTIME, 1000);
		pthread_cond_timedwait(&c->room_cv, &c->mu, &dl);
	}
	int stopped = c->stop;
	pthread_mutex_unlock(&c->mu);
	if (!stopped) hydrate_event(c, 1, t0);
	return NULL;
}

int mcache_hydrate(mcache *c, const uint32_t *order, size_t n, int all, cairn_event_cb cb,
                   void *payload)
{
	c->hydrate_all = all;
	if (n) {
		if (!(c->order = malloc(n * sizeof(uint32_t)))) return ERR_OOM();
		memcpy(c->order, order, n * sizeof(uint32_t));
	}
	c->norder = n;
	c->hcb = cb;
	c->hpayload = payload;
	if (pthread_create(&c->hydrator, NULL, hydrator, c) != 0)
		return error_set(CAIRN_EIO, "mount: cannot start the hydration thread");
	c->hydrating = 1;
	return 0;
}

/* ---- life ----------------------------------------------------------------- */

int mcache_new(mcache **out, cairn_repo *r, node_table *nodes, const mcache_options *o)
{
	int rc;
	pthread_condattr_t ca;
	mcache *c = calloc(1, sizeof(*c));
	*out = NULL;
	if (!c) return ERR_OOM();
	c->r = r;
	c->nodes = nodes;
	c->o = *o;
	c->dirfd = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->done_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&c->work_cv, NULL);
	pthread_cond_init(&c->room_cv, NULL);
	pthread_cond_init(&c->sync_cv, NULL);
	if (io_mkdir_parents(o->dir, 0700) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "mount cache %s", o->dir);
		goto fail;
	}
	c->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0 || (mkdirat(c->dirfd, "files", 0700) < 0 && errno != EEXIST)) {
		rc = error_errno(CAIRN_EIO, errno, "mount cache %s", o->dir);
		goto fail;
	}
	if ((rc = index_new(&c->by_cid)) < 0) goto fail;
	if (!(c->fetchers = calloc(o->fetchers, sizeof(pthread_t)))) {
		rc = ERR_OOM();
		goto fail;
	}
	for (unsigned i = 0; i < o->fetchers; i++) {
		if (pthread_create(&c->fetchers[i], NULL, fetcher, c) != 0) break;
		pthread_mutex_lock(&c->mu);
		c->nfetchers++;
		c->live++;
		pthread_mutex_unlock(&c->mu);
	}
	if (c->nfetchers == 0 || pthread_create(&c->syncer, NULL, syncer, c) != 0) {
		rc = error_set(CAIRN_EIO, "mount: cannot start fetcher threads");
		goto fail;
	}
	c->syncing = 1;
	*out = c;
	return 0;
fail:
	mcache_free(c);
	return rc;
}

void mcache_stop(mcache *c)
{
	if (!c) return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_broadcast(&c->work_cv);
	pthread_cond_broadcast(&c->room_cv);
	pthread_cond_broadcast(&c->done_cv);
	pthread_mutex_unlock(&c->mu);
}

int mcache_free(mcache *c)
{
	if (!c) return 0;
	mcache_stop(c);
	/* A fetcher stuck in a store that stalls may never return: wait a
	 * little, then leave it and what it uses behind (the process is
	 * ending) rather than hang the end of the mount. */
	struct timespec dl = deadline(CLOCK_REALTIME, FETCHER_EXIT_WAIT_S * 1000);
	pthread_mutex_lock(&c->mu);
	while (c->live > 0 && pthread_cond_timedwait(&c->room_cv, &c->mu, &dl) != ETIMEDOUT) {}
	unsigned stuck = c->live;
	pthread_mutex_unlock(&c->mu);
	if (stuck) {
		logf_(c, "mount: %u fetches still wait for the store; left behind", stuck);
		return 1;
	}
	for (unsigned i = 0; i < c->nfetchers; i++) pthread_join(c->fetchers[i], NULL);
	if (c->hydrating) pthread_join(c->hydrator, NULL);
	if (c->syncing) { /* what was fetched is recorded before the end */
		pthread_mutex_lock(&c->mu);
		c->sync_stop = 1;
		pthread_cond_signal(&c->sync_cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->syncer, NULL);
	}
	free(c->pending);
	for (size_t i = 0; i < c->nfiles; i++) file_free(c->files[i]);
	for (int p = 0; p < NPRIO; p++) free(c->q[p].v);
	free(c->files);
	free(c->fetchers);
	free(c->trace);
	free(c->order);
	index_free(c->by_cid);
	if (c->dirfd >= 0) close(c->dirfd);
	pthread_cond_destroy(&c->done_cv);
	pthread_cond_destroy(&c->work_cv);
	pthread_cond_destroy(&c->room_cv);
	pthread_cond_destroy(&c->sync_cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
	return 0;
}
