/* The chunk index: id -> where the blob lives. On storage, immutable sorted
 * segments (format.h "index seg") read a block at a time (index_segment,
 * index_set); in memory, hash tables (chunk_index) for what a process adds
 * and for the admin tools' whole-repository tables and bookkeeping sets. */
#ifndef CAIRN_INDEX_H
#define CAIRN_INDEX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "hash.h"
#include "store.h"

typedef struct index_entry {
	oid id;
	uint8_t pack[PACK_ID_LEN];
	uint32_t offset;
	uint32_t raw_len;
	uint32_t stored_len;
	uint8_t type;
	uint8_t comp;
} index_entry;

typedef struct chunk_index chunk_index;

int index_new(chunk_index **out);
void index_free(chunk_index *ix);
/* NULL if absent. The pointer is valid until the next insert. Not
 * thread-safe against concurrent inserts: callers lock. */
const index_entry *index_lookup(const chunk_index *ix, const oid *id);
/* Insert; if the id is present already the old entry is kept and 1 is
 * returned, else 0; CAIRN_ENOMEM on failure. */
int index_insert(chunk_index *ix, const index_entry *e);
size_t index_count(const chunk_index *ix);
/* Visit every entry (order unspecified). */
void index_foreach(const chunk_index *ix, void (*cb)(const index_entry *e, void *payload),
                   void *payload);

/* Orders index entries by id (for qsort). */
int index_entry_cmp(const void *a, const void *b);

/* The table as a set keyed by up to OID_LEN bytes (zero-padded), with a
 * 32-bit value kept in the entry's offset: for fsck's and gc's bookkeeping. */
int index_key_put(chunk_index *ix, const void *key, size_t keylen, uint32_t value);
const index_entry *index_key_get(const chunk_index *ix, const void *key, size_t keylen);

/* Encode entries (any order; sorted and checked for duplicates here) as a segment file. */
int index_segment_encode(const index_entry *entries, size_t n, uint8_t **out, size_t *len);
/* The same without a copy of the entries: sorts them in place. */
int index_segment_encode_sorting(index_entry *entries, size_t n, uint8_t **out, size_t *len);
/* Decode and validate a whole segment file (every block); *entries malloc'd,
 * ascending by id. what names it. */
int index_segment_decode(const uint8_t *data, size_t len, const char *what,
                         index_entry **entries, size_t *n);
/* Bytes of a segment of n entries naming npacks packs. */
uint64_t index_segment_len(uint64_t n, uint64_t npacks);

/* ---- a segment on storage -------------------------------------------------
 * Open reads only its header, tail, fences and pack table; a lookup reads and
 * verifies the one block (4 KiB) that may hold the id, through store_get_range.
 * Thread-safe once open. */
typedef struct index_segment index_segment;
/* CAIRN_ENOTFOUND when the object is absent, CAIRN_ECORRUPT naming it. */
int index_segment_open(store *st, const char *name, index_segment **out);
void index_segment_close(index_segment *s);
uint64_t index_segment_entries(const index_segment *s);
/* 1 and *out filled when present, 0 when absent, < 0 on a damaged block or
 * a read error (CAIRN_ENOTFOUND: the object is gone). */
int index_segment_find(index_segment *s, const oid *id, index_entry *out);
/* From now on, blocks read and verified are kept in memory while *budget
 * (bytes, shared by the segments that use it) lasts, given back at close:
 * a lookup of a kept block costs no read and no check. */
void index_segment_cache(index_segment *s, atomic_size_t *budget);

/* ---- every segment of a repository ----------------------------------------
 * The segments listed at open; a lookup probes each (in memory: a binary
 * search of its fences; on storage: one block). A segment found gone (gc or
 * compaction replaced it; the replacement is written first) makes the set
 * list "index" again. Thread-safe. */
typedef struct index_set index_set;
int index_set_open(store *st, index_set **out);
void index_set_free(index_set *set);
size_t index_set_segments(index_set *set);
/* Segments were written since the set was listed: the next lookup lists
 * them again (the caller's own commit, found from storage from then on). */
void index_set_stale(index_set *set);
/* As index_segment_find, over every segment. */
int index_set_find(index_set *set, const oid *id, index_entry *out);
/* Keep up to bytes of verified blocks in memory for the set's lookups
 * (index_segment_cache), from now on, in segments listed later too; for
 * a reader that looks up every chunk of a snapshot, some several times
 * (restore). The first call sets the budget; later ones change nothing. */
void index_set_cache(index_set *set, size_t bytes);

/* Every entry of every segment into ix (an id in several segments once):
 * for the admin tools that need the whole index in memory (stats). */
int index_load_all(store *st, chunk_index *ix);

/* Compaction: when "index" holds more than max_segments segments, merge the
 * smallest ones (at least two, at most max_bytes of segment files together)
 * into one, written before the inputs are deleted, so a reader sees every
 * entry at every moment. The caller excludes gc and fsck (holds the "gc"
 * lock): neither may drop an entry that a merge would bring back. Returns
 * the number of segments merged (0: nothing to do) or an error. */
int index_compact(store *st, size_t max_segments, uint64_t max_bytes);

#endif
