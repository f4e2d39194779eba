/* Packs: many blobs (chunks and tree objects) in one file. See format.h. */
#ifndef CAIRN_PACK_H
#define CAIRN_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "hash.h"

typedef struct pack_blob {
	oid id;
	uint8_t type;  /* BLOB_DATA, BLOB_TREE */
	uint8_t comp;  /* COMP_NONE, COMP_ZSTD */
	uint32_t raw_len;
	uint32_t stored_len;
	uint32_t offset; /* of the blob header within the pack */
} pack_blob;

typedef struct pack_writer pack_writer;

int pack_writer_new(pack_writer **out);
void pack_writer_free(pack_writer *pw);
/* Append a blob (stored = data as stored: compressed or raw). */
int pack_writer_add(pack_writer *pw, const oid *id, uint8_t type, uint8_t comp,
                    const void *stored, uint32_t stored_len, uint32_t raw_len);
size_t pack_writer_size(const pack_writer *pw);
size_t pack_writer_count(const pack_writer *pw);
/* Whether a blob of this type was added. */
int pack_writer_holds(const pack_writer *pw, uint8_t type);
/* Finish: directory, footer, check. Returns the file bytes (caller frees),
 * and the blobs with their offsets (valid until pack_writer_free). pw
 * cannot be added to afterwards. */
int pack_writer_finish(pack_writer *pw, uint8_t **data, size_t *len, const pack_blob **blobs,
                       size_t *nblobs);

/* A pack streamed to the store as blobs are added (pack_writer_add), so
 * that writing overlaps compression and memory stays at a small staging
 * buffer plus the directory: the same bytes pack_writer_finish would
 * return go to object name of st. Nothing is visible before
 * pack_writer_commit; pack_writer_free of an uncommitted one discards it. */
struct cairn_backend;
int pack_writer_new_stream(pack_writer **out, struct cairn_backend *st, const char *name);
/* Directory, footer, check, then the store's commit (flags as for
 * store_put). blobs and the file's length as for pack_writer_finish. A
 * streamed writer cannot be finished, nor an in-memory one committed. */
int pack_writer_commit(pack_writer *pw, unsigned flags, const pack_blob **blobs, size_t *nblobs,
                       uint64_t *len);

/* Parse and verify a whole pack file (framing, directory, every blob's
 * check). *blobs malloc'd. what names the pack in messages. */
int pack_parse(const uint8_t *data, size_t len, const char *what, pack_blob **blobs,
               size_t *nblobs);

/* Verify one blob as read from a pack (raw = BLOB_OVERHEAD + stored_len
 * bytes at its offset) against what the index says (id, type, lengths,
 * blob_check), decompress it and verify its SHA-256. *out malloc'd, raw_len
 * bytes. CAIRN_ECORRUPT naming what (e.g. "pack ab12.. blob 3fa1..") on any
 * mismatch. */
int pack_blob_open(const uint8_t *raw, size_t raw_size, const pack_blob *want, const char *what,
                   uint8_t **out);
/* The same into dst (room for want->raw_len bytes): no copy of the plain
 * bytes. On failure dst holds garbage the caller must not use. */
int pack_blob_open_into(const uint8_t *raw, size_t raw_size, const pack_blob *want, const char *what,
                        uint8_t *dst);
/* A blob's stored bytes (what follows its header: compressed as comp says)
 * back to its raw_len plain bytes into dst, without the checks above: for
 * bytes pack_blob_open verified before and kept. */
int pack_unstore(uint8_t comp, const uint8_t *stored, size_t stored_len, uint8_t *dst, size_t raw_len,
                 const char *what);

/* Compress data for storage: *comp is COMP_ZSTD with *stored malloc'd
 * when that is smaller, else COMP_NONE with *stored = NULL (store data as
 * is). A large chunk whose samples do not shrink is stored as is without
 * a full pass (pack.c). */
int pack_compress(const void *data, size_t len, int level, uint8_t *comp, uint8_t **stored,
                  size_t *stored_len);

#endif
