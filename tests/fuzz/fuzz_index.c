/* libFuzzer target: index segments (decode, then re-encode identically). */
#include <stdlib.h>
#include <string.h>

#include "index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	index_entry *e;
	size_t n;
	if (index_segment_decode(data, len, "index", &e, &n) < 0) return 0;
	uint8_t *again;
	size_t alen;
	if (index_segment_encode(e, n, &again, &alen) == 0) {
		if (alen != len || memcmp(again, data, len) != 0) abort();
		free(again);
	}
	free(e);
	return 0;
}
