/* Per-user accounting and quotas (README "Users, usage and quotas"; the
 * records are in format.h). usage(U) = the stored size of each distinct
 * blob (chunk or tree) that U's snapshots reference, counted once for U.
 *
 * Each snapshot of U has a refs record (its distinct blobs and their stored
 * sizes); U's ledger is a chain of small immutable entries (one per take or
 * forget, each giving usage before and after) over a base that holds U's
 * reference counts; every COMPACT_EVERY entries a new base is written.
 * Writers hold the lock "user-U"; a ledger entry is written before the
 * manifest is (take) or deleted (forget), so the only crash state is a last
 * entry whose manifest does not agree, found and settled by the next locked
 * load (an add is rolled back, a forget rolled forward). */
#ifndef CAIRN_QUOTA_H
#define CAIRN_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "repo.h"

/* ---- the blobs of a snapshot being written -------------------------------- */

typedef struct quota_tracker quota_tracker;

int quota_tracker_new(quota_tracker **out, cairn_repo *r);
void quota_tracker_free(quota_tracker *t);
/* Bind to the snapshot's owner: loads the user's quota and charges (no lock,
 * nothing written). From then on, with enforce, quota_tracker_add fails with
 * CAIRN_EQUOTA as soon as the blobs new to the user exceed what the quota
 * leaves. */
int quota_tracker_bind(quota_tracker *t, const char *user, int enforce);
/* The snapshot references blob id, stored size stored. 1 when the tracker
 * had not seen it, 0 when it had; CAIRN_EQUOTA (see bind). Thread-safe. */
int quota_tracker_add(quota_tracker *t, const oid *id, uint32_t stored);
/* quota_tracker_add of n ids (the i-th at ids + i * stride) under one lock:
 * 0 or the first error. */
int quota_tracker_add_each(quota_tracker *t, const void *ids, size_t stride, const uint32_t *stored, size_t n);
int quota_tracker_seen(quota_tracker *t, const oid *id);
/* Start the set of referenced blobs again (a take's pre-copy is followed by
 * the capture that counts): what was added so far is forgotten, but its
 * stored sizes stay known to quota_tracker_known. The new set has room for
 * as many ids as the old one held plus more. */
int quota_tracker_restart(quota_tracker *t, size_t more);
/* Learn the stored sizes of the blobs snapshot snap_hex of user references
 * (its refs record), so that an incremental take needs no index lookup for
 * what it reuses. A missing or unreadable record leaves nothing known. */
void quota_tracker_parent(quota_tracker *t, const char *user, const char *snap_hex);
/* 1 and *stored when the parent's refs record lists blob id, else 0. */
int quota_tracker_known(quota_tracker *t, const oid *id, uint32_t *stored);
/* What the snapshot adds to its user's usage: so far (while writing), or
 * what was charged (after a commit). */
uint64_t quota_tracker_added(quota_tracker *t);

/* The commit protocol (writer_commit runs it):
 *  begin:  bind to user if not bound, take the user's lock, reload the
 *          user's state (settling a crashed operation) and check the quota:
 *          CAIRN_EQUOTA, naming needed, used and quota; the lock is released.
 *  charge: write the snapshot's refs record and the ledger entry; call it
 *          last before writing the manifest.
 *  end:    committed = the manifest was written; otherwise the charge is
 *          undone. Releases the lock. Safe to call after a failed begin. */
int quota_commit_begin(quota_tracker *t, const char *user);
int quota_commit_charge(quota_tracker *t, const char *snap_hex);
void quota_commit_end(quota_tracker *t, int committed);

/* ---- reading, limits, forgetting ------------------------------------------ */

typedef struct quota_usage {
	char user[65];
	uint64_t used, snapshots;
	int has_quota;
	uint64_t quota;
} quota_usage;

/* One user's figures, from the last ledger entry (constant time). A user
 * with no record has zeros and no quota. */
int quota_usage_get(cairn_repo *r, const char *user, quota_usage *out);
/* Names of every user with a record under users/, sorted; free with
 * quota_users_free. */
int quota_users(cairn_repo *r, char ***names, size_t *n);
void quota_users_free(char **names, size_t n);
int quota_set(cairn_repo *r, const char *user, int has_quota, uint64_t limit);
/* Delete snapshot snap_hex (full id) and lower its user's usage at once.
 * *released (may be NULL) = the drop in the user's usage. */
int quota_forget(cairn_repo *r, const char *snap_hex, uint64_t *released);

/* ---- fsck ----------------------------------------------------------------- */

/* One difference between a user's records and the recomputation. */
typedef void (*quota_report_cb)(const char *user, const char *problem, void *payload);

/* Recompute every user's usage from the manifests and trees (stored sizes
 * from the index) and compare with each user's records: the charged
 * snapshots, each snapshot's refs record, every reference count, the usage
 * of the full ledger and the figure `usage` shows. Writes nothing (takes
 * each user's lock while it looks). Returns the number of differences
 * reported (0 = all agree), or a negative code when it could not run. */
int quota_verify(cairn_repo *r, quota_report_cb cb, void *payload);

/* Rewrite user's records from the manifests (fsck --repair): a refs record
 * for each snapshot, a new base and a checkpoint ledger entry. */
int quota_rebuild(cairn_repo *r, const char *user);

#endif
