/* The mount's records as bytes and back (format.h "access trace" and
 * "mount cache log"). Pure: no I/O; decoders check every length against
 * the bytes present. Reading and writing them is mount.c's (traces) and
 * record.c's (the cache's log). */
#ifndef CAIRN_MOUNT_CODEC_H
#define CAIRN_MOUNT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "hash.h"

/* ---- the access trace ---- */

/* paths: n paths relative to the snapshot's root ("usr/lib/x.so"); one
 * longer than a u16 is written empty (the root). *out malloc'd; 0 or
 * CAIRN_ENOMEM. */
int trace_encode(const oid *snap, const char *const *paths, size_t n, uint8_t **out, size_t *len);

/* 0 or CAIRN_ECORRUPT naming what: the snapshot it names and its count of
 * paths; then, only when the whole record is good, fn for each path in
 * order (not NUL-terminated; fn may be NULL). */
typedef void (*trace_path_fn)(void *arg, const char *path, size_t len);
int trace_decode(const uint8_t *data, size_t len, const char *what, oid *snap, uint32_t *npaths, trace_path_fn fn,
                 void *arg);

/* ---- the mount cache log: a header, then entries appended in batches ---- */

#define MLOG_HEADER_LEN FORMAT_HEADER_LEN
#define MLOG_ENTRY_LEN (OID_LEN + 12 + FORMAT_CHECK_LEN)

typedef struct mlog_entry {
	oid cid;
	uint32_t nchunks, first, count;
} mlog_entry;

void mcache_log_header(uint8_t h[MLOG_HEADER_LEN]);
void mcache_log_entry(uint8_t b[MLOG_ENTRY_LEN], const mlog_entry *e);

/* 0 when b is a good entry (its check holds, its chunks within nchunks),
 * decoded into *e; -1 when it is not (torn). */
int mcache_log_entry_decode(const uint8_t b[MLOG_ENTRY_LEN], mlog_entry *e);

/* A whole log: 0 with *valid, the length of the header and the good
 * entries before the first bad one (what a reader trusts); CAIRN_ECORRUPT
 * naming what when the header is not its writer's (nothing is trusted). */
int mcache_log_decode(const uint8_t *data, size_t len, const char *what, size_t *valid);

#endif
