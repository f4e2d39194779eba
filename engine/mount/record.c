/* The cache's record log, and the syncer that appends to it once what its
 * entries name is durable (cache.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "mount/cache.h"

/* ---- the record log ------------------------------------------------------ */

static int entry_cmp(const void *a, const void *b)
{
	return memcmp(((const mlog_entry *)a)->cid.b, ((const mlog_entry *)b)->cid.b, OID_LEN);
}

/* Read what fd holds from its start: *out malloc'd, *len its length. */
static int read_all(int fd, uint8_t **out, size_t *len)
{
	struct stat sb;
	*out = NULL;
	*len = 0;
	if (fstat(fd, &sb) < 0) return -errno;
	size_t n = (size_t)sb.st_size, got = 0;
	uint8_t *b = malloc(n ? n : 1);
	if (!b) return -ENOMEM;
	while (got < n) {
		ssize_t k = pread(fd, b + got, n - got, (off_t)got);
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0) {
			free(b);
			return k < 0 ? -errno : -EIO;
		}
		got += (size_t)k;
	}
	*out = b;
	*len = n;
	return 0;
}

/* Open the cache's log (made when missing), cut a torn tail, and keep its
 * good entries, sorted by content, for mcache_rec_apply. A log of another
 * format is started over: nothing of it is trusted. Mounts of one cache
 * may start at once: the check and the cut are made under an exclusive
 * lock, appends (one write a batch, O_APPEND) need none. */
int mcache_log_open(mcache *c)
{
	uint8_t *data = NULL;
	size_t len = 0, valid = 0;
	int rc = 0;
	c->logfd = openat(c->dirfd, MLOG_NAME, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (c->logfd < 0) return error_errno(CAIRN_EIO, errno, "mount cache %s/%s", c->o.dir, MLOG_NAME);
	if (flock(c->logfd, LOCK_EX) < 0 || (rc = read_all(c->logfd, &data, &len)) < 0) {
		rc = error_errno(CAIRN_EIO, rc < 0 ? -rc : errno, "mount cache %s/%s", c->o.dir, MLOG_NAME);
		goto done;
	}
	if (mcache_log_decode(data, len, MLOG_NAME, &valid) < 0) { /* new, or not ours: start over */
		uint8_t h[MLOG_HEADER_LEN];
		mcache_log_header(h);
		if (ftruncate(c->logfd, 0) < 0 || write(c->logfd, h, sizeof(h)) != (ssize_t)sizeof(h) ||
		    fdatasync(c->logfd) < 0) {
			rc = error_errno(CAIRN_EIO, errno ? errno : EIO, "mount cache %s/%s", c->o.dir, MLOG_NAME);
			goto done;
		}
		len = valid = MLOG_HEADER_LEN;
	}
	/* a torn tail goes before anything is appended after it */
	if (valid < len && (ftruncate(c->logfd, (off_t)valid) < 0 || fdatasync(c->logfd) < 0)) {
		rc = error_errno(CAIRN_EIO, errno, "mount cache %s/%s", c->o.dir, MLOG_NAME);
		goto done;
	}
	size_t n = (valid - MLOG_HEADER_LEN) / MLOG_ENTRY_LEN;
	if (n && !(c->logged = malloc(n * sizeof(mlog_entry)))) {
		rc = ERR_OOM();
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		mcache_log_entry_decode(data + MLOG_HEADER_LEN + i * MLOG_ENTRY_LEN, &c->logged[i]);
	if (n) qsort(c->logged, n, sizeof(mlog_entry), entry_cmp); /* an empty log has no array */
	c->nlogged = n;
done:
	if (c->logfd >= 0) flock(c->logfd, LOCK_UN);
	free(data);
	return rc;
}

/* Mark the chunks of f the log names done. Under c->mu. */
void mcache_rec_apply(mcache *c, mfile *f)
{
	size_t lo = 0, hi = c->nlogged;
	while (lo < hi) { /* the first entry of f's content */
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(c->logged[mid].cid.b, f->cid.b, OID_LEN) < 0) lo = mid + 1;
		else hi = mid;
	}
	for (; lo < c->nlogged && !memcmp(c->logged[lo].cid.b, f->cid.b, OID_LEN); lo++) {
		const mlog_entry *e = &c->logged[lo];
		if (e->nchunks != f->e->nchunks) continue; /* cannot be: the id covers the chunk list */
		for (uint32_t i = e->first; i < e->first + e->count; i++)
			if (f->state[i] != CH_DONE) {
				f->state[i] = CH_DONE;
				f->ndone++;
				c->bytes_local += f->e->chunks[i].size;
			}
	}
}

/* The batch's entries in one append. 0, or an errno: then the log's tail
 * may be torn, and this mount appends no more (the next one cuts it). */
static int log_append(mcache *c, const fetch_item *batch, size_t n)
{
	uint8_t *b = malloc(n * MLOG_ENTRY_LEN);
	if (!b) return ENOMEM;
	for (size_t i = 0; i < n; i++) {
		mlog_entry e = {batch[i].f->cid, batch[i].f->e->nchunks, batch[i].c0, batch[i].n};
		mcache_log_entry(b + i * MLOG_ENTRY_LEN, &e);
	}
	ssize_t w = write(c->logfd, b, n * MLOG_ENTRY_LEN);
	int err = w == (ssize_t)(n * MLOG_ENTRY_LEN) ? 0 : w < 0 ? errno : EIO;
	free(b);
	return err;
}

/* Every interval: the fetched runs durable (one syncfs for all files), then
 * their record entries, durable in turn. */
void *mcache_syncer(void *arg)
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
		int lerr = bad ? 0 : log_append(c, batch, n);
		if (lerr) {
			logf_(c, "mount cache %s: %s (what was fetched is fetched again by the next mount)", MLOG_NAME,
			      strerror(lerr));
			pthread_mutex_lock(&c->mu);
			c->log_broken = 1;
			pthread_mutex_unlock(&c->mu);
		}
		if (!bad && !lerr && syncfs(c->dirfd) < 0) bad = errno;
		if (bad) logf_(c, "mount cache: syncfs: %s (what was fetched is fetched again by the next mount)", strerror(bad));
		pthread_mutex_lock(&c->mu);
		free(batch);
		batch = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}
