/* Garbage collection and the sessions that protect readers and writers from
 * it. The protocol is in README.md ("Garbage collection"), the records in
 * format.h (session, gc marks). It uses only the store interface. */
#ifndef CAIRN_GC_H
#define CAIRN_GC_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "hash.h"
#include "index.h"

#define GC_SESSION_TTL_MS (60u * 1000u)     /* a session not refreshed for this long is dead */
#define GC_SESSION_REFRESH_MS (15u * 1000u) /* the refresher thread's period */
#define GC_DEFAULT_GRACE_MS (60u * 60u * 1000u)
#define GC_MAX_SKEW_MS (60u * 1000u)         /* clock skew allowed between hosts, at most grace */
#define GC_LOCK_TTL_MS (60u * 1000u)
#define GC_DEFAULT_WAIT_MS (10u * 1000u)

/* ---- sessions ------------------------------------------------------------
 * Every writer, and every read that may outlast the grace period,
 * registers a session object (gc/sessions/<32 hex>: start time, expiry,
 * host, pid; repo_session) BEFORE it reads the marks and the index, and a
 * thread refreshes it. Short reads register none. gc deletes nothing that a live session
 * that started before the deletion became decidable may still use. */

/* Register a session for r (repo_session, before the index is read).
 * Never fails: when the session cannot be written the handle works
 * unprotected and gc_session_check says why. */
void gc_session_begin(cairn_repo *r);
/* Stop refreshing and delete the session object (accepts a handle without one). */
void gc_session_end(cairn_repo *r);
/* Before a commit: the session exists, is not close to expiry, and is
 * refreshed now. CAIRN_EIO (or the write's error) naming why otherwise: the
 * commit must not happen, as gc may have removed what it deduplicated against. */
int gc_session_check(cairn_repo *r);

/* ---- marks -----------------------------------------------------------------
 * Blobs gc has marked for deletion. A writer loads them once, after its
 * session is registered, and never deduplicates against a marked blob. */

/* *out: a chunk_index used as a set of marked ids (empty when there are none). */
int gc_marks_load(cairn_repo *r, chunk_index **out);

/* Decode a session or gc marks record (by its magic) and discard it: 0 or
 * CAIRN_ECORRUPT. For the fuzz targets. */
int gc_record_check(const uint8_t *data, size_t len);

#endif
