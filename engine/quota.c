/* Per-user accounting and quotas: see quota.h for the scheme, format.h for
 * the records. */
#include "quota.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"
#include "format.h"
#include "inodes.h"
#include "user.h"

#define LOCK_TTL_MS (120u * 1000u)
#define LOCK_WAIT_MS (120u * 1000u)
/* every load reads the base and replays each entry since: a refs record,
 * mostly a small delta read on the one before, applied as the whole set
 * (a hash-table update per blob). A base is 40 bytes a blob, rewritten
 * whole: every 16 entries keeps replays to a few ms per 10k blobs and the
 * base's share of a take's writes to a sixteenth (README "Where the time
 * goes"; every 4 when refs records were written whole) */
#define COMPACT_EVERY 16
#define RECORD_MAX ((size_t)1 << 31)
#define SMALL_MAX 4096
#define LOAD_TRIES 5

#define OP_ADD 1
#define OP_FORGET 2
#define OP_CHECKPOINT 3

/* ---- a hash table of blob (or snapshot) ids --------------------------------- */

typedef struct uslot {
	oid id;
	uint32_t size;
	uint32_t refs; /* 0 = not charged (slots are never removed) */
	uint8_t used;
} uslot;

typedef struct utable {
	uslot *s;
	size_t cap, n;
	uint64_t seed;
} utable;

static void ut_init(utable *t)
{
	memset(t, 0, sizeof(*t));
	/* keyed hashing: ids are chosen by users' data */
	if (repo_random(&t->seed, sizeof(t->seed)) < 0) t->seed = (uint64_t)(uintptr_t)t;
}

static void ut_free(utable *t)
{
	free(t->s);
	memset(t, 0, sizeof(*t));
}

static uslot *ut_find(const utable *t, const oid *id)
{
	if (!t->cap) return NULL;
	size_t i = (size_t)hash_xxh3_seed(id->b, OID_LEN, t->seed) & (t->cap - 1);
	for (; t->s[i].used; i = (i + 1) & (t->cap - 1))
		if (memcmp(t->s[i].id.b, id->b, OID_LEN) == 0) return &t->s[i];
	return NULL;
}

/* Room for n ids without growing; the slots' pages are faulted in now,
 * not where the table fills (the frozen capture). A plain memset does not
 * do it: the compiler makes malloc + memset a calloc, which leaves fresh
 * pages untouched (measured: ~1,400 faults at the step-3 reuse). */
static int ut_reserve(utable *t, size_t n)
{
	size_t cap = t->cap ? t->cap : 256;
	while (n * 2 > cap) cap *= 2;
	if (cap == t->cap) return 0;
	uslot *ns = calloc(cap, sizeof(*ns));
	if (!ns) return ERR_OOM();
	prefault(ns, cap * sizeof(*ns));
	for (size_t i = 0; i < t->cap; i++) {
		if (!t->s[i].used) continue;
		size_t j = (size_t)hash_xxh3_seed(t->s[i].id.b, OID_LEN, t->seed) & (cap - 1);
		while (ns[j].used) j = (j + 1) & (cap - 1);
		ns[j] = t->s[i];
	}
	free(t->s);
	t->s = ns;
	t->cap = cap;
	return 0;
}

/* Find or insert (refs 0, size 0). NULL when out of memory. */
static uslot *ut_get(utable *t, const oid *id)
{
	uslot *s = ut_find(t, id);
	if (s) return s;
	if ((t->n + 1) * 2 > t->cap && ut_reserve(t, t->n + 1) < 0) {
		error_clear();
		return NULL;
	}
	size_t i = (size_t)hash_xxh3_seed(id->b, OID_LEN, t->seed) & (t->cap - 1);
	while (t->s[i].used) i = (i + 1) & (t->cap - 1);
	t->s[i].used = 1;
	t->s[i].id = *id;
	t->n++;
	return &t->s[i];
}

static int ut_charged(const utable *t, const oid *id)
{
	const uslot *s = ut_find(t, id);
	return s && s->refs > 0;
}

typedef struct uref {
	oid id;
	uint32_t size;
	uint32_t refs;
} uref;

static int uref_cmp(const void *a, const void *b)
{
	return oid_cmp(&((const uref *)a)->id, &((const uref *)b)->id);
}

/* The leading bits of an id (bits <= 24): SHA-256 ids spread evenly over them. */
static uint32_t ref_prefix(const oid *id, unsigned bits)
{
	return (((uint32_t)id->b[0] << 16) | ((uint32_t)id->b[1] << 8) | id->b[2]) >> (24 - bits);
}

/* Where each of the 2^bits prefixes starts in v once v is sorted (n refs;
 * start[2^bits] = n), or NULL when out of memory. */
static uint32_t *bucket_starts(const uref *v, size_t n, unsigned bits)
{
	size_t nb = (size_t)1 << bits;
	uint32_t *start = calloc(nb + 1, sizeof(*start));
	if (!start) return NULL;
	for (size_t i = 0; i < n; i++) start[ref_prefix(&v[i].id, bits) + 1]++;
	for (size_t b = 0; b < nb; b++) start[b + 1] += start[b];
	return start;
}

static void insertion_sort(uref *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		uref x = v[i];
		size_t j = i;
		for (; j > 0 && uref_cmp(&v[j - 1], &x) > 0; j--) v[j] = v[j - 1];
		v[j] = x;
	}
}

/* Sorts n refs by id: a bucket pass on the ids' leading bits (SHA-256 ids
 * spread evenly), then each bucket alone; a qsort of the whole was 1.3% of
 * a step-3 take, half of it in the pause. Crafted ids that share a prefix
 * only make one bucket big, which qsort still sorts in n log n. */
static void sort_refs(uref **vp, size_t n)
{
	unsigned bits = 0;
	while (bits < 16 && ((size_t)4 << bits) < n) bits++; /* ~4 per bucket */
	size_t nb = (size_t)1 << bits;
	uref *v = *vp;
	uint32_t *start = bits >= 4 && n <= UINT32_MAX ? bucket_starts(v, n, bits) : NULL;
	uint32_t *pos = start ? malloc(nb * sizeof(*pos)) : NULL;
	uref *out = pos ? malloc(n * sizeof(*out)) : NULL;
	if (!out) {
		free(start);
		free(pos);
		qsort(v, n, sizeof(*v), uref_cmp);
		return;
	}
	memcpy(pos, start, nb * sizeof(*pos));
	for (size_t i = 0; i < n; i++) out[pos[ref_prefix(&v[i].id, bits)]++] = v[i];
	for (size_t b = 0; b < nb; b++) {
		size_t m = start[b + 1] - start[b];
		if (m <= 16) insertion_sort(out + start[b], m);
		else qsort(out + start[b], m, sizeof(*out), uref_cmp);
	}
	free(start);
	free(pos);
	free(v);
	*vp = out;
}

/* Where each leading-bits prefix starts in a sorted ref array, so that a
 * lookup searches ~2 refs instead of all (two binary searches per reused
 * chunk were 2% of a step-3 take). Without it (no memory), the whole array. */
typedef struct ref_dir {
	const uref *v;
	size_t n;
	uint32_t *start; /* 2^bits + 1 */
	unsigned bits;
} ref_dir;

static void ref_dir_free(ref_dir *d)
{
	free(d->start);
	memset(d, 0, sizeof(*d));
}

static void ref_dir_build(ref_dir *d, const uref *v, size_t n)
{
	ref_dir_free(d);
	d->v = v;
	d->n = n;
	unsigned bits = 0;
	while (bits < 20 && ((size_t)2 << bits) < n) bits++;
	if (bits >= 4 && n <= UINT32_MAX && (d->start = bucket_starts(v, n, bits))) d->bits = bits;
}

static int ref_dir_find(const ref_dir *d, const oid *id, uint32_t *stored)
{
	size_t lo = 0, hi = d->n;
	if (d->start) {
		uint32_t p = ref_prefix(id, d->bits);
		lo = d->start[p];
		hi = d->start[p + 1];
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = oid_cmp(&d->v[mid].id, id);
		if (c == 0) {
			*stored = d->v[mid].size;
			return 1;
		}
		if (c < 0) lo = mid + 1;
		else hi = mid;
	}
	return 0;
}

