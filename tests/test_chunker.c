#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunker.h"
#include "format.h"
#include "hash.h"
#include "t.h"

#define DATA_LEN (8u << 20)

/* End offsets of every chunk of data[0..len); returns the count. */
static size_t chunk_all(const chunker_params *p, const uint8_t *data, size_t len, size_t **ends)
{
	size_t n = 0, cap = 64, off = 0;
	size_t *e = malloc(cap * sizeof(*e));
	while (off < len) {
		size_t c = chunker_cut(p, data + off, len - off);
		if (c == 0 || c > len - off) {
			CHECK(c >= 1 && c <= len - off);
			break;
		}
		if (n == cap) e = realloc(e, (cap *= 2) * sizeof(*e));
		off += c;
		e[n++] = off;
	}
	*ends = e;
	return n;
}

/* Every chunk but the last in [min, max], the last in [1, max]. */
static void check_bounds(const chunker_params *p, const size_t *ends, size_t n, size_t len)
{
	size_t prev = 0, bad = 0;
	for (size_t i = 0; i < n; i++) {
		size_t c = ends[i] - prev;
		if (c > p->max || c == 0 || (i + 1 < n && c < p->min)) bad++;
		prev = ends[i];
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(n ? ends[n - 1] : 0, len);
}

static int has_end(const size_t *ends, size_t n, size_t v)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ends[mid] < v) lo = mid + 1;
		else hi = mid;
	}
	return lo < n && ends[lo] == v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* How many chunks of b do not occur (by content) among the chunks of a. */
static size_t new_chunks(const uint8_t *a, const size_t *ea, size_t na, const uint8_t *b,
                         const size_t *eb, size_t nb)
{
	uint64_t *ha = malloc(na * sizeof(*ha));
	for (size_t i = 0, prev = 0; i < na; prev = ea[i], i++)
		ha[i] = hash_xxh3(a + prev, ea[i] - prev);
	qsort(ha, na, sizeof(*ha), cmp_u64);
	size_t fresh = 0;
	for (size_t i = 0, prev = 0; i < nb; prev = eb[i], i++) {
		uint64_t h = hash_xxh3(b + prev, eb[i] - prev);
		if (!bsearch(&h, ha, na, sizeof(*ha), cmp_u64)) fresh++;
	}
	free(ha);
	return fresh;
}

static void test_contract(const uint8_t secret[32])
{
	chunker_params p;
	chunker_init(&p, secret, 16 * 1024, 64 * 1024, 256 * 1024);
	CHECK(p.mask_s != 0 && p.mask_l != 0);
	CHECK_EQ(__builtin_popcountll(p.mask_s), 17);
	CHECK_EQ(__builtin_popcountll(p.mask_l), 15);
	CHECK((p.mask_s & p.mask_l) == p.mask_l); /* the easier mask is a subset */

	uint8_t *d = malloc(p.max * 2);
	t_fill(d, p.max * 2);
	CHECK_EQ(chunker_cut(&p, d, 1), 1);
	CHECK_EQ(chunker_cut(&p, d, p.min - 1), p.min - 1);
	CHECK_EQ(chunker_cut(&p, d, p.min), p.min);
	size_t c = chunker_cut(&p, d, p.max * 2);
	CHECK(c >= p.min && c <= p.max);
	/* A short final piece: the cut is found in it or the whole rest is taken. */
	size_t c2 = chunker_cut(&p, d, p.min + 100);
	CHECK(c2 > p.min && c2 <= p.min + 100);
	/* Passing exactly max bytes decides the same as passing more. */
	CHECK_EQ(chunker_cut(&p, d, p.max), c);
	/* No cut point: the chunk ends at max, or at the end of a short rest. */
	chunker_params never = p;
	never.mask_s = never.mask_l = ~UINT64_C(0);
	CHECK_EQ(chunker_cut(&never, d, p.max * 2), p.max);
	CHECK_EQ(chunker_cut(&never, d, p.max), p.max);
	CHECK_EQ(chunker_cut(&never, d, p.max - 7), p.max - 7);
	/* Every position a cut point: the first tested one, just past min. */
	chunker_params always = p;
	always.mask_s = always.mask_l = 0;
	CHECK_EQ(chunker_cut(&always, d, p.max * 2), p.min + 1);
	/* Cut points only from avg on: the first one there. */
	chunker_params late = p;
	late.mask_s = ~UINT64_C(0);
	late.mask_l = 0;
	CHECK_EQ(chunker_cut(&late, d, p.max * 2), p.avg + 1);
	free(d);
}

