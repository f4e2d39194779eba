/* Index segments (index.h, format.h "index seg"): the pure codec, and a
 * segment on storage read a block at a time. */
#define ERROR_CLASS "index"
#include "index.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"

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

static int cmp_pack(const void *a, const void *b) { return memcmp(a, b, PACK_ID_LEN); }

/* Where the parts of a segment lie, from its counts. */
typedef struct seg_layout {
	uint32_t nentries, nblocks, npacks, block_entries;
	uint64_t block_len;  /* a full block, check included */
	uint64_t fence_off;  /* fences, then the pack table, then the tail */
	uint64_t tail_off;
	uint64_t size;
} seg_layout;

static void layout_of(seg_layout *l)
{
	l->block_len = (uint64_t)l->block_entries * INDEX_ENTRY_LEN + 8;
	l->fence_off = FORMAT_HEADER_LEN + (uint64_t)l->nentries * INDEX_ENTRY_LEN + (uint64_t)l->nblocks * 8;
	l->tail_off = l->fence_off + (uint64_t)l->nblocks * INDEX_FENCE_LEN + (uint64_t)l->npacks * PACK_ID_LEN;
	l->size = l->tail_off + INDEX_TAIL_LEN;
}

uint64_t index_segment_len(uint64_t n, uint64_t npacks)
{
	uint64_t nblocks = (n + INDEX_BLOCK_ENTRIES - 1) / INDEX_BLOCK_ENTRIES;
	return FORMAT_HEADER_LEN + n * INDEX_ENTRY_LEN + nblocks * (8 + INDEX_FENCE_LEN) +
	       npacks * PACK_ID_LEN + INDEX_TAIL_LEN;
}

/* Fences compare as big-endian integers: the same order as memcmp of ids. */
static uint64_t prefix_of(const uint8_t *id)
{
	uint64_t v = 0;
	for (int i = 0; i < INDEX_FENCE_LEN; i++) v = v << 8 | id[i];
	return v;
}

/* The header of a segment: magic, version, flags. */
static int check_header(const uint8_t *h, size_t len, const char *what)
{
	if (len < FORMAT_HEADER_LEN) return error_set(CAIRN_ECORRUPT, "%s: truncated (%zu bytes)", what, len);
	if (memcmp(h, MAGIC_INDEX, 8) != 0) return error_set(CAIRN_ECORRUPT, "%s: bad magic", what);
	uint32_t version = get_u32(h + 8);
	if (version == 1)
		return error_set(CAIRN_ECORRUPT,
		                 "%s: index segment layout 1 (an older cairn's, one flat table) is not read "
		                 "by this version (layout %u): make a new repository",
		                 what, INDEX_VERSION);
	if (version != INDEX_VERSION)
		return error_set(CAIRN_ECORRUPT, "%s: unsupported index segment layout %u", what, version);
	uint32_t flags = get_u32(h + 12);
	if (flags != 0) return error_set(CAIRN_ECORRUPT, "%s: unknown flags 0x%x", what, flags);
	return 0;
}

/* The tail (the last INDEX_TAIL_LEN bytes of a size-byte file): counts that
 * agree with each other and with the size. The check is verified later,
 * with the fences and the pack table. */
static int parse_tail(const uint8_t *t, uint64_t size, const char *what, seg_layout *l)
{
	l->nentries = get_u32(t);
	l->nblocks = get_u32(t + 4);
	l->npacks = get_u32(t + 8);
	l->block_entries = get_u32(t + 12);
	/* one block size per layout version: a segment has one encoding */
	if (l->block_entries != INDEX_BLOCK_ENTRIES)
		return error_set(CAIRN_ECORRUPT, "%s: %u entries per block (layout %u has %u)", what,
		                 l->block_entries, INDEX_VERSION, INDEX_BLOCK_ENTRIES);
	if (l->nblocks != (l->nentries + (uint64_t)l->block_entries - 1) / l->block_entries)
		return error_set(CAIRN_ECORRUPT, "%s: %u blocks cannot hold %u entries of %u a block", what,
		                 l->nblocks, l->nentries, l->block_entries);
	if (l->npacks > l->nentries || (l->npacks == 0) != (l->nentries == 0))
		return error_set(CAIRN_ECORRUPT, "%s: %u packs for %u entries", what, l->npacks, l->nentries);
	layout_of(l);
	if (l->size != size)
		return error_set(CAIRN_ECORRUPT, "%s: %" PRIu64 " bytes, its counts say %" PRIu64, what, size,
		                 l->size);
	return 0;
}

