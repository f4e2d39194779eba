/* make_big_index REPO N [PER_SEGMENT]: add N synthetic entries (random ids,
 * every one pointing into one pack that does not exist) to the index of the
 * repository REPO, in segments of PER_SEGMENT entries (default 4 Mi, what gc
 * writes). For bench/bench-index-mem.sh: a repository with a big index and
 * nothing else. Not installed. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cairn.h"
#include "format.h"
#include "index.h"
#include "store.h"

/* xorshift64*, seeded from getrandom: ids need only be distinct and uniform */
static uint64_t rng;
static uint64_t next(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1DULL;
}

static int fill(void *p, size_t n)
{
	return getrandom(p, n, 0) == (ssize_t)n ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: make_big_index REPO N [PER_SEGMENT]\n");
		return 2;
	}
	uint64_t total = strtoull(argv[2], NULL, 10);
	uint64_t per = argc == 4 ? strtoull(argv[3], NULL, 10) : 4u * 1024u * 1024u;
	if (per == 0 || per > UINT32_MAX) {
		fprintf(stderr, "make_big_index: bad PER_SEGMENT\n");
		return 2;
	}
	store *st;
	int rc = store_open(&st, argv[1], NULL);
	if (rc < 0) {
		fprintf(stderr, "make_big_index: %s\n", cairn_error_last());
		return 1;
	}
	uint8_t pack[PACK_ID_LEN];
	if (fill(pack, sizeof(pack)) < 0 || fill(&rng, sizeof(rng)) < 0) {
		fprintf(stderr, "make_big_index: getrandom: %s\n", strerror(errno));
		return 1;
	}
	rng |= 1;
	index_entry *es = malloc((size_t)(per < total ? per : total ? total : 1) * sizeof(*es));
	if (!es) {
		fprintf(stderr, "make_big_index: out of memory\n");
		return 1;
	}
	uint64_t done = 0;
	int nseg = 0;
	while (done < total && rc == 0) {
		size_t n = (size_t)(total - done < per ? total - done : per);
		for (size_t i = 0; i < n; i++) {
			index_entry *e = &es[i];
			memset(e, 0, sizeof(*e));
			for (int k = 0; k < OID_LEN; k += 8) {
				uint64_t w = next();
				memcpy(e->id.b + k, &w, 8);
			}
			memcpy(e->pack, pack, PACK_ID_LEN);
			e->type = BLOB_DATA;
			e->comp = COMP_ZSTD;
			e->raw_len = 512u * 1024u;
			e->stored_len = 256u * 1024u;
			e->offset = FORMAT_HEADER_LEN + (uint32_t)(i % 100) * (256u * 1024u + BLOB_OVERHEAD);
		}
		uint8_t *data, id[16];
		size_t len;
		char hex[33], name[64];
		if ((rc = index_segment_encode(es, n, &data, &len)) < 0) break;
		if (fill(id, sizeof(id)) < 0) {
			free(data);
			rc = -1;
			break;
		}
		for (int k = 0; k < 16; k++) snprintf(hex + 2 * k, 3, "%02x", id[k]);
		snprintf(name, sizeof(name), "index/%s", hex);
		rc = store_put(st, name, data, len, STORE_EXCL);
		free(data);
		done += n;
		nseg++;
	}
	free(es);
	store_free(st);
	if (rc < 0) {
		fprintf(stderr, "make_big_index: %s\n", cairn_error_last());
		return 1;
	}
	printf("%" PRIu64 " entries in %d segments\n", done, nseg);
	return 0;
}