/* The definition, one byte a step: the first position past min whose
 * window hash has the mask's bits clear (mask_s before avg, mask_l from
 * avg), else max or the end. */
static size_t reference_cut(const chunker_params *p, const uint8_t *d, size_t len)
{
	size_t n = len < p->max ? len : p->max;
	if (n <= p->min) return n;
	uint64_t h = 0;
	for (size_t i = 0; i < n; i++) {
		h = (h << 1) + p->gear[d[i]];
		if (i < p->min) continue;
		if (!(h & (i < p->avg ? p->mask_s : p->mask_l))) return i + 1;
	}
	return n;
}

/* chunker_cut decides exactly as the definition: every parameter shape
 * (min, avg, max odd or even, min below the window), every length. */
static void test_reference(const uint8_t secret[32], const uint8_t *data)
{
	static const uint32_t shapes[][3] = {
		{16, 64, 256}, {17, 63, 257}, {100, 101, 103}, {1024, 4096, 16384}, {4095, 8191, 65537},
		{128 * 1024, 512 * 1024, 2 * 1024 * 1024},
	};
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		chunker_params p;
		chunker_init(&p, secret, shapes[s][0], shapes[s][1], shapes[s][2]);
		size_t off = 0, cuts = 0, bad = 0;
		while (off < DATA_LEN && cuts < 20000) {
			size_t len = DATA_LEN - off;
			if (cuts % 3 == 1) len = 1 + t_rand() % (2 * p.max < len ? 2 * p.max : len);
			size_t want = reference_cut(&p, data + off, len), got = chunker_cut(&p, data + off, len);
			if (want != got && bad++ < 3) printf("  shape %zu at %zu, len %zu: cut %zu, want %zu\n", s, off, len, got, want);
			off += want;
			cuts++;
		}
		CHECK_EQ(bad, 0);
	}
}

static void test_determinism(const uint8_t secret[32], const uint8_t *data)
{
	chunker_params p1, p2;
	chunker_init(&p1, secret, 16 * 1024, 64 * 1024, 256 * 1024);
	chunker_init(&p2, secret, 16 * 1024, 64 * 1024, 256 * 1024);
	CHECK(memcmp(&p1, &p2, sizeof(p1)) == 0);

	size_t *e1, *e2;
	size_t n1 = chunk_all(&p1, data, DATA_LEN, &e1);
	size_t n2 = chunk_all(&p2, data, DATA_LEN, &e2);
	CHECK_EQ(n1, n2);
	CHECK(n1 == n2 && memcmp(e1, e2, n1 * sizeof(*e1)) == 0);
	check_bounds(&p1, e1, n1, DATA_LEN);

	/* Feeding the chunker a max-sized window, as a streaming reader does,
	 * gives the same cuts as the whole buffer. */
	size_t off = 0, k = 0, same = 1;
	while (off < DATA_LEN && k < n1) {
		size_t avail = DATA_LEN - off < p1.max ? DATA_LEN - off : p1.max;
		off += chunker_cut(&p1, data + off, avail);
		if (off != e1[k++]) same = 0;
	}
	CHECK(same);
	free(e1);
	free(e2);
}

/* Insert a few bytes near the start: after a chunk or two the boundaries
 * are the old ones, shifted by the insertion. */
