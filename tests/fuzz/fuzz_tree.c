/* libFuzzer target: tree objects (tree_decode must never crash; what it
 * accepts must encode back to the same bytes). */
#include <stdlib.h>
#include <string.h>

#include "tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	tree t;
	if (tree_decode(&t, data, len, "tree") < 0) return 0;
	uint8_t *again;
	size_t alen;
	if (tree_encode(t.entries, t.n, &again, &alen) == 0) {
		if (alen != len || memcmp(again, data, len) != 0) abort(); /* decode/encode round trip */
		free(again);
	}
	tree_free(&t);
	return 0;
}