/* The charged slots (refs > 0), sorted by id. */
static int ut_sorted(const utable *t, uref **out, size_t *n)
{
	size_t k = 0;
	uref *v = malloc((t->n ? t->n : 1) * sizeof(*v));
	*out = NULL;
	*n = 0;
	if (!v) return ERR_OOM();
	for (size_t i = 0; i < t->cap; i++)
		if (t->s[i].used && t->s[i].refs) v[k++] = (uref){t->s[i].id, t->s[i].size, t->s[i].refs};
	if (k) sort_refs(&v, k);
	*out = v;
	*n = k;
	return 0;
}

/* ---- names and records ----------------------------------------------------- */

static void obj_name(char *out, size_t n, const char *user, const char *kind, const char *leaf)
{
	if (leaf)
		snprintf(out, n, "users/%s/%s/%s", user, kind, leaf);
	else
		snprintf(out, n, "users/%s/%s", user, kind);
}

static void seq_name(char *out, size_t n, const char *user, const char *kind, uint64_t seq)
{
	char leaf[17];
	snprintf(leaf, sizeof(leaf), "%016llx", (unsigned long long)seq);
	obj_name(out, n, user, kind, leaf);
}

static void refs_name(char *out, size_t n, const char *user, const oid *snap)
{
	char hex[OID_HEX_LEN + 1];
	oid_hex(hex, snap);
	obj_name(out, n, user, "refs", hex);
}

static void put_str(buf *b, const char *s)
{
	size_t n = strlen(s);
	buf_u16(b, (uint16_t)n);
	buf_put(b, s, n);
}

