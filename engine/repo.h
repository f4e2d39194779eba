/* The repository handle and the operations every command shares. */
#ifndef CAIRN_REPO_H
#define CAIRN_REPO_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "chunker.h"
#include "hash.h"
#include "index.h"
#include "snapshot.h"
#include "store.h"
#include "tree.h"

typedef struct repo_config {
	uint32_t chunk_min, chunk_avg, chunk_max;
	int32_t zstd_level;
	uint8_t secret[32];
	int64_t created_ns;
} repo_config;

/* What the caller set at open (cairn_repo_open_options) that outlives it. */
struct repo_settings {
	char *state_dir;
	int no_uring, no_prior_cuts;
	int test_uring_always, test_no_xattrat;
};

struct cairn_repo {
	char *path;
	store *st;
	repo_config cfg;
	chunker_params chunker;
	chunk_index *index;     /* blobs this handle committed (fsck's and gc's handles:
	                         * every blob); guarded by lock */
	index_set *segs;        /* the index segments on storage (NULL: index is whole) */
	pthread_mutex_t lock;
	struct gc_session *session; /* gc.h: registered before the index is loaded */
	struct tree_ahead *ahead;   /* trees read ahead (repo_prefetch_trees); guarded by lock */
	struct repo_settings settings;
};

/* Register this handle's gc session (gc.h), once: from then on gc keeps
 * what it may read, and the temporary files it writes. Never fails (a
 * session that cannot be written leaves the handle unprotected; a commit
 * checks). Called by writers (take, import, forget, quota set) and by
 * reads that may outlast gc's grace period (restore, export, cat, a
 * mount) before they look at the index; short reads (snapshot lists,
 * info, ls, diff, stats, usage, estimate) write nothing: a read-only
 * repository or user can run them, and they are safe for as long as the
 * grace period (README "Garbage collection"). */
void repo_session(cairn_repo *r);

/* Read, verify and decompress the blob id (type must match). Thread-safe.
 * *out malloc'd, *len bytes. CAIRN_ECORRUPT naming the blob and its pack
 * when it is missing from the index or damaged. */
int repo_read_blob(cairn_repo *r, const oid *id, uint8_t type, uint8_t **out, size_t *len);

/* Where blob id is: r->index, then the index segments. 1 and *out filled,
 * 0 when absent, < 0 on a damaged segment or a read error. Thread-safe. */
int repo_index_lookup(cairn_repo *r, const oid *id, index_entry *out);
/* This handle's lookups keep up to bytes of the index segments' verified
 * blocks in memory from now on (index_set_cache): for a reader that looks
 * up every chunk of a snapshot, each a pread and a check of 4 KiB
 * otherwise. */
void repo_index_cache(cairn_repo *r, size_t bytes);
/* After a commit: the n entries written to the index become visible to this
 * handle's lookups (from the new segments, listed again at the next lookup;
 * copied into r->index only when the handle has no segment set); then, when the index has more than REPO_COMPACT_SEGMENTS
 * segments and gc is not running, the small ones are merged (best effort:
 * a failure leaves them as they are and is not returned). */
#define REPO_COMPACT_SEGMENTS 8
#define REPO_COMPACT_BYTES (8u * 1024u * 1024u)
int repo_index_add(cairn_repo *r, const index_entry *e, size_t n);

/* Load and decode a tree object. */
int repo_load_tree(cairn_repo *r, const oid *id, tree *out);

/* The blobs ids[0..n) of one type, each verified and decompressed, to cb
 * (slot: its place in ids; plain valid during the call; what names it in
 * messages), with as few reads as possible: blobs of one pack less than
 * REPO_TREE_GAP apart are read as one range of at most REPO_TREE_RUN (in
 * scratch, reused across calls when given). Flags: REPO_READ_IN_ORDER: cb
 * sees them in the caller's order and only neighbours there share a read (a
 * file's chunks, which a take wrote one after the other; or a window of
 * them a little out of order, read as one range: run_of), else pack order;
 * REPO_READ_UNCACHED: each range of REPO_UNCACHE_MIN or more is read past
 * the local caches (store_get_range_uncached: a restore reads each pack
 * once; dropping a few pages of a small range would cost the kernel more, a
 * drain of every CPU's page lists, than it saves); REPO_READ_AHEAD: the
 * ranges after the one being read, 4 to 8 MiB of them (REPO_TREE_RUN), are
 * advised to the store (repo_advise_blobs) while it is decompressed and
 * handed over. 0, cb's error, or the first read's error (naming the blob
 * and its pack). */
#define REPO_READ_IN_ORDER 1u
#define REPO_READ_UNCACHED 2u
#define REPO_READ_AHEAD 4u
#define REPO_UNCACHE_MIN (1u << 20)
struct buf;
typedef int (*repo_blob_cb)(void *payload, size_t slot, const uint8_t *plain, size_t len,
                            const char *what);
int repo_read_blobs(cairn_repo *r, const oid *ids, size_t n, uint8_t type, unsigned flags,
                    struct buf *scratch, repo_blob_cb cb, void *payload);
/* The same, each blob decompressed straight into the caller's memory when
 * dst, called just before (after cb of the blob before it), sets *out to
 * room for len bytes (its plain length as the index says; NULL: the blob
 * goes to memory of its own as in repo_read_blobs); cb's plain is then *out.
 * dst's error ends the read. */
