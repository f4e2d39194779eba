/* Damaged-snapshot markers (damaged/<snapshot id>, format.h): written by
 * fsck --repair when a snapshot's data is lost, honoured by every reader of
 * the snapshot (restore, mount), which then fails naming fsck's reason
 * instead of meeting the damage half way. A repository concern: the checker
 * writes them, the pipelines read them. */
#ifndef CAIRN_DAMAGED_H
#define CAIRN_DAMAGED_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"

#define DAMAGED_MAX 65536 /* largest marker read */

/* The record as bytes (no I/O); *out malloc'd. reason is cut to MAX_STR_LEN. */
int damaged_encode(int64_t time_ns, const char *reason, uint8_t **out, size_t *len);
/* Check and decode; *reason points into data (not NUL-terminated). what
 * names it in messages. */
int damaged_decode(const uint8_t *data, size_t len, const char *what, int64_t *time_ns,
                   const char **reason, size_t *reason_len);

/* Mark snapshot snap_hex damaged for reason (durably, replacing a marker). */
int damaged_mark(cairn_repo *r, const char *snap_hex, const char *reason);
/* 0 when snapshot snap_hex carries no marker; CAIRN_ECORRUPT naming the
 * snapshot and fsck's reason when it does; < 0 when it cannot be read. */
int damaged_check(cairn_repo *r, const char *snap_hex);

#endif
