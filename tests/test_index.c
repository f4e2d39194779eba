#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn.h"
#include "format.h"
#include "hash.h"
#include "index.h"
#include "t.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint8_t packs[7][PACK_ID_LEN];

static void random_entry(index_entry *e)
{
	memset(e, 0, sizeof(*e));
	t_fill(e->id.b, OID_LEN);
	memcpy(e->pack, packs[t_rand() % 7], PACK_ID_LEN);
	e->type = t_rand() % 4 ? BLOB_DATA : BLOB_TREE;
	e->comp = t_rand() % 2 ? COMP_ZSTD : COMP_NONE;
	e->raw_len = (uint32_t)(t_rand() % (1u << 20));
	e->stored_len = e->comp == COMP_NONE ? e->raw_len : 1 + (uint32_t)(t_rand() % (e->raw_len + 1));
	e->offset = FORMAT_HEADER_LEN + (uint32_t)(t_rand() % (1u << 25));
}

static int same_entry(const index_entry *a, const index_entry *b)
{
	return memcmp(a->id.b, b->id.b, OID_LEN) == 0 && memcmp(a->pack, b->pack, PACK_ID_LEN) == 0 &&
	       a->offset == b->offset && a->raw_len == b->raw_len && a->stored_len == b->stored_len &&
	       a->type == b->type && a->comp == b->comp;
}

typedef struct visit {
	size_t calls;
	uint64_t sum; /* of the ids' first words: each entry seen exactly once */
} visit;

static void count_cb(const index_entry *e, void *payload)
{
	visit *v = payload;
	uint64_t w;
	memcpy(&w, e->id.b, 8);
	v->calls++;
	v->sum += w;
}

static void test_table(void)
{
	const size_t n = 1000000;
	index_entry *es = malloc(n * sizeof(*es));
	for (size_t i = 0; i < n; i++) random_entry(&es[i]);
	chunk_index *ix;
	CHECK_EQ(index_new(&ix), 0);
	CHECK(index_lookup(ix, &es[0].id) == NULL);
	double t0 = now();
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) bad += index_insert(ix, &es[i]) != 0;
	double t1 = now();
	CHECK_EQ(bad, 0);
	CHECK_EQ(index_count(ix), n);
	size_t found = 0;
	for (size_t i = 0; i < n; i++) {
		const index_entry *e = index_lookup(ix, &es[i].id);
		found += e && same_entry(e, &es[i]);
	}
	double t2 = now();
	CHECK_EQ(found, n);
	printf("1M entries: insert %.0f ns, lookup %.0f ns each\n", (t1 - t0) * 1e9 / n,
	       (t2 - t1) * 1e9 / n);

	/* absent ids, including ones that differ from present ids in one bit */
	size_t absent = 0;
	for (size_t i = 0; i < 100000; i++) {
		oid id;
		if (i % 2) t_fill(id.b, OID_LEN);
		else {
			id = es[t_rand() % n].id;
			id.b[t_rand() % OID_LEN] ^= (uint8_t)(1u << (t_rand() % 8));
		}
		absent += index_lookup(ix, &id) == NULL;
	}
	CHECK_EQ(absent, 100000);

	/* duplicates keep the first entry */
	size_t kept = 0;
	for (size_t i = 0; i < 1000; i++) {
		index_entry d = es[t_rand() % n];
		const index_entry *before = index_lookup(ix, &d.id);
		index_entry orig = *before;
		d.offset ^= 0x100;
		d.raw_len ^= 1;
		CHECK_EQ(index_insert(ix, &d), 1);
		const index_entry *after = index_lookup(ix, &d.id);
		kept += after && same_entry(after, &orig);
	}
	CHECK_EQ(kept, 1000);
	CHECK_EQ(index_count(ix), n);

	visit v = {0, 0}, want = {n, 0};
	for (size_t i = 0; i < n; i++) {
		uint64_t w;
		memcpy(&w, es[i].id.b, 8);
		want.sum += w;
	}
	index_foreach(ix, count_cb, &v);
	CHECK_EQ(v.calls, want.calls);
	CHECK(v.sum == want.sum);
	index_free(ix);
	index_free(NULL);
	free(es);
}

