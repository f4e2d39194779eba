/* gc's records (objects layer, session_records.c): a session, the marks
 * of blobs gc means to delete and the objects it saw unindexed, their codecs
 * (no I/O) and the marks as a set in memory. The repository's session module
 * (session.h) and the collector (engine/gc/) read and write them; the
 * protocol is in docs/operations.md ("Garbage collection"), the bytes in
 * format.h (session, gc marks). */
#ifndef CAIRN_SESSION_RECORDS_H
#define CAIRN_SESSION_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "index.h"

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
