/* Restore (internal.h): a file's content as verified chunks, batched by pack
 * range, and a snapshot's top tree. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#include "cairn.h"
#include "error.h"

char *restore_short_id(char out[13], const char *id)
{
	snprintf(out, 13, "%.12s", id);
	return out;
}

#define CONTENT_BATCH 1024 /* chunks looked up and read together */

/* Where content_walk is: the next chunk's bytes go to extent xi at xoff. */
typedef struct content_pos {
	const tree_entry *e;
	const tree_extent *ext;
	uint32_t next, xi, first; /* extents; chunk index of the batch's slot 0 */
	uint64_t xoff;
	emit_fn emit;
	const content_place *place;
	void *ctx;
	atomic_int *stop;
	int placed; /* the chunk being read went straight to its place */
} content_pos;

/* The extent holding the next byte, past those filled. */
static void content_advance(content_pos *cp)
{
	while (cp->xi < cp->next && cp->xoff == cp->ext[cp->xi].length) {
		cp->xi++;
		cp->xoff = 0;
	}
}

/* A chunk that lies in one extent is decompressed at its place. */
static int content_dst(void *payload, size_t slot, size_t len, uint8_t **out)
{
	content_pos *cp = payload;
	const tree_chunk *c = &cp->e->chunks[cp->first + slot];
	*out = NULL;
	cp->placed = 0;
	if (len != c->size) return 0; /* content_chunk says what is wrong */
	content_advance(cp);
	if (cp->xi == cp->next || len > cp->ext[cp->xi].length - cp->xoff) return 0;
	int rc = cp->place->reserve(cp->ctx, cp->ext[cp->xi].offset + cp->xoff, len, out);
	cp->placed = rc == 0 && *out;
	return rc;
}

static int content_chunk(void *payload, size_t slot, const uint8_t *p, size_t len, const char *what)
{
	content_pos *cp = payload;
	const tree_chunk *c = &cp->e->chunks[cp->first + slot];
	if (cp->stop && atomic_load(cp->stop)) return error_set(CAIRN_EIO, "interrupted");
	if (len != c->size) return error_set(CAIRN_ECORRUPT, "%s: %zu bytes, tree says %u", what, len, c->size);
	if (cp->placed) {
		cp->placed = 0;
		cp->xoff += len;
		return cp->place->commit(cp->ctx, len);
	}
	while (len > 0) {
		content_advance(cp);
		/* cannot run out: the sums were checked before */
		uint64_t room = cp->ext[cp->xi].length - cp->xoff;
		size_t n = len < room ? len : (size_t)room;
		int rc = cp->emit(cp->ctx, cp->ext[cp->xi].offset + cp->xoff, p, n);
		if (rc < 0) return rc;
		p += n;
		len -= n;
		cp->xoff += n;
	}
	return 0;
}

int content_check(const tree_entry *e)
{
	tree_extent dense = {0, e->size};
	const tree_extent *ext = e->nextents ? e->extents : &dense;
	uint32_t next = e->nextents ? e->nextents : 1;
	uint64_t end = 0, data = 0, csum = 0;

	if (e->nextents && !e->extents) return error_set(CAIRN_ECORRUPT, "extents missing");
	if (e->nchunks && !e->chunks) return error_set(CAIRN_ECORRUPT, "chunks missing");
	for (uint32_t i = 0; i < next; i++) {
		if (ext[i].length > e->size || ext[i].offset > e->size - ext[i].length ||
		    ext[i].offset < end)
			return error_set(CAIRN_ECORRUPT, "extent %u [%llu,+%llu) out of order or past size %llu",
			                 i, (unsigned long long)ext[i].offset,
			                 (unsigned long long)ext[i].length, (unsigned long long)e->size);
		end = ext[i].offset + ext[i].length;
		data += ext[i].length;
	}
	for (uint32_t c = 0; c < e->nchunks; c++) csum += e->chunks[c].size;
	if (csum != data)
		return error_set(CAIRN_ECORRUPT, "chunks hold %llu bytes, extents %llu",
		                 (unsigned long long)csum, (unsigned long long)data);
	return 0;
}

/* Read e's chunks in order, verified, and hand their bytes to emit at their
 * file offsets (ascending). Extents and chunk sizes are checked against the
 * entry's size before anything is read. Neighbouring chunks in a pack are
 * read together (repo_read_blobs), in scratch when given: two buffers, the
 * second for the next large range, read in flight while the one before is
 * decompressed (repo_read_blobs_ahead). With place, a
 * chunk that lies in one extent is decompressed where place says instead of
 * emitted. stop, when set, aborts early. */
int content_walk(cairn_repo *r, const tree_entry *e, emit_fn emit, const content_place *place,
                 void *ctx, atomic_int *stop, buf scratch[2])
{
	tree_extent dense = {0, e->size};
	const tree_extent *ext = e->nextents ? e->extents : &dense;
	uint32_t next = e->nextents ? e->nextents : 1;
	int rc = content_check(e);
	if (rc < 0) return rc;

	content_pos cp = {e, ext, next, 0, 0, 0, emit, place, ctx, stop, 0};
	oid ids[CONTENT_BATCH];
	for (uint32_t c = 0; c < e->nchunks;) {
		uint32_t n = e->nchunks - c < CONTENT_BATCH ? e->nchunks - c : CONTENT_BATCH;
		if (stop && atomic_load(stop)) return error_set(CAIRN_EIO, "interrupted");
		for (uint32_t k = 0; k < n; k++) ids[k] = e->chunks[c + k].id;
		cp.first = c;
		rc = repo_read_blobs_ahead(r, ids, n, BLOB_DATA,
		                           REPO_READ_IN_ORDER | REPO_READ_UNCACHED | REPO_READ_AHEAD, scratch,
		                           scratch ? &scratch[1] : NULL, place ? content_dst : NULL,
		                           content_chunk, &cp);
		if (rc < 0) return rc;
		c += n;
	}
	return 0;
}

/* The snapshot's top tree (format.h): exactly one entry, "root", a DIR whose
 * metadata is the captured directory's and whose subtree is the content. */
int load_top(cairn_repo *r, const snapshot_manifest *m, const char *snap_id, tree *top)
{
	char sid[13];
	int rc = repo_load_tree(r, &m->tree, top);
	if (rc < 0) {
		error_prefix("snapshot %s: top tree", restore_short_id(sid, snap_id));
		return rc;
	}
	if (top->n != 1 || top->entries[0].type != TREE_DIR || top->entries[0].name_len != 4 ||
	    memcmp(top->entries[0].name, "root", 4) != 0) {
		tree_free(top);
		return error_set(CAIRN_ECORRUPT,
		                 "snapshot %s: top tree must hold exactly one directory \"root\"",
		                 restore_short_id(sid, snap_id));
	}
	return 0;
}