/* Ids that share their first 8 bytes (the hash) still work. */
static void test_same_hash(void)
{
	chunk_index *ix;
	CHECK_EQ(index_new(&ix), 0);
	index_entry e;
	random_entry(&e);
	size_t n = 3000, found = 0;
	for (size_t i = 0; i < n; i++) {
		put_u64(e.id.b + 24, i);
		e.offset = FORMAT_HEADER_LEN + (uint32_t)i;
		CHECK_EQ(index_insert(ix, &e), 0);
	}
	for (size_t i = 0; i < n; i++) {
		put_u64(e.id.b + 24, i);
		const index_entry *got = index_lookup(ix, &e.id);
		found += got && got->offset == FORMAT_HEADER_LEN + i;
	}
	CHECK_EQ(found, n);
	put_u64(e.id.b + 24, n);
	CHECK(index_lookup(ix, &e.id) == NULL);
	index_free(ix);
}

static int cmp_entry(const void *a, const void *b)
{
	return memcmp(((const index_entry *)a)->id.b, ((const index_entry *)b)->id.b, OID_LEN);
}

static void reseal(uint8_t *d, size_t len) { put_u64(d + len - 8, hash_xxh3(d, len - 8)); }

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	if (n) memcpy(d, p, n);
	return d;
}

static int decode_copy(const uint8_t *data, size_t len)
{
	uint8_t *d = dup_exact(data, len);
	index_entry *es = (index_entry *)1;
	size_t n = 99;
	int rc = index_segment_decode(d, len, "index test", &es, &n);
	if (rc < 0) CHECK(es == NULL && n == 0);
	else free(es);
	free(d);
	return rc;
}

static void test_segment_round_trip(void)
{
	size_t n = 5000;
	index_entry *es = malloc(n * sizeof(*es));
	for (size_t i = 0; i < n; i++) random_entry(&es[i]);
	uint8_t *seg;
	size_t len;
	CHECK_EQ(index_segment_encode(es, n, &seg, &len), 0);
	CHECK_EQ(len, FORMAT_HEADER_LEN + 4 + 7 * PACK_ID_LEN + 4 + n * INDEX_ENTRY_LEN + FORMAT_CHECK_LEN);

	index_entry *got;
	size_t m;
	CHECK_EQ(index_segment_decode(seg, len, "seg", &got, &m), 0);
	CHECK_EQ(m, n);
	qsort(es, n, sizeof(*es), cmp_entry);
	size_t same = 0;
	for (size_t i = 0; i < n && i < m; i++) same += same_entry(&es[i], &got[i]);
	CHECK_EQ(same, n);
	free(got);

	/* the same entries in another order encode to the same bytes */
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = t_rand() % (i + 1);
		index_entry t = es[i];
		es[i] = es[j];
		es[j] = t;
	}
	uint8_t *seg2;
	size_t len2;
	CHECK_EQ(index_segment_encode(es, n, &seg2, &len2), 0);
	CHECK(len2 == len && memcmp(seg, seg2, len) == 0);
	free(seg2);

	/* an empty segment */
	CHECK_EQ(index_segment_encode(NULL, 0, &seg2, &len2), 0);
	CHECK_EQ(index_segment_decode(seg2, len2, "empty", &got, &m), 0);
	CHECK_EQ(m, 0);
	free(got);
	free(seg2);

	/* the encoder refuses duplicates and entries a reader would refuse */
	es[1].id = es[3].id;
	CHECK_EQ(index_segment_encode(es, n, &seg2, &len2), CAIRN_EIO);
	CHECK(seg2 == NULL);
	random_entry(&es[1]);
	index_entry keep = es[2];
	es[2].type = 0;
	CHECK_EQ(index_segment_encode(es, n, &seg2, &len2), CAIRN_EIO);
	es[2] = keep;
	es[2].comp = 3;
	CHECK_EQ(index_segment_encode(es, n, &seg2, &len2), CAIRN_EIO);
	es[2] = keep;
	es[2].type = BLOB_DATA;
	es[2].raw_len = MAX_CHUNK_LEN + 1;
	CHECK_EQ(index_segment_encode(es, n, &seg2, &len2), CAIRN_EIO);
	es[2] = keep;
	es[2].comp = COMP_NONE;
	es[2].stored_len = es[2].raw_len + 1;
	CHECK_EQ(index_segment_encode(es, n, &seg2, &len2), CAIRN_EIO);
	es[2] = keep;
	es[2].offset = 0;
	CHECK_EQ(index_segment_encode(es, n, &seg2, &len2), CAIRN_EIO);
	es[2] = keep;
	CHECK_EQ(index_segment_encode(es, n, &seg2, &len2), 0);
	free(seg2);
	free(seg);
	free(es);
}

