/* Quotas (codec.h): the records under users/U/ as bytes and back, no I/O. */
#include "codec.h"

#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "format.h"

/* Every record opens with its user's name (user:str). */
static void rec_start(buf *b, const char *magic, uint32_t flags, const char *user)
{
	size_t n = strlen(user);
	buf_init(b);
	buf_header(b, magic, flags);
	buf_u16(b, (uint16_t)n);
	buf_put(b, user, n);
}

static int rec_finish(buf *b, uint8_t **out, size_t *len)
{
	buf_check(b);
	if (b->oom) {
		buf_free(b);
		return ERR_OOM();
	}
	*out = buf_take(b, len);
	return 0;
}

/* Framing checked and the body's user checked against user: *cur is the rest. */
static int rec_open(const uint8_t *data, size_t len, const char *magic, const char *what, const char *user,
                    cursor *cur)
{
	const uint8_t *body, *u;
	size_t blen;
	int rc = frame_check(data, len, magic, what, &body, &blen);
	if (rc < 0) return rc;
	cur_init(cur, body, blen);
	uint16_t ulen = cur_u16(cur);
	if (cur_bytes(cur, &u, ulen) < 0 || ulen != strlen(user) || memcmp(u, user, ulen) != 0)
		return error_set(CAIRN_ECORRUPT, "%s: not a record of user %s", what, user);
	return 0;
}

int quota_limit_encode(const char *user, uint64_t limit, uint8_t **out, size_t *len)
{
	buf b;
	rec_start(&b, MAGIC_USER_QUOTA, 0, user);
	buf_u64(&b, limit);
	return rec_finish(&b, out, len);
}

int quota_limit_decode(const uint8_t *data, size_t len, const char *what, const char *user, uint64_t *limit)
{
	cursor cur;
	int rc = rec_open(data, len, MAGIC_USER_QUOTA, what, user, &cur);
	if (rc < 0) return rc;
	*limit = cur_u64(&cur);
	if (cur.bad || cur.left) return error_set(CAIRN_ECORRUPT, "%s: bad length", what);
	return 0;
}

int quota_refs_encode(const char *user, const oid *snap, const oid *base, uint32_t depth, const uref *removed,
                      size_t nremoved, const uref *v, size_t n, uint8_t **out, size_t *len)
{
	buf b;
	rec_start(&b, MAGIC_USER_REFS, base ? REFS_DELTA : 0, user);
	buf_put(&b, snap->b, OID_LEN);
	if (base) {
		buf_put(&b, base->b, OID_LEN);
		buf_u32(&b, depth);
		buf_u32(&b, (uint32_t)nremoved);
		for (size_t i = 0; i < nremoved; i++) buf_put(&b, removed[i].id.b, OID_LEN);
	}
	buf_u32(&b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		buf_put(&b, v[i].id.b, OID_LEN);
		buf_u32(&b, v[i].size);
	}
	return rec_finish(&b, out, len);
}

/* count ids, each followed by a stored size when sized; strictly ascending. */
static int parse_ids(cursor *cur, uint32_t count, int sized, uref **out, const char *what)
{
	size_t each = OID_LEN + (sized ? 4 : 0);
	if ((uint64_t)count * each > cur->left)
		return error_set(CAIRN_ECORRUPT, "%s: %u blobs do not fit its length", what, count);
	uref *v = malloc((count ? count : 1) * sizeof(*v));
	if (!v) return ERR_OOM();
	for (uint32_t i = 0; i < count; i++) {
		cur_copy(cur, v[i].id.b, OID_LEN);
		v[i].size = sized ? cur_u32(cur) : 0;
		v[i].refs = 1;
		if (i && oid_cmp(&v[i - 1].id, &v[i].id) >= 0) {
			free(v);
			return error_set(CAIRN_ECORRUPT, "%s: blob %u out of order", what, i);
		}
	}
	*out = v;
	return 0;
}

void refs_rec_free(refs_rec *r)
{
	free(r->removed);
	free(r->added);
	memset(r, 0, sizeof(*r));
}

int quota_refs_decode(const uint8_t *data, size_t len, const char *what, const char *user, refs_rec *out)
{
	cursor cur;
	memset(out, 0, sizeof(*out));
	int rc = rec_open(data, len, MAGIC_USER_REFS, what, user, &cur);
	if (rc < 0) return rc;
	uint32_t flags = get_u32(data + 12), nremoved = 0;
	out->delta = (flags & REFS_DELTA) != 0;
	cur_copy(&cur, out->snap.b, OID_LEN);
	if (out->delta) {
		cur_copy(&cur, out->base.b, OID_LEN);
		out->depth = cur_u32(&cur);
		nremoved = cur_u32(&cur);
	}
	if (cur.bad || (flags & ~REFS_DELTA) || (out->delta && (out->depth < 1 || out->depth > REFS_DEPTH_MAX)))
		return error_set(CAIRN_ECORRUPT, "%s: names another snapshot, or a bad base", what);
	if (nremoved && (rc = parse_ids(&cur, nremoved, 0, &out->removed, what)) < 0) goto done;
	out->nremoved = nremoved;
	uint32_t count = cur_u32(&cur);
	if (cur.bad || (uint64_t)count * (OID_LEN + 4) != cur.left) {
		rc = error_set(CAIRN_ECORRUPT, "%s: %u blobs do not fit its length", what, count);
		goto done;
	}
	if ((rc = parse_ids(&cur, count, 1, &out->added, what)) < 0) goto done;
	out->nadded = count;
done:
	if (rc < 0) refs_rec_free(out);
	return rc;
}

