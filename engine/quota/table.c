/* Quotas (internal.h): a hash table of blob (or snapshot) ids with counts,
 * sorted reference lists and their directory. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "io.h"

void ut_init(utable *t)
{
	memset(t, 0, sizeof(*t));
	/* keyed hashing: ids are chosen by users' data */
	if (io_random(&t->seed, sizeof(t->seed)) < 0) t->seed = (uint64_t)(uintptr_t)t;
}

void ut_free(utable *t)
{
	free(t->s);
	free(t->h);
	memset(t, 0, sizeof(*t));
}

static uint32_t ut_tag(uint64_t hash) { return (uint32_t)(hash >> 32); }

uslot *ut_find(const utable *t, const oid *id)
{
	if (!t->nh) return NULL;
	uint64_t hash = hash_xxh3_seed(id->b, OID_LEN, t->seed);
	uint32_t tag = ut_tag(hash);
	for (size_t i = (size_t)hash & (t->nh - 1); t->h[i].pos1; i = (i + 1) & (t->nh - 1))
		if (t->h[i].tag == tag && memcmp(t->s[t->h[i].pos1 - 1].id.b, id->b, OID_LEN) == 0)
			return &t->s[t->h[i].pos1 - 1];
	return NULL;
}

/* Room for n ids without growing; the pages are faulted in now, not where
 * the table fills (the frozen capture). A plain memset does not do it: the
 * compiler makes malloc + memset a calloc, which leaves fresh pages
 * untouched (measured: ~1,400 faults at the step-3 reuse). */
int ut_reserve(utable *t, size_t n)
{
	if (n >= UINT32_MAX) return ERR_OOM();
	if (n > t->cap) {
		size_t cap = t->cap ? t->cap : 128;
		while (cap < n) cap *= 2;
		uslot *s = realloc(t->s, cap * sizeof(*s));
		if (!s) return ERR_OOM();
		memset(s + t->cap, 0, (cap - t->cap) * sizeof(*s));
		prefault(s + t->cap, (cap - t->cap) * sizeof(*s));
		t->s = s;
		t->cap = cap;
	}
	size_t nh = t->nh ? t->nh : 256;
	while (n * 2 > nh) nh *= 2;
	if (nh == t->nh) return 0;
	uhash *h = calloc(nh, sizeof(*h));
	if (!h) return ERR_OOM();
	prefault(h, nh * sizeof(*h));
	for (size_t k = 0; k < t->n; k++) {
		uint64_t hash = hash_xxh3_seed(t->s[k].id.b, OID_LEN, t->seed);
		size_t j = (size_t)hash & (nh - 1);
		while (h[j].pos1) j = (j + 1) & (nh - 1);
		h[j] = (uhash){(uint32_t)(k + 1), ut_tag(hash)};
	}
	free(t->h);
	t->h = h;
	t->nh = nh;
	return 0;
}

/* Find or insert (refs 0, size 0). NULL when out of memory. A pointer
 * returned stays valid until the next insert into t. */
uslot *ut_get(utable *t, const oid *id)
{
	uslot *s = ut_find(t, id);
	if (s) return s;
	if ((t->n + 1 > t->cap || (t->n + 1) * 2 > t->nh) && ut_reserve(t, t->n + 1) < 0) {
		error_clear();
		return NULL;
	}
	uint64_t hash = hash_xxh3_seed(id->b, OID_LEN, t->seed);
	size_t i = (size_t)hash & (t->nh - 1);
	while (t->h[i].pos1) i = (i + 1) & (t->nh - 1);
	t->h[i] = (uhash){(uint32_t)(t->n + 1), ut_tag(hash)};
	s = &t->s[t->n++];
	s->used = 1;
	s->id = *id;
	return s;
}

int ut_charged(const utable *t, const oid *id)
{
	const uslot *s = ut_find(t, id);
	return s && s->refs > 0;
}

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

void ref_dir_free(ref_dir *d)
{
	free(d->start);
	memset(d, 0, sizeof(*d));
}

