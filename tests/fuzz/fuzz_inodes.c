/* libFuzzer target: inodes records and restore records (decode must never
 * crash; what it accepts must encode back to an equal list). */
#include <stdlib.h>
#include <string.h>

#include "inodes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	oid snap;
	inode_list l = {0};
	if (inodes_decode("inodes", data, len, &snap, &l) < 0) return 0;
	uint8_t *again;
	size_t alen;
	if (inodes_encode(&snap, &l, &again, &alen) == 0) {
		oid snap2;
		inode_list l2 = {0};
		if (inodes_decode("again", again, alen, &snap2, &l2) < 0) abort();
		if (memcmp(&snap, &snap2, sizeof(snap)) != 0 || l.n != l2.n) abort();
		for (size_t i = 0; i < l.n; i++) {
			const inode_item *a = &l.v[i], *b = &l2.v[i];
			if (a->kind != b->kind || a->value != b->value || a->ctime_sec != b->ctime_sec ||
			    a->ctime_nsec != b->ctime_nsec)
				abort();
		}
		inodes_free(&l2);
		free(again);
	}
	inodes_free(&l);
	return 0;
}
