/* libFuzzer target: the records under users/U/ (quota limit, refs, ledger
 * entry, base), chosen by the input's magic, decoded for the user the input
 * names (so that the body is reached), as given and with its checksum made
 * right (check.h). Decode must never crash; what it accepts must encode
 * back to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "format.h"
#include "quota/codec.h"

/* The user the record names (NUL-terminated), or 0 when it has none. */
static int record_user(const uint8_t *data, size_t len, char user[66])
{
	if (len < FORMAT_HEADER_LEN + 2) return 0;
	size_t ul = get_u16(data + FORMAT_HEADER_LEN);
	if (ul > 65 || len < FORMAT_HEADER_LEN + 2 + ul) return 0;
	memcpy(user, data + FORMAT_HEADER_LEN + 2, ul);
	user[ul] = 0;
	return strlen(user) == ul; /* a name holding a NUL encodes shorter */
}

static void same(const uint8_t *data, size_t len, uint8_t *again, size_t alen)
{
	if (alen != len || memcmp(again, data, len) != 0) abort();
	free(again);
}

static void refs(const uint8_t *data, size_t len, const char *user)
{
	refs_rec r;
	uint8_t *again;
	size_t alen;
	if (quota_refs_decode(data, len, "refs", user, &r) < 0) return;
	if (quota_refs_encode(user, &r.snap, r.delta ? &r.base : NULL, r.depth, r.removed, r.nremoved, r.added,
	                      r.nadded, &again, &alen) == 0)
		same(data, len, again, alen);
	refs_rec_free(&r);
}

static void base(const uint8_t *data, size_t len, const char *user)
{
	base_rec b;
	uint8_t *again;
	size_t alen;
	if (quota_base_decode(data, len, "base", user, &b) < 0) return;
	uref *snaps = calloc(b.nsnaps + 1, sizeof(*snaps)), *blobs = calloc(b.nblobs + 1, sizeof(*blobs));
	if (snaps && blobs) {
		for (uint32_t i = 0; i < b.nsnaps; i++) quota_base_snap(&b, i, &snaps[i].id);
		for (uint32_t i = 0; i < b.nblobs; i++) quota_base_blob(&b, i, &blobs[i]);
		if (quota_base_encode(user, b.seq, b.used, snaps, b.nsnaps, blobs, b.nblobs, &again, &alen) == 0)
			same(data, len, again, alen);
	}
	free(snaps);
	free(blobs);
}

static void one(const uint8_t *data, size_t len)
{
	char user[66];
	uint8_t *again;
	size_t alen;
	if (!record_user(data, len, user)) return;
	/* the encoders write flags 0 (refs: 0 or REFS_DELTA); readers of the
	 * other records ignore the flags word, so only flags 0 must match */
	uint32_t flags = get_u32(data + 12);
	if (memcmp(data, MAGIC_USER_REFS, 8) == 0) {
		refs(data, len, user);
	} else if (memcmp(data, MAGIC_USER_BASE, 8) == 0) {
		if (flags == 0) base(data, len, user);
		else { base_rec b; quota_base_decode(data, len, "base", user, &b); }
	} else if (memcmp(data, MAGIC_USER_LOG, 8) == 0) {
		ulog e;
		if (quota_log_decode(data, len, "log", user, &e) == 0 && flags == 0 &&
		    quota_log_encode(user, &e, &again, &alen) == 0)
			same(data, len, again, alen);
	} else {
		uint64_t limit;
		if (quota_limit_decode(data, len, "quota", user, &limit) == 0 && flags == 0 &&
		    quota_limit_encode(user, limit, &again, &alen) == 0)
			same(data, len, again, alen);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	one(data, len);
	fuzz_with_check(data, len, one);
	return 0;
}
