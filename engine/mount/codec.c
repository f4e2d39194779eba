/* The mount's records as bytes and back (mount/codec.h). */
#define ERROR_CLASS "mount"
#include "mount/codec.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"

/* ---- the access trace ---------------------------------------------------- */

int trace_encode(const oid *snap, const char *const *paths, size_t n, uint8_t **out, size_t *len)
{
	buf b;
	buf_init(&b);
	buf_header(&b, MAGIC_TRACE, 0);
	buf_put(&b, snap->b, OID_LEN);
	buf_u32(&b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		size_t pl = strlen(paths[i]);
		if (pl > UINT16_MAX) pl = 0;
		buf_u16(&b, (uint16_t)pl);
		buf_put(&b, paths[i], pl);
	}
	return buf_finish(&b, out, len);
}

int trace_decode(const uint8_t *data, size_t len, const char *what, oid *snap, uint32_t *npaths, trace_path_fn fn,
                 void *arg)
{
	const uint8_t *body, *p;
	size_t body_len;
	int rc = frame_check(data, len, MAGIC_TRACE, what, &body, &body_len);
	if (rc < 0) return rc;
	cursor c;
	cur_init(&c, body, body_len);
	const uint8_t *id;
	if (cur_bytes(&c, &id, OID_LEN) < 0) return error_set(CAIRN_ECORRUPT, "%s: truncated", what);
	uint32_t n = cur_u32(&c);
	const uint8_t *paths = c.p;
	/* every length first, so that fn sees only a good record's paths */
	for (uint32_t i = 0; i < n && !c.bad; i++) {
		uint16_t pl = cur_u16(&c);
		if (cur_bytes(&c, &p, pl) < 0 || memchr(p, 0, pl)) c.bad = 1;
	}
	if (c.bad || c.left != 0) return error_set(CAIRN_ECORRUPT, "%s: bad length or path", what);
	memcpy(snap->b, id, OID_LEN);
	*npaths = n;
	for (uint32_t i = 0; fn && i < n; i++) {
		size_t pl = get_u16(paths);
		fn(arg, (const char *)paths + 2, pl);
		paths += 2 + pl;
	}
	return 0;
}

/* ---- the mount cache log ------------------------------------------------ */

void mcache_log_header(uint8_t h[MLOG_HEADER_LEN])
{
	memset(h, 0, MLOG_HEADER_LEN);
	memcpy(h, MAGIC_MOUNT_LOG, 8);
	put_u32(h + 8, FORMAT_VERSION);
}

void mcache_log_entry(uint8_t b[MLOG_ENTRY_LEN], const mlog_entry *e)
{
	memcpy(b, e->cid.b, OID_LEN);
	put_u32(b + OID_LEN, e->nchunks);
	put_u32(b + OID_LEN + 4, e->first);
	put_u32(b + OID_LEN + 8, e->count);
	put_u64(b + OID_LEN + 12, hash_xxh3(b, OID_LEN + 12));
}

int mcache_log_entry_decode(const uint8_t b[MLOG_ENTRY_LEN], mlog_entry *e)
{
	uint32_t n = get_u32(b + OID_LEN), f = get_u32(b + OID_LEN + 4), k = get_u32(b + OID_LEN + 8);
	if (get_u64(b + OID_LEN + 12) != hash_xxh3(b, OID_LEN + 12) || f > n || k > n - f) return -1;
	memcpy(e->cid.b, b, OID_LEN);
	e->nchunks = n;
	e->first = f;
	e->count = k;
	return 0;
}

int mcache_log_decode(const uint8_t *data, size_t len, const char *what, size_t *valid)
{
	uint8_t want[MLOG_HEADER_LEN];
	mlog_entry e;
	mcache_log_header(want);
	if (len < MLOG_HEADER_LEN || memcmp(data, want, MLOG_HEADER_LEN) != 0)
		return error_set(CAIRN_ECORRUPT, "%s: not a cache log of this format", what);
	size_t at = MLOG_HEADER_LEN;
	while (len - at >= MLOG_ENTRY_LEN && mcache_log_entry_decode(data + at, &e) == 0) at += MLOG_ENTRY_LEN;
	*valid = at;
	return 0;
}
