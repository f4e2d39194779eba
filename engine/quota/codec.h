/* Quotas: the codecs of the records under users/U/ (format.h "user quota",
 * "user refs", "user log", "user base"). Pure: no I/O; a decoder checks the
 * framing, that the record is user's, every count against the bytes present
 * and the order of ids, and allocates at most in proportion to the record.
 * Reading, writing and naming the objects is records.c's and ledger.c's. */
#ifndef CAIRN_QUOTA_CODEC_H
#define CAIRN_QUOTA_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "hash.h"

typedef struct uref {
	oid id;
	uint32_t size;
	uint32_t refs;
} uref;

/* A refs record is whole (flags 0) or a delta (REFS_DELTA): the set of an
 * earlier snapshot of the same user (its base) without `removed`, plus the
 * blobs listed. A take writes a delta on its parent, so an unchanged take
 * writes a few hundred bytes instead of 36 per blob. depth counts the
 * deltas down to a whole record (0); a base's depth must be less (checked
 * on read): chains stay short and cannot loop. */
#define REFS_DELTA 1u
#define REFS_DEPTH_MAX 8

#define OP_ADD 1
#define OP_FORGET 2
#define OP_CHECKPOINT 3

/* A ledger entry. */
typedef struct ulog {
	uint64_t seq;
	uint8_t op;
	oid snap;
	uint64_t used_before, used_after, snaps_before, snaps_after;
} ulog;

/* Every encoder: *out malloc'd, 0 or CAIRN_ENOMEM. Every decoder: 0 or
 * CAIRN_ECORRUPT naming what. */

/* users/U/quota */
int quota_limit_encode(const char *user, uint64_t limit, uint8_t **out, size_t *len);
int quota_limit_decode(const uint8_t *data, size_t len, const char *what, const char *user, uint64_t *limit);

/* users/U/refs/<snap>: whole (base NULL) or a delta on base at depth
 * (removed: ids only). Lists ascending by id. */
int quota_refs_encode(const char *user, const oid *snap, const oid *base, uint32_t depth, const uref *removed,
                      size_t nremoved, const uref *v, size_t n, uint8_t **out, size_t *len);
typedef struct refs_rec {
	oid snap;
	int delta;
	oid base;       /* a delta's */
	uint32_t depth; /* 0 whole, 1..REFS_DEPTH_MAX a delta */
	uref *removed;  /* malloc'd, ascending; refs 1, size 0 */
	size_t nremoved;
	uref *added;    /* malloc'd, ascending; refs 1 */
	size_t nadded;
} refs_rec;
int quota_refs_decode(const uint8_t *data, size_t len, const char *what, const char *user, refs_rec *out);
void refs_rec_free(refs_rec *r);

/* users/U/log/<seq> (the entry's op is checked: OP_ADD..OP_CHECKPOINT) */
int quota_log_encode(const char *user, const ulog *e, uint8_t **out, size_t *len);
int quota_log_decode(const uint8_t *data, size_t len, const char *what, const char *user, ulog *e);

/* users/U/base/<seq>: snaps' ids and blobs (id, size, refs), ascending. */
int quota_base_encode(const char *user, uint64_t seq, uint64_t used, const uref *snaps, size_t nsnaps,
                      const uref *blobs, size_t nblobs, uint8_t **out, size_t *len);
/* A decoded base points into the record's bytes (a base is 40 bytes a blob:
 * no copy); every entry is checked (ids ascending, 1 <= refs <= nsnaps, the
 * sizes summing to used). Read entries with quota_base_snap/_blob. */
typedef struct base_rec {
	uint64_t seq, used;
	uint32_t nsnaps, nblobs;
	const uint8_t *snaps, *blobs;
} base_rec;
int quota_base_decode(const uint8_t *data, size_t len, const char *what, const char *user, base_rec *out);
void quota_base_snap(const base_rec *b, uint32_t i, oid *id);
void quota_base_blob(const base_rec *b, uint32_t i, uref *out);

#endif