/* Offset of entry i in a segment with np packs. */
static size_t entry_at(uint32_t np, size_t i)
{
	return FORMAT_HEADER_LEN + 4 + (size_t)np * PACK_ID_LEN + 4 + i * INDEX_ENTRY_LEN;
}

static void test_segment_damage(void)
{
	size_t n = 6;
	index_entry es[6];
	for (size_t i = 0; i < n; i++) random_entry(&es[i]);
	memcpy(es[0].pack, packs[0], PACK_ID_LEN);
	memcpy(es[1].pack, packs[1], PACK_ID_LEN);
	memcpy(es[2].pack, packs[1], PACK_ID_LEN);
	memcpy(es[3].pack, packs[2], PACK_ID_LEN);
	memcpy(es[4].pack, packs[2], PACK_ID_LEN);
	memcpy(es[5].pack, packs[0], PACK_ID_LEN);
	uint8_t *seg;
	size_t len;
	CHECK_EQ(index_segment_encode(es, n, &seg, &len), 0);
	uint32_t np = get_u32(seg + FORMAT_HEADER_LEN);
	CHECK_EQ(np, 3);
	CHECK_EQ(decode_copy(seg, len), 0);

	/* truncation at every length, with and without a recomputed check */
	size_t missed = 0;
	for (size_t l = 0; l < len; l++) {
		if (decode_copy(seg, l) != CAIRN_ECORRUPT) missed++;
		if (l >= FORMAT_HEADER_LEN + FORMAT_CHECK_LEN) {
			uint8_t *d = dup_exact(seg, l);
			reseal(d, l);
			if (decode_copy(d, l) != CAIRN_ECORRUPT) missed++;
			free(d);
		}
	}
	CHECK_EQ(missed, 0);

	/* every flipped byte */
	uint8_t *d = malloc(len + 64);
	missed = 0;
	for (size_t pos = 0; pos < len; pos++) {
		memcpy(d, seg, len);
		d[pos] ^= (uint8_t)(1u << (t_rand() % 8));
		if (decode_copy(d, len) != CAIRN_ECORRUPT) missed++;
	}
	CHECK_EQ(missed, 0);

#define EXPECT_BAD(desc, mutate, dlen)                                                   \
	do {                                                                             \
		memcpy(d, seg, len);                                                     \
		size_t l_ = (dlen);                                                      \
		mutate;                                                                  \
		reseal(d, l_);                                                           \
		int rc_ = decode_copy(d, l_);                                            \
		if (rc_ != CAIRN_ECORRUPT) fprintf(stderr, "not rejected: %s\n", desc);  \
		CHECK_EQ(rc_, CAIRN_ECORRUPT);                                           \
	} while (0)

	/* oversized counts must fail before any allocation */
	EXPECT_BAD("npacks huge", put_u32(d + 16, 0xffffffffu), len);
	EXPECT_BAD("npacks one more", put_u32(d + 16, np + 1), len);
	EXPECT_BAD("count huge", put_u32(d + entry_at(np, 0) - 4, 0xffffffffu), len);
	EXPECT_BAD("count one more", put_u32(d + entry_at(np, 0) - 4, (uint32_t)n + 1), len);
	EXPECT_BAD("count one less", put_u32(d + entry_at(np, 0) - 4, (uint32_t)n - 1), len);
	EXPECT_BAD("trailing bytes", (void)0, len + 8);
	EXPECT_BAD("unknown flags", put_u32(d + 12, 2), len);
	EXPECT_BAD("version", put_u32(d + 8, 2), len);
	EXPECT_BAD("magic", d[0] = 'X', len);

	/* entries out of order, or duplicated */
	uint8_t tmp[INDEX_ENTRY_LEN];
	EXPECT_BAD("unsorted", (memcpy(tmp, d + entry_at(np, 1), INDEX_ENTRY_LEN),
	                        memcpy(d + entry_at(np, 1), d + entry_at(np, 2), INDEX_ENTRY_LEN),
	                        memcpy(d + entry_at(np, 2), tmp, INDEX_ENTRY_LEN)),
	           len);
	EXPECT_BAD("duplicate", memcpy(d + entry_at(np, 4), d + entry_at(np, 3), INDEX_ENTRY_LEN), len);
	/* pack table out of order */
	EXPECT_BAD("pack table", (memcpy(tmp, d + 20, PACK_ID_LEN), memcpy(d + 20, d + 36, PACK_ID_LEN),
	                          memcpy(d + 36, tmp, PACK_ID_LEN)),
	           len);

	/* field values */
	size_t e2 = entry_at(np, 2);
	EXPECT_BAD("pack index", put_u32(d + e2 + 32, np), len);
	EXPECT_BAD("pack index huge", put_u32(d + e2 + 32, 0xffffffffu), len);
	EXPECT_BAD("offset zero", put_u32(d + e2 + 36, 0), len);
	EXPECT_BAD("offset past limit", put_u32(d + e2 + 36, MAX_PACK_LEN), len);
	EXPECT_BAD("raw_len", (d[e2 + 48] = BLOB_DATA, put_u32(d + e2 + 40, MAX_CHUNK_LEN + 1)), len);
	EXPECT_BAD("stored_len", (d[e2 + 49] = COMP_NONE, put_u32(d + e2 + 44, get_u32(d + e2 + 40) + 1)),
	           len);
	EXPECT_BAD("zstd empty", (d[e2 + 49] = COMP_ZSTD, put_u32(d + e2 + 44, 0)), len);
	EXPECT_BAD("type 0", d[e2 + 48] = 0, len);
	EXPECT_BAD("type 3", d[e2 + 48] = 3, len);
	EXPECT_BAD("comp 2", d[e2 + 49] = 2, len);
	EXPECT_BAD("reserved", d[e2 + 51] = 1, len);

	/* a valid change with a recomputed check is accepted: the checks above
	 * are not just failing everything */
	memcpy(d, seg, len);
	put_u32(d + e2 + 36, get_u32(d + e2 + 36) + 1);
	reseal(d, len);
	CHECK_EQ(decode_copy(d, len), 0);
	free(d);
	free(seg);

	/* garbage, mostly with valid framing */
	size_t rejected = 0, tries = 3000;
	for (size_t i = 0; i < tries; i++) {
		size_t l = 25 + t_rand() % 400;
		uint8_t *g = malloc(l);
		t_fill(g, l);
		if (i % 4) {
			memcpy(g, MAGIC_INDEX, 8);
			put_u32(g + 8, FORMAT_VERSION);
			put_u32(g + 12, 0);
			if (i % 2) put_u32(g + 16, (uint32_t)(t_rand() % 3));
			reseal(g, l);
		}
		if (decode_copy(g, l) == CAIRN_ECORRUPT) rejected++;
		free(g);
	}
	CHECK_EQ(rejected, tries);
}

int main(void)
{
	t_seed();
	for (int i = 0; i < 7; i++) t_fill(packs[i], PACK_ID_LEN);
	test_table();
	test_same_hash();
	test_segment_round_trip();
	test_segment_damage();
	return t_done();
}
