/* The read caches (engine/readcache.c). The block cache of packs, over
 * objects held in memory: random reads, within and across blocks and up to
 * each object's end, give exactly the object's bytes; a read past the end
 * says so (1) and one inside it never does; blocks are fetched once while
 * they fit in the cache and again once dropped; the bytes kept stay within
 * the bound; a fetch's error comes back as it was; threads reading at once
 * agree. The cache of whole segments, over a directory store: ranges read
 * exactly, a segment deleted after its first read stays readable, one
 * missing, one too large to keep and a range past the end are left to the
 * caller (1), and a dropped segment is read again. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readcache.h"
#include "cairn.h"
#include "error.h"
#include "t.h"

#include <sys/stat.h>
#include <unistd.h>

#define NOBJ 4
static uint8_t *obj[NOBJ];
static size_t objlen[NOBJ];
static atomic_ulong fetches, fetched_bytes;
static atomic_int fail_next;

static int obj_of(const char *name) { return name[6] - '0'; } /* "packs/N" */

static int fetch(store *st, const char *name, uint64_t off, void *out, size_t len, size_t *got)
{
	(void)st;
	int i = obj_of(name);
	*got = 0;
	if (atomic_exchange(&fail_next, 0)) return error_set(CAIRN_EIO, "%s: injected read error", name);
	atomic_fetch_add(&fetches, 1);
	if (off >= objlen[i]) return 0;
	size_t n = objlen[i] - off < len ? (size_t)(objlen[i] - off) : len;
	memcpy(out, obj[i] + off, n);
	*got = n;
	atomic_fetch_add(&fetched_bytes, n);
	return 0;
}

static block_cache *cache;

