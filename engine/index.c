/* The chunk index (index.h), in memory: a hash table of entries, also used
 * as a set keyed by short ids. Segments: index_segment.c, index_set.c. */
#include "index.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"

/* Entries live in a dense array (insertion order); the open-addressing
 * table (linear probing, load <= 1/2) holds their positions. A slot is
 * { pos + 1 (0 = empty), tag } so most mismatches never touch the entry. */
typedef struct slot {
	uint32_t pos1;
	uint32_t tag;
} slot;

struct chunk_index {
	index_entry *entries;
	size_t count, cap;
	slot *slots;
	size_t nslots; /* power of two */
	unsigned shift; /* 64 - log2(nslots) */
	uint64_t mul;   /* random odd multiplier */
};

/* Ids are SHA-256, so their first 8 bytes are uniform; multiply-shift with a
 * per-table random odd key keeps the slot unpredictable to someone who
 * crafts contents whose ids share low bits. */
static uint64_t id_word(const oid *id)
{
	uint64_t w;
	memcpy(&w, id->b, sizeof(w));
	return w;
}

static size_t slot_of(const chunk_index *ix, uint64_t w) { return (size_t)((w * ix->mul) >> ix->shift); }

static uint32_t tag_of(uint64_t w) { return (uint32_t)w; }

int index_new(chunk_index **out)
{
	*out = NULL;
	chunk_index *ix = calloc(1, sizeof(*ix));
	if (!ix) return ERR_OOM();
	ix->nslots = 1024;
	ix->shift = 64 - 10;
	ix->slots = calloc(ix->nslots, sizeof(*ix->slots));
	if (!ix->slots) {
		free(ix);
		return ERR_OOM();
	}
	uint64_t key;
	if (getrandom(&key, sizeof(key), GRND_NONBLOCK) != (ssize_t)sizeof(key)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		key = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)ix;
	}
	ix->mul = key | 1;
	*out = ix;
	return 0;
}

void index_free(chunk_index *ix)
{
	if (!ix) return;
	free(ix->entries);
	free(ix->slots);
	free(ix);
}

/* Slot holding id, or the empty slot where it would go. */
static size_t find_slot(const chunk_index *ix, const oid *id)
{
	uint64_t w = id_word(id);
	uint32_t tag = tag_of(w);
	size_t mask = ix->nslots - 1;
	for (size_t i = slot_of(ix, w);; i = (i + 1) & mask) {
		const slot *s = &ix->slots[i];
		if (s->pos1 == 0) return i;
		if (s->tag == tag && memcmp(ix->entries[s->pos1 - 1].id.b, id->b, OID_LEN) == 0)
			return i;
	}
}

const index_entry *index_lookup(const chunk_index *ix, const oid *id)
{
	const slot *s = &ix->slots[find_slot(ix, id)];
	return s->pos1 ? &ix->entries[s->pos1 - 1] : NULL;
}

static int grow_slots(chunk_index *ix)
{
	if (ix->nslots > SIZE_MAX / 2 / sizeof(slot)) return ERR_OOM();
	size_t n = ix->nslots * 2;
	slot *s = calloc(n, sizeof(*s));
	if (!s) return ERR_OOM();
	free(ix->slots);
	ix->slots = s;
	ix->nslots = n;
	ix->shift--;
	size_t mask = n - 1;
	for (size_t k = 0; k < ix->count; k++) {
		uint64_t w = id_word(&ix->entries[k].id);
		size_t i = slot_of(ix, w);
		while (s[i].pos1) i = (i + 1) & mask;
		s[i].pos1 = (uint32_t)(k + 1);
		s[i].tag = tag_of(w);
	}
	return 0;
}

int index_insert(chunk_index *ix, const index_entry *e)
{
	size_t i = find_slot(ix, &e->id);
	if (ix->slots[i].pos1) return 1;
	if (ix->count >= UINT32_MAX - 1)
		return error_set(CAIRN_ENOMEM, "chunk index: more than %u entries", UINT32_MAX - 1);
	if (ix->count == ix->cap) {
		size_t cap = ix->cap ? ix->cap * 2 : 1024;
		if (cap > SIZE_MAX / sizeof(index_entry)) return ERR_OOM();
		index_entry *ne = realloc(ix->entries, cap * sizeof(*ne));
		if (!ne) return ERR_OOM();
		ix->entries = ne;
		ix->cap = cap;
	}
	if ((ix->count + 1) * 2 > ix->nslots) {
		int rc = grow_slots(ix);
		if (rc < 0) return rc;
		i = find_slot(ix, &e->id);
	}
	ix->entries[ix->count] = *e;
	ix->slots[i].pos1 = (uint32_t)(ix->count + 1);
	ix->slots[i].tag = tag_of(id_word(&e->id));
	ix->count++;
	return 0;
}

size_t index_count(const chunk_index *ix) { return ix->count; }

void index_foreach(const chunk_index *ix, void (*cb)(const index_entry *e, void *payload),
                   void *payload)
{
	for (size_t k = 0; k < ix->count; k++) cb(&ix->entries[k], payload);
}

int index_entry_cmp(const void *a, const void *b)
{
	return memcmp(((const index_entry *)a)->id.b, ((const index_entry *)b)->id.b, OID_LEN);
}

int index_key_put(chunk_index *ix, const void *key, size_t keylen, uint32_t value)
{
	index_entry e;
	memset(&e, 0, sizeof(e));
	memcpy(e.id.b, key, keylen < OID_LEN ? keylen : OID_LEN);
	e.offset = value;
	return index_insert(ix, &e);
}

const index_entry *index_key_get(const chunk_index *ix, const void *key, size_t keylen)
{
	oid id;
	memset(&id, 0, sizeof(id));
	memcpy(id.b, key, keylen < OID_LEN ? keylen : OID_LEN);
	return index_lookup(ix, &id);
}
