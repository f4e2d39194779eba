#include "index.h"

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

/* ---- segments ------------------------------------------------------------ */

/* What an entry may say, on its own; NULL or the fault. Encoder and decoder
 * share it so nothing is written that a reader would refuse. */
static const char *entry_fault(const index_entry *e)
{
	if (e->type != BLOB_DATA && e->type != BLOB_TREE) return "unknown blob type";
	if (e->comp != COMP_NONE && e->comp != COMP_ZSTD) return "unknown compression";
	if (e->type == BLOB_DATA && e->raw_len > MAX_CHUNK_LEN) return "data blob longer than the chunk limit";
	if (e->type == BLOB_TREE && e->raw_len > MAX_TREE_LEN) return "tree blob longer than the tree limit";
	if (e->comp == COMP_NONE && e->stored_len != e->raw_len) return "stored length differs from raw length";
	if (e->comp == COMP_ZSTD && e->stored_len == 0) return "empty compressed blob";
	if (e->offset < FORMAT_HEADER_LEN ||
	    (uint64_t)e->offset + BLOB_OVERHEAD + e->stored_len > MAX_PACK_LEN)
		return "blob lies outside the pack limits";
	return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
	return memcmp(((const index_entry *)a)->id.b, ((const index_entry *)b)->id.b, OID_LEN);
}

static int cmp_pack(const void *a, const void *b) { return memcmp(a, b, PACK_ID_LEN); }

int index_segment_encode(const index_entry *entries, size_t n, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	index_entry *sorted = NULL;
	uint8_t(*packs)[PACK_ID_LEN] = NULL;
	buf b;
	buf_init(&b);
	int rc;
	if (n > UINT32_MAX) return error_set(CAIRN_EIO, "index segment: %zu entries", n);
	sorted = malloc((n ? n : 1) * sizeof(*sorted));
	packs = malloc((n ? n : 1) * PACK_ID_LEN);
	if (!sorted || !packs) {
		rc = ERR_OOM();
		goto done;
	}
	if (n) memcpy(sorted, entries, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_entry);
	char hex[OID_HEX_LEN + 1];
	for (size_t i = 0; i < n; i++) {
		const char *fault = entry_fault(&sorted[i]);
		if (fault || (i > 0 && cmp_entry(&sorted[i - 1], &sorted[i]) == 0)) {
			oid_hex(hex, &sorted[i].id);
			rc = error_set(CAIRN_EIO, "index segment: entry %s: %s", hex,
			               fault ? fault : "duplicate id");
			goto done;
		}
		memcpy(packs[i], sorted[i].pack, PACK_ID_LEN);
	}

	/* The pack table: distinct pack ids, ascending. */
	qsort(packs, n, PACK_ID_LEN, cmp_pack);
	size_t npacks = 0;
	for (size_t i = 0; i < n; i++)
		if (npacks == 0 || memcmp(packs[npacks - 1], packs[i], PACK_ID_LEN) != 0)
			memcpy(packs[npacks++], packs[i], PACK_ID_LEN);

	if (buf_reserve(&b, FORMAT_HEADER_LEN + 8 + npacks * PACK_ID_LEN + n * INDEX_ENTRY_LEN +
	                        FORMAT_CHECK_LEN) < 0) {
		rc = ERR_OOM();
		goto done;
	}
	buf_header(&b, MAGIC_INDEX, 0);
	buf_u32(&b, (uint32_t)npacks);
	buf_put(&b, packs, npacks * PACK_ID_LEN);
	buf_u32(&b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		const index_entry *e = &sorted[i];
		const uint8_t(*p)[PACK_ID_LEN] = bsearch(e->pack, packs, npacks, PACK_ID_LEN, cmp_pack);
		uint8_t r[INDEX_ENTRY_LEN];
		memcpy(r, e->id.b, OID_LEN);
		put_u32(r + 32, (uint32_t)(p - packs));
		put_u32(r + 36, e->offset);
		put_u32(r + 40, e->raw_len);
		put_u32(r + 44, e->stored_len);
		r[48] = e->type;
		r[49] = e->comp;
		put_u16(r + 50, 0);
		buf_put(&b, r, sizeof(r));
	}
	buf_check(&b);
	if (b.oom) {
		rc = ERR_OOM();
		goto done;
	}
	*out = buf_take(&b, len);
	rc = 0;
done:
	buf_free(&b);
	free(sorted);
	free(packs);
	return rc;
}

int index_segment_decode(const uint8_t *data, size_t len, const char *what,
                         index_entry **entries, size_t *n)
{
	*entries = NULL;
	*n = 0;
	const uint8_t *body;
	size_t body_len;
	int rc = frame_check(data, len, MAGIC_INDEX, what, &body, &body_len);
	if (rc < 0) return rc;
	uint32_t flags = get_u32(data + 12);
	if (flags != 0) return error_set(CAIRN_ECORRUPT, "%s: unknown flags 0x%x", what, flags);

	cursor c;
	cur_init(&c, body, body_len);
	uint32_t npacks = cur_u32(&c);
	const uint8_t *packs;
	if (cur_bytes(&c, &packs, (size_t)npacks * PACK_ID_LEN) < 0)
		return error_set(CAIRN_ECORRUPT, "%s: pack table of %u entries does not fit", what, npacks);
	for (uint32_t i = 1; i < npacks; i++)
		if (memcmp(packs + (i - 1) * PACK_ID_LEN, packs + i * PACK_ID_LEN, PACK_ID_LEN) >= 0)
			return error_set(CAIRN_ECORRUPT, "%s: pack table not strictly ascending at %u", what, i);
	uint32_t count = cur_u32(&c);
	if (c.bad || (uint64_t)count * INDEX_ENTRY_LEN != c.left)
		return error_set(CAIRN_ECORRUPT, "%s: %u entries do not match the %zu bytes present", what,
		                 count, c.bad ? 0 : c.left);
	/* count * 52 bytes are present, so this allocation is bounded by the file. */
	index_entry *out = calloc(count ? count : 1, sizeof(*out));
	if (!out) return ERR_OOM();
	char hex[OID_HEX_LEN + 1];
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *r;
		cur_bytes(&c, &r, INDEX_ENTRY_LEN);
		index_entry *e = &out[i];
		memcpy(e->id.b, r, OID_LEN);
		uint32_t pack = get_u32(r + 32);
		e->offset = get_u32(r + 36);
		e->raw_len = get_u32(r + 40);
		e->stored_len = get_u32(r + 44);
		e->type = r[48];
		e->comp = r[49];
		uint16_t reserved = get_u16(r + 50);
		const char *fault = NULL;
		if (pack >= npacks) fault = "pack number out of range";
		else if (reserved != 0) fault = "reserved field not zero";
		else if (i > 0 && memcmp(out[i - 1].id.b, e->id.b, OID_LEN) >= 0)
			fault = "entries not strictly ascending";
		else fault = entry_fault(e);
		if (fault) {
			oid_hex(hex, &e->id);
			rc = error_set(CAIRN_ECORRUPT, "%s: entry %u (%s): %s", what, i, hex, fault);
			goto done;
		}
		memcpy(e->pack, packs + (size_t)pack * PACK_ID_LEN, PACK_ID_LEN);
	}
	*entries = out;
	*n = count;
	out = NULL;
	rc = 0;
done:
	free(out);
	return rc;
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
