/* Small files read in batches through io_uring: for each file a linked
 * openat -> read -> close on a direct (registered) descriptor, so a batch of
 * N files costs one submission instead of 3N system calls. */
#ifndef CAIRN_BATCHREAD_H
#define CAIRN_BATCHREAD_H

#include <stddef.h>
#include <stdint.h>

#define BATCH_MAX 32

typedef struct batch_reader batch_reader;

typedef struct batch_item {
	const char *path; /* relative to rootfd, shorter than PATH_MAX */
	uint8_t *buf;     /* room for size bytes */
	uint64_t size;    /* bytes to read (the file's size at walk time) */
	int64_t result;   /* out: bytes read (less when the file shrank), or -errno */
} batch_item;

/* CAIRN_EIO (with a message) when io_uring or direct descriptors are
 * unavailable; the caller then reads with plain syscalls. ring_only
 * (tests): every file through the ring, however large. */
int batch_reader_new(batch_reader **out, int ring_only);
void batch_reader_free(batch_reader *br);

/* Read up to BATCH_MAX files. Per-file failures are in item->result; the
 * return value is negative only when the ring itself failed (then no
 * result can be trusted and the caller falls back to plain reads). */
int batch_reader_run(batch_reader *br, int rootfd, batch_item *items, size_t n);

#endif
