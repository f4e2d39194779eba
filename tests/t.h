/* Minimal unit-test helpers: CHECK records a failure and goes on; main
 * returns t_done(). Seeded randomness prints its seed (T_SEED overrides). */
#ifndef CAIRN_T_H
#define CAIRN_T_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int t_failures, t_checks;

#define CHECK(cond)                                                                      \
	do {                                                                             \
		t_checks++;                                                              \
		if (!(cond)) {                                                           \
			t_failures++;                                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                        \
	} while (0)

#define CHECK_EQ(a, b)                                                                   \
	do {                                                                             \
		long long _a = (long long)(a), _b = (long long)(b);                      \
		t_checks++;                                                              \
		if (_a != _b) {                                                          \
			t_failures++;                                                    \
			fprintf(stderr, "%s:%d: CHECK_EQ failed: %s = %lld, %s = %lld\n", __FILE__, \
			        __LINE__, #a, _a, #b, _b);                               \
		}                                                                        \
	} while (0)

static uint64_t t_rng_state;

/* Seed from T_SEED or the clock; always printed so a failure can be replayed. */
static inline uint64_t t_seed(void)
{
	const char *s = getenv("T_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
	printf("seed: %" PRIu64 " (replay with T_SEED=%" PRIu64 ")\n", seed, seed);
	t_rng_state = seed ? seed : 1;
	return seed;
}

/* xorshift64* */
static inline uint64_t t_rand(void)
{
	t_rng_state ^= t_rng_state >> 12;
	t_rng_state ^= t_rng_state << 25;
	t_rng_state ^= t_rng_state >> 27;
	return t_rng_state * 0x2545F4914F6CDD1DULL;
}

static inline void t_fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(t_rand() >> 56);
}

/* A whole file (malloc'd, NULL when it cannot be opened); and back. */
static inline uint8_t *t_slurp(const char *p, size_t *len)
{
	FILE *f = fopen(p, "rb");
	if (!f) return NULL;
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(*len + 1);
	if (fread(b, 1, *len, f) != *len) *len = 0;
	fclose(f);
	return b;
}

static inline void t_spit(const char *p, const uint8_t *b, size_t len)
{
	FILE *f = fopen(p, "wb");
	fwrite(b, 1, len, f);
	fclose(f);
}

static inline int t_done(void)
{
	printf("%d checks, %d failed\n", t_checks, t_failures);
	if (t_checks == 0) return 1; /* a test that checks nothing fails */
	return t_failures ? 1 : 0;
}

#endif