static void test_insert(const uint8_t secret[32], const uint8_t *data)
{
	chunker_params p;
	chunker_init(&p, secret, 16 * 1024, 64 * 1024, 256 * 1024);
	size_t k = 1 + t_rand() % 16, pos = t_rand() % 1000;
	uint8_t *b = malloc(DATA_LEN + k);
	memcpy(b, data, pos);
	t_fill(b + pos, k);
	memcpy(b + pos + k, data + pos, DATA_LEN - pos);

	size_t *ea, *eb;
	size_t na = chunk_all(&p, data, DATA_LEN, &ea);
	size_t nb = chunk_all(&p, b, DATA_LEN + k, &eb);
	check_bounds(&p, eb, nb, DATA_LEN + k);

	size_t j = 0;
	while (j < nb && !(eb[j] > pos + k && has_end(ea, na, eb[j] - k))) j++;
	printf("insert %zu bytes at %zu: resynchronised after %zu chunks\n", k, pos, j + 1);
	CHECK(j < 8);
	size_t mismatched = 0;
	for (size_t i = j; i < nb; i++)
		if (!has_end(ea, na, eb[i] - k)) mismatched++;
	CHECK_EQ(mismatched, 0);
	/* and none of the old boundaries after that point is lost */
	size_t i = 0;
	while (i < na && j < nb && ea[i] < eb[j] - k) i++;
	CHECK_EQ(nb - j, na - i);
	free(ea);
	free(eb);
	free(b);
}

/* Delete or overwrite bytes in the middle: only nearby chunks change. */
static void test_edit_middle(const uint8_t secret[32], const uint8_t *data)
{
	chunker_params p;
	chunker_init(&p, secret, 16 * 1024, 64 * 1024, 256 * 1024);
	size_t *ea;
	size_t na = chunk_all(&p, data, DATA_LEN, &ea);

	for (int mode = 0; mode < 2; mode++) {
		size_t pos = DATA_LEN / 2 + t_rand() % (1u << 20), k = 1 + t_rand() % 200;
		uint8_t *b = malloc(DATA_LEN);
		size_t blen;
		if (mode == 0) { /* delete k bytes */
			memcpy(b, data, pos);
			memcpy(b + pos, data + pos + k, DATA_LEN - pos - k);
			blen = DATA_LEN - k;
		} else { /* overwrite k bytes */
			memcpy(b, data, DATA_LEN);
			for (size_t i = 0; i < k; i++) b[pos + i] ^= 0x5a;
			blen = DATA_LEN;
		}
		size_t *eb;
		size_t nb = chunk_all(&p, b, blen, &eb);
		check_bounds(&p, eb, nb, blen);

		/* Chunks that end before the edit are untouched. */
		size_t before = 0, same_before = 1;
		for (size_t i = 0; i < na && ea[i] <= pos; i++, before++)
			if (i >= nb || eb[i] != ea[i]) same_before = 0;
		CHECK(same_before);
		CHECK(before > 10);
		size_t fresh = new_chunks(data, ea, na, b, eb, nb);
		printf("%s %zu bytes at %zu: %zu of %zu chunks new\n", mode ? "overwrite" : "delete", k,
		       pos, fresh, nb);
		CHECK(fresh >= 1 && fresh <= 4);
		free(eb);
		free(b);
	}
	free(ea);
}

static void test_secrets(const uint8_t secret[32], const uint8_t *data)
{
	uint8_t other[32];
	memcpy(other, secret, 32);
	other[t_rand() % 32] ^= (uint8_t)(1u << (t_rand() % 8));
	chunker_params p1, p2;
	chunker_init(&p1, secret, 16 * 1024, 64 * 1024, 256 * 1024);
	chunker_init(&p2, other, 16 * 1024, 64 * 1024, 256 * 1024);
	size_t differ = 0;
	for (int i = 0; i < 256; i++) differ += p1.gear[i] != p2.gear[i];
	CHECK_EQ(differ, 256);

	size_t *e1, *e2;
	size_t n1 = chunk_all(&p1, data, DATA_LEN, &e1);
	size_t n2 = chunk_all(&p2, data, DATA_LEN, &e2);
	size_t common = 0;
	for (size_t i = 0; i + 1 < n2; i++) common += has_end(e1, n1, e2[i]);
	printf("secrets: %zu and %zu chunks, %zu common boundaries\n", n1, n2, common);
	CHECK(common * 10 < n2);
	free(e1);
	free(e2);
}

