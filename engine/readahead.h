/* Ranges of a remote store's objects fetched ahead, on threads of their own
 * (readahead.c): on RADOS or S3 every read is a round trip, so a reader that
 * waits on one ranged read at a time keeps one request in flight. A restore
 * or a mount says which ranges it reads next (store_advise); they are
 * fetched, a few at once, while it decompresses the ones before, and its
 * read then takes them from memory. A fetch's error is the error of the
 * first read of those bytes, as the store reported it (once: a later read
 * asks the store again). */
#ifndef CAIRN_READAHEAD_H
#define CAIRN_READAHEAD_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define READAHEAD_THREADS 8           /* ranged reads in flight */
#define READAHEAD_PIECE (2u << 20)    /* advice is fetched in pieces of this size */
#define READAHEAD_BYTES (64ull << 20) /* fetched and not yet read, at most */
#define READAHEAD_STALE_NS 2000000000ll /* a piece unread this long may give way */

typedef struct readahead readahead;

/* For objects of st (which outlives it). NULL when out of memory. */
readahead *readahead_new(store *st);
/* Stops its threads (waiting for the reads they have begun) and frees it. */
void readahead_free(readahead *ra);
/* Start fetching [off, off + len) of name, in pieces, unless it is fetched
 * already; advice beyond READAHEAD_BYTES is dropped. Never waits for a
 * fetch, never fails. */
void readahead_advise(readahead *ra, const char *name, uint64_t off, size_t len);
/* Exactly len bytes of name at off into out: the parts fetched ahead (waiting
 * for those still under way) from memory, the rest read from st. 1 when no
 * part of it was advised (nothing read: the caller reads as it would have),
 * else 0 or a read's error. A piece is freed once all of it was read. */
int readahead_read(readahead *ra, const char *name, uint64_t off, void *out, size_t len);
/* Forget name's ranges (it was deleted or replaced). */
void readahead_drop(readahead *ra, const char *name);

#endif
