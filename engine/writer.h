/* The snapshot writer: what every path that creates a snapshot shares (take,
 * and later import). Blobs are deduplicated against the repository and
 * against this writer, compressed, and appended to packs that are written
 * out as they fill; commit writes the last pack, the index segment(s) and
 * then the manifest, the commit point. Thread-safe except commit/free. */
#ifndef CAIRN_WRITER_H
#define CAIRN_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"

typedef struct snap_writer snap_writer;

int writer_new(snap_writer **out, cairn_repo *repo);
/* Frees everything; a writer not committed leaves only unreferenced packs
 * (reclaimed by gc). */
void writer_free(snap_writer *w);

/* Store a blob unless the repository or this writer has it. *stored is the
 * bytes it adds to the repository (0 when it was there already). */
int writer_put(snap_writer *w, const oid *id, uint8_t type, const uint8_t *data, size_t len,
               size_t *stored);
/* Hash and store data as a chunk; *id gets its id. */
int writer_put_chunk(snap_writer *w, const uint8_t *data, size_t len, oid *id, size_t *stored);
/* Encode, hash and store a tree object. */
int writer_put_tree(snap_writer *w, const tree_entry *entries, size_t n, oid *id, size_t *stored);

/* Commit: m (with every field but none of the ids computed here) becomes
 * the snapshot. id_out gets the new snapshot's id. On failure nothing is
 * visible: the manifest is the last write. */
int writer_commit(snap_writer *w, const snapshot_manifest *m, char id_out[OID_HEX_LEN + 1]);

#endif
