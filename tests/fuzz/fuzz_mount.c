/* libFuzzer target: the mount's records, chosen by the input's magic: the
 * access trace (as given and with its checksum made right, check.h) and
 * the cache's record log (as given and with its entries' checks made
 * right). Decode must never crash; a trace it accepts encodes back to the
 * same bytes (flags 0: the writer's); the trusted part of a cache log
 * encodes back to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "format.h"
#include "mount/codec.h"

typedef struct paths {
	char **v;
	size_t n;
	int oom;
} paths;

static void collect(void *arg, const char *path, size_t len)
{
	paths *p = arg;
	char *s = p->oom ? NULL : malloc(len + 1); /* not strndup: path is not NUL-terminated */
	if (!s) {
		p->oom = 1;
		return;
	}
	memcpy(s, path, len);
	s[len] = 0;
	p->v[p->n++] = s;
}

static void trace(const uint8_t *data, size_t len)
{
	oid snap;
	uint32_t np;
	paths p = {0};
	uint8_t *again = NULL;
	size_t alen;
	if (trace_decode(data, len, "trace", &snap, &np, NULL, NULL) < 0) return;
	if (!(p.v = calloc((size_t)np + 1, sizeof(char *)))) return;
	oid snap2;
	uint32_t np2;
	if (trace_decode(data, len, "trace", &snap2, &np2, collect, &p) < 0 || np2 != np || p.n != np) {
		if (!p.oom) abort(); /* the second decode of the same bytes must agree */
		goto done;
	}
	if (get_u32(data + 12) != 0) goto done; /* the reader ignores the flags word; the writer puts 0 */
	if (trace_encode(&snap, (const char *const *)p.v, p.n, &again, &alen) < 0) goto done;
	if (alen != len || memcmp(again, data, len) != 0) abort();
done:
	for (size_t i = 0; i < p.n; i++) free(p.v[i]);
	free(p.v);
	free(again);
}

static void cache_log(const uint8_t *data, size_t len)
{
	mlog_entry e;
	size_t valid;
	uint8_t b[MLOG_HEADER_LEN > MLOG_ENTRY_LEN ? MLOG_HEADER_LEN : MLOG_ENTRY_LEN];
	if (mcache_log_decode(data, len, "cache log", &valid) < 0) return;
	if (valid < MLOG_HEADER_LEN || valid > len || (valid - MLOG_HEADER_LEN) % MLOG_ENTRY_LEN) abort();
	mcache_log_header(b);
	if (memcmp(b, data, MLOG_HEADER_LEN) != 0) abort();
	for (size_t at = MLOG_HEADER_LEN; at < valid; at += MLOG_ENTRY_LEN) {
		if (mcache_log_entry_decode(data + at, &e) < 0) abort();
		if (e.first > e.nchunks || e.count > e.nchunks - e.first) abort();
		mcache_log_entry(b, &e);
		if (memcmp(b, data + at, MLOG_ENTRY_LEN) != 0) abort();
	}
	/* what follows the trusted part is a torn entry or a partial one */
	if (len - valid >= MLOG_ENTRY_LEN && mcache_log_entry_decode(data + valid, &e) == 0) abort();
}

/* A copy with every entry's check made right, so that mutations reach the
 * counts and chunk ranges. */
static void cache_log_fixed(const uint8_t *data, size_t len)
{
	if (len < MLOG_HEADER_LEN) return;
	uint8_t *copy = malloc(len);
	if (!copy) return;
	memcpy(copy, data, len);
	for (size_t at = MLOG_HEADER_LEN; len - at >= MLOG_ENTRY_LEN; at += MLOG_ENTRY_LEN)
		put_u64(copy + at + MLOG_ENTRY_LEN - 8, hash_xxh3(copy + at, MLOG_ENTRY_LEN - 8));
	cache_log(copy, len);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (len >= 8 && memcmp(data, MAGIC_MOUNT_LOG, 8) == 0) {
		cache_log(data, len);
		cache_log_fixed(data, len);
	} else {
		trace(data, len);
		fuzz_with_check(data, len, trace);
	}
	return 0;
}
