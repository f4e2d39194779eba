/* The chunk cache's files (a content's cache file and its state), the opens
 * and their passthrough backing, the access trace, and the cache's life
 * (cache.h has the whole design). */
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
	if ((rc = mcache_rec_open(c, f)) < 0) goto done;
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

/* ---- opens and passthrough ------------------------------------------------ */

int mcache_open(mcache *c, mfile *f, int devfd, int32_t *backing_id)
{
	int rc = 0;
	*backing_id = -1;
	pthread_mutex_lock(&c->mu);
	if (devfd >= 0 && !c->no_backing && f->ndone == f->e->nchunks && f->cached_opens == 0) {
		/* the cache file (made now for a file of holes only) backs the open */
		int fd = f->backing_id < 0 ? mcache_file_fd(c, f) : -1;
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
		logf_(c, "mount: fetched %llu chunks, %llu bytes, in %llu store calls",
		      (unsigned long long)c->fetched, (unsigned long long)c->fetched_bytes,
		      (unsigned long long)c->fetches);
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

