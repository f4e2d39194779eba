/* Sessions and gc marks (repository layer): what protects readers and
 * writers from gc. Every writer, and every read that may outlast gc's grace
 * period, registers a session; a writer never deduplicates against a blob
 * gc has marked. The collector above (engine/gc/) reads and writes the same
 * records through the second half of this header. The protocol is in
 * README.md ("Garbage collection"), the records in format.h (session, gc
 * marks). */
#ifndef CAIRN_SESSION_H
#define CAIRN_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "hash.h"
#include "index.h"
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

/* ---- the records, for the collector ---------------------------------------- */

typedef struct session_rec {
	int64_t start_ns, expiry_ns;
	uint32_t pid;
	char host[128];
} session_rec;

/* A blob mark: dead when marked; gone_ns != 0 once it left the index. */
typedef struct mark {
	oid id;
	int64_t marked_ns, gone_ns;
	uint8_t prov; /* marked_ns is the time before the write: not yet durable */
	uint8_t drop;
} mark;

/* A candidate object (an unindexed pack or a tmp file) first seen at seen_ns. */
typedef struct cand {
	char *name;
	int64_t seen_ns;
	uint8_t kind; /* CAND_PACK, CAND_TMP */
	uint8_t drop;
} cand;

#define CAND_PACK 1
#define CAND_TMP 2

typedef struct marks {
	mark *m;
	size_t n, cap;
	chunk_index *pos; /* id -> index in m (in the entry's offset field) */
	cand *c;
	size_t nc, capc;
	chunk_index *cpos; /* SHA-256 of a name -> the latest candidate of that name */
	char **objects; /* names of the mark objects this was loaded from */
	size_t nobjects, capobjects;
} marks;

/* This host's name as sessions record it; r's own session object ("" for
 * none: gc must not judge it); every marks object read into ms (marks_load). */
void session_host_name(char out[128]);
const char *session_name(cairn_repo *r);
int marks_load(store *st, marks *ms);

/* The records' codecs (session_records.c, objects layer: no I/O). Encoders:
 * *out malloc'd, 0 or CAIRN_ENOMEM; decoders: 0 or CAIRN_ECORRUPT naming
 * what. A marks record holds the marks and candidates not dropped, and the
 * time it was written (time_ns); decoding one merges it into ms (as
 * marks_add and cand_add do), so several records load as one set. */
int session_encode(const session_rec *s, uint8_t **out, size_t *len);
int gc_session_decode(session_rec *s, const uint8_t *data, size_t len, const char *what);
int marks_encode(const marks *ms, int64_t time_ns, uint8_t **out, size_t *len);
int marks_decode(marks *ms, const uint8_t *data, size_t len, const char *what, int64_t *time_ns);
/* The marks in memory: an empty set (marks_init), freed, looked up, added. */
int marks_init(marks *ms);
void marks_free(marks *ms);
mark *marks_find(marks *ms, const oid *id);
int marks_add(marks *ms, const mark *nm);
cand *cand_find(marks *ms, const char *name);
int cand_add(marks *ms, const char *name, int64_t seen, uint8_t kind);

#endif
