#include "chunker.h"

#include <string.h>

#include "format.h"
#include "hash.h"

/* Gear hash: h = (h << 1) + gear[byte]. Bit k of h depends on the last
 * k + 1 bytes only, so the masks test the top bits, which see the widest
 * window (64 bytes), and a cut decision depends on that window alone. */
#define GEAR_WINDOW 64

static uint64_t top_bits(unsigned n)
{
	return n == 0 ? 0 : ~UINT64_C(0) << (64 - n);
}

void chunker_init(chunker_params *p, const uint8_t secret[32], uint32_t min, uint32_t avg,
                  uint32_t max)
{
	memset(p, 0, sizeof(*p));
	p->min = min;
	p->avg = avg;
	p->max = max;

	unsigned bits = 0;
	while (bits < 31 && (UINT32_C(1) << (bits + 1)) <= avg) bits++;
	if (bits < 2) bits = 2; /* keep mask_l non-empty */
	/* Normalized chunking (level 1): one bit harder below avg, one easier
	 * from avg on, which pulls chunk sizes towards avg. */
	p->mask_s = top_bits(bits + 1);
	p->mask_l = top_bits(bits - 1);

	/* gear[i] = first 8 bytes of SHA-256(secret || "cairn gear" || i): fixed
	 * for a repository, unpredictable without its secret. */
	uint8_t in[32 + 10 + 4];
	memcpy(in, secret, 32);
	memcpy(in + 32, "cairn gear", 10);
	for (unsigned i = 0; i < 256; i++) {
		oid h;
		put_u32(in + 42, i);
		hash_sha256(&h, in, sizeof(in));
		p->gear[i] = get_u64(h.b);
	}
}

size_t chunker_cut(const chunker_params *p, const uint8_t *data, size_t len)
{
	size_t n = len < p->max ? len : p->max;
	size_t min = p->min;
	if (n <= min) return n;
	size_t normal = p->avg > min ? p->avg : min;
	if (normal > n) normal = n;

	const uint64_t *gear = p->gear;
	const uint64_t mask_s = p->mask_s, mask_l = p->mask_l;
	uint64_t h = 0;
	/* Skip the first min bytes untested, but hash the window before min
	 * so the first tested position sees the same hash as a continuous run. */
	size_t i = min > GEAR_WINDOW ? min - GEAR_WINDOW : 0;
	for (; i < min; i++) h = (h << 1) + gear[data[i]];
	/* Two bytes a step: the hash two bytes on, (h << 2) + (gear[a] << 1) +
	 * gear[b], does not wait for the one in between, which is computed
	 * beside it and tested first; the dependency chain is half as long. */
	for (; i + 1 < normal; i += 2) {
		uint64_t mid = (h << 1) + gear[data[i]];
		h = (h << 2) + (gear[data[i]] << 1) + gear[data[i + 1]];
		if (!(mid & mask_s)) return i + 1;
		if (!(h & mask_s)) return i + 2;
	}
	if (i < normal) {
		h = (h << 1) + gear[data[i++]];
		if (!(h & mask_s)) return i;
	}
	for (; i + 1 < n; i += 2) {
		uint64_t mid = (h << 1) + gear[data[i]];
		h = (h << 2) + (gear[data[i]] << 1) + gear[data[i + 1]];
		if (!(mid & mask_l)) return i + 1;
		if (!(h & mask_l)) return i + 2;
	}
	if (i < n) {
		h = (h << 1) + gear[data[i++]];
		if (!(h & mask_l)) return i;
	}
	return n;
}