int quota_log_encode(const char *user, const ulog *e, uint8_t **out, size_t *len)
{
	buf b;
	rec_start(&b, MAGIC_USER_LOG, 0, user);
	buf_u64(&b, e->seq);
	buf_u8(&b, e->op);
	buf_put(&b, e->snap.b, OID_LEN);
	buf_u64(&b, e->used_before);
	buf_u64(&b, e->used_after);
	buf_u64(&b, e->snaps_before);
	buf_u64(&b, e->snaps_after);
	return rec_finish(&b, out, len);
}

int quota_log_decode(const uint8_t *data, size_t len, const char *what, const char *user, ulog *e)
{
	cursor cur;
	int rc = rec_open(data, len, MAGIC_USER_LOG, what, user, &cur);
	if (rc < 0) return rc;
	e->seq = cur_u64(&cur);
	e->op = cur_u8(&cur);
	cur_copy(&cur, e->snap.b, OID_LEN);
	e->used_before = cur_u64(&cur);
	e->used_after = cur_u64(&cur);
	e->snaps_before = cur_u64(&cur);
	e->snaps_after = cur_u64(&cur);
	if (cur.bad || cur.left) return error_set(CAIRN_ECORRUPT, "%s: bad length", what);
	if (e->op < OP_ADD || e->op > OP_CHECKPOINT)
		return error_set(CAIRN_ECORRUPT, "%s: unknown operation %u", what, e->op);
	return 0;
}

int quota_base_encode(const char *user, uint64_t seq, uint64_t used, const uref *snaps, size_t nsnaps,
                      const uref *blobs, size_t nblobs, uint8_t **out, size_t *len)
{
	buf b;
	rec_start(&b, MAGIC_USER_BASE, 0, user);
	buf_u64(&b, seq);
	buf_u64(&b, used);
	buf_u32(&b, (uint32_t)nsnaps);
	for (size_t i = 0; i < nsnaps; i++) buf_put(&b, snaps[i].id.b, OID_LEN);
	buf_u32(&b, (uint32_t)nblobs);
	for (size_t i = 0; i < nblobs; i++) {
		buf_put(&b, blobs[i].id.b, OID_LEN);
		buf_u32(&b, blobs[i].size);
		buf_u32(&b, blobs[i].refs);
	}
	return rec_finish(&b, out, len);
}

#define BASE_BLOB_LEN (OID_LEN + 8)

void quota_base_snap(const base_rec *b, uint32_t i, oid *id) { memcpy(id->b, b->snaps + (size_t)i * OID_LEN, OID_LEN); }

void quota_base_blob(const base_rec *b, uint32_t i, uref *out)
{
	const uint8_t *p = b->blobs + (size_t)i * BASE_BLOB_LEN;
	memcpy(out->id.b, p, OID_LEN);
	out->size = get_u32(p + OID_LEN);
	out->refs = get_u32(p + OID_LEN + 4);
}

int quota_base_decode(const uint8_t *data, size_t len, const char *what, const char *user, base_rec *out)
{
	cursor cur;
	const uint8_t *p;
	memset(out, 0, sizeof(*out));
	int rc = rec_open(data, len, MAGIC_USER_BASE, what, user, &cur);
	if (rc < 0) return rc;
	out->seq = cur_u64(&cur);
	out->used = cur_u64(&cur);
	out->nsnaps = cur_u32(&cur);
	if (cur.bad || (uint64_t)out->nsnaps * OID_LEN > cur.left ||
	    cur_bytes(&cur, &out->snaps, (size_t)out->nsnaps * OID_LEN) < 0)
		return error_set(CAIRN_ECORRUPT, "%s: bad header", what);
	for (uint32_t i = 1; i < out->nsnaps; i++)
		if (memcmp(out->snaps + (size_t)(i - 1) * OID_LEN, out->snaps + (size_t)i * OID_LEN, OID_LEN) >= 0)
			return error_set(CAIRN_ECORRUPT, "%s: snapshot %u out of order", what, i);
	out->nblobs = cur_u32(&cur);
	if (cur.bad || (uint64_t)out->nblobs * BASE_BLOB_LEN != cur.left ||
	    cur_bytes(&cur, &p, cur.left) < 0)
		return error_set(CAIRN_ECORRUPT, "%s: %u blobs do not fit its length", what, out->nblobs);
	out->blobs = p;
	uint64_t sum = 0;
	for (uint32_t i = 0; i < out->nblobs; i++) {
		uref r;
		quota_base_blob(out, i, &r);
		if ((i && memcmp(p + (size_t)(i - 1) * BASE_BLOB_LEN, r.id.b, OID_LEN) >= 0) || r.refs == 0 ||
		    r.refs > out->nsnaps)
			return error_set(CAIRN_ECORRUPT, "%s: blob %u: out of order or bad count", what, i);
		sum += r.size;
	}
	if (sum != out->used)
		return error_set(CAIRN_ECORRUPT, "%s: records usage %llu bytes, its blobs sum to %llu", what,
		                 (unsigned long long)out->used, (unsigned long long)sum);
	return 0;
}