void ref_dir_build(ref_dir *d, const uref *v, size_t n)
{
	ref_dir_free(d);
	d->v = v;
	d->n = n;
	unsigned bits = 0;
	while (bits < 20 && ((size_t)2 << bits) < n) bits++;
	if (bits >= 4 && n <= UINT32_MAX && (d->start = bucket_starts(v, n, bits))) d->bits = bits;
}

ptrdiff_t ref_dir_index(const ref_dir *d, const oid *id)
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
		if (c == 0) return (ptrdiff_t)mid;
		if (c < 0) lo = mid + 1;
		else hi = mid;
	}
	return -1;
}

int ref_dir_find(const ref_dir *d, const oid *id, uint32_t *stored)
{
	ptrdiff_t i = ref_dir_index(d, id);
	if (i < 0) return 0;
	*stored = d->v[i].size;
	return 1;
}

/* The charged slots (refs > 0), sorted by id. */
int ut_sorted(const utable *t, uref **out, size_t *n)
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

void ub_free(ublobs *b)
{
	ref_dir_free(&b->dir);
	free(b->v);
	memset(b, 0, sizeof(*b));
}

void ub_set(ublobs *b, uref *v, size_t n)
{
	ub_free(b);
	b->v = v;
	b->n = n;
	ref_dir_build(&b->dir, v, n);
}

const uref *ub_find(const ublobs *b, const oid *id)
{
	ptrdiff_t i = b->n ? ref_dir_index(&b->dir, id) : -1;
	return i < 0 ? NULL : &b->v[i];
}

int ub_charged(const ublobs *b, const oid *id) { return ub_find(b, id) != NULL; }

/* The checks of ub_apply, before any change; *fresh: v's blobs not in b. */
static int ub_check(const ublobs *b, int sign, const uref *v, size_t n, size_t *fresh, const char *what)
{
	size_t i = 0;
	*fresh = 0;
	for (size_t j = 0; j < n; j++) {
		if (j && oid_cmp(&v[j - 1].id, &v[j].id) >= 0)
			return error_set(CAIRN_ECORRUPT, "%s: blob %zu out of order", what, j);
		int c = 1;
		while (i < b->n && (c = oid_cmp(&b->v[i].id, &v[j].id)) < 0) i++;
		if (i == b->n || c > 0) {
			if (sign < 0) return error_set(CAIRN_ECORRUPT, "%s: blob %zu was not charged", what, j);
			++*fresh;
		} else if (b->v[i].size != v[j].size) {
			return error_set(CAIRN_ECORRUPT, "%s: blob %zu: stored size %u, charged before as %u", what, j,
			                 v[j].size, b->v[i].size);
		}
	}
	return 0;
}

int ub_apply(ublobs *b, int sign, const uref *v, size_t n, uint64_t *used, const char *what)
{
	size_t fresh;
	int rc = ub_check(b, sign, v, n, &fresh, what);
	if (rc < 0 || n == 0) return rc;
	if (sign < 0) { /* every one of v is in b: counted down, the uncounted squeezed out */
		size_t k = 0, j = 0;
		for (size_t i = 0; i < b->n; i++) {
			uref u = b->v[i];
			if (j < n && oid_cmp(&u.id, &v[j].id) == 0) {
				j++;
				if (--u.refs == 0) {
					*used -= u.size;
					continue;
				}
			}
			b->v[k++] = u;
		}
		b->n = k;
	} else { /* merged from the back, in place: no second array */
		size_t total = b->n + fresh;
		uref *nv = realloc(b->v, (total ? total : 1) * sizeof(*nv));
		if (!nv) return ERR_OOM();
		b->v = nv;
		size_t i = b->n, j = n, k = total;
		while (j > 0) {
			int c = i > 0 ? oid_cmp(&nv[i - 1].id, &v[j - 1].id) : -1;
			if (c > 0) {
				nv[--k] = nv[--i];
			} else if (c == 0) {
				nv[--k] = nv[--i];
				nv[k].refs++;
				j--;
			} else {
				nv[--k] = (uref){v[j - 1].id, v[j - 1].size, 1};
				*used += v[j - 1].size;
				j--;
			}
		}
		b->n = total;
	}
	ref_dir_build(&b->dir, b->v, b->n);
	return 0;
}
