/* File data writer for restore: a file's bytes reach the disk without going
 * through the page cache where the file system allows it.
 *
 * On the VM cairn runs on, a page of the page cache costs more to hand out
 * than to write: the kernel reclaims one from a full cache, or touches memory
 * the host took back (~2 us a page). Buffered restore of 3.5 GB spent most of
 * its time there. Files of at least RESTORE_DIRECT_MIN bytes are therefore
 * written with O_DIRECT from an aligned staging buffer: their data extents
 * are gathered into whole blocks (the zeros of a hole inside a block the data
 * occupies anyway are written with it), and only the last partial block of
 * the file goes through a buffered write. Smaller files are written
 * buffered: for them a page costs less than a synchronous device write.
 *
 * Where the file system refuses O_DIRECT (EINVAL at open or at a write, or
 * no direct-I/O alignment reported by statx) the writer falls back to
 * buffered writes, once: the shared mode then stays buffered for the whole
 * restore (one target file system). Fault injection: CAIRN_FAULT
 * "direct:N:EINVAL" refuses the Nth request for O_DIRECT. */
#ifndef CAIRN_RESTORE_WRITE_H
#define CAIRN_RESTORE_WRITE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RESTORE_DIRECT_MIN (256u * 1024u) /* smaller files are written buffered */
#define RESTORE_STAGE_LEN (2u * 1024u * 1024u) /* the aligned buffer of one writer */

/* What every writer of one restore shares: whether O_DIRECT is used, and
 * the unit writes are aligned to. Zero-initialise, then restore_write_init. */
typedef struct restore_write_mode {
	atomic_int state; /* 0 not known yet, 1 direct, -1 buffered (refused or off) */
	atomic_uint align;
} restore_write_mode;

/* Write exactly n bytes at off, buffered or not as fd is. 0 or -errno
 * (fault injection "write" as io_write_full's). */
int restore_pwrite_all(int fd, const void *p, size_t n, uint64_t off);

/* direct 0 keeps every write buffered (the old behaviour). */
void restore_write_init(restore_write_mode *m, int direct);

/* One worker's writer: one file at a time. */
typedef struct restore_writer {
	restore_write_mode *mode;
	uint8_t *stage;   /* RESTORE_STAGE_LEN bytes, page aligned (NULL until needed) */
	int fd, direct;   /* the file, and whether it is open with O_DIRECT */
	uint64_t size;    /* the file's final size */
	uint64_t start;   /* file offset of stage[0] (aligned) */
	size_t len;       /* bytes in stage */
} restore_writer;

void restore_writer_init(restore_writer *w, restore_write_mode *mode);
void restore_writer_free(restore_writer *w);

/* Create name in dirfd (O_EXCL, O_NOFOLLOW, mode 0600) for a file of size
 * bytes. The fd (>= 0) is the writer's until restore_writer_end; on failure
 * a negative CAIRN_E* with errno's message ("create"). */
int restore_writer_open(restore_writer *w, int dirfd, const char *name, uint64_t size);
/* n bytes at off; offsets ascend across calls (holes between them). */
int restore_writer_put(restore_writer *w, uint64_t off, const void *p, size_t n);
/* Room in the stage for the n bytes at off (ascending, as put's), for the
 * caller to fill (a chunk decompressed straight into it) and then
 * restore_writer_commit. *out NULL when there is none (the file is written
 * buffered, or n is too large): put the bytes instead. */
int restore_writer_reserve(restore_writer *w, uint64_t off, size_t n, uint8_t **out);
int restore_writer_commit(restore_writer *w, size_t n);
/* Everything staged written and the file cut to its size. The fd stays open
 * (for metadata); the caller closes it. */
int restore_writer_end(restore_writer *w);

#endif
