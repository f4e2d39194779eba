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
/* The same; kids_counted: the caller has referenced (put or ref'd) every blob
 * the entries name, as a take does building trees bottom-up, so the tree's
 * quota count need not decode it to count them (~1% of a step-3 take). */
int writer_put_tree_counted(snap_writer *w, const tree_entry *entries, size_t n, oid *id, size_t *stored,
                            int kids_counted);

/* The snapshot's owner, before the first put: from then on a put fails with
 * CAIRN_EQUOTA as soon as the blobs new to user exceed what user's quota
 * leaves. dry_run: store nothing (blobs are still compressed, to measure),
 * enforce nothing; writer_commit is then refused. Without this call the
 * owner is m->user at commit (quota.h). */
int writer_set_user(snap_writer *w, const char *user, int dry_run);
/* The snapshot references blob id, already in the repository (or being
 * stored by this writer), without putting it (e.g. a parent's chunk): it
 * counts for the user. Trees put or referenced count their children too. */
int writer_ref(snap_writer *w, const oid *id, uint8_t type);
/* The take's parent is snapshot snap_hex of user: the chunks it references
 * need no index lookup in writer_ref_chunks (its refs record has them). */
void writer_parent(snap_writer *w, const char *user, const char *snap_hex);
/* An unchanged file's chunks v[0..n): when every one is in the repository
 * and not marked by gc, reference them all (as writer_ref) and return 1;
 * else reference none and return 0. One lookup per chunk at most, none
 * for a chunk of the parent. */
int writer_ref_chunks(snap_writer *w, const tree_chunk *v, uint32_t n);
/* Forget what the snapshot references so far, keeping what was stored: a
 * take's pre-copy stores content before the freeze, then the capture made
 * while frozen references what it keeps (writer_ref_chunks knows the stored
 * sizes without a lookup). Blobs stored and never referenced again are
 * garbage that gc reclaims. Not while puts run. more: ids the capture may
 * reference beyond the pre-copy's (its trees), room made now. */
int writer_restart_refs(snap_writer *w, size_t more);
/* Hand the open pack to the flushers now when it holds at least an
 * eighth of the store's pack target, so that its write and sync overlap
 * what comes next (a pre-copy's last file data, synced while the frozen
 * capture walks) instead of waiting in the commit; later blobs (the
 * trees) start a pack of their own. Not while puts run. */
int writer_seal_pack(snap_writer *w);
/* What the snapshot adds to its user's usage: so far, or (after a commit)
 * what was charged. */
uint64_t writer_charged(snap_writer *w);

/* Commit: m (with every field but none of the ids computed here) becomes
 * the snapshot. id_out gets the new snapshot's id. On failure nothing is
 * visible: the manifest is the last write. */
int writer_commit(snap_writer *w, const snapshot_manifest *m, char id_out[OID_HEX_LEN + 1]);

#endif
