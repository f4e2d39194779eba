/* What reads from a remote store keep: on RADOS or S3 every read is a
 * round trip, and the objects read most (packs, index segments) are
 * immutable. readcache_wrap puts both caches in front of a backend, as a
 * backend itself; the repository says which objects are immutable and how
 * each is read (a directory has the page cache, and is not wrapped). */
#ifndef CAIRN_READCACHE_H
#define CAIRN_READCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Packs in 1 MiB blocks: a restore (or a walk of trees, or a take's small
 * reads) reads many small blobs of a pack, mostly in order, and one ranged
 * read of the aligned block around them serves many. */
#define BLOCK_LEN (1u << 20)
#define BLOCK_CACHE_BYTES (48ull << 20) /* blocks kept, the least recently used dropped */

typedef struct block_cache block_cache;
/* At most len bytes of name at off into out, *got how many: fewer only
 * where the object ends. */
typedef int (*block_fetch_fn)(store *st, const char *name, uint64_t off, void *out, size_t len,
                              size_t *got);

block_cache *block_cache_new(void); /* NULL when out of memory */
void block_cache_free(block_cache *c);
/* Exactly len bytes of name at off, through the cache (blocks missing are
 * fetched from st). 0; 1 when the object ends before off + len (out then
 * partly filled: the caller reads directly to get the backend's message);
 * < 0 on a fetch's error. Thread-safe. */
int block_cache_read(block_cache *c, store *st, block_fetch_fn fetch, const char *name, uint64_t off,
                     void *out, size_t len);
/* Forget name's blocks (it was deleted or replaced). */
void block_cache_drop(block_cache *c, const char *name);

/* Index segments whole: a lookup reads one 4 KiB block of each segment,
 * so a take or restore would do a round trip per segment for every chunk.
 * A segment is read whole the first time (one size and one read) and kept;
 * larger ones are read by range. A segment deleted meanwhile stays
 * readable here, as an open file does in a directory. The bound keeps a
 * take's memory within 64 MiB of a take into an empty index (docs/performance.md): an
 * index of a million chunks is ~50 MiB, and at ten million most segments
 * are larger than those kept. */
#define WHOLE_CACHE_BYTES (64ull << 20)
#define WHOLE_CACHE_ONE (16u << 20) /* larger objects are not kept */
typedef struct whole_cache whole_cache;
whole_cache *whole_cache_new(void); /* NULL when out of memory */
void whole_cache_free(whole_cache *c);
/* Exactly len bytes of name at off from the object kept whole, read from
 * st (its backend's size and get) when it is not yet. 0; 1 when the
 * object is too large to keep, missing, or shorter than off + len (the
 * caller reads directly, for the bytes or the backend's message); < 0 on
 * another error. Thread-safe. */
int whole_cache_read(whole_cache *c, store *st, const char *name, uint64_t off, void *out, size_t len);
void whole_cache_drop(whole_cache *c, const char *name);

/* How the wrapper caches an object: by the caller's knowledge of its
 * names. Only immutable objects may be cached. */
typedef enum readcache_kind {
	READCACHE_NONE = 0,   /* always read through */
	READCACHE_BLOCKS = 1, /* small reads through the block cache (packs) */
	READCACHE_WHOLE = 2   /* kept whole when small enough (index segments) */
} readcache_kind;
typedef readcache_kind (*readcache_classify_fn)(const char *name);

/* A backend that reads through both caches in front of inner, which it
 * then owns (freed with it, also on failure); deletes drop what the caches
 * hold of the object. Every other call passes through. */
int readcache_wrap(store **out, store *inner, readcache_classify_fn classify);

#endif