typedef int (*repo_dst_fn)(void *payload, size_t slot, size_t len, uint8_t **out);
int repo_read_blobs_into(cairn_repo *r, const oid *ids, size_t n, uint8_t type, unsigned flags,
                         struct buf *scratch, repo_dst_fn dst, repo_blob_cb cb, void *payload);
/* The same, with the next range read past the local caches (as
 * REPO_READ_UNCACHED reads it) kept in flight while the one before is
 * decompressed and handed over: it is read into ahead (the caller's memory,
 * reused; it and scratch change places as runs are read) by a thread of
 * its own, where the store reads direct (store_ahead_start). A restore's
 * large files: O_DIRECT has no read-ahead of the page cache's. */
int repo_read_blobs_ahead(cairn_repo *r, const oid *ids, size_t n, uint8_t type, unsigned flags,
                          struct buf *scratch, struct buf *ahead, repo_dst_fn dst, repo_blob_cb cb,
                          void *payload);

/* A hint: the blobs ids[0..n) of one type will be read soon by
 * repo_read_blobs with flags. Of the first REPO_TREE_RUN bytes of ranges
 * that read makes (whole ranges: give more blobs than that, so that the
 * last one is not cut short), those it takes through the local caches (with REPO_READ_UNCACHED, not those of REPO_UNCACHE_MIN or more:
 * advice would read them twice) are advised to the store (store_advise),
 * sorted by pack and offset and coalesced; the store starts fetching them
 * and does not wait. Blobs the index does not know are left to the read,
 * which says what is wrong. Returns the number of blobs advised; never
 * fails. */
size_t repo_advise_blobs(cairn_repo *r, const oid *ids, size_t n, uint8_t type, unsigned flags);

/* A tree as its pack stores it (what follows the blob's header): plain_len
 * bytes compressed as comp says (pack_unstore gives them back). */
typedef struct tree_stored {
	const uint8_t *bytes;
	uint32_t len, plain_len;
	uint8_t comp;
} tree_stored;

/* A walk over every tree below a root (repo_walk_trees). */
typedef struct tree_walk {
	/* Each tree once: seq is its place in the walk (the root 0, then the
	 * others numbered as they are found, level by level), t its decoding
	 * (visit may keep it: take its contents and leave *t zeroed), plain
	 * its verified bytes. < 0 ends the walk with that error, 1 ends it
	 * early without one, 0 goes on. */
	int (*visit)(void *payload, uint32_t seq, const oid *id, tree *t, const uint8_t *plain, size_t len);
	/* Optional: nonzero for a subtree not to read, nor anything below it
	 * (one an earlier walk of the caller's has covered). Not asked of the root. */
	int (*skip)(void *payload, const oid *id);
	void *payload;
	chunk_index *seen;   /* optional: filled with id -> seq of every tree found */
	int tolerate_damage; /* a tree that cannot be read is left out, with what is
	                      * below it, instead of ending the walk */
	/* Optional: each tree's stored form (verified), just before visit; its
	 * bytes live until then. Errors as visit's. */
	int (*stored)(void *payload, uint32_t seq, const tree_stored *s);
} tree_walk;
/* Every tree under root (itself included), breadth first, each level read
 * in batches: the level's blobs sorted by pack and offset, those of one
 * pack less than REPO_TREE_GAP apart read as one range of at most
 * REPO_TREE_RUN. On a remote store that is a few large reads instead of a
 * round trip per directory (the trees a take wrote lie together at the end
 * of its packs). A subtree found twice (identical directories) is read
 * once. 0, or the first error (naming the tree). */
#define REPO_TREE_GAP (64u * 1024u)
#define REPO_TREE_RUN (8u * 1024u * 1024u)
int repo_walk_trees(cairn_repo *r, const oid *root, const tree_walk *w);
/* Read every tree under root (itself included) ahead with repo_walk_trees,
 * holding at most about max_bytes of them; repo_load_tree then serves them
 * from memory until repo_prefetch_drop (or the next prefetch, or
 * cairn_repo_free). For walks of a whole snapshot (restore, fsck) on a
 * remote store; skip (optional) leaves out subtrees as tree_walk's does.
 * Best effort: always 0; a tree it could not read is read (and fails)
 * where it is needed. Not while another thread loads trees through r. */
#define REPO_TREES_AHEAD (64u * 1024u * 1024u) /* what restore and fsck hold at most */
int repo_prefetch_trees(cairn_repo *r, const oid *root, size_t max_bytes,
                        int (*skip)(void *payload, const oid *id), void *payload);
void repo_prefetch_drop(cairn_repo *r);

/* Load snapshot id_hex (full 64-hex id), verifying that its content hashes
 * to its name. CAIRN_ENOTFOUND if absent. */
int repo_load_snapshot(cairn_repo *r, const char *id_hex, snapshot_manifest *out);

/* The repository's storage at path, with the read caches in front where
 * reads are round trips (readcache.h): every open of a repository's store. */
int repo_store_open(store **out, const char *path, const cairn_repo_open_options *o);

/* Decode and validate a config file (fsck, fuzzing). */
int repo_config_decode(repo_config *c, const uint8_t *data, size_t len);

/* Name of a pack's object: "packs/XX/<32 hex>". */
void repo_pack_name(char out[64], const uint8_t pack_id[PACK_ID_LEN]);

#endif
