/* Per-user accounting and quotas (engine/quota/), internal: the types its
 * files share, and what each file owns (quota.h is the module's interface
 * to the rest of the engine and describes the scheme; format.h the records):
 *   verify.c     recomputation from the manifests and trees: quota_verify (fsck) and quota_rebuild
 *                (fsck --repair)
 *   forget.c     forgetting a snapshot (its usage released at once) and setting a user's quota
 *   usage.c      reading a user's figures and the list of users, cairn_usage_*
 *   tracker.c    the blobs of a snapshot being written and the commit protocol (quota_tracker_*,
 *                quota_commit_*)
 *   ledger.c     a user's state: base records, the ledger replayed over it, settling a crashed
 *                operation, compaction, the user lock
 *   records.c    the records under users/U/: names, refs records (deltas on a base), ledger
 *                entries, the quota limit
 *   table.c      a hash table of blob (or snapshot) ids with counts, sorted reference lists and
 *                their directory
 *   codec.c      the records' bytes, encoded and decoded without I/O (codec.h; objects layer)
 * A file uses only those listed below it (no cycles, engine/LAYERS).
 * usage.c and below are the repository layer (the writer's commit runs the
 * tracker's protocol, an estimate reads usage); forget.c and verify.c are
 * admin. */
#ifndef CAIRN_QUOTA_INTERNAL_H
#define CAIRN_QUOTA_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "codec.h"
#include "hash.h"
#include "quota.h"
#include "repo.h"

#define LOCK_TTL_MS (120u * 1000u)
#define LOCK_WAIT_MS (120u * 1000u)
/* every load reads the base and replays each entry since: a refs record,
 * mostly a small delta read on the one before, applied as the whole set
 * (a hash-table update per blob). A base is 40 bytes a blob, rewritten
 * whole: every 16 entries keeps replays to a few ms per 10k blobs and the
 * base's share of a take's writes to a sixteenth (README "Where the time
 * goes"; every 4 when refs records were written whole) */
#define COMPACT_EVERY 16
#define RECORD_MAX ((size_t)1 << 31)
#define SMALL_MAX 4096
#define LOAD_TRIES 5

typedef struct uslot {
	oid id;
	uint32_t size;
	uint32_t refs; /* 0 = not charged (slots are never removed) */
	uint8_t used;
} uslot;

/* The ids in a dense array, s[0..n) used and s[n..cap) zeroed (iterate
 * over cap, skipping unused), found through a hash of 8-byte slots at most
 * half full: 60 to 120 bytes an id, where slots of whole ids at most half
 * full took 88 to 176 (a take of a million small files holds two tables). */
typedef struct uhash {
	uint32_t pos1; /* 1 + the id's place in s; 0 = empty */
	uint32_t tag;  /* bits of the id's hash: most misses never read s */
} uhash;

typedef struct utable {
	uslot *s;
	size_t cap, n;
	uhash *h;
	size_t nh; /* a power of two, at least twice n */
	uint64_t seed;
} utable;

/* Where each leading-bits prefix starts in a sorted ref array, so that a
 * lookup searches ~2 refs instead of all (two binary searches per reused
 * chunk were 2% of a step-3 take). Without it (no memory), the whole array. */
typedef struct ref_dir {
	const uref *v;
	size_t n;
	uint32_t *start; /* 2^bits + 1 */
	unsigned bits;
} ref_dir;

/* A user's charged blobs: one array sorted by id, refs > 0 each, and the
 * directory of its prefixes for lookups; 40 bytes an id and ~2 for the
 * directory, where the hash table took 60-120 (it is held through a take,
 * beside the walk). A snapshot's refs, sorted, are merged into it. */
typedef struct ublobs {
	uref *v;
	size_t n;
	ref_dir dir;
} ublobs;

typedef struct refs_set {
	oid snap;
	uref *v; /* ascending */
	size_t n;
	uint32_t depth;
	int have;
} refs_set;

typedef struct ustate {
	char user[65];
	int has_quota;
	uint64_t quota;
	uint64_t seq, base_seq; /* last entry applied; the base it started from */
	uint64_t used, nsnaps;
	ublobs blobs;
	utable snaps;
	oid *forgotten;         /* forgotten since the base: their refs go at compaction */
	size_t nforgotten, capforgotten;
} ustate;

