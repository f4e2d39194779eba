#include "hash.h"

#include <openssl/sha.h>
#include <string.h>
#include <xxhash.h>

void hash_sha256(oid *out, const void *data, size_t len)
{
	SHA256(data, len, out->b);
}

uint64_t hash_xxh3(const void *data, size_t len) { return XXH3_64bits(data, len); }

uint64_t hash_xxh3_seed(const void *data, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(data, len, seed);
}

void hex_encode(char *out, const uint8_t *in, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = 0;
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int hex_decode(uint8_t *out, size_t len, const char *hex)
{
	if (strlen(hex) != 2 * len) return -1;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int oid_is_zero(const oid *id)
{
	for (int i = 0; i < OID_LEN; i++)
		if (id->b[i]) return 0;
	return 1;
}

int oid_cmp(const oid *a, const oid *b) { return memcmp(a->b, b->b, OID_LEN); }
