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

/* Tests positions *i .. end-1 against mask, carrying the hash in *h; the
 * cut (position + 1) or 0. Two bytes a step: the hash two bytes on,
 * (h << 2) + (gear[a] << 1) + gear[b], does not wait for the one in
 * between, which is computed beside it and tested first; the dependency
 * chain is half as long. */
static inline size_t scan(const uint64_t *gear, const uint8_t *data, size_t *i, size_t end, uint64_t *h,
                          uint64_t mask)
{
	size_t k = *i;
	uint64_t x = *h;
	for (; k + 1 < end; k += 2) {
		uint64_t mid = (x << 1) + gear[data[k]];
		x = (x << 2) + (gear[data[k]] << 1) + gear[data[k + 1]];
		if (!(mid & mask)) return k + 1;
		if (!(x & mask)) return k + 2;
	}
	if (k < end) {
		x = (x << 1) + gear[data[k++]];
		if (!(x & mask)) return k;
	}
	*i = k;
	*h = x;
	return 0;
}

size_t chunker_cut(const chunker_params *p, const uint8_t *data, size_t len)
{
	size_t n = len < p->max ? len : p->max;
	size_t min = p->min;
	if (n <= min) return n;
	size_t normal = p->avg > min ? p->avg : min;
	if (normal > n) normal = n;

	uint64_t h = 0;
	/* Skip the first min bytes untested, but hash the window before min
	 * so the first tested position sees the same hash as a continuous run. */
	size_t i = min > GEAR_WINDOW ? min - GEAR_WINDOW : 0;
	for (; i < min; i++) h = (h << 1) + p->gear[data[i]];
	size_t cut = scan(p->gear, data, &i, normal, &h, p->mask_s);
	if (!cut) cut = scan(p->gear, data, &i, n, &h, p->mask_l);
	return cut ? cut : n;
}
