/* Quotas (internal.h): the records under users/U/: names, refs records (deltas
 * on a base), ledger entries, the quota limit. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"

void obj_name(char *out, size_t n, const char *user, const char *kind, const char *leaf)
{
	if (leaf)
		snprintf(out, n, "users/%s/%s/%s", user, kind, leaf);
	else
		snprintf(out, n, "users/%s/%s", user, kind);
}

void seq_name(char *out, size_t n, const char *user, const char *kind, uint64_t seq)
{
	char leaf[17];
	snprintf(leaf, sizeof(leaf), "%016llx", (unsigned long long)seq);
	obj_name(out, n, user, kind, leaf);
}

void refs_name(char *out, size_t n, const char *user, const oid *snap)
{
	char hex[OID_HEX_LEN + 1];
	oid_hex(hex, snap);
	obj_name(out, n, user, "refs", hex);
}

void rec_put_str(buf *b, const char *s)
{
	size_t n = strlen(s);
	buf_u16(b, (uint16_t)n);
	buf_put(b, s, n);
}

int rec_finish(buf *b, uint8_t **out, size_t *len)
{
	buf_check(b);
	if (b->oom) {
		buf_free(b);
		return ERR_OOM();
	}
	*out = buf_take(b, len);
	return 0;
}

/* Read a record: framing checked, the body's user checked against user. */
int read_record(cairn_repo *r, const char *name, const char *magic, const char *user,
                size_t max, uint8_t **data, cursor *cur)
{
	size_t len, blen;
	const uint8_t *body, *u;
	*data = NULL;
	int rc = store_get(r->st, name, max, data, &len);
	if (rc < 0) return rc;
	if ((rc = frame_check(*data, len, magic, name, &body, &blen)) < 0) goto fail;
	cur_init(cur, body, blen);
	uint16_t ulen = cur_u16(cur);
	if (cur_bytes(cur, &u, ulen) < 0 || ulen != strlen(user) || memcmp(u, user, ulen) != 0) {
		rc = error_set(CAIRN_ECORRUPT, "%s: not a record of user %s", name, user);
		goto fail;
	}
	return 0;
fail:
	free(*data);
	*data = NULL;
	return rc;
}

int read_quota(cairn_repo *r, const char *user, int *has, uint64_t *limit)
{
	char name[160];
	uint8_t *data = NULL;
	cursor cur;
	*has = 0;
	*limit = 0;
	obj_name(name, sizeof(name), user, "quota", NULL);
	int rc = read_record(r, name, MAGIC_USER_QUOTA, user, SMALL_MAX, &data, &cur);
	if (rc == CAIRN_ENOTFOUND) {
		error_clear();
		return 0;
	}
	if (rc < 0) return rc;
	*limit = cur_u64(&cur);
	if (cur.bad || cur.left) rc = error_set(CAIRN_ECORRUPT, "%s: bad length", name);
	else *has = 1;
	free(data);
	return rc;
}