/* The region from the fences to the end of the tail: the check, fences
 * non-decreasing, pack table strictly ascending. */
static int check_region(const uint8_t *header, const uint8_t *region, const seg_layout *l,
                        const char *what)
{
	size_t len = (size_t)(l->size - l->fence_off);
	uint64_t want = get_u64(region + len - 8);
	if (hash_xxh3_seed(region, len - 8, hash_xxh3(header, FORMAT_HEADER_LEN)) != want)
		return error_set(CAIRN_ECORRUPT, "%s: tail checksum mismatch", what);
	for (uint32_t i = 1; i < l->nblocks; i++)
		if (prefix_of(region + (size_t)(i - 1) * INDEX_FENCE_LEN) > prefix_of(region + (size_t)i * INDEX_FENCE_LEN))
			return error_set(CAIRN_ECORRUPT, "%s: fences not ascending at block %u", what, i);
	const uint8_t *packs = region + (size_t)l->nblocks * INDEX_FENCE_LEN;
	for (uint32_t i = 1; i < l->npacks; i++)
		if (memcmp(packs + (size_t)(i - 1) * PACK_ID_LEN, packs + (size_t)i * PACK_ID_LEN, PACK_ID_LEN) >= 0)
			return error_set(CAIRN_ECORRUPT, "%s: pack table not strictly ascending at %u", what, i);
	return 0;
}

/* Entries in block b. */
static uint32_t block_count(const seg_layout *l, uint32_t b)
{
	uint64_t start = (uint64_t)b * l->block_entries;
	uint64_t left = l->nentries - start;
	return left < l->block_entries ? (uint32_t)left : l->block_entries;
}

/* Verify block b (k entries and its check, as read) against its fence; its
 * entries are strictly ascending and valid. out (k entries) may be NULL. */
static int check_block(const uint8_t *blk, uint32_t k, uint32_t b, uint64_t fence, uint32_t npacks,
                       const uint8_t *packs, const char *what, index_entry *out)
{
	size_t len = (size_t)k * INDEX_ENTRY_LEN;
	if (hash_xxh3_seed(blk, len, b) != get_u64(blk + len))
		return error_set(CAIRN_ECORRUPT, "%s: block %u: checksum mismatch", what, b);
	if (prefix_of(blk) != fence)
		return error_set(CAIRN_ECORRUPT, "%s: block %u: first id does not match its fence", what, b);
	char hex[OID_HEX_LEN + 1];
	for (uint32_t i = 0; i < k; i++) {
		const uint8_t *r = blk + (size_t)i * INDEX_ENTRY_LEN;
		index_entry e;
		memcpy(e.id.b, r, OID_LEN);
		uint32_t pack = get_u32(r + 32);
		e.offset = get_u32(r + 36);
		e.raw_len = get_u32(r + 40);
		e.stored_len = get_u32(r + 44);
		e.type = r[48];
		e.comp = r[49];
		const char *fault = NULL;
		if (pack >= npacks) fault = "pack number out of range";
		else if (get_u16(r + 50) != 0) fault = "reserved field not zero";
		else if (i > 0 && memcmp(r - INDEX_ENTRY_LEN, r, OID_LEN) >= 0) fault = "entries not strictly ascending";
		else fault = entry_fault(&e);
		if (fault) {
			oid_hex(hex, &e.id);
			return error_set(CAIRN_ECORRUPT, "%s: block %u: entry %u (%s): %s", what, b, i, hex, fault);
		}
		if (out) {
			memcpy(e.pack, packs + (size_t)pack * PACK_ID_LEN, PACK_ID_LEN);
			out[i] = e;
		}
	}
	return 0;
}

int index_segment_encode(const index_entry *entries, size_t n, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (n > UINT32_MAX) return error_set(CAIRN_EIO, "index segment: %zu entries", n);
	index_entry *copy = malloc((n ? n : 1) * sizeof(*copy));
	if (!copy) return ERR_OOM();
	if (n) memcpy(copy, entries, n * sizeof(*copy));
	int rc = index_segment_encode_sorting(copy, n, out, len);
	free(copy);
	return rc;
}

