/* libFuzzer target: packs (pack_parse of the whole file, then every blob it
 * accepts opened with pack_blob_open: decompression and SHA-256 check). */
#include <stdlib.h>

#include "pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	pack_blob *b;
	size_t n;
	if (pack_parse(data, len, "pack", &b, &n) < 0) return 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *out = NULL;
		/* parse vouched for offset + BLOB_OVERHEAD + stored_len <= len */
		if (pack_blob_open(data + b[i].offset, (size_t)b[i].stored_len + BLOB_OVERHEAD, &b[i], "blob", &out) == 0)
			free(out);
	}
	free(b);
	return 0;
}
