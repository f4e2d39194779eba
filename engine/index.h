/* The chunk index: id -> where the blob lives. In memory a hash table over
 * all segments; on disk, immutable sorted segments (format.h). */
#ifndef CAIRN_INDEX_H
#define CAIRN_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "hash.h"

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

/* The table as a set keyed by up to OID_LEN bytes (zero-padded), with a
 * 32-bit value kept in the entry's offset: for fsck's and gc's bookkeeping. */
int index_key_put(chunk_index *ix, const void *key, size_t keylen, uint32_t value);
const index_entry *index_key_get(const chunk_index *ix, const void *key, size_t keylen);

/* Encode entries (any order; sorted and checked for duplicates here) as a segment file. */
int index_segment_encode(const index_entry *entries, size_t n, uint8_t **out, size_t *len);
/* Decode and validate a segment file; *entries malloc'd. what names it. */
int index_segment_decode(const uint8_t *data, size_t len, const char *what,
                         index_entry **entries, size_t *n);

#endif
