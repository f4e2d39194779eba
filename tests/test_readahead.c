/* Read-ahead of a remote store's ranges (engine/readahead.c), over a backend
 * in memory whose ranged reads take a while, as a round trip does: advice is
 * fetched in pieces with several reads in flight; reads inside advised
 * ranges give exactly the object's bytes without asking the store again,
 * also across pieces and beyond them; a read of nothing advised is left to
 * the caller (1); a fetch's error is the first reader's, named as the store
 * named it, and a later read asks the store again; advice beyond the budget
 * is dropped; a dropped object's ranges are forgotten; threads reading and
 * advising at once all get the right bytes. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn.h"
#include "error.h"
#include "readahead.h"
#include "store_backend.h"
#include "t.h"

#define OBJ_LEN (96u << 20)
static uint8_t *obj;
static atomic_ulong reads, read_bytes;
static atomic_int in_flight, most_in_flight;
static atomic_long fail_at = -1; /* a read that covers this offset fails */

static int mem_get_range(store *st, const char *name, uint64_t off, void *out, size_t len)
{
	(void)st;
	if (strcmp(name, "packs/a") != 0 || off + len > OBJ_LEN)
		return error_set(CAIRN_ENOTFOUND, "%s: no such range", name);
	int now = atomic_fetch_add(&in_flight, 1) + 1, most = atomic_load(&most_in_flight);
	while (now > most && !atomic_compare_exchange_weak(&most_in_flight, &most, now)) {}
	struct timespec rtt = {0, 2000000}; /* a round trip */
	nanosleep(&rtt, NULL);
	atomic_fetch_sub(&in_flight, 1);
	long f = atomic_load(&fail_at);
	if (f >= 0 && (uint64_t)f >= off && (uint64_t)f < off + len) {
		atomic_store(&fail_at, -1);
		return error_set(CAIRN_EIO, "%s: injected read error at %ld", name, f);
	}
	atomic_fetch_add(&reads, 1);
	atomic_fetch_add(&read_bytes, len);
	memcpy(out, obj + off, len);
	return 0;
}

static const store_ops mem_ops = {.version = CAIRN_BACKEND_OPS_VERSION, .kind = "mem", .get_range = mem_get_range};
static store mem = {.ops = &mem_ops};

static int same(uint64_t off, const uint8_t *got, size_t len) { return memcmp(obj + off, got, len) == 0; }

static void check_reads_from_advice(void)
{
	readahead *ra = readahead_new(&mem);
	uint8_t *out = malloc(8u << 20);
	atomic_store(&reads, 0);
	atomic_store(&read_bytes, 0);
	readahead_advise(ra, "packs/a", 1000, 10u << 20); /* five pieces and a bit */
	/* reads inside the advice, across pieces, in order as a restore reads */
	uint64_t at = 1000, end = 1000 + (10u << 20);
	while (at < end) {
		size_t n = (size_t)(t_rand() % (3u << 20)) + 1;
		if (n > end - at) n = (size_t)(end - at);
		CHECK_EQ(readahead_read(ra, "packs/a", at, out, n), 0);
		CHECK(same(at, out, n));
		at += n;
	}
	CHECK_EQ(atomic_load(&read_bytes), 10u << 20); /* each byte fetched once */
	CHECK(atomic_load(&reads) >= 5);
	CHECK(atomic_load(&most_in_flight) >= 2); /* several in flight, not one */
	/* every piece was read whole, so freed: the same range is not advised any more */
	CHECK_EQ(readahead_read(ra, "packs/a", 1000, out, 4096), 1);
	CHECK_EQ(readahead_read(ra, "packs/b", 0, out, 4096), 1);

	/* a read that goes past the advice: the rest from the store */
	readahead_advise(ra, "packs/a", 12u << 20, 1u << 20);
	unsigned long before = atomic_load(&reads);
	CHECK_EQ(readahead_read(ra, "packs/a", (12u << 20) + 5, out, (3u << 20)), 0);
	CHECK(same((12u << 20) + 5, out, 3u << 20));
	CHECK(atomic_load(&reads) - before >= 2); /* the piece, then the rest */
	/* advice already under way is not fetched twice */
	readahead_advise(ra, "packs/a", 16u << 20, 1u << 20);
	readahead_advise(ra, "packs/a", 16u << 20, 1u << 20);
	unsigned long bytes = atomic_load(&read_bytes);
	CHECK_EQ(readahead_read(ra, "packs/a", 16u << 20, out, 1u << 20), 0);
	CHECK(same(16u << 20, out, 1u << 20));
	CHECK(atomic_load(&read_bytes) - bytes <= (1u << 20));
	readahead_free(ra);
	free(out);
}

