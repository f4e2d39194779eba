/* Quotas (internal.h): the records under users/U/ read and written: names,
 * refs records (deltas on a base), ledger entries, the quota limit (their
 * bytes: codec.c). */
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

int read_quota(cairn_repo *r, const char *user, int *has, uint64_t *limit)
{
	char name[160];
	size_t len;
	int rc;
	*has = 0;
	*limit = 0;
	obj_name(name, sizeof(name), user, "quota", NULL);
	uint8_t *data = NULL;
	rc = store_get(r->st, name, SMALL_MAX, &data, &len);
	if (rc == CAIRN_ENOTFOUND) {
		error_clear();
		return 0;
	}
	if (rc < 0) return rc;
	if ((rc = quota_limit_decode(data, len, name, user, limit)) == 0) *has = 1;
	else *limit = 0;
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
	uint8_t *data = NULL;
	size_t len;
	char name[200];
	int rc = quota_refs_encode(user, snap, base ? &base->snap : NULL, base ? base->depth + 1 : 0, removed,
	                           nremoved, v, n, &data, &len);
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

/* A snapshot's refs (distinct blobs, ascending), following its deltas down
 * to a whole record; hint: a set already read, used when it is the base.
 * The record's depth must be below `below`: each step down lowers it, so
 * even records that name each other end after REFS_DEPTH_MAX reads. */
static int read_refs_below(cairn_repo *r, const char *user, const oid *snap, const refs_set *hint,
                           uint32_t below, refs_set *out)
{
	char name[200];
	size_t len;
	int rc;
	refs_rec rec = {0};
	refs_set base = {0};
	memset(out, 0, sizeof(*out));
	refs_name(name, sizeof(name), user, snap);
	uint8_t *data = NULL;
	rc = store_get(r->st, name, RECORD_MAX, &data, &len);
	if (rc < 0) return rc;
	if ((rc = quota_refs_decode(data, len, name, user, &rec)) < 0) goto done;
	if (oid_cmp(&rec.snap, snap) != 0 || rec.depth >= below) {
		rc = error_set(CAIRN_ECORRUPT, "%s: names another snapshot, or a bad base", name);
		goto done;
	}
	out->snap = *snap;
	out->depth = rec.depth;
	out->have = 1;
	if (!rec.delta) {
		out->v = rec.added;
		out->n = rec.nadded;
		rec.added = NULL;
		goto done;
	}
	const refs_set *from = hint;
	if (!hint || !hint->have || oid_cmp(&hint->snap, &rec.base) != 0) {
		if ((rc = read_refs_below(r, user, &rec.base, NULL, rec.depth, &base)) < 0) {
			/* not found: a compaction may have rewritten this record
			 * whole since it was read; load tries again */
			if (rc == CAIRN_ENOTFOUND) rc = error_set(CAIRN_ENOTFOUND, "%s: its base is gone", name);
			goto done;
		}
		from = &base;
	}
	if (from->depth >= rec.depth) { /* less is fine: a compaction may have made the base whole */
		rc = error_set(CAIRN_ECORRUPT, "%s: depth %u on a base of depth %u", name, rec.depth, from->depth);
		goto done;
	}
	rc = refs_apply_delta(from, rec.removed, rec.nremoved, rec.added, rec.nadded, &out->v, &out->n, name);
done:
	if (rc < 0) refs_set_free(out);
	refs_set_free(&base);
	refs_rec_free(&rec);
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
	uint8_t *data = NULL;
	size_t len;
	char name[160];
	int rc = quota_log_encode(user, e, &data, &len);
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
	size_t len;
	int rc;
	seq_name(name, sizeof(name), user, "log", seq);
	uint8_t *data = NULL;
	rc = store_get(r->st, name, SMALL_MAX, &data, &len);
	if (rc < 0) return rc;
	if ((rc = quota_log_decode(data, len, name, user, e)) == 0 && e->seq != seq)
		rc = error_set(CAIRN_ECORRUPT, "%s: holds entry %llu", name, (unsigned long long)e->seq);
	free(data);
	return rc;
}