static void test_average(const uint8_t secret[32], const uint8_t *data)
{
	static const uint32_t avgs[] = {4096, 16384, 65536};
	for (size_t a = 0; a < sizeof(avgs) / sizeof(avgs[0]); a++) {
		uint32_t avg = avgs[a];
		chunker_params p;
		chunker_init(&p, secret, avg / 4, avg, avg * 4);
		size_t *e;
		size_t n = chunk_all(&p, data, DATA_LEN, &e);
		check_bounds(&p, e, n, DATA_LEN);
		double mean = (double)DATA_LEN / (double)n;
		size_t at_max = 0;
		for (size_t i = 0, prev = 0; i < n; prev = e[i], i++) at_max += e[i] - prev == p.max;
		printf("avg %u: %zu chunks, mean %.0f, %zu cut at max\n", avg, n, mean, at_max);
		CHECK(mean > avg / 2.0 && mean < avg * 2.0);
		CHECK(at_max * 20 < n);
		free(e);
	}
}

/* Degenerate input: no crash, bounded lengths, every chunk alike. */
static void test_uniform(const uint8_t secret[32])
{
	chunker_params p;
	chunker_init(&p, secret, 16 * 1024, 64 * 1024, 256 * 1024);
	uint8_t *z = malloc(DATA_LEN);
	for (int fill = 0; fill < 2; fill++) {
		memset(z, fill ? 0xff : 0, DATA_LEN);
		size_t *e;
		size_t n = chunk_all(&p, z, DATA_LEN, &e);
		check_bounds(&p, e, n, DATA_LEN);
		size_t alike = 1;
		for (size_t i = 1; i + 1 < n; i++) alike &= e[i] - e[i - 1] == e[0];
		CHECK(alike);
		/* the hash is constant: cut at the first position tested with a
		 * matching mask, or at max */
		CHECK(e[0] == p.min + 1 || e[0] == p.avg + 1 || e[0] == p.max);
		printf("uniform 0x%02x: %zu chunks of %zu\n", fill ? 0xff : 0, n, n ? e[0] : 0);
		free(e);
	}
	/* short repeating pattern */
	for (size_t i = 0; i < DATA_LEN; i++) z[i] = (uint8_t)(i % 97);
	size_t *e;
	size_t n = chunk_all(&p, z, DATA_LEN, &e);
	check_bounds(&p, e, n, DATA_LEN);
	free(e);
	free(z);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Throughput is printed, never asserted (sanitizer builds are slow). */
static void bench(const uint8_t secret[32], const uint8_t *data)
{
	static const uint32_t avgs[] = {64 * 1024, DEFAULT_CHUNK_AVG};
	for (size_t a = 0; a < 2; a++) {
		chunker_params p;
		chunker_init(&p, secret, avgs[a] / 4, avgs[a], avgs[a] * 4);
		size_t rounds = 16, chunks = 0;
		double t0 = now();
		for (size_t r = 0; r < rounds; r++) {
			size_t off = 0;
			while (off < DATA_LEN) {
				off += chunker_cut(&p, data + off, DATA_LEN - off);
				chunks++;
			}
		}
		double dt = now() - t0;
		printf("throughput (avg %u): %.0f MB/s (%zu chunks)\n", avgs[a],
		       rounds * (double)DATA_LEN / dt / 1e6, chunks);
	}
}

int main(void)
{
	t_seed();
	uint8_t secret[32];
	t_fill(secret, sizeof(secret));
	uint8_t *data = malloc(DATA_LEN);
	t_fill(data, DATA_LEN);

	test_contract(secret);
	test_reference(secret, data);
	test_determinism(secret, data);
	test_insert(secret, data);
	test_edit_middle(secret, data);
	test_secrets(secret, data);
	test_average(secret, data);
	test_uniform(secret);
	bench(secret, data);

	free(data);
	return t_done();
}
