/* The freeze record (format.h "freeze record") as bytes and back. Pure: no
 * I/O; the decoder checks every length against the bytes present. Writing,
 * reading and acting on the records is records.c's. */
#ifndef CAIRN_FREEZE_CODEC_H
#define CAIRN_FREEZE_CODEC_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

typedef struct freeze_rec {
	uint32_t pid, guardian;
	uint64_t start, guardian_start, pidns;
	uint8_t v2;
	int64_t time_ns;
	char boot[64];
	char cgroup[PATH_MAX];
} freeze_rec;

/* *out malloc'd; 0 or CAIRN_ENOMEM. */
int freeze_record_encode(const freeze_rec *r, uint8_t **out, size_t *len);
/* 0 or CAIRN_ECORRUPT naming what (a cgroup must be an absolute path). */
int freeze_record_decode(freeze_rec *r, const uint8_t *data, size_t len, const char *what);

#endif