static void check_whole(void)
{
	char dir[64], cmd[128];
	snprintf(dir, sizeof(dir), "/tmp/test_readcache.%d", (int)getpid());
	store *st;
	CHECK_EQ(store_create(&st, dir, NULL), 0);
	size_t len = 300000;
	uint8_t *seg = malloc(len), out[5000];
	for (size_t k = 0; k < len; k++) seg[k] = (uint8_t)t_rand();
	CHECK_EQ(store_put(st, "index/a", seg, len, 0), 0);
	whole_cache *wc = whole_cache_new();
	CHECK(wc != NULL);
	size_t bad = 0;
	for (int k = 0; k < 200; k++) {
		size_t n = 1 + t_rand() % sizeof(out);
		uint64_t off = t_rand() % (len - n + 1);
		CHECK_EQ(whole_cache_read(wc, st, "index/a", off, out, n), 0);
		bad += memcmp(out, seg + off, n) != 0;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(whole_cache_read(wc, st, "index/a", len - 10, out, 11), 1); /* past the end */
	CHECK_EQ(store_delete(st, "index/a"), 0);
	CHECK_EQ(whole_cache_read(wc, st, "index/a", len - 10, out, 10), 0); /* kept after its deletion */
	CHECK(!memcmp(out, seg + len - 10, 10));
	whole_cache_drop(wc, "index/a");
	CHECK_EQ(whole_cache_read(wc, st, "index/a", 0, out, 10), 1); /* gone now: missing */
	/* larger than kept: left to the caller, each time */
	size_t big = WHOLE_CACHE_ONE + 1;
	uint8_t *b = calloc(1, big);
	CHECK_EQ(store_put(st, "index/big", b, big, 0), 0);
	CHECK_EQ(whole_cache_read(wc, st, "index/big", 0, out, 10), 1);
	CHECK_EQ(whole_cache_read(wc, st, "index/big", 0, out, 10), 1);
	free(b);
	whole_cache_free(wc);
	store_free(st);
	free(seg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* n random reads inside the objects, each checked */
static size_t random_reads(unsigned n, unsigned seed)
{
	size_t bad = 0;
	uint8_t *out = malloc(BLOCK_LEN);
	uint64_t s = seed;
	for (unsigned k = 0; k < n; k++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		int i = (int)((s >> 33) % NOBJ);
		size_t len = 1 + (size_t)((s >> 13) % (BLOCK_LEN - 1));
		if (len > objlen[i]) len = objlen[i];
		uint64_t off = (s >> 20) % (objlen[i] - len + 1);
		char name[16];
		snprintf(name, sizeof(name), "packs/%d", i);
		int rc = block_cache_read(cache, NULL, fetch, name, off, out, len);
		bad += rc != 0 || memcmp(out, obj[i] + off, len) != 0;
	}
	free(out);
	return bad;
}

static void *reader(void *arg)
{
	size_t *bad = arg;
	*bad = random_reads(400, (unsigned)t_rand());
	return NULL;
}

int main(void)
{
	t_seed();
	/* sizes: under one block, exactly two, and ragged ends */
	size_t sizes[NOBJ] = {BLOCK_LEN / 3, 2 * (size_t)BLOCK_LEN, 5 * (size_t)BLOCK_LEN + 12345,
	                      9 * (size_t)BLOCK_LEN + 1};
	for (int i = 0; i < NOBJ; i++) {
		objlen[i] = sizes[i];
		obj[i] = malloc(sizes[i]);
		for (size_t k = 0; k < sizes[i]; k++) obj[i][k] = (uint8_t)t_rand();
	}
	CHECK((cache = block_cache_new()) != NULL);

	/* every byte of every object by reads that cross blocks */
	uint8_t *out = malloc(3 * BLOCK_LEN);
	for (int i = 0; i < NOBJ; i++) {
		char name[16];
		snprintf(name, sizeof(name), "packs/%d", i);
		size_t step = BLOCK_LEN / 2 + 777, bad = 0;
		for (size_t off = 0; off < objlen[i]; off += step) {
			size_t len = objlen[i] - off < step ? objlen[i] - off : step;
			CHECK_EQ(block_cache_read(cache, NULL, fetch, name, off, out, len), 0);
			bad += memcmp(out, obj[i] + off, len) != 0;
		}
		CHECK_EQ(bad, 0);
		/* one byte past the end, and a read that starts there */
		CHECK_EQ(block_cache_read(cache, NULL, fetch, name, objlen[i] - 10, out, 11), 1);
		CHECK_EQ(block_cache_read(cache, NULL, fetch, name, objlen[i], out, 1), 1);
		CHECK_EQ(block_cache_read(cache, NULL, fetch, name, objlen[i] + 3 * BLOCK_LEN, out, 1), 1);
	}
	/* 17 blocks of data fit: all of it was fetched once (plus the blocks past the ends) */
	unsigned long f = atomic_load(&fetches);
	printf("  %lu fetches, %lu bytes fetched for %zu bytes of objects\n", f, atomic_load(&fetched_bytes),
	       objlen[0] + objlen[1] + objlen[2] + objlen[3]);
	CHECK_EQ(atomic_load(&fetched_bytes), objlen[0] + objlen[1] + objlen[2] + objlen[3]);
	CHECK(f <= 1 + 2 + 6 + 10 + 2 * NOBJ);
	CHECK_EQ(random_reads(2000, (unsigned)t_rand()), 0);
	CHECK_EQ(atomic_load(&fetches), f); /* all served from the cache */

	/* dropped: fetched again */
	block_cache_drop(cache, "packs/3");
	CHECK_EQ(block_cache_read(cache, NULL, fetch, "packs/3", 0, out, 10), 0);
	CHECK_EQ(atomic_load(&fetches), f + 1);
	CHECK(!memcmp(out, obj[3], 10));

	/* a fetch's error, as it was; the next read works */
	block_cache_drop(cache, "packs/0");
	atomic_store(&fail_next, 1);
	CHECK_EQ(block_cache_read(cache, NULL, fetch, "packs/0", 5, out, 10), CAIRN_EIO);
	CHECK(strstr(cairn_error_last(), "packs/0: injected") != NULL);
	CHECK_EQ(block_cache_read(cache, NULL, fetch, "packs/0", 5, out, 10), 0);
	CHECK(!memcmp(out, obj[0] + 5, 10));

	/* more blocks than the cache holds: bytes fetched grow, reads stay right */
	for (int i = 0; i < NOBJ; i++) free(obj[i]);
	size_t big = (size_t)(BLOCK_CACHE_BYTES / NOBJ) + 8 * (size_t)BLOCK_LEN; /* all four: 80 MiB */
	for (int i = 0; i < NOBJ; i++) {
		objlen[i] = big;
		obj[i] = malloc(big);
		for (size_t k = 0; k < big; k += 8) {
			uint64_t v = t_rand();
			memcpy(obj[i] + k, &v, 8);
		}
		char name[16];
		snprintf(name, sizeof(name), "packs/%d", i);
		block_cache_drop(cache, name);
	}
	atomic_store(&fetched_bytes, 0);
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < NOBJ; i++) {
			char name[16];
			snprintf(name, sizeof(name), "packs/%d", i);
			size_t bad = 0;
			for (size_t off = 0; off < big; off += BLOCK_LEN) {
				CHECK_EQ(block_cache_read(cache, NULL, fetch, name, off, out, 100), 0);
				bad += memcmp(out, obj[i] + off, 100) != 0;
			}
			CHECK_EQ(bad, 0);
		}
	/* in order, least recently used first out: the second pass fetches all again */
	CHECK_EQ(atomic_load(&fetched_bytes), 2 * NOBJ * big);

	/* four threads at once */
	pthread_t th[4];
	size_t bad[4];
	for (int k = 0; k < 4; k++) pthread_create(&th[k], NULL, reader, &bad[k]);
	for (int k = 0; k < 4; k++) {
		pthread_join(th[k], NULL);
		CHECK_EQ(bad[k], 0);
	}
	block_cache_free(cache);
	free(out);
	check_whole();
	for (int i = 0; i < NOBJ; i++) free(obj[i]);
	return t_done();
}
