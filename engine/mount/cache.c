/* The chunk cache's opens and their passthrough backing, the access trace,
 * and the cache's life (cache.h has the whole design). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "mount/cache.h"
#include "io.h"
#include "mount/fuse_abi.h"
#include "util.h"

/* ---- opens and passthrough ------------------------------------------------ */

int mcache_open(mcache *c, mfile *f, int devfd, int32_t *backing_id)
{
	int rc = 0;
	*backing_id = -1;
	pthread_mutex_lock(&c->mu);
	if (devfd >= 0 && f->ndone == f->e->nchunks && f->cached_opens == 0 && mcache_backing_open(c, f) == 0) {
		if (f->backed_ahead) { /* its fetch registered it: opened at last */
			f->backed_ahead = 0;
			c->backed_ahead--;
			c->backed_opened++;
		}
		f->pass_opens++;
		*backing_id = f->backing_id;
		goto done;
	}
	if (f->ndone < f->e->nchunks || f->fd < 0) {
		int fd = mcache_file_fd(c, f);
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

void mcache_passthrough(mcache *c, int devfd)
{
	pthread_mutex_lock(&c->mu);
	c->devfd = devfd;
	pthread_mutex_unlock(&c->mu);
}

void mcache_backing_close(mcache *c, int devfd)
{
	pthread_mutex_lock(&c->mu);
	c->devfd = -1; /* a fetch ending now registers nothing on a closed descriptor */
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
	c->dirfd = c->devfd = c->logfd = -1;
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
	if ((rc = mcache_log_open(c)) < 0) goto fail;
	if ((rc = index_new(&c->by_cid)) < 0) goto fail;
	if (!(c->fetchers = calloc(o->fetchers, sizeof(pthread_t)))) {
		rc = ERR_OOM();
		goto fail;
	}
	for (unsigned i = 0; i < o->fetchers; i++) {
		if (pthread_create(&c->fetchers[i], NULL, mcache_fetcher, c) != 0) break;
		pthread_mutex_lock(&c->mu);
		c->nfetchers++;
		c->live++;
		pthread_mutex_unlock(&c->mu);
	}
	if (c->nfetchers == 0 || pthread_create(&c->syncer, NULL, mcache_syncer, c) != 0) {
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
	if (c->fetched) /* how well reads were batched (one store call may read several ranges) */
		logf_(c, "mount: fetched %llu chunks, %llu bytes, in %llu store calls; %llu files backed for "
		      "passthrough by their fetch, %llu of them opened",
		      (unsigned long long)c->fetched, (unsigned long long)c->fetched_bytes,
		      (unsigned long long)c->fetches, (unsigned long long)c->backed,
		      (unsigned long long)c->backed_opened);
	if (c->hydrating) pthread_join(c->hydrator, NULL);
	if (c->syncing) { /* what was fetched is recorded before the end */
		pthread_mutex_lock(&c->mu);
		c->sync_stop = 1;
		pthread_cond_signal(&c->sync_cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->syncer, NULL);
	}
	free(c->pending);
	for (size_t i = 0; i < c->nfiles; i++) mcache_file_free(c->files[i]);
	for (int p = 0; p < NPRIO; p++) free(c->q[p].v);
	free(c->files);
	free(c->fetchers);
	free(c->trace);
	free(c->order);
	index_free(c->by_cid);
	free(c->logged);
	if (c->logfd >= 0) close(c->logfd);
	if (c->dirfd >= 0) close(c->dirfd);
	pthread_cond_destroy(&c->done_cv);
	pthread_cond_destroy(&c->work_cv);
	pthread_cond_destroy(&c->room_cv);
	pthread_cond_destroy(&c->sync_cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
	return 0;
}

