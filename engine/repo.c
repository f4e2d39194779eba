/* Repository: init, open, config, and the shared read paths. */
#include "repo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "format.h"
#include "io.h"
#include "pack.h"
#include "gc.h"

#define CONFIG_MAX 4096
#define SEGMENT_MAX (1024u * 1024u * 1024u)
#define MANIFEST_MAX (16u * 1024u * 1024u)

int repo_random(void *out, size_t len)
{
	uint8_t *p = out;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR) continue;
			return error_errno(CAIRN_EIO, errno, "getrandom");
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void repo_pack_name(char out[64], const uint8_t pack_id[PACK_ID_LEN])
{
	char hex[2 * PACK_ID_LEN + 1];
	hex_encode(hex, pack_id, PACK_ID_LEN);
	snprintf(out, 64, "packs/%.2s/%s", hex, hex);
}

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

static int config_decode(repo_config *c, const uint8_t *data, size_t len)
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

int repo_config_decode(repo_config *c, const uint8_t *data, size_t len)
{
	return config_decode(c, data, len);
}

CAIRN_EXTERN int cairn_repo_init(const char *path, const cairn_init_options *opts)
{
	int rc = 0;
	store *st = NULL;
	uint8_t *data = NULL;
	size_t len;
	repo_config c;
	uint32_t avg = opts && opts->chunk_avg ? opts->chunk_avg : DEFAULT_CHUNK_AVG;
	int level = opts && opts->zstd_level ? opts->zstd_level : DEFAULT_ZSTD_LEVEL;

	if (opts && opts->version != CAIRN_INIT_OPTIONS_VERSION)
		return error_set(CAIRN_EUSAGE, "init: unsupported options version %u", opts->version);
	if (avg < 1024 || avg > MAX_CHUNK_LEN / 4 || (avg & (avg - 1)) != 0)
		return error_set(CAIRN_EUSAGE,
		                 "chunk average %u: must be a power of two from 1 KiB to %u KiB", avg,
		                 MAX_CHUNK_LEN / 4 / 1024);
	if (level < 1 || level > 19)
		return error_set(CAIRN_EUSAGE, "zstd level %d: must be 1 to 19", level);

	if ((rc = store_create(&st, path)) < 0) return rc;
	if (store_size(st, "config", &(uint64_t){0}) == 0) {
		rc = error_set(CAIRN_EEXISTS, "repository %s: a repository exists there already", path);
		goto done;
	}

	memset(&c, 0, sizeof(c));
	c.chunk_avg = avg;
	c.chunk_min = avg / 4;
	c.chunk_max = avg * 4;
	c.zstd_level = level;
	if ((rc = repo_random(c.secret, sizeof(c.secret))) < 0) goto done;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	c.created_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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

CAIRN_EXTERN int cairn_repo_open(cairn_repo **out, const char *path)
{
	int rc;
	uint8_t *data = NULL;
	size_t len;
	cairn_repo *r = calloc(1, sizeof(*r));
	*out = NULL;
	if (!r) return ERR_OOM();
	pthread_mutex_init(&r->lock, NULL);
	r->path = strdup(path);
	if ((rc = store_open(&r->st, path)) < 0) goto fail;
	rc = store_get(r->st, "config", CONFIG_MAX, &data, &len);
	if (rc == CAIRN_ENOTFOUND) {
		rc = error_set(CAIRN_ENOTFOUND, "%s: not a cairn repository (no config)", path);
		goto fail;
	}
	if (rc < 0) goto fail;
	if ((rc = config_decode(&r->cfg, data, len)) < 0) {
		error_prefix("repository %s", path);
		goto fail;
	}
	chunker_init(&r->chunker, r->cfg.secret, r->cfg.chunk_min, r->cfg.chunk_avg, r->cfg.chunk_max);
	gc_session_begin(r); /* before the index is read: gc keeps what this process may use */
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

CAIRN_EXTERN void cairn_repo_free(cairn_repo *r)
{
	if (!r) return;
	gc_session_end(r);
	index_free(r->index);
	index_set_free(r->segs);
	store_free(r->st);
	pthread_mutex_destroy(&r->lock);
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

int repo_index_add(cairn_repo *r, const index_entry *e, size_t n)
{
	int rc = 0;
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < n && rc == 0; i++)
		if (index_insert(r->index, &e[i]) < 0) rc = ERR_OOM();
	pthread_mutex_unlock(&r->lock);
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

int repo_load_tree(cairn_repo *r, const oid *id, tree *out)
{
	uint8_t *data;
	size_t len;
	char what[80], hex[OID_HEX_LEN + 1];
	memset(out, 0, sizeof(*out));
	int rc = repo_read_blob(r, id, BLOB_TREE, &data, &len);
	if (rc < 0) return rc;
	oid_hex(hex, id);
	snprintf(what, sizeof(what), "tree %s", hex);
	rc = tree_decode(out, data, len, what);
	free(data);
	return rc;
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
