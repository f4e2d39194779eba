/* Object ids (SHA-256) and record checksums (XXH3). */
#ifndef CAIRN_HASH_H
#define CAIRN_HASH_H

#include <stddef.h>
#include <stdint.h>

#define OID_LEN 32
#define OID_HEX_LEN 64

typedef struct oid {
	uint8_t b[OID_LEN];
} oid;

void hash_sha256(oid *out, const void *data, size_t len);
uint64_t hash_xxh3(const void *data, size_t len);
uint64_t hash_xxh3_seed(const void *data, size_t len, uint64_t seed);

/* out gets 2*len hex digits and a NUL. */
void hex_encode(char *out, const uint8_t *in, size_t len);
/* Decode exactly 2*len hex digits; -1 on a bad digit or wrong length. */
int hex_decode(uint8_t *out, size_t len, const char *hex);
static inline void oid_hex(char out[OID_HEX_LEN + 1], const oid *id) { hex_encode(out, id->b, OID_LEN); }
int oid_is_zero(const oid *id);
int oid_cmp(const oid *a, const oid *b);

#endif