static void check_errors_and_budget(void)
{
	readahead *ra = readahead_new(&mem);
	uint8_t *out = malloc(4u << 20);
	/* the fetch fails: the reader gets its error, once */
	atomic_store(&fail_at, 3u << 20);
	readahead_advise(ra, "packs/a", 2u << 20, 2u << 20);
	error_clear();
	int rc = readahead_read(ra, "packs/a", 2u << 20, out, 2u << 20);
	CHECK_EQ(rc, CAIRN_EIO);
	CHECK(strstr(cairn_error_last(), "injected read error") != NULL);
	CHECK_EQ(readahead_read(ra, "packs/a", 2u << 20, out, 2u << 20), 1); /* forgotten */
	/* an advised range of a missing object: the read fails as the store says */
	readahead_advise(ra, "packs/a", OBJ_LEN - 100, 200);
	rc = readahead_read(ra, "packs/a", OBJ_LEN - 100, out, 200);
	CHECK_EQ(rc, CAIRN_ENOTFOUND);
	/* the budget: advice past READAHEAD_BYTES is dropped, what was taken is kept */
	atomic_store(&read_bytes, 0);
	for (uint64_t off = 0; off + (1u << 20) <= OBJ_LEN; off += 1u << 20) readahead_advise(ra, "packs/a", off, 1u << 20);
	readahead_advise(ra, "packs/a", 0, OBJ_LEN); /* again: nothing new */
	CHECK_EQ(readahead_read(ra, "packs/a", READAHEAD_BYTES, out, 4096), 1);
	for (uint64_t off = 0; off < READAHEAD_BYTES; off += 4u << 20) {
		CHECK_EQ(readahead_read(ra, "packs/a", off, out, 4u << 20), 0);
		CHECK(same(off, out, 4u << 20));
	}
	CHECK_EQ(atomic_load(&read_bytes), READAHEAD_BYTES);
	readahead_advise(ra, "packs/a", 5u << 20, 1u << 20);
	/* dropped: forgotten */
	readahead_drop(ra, "packs/a");
	CHECK_EQ(readahead_read(ra, "packs/a", 5u << 20, out, 4096), 1);
	readahead_free(ra);
	free(out);
}

typedef struct worker {
	readahead *ra;
	uint64_t seed;
	int bad;
} worker;

static void *reader(void *arg)
{
	worker *w = arg;
	uint8_t *out = malloc(2u << 20);
	uint64_t s = w->seed;
	for (int i = 0; i < 200; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t off = (s >> 20) % (OBJ_LEN - (2u << 20));
		size_t len = (size_t)((s >> 8) % (2u << 20)) + 1;
		if (i % 3 == 0) readahead_advise(w->ra, "packs/a", off, len);
		int rc = readahead_read(w->ra, "packs/a", off, out, len);
		if (rc == 1) rc = mem_get_range(&mem, "packs/a", off, out, len);
		if (rc != 0 || !same(off, out, len)) w->bad++;
	}
	free(out);
	return NULL;
}

static void check_threads(void)
{
	readahead *ra = readahead_new(&mem);
	pthread_t th[6];
	worker w[6];
	for (int i = 0; i < 6; i++) {
		w[i] = (worker){ra, t_rand(), 0};
		pthread_create(&th[i], NULL, reader, &w[i]);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(w[i].bad, 0);
	}
	readahead_free(ra);
}

int main(void)
{
	t_seed();
	obj = malloc(OBJ_LEN);
	for (size_t i = 0; i < OBJ_LEN; i++) obj[i] = (uint8_t)(t_rand() >> 24);
	check_reads_from_advice();
	check_errors_and_budget();
	check_threads();
	free(obj);
	return t_done();
}
