/* A content's state in the cache: its id, layout and chunk states, made on
 * first use with what the cache's log says is complete, its cache file and its
 * passthrough backing (cache.h). */
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

/* ---- files ---------------------------------------------------------------- */

void mcache_file_free(mfile *f)
{
	if (!f) return;
	if (f->fd >= 0) close(f->fd);
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
	f->fd = f->backing_id = -1;
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
	mcache_rec_apply(c, f);
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
	mcache_file_free(f);
	return rc;
}

int mcache_fd(mfile *f) { return f->fd; }

/* A new cache file of a dense file grows with the chunks written into it
 * (a read needs only its own chunks to be there); one with holes is sized
 * at once, so that a read across a hole finds the file long enough. */
static int has_holes(const mfile *f)
{
	tree_extent x = extent_at(f, 0);
	return f->e->nchunks == 0 || nextents(f) > 1 || x.offset != 0 || x.length != f->e->size;
}

int mcache_file_fd(mcache *c, mfile *f)
{
	if (f->fd >= 0) return f->fd;
	char path[sizeof(f->name) + 8];
	snprintf(path, sizeof(path), "files/%s", f->name);
	struct stat sb;
	int fd = openat(c->dirfd, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600), made = fd >= 0;
	if (fd < 0 && errno == EEXIST) fd = openat(c->dirfd, path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || (!made && fstat(fd, &sb) < 0)) {
		int err = errno;
		if (fd >= 0) close(fd);
		return -err;
	}
	if (made ? has_holes(f) : (uint64_t)sb.st_size != f->e->size) {
		if (ftruncate(fd, (off_t)f->e->size) < 0) {
			int err = errno;
			close(fd);
			return -err;
		}
	}
	f->fd = fd;
	return fd;
}

int mcache_backing_open(mcache *c, mfile *f)
{
	if (f->backing_id >= 0) return 0;
	if (c->devfd < 0 || c->no_backing) return -1;
	int fd = mcache_file_fd(c, f); /* made now for a file of holes only */
	if (fd < 0) return -1;
	struct cairn_fuse_backing_map map = {fd, 0, 0};
	int id = ioctl(c->devfd, CAIRN_FUSE_DEV_IOC_BACKING_OPEN, &map);
	if (id < 0) {
		c->no_backing = 1;
		logf_(c, "passthrough refused (%s): whole files are read through the server", strerror(errno));
	} else {
		f->backing_id = id;
	}
	if (f->cached_opens == 0) { /* the kernel holds the file now */
		close(f->fd);
		f->fd = -1;
	}
	return id < 0 ? -1 : 0;
}
