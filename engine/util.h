/* Small helpers every layer uses (base layer): the clocks and the order of
 * names in a tree. Inline, since sorts and the walk call them per entry. */
#ifndef CAIRN_UTIL_H
#define CAIRN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Wall-clock time in ns since the epoch (what records store). */
static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Monotonic time in ns (durations, deadlines). */
static inline int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The order of names in a tree (tree.h): memcmp over the common length,
 * then shorter first. */
static inline int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c) return c;
	return alen < blen ? -1 : alen > blen;
}

#endif
