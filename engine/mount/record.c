/* The completion records of the cache files, and the syncer that appends
 * to them once what they name is durable (cache.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "mount/cache.h"

/* ---- the completion record ------------------------------------------------ */

/* Open (or start) f's record and mark the chunks it names done. A record
 * that does not match is started over: nothing of it is trusted. */
int mcache_rec_open(mcache *c, mfile *f)
{
	char path[sizeof(f->name) + 16];
	uint8_t h[REC_HEADER_LEN], want[REC_HEADER_LEN];
	struct stat sb;
	snprintf(path, sizeof(path), "files/%s.rec", f->name);
	mcache_rec_header(want, &f->cid, f->e->nchunks);
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
			uint32_t first, n;
			if (mcache_rec_entry_decode(b, &f->cid, f->e->nchunks, &first, &n) < 0)
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

/* A new record: its header and first entry, chunks [first, first + n), in
 * one write (durable with the syncer's next syncfs). */
static int rec_create(mcache *c, mfile *f, uint32_t first, uint32_t n)
{
	char path[sizeof(f->name) + 16];
	uint8_t h[REC_HEADER_LEN + REC_ENTRY_LEN];
	snprintf(path, sizeof(path), "files/%s.rec", f->name);
	mcache_rec_header(h, &f->cid, f->e->nchunks);
	mcache_rec_entry(h + REC_HEADER_LEN, &f->cid, first, n);
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
	mcache_rec_entry(b, &f->cid, first, n);
	off_t end = lseek(f->recfd, 0, SEEK_END);
	if (end < 0 || pwrite(f->recfd, b, sizeof(b), end) != (ssize_t)sizeof(b)) return errno ? -errno : -EIO;
	return 0;
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
		for (size_t i = 0; i < n && !bad; i++) {
			mfile *f = batch[i].f;
			int rc = 0;
			if (f->recfd < 0 && f->rec_new) { /* only this thread makes records */
				int fd = rec_create(c, f, batch[i].c0, batch[i].n);
				pthread_mutex_lock(&c->mu);
				if (fd >= 0) {
					f->recfd = fd;
					f->rec_new = 0;
				}
				pthread_mutex_unlock(&c->mu);
				rc = fd < 0 ? fd : 0;
			} else {
				rc = rec_append(f, batch[i].c0, batch[i].n);
			}
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
