/* libFuzzer target: the host's freeze records, as given and with their
 * checksum made right (check.h). Decode must never crash; a record it
 * accepts encodes back to the same bytes (flags 0: the writer's). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "format.h"
#include "freeze/codec.h"

static void one(const uint8_t *data, size_t len)
{
	freeze_rec r;
	uint8_t *again;
	size_t alen;
	if (freeze_record_decode(&r, data, len, "freeze record") < 0 || get_u32(data + 12) != 0) return;
	if (freeze_record_encode(&r, &again, &alen) < 0) return;
	if (alen != len || memcmp(again, data, len) != 0) abort();
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	one(data, len);
	fuzz_with_check(data, len, one);
	return 0;
}
