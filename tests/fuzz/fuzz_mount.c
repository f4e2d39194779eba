/* libFuzzer target: the mount's records, chosen by the input's magic: the
 * access trace (as given and with its checksum made right, check.h) and
 * the cache's completion record (as given and with its header's and
 * entries' checks made right). Decode must never crash; a trace it accepts
 * encodes back to the same bytes (flags 0: the writer's); the trusted part
 * of a cache record encodes back to the same bytes. */
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

static void cache_record(const uint8_t *data, size_t len)
{
	oid cid;
	uint32_t nchunks, first, count;
	size_t valid;
	uint8_t b[REC_HEADER_LEN > REC_ENTRY_LEN ? REC_HEADER_LEN : REC_ENTRY_LEN];
	if (mcache_rec_decode(data, len, "cache record", &cid, &nchunks, &valid) < 0) return;
	if (valid < REC_HEADER_LEN || valid > len || (valid - REC_HEADER_LEN) % REC_ENTRY_LEN) abort();
	mcache_rec_header(b, &cid, nchunks);
	if (memcmp(b, data, REC_HEADER_LEN) != 0) abort();
	for (size_t at = REC_HEADER_LEN; at < valid; at += REC_ENTRY_LEN) {
		if (mcache_rec_entry_decode(data + at, &cid, nchunks, &first, &count) < 0) abort();
		if (first > nchunks || count > nchunks - first) abort();
		mcache_rec_entry(b, &cid, first, count);
		if (memcmp(b, data + at, REC_ENTRY_LEN) != 0) abort();
	}
	/* what follows the trusted part is a torn entry or a partial one */
	if (len - valid >= REC_ENTRY_LEN && mcache_rec_entry_decode(data + valid, &cid, nchunks, &first, &count) == 0)
		abort();
}

/* A copy with the header's check and every entry's check made right, so
 * that mutations reach the counts and chunk ranges. */
static void cache_record_fixed(const uint8_t *data, size_t len)
{
	if (len < REC_HEADER_LEN) return;
	uint8_t *copy = malloc(len);
	if (!copy) return;
	memcpy(copy, data, len);
	put_u64(copy + REC_HEADER_LEN - 8, hash_xxh3(copy, REC_HEADER_LEN - 8));
	oid cid;
	memcpy(cid.b, copy + FORMAT_HEADER_LEN, OID_LEN);
	for (size_t at = REC_HEADER_LEN; len - at >= REC_ENTRY_LEN; at += REC_ENTRY_LEN)
		mcache_rec_entry(copy + at, &cid, get_u32(copy + at), get_u32(copy + at + 4));
	cache_record(copy, len);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (len >= 8 && memcmp(data, MAGIC_MOUNT_CACHE, 8) == 0) {
		cache_record(data, len);
		cache_record_fixed(data, len);
	} else {
		trace(data, len);
		fuzz_with_check(data, len, trace);
	}
	return 0;
}
