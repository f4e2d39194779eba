/* Sessions and gc marks (repository layer): what protects readers and
 * writers from gc. Every writer, and every read that may outlast gc's grace
 * period, registers a session; a writer never deduplicates against a blob
 * gc has marked. The collector above (engine/gc/) reads and writes the same
 * records (session_records.h). The protocol is in
 * docs/operations.md ("Garbage collection"), the records in format.h
 * (session, gc marks) and session_records.h. */
#ifndef CAIRN_SESSION_H
#define CAIRN_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "hash.h"
#include "index.h"
#include "session_records.h"
#include "store.h"

#define GC_SESSION_TTL_MS (60u * 1000u)     /* a session not refreshed for this long is dead */
#define GC_SESSION_REFRESH_MS (15u * 1000u) /* the refresher thread's period */
/* the lock "gc": gc and fsck hold it while they run, an index merge
 * (repo.c) only when it is free */
#define GC_LOCK_TTL_MS (60u * 1000u)

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

/* ---- the records, for the collector (session_records.h) ------------------- */

/* This host's name as sessions record it; r's own session object ("" for
 * none: gc must not judge it); every marks object read into ms (marks_load). */
void session_host_name(char out[128]);
const char *session_name(cairn_repo *r);
int marks_load(store *st, marks *ms);

#endif