static int finish(buf *b, uint8_t **out, size_t *len)
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
static int read_record(cairn_repo *r, const char *name, const char *magic, const char *user,
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

static int read_quota(cairn_repo *r, const char *user, int *has, uint64_t *limit)
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

/* A refs record is whole (flags 0) or a delta (REFS_DELTA): the set of an
 * earlier snapshot of the same user (its base) without `removed`, plus the
 * blobs listed. A take writes a delta on its parent, so an unchanged take
 * writes a few hundred bytes instead of 36 per blob. depth counts the
 * deltas down to a whole record (0); a base's depth must be less (checked
 * on read): chains stay short and cannot loop. */
#define REFS_DELTA 1u
#define REFS_DEPTH_MAX 8

typedef struct refs_set {
	oid snap;
	uref *v; /* ascending */
	size_t n;
	uint32_t depth;
	int have;
} refs_set;

static void refs_set_free(refs_set *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* base NULL: a whole record of v; else a delta on base: removed, then v added. */
static int write_refs(cairn_repo *r, const char *user, const oid *snap, const refs_set *base,
                      const uref *removed, size_t nremoved, const uref *v, size_t n)
{
	buf b;
	uint8_t *data = NULL;
	size_t len;
	char name[200];
	buf_init(&b);
	buf_header(&b, MAGIC_USER_REFS, base ? REFS_DELTA : 0);
	put_str(&b, user);
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
	int rc = finish(&b, &data, &len);
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

static int read_refs_set(cairn_repo *r, const char *user, const oid *snap, const refs_set *hint, refs_set *out)
{
	return read_refs_below(r, user, snap, hint, REFS_DEPTH_MAX + 1, out);
}

static int read_refs(cairn_repo *r, const char *user, const oid *snap, uref **out, size_t *n)
{
	refs_set s;
	int rc = read_refs_set(r, user, snap, NULL, &s);
	*out = s.v;
	*n = s.n;
	return rc;
}

typedef struct ulog {
	uint64_t seq;
	uint8_t op;
	oid snap;
	uint64_t used_before, used_after, snaps_before, snaps_after;
} ulog;

static int write_log(cairn_repo *r, const char *user, const ulog *e)
{
	buf b;
	uint8_t *data = NULL;
	size_t len;
	char name[160];
	buf_init(&b);
	buf_header(&b, MAGIC_USER_LOG, 0);
	put_str(&b, user);
	buf_u64(&b, e->seq);
	buf_u8(&b, e->op);
	buf_put(&b, e->snap.b, OID_LEN);
	buf_u64(&b, e->used_before);
	buf_u64(&b, e->used_after);
	buf_u64(&b, e->snaps_before);
	buf_u64(&b, e->snaps_after);
	int rc = finish(&b, &data, &len);
	if (rc < 0) return rc;
	seq_name(name, sizeof(name), user, "log", e->seq);
	rc = store_put(r->st, name, data, len, STORE_EXCL);
	if (rc == CAIRN_EEXISTS)
		rc = error_set(CAIRN_EBUSY, "%s: written by another process: user %s's lock was lost", name, user);
	free(data);
	return rc;
}

static int read_log(cairn_repo *r, const char *user, uint64_t seq, ulog *e)
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

/* ---- a user's state ---------------------------------------------------------- */

typedef struct ustate {
	char user[65];
	int has_quota;
	uint64_t quota;
	uint64_t seq, base_seq; /* last entry applied; the base it started from */
	uint64_t used, nsnaps;
	utable blobs, snaps;
	oid *forgotten;         /* forgotten since the base: their refs go at compaction */
	size_t nforgotten, capforgotten;
} ustate;

static void ustate_init(ustate *s, const char *user)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->user, sizeof(s->user), "%s", user);
	ut_init(&s->blobs);
	ut_init(&s->snaps);
}

static void ustate_free(ustate *s)
{
	ut_free(&s->blobs);
	ut_free(&s->snaps);
	free(s->forgotten);
	memset(s, 0, sizeof(*s));
}

static int write_base(cairn_repo *r, const ustate *s)
{
	buf b;
	uint8_t *data = NULL;
	size_t len, nb, ns;
	uref *blobs = NULL, *snaps = NULL;
	char name[160];
	int rc;
	if ((rc = ut_sorted(&s->blobs, &blobs, &nb)) < 0) goto done;
	if ((rc = ut_sorted(&s->snaps, &snaps, &ns)) < 0) goto done;
	buf_init(&b);
	buf_header(&b, MAGIC_USER_BASE, 0);
	put_str(&b, s->user);
	buf_u64(&b, s->seq);
	buf_u64(&b, s->used);
	buf_u32(&b, (uint32_t)ns);
	for (size_t i = 0; i < ns; i++) buf_put(&b, snaps[i].id.b, OID_LEN);
	buf_u32(&b, (uint32_t)nb);
	for (size_t i = 0; i < nb; i++) {
		buf_put(&b, blobs[i].id.b, OID_LEN);
		buf_u32(&b, blobs[i].size);
		buf_u32(&b, blobs[i].refs);
	}
	if ((rc = finish(&b, &data, &len)) < 0) goto done;
	seq_name(name, sizeof(name), s->user, "base", s->seq);
	rc = store_put(r->st, name, data, len, 0);
done:
	free(data);
	free(blobs);
	free(snaps);
	return rc;
}

static int read_base(cairn_repo *r, uint64_t seq, ustate *s)
{
	char name[160];
	uint8_t *data = NULL;
	cursor cur;
	oid prev, id;
	seq_name(name, sizeof(name), s->user, "base", seq);
	int rc = read_record(r, name, MAGIC_USER_BASE, s->user, RECORD_MAX, &data, &cur);
	if (rc < 0) return rc;
	uint64_t got = cur_u64(&cur), used = cur_u64(&cur), sum = 0;
	uint32_t ns = cur_u32(&cur);
	if (cur.bad || got != seq || (uint64_t)ns * OID_LEN > cur.left) {
		rc = error_set(CAIRN_ECORRUPT, "%s: bad header", name);
		goto done;
	}
	/* sized once (the counts are bounded by the record's length): growing
	 * by doubling rehashed every id and faulted in each bigger table */
	if ((rc = ut_reserve(&s->snaps, ns)) < 0) goto done;
	for (uint32_t i = 0; i < ns; i++) {
		cur_copy(&cur, id.b, OID_LEN);
		if (i && oid_cmp(&prev, &id) >= 0) {
			rc = error_set(CAIRN_ECORRUPT, "%s: snapshot %u out of order", name, i);
			goto done;
		}
		uslot *sl = ut_get(&s->snaps, &id);
		if (!sl) {
			rc = ERR_OOM();
			goto done;
		}
		sl->refs = 1;
		prev = id;
	}
	uint32_t nb = cur_u32(&cur);
	if (cur.bad || (uint64_t)nb * (OID_LEN + 8) != cur.left) {
		rc = error_set(CAIRN_ECORRUPT, "%s: %u blobs do not fit its length", name, nb);
		goto done;
	}
	if ((rc = ut_reserve(&s->blobs, nb)) < 0) goto done;
	for (uint32_t i = 0; i < nb; i++) {
		cur_copy(&cur, id.b, OID_LEN);
		uint32_t size = cur_u32(&cur), refs = cur_u32(&cur);
		if ((i && oid_cmp(&prev, &id) >= 0) || refs == 0 || refs > ns) {
			rc = error_set(CAIRN_ECORRUPT, "%s: blob %u: out of order or bad count", name, i);
			goto done;
		}
		uslot *sl = ut_get(&s->blobs, &id);
		if (!sl) {
			rc = ERR_OOM();
			goto done;
		}
		sl->size = size;
		sl->refs = refs;
		sum += size;
		prev = id;
	}
	if (sum != used) {
		rc = error_set(CAIRN_ECORRUPT, "%s: records usage %llu bytes, its blobs sum to %llu", name,
		               (unsigned long long)used, (unsigned long long)sum);
		goto done;
	}
	s->seq = s->base_seq = seq;
	s->used = used;
	s->nsnaps = ns;
done:
	free(data);
	return rc;
}

/* Apply an add (sign 1) or forget (-1) of snapshot snap with blobs v. */
static int apply(ustate *s, int sign, const oid *snap, const uref *v, size_t n, const char *what)
{
	uslot *ss = ut_get(&s->snaps, snap);
	if (!ss) return ERR_OOM();
	if ((sign > 0) == (ss->refs > 0))
		return error_set(CAIRN_ECORRUPT, "%s: snapshot %s charged", what, sign > 0 ? "already" : "not");
	ss->refs = sign > 0;
	s->nsnaps += (uint64_t)(int64_t)sign;
	if (sign < 0) {
		if (s->nforgotten == s->capforgotten) {
			size_t cap = s->capforgotten ? s->capforgotten * 2 : 16;
			oid *f = realloc(s->forgotten, cap * sizeof(*f));
			if (!f) return ERR_OOM();
			s->forgotten = f;
			s->capforgotten = cap;
		}
		s->forgotten[s->nforgotten++] = *snap;
	}
	for (size_t i = 0; i < n; i++) {
		uslot *b = ut_get(&s->blobs, &v[i].id);
		if (!b) return ERR_OOM();
		if (b->refs && b->size != v[i].size)
			return error_set(CAIRN_ECORRUPT, "%s: blob %zu: stored size %u, charged before as %u", what, i,
			                 v[i].size, b->size);
		if (sign > 0) {
			if (b->refs++ == 0) {
				b->size = v[i].size;
				s->used += v[i].size;
			}
		} else {
			if (b->refs == 0) return error_set(CAIRN_ECORRUPT, "%s: blob %zu was not charged", what, i);
			if (--b->refs == 0) s->used -= b->size;
		}
	}
	return 0;
}

typedef struct seqs {
	uint64_t *v;
	size_t n, cap;
} seqs;

static int add_seq(const char *name, void *payload)
{
	seqs *q = payload;
	const char *leaf = strrchr(name, '/');
	leaf = leaf ? leaf + 1 : name;
	uint8_t raw[8];
	if (strlen(leaf) != 16 || hex_decode(raw, 8, leaf) < 0) return 0; /* not ours */
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		uint64_t *v = realloc(q->v, cap * sizeof(*v));
		if (!v) return ERR_OOM();
		q->v = v;
		q->cap = cap;
	}
	q->v[q->n++] = strtoull(leaf, NULL, 16);
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int list_seqs(cairn_repo *r, const char *user, const char *kind, seqs *q)
{
	char dir[160];
	memset(q, 0, sizeof(*q));
	obj_name(dir, sizeof(dir), user, kind, NULL);
	int rc = store_list(r->st, dir, add_seq, q);
	if (rc == 0 && q->n) qsort(q->v, q->n, sizeof(*q->v), u64_cmp);
	return rc;
}

static int manifest_exists(cairn_repo *r, const oid *snap)
{
	char name[OID_HEX_LEN + 16], hex[OID_HEX_LEN + 1];
	uint64_t size;
	oid_hex(hex, snap);
	snprintf(name, sizeof(name), "snapshots/%s", hex);
	int rc = store_size(r->st, name, &size);
	if (rc == CAIRN_ENOTFOUND) error_clear();
	return rc == 0 ? 1 : rc == CAIRN_ENOTFOUND ? 0 : rc;
}

enum load_mode {
	LOAD_READ,   /* change nothing: an unfinished add is not counted, a forget is */
	LOAD_REPAIR  /* under the user's lock: settle an unfinished last entry */
};

/* Finish a forget: its manifest goes. */
static int finish_forget(cairn_repo *r, const oid *snap)
{
	char hex[OID_HEX_LEN + 1], mname[OID_HEX_LEN + 16];
	oid_hex(hex, snap);
	snprintf(mname, sizeof(mname), "snapshots/%s", hex);
	int rc = store_delete(r->st, mname);
	if (rc == CAIRN_ENOTFOUND) {
		error_clear();
		rc = 0;
	}
	return rc;
}

/* prior (may be NULL): a state of user loaded earlier, taken over (and
 * emptied) when no base was written since, so only newer entries are read. */
static int load_once(cairn_repo *r, const char *user, enum load_mode mode, ustate *s, ustate *prior)
{
	seqs bases = {0}, logs = {0};
	refs_set prev = {0}; /* the refs read last: the base of the next delta, usually */
	char name[200];
	int rc, resumed = 0;
	ustate_init(s, user);
	if ((rc = list_seqs(r, user, "base", &bases)) < 0) goto done;
	if ((rc = list_seqs(r, user, "log", &logs)) < 0) goto done;
	if (prior && strcmp(prior->user, user) == 0 && (!bases.n || bases.v[bases.n - 1] <= prior->seq)) {
		ustate_free(s);
		*s = *prior;
		ustate_init(prior, user);
		resumed = 1;
	}
	if ((rc = read_quota(r, user, &s->has_quota, &s->quota)) < 0) goto done;
	if (!resumed && bases.n && (rc = read_base(r, bases.v[bases.n - 1], s)) < 0) goto done;
	size_t first = 0;
	while (first < logs.n && logs.v[first] <= s->seq) first++;
	if (resumed && mode == LOAD_REPAIR && first == logs.n && logs.n && logs.v[logs.n - 1] == s->seq) {
		/* the last entry was applied earlier without the lock: a forget's
		 * roll-forward (its manifest goes) is still due */
		ulog e;
		if ((rc = read_log(r, user, s->seq, &e)) < 0) goto done;
		if (e.op == OP_FORGET && (rc = finish_forget(r, &e.snap)) < 0) goto done;
	}
	for (size_t i = first; i < logs.n; i++) {
		ulog e;
		int last = i + 1 == logs.n;
		seq_name(name, sizeof(name), user, "log", logs.v[i]);
		if (logs.v[i] != s->seq + 1) {
			rc = error_set(CAIRN_ECORRUPT, "users/%s/log: entry %llu is missing", user,
			               (unsigned long long)(s->seq + 1));
			goto done;
		}
		if ((rc = read_log(r, user, logs.v[i], &e)) < 0) goto done;
		if (e.op == OP_CHECKPOINT) {
			rc = error_set(CAIRN_ECORRUPT, "%s: a checkpoint without its base", name);
			goto done;
		}
		if (last && e.op == OP_ADD) {
			int has = manifest_exists(r, &e.snap);
			if (has < 0) {
				rc = has;
				goto done;
			}
			if (!has) { /* a take that did not reach its commit point */
				if (mode == LOAD_REPAIR) {
					if ((rc = store_delete(r->st, name)) < 0) goto done;
					refs_name(name, sizeof(name), user, &e.snap);
					if (store_delete(r->st, name) < 0) error_clear();
				}
				break;
			}
		}
		if (e.used_before != s->used || e.snaps_before != s->nsnaps) {
			rc = error_set(CAIRN_ECORRUPT,
			               "%s: says usage was %llu bytes in %llu snapshots; the records before it give %llu in %llu",
			               name, (unsigned long long)e.used_before, (unsigned long long)e.snaps_before,
			               (unsigned long long)s->used, (unsigned long long)s->nsnaps);
			goto done;
		}
		refs_set got;
		if ((rc = read_refs_set(r, user, &e.snap, &prev, &got)) < 0) {
			if (rc == CAIRN_ENOTFOUND && mode == LOAD_REPAIR) rc = CAIRN_ECORRUPT;
			goto done;
		}
		refs_set_free(&prev);
		prev = got;
		if ((rc = apply(s, e.op == OP_ADD ? 1 : -1, &e.snap, prev.v, prev.n, name)) < 0) goto done;
		if (e.used_after != s->used || e.snaps_after != s->nsnaps) {
			rc = error_set(CAIRN_ECORRUPT,
			               "%s: says usage is %llu bytes in %llu snapshots; its refs give %llu in %llu",
			               name, (unsigned long long)e.used_after, (unsigned long long)e.snaps_after,
			               (unsigned long long)s->used, (unsigned long long)s->nsnaps);
			goto done;
		}
		s->seq = e.seq;
		if (last && e.op == OP_FORGET && mode == LOAD_REPAIR && (rc = finish_forget(r, &e.snap)) < 0) goto done;
	}
done:
	refs_set_free(&prev);
	free(bases.v);
	free(logs.v);
	if (rc < 0) {
		ustate_free(s);
		ustate_init(s, user);
	}
	return rc;
}

/* Without the lock, a compaction may delete what was listed: try again. */
static int load(cairn_repo *r, const char *user, enum load_mode mode, ustate *s)
{
	int rc;
	for (int i = 0;; i++) {
		rc = load_once(r, user, mode, s, NULL);
		if (rc != CAIRN_ENOTFOUND || mode == LOAD_REPAIR || i + 1 == LOAD_TRIES) break;
		ustate_free(s);
	}
	if (rc == CAIRN_ENOTFOUND) {
		error_prefix("user %s", user);
		rc = CAIRN_ECORRUPT;
	}
	return rc;
}

static void delete_quiet(cairn_repo *r, const char *name)
{
	if (store_delete(r->st, name) < 0) error_clear();
}

static int is_forgotten(const ustate *s, const oid *snap)
{
	for (size_t i = 0; i < s->nforgotten; i++)
		if (oid_cmp(&s->forgotten[i], snap) == 0) return 1;
	return 0;
}

/* Rewrite whole every charged snapshot's refs that is a delta on a
 * forgotten one, so that the forgotten records can go. */
static int settle_dependents(cairn_repo *r, const ustate *s)
{
	char name[200];
	uint8_t head[FORMAT_HEADER_LEN];
	oid base;
	int rc = 0;
	for (size_t i = 0; i < s->snaps.cap && rc == 0; i++) {
		const uslot *sl = &s->snaps.s[i];
		if (!sl->used || !sl->refs) continue;
		refs_name(name, sizeof(name), s->user, &sl->id);
		if ((rc = store_get_range(r->st, name, 0, head, sizeof(head))) < 0) break;
		if (!(get_u32(head + 12) & REFS_DELTA)) continue;
		uint64_t at = FORMAT_HEADER_LEN + 2 + strlen(s->user) + OID_LEN;
		if ((rc = store_get_range(r->st, name, at, base.b, OID_LEN)) < 0 || !is_forgotten(s, &base)) continue;
		refs_set whole;
		if ((rc = read_refs_set(r, s->user, &sl->id, NULL, &whole)) < 0) break;
		rc = write_refs(r, s->user, &sl->id, NULL, NULL, 0, whole.v, whole.n);
		refs_set_free(&whole);
	}
	return rc;
}

/* Every COMPACT_EVERY entries: a base at the last entry; entries and bases
 * before it and the refs of forgotten snapshots go (after the deltas on
 * them are rewritten whole). The last entry stays: `usage` reads it.
 * Failures leave more to read, nothing wrong. */
static void compact(cairn_repo *r, ustate *s, int force)
{
	char name[200];
	seqs q;
	if (!force && s->seq - s->base_seq < COMPACT_EVERY) return;
	if (write_base(r, s) < 0) {
		error_clear();
		return;
	}
	s->base_seq = s->seq;
	if (s->nforgotten && settle_dependents(r, s) < 0)
		error_clear(); /* kept, unreferenced: quota_rebuild removes them */
	else
		for (size_t i = 0; i < s->nforgotten; i++) {
			refs_name(name, sizeof(name), s->user, &s->forgotten[i]);
			delete_quiet(r, name);
		}
	s->nforgotten = 0;
	const char *kinds[] = {"log", "base"};
	for (int k = 0; k < 2; k++) {
		if (list_seqs(r, s->user, kinds[k], &q) < 0) {
			error_clear();
			continue;
		}
		for (size_t i = 0; i < q.n; i++)
			if (q.v[i] < s->seq) {
				seq_name(name, sizeof(name), s->user, kinds[k], q.v[i]);
				delete_quiet(r, name);
			}
		free(q.v);
	}
}

static int user_lock(cairn_repo *r, const char *user, store_lock **out)
{
	char name[80];
	snprintf(name, sizeof(name), "user-%s", user);
	return store_lock_acquire(out, r->st, name, LOCK_TTL_MS, LOCK_WAIT_MS);
}

/* ---- the tracker -------------------------------------------------------------- */

struct quota_tracker {
	cairn_repo *repo;
	pthread_mutex_t lock;
	utable set;      /* blobs of the snapshot: id -> stored size (refs 1) */
	int bound, enforce;
	ustate st;       /* the user's state: at bind, reloaded under the lock at commit */
	uint64_t need;   /* stored size of the set's blobs the user is not charged for */
	store_lock *ulock;
	int charged;
	ulog entry;
	uref *refs;      /* the charged refs, sorted */
	size_t nrefs;
	refs_set parent; /* the parent snapshot's refs: known stored sizes, the delta's base */
	char parent_user[72];
	uref *prior;     /* blobs added before quota_tracker_restart, sorted: known too */
	size_t nprior;
	ref_dir parent_dir, prior_dir; /* lookups in parent.v and prior */
};

int quota_tracker_new(quota_tracker **out, cairn_repo *r)
{
	quota_tracker *t = calloc(1, sizeof(*t));
	*out = NULL;
	if (!t) return ERR_OOM();
	t->repo = r;
	pthread_mutex_init(&t->lock, NULL);
	ut_init(&t->set);
	ustate_init(&t->st, "");
	*out = t;
	return 0;
}

void quota_tracker_free(quota_tracker *t)
{
	if (!t) return;
	quota_commit_end(t, 0);
	ut_free(&t->set);
	ustate_free(&t->st);
	free(t->refs);
	refs_set_free(&t->parent);
	free(t->prior);
	ref_dir_free(&t->parent_dir);
	ref_dir_free(&t->prior_dir);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static uint64_t recompute_need(quota_tracker *t)
{
	uint64_t need = 0;
	for (size_t i = 0; i < t->set.cap; i++)
		if (t->set.s[i].used && !ut_charged(&t->st.blobs, &t->set.s[i].id)) need += t->set.s[i].size;
	return need;
}

static int over_quota(const ustate *s, uint64_t need)
{
	return s->has_quota && need > 0 && s->used + need > s->quota;
}

static int quota_error(const ustate *s, uint64_t need, const char *at_least)
{
	return error_set(CAIRN_EQUOTA,
	                 "user %s: quota exceeded: the take needs %s%llu bytes, the user uses %llu of a quota of %llu bytes",
	                 s->user, at_least, (unsigned long long)need, (unsigned long long)s->used,
	                 (unsigned long long)s->quota);
}

int quota_tracker_bind(quota_tracker *t, const char *user, int enforce)
{
	int rc = user_name_check(user);
	if (rc < 0) return rc;
	ustate s;
	if ((rc = load(t->repo, user, LOAD_READ, &s)) < 0) return rc;
	pthread_mutex_lock(&t->lock);
	ustate_free(&t->st);
	t->st = s;
	t->bound = 1;
	t->enforce = enforce;
	t->need = recompute_need(t);
	if (enforce && over_quota(&t->st, t->need)) rc = quota_error(&t->st, t->need, "at least ");
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int quota_tracker_seen(quota_tracker *t, const oid *id)
{
	pthread_mutex_lock(&t->lock);
	int seen = ut_find(&t->set, id) != NULL;
	pthread_mutex_unlock(&t->lock);
	return seen;
}

/* quota_tracker_add, t->lock held. */
static int add_locked(quota_tracker *t, const oid *id, uint32_t stored)
{
	int rc = 1;
	uslot *s = ut_get(&t->set, id);
	if (!s) {
		rc = ERR_OOM();
	} else if (s->refs) {
		rc = 0;
	} else {
		s->refs = 1;
		s->size = stored;
		if (t->bound && !ut_charged(&t->st.blobs, id)) t->need += stored;
	}
	/* as soon as it is known: every later put fails too */
	if (rc >= 0 && t->bound && t->enforce && over_quota(&t->st, t->need))
		rc = quota_error(&t->st, t->need, "at least ");
	return rc;
}

int quota_tracker_add(quota_tracker *t, const oid *id, uint32_t stored)
{
	pthread_mutex_lock(&t->lock);
	int rc = add_locked(t, id, stored);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int quota_tracker_add_each(quota_tracker *t, const void *ids, size_t stride, const uint32_t *stored, size_t n)
{
	int rc = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < n && rc >= 0; i++) rc = add_locked(t, (const oid *)((const char *)ids + i * stride), stored[i]);
	pthread_mutex_unlock(&t->lock);
	return rc < 0 ? rc : 0;
}

void quota_tracker_parent(quota_tracker *t, const char *user, const char *snap_hex)
{
	oid snap;
	refs_set got;
	/* only a shortcut: without the record every blob is looked up, and the
	 * take's refs are written whole */
	if (user_name_check(user) < 0 || hex_decode(snap.b, OID_LEN, snap_hex) < 0 ||
	    read_refs_set(t->repo, user, &snap, NULL, &got) < 0) {
		error_clear();
		return;
	}
	refs_set_free(&t->parent);
	t->parent = got;
	ref_dir_build(&t->parent_dir, t->parent.v, t->parent.n);
	snprintf(t->parent_user, sizeof(t->parent_user), "%s", user);
	pthread_mutex_lock(&t->lock);
	if (ut_reserve(&t->set, got.n) < 0) error_clear(); /* the take references about as many */
	pthread_mutex_unlock(&t->lock);
}

int quota_tracker_restart(quota_tracker *t, size_t more)
{
	pthread_mutex_lock(&t->lock);
	uref *v;
	size_t n;
	int rc = ut_sorted(&t->set, &v, &n);
	if (rc == 0) {
		free(t->prior);
		t->prior = v;
		t->nprior = n;
		ref_dir_build(&t->prior_dir, v, n);
		ut_free(&t->set);
		ut_init(&t->set);
		t->need = 0;
		/* the frozen capture references about what the pre-copy did,
		 * and the trees: growing the table would cost the pause */
		if (ut_reserve(&t->set, n + more) < 0) error_clear();
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int quota_tracker_known(quota_tracker *t, const oid *id, uint32_t *stored)
{
	/* read-only while workers run (restart comes between captures): no lock */
	return ref_dir_find(&t->parent_dir, id, stored) || ref_dir_find(&t->prior_dir, id, stored);
}

uint64_t quota_tracker_added(quota_tracker *t)
{
	pthread_mutex_lock(&t->lock);
	uint64_t n = t->charged ? t->entry.used_after - t->entry.used_before : t->need;
	pthread_mutex_unlock(&t->lock);
	return n;
}

int quota_commit_begin(quota_tracker *t, const char *user)
{
	int rc = user_name_check(user);
	if (rc < 0) return rc;
	if (t->bound && strcmp(t->st.user, user) != 0)
		return error_set(CAIRN_EUSAGE, "snapshot of user %s: tracked for user %s", user, t->st.user);
	if ((rc = user_lock(t->repo, user, &t->ulock)) < 0) return rc;
	ustate s;
	/* the state bound to is current but for the entries written since:
	 * read only those (cost in proportion to what changed) */
	rc = t->bound ? load_once(t->repo, user, LOAD_REPAIR, &s, &t->st) : -1;
	if (rc < 0) {
		error_clear(); /* the full load says what is wrong, if anything */
		if ((rc = load(t->repo, user, LOAD_REPAIR, &s)) < 0) goto fail;
	}
	pthread_mutex_lock(&t->lock);
	ustate_free(&t->st);
	t->st = s;
	t->bound = 1;
	t->need = recompute_need(t);
	if (over_quota(&t->st, t->need)) rc = quota_error(&t->st, t->need, "");
	pthread_mutex_unlock(&t->lock);
	if (rc == 0) return 0;
fail:
	store_lock_release(t->ulock);
	t->ulock = NULL;
	return rc;
}

/* The take's refs as a delta on its parent's when the parent is charged to
 * the same user (its record then stays until no delta needs it: compact)
 * and the change is at most half the set; else whole. */
static int write_take_refs(quota_tracker *t, const oid *snap)
{
	const refs_set *p = &t->parent;
	uref *removed = NULL, *added = NULL;
	size_t nr = 0, na = 0;
	int rc;
	if (!p->have || p->depth >= REFS_DEPTH_MAX || strcmp(t->parent_user, t->st.user) != 0 ||
	    !ut_charged(&t->st.snaps, &p->snap))
		return write_refs(t->repo, t->st.user, snap, NULL, NULL, 0, t->refs, t->nrefs);
	if (!(removed = malloc((p->n + 1) * sizeof(*removed))) || !(added = malloc((t->nrefs + 1) * sizeof(*added)))) {
		rc = ERR_OOM();
		goto done;
	}
	for (size_t i = 0, j = 0; i < p->n || j < t->nrefs;) {
		int c = i == p->n ? 1 : j == t->nrefs ? -1 : oid_cmp(&p->v[i].id, &t->refs[j].id);
		if (c == 0 && p->v[i].size == t->refs[j].size) {
			i++, j++;
			continue;
		}
		if (c <= 0) removed[nr++] = p->v[i++]; /* a changed size: out, then in */
		if (c >= 0) added[na++] = t->refs[j++];
	}
	if ((nr + na) * 2 <= t->nrefs)
		rc = write_refs(t->repo, t->st.user, snap, p, removed, nr, added, na);
	else
		rc = write_refs(t->repo, t->st.user, snap, NULL, NULL, 0, t->refs, t->nrefs);
done:
	free(removed);
	free(added);
	return rc;
}

int quota_commit_charge(quota_tracker *t, const char *snap_hex)
{
	oid snap;
	int rc;
	if (!t->ulock) return error_set(CAIRN_EIO, "quota: charge without the user's lock");
	if (hex_decode(snap.b, OID_LEN, snap_hex) < 0)
		return error_set(CAIRN_EUSAGE, "snapshot id %s: not a full hex id", snap_hex);
	if ((rc = store_lock_refresh(t->ulock)) < 0) return rc;
	free(t->refs);
	if ((rc = ut_sorted(&t->set, &t->refs, &t->nrefs)) < 0) return rc;
	if ((rc = write_take_refs(t, &snap)) < 0) return rc;
	t->entry = (ulog){t->st.seq + 1, OP_ADD, snap, t->st.used, t->st.used + t->need, t->st.nsnaps,
	                  t->st.nsnaps + 1};
	if ((rc = write_log(t->repo, t->st.user, &t->entry)) < 0) {
		char name[200];
		refs_name(name, sizeof(name), t->st.user, &snap);
		delete_quiet(t->repo, name);
		return rc;
	}
	t->charged = 1;
	return 0;
}

void quota_commit_end(quota_tracker *t, int committed)
{
	if (!t->ulock) return;
	char name[200];
	if (t->charged && !committed) {
		/* the manifest is not there: take the charge back (a crash here is
		 * settled by the next locked load the same way) */
		seq_name(name, sizeof(name), t->st.user, "log", t->entry.seq);
		delete_quiet(t->repo, name);
		refs_name(name, sizeof(name), t->st.user, &t->entry.snap);
		delete_quiet(t->repo, name);
		t->charged = 0;
	} else if (t->charged) {
		if (apply(&t->st, 1, &t->entry.snap, t->refs, t->nrefs, "commit") == 0) {
			t->st.seq = t->entry.seq;
			compact(t->repo, &t->st, 0);
		}
		error_clear();
	}
	store_lock_release(t->ulock);
	t->ulock = NULL;
}

/* ---- reading, limits, forgetting -------------------------------------------- */

int quota_usage_get(cairn_repo *r, const char *user, quota_usage *out)
{
	int rc = user_name_check(user);
	memset(out, 0, sizeof(*out));
	if (rc < 0) return rc;
	snprintf(out->user, sizeof(out->user), "%s", user);
	if ((rc = read_quota(r, user, &out->has_quota, &out->quota)) < 0) return rc;
	for (int i = 0; i < LOAD_TRIES; i++) {
		seqs q;
		ulog e;
		if ((rc = list_seqs(r, user, "log", &q)) < 0) return rc;
		if (q.n == 0) {
			free(q.v);
			return 0;
		}
		uint64_t top = q.v[q.n - 1];
		free(q.v);
		rc = read_log(r, user, top, &e);
		if (rc == CAIRN_ENOTFOUND) continue; /* rolled back meanwhile */
		if (rc < 0) return rc;
		int settled = 1;
		if (e.op == OP_ADD && (settled = manifest_exists(r, &e.snap)) < 0) return settled;
		out->used = settled ? e.used_after : e.used_before;
		out->snapshots = settled ? e.snaps_after : e.snaps_before;
		return 0;
	}
	return error_set(CAIRN_EBUSY, "user %s: the ledger kept changing while read", user);
}

typedef struct names {
	char **v;
	size_t n, cap;
} names;

/* 1 when rest (what follows "users/U/") names one of U's records
 * (format.h): anything else under users/ is no user's, e.g. what a name
 * such as "." wrote before such names were refused. */
static int is_user_record(const char *rest)
{
	static const struct { const char *kind; size_t hex; } kinds[] = {
		{"refs/", OID_HEX_LEN}, {"log/", 16}, {"base/", 16}};
	if (!strcmp(rest, "quota")) return 1;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		size_t n = strlen(kinds[k].kind);
		if (strncmp(rest, kinds[k].kind, n) != 0) continue;
		const char *h = rest + n;
		if (strlen(h) != kinds[k].hex) return 0;
		for (; *h; h++)
			if (!((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f'))) return 0;
		return 1;
	}
	return 0;
}

static int add_user_name(const char *name, void *payload)
{
	names *l = payload;
	const char *u = name + strlen("users/"), *slash = strchr(u, '/');
	if (!slash || slash == u || (size_t)(slash - u) > USER_NAME_MAX || !is_user_record(slash + 1)) return 0;
	for (size_t i = 0; i < l->n; i++) /* listing is grouped by user: the last one repeats */
		if (strlen(l->v[l->n - 1 - i]) == (size_t)(slash - u) && !strncmp(l->v[l->n - 1 - i], u, (size_t)(slash - u)))
			return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v) return ERR_OOM();
		l->v = v;
		l->cap = cap;
	}
	char *s = strndup(u, (size_t)(slash - u));
	if (!s) return ERR_OOM();
	if (!user_name_valid(s)) {
		free(s);
		return 0;
	}
	l->v[l->n++] = s;
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int quota_users(cairn_repo *r, char ***out, size_t *n)
{
	names l = {0};
	*out = NULL;
	*n = 0;
	int rc = store_list(r->st, "users", add_user_name, &l);
	if (rc < 0) {
		quota_users_free(l.v, l.n);
		return rc;
	}
	if (l.n) qsort(l.v, l.n, sizeof(*l.v), str_cmp);
	*out = l.v;
	*n = l.n;
	return 0;
}

void quota_users_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++) free(v[i]);
	free(v);
}

int quota_set(cairn_repo *r, const char *user, int has_quota, uint64_t limit)
{
	store_lock *l;
	char name[160];
	int rc = user_name_check(user);
	if (rc < 0) return rc;
	if ((rc = user_lock(r, user, &l)) < 0) return rc;
	obj_name(name, sizeof(name), user, "quota", NULL);
	if (has_quota) {
		buf b;
		uint8_t *data = NULL;
		size_t len;
		buf_init(&b);
		buf_header(&b, MAGIC_USER_QUOTA, 0);
		put_str(&b, user);
		buf_u64(&b, limit);
		if ((rc = finish(&b, &data, &len)) == 0) {
			rc = store_put(r->st, name, data, len, 0);
			free(data);
		}
	} else if ((rc = store_delete(r->st, name)) == CAIRN_ENOTFOUND) {
		error_clear();
		rc = 0;
	}
	store_lock_release(l);
	return rc;
}

int quota_forget(cairn_repo *r, const char *snap_hex, uint64_t *released)
{
	snapshot_manifest m;
	store_lock *l = NULL;
	ustate s;
	uref *v = NULL;
	size_t nv = 0;
	oid snap;
	char mname[OID_HEX_LEN + 16];
	int rc;
	if (released) *released = 0;
	if ((rc = repo_load_snapshot(r, snap_hex, &m)) < 0) return rc;
	hex_decode(snap.b, OID_LEN, snap_hex);
	snprintf(mname, sizeof(mname), "snapshots/%s", snap_hex);
	ustate_init(&s, m.user);
	if ((rc = user_name_check(m.user)) < 0) goto done;
	if ((rc = user_lock(r, m.user, &l)) < 0) goto done;
	ustate_free(&s);
	if ((rc = load(r, m.user, LOAD_REPAIR, &s)) < 0) goto done;
	if (!ut_charged(&s.snaps, &snap)) {
		/* never charged (made before accounting, or repaired away) */
		rc = store_delete(r->st, mname);
		if (rc == CAIRN_ENOTFOUND) rc = error_set(CAIRN_ENOTFOUND, "snapshot %s: not found", snap_hex);
		goto done;
	}
	if ((rc = read_refs(r, m.user, &snap, &v, &nv)) < 0) {
		if (rc == CAIRN_ENOTFOUND) rc = CAIRN_ECORRUPT;
		goto done;
	}
	ulog e = {s.seq + 1, OP_FORGET, snap, s.used, 0, s.nsnaps, 0};
	if ((rc = apply(&s, -1, &snap, v, nv, mname)) < 0) goto done;
	e.used_after = s.used;
	e.snaps_after = s.nsnaps;
	/* the entry first: a crash before the delete is finished by the next load */
	if ((rc = write_log(r, m.user, &e)) < 0) goto done;
	s.seq = e.seq;
	if ((rc = store_delete(r->st, mname)) == CAIRN_ENOTFOUND) {
		error_clear();
		rc = 0;
	}
	if (rc < 0) goto done;
	if (released) *released = e.used_before - e.used_after;
	compact(r, &s, 0);
done:
	store_lock_release(l);
	free(v);
	ustate_free(&s);
	snapshot_manifest_free(&m);
	return rc;
}

/* ---- recomputation (fsck) ------------------------------------------------------ */

static int blob_size(cairn_repo *r, const oid *id, uint8_t type, uint32_t *size, const char *what)
{
	char hex[OID_HEX_LEN + 1];
	index_entry e;
	int found = repo_index_lookup(r, id, &e);
	if (found < 0) return found;
	uint32_t sz = found ? e.stored_len : 0;
	uint8_t ty = found ? e.type : 0;
	oid_hex(hex, id);
	if (!found || ty != type)
		return error_set(CAIRN_ECORRUPT, "%s: %s %s is not in the index", what,
		                 type == BLOB_TREE ? "tree" : "chunk", hex);
	*size = sz;
	return 0;
}

/* Every blob reachable from tree id into set (id -> stored size). The trees
 * still to read wait on a heap stack: any depth costs memory, not C stack. */
static int walk_tree(cairn_repo *r, const oid *id, utable *set, const char *what)
{
	size_t n = 0, cap = 64;
	oid *todo = malloc(cap * sizeof(*todo));
	if (!todo) return ERR_OOM();
	todo[n++] = *id;
	int rc = 0;
	while (rc == 0 && n > 0) {
		oid cur = todo[--n];
		uint32_t size = 0; /* set by blob_size; the compiler cannot tell */
		if (ut_find(set, &cur)) continue;
		if ((rc = blob_size(r, &cur, BLOB_TREE, &size, what)) < 0) break;
		uslot *s = ut_get(set, &cur);
		if (!s) {
			rc = ERR_OOM();
			break;
		}
		s->size = size;
		s->refs = 1;
		tree t;
		if ((rc = repo_load_tree(r, &cur, &t)) < 0) break;
		for (size_t i = 0; i < t.n && rc == 0; i++) {
			const tree_entry *e = &t.entries[i];
			if (e->type == TREE_DIR) {
				oid *nt = vec_grow(todo, &cap, n + 1, sizeof(*todo));
				if (nt) nt[n++] = e->subtree;
				else rc = ERR_OOM();
				todo = nt ? nt : todo;
				continue;
			}
			for (uint32_t k = 0; k < e->nchunks && rc == 0; k++) {
				if (ut_find(set, &e->chunks[k].id)) continue;
				if ((rc = blob_size(r, &e->chunks[k].id, BLOB_DATA, &size, what)) < 0) break;
				if (!(s = ut_get(set, &e->chunks[k].id))) rc = ERR_OOM();
				else *s = (uslot){e->chunks[k].id, size, 1, 1};
			}
		}
		tree_free(&t);
	}
	free(todo);
	return rc;
}

typedef struct expected {
	ustate st;           /* what the records should say */
	size_t nsnaps;
	char (*ids)[OID_HEX_LEN + 1];
	uref **refs;         /* per snapshot, sorted; NULL when it could not be computed */
	size_t *nrefs;
	int unknown;         /* some snapshot could not be walked */
} expected;

static void expected_free(expected *x)
{
	for (size_t i = 0; i < x->nsnaps; i++) free(x->refs[i]);
	free(x->refs);
	free(x->nrefs);
	free(x->ids);
	ustate_free(&x->st);
}

/* Recompute user's state from the manifests in list. */
static int expect_user(cairn_repo *r, const char *user, const cairn_snapshot_list *list,
                       expected *x, quota_report_cb cb, void *payload, int *problems)
{
	size_t count = cairn_snapshot_list_count(list);
	memset(x, 0, sizeof(*x));
	ustate_init(&x->st, user);
	x->ids = calloc(count ? count : 1, sizeof(*x->ids));
	x->refs = calloc(count ? count : 1, sizeof(*x->refs));
	x->nrefs = calloc(count ? count : 1, sizeof(*x->nrefs));
	if (!x->ids || !x->refs || !x->nrefs) return ERR_OOM();
	for (size_t i = 0; i < count; i++) {
		const cairn_snapshot_info *si = cairn_snapshot_list_get(list, i);
		if (strcmp(si->user, user) != 0) continue;
		size_t k = x->nsnaps++;
		memcpy(x->ids[k], si->id, sizeof(x->ids[k]));
		utable set;
		oid top;
		char what[128];
		ut_init(&set);
		hex_decode(top.b, OID_LEN, si->root_tree);
		snprintf(what, sizeof(what), "snapshot %s", si->id);
		int rc = walk_tree(r, &top, &set, what);
		if (rc == 0) rc = ut_sorted(&set, &x->refs[k], &x->nrefs[k]);
		ut_free(&set);
		if (rc == CAIRN_ENOMEM) return rc;
		if (rc < 0) {
			char msg[512];
			snprintf(msg, sizeof(msg), "cannot recompute usage: %s", cairn_error_last());
			cb(user, msg, payload);
			(*problems)++;
			x->unknown = 1;
			continue;
		}
		oid sid;
		hex_decode(sid.b, OID_LEN, si->id);
		if ((rc = apply(&x->st, 1, &sid, x->refs[k], x->nrefs[k], what)) < 0) return rc;
	}
	return 0;
}

static void reportf(quota_report_cb cb, void *payload, const char *user, int *problems,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void reportf(quota_report_cb cb, void *payload, const char *user, int *problems,
                    const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cb(user, msg, payload);
	(*problems)++;
}

static int refs_equal(const uref *a, size_t na, const uref *b, size_t nb)
{
	if (na != nb) return 0;
	for (size_t i = 0; i < na; i++)
		if (oid_cmp(&a[i].id, &b[i].id) != 0 || a[i].size != b[i].size) return 0;
	return 1;
}

static int verify_user(cairn_repo *r, const char *user, const cairn_snapshot_list *list,
                       quota_report_cb cb, void *payload, int *problems)
{
	expected x;
	ustate got;
	store_lock *l = NULL;
	quota_usage fast;
	int rc;
	ustate_init(&got, user);
	if ((rc = user_lock(r, user, &l)) < 0) {
		reportf(cb, payload, user, problems, "not checked: %s", cairn_error_last());
		ustate_free(&got);
		return 0;
	}
	if ((rc = expect_user(r, user, list, &x, cb, payload, problems)) < 0) goto done;
	ustate_free(&got);
	if ((rc = load(r, user, LOAD_READ, &got)) < 0) {
		if (rc == CAIRN_ENOMEM) goto done;
		reportf(cb, payload, user, problems, "usage records are damaged: %s", cairn_error_last());
		rc = 0;
		goto done;
	}
	/* the charged snapshots are exactly the manifests */
	for (size_t i = 0; i < x.nsnaps; i++) {
		oid sid;
		hex_decode(sid.b, OID_LEN, x.ids[i]);
		if (!ut_charged(&got.snaps, &sid)) {
			reportf(cb, payload, user, problems, "snapshot %s is not charged to the user", x.ids[i]);
			continue;
		}
		if (!x.refs[i]) continue;
		uref *v = NULL;
		size_t nv = 0;
		if ((rc = read_refs(r, user, &sid, &v, &nv)) < 0) {
			reportf(cb, payload, user, problems, "snapshot %s: %s", x.ids[i], cairn_error_last());
			rc = 0;
		} else if (!refs_equal(v, nv, x.refs[i], x.nrefs[i])) {
			reportf(cb, payload, user, problems,
			        "users/%s/refs/%s: lists %zu blobs, the snapshot references %zu (or sizes differ)",
			        user, x.ids[i], nv, x.nrefs[i]);
		}
		free(v);
	}
	for (size_t i = 0; i < got.snaps.cap; i++) {
		if (!got.snaps.s[i].used || !got.snaps.s[i].refs) continue;
		if (!ut_charged(&x.st.snaps, &got.snaps.s[i].id)) {
			char hex[OID_HEX_LEN + 1];
			oid_hex(hex, &got.snaps.s[i].id);
			reportf(cb, payload, user, problems, "charged for snapshot %s, which has no manifest", hex);
		}
	}
	if (x.unknown) goto done; /* the totals cannot be compared */
	if (got.used != x.st.used || got.nsnaps != x.st.nsnaps)
		reportf(cb, payload, user, problems,
		        "records give usage %llu bytes in %llu snapshots; recomputed %llu bytes in %llu",
		        (unsigned long long)got.used, (unsigned long long)got.nsnaps,
		        (unsigned long long)x.st.used, (unsigned long long)x.st.nsnaps);
	size_t bad = 0;
	for (size_t i = 0; i < x.st.blobs.cap; i++) {
		const uslot *want = &x.st.blobs.s[i];
		if (!want->used || !want->refs) continue;
		const uslot *have = ut_find(&got.blobs, &want->id);
		if (!have || have->refs != want->refs || have->size != want->size) bad++;
	}
	for (size_t i = 0; i < got.blobs.cap; i++)
		if (got.blobs.s[i].used && got.blobs.s[i].refs && !ut_charged(&x.st.blobs, &got.blobs.s[i].id)) bad++;
	if (bad) reportf(cb, payload, user, problems, "%zu blob reference counts differ from the recomputation", bad);
	if ((rc = quota_usage_get(r, user, &fast)) < 0) {
		reportf(cb, payload, user, problems, "usage figure unreadable: %s", cairn_error_last());
		rc = 0;
	} else if (fast.used != x.st.used || fast.snapshots != x.st.nsnaps) {
		reportf(cb, payload, user, problems,
		        "usage shows %llu bytes in %llu snapshots; recomputed %llu bytes in %llu",
		        (unsigned long long)fast.used, (unsigned long long)fast.snapshots,
		        (unsigned long long)x.st.used, (unsigned long long)x.st.nsnaps);
	}
done:
	expected_free(&x);
	ustate_free(&got);
	store_lock_release(l);
	return rc;
}

/* Users with records or with snapshots, sorted, distinct. */
static int all_users(cairn_repo *r, const cairn_snapshot_list *list, char ***out, size_t *n)
{
	char **v;
	size_t k;
	int rc = quota_users(r, &v, &k);
	if (rc < 0) return rc;
	for (size_t i = 0; i < cairn_snapshot_list_count(list); i++) {
		const char *u = cairn_snapshot_list_get(list, i)->user;
		int have = 0;
		for (size_t j = 0; j < k && !have; j++) have = !strcmp(v[j], u);
		if (have || !user_name_valid(u)) continue;
		char **nv = realloc(v, (k + 1) * sizeof(*nv));
		if (!nv || !(nv[k] = strdup(u))) {
			quota_users_free(nv ? nv : v, k);
			return ERR_OOM();
		}
		v = nv;
		k++;
	}
	if (k) qsort(v, k, sizeof(*v), str_cmp);
	*out = v;
	*n = k;
	return 0;
}

int quota_verify(cairn_repo *r, quota_report_cb cb, void *payload)
{
	cairn_snapshot_list *list;
	char **users = NULL;
	size_t n = 0;
	int problems = 0;
	int rc = cairn_snapshot_list_load(&list, r, NULL);
	if (rc < 0) return rc;
	if ((rc = all_users(r, list, &users, &n)) < 0) goto done;
	for (size_t i = 0; i < n && rc == 0; i++) rc = verify_user(r, users[i], list, cb, payload, &problems);
done:
	quota_users_free(users, n);
	cairn_snapshot_list_free(list);
	return rc < 0 ? rc : problems;
}

static void ignore_report(const char *user, const char *problem, void *payload)
{
	(void)user;
	(void)problem;
	(void)payload;
}

static int collect_name(const char *name, void *payload)
{
	names *l = payload;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v) return ERR_OOM();
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(name))) return ERR_OOM();
	l->n++;
	return 0;
}

int quota_rebuild(cairn_repo *r, const char *user)
{
	cairn_snapshot_list *list = NULL;
	store_lock *l = NULL;
	expected x;
	seqs logs = {0}, bases = {0};
	int problems = 0, rc = user_name_check(user);
	char name[200];
	memset(&x, 0, sizeof(x));
	ustate_init(&x.st, user);
	if (rc < 0) goto done;
	if ((rc = user_lock(r, user, &l)) < 0) goto done;
	if ((rc = cairn_snapshot_list_load(&list, r, user)) < 0) goto done;
	ustate_free(&x.st);
	if ((rc = expect_user(r, user, list, &x, ignore_report, NULL, &problems)) < 0) goto done;
	if (x.unknown) {
		rc = error_set(CAIRN_ECORRUPT, "user %s: a snapshot cannot be read; usage not rebuilt", user);
		goto done;
	}
	for (size_t i = 0; i < x.nsnaps; i++) {
		oid sid;
		hex_decode(sid.b, OID_LEN, x.ids[i]);
		if ((rc = write_refs(r, user, &sid, NULL, NULL, 0, x.refs[i], x.nrefs[i])) < 0) goto done;
	}
	if ((rc = list_seqs(r, user, "log", &logs)) < 0) goto done;
	if ((rc = list_seqs(r, user, "base", &bases)) < 0) goto done;
	uint64_t top = 0;
	if (logs.n) top = logs.v[logs.n - 1];
	if (bases.n && bases.v[bases.n - 1] > top) top = bases.v[bases.n - 1];
	x.st.seq = top + 1;
	/* the base first: a checkpoint entry without it reads as damage */
	if ((rc = write_base(r, &x.st)) < 0) goto done;
	ulog e = {x.st.seq, OP_CHECKPOINT, {{0}}, x.st.used, x.st.used, x.st.nsnaps, x.st.nsnaps};
	if ((rc = write_log(r, user, &e)) < 0) goto done;
	x.st.base_seq = x.st.seq;
	compact(r, &x.st, 1);
	/* refs of snapshots no longer charged */
	names refs = {0};
	obj_name(name, sizeof(name), user, "refs", NULL);
	if (store_list(r->st, name, collect_name, &refs) == 0) {
		for (size_t i = 0; i < refs.n; i++) {
			const char *leaf = strrchr(refs.v[i], '/');
			oid sid;
			if (leaf && hex_decode(sid.b, OID_LEN, leaf + 1) == 0 && !ut_charged(&x.st.snaps, &sid))
				delete_quiet(r, refs.v[i]);
		}
	}
	error_clear();
	quota_users_free(refs.v, refs.n);
done:
	free(logs.v);
	free(bases.v);
	expected_free(&x);
	cairn_snapshot_list_free(list);
	store_lock_release(l);
	return rc;
}

/* ---- public API ---------------------------------------------------------------- */

static void to_public(cairn_usage *out, const quota_usage *u)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->user, sizeof(out->user), "%s", u->user);
	out->used_bytes = u->used;
	out->snapshots = u->snapshots;
	out->has_quota = u->has_quota;
	out->quota_bytes = u->quota;
}

