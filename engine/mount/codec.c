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

/* ---- the mount cache record ---------------------------------------------- */

static uint32_t entry_check(const oid *cid, uint32_t first, uint32_t n)
{
	uint8_t b[OID_LEN + 8];
	memcpy(b, cid->b, OID_LEN);
	put_u32(b + OID_LEN, first);
	put_u32(b + OID_LEN + 4, n);
	return (uint32_t)hash_xxh3(b, sizeof(b));
}

void mcache_rec_header(uint8_t h[REC_HEADER_LEN], const oid *cid, uint32_t nchunks)
{
	memset(h, 0, REC_HEADER_LEN);
	memcpy(h, MAGIC_MOUNT_CACHE, 8);
	put_u32(h + 8, FORMAT_VERSION);
	memcpy(h + FORMAT_HEADER_LEN, cid->b, OID_LEN);
	put_u32(h + FORMAT_HEADER_LEN + OID_LEN, nchunks);
	put_u64(h + REC_HEADER_LEN - 8, hash_xxh3(h, REC_HEADER_LEN - 8));
}

void mcache_rec_entry(uint8_t b[REC_ENTRY_LEN], const oid *cid, uint32_t first, uint32_t count)
{
	put_u32(b, first);
	put_u32(b + 4, count);
	put_u32(b + 8, entry_check(cid, first, count));
}

int mcache_rec_entry_decode(const uint8_t b[REC_ENTRY_LEN], const oid *cid, uint32_t nchunks, uint32_t *first,
                            uint32_t *count)
{
	uint32_t f = get_u32(b), n = get_u32(b + 4);
	if (get_u32(b + 8) != entry_check(cid, f, n) || f > nchunks || n > nchunks - f) return -1;
	*first = f;
	*count = n;
	return 0;
}

int mcache_rec_decode(const uint8_t *data, size_t len, const char *what, oid *cid, uint32_t *nchunks,
                      size_t *valid)
{
	uint8_t want[REC_HEADER_LEN];
	oid id;
	if (len < REC_HEADER_LEN) return error_set(CAIRN_ECORRUPT, "%s: truncated (%zu bytes)", what, len);
	memcpy(id.b, data + FORMAT_HEADER_LEN, OID_LEN);
	uint32_t n = get_u32(data + FORMAT_HEADER_LEN + OID_LEN);
	/* the header as its writer makes it, or nothing of the record is trusted */
	mcache_rec_header(want, &id, n);
	if (memcmp(data, want, REC_HEADER_LEN) != 0) return error_set(CAIRN_ECORRUPT, "%s: bad header", what);
	size_t at = REC_HEADER_LEN;
	uint32_t first, count;
	while (len - at >= REC_ENTRY_LEN && mcache_rec_entry_decode(data + at, &id, n, &first, &count) == 0)
		at += REC_ENTRY_LEN;
	*cid = id;
	*nchunks = n;
	*valid = at;
	return 0;
}