typedef struct seqs {
	uint64_t *v;
	size_t n, cap;
} seqs;

enum load_mode {
	LOAD_READ,   /* change nothing: an unfinished add is not counted, a forget is */
	LOAD_REPAIR  /* under the user's lock: settle an unfinished last entry */
};

typedef struct names {
	char **v;
	size_t n, cap;
} names;

/* ledger.c: a user's state: base records, the ledger replayed over it,
 * settling a crashed operation, compaction, the user lock */
void ustate_init(ustate *s, const char *user);
void ustate_free(ustate *s);
int write_base(cairn_repo *r, const ustate *s);
int ustate_apply(ustate *s, int sign, const oid *snap, const uref *v, size_t n, const char *what);
int list_seqs(cairn_repo *r, const char *user, const char *kind, seqs *q);
int quota_manifest_exists(cairn_repo *r, const oid *snap);
int ustate_load_once(cairn_repo *r, const char *user, enum load_mode mode, ustate *s, ustate *prior);
int ustate_load(cairn_repo *r, const char *user, enum load_mode mode, ustate *s);
void quota_delete_quiet(cairn_repo *r, const char *name);
void ustate_compact(cairn_repo *r, ustate *s, int force);
int quota_user_lock(cairn_repo *r, const char *user, store_lock **out);

/* records.c: the records under users/U/: names, refs records (deltas on a
 * base), ledger entries, the quota limit */
void obj_name(char *out, size_t n, const char *user, const char *kind, const char *leaf);
void seq_name(char *out, size_t n, const char *user, const char *kind, uint64_t seq);
void refs_name(char *out, size_t n, const char *user, const oid *snap);
int read_quota(cairn_repo *r, const char *user, int *has, uint64_t *limit);
void refs_set_free(refs_set *s);
int write_refs(cairn_repo *r, const char *user, const oid *snap, const refs_set *base,
               const uref *removed, size_t nremoved, const uref *v, size_t n);
int read_refs_set(cairn_repo *r, const char *user, const oid *snap, const refs_set *hint, refs_set *out);
int read_refs(cairn_repo *r, const char *user, const oid *snap, uref **out, size_t *n);
int write_log(cairn_repo *r, const char *user, const ulog *e);
int read_log(cairn_repo *r, const char *user, uint64_t seq, ulog *e);

/* table.c: a hash table of blob (or snapshot) ids with counts, sorted
 * reference lists and their directory */
void ut_init(utable *t);
void ut_free(utable *t);
uslot *ut_find(const utable *t, const oid *id);
int ut_reserve(utable *t, size_t n);
uslot *ut_get(utable *t, const oid *id);
int ut_charged(const utable *t, const oid *id);
void ref_dir_free(ref_dir *d);
void ref_dir_build(ref_dir *d, const uref *v, size_t n);
int ref_dir_find(const ref_dir *d, const oid *id, uint32_t *stored);
/* Where id is in the sorted array, or -1. */
ptrdiff_t ref_dir_index(const ref_dir *d, const oid *id);
int ut_sorted(const utable *t, uref **out, size_t *n);
void ub_free(ublobs *b);
/* b becomes v (n refs > 0, strictly ascending; taken over). */
void ub_set(ublobs *b, uref *v, size_t n);
const uref *ub_find(const ublobs *b, const oid *id);
int ub_charged(const ublobs *b, const oid *id);
/* Merge a snapshot's refs v (strictly ascending) in (sign 1: a count more
 * for each, a new blob's size added to *used) or out (-1: a count less, a
 * blob left with none dropped and its size taken from *used). Checked
 * first, so that on CAIRN_ECORRUPT (v out of order, a size other than the
 * one charged, a blob forgotten that was not charged) b is unchanged. */
int ub_apply(ublobs *b, int sign, const uref *v, size_t n, uint64_t *used, const char *what);

/* tracker.c: ids the tracker holds in its table, not as bits over the
 * parent's refs (tests) */
size_t quota_tracker_table_ids(quota_tracker *t);

/* usage.c: reading a user's figures and the list of users, cairn_usage_* */
int quota_str_cmp(const void *a, const void *b);

#endif
