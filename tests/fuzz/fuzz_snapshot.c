/* libFuzzer target: snapshot manifests (decode, then re-encode identically). */
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	snapshot_manifest m;
	if (snapshot_decode(&m, data, len, "snapshot") < 0) return 0;
	uint8_t *again;
	size_t alen;
	if (snapshot_encode(&m, &again, &alen) == 0) {
		if (alen != len || memcmp(again, data, len) != 0) abort();
		free(again);
	}
	snapshot_manifest_free(&m);
	return 0;
}