void refs_set_free(refs_set *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* base NULL: a whole record of v; else a delta on base: removed, then v added. */
int write_refs(cairn_repo *r, const char *user, const oid *snap, const refs_set *base,
               const uref *removed, size_t nremoved, const uref *v, size_t n)
{
	buf b;
	uint8_t *data = NULL;
	size_t len;
	char name[200];
	buf_init(&b);
	buf_header(&b, MAGIC_USER_REFS, base ? REFS_DELTA : 0);
	rec_put_str(&b, user);
	buf_put(&b, snap->b, OID_LEN);
	if (base) {
		buf_put(&b, base->snap.b, OID_LEN);
		buf_u32(&b, base->depth + 1);
		buf_u32(&b, (uint32_t)nremoved);
		for (size_t i = 0; i < nremoved; i++) buf_put(&b, removed[i].id.b, OID_LEN);
	}
	buf_u32(&b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		buf_put(&b, v[i].id.b, OID_LEN);
		buf_u32(&b, v[i].size);
	}
	int rc = rec_finish(&b, &data, &len);
	if (rc < 0) return rc;
	refs_name(name, sizeof(name), user, snap);
	rc = store_put(r->st, name, data, len, 0);
	free(data);
	return rc;
}

/* (base - removed) + added, all ascending; removed must be in base, added not. */
static int refs_apply_delta(const refs_set *base, const uref *removed, size_t nremoved, const uref *added,
                            size_t nadded, uref **out, size_t *n, const char *name)
{
	uref *v = malloc((base->n + nadded + 1) * sizeof(*v));
	size_t i = 0, k = 0, a = 0, m = 0;
	if (!v) return ERR_OOM();
	while (i < base->n || a < nadded) {
		if (k < nremoved) {
			int c = i < base->n ? oid_cmp(&removed[k].id, &base->v[i].id) : -1;
			if (c == 0) {
				i++, k++;
				continue;
			}
			if (c < 0) break; /* not in the base */
		}
		int c = i == base->n ? 1 : a == nadded ? -1 : oid_cmp(&base->v[i].id, &added[a].id);
		if (c == 0) break; /* already in the base */
		v[m++] = c < 0 ? base->v[i++] : added[a++];
	}
	if (k < nremoved || i < base->n || a < nadded) {
		free(v);
		return error_set(CAIRN_ECORRUPT, "%s: its changes do not fit its base's blobs", name);
	}
	*out = v;
	*n = m;
	return 0;
}

/* count ids, each followed by a stored size when sized; strictly ascending. */
static int parse_ids(cursor *cur, uint32_t count, int sized, uref **out, const char *name)
{
	size_t each = OID_LEN + (sized ? 4 : 0);
	if ((uint64_t)count * each > cur->left)
		return error_set(CAIRN_ECORRUPT, "%s: %u blobs do not fit its length", name, count);
	uref *v = malloc((count ? count : 1) * sizeof(*v));
	if (!v) return ERR_OOM();
	for (uint32_t i = 0; i < count; i++) {
		cur_copy(cur, v[i].id.b, OID_LEN);
		v[i].size = sized ? cur_u32(cur) : 0;
		v[i].refs = 1;
		if (i && oid_cmp(&v[i - 1].id, &v[i].id) >= 0) {
			free(v);
			return error_set(CAIRN_ECORRUPT, "%s: blob %u out of order", name, i);
		}
	}
	*out = v;
	return 0;
}

/* A snapshot's refs (distinct blobs, ascending), following its deltas down
 * to a whole record; hint: a set already read, used when it is the base.
 * The record's depth must be below `below`: each step down lowers it, so
 * even records that name each other end after REFS_DEPTH_MAX reads. */
static int read_refs_below(cairn_repo *r, const char *user, const oid *snap, const refs_set *hint,
                           uint32_t below, refs_set *out)
{
	char name[200];
	uint8_t *data = NULL;
	cursor cur;
	oid got, base_id;
	uref *removed = NULL, *added = NULL;
	refs_set base = {0};
	memset(out, 0, sizeof(*out));
	refs_name(name, sizeof(name), user, snap);
	int rc = read_record(r, name, MAGIC_USER_REFS, user, RECORD_MAX, &data, &cur);
	if (rc < 0) return rc;
	uint32_t flags = get_u32(data + 12), depth = 0, nremoved = 0;
	cur_copy(&cur, got.b, OID_LEN);
	if (flags & REFS_DELTA) {
		cur_copy(&cur, base_id.b, OID_LEN);
		depth = cur_u32(&cur);
		nremoved = cur_u32(&cur);
	}
	if (cur.bad || oid_cmp(&got, snap) != 0 || (flags & ~REFS_DELTA) ||
	    ((flags & REFS_DELTA) && (depth < 1 || depth > REFS_DEPTH_MAX)) || depth >= below) {
		rc = error_set(CAIRN_ECORRUPT, "%s: names another snapshot, or a bad base", name);
		goto done;
	}
	if (nremoved && (rc = parse_ids(&cur, nremoved, 0, &removed, name)) < 0) goto done;
	uint32_t count = cur_u32(&cur);
	if (cur.bad || (uint64_t)count * (OID_LEN + 4) != cur.left) {
		rc = error_set(CAIRN_ECORRUPT, "%s: %u blobs do not fit its length", name, count);
		goto done;
	}
	if ((rc = parse_ids(&cur, count, 1, &added, name)) < 0) goto done;
	out->snap = *snap;
	out->depth = depth;
	out->have = 1;
	if (!(flags & REFS_DELTA)) {
		out->v = added;
		out->n = count;
		added = NULL;
		goto done;
	}
	const refs_set *from = hint;
	if (!hint || !hint->have || oid_cmp(&hint->snap, &base_id) != 0) {
		if ((rc = read_refs_below(r, user, &base_id, NULL, depth, &base)) < 0) {
			/* not found: a compaction may have rewritten this record
			 * whole since it was read; load tries again */
			if (rc == CAIRN_ENOTFOUND) rc = error_set(CAIRN_ENOTFOUND, "%s: its base is gone", name);
			goto done;
		}
		from = &base;
	}
	if (from->depth >= depth) { /* less is fine: a compaction may have made the base whole */
		rc = error_set(CAIRN_ECORRUPT, "%s: depth %u on a base of depth %u", name, depth, from->depth);
		goto done;
	}
	rc = refs_apply_delta(from, removed, nremoved, added, count, &out->v, &out->n, name);
done:
	if (rc < 0) refs_set_free(out);
	refs_set_free(&base);
	free(removed);
	free(added);
	free(data);
	return rc;
}

int read_refs_set(cairn_repo *r, const char *user, const oid *snap, const refs_set *hint, refs_set *out)
{
	return read_refs_below(r, user, snap, hint, REFS_DEPTH_MAX + 1, out);
}

int read_refs(cairn_repo *r, const char *user, const oid *snap, uref **out, size_t *n)
{
	refs_set s;
	int rc = read_refs_set(r, user, snap, NULL, &s);
	*out = s.v;
	*n = s.n;
	return rc;
}

int write_log(cairn_repo *r, const char *user, const ulog *e)
{
	buf b;
	uint8_t *data = NULL;
	size_t len;
	char name[160];
	buf_init(&b);
	buf_header(&b, MAGIC_USER_LOG, 0);
	rec_put_str(&b, user);
	buf_u64(&b, e->seq);
	buf_u8(&b, e->op);
	buf_put(&b, e->snap.b, OID_LEN);
	buf_u64(&b, e->used_before);
	buf_u64(&b, e->used_after);
	buf_u64(&b, e->snaps_before);
	buf_u64(&b, e->snaps_after);
	int rc = rec_finish(&b, &data, &len);
	if (rc < 0) return rc;
	seq_name(name, sizeof(name), user, "log", e->seq);
	rc = store_put(r->st, name, data, len, STORE_EXCL);
	if (rc == CAIRN_EEXISTS)
		rc = error_set(CAIRN_EBUSY, "%s: written by another process: user %s's lock was lost", name, user);
	free(data);
	return rc;
}

int read_log(cairn_repo *r, const char *user, uint64_t seq, ulog *e)
{
	char name[160];
	uint8_t *data = NULL;
	cursor cur;
	seq_name(name, sizeof(name), user, "log", seq);
	int rc = read_record(r, name, MAGIC_USER_LOG, user, SMALL_MAX, &data, &cur);
	if (rc < 0) return rc;
	e->seq = cur_u64(&cur);
	e->op = cur_u8(&cur);
	cur_copy(&cur, e->snap.b, OID_LEN);
	e->used_before = cur_u64(&cur);
	e->used_after = cur_u64(&cur);
	e->snaps_before = cur_u64(&cur);
	e->snaps_after = cur_u64(&cur);
	if (cur.bad || cur.left) rc = error_set(CAIRN_ECORRUPT, "%s: bad length", name);
	else if (e->seq != seq) rc = error_set(CAIRN_ECORRUPT, "%s: holds entry %llu", name, (unsigned long long)e->seq);
	else if (e->op < OP_ADD || e->op > OP_CHECKPOINT) rc = error_set(CAIRN_ECORRUPT, "%s: unknown operation %u", name, e->op);
	free(data);
	return rc;
}
