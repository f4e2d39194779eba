/* libFuzzer target: damaged-snapshot markers (decode must never crash; what
 * it accepts must encode back to the same bytes). */
#include <stdlib.h>
#include <string.h>

#include "damaged.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	int64_t when;
	const char *reason;
	size_t rl;
	if (damaged_decode(data, len, "damaged", &when, &reason, &rl) < 0) return 0;
	char *r = malloc(rl + 1); /* not strndup: reason is not NUL-terminated */
	if (!r) return 0;
	memcpy(r, reason, rl);
	r[rl] = 0;
	uint8_t *again;
	size_t alen;
	/* a reason holding a NUL encodes shorter: only a NUL-free one must match */
	if (strlen(r) == rl && damaged_encode(when, r, &again, &alen) == 0) {
		if (alen != len || memcmp(again, data, len) != 0) abort();
		free(again);
	}
	free(r);
	return 0;
}