int index_segment_encode_sorting(index_entry *sorted, size_t n, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	uint8_t(*packs)[PACK_ID_LEN] = NULL;
	buf b;
	buf_init(&b);
	int rc;
	if (n > UINT32_MAX) return error_set(CAIRN_EIO, "index segment: %zu entries", n);
	packs = malloc((n ? n : 1) * PACK_ID_LEN);
	if (!packs) {
		rc = ERR_OOM();
		goto done;
	}
	if (n) qsort(sorted, n, sizeof(*sorted), index_entry_cmp);
	char hex[OID_HEX_LEN + 1];
	for (size_t i = 0; i < n; i++) {
		const char *fault = entry_fault(&sorted[i]);
		if (fault || (i > 0 && index_entry_cmp(&sorted[i - 1], &sorted[i]) == 0)) {
			oid_hex(hex, &sorted[i].id);
			rc = error_set(CAIRN_EIO, "index segment: entry %s: %s", hex,
			               fault ? fault : "duplicate id");
			goto done;
		}
		memcpy(packs[i], sorted[i].pack, PACK_ID_LEN);
	}

	/* The pack table: distinct pack ids, ascending. */
	if (n) qsort(packs, n, PACK_ID_LEN, cmp_pack);
	size_t npacks = 0;
	for (size_t i = 0; i < n; i++)
		if (npacks == 0 || memcmp(packs[npacks - 1], packs[i], PACK_ID_LEN) != 0)
			memcpy(packs[npacks++], packs[i], PACK_ID_LEN);

	seg_layout l = {(uint32_t)n, (uint32_t)((n + INDEX_BLOCK_ENTRIES - 1) / INDEX_BLOCK_ENTRIES),
	                (uint32_t)npacks, INDEX_BLOCK_ENTRIES, 0, 0, 0, 0};
	layout_of(&l);
	if (l.size > SIZE_MAX || buf_reserve(&b, (size_t)l.size) < 0) {
		rc = ERR_OOM();
		goto done;
	}
	buf_header(&b, MAGIC_INDEX, 0);
	put_u32(b.data + 8, INDEX_VERSION);
	for (uint32_t blk = 0; blk < l.nblocks; blk++) {
		size_t start = b.len;
		uint32_t k = block_count(&l, blk);
		for (uint32_t i = 0; i < k; i++) {
			const index_entry *e = &sorted[(size_t)blk * l.block_entries + i];
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
		buf_u64(&b, hash_xxh3_seed(b.data + start, b.len - start, blk));
	}
	for (uint32_t blk = 0; blk < l.nblocks; blk++)
		buf_put(&b, sorted[(size_t)blk * l.block_entries].id.b, INDEX_FENCE_LEN);
	buf_put(&b, packs, npacks * PACK_ID_LEN);
	buf_u32(&b, l.nentries);
	buf_u32(&b, l.nblocks);
	buf_u32(&b, l.npacks);
	buf_u32(&b, l.block_entries);
	if (b.oom) {
		rc = ERR_OOM();
		goto done;
	}
	buf_u64(&b, hash_xxh3_seed(b.data + l.fence_off, b.len - l.fence_off, hash_xxh3(b.data, FORMAT_HEADER_LEN)));
	if (b.oom) {
		rc = ERR_OOM();
		goto done;
	}
	*out = buf_take(&b, len);
	rc = 0;
done:
	buf_free(&b);
	free(packs);
	return rc;
}

int index_segment_decode(const uint8_t *data, size_t len, const char *what,
                         index_entry **entries, size_t *n)
{
	*entries = NULL;
	*n = 0;
	seg_layout l;
	int rc = check_header(data, len, what);
	if (rc < 0) return rc;
	if (len < FORMAT_HEADER_LEN + INDEX_TAIL_LEN)
		return error_set(CAIRN_ECORRUPT, "%s: truncated (%zu bytes)", what, len);
	if ((rc = parse_tail(data + len - INDEX_TAIL_LEN, len, what, &l)) < 0) return rc;
	const uint8_t *region = data + l.fence_off;
	if ((rc = check_region(data, region, &l, what)) < 0) return rc;
	const uint8_t *packs = region + (size_t)l.nblocks * INDEX_FENCE_LEN;
	/* nentries * 52 bytes are present, so this allocation is bounded by the file. */
	index_entry *out = calloc(l.nentries ? l.nentries : 1, sizeof(*out));
	uint8_t *used = calloc(l.npacks ? l.npacks : 1, 1);
	if (!out || !used) {
		rc = ERR_OOM();
		goto done;
	}
	for (uint32_t b = 0; b < l.nblocks; b++) {
		index_entry *e = out + (size_t)b * l.block_entries;
		uint32_t k = block_count(&l, b);
		rc = check_block(data + FORMAT_HEADER_LEN + b * l.block_len, k, b,
		                 prefix_of(region + (size_t)b * INDEX_FENCE_LEN), l.npacks, packs, what, e);
		if (rc < 0) goto done;
		if (b > 0 && memcmp(e[-1].id.b, e[0].id.b, OID_LEN) >= 0) {
			rc = error_set(CAIRN_ECORRUPT, "%s: block %u: entries not strictly ascending", what, b);
			goto done;
		}
	}
	for (uint32_t i = 0; i < l.nentries; i++) {
		const uint8_t(*p)[PACK_ID_LEN] = bsearch(out[i].pack, packs, l.npacks, PACK_ID_LEN, cmp_pack);
		used[p - (const uint8_t(*)[PACK_ID_LEN])packs] = 1;
	}
	for (uint32_t i = 0; i < l.npacks; i++)
		if (!used[i]) {
			rc = error_set(CAIRN_ECORRUPT, "%s: pack %u of the table is used by no entry", what, i);
			goto done;
		}
	*entries = out;
	*n = l.nentries;
	out = NULL;
	rc = 0;
done:
	free(out);
	free(used);
	return rc;
}

/* ---- a segment on storage ------------------------------------------------ */

struct index_segment {
	store *st;
	char *name;
	seg_layout l;
	uint64_t *fence;
	uint8_t *packs;
	/* blocks kept once read and verified (index_segment_cache), while the
	 * shared budget lasts: NULL until then */
	_Atomic(uint8_t *) *blocks;
	atomic_size_t *budget;
};

static int seg_read(store *st, const char *name, uint64_t off, void *out, size_t len);

void index_segment_close(index_segment *s)
{
	if (!s) return;
	if (s->blocks) {
		for (uint32_t b = 0; b < s->l.nblocks; b++) {
			uint8_t *p = atomic_load(&s->blocks[b]);
			if (!p) continue;
			free(p);
			atomic_fetch_add(s->budget, s->l.block_len);
		}
		free(s->blocks);
	}
	free(s->name);
	free(s->fence);
	free(s->packs);
	free(s);
}

uint64_t index_segment_entries(const index_segment *s) { return s->l.nentries; }

int index_segment_open(store *st, const char *name, index_segment **out)
{
	*out = NULL;
	uint8_t header[FORMAT_HEADER_LEN], tail[INDEX_TAIL_LEN], *region = NULL;
	uint64_t size;
	index_segment *s = calloc(1, sizeof(*s));
	int rc;
	if (!s || !(s->name = strdup(name))) {
		rc = ERR_OOM();
		goto done;
	}
	s->st = st;
	if ((rc = store_size(st, name, &size)) < 0) goto done;
	if (size < FORMAT_HEADER_LEN + INDEX_TAIL_LEN) {
		rc = error_set(CAIRN_ECORRUPT, "%s: truncated (%" PRIu64 " bytes)", name, size);
		goto done;
	}
	if ((rc = seg_read(st, name, 0, header, sizeof(header))) < 0) goto done;
	if ((rc = check_header(header, sizeof(header), name)) < 0) goto done;
	if ((rc = seg_read(st, name, size - INDEX_TAIL_LEN, tail, sizeof(tail))) < 0) goto done;
	if ((rc = parse_tail(tail, size, name, &s->l)) < 0) goto done;
	/* bounded by the object's real size, checked above */
	size_t rlen = (size_t)(size - s->l.fence_off);
	s->fence = malloc((s->l.nblocks ? s->l.nblocks : 1) * sizeof(*s->fence));
	s->packs = malloc(s->l.npacks ? (size_t)s->l.npacks * PACK_ID_LEN : 1);
	region = malloc(rlen);
	if (!s->fence || !s->packs || !region) {
		rc = ERR_OOM();
		goto done;
	}
	if ((rc = seg_read(st, name, s->l.fence_off, region, rlen)) < 0) goto done;
	if ((rc = check_region(header, region, &s->l, name)) < 0) goto done;
	for (uint32_t i = 0; i < s->l.nblocks; i++) s->fence[i] = prefix_of(region + (size_t)i * INDEX_FENCE_LEN);
	memcpy(s->packs, region + (size_t)s->l.nblocks * INDEX_FENCE_LEN, (size_t)s->l.npacks * PACK_ID_LEN);
	*out = s;
	s = NULL;
done:
	free(region);
	index_segment_close(s);
	return rc;
}

/* A ranged read of a segment; CAIRN_ENOTFOUND when the object is gone
 * (backends may report a missing object as damage to a ranged read). */
static int seg_read(store *st, const char *name, uint64_t off, void *out, size_t len)
{
	int rc = store_get_range(st, name, off, out, len);
	uint64_t size;
	if (rc < 0 && store_size(st, name, &size) == CAIRN_ENOTFOUND) rc = CAIRN_ENOTFOUND;
	return rc;
}

void index_segment_cache(index_segment *s, atomic_size_t *budget)
{
	if (s->blocks || s->l.nblocks == 0) return;
	if (!(s->blocks = calloc(s->l.nblocks, sizeof(*s->blocks)))) return; /* only a speedup */
	s->budget = budget;
}

/* Block b verified, from memory when kept, else read into *tmp (allocated
 * once a lookup) and kept when the budget allows. */
static int block_get(index_segment *s, uint32_t b, uint8_t **tmp, const uint8_t **out)
{
	if (s->blocks && (*out = atomic_load_explicit(&s->blocks[b], memory_order_acquire))) return 0;
	uint32_t k = block_count(&s->l, b);
	size_t len = (size_t)k * INDEX_ENTRY_LEN + 8;
	if (!*tmp && !(*tmp = malloc(s->l.block_len))) return ERR_OOM();
	int rc = seg_read(s->st, s->name, FORMAT_HEADER_LEN + b * s->l.block_len, *tmp, len);
	if (rc == 0) rc = check_block(*tmp, k, b, s->fence[b], s->l.npacks, s->packs, s->name, NULL);
	if (rc < 0) return rc;
	*out = *tmp;
	if (!s->blocks) return 0;
	size_t left = atomic_load(s->budget);
	do
		if (left < s->l.block_len) return 0;
	while (!atomic_compare_exchange_weak(s->budget, &left, left - s->l.block_len));
	uint8_t *none = NULL;
	if (atomic_compare_exchange_strong_explicit(&s->blocks[b], &none, *tmp, memory_order_release,
	                                            memory_order_acquire)) {
		*tmp = NULL; /* kept: the next read needs memory of its own */
		return 0;
	}
	atomic_fetch_add(s->budget, s->l.block_len); /* another thread kept it first */
	*out = none;
	return 0;
}

/* First block whose fence is > p (upper) or >= p (lower). */
static uint32_t fence_bound(const index_segment *s, uint64_t p, int upper)
{
	uint32_t lo = 0, hi = s->l.nblocks;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (s->fence[mid] < p || (upper && s->fence[mid] == p)) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}

int index_segment_find(index_segment *s, const oid *id, index_entry *out)
{
	uint64_t p = prefix_of(id->b);
	/* the id can only be in blocks whose fence is <= p and whose successor's
	 * fence is >= p: almost always exactly one */
	uint32_t last = fence_bound(s, p, 1);
	if (last == 0) return 0;
	uint32_t first = fence_bound(s, p, 0);
	first = first > 0 ? first - 1 : 0;
	uint8_t *tmp = NULL;
	const uint8_t *blk = NULL;
	int rc = 0;
	for (uint32_t b = first; b < last && rc == 0; b++) {
		uint32_t k = block_count(&s->l, b);
		if ((rc = block_get(s, b, &tmp, &blk)) < 0) break;
		uint32_t lo = 0, hi = k;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			int c = memcmp(blk + (size_t)mid * INDEX_ENTRY_LEN, id->b, OID_LEN);
			if (c == 0) {
				lo = mid;
				rc = 1;
				break;
			}
			if (c < 0) lo = mid + 1;
			else hi = mid;
		}
		if (rc == 1) {
			const uint8_t *r = blk + (size_t)lo * INDEX_ENTRY_LEN;
			memcpy(out->id.b, r, OID_LEN);
			memcpy(out->pack, s->packs + (size_t)get_u32(r + 32) * PACK_ID_LEN, PACK_ID_LEN);
			out->offset = get_u32(r + 36);
			out->raw_len = get_u32(r + 40);
			out->stored_len = get_u32(r + 44);
			out->type = r[48];
			out->comp = r[49];
		}
	}
	free(tmp);
	return rc;
}