CAIRN_EXTERN int cairn_usage_get(cairn_usage *out, cairn_repo *repo, const char *user)
{
	quota_usage u;
	int rc = quota_usage_get(repo, user, &u);
	if (rc == 0) to_public(out, &u);
	return rc;
}

CAIRN_EXTERN int cairn_usage_list(cairn_usage **out, size_t *count, cairn_repo *repo)
{
	char **users;
	size_t n;
	*out = NULL;
	*count = 0;
	int rc = quota_users(repo, &users, &n);
	if (rc < 0) return rc;
	cairn_usage *v = calloc(n ? n : 1, sizeof(*v));
	if (!v) rc = ERR_OOM();
	for (size_t i = 0; i < n && rc == 0; i++) rc = cairn_usage_get(&v[i], repo, users[i]);
	quota_users_free(users, n);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*out = v;
	*count = n;
	return 0;
}

CAIRN_EXTERN void cairn_usage_list_free(cairn_usage *list) { free(list); }

CAIRN_EXTERN int cairn_quota_set(cairn_repo *repo, const char *user, int has_quota, uint64_t bytes)
{
	repo_session(repo);
	return quota_set(repo, user, has_quota, bytes);
}

CAIRN_EXTERN int cairn_estimate(cairn_estimate_result *out, cairn_repo *repo,
                                const cairn_take_options *opts)
{
	cairn_take_result tr;
	memset(out, 0, sizeof(*out));
	if (!opts || opts->version != CAIRN_TAKE_OPTIONS_VERSION)
		return error_set(CAIRN_EUSAGE, "estimate: missing or unsupported options");
	cairn_take_options o = *opts;
	o.dry_run = 1;
	o.cgroup = NULL; /* an estimate never pauses the instance */
	o.release = 0;
	const char *user = o.user ? o.user : "default";
	int rc = user_name_check(user);
	if (rc == 0) rc = cairn_take(&tr, repo, &o);
	if (rc == 0) rc = cairn_usage_get(&out->usage, repo, user);
	if (rc < 0) return rc;
	out->added_bytes = tr.charged_bytes;
	out->files = tr.files;
	out->bytes = tr.bytes;
	out->new_bytes = tr.new_bytes;
	out->stored_bytes = tr.stored_bytes;
	out->fits = !out->usage.has_quota || out->added_bytes == 0 ||
	            out->usage.used_bytes + out->added_bytes <= out->usage.quota_bytes;
	return 0;
}

CAIRN_EXTERN int cairn_forget(cairn_repo *repo, const char *snap_id, uint64_t *released_bytes)
{
	repo_session(repo);
	int rc = quota_forget(repo, snap_id, released_bytes);
	/* after the manifest: a crash between leaves the record to gc */
	if (rc == 0 && inodes_delete(repo, snap_id) < 0) error_clear();
	return rc;
}
