/* For the fuzz targets: a record's trailing checksum stops nearly every
 * mutation at the first check, so a target also decodes a copy of its input
 * with the checksum made right, which lets mutations reach the fields. */
#ifndef CAIRN_FUZZ_CHECK_H
#define CAIRN_FUZZ_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "hash.h"

/* Calls fn on a copy of data whose last 8 bytes are the xxh3 of the rest,
 * when the input is long enough to be a record and its checksum is wrong. */
static inline void fuzz_with_check(const uint8_t *data, size_t len, void (*fn)(const uint8_t *, size_t))
{
	if (len < FORMAT_HEADER_LEN + FORMAT_CHECK_LEN) return;
	uint64_t sum = hash_xxh3(data, len - FORMAT_CHECK_LEN);
	if (get_u64(data + len - FORMAT_CHECK_LEN) == sum) return; /* decoded as given already */
	uint8_t *copy = malloc(len);
	if (!copy) return;
	memcpy(copy, data, len);
	put_u64(copy + len - FORMAT_CHECK_LEN, sum);
	fn(copy, len);
	free(copy);
}

#endif
