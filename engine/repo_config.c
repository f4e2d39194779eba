/* A repository's making and what opening one begins with (repo.h): the
 * config record (encoded, decoded and checked), cairn_repo_init, and the
 * stack of backends a repository reads through (a caller's or one of ours,
 * fault injection, the read caches of remote stores). */
#define ERROR_CLASS "repo" /* its errors are the repository's, as before the split */
#include "repo.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/sys/backend.h"
#include "buf.h"
#include "error.h"
#include "format.h"
#include "io.h"
#include "options.h"
#include "readcache.h"
#include "store_fault.h"
#include "util.h"

static uint8_t *config_encode(const repo_config *c, size_t *len)
{
	buf b;
	buf_init(&b);
	buf_header(&b, MAGIC_CONFIG, 0);
	buf_u32(&b, c->chunk_min);
	buf_u32(&b, c->chunk_avg);
	buf_u32(&b, c->chunk_max);
	buf_u32(&b, (uint32_t)c->zstd_level);
	buf_put(&b, c->secret, sizeof(c->secret));
	buf_u64(&b, (uint64_t)c->created_ns);
	buf_check(&b);
	if (b.oom) {
		buf_free(&b);
		return NULL;
	}
	return buf_take(&b, len);
}

int repo_config_decode(repo_config *c, const uint8_t *data, size_t len)
{
	const uint8_t *body;
	size_t body_len;
	int rc = frame_check(data, len, MAGIC_CONFIG, "config", &body, &body_len);
	if (rc < 0) return rc;
	cursor cur;
	cur_init(&cur, body, body_len);
	c->chunk_min = cur_u32(&cur);
	c->chunk_avg = cur_u32(&cur);
	c->chunk_max = cur_u32(&cur);
	c->zstd_level = (int32_t)cur_u32(&cur);
	cur_copy(&cur, c->secret, sizeof(c->secret));
	c->created_ns = (int64_t)cur_u64(&cur);
	if (cur.bad || cur.left != 0) return error_set(CAIRN_ECORRUPT, "config: bad length");
	if (c->chunk_min < 64 || c->chunk_min > c->chunk_avg || c->chunk_avg > c->chunk_max ||
	    c->chunk_max > MAX_CHUNK_LEN || (c->chunk_avg & (c->chunk_avg - 1)) != 0)
		return error_set(CAIRN_ECORRUPT, "config: bad chunker parameters %u/%u/%u", c->chunk_min,
		                 c->chunk_avg, c->chunk_max);
	if (c->zstd_level < 1 || c->zstd_level > 22)
		return error_set(CAIRN_ECORRUPT, "config: bad zstd level %d", c->zstd_level);
	return 0;
}

/* chunk_max is 4 * chunk_avg and must stay within what readers accept */
_Static_assert(CAIRN_CHUNK_AVG_MAX * 4 <= MAX_CHUNK_LEN, "CAIRN_CHUNK_AVG_MAX too large");

CAIRN_EXTERN int cairn_repo_init(const char *path, const cairn_init_options *opts)
{
	int rc = 0;
	store *st = NULL;
	uint8_t *data = NULL;
	size_t len;
	repo_config c;
	/* version 1 ends at zstd_level: 12 bytes, where open begins at 16 */
	static const size_t sizes[] = {OPTIONS_END(cairn_init_options, zstd_level), sizeof(cairn_init_options)};
	cairn_init_options io = CAIRN_INIT_OPTIONS_INIT;
	if ((rc = options_copy(&io, opts, sizes, 2, "init")) < 0) return rc;
	opts = &io;
	uint32_t avg = opts->chunk_avg ? opts->chunk_avg : DEFAULT_CHUNK_AVG;
	int level = opts->zstd_level ? opts->zstd_level : DEFAULT_ZSTD_LEVEL;
	if (avg < CAIRN_CHUNK_AVG_MIN || avg > CAIRN_CHUNK_AVG_MAX || (avg & (avg - 1)) != 0)
		return error_set(CAIRN_EUSAGE,
		                 "chunk average %u: must be a power of two from %u KiB to %u KiB", avg,
		                 CAIRN_CHUNK_AVG_MIN / 1024, CAIRN_CHUNK_AVG_MAX / 1024);
	if (level < 1 || level > 19)
		return error_set(CAIRN_EUSAGE, "zstd level %d: must be 1 to 19", level);

	if ((rc = store_create(&st, path, opts->open)) < 0) return rc;
	if (store_size(st, "config", &(uint64_t){0}) == 0) {
		rc = error_set(CAIRN_EEXISTS, "repository %s: a repository exists there already", path);
		goto done;
	}

	memset(&c, 0, sizeof(c));
	c.chunk_avg = avg;
	c.chunk_min = avg / 4;
	c.chunk_max = avg * 4;
	c.zstd_level = level;
	if ((rc = io_random(c.secret, sizeof(c.secret))) < 0) goto done;
	c.created_ns = now_ns();
	if (!(data = config_encode(&c, &len))) {
		rc = ERR_OOM();
		goto done;
	}
	/* the config is written last and create-only: it marks a complete repository */
	rc = store_put(st, "config", data, len, STORE_EXCL);
	if (rc == CAIRN_EEXISTS)
		rc = error_set(CAIRN_EEXISTS, "repository %s: a repository exists there already", path);
done:
	free(data);
	store_free(st);
	return rc;
}

/* The repository's knowledge of its layout, for the read caches: packs
 * and index segments never change once written. */
static readcache_kind object_caching(const char *name)
{
	if (strncmp(name, "packs/", 6) == 0) return READCACHE_BLOCKS;
	if (strncmp(name, "index/", 6) == 0) return READCACHE_WHOLE;
	return READCACHE_NONE;
}

int repo_store_open(store **out, const char *path, const cairn_repo_open_options *o)
{
	int rc;
	*out = NULL;
	if (o && o->fault) io_fault_configure(o->fault);
	if (o && o->backend) {
		if (!o->backend->ops || o->backend->ops->version < 1 ||
		    o->backend->ops->version > CAIRN_BACKEND_OPS_VERSION) {
			rc = error_set(CAIRN_EUSAGE, "repository %s: backend ops version %u: this library knows 1 to %u",
			               path, o->backend->ops ? o->backend->ops->version : 0, CAIRN_BACKEND_OPS_VERSION);
			if (o->backend->ops && o->backend->ops->free) o->backend->ops->free(o->backend);
			return rc;
		}
		*out = o->backend;
	} else if ((rc = store_open(out, path, o)) < 0) {
		return rc;
	}
	if (o && store_fault_wanted(o->fault) && (rc = store_fault_wrap(out, *out, o->fault)) < 0) return rc;
	if (!store_round_trips(*out)) return 0;
	return readcache_wrap(out, *out, object_caching);
}
