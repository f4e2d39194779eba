/* File data writer for restore (restore_write.h). */
#include "restore_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "error.h"
#include "io.h"

void restore_write_init(restore_write_mode *m, int direct)
{
	atomic_init(&m->state, direct ? 0 : -1);
	atomic_init(&m->align, 0);
}

void restore_writer_init(restore_writer *w, restore_write_mode *mode)
{
	memset(w, 0, sizeof(*w));
	w->mode = mode;
	w->fd = -1;
}

void restore_writer_free(restore_writer *w)
{
	free(w->stage);
	w->stage = NULL;
}

/* The file system said no to O_DIRECT: buffered from now on, for every writer. */
static void refuse(restore_writer *w)
{
	atomic_store(&w->mode->state, -1);
}

int restore_pwrite_all(int fd, const void *data, size_t n, uint64_t off)
{
	const uint8_t *p = data;
	while (n > 0) {
		int f = io_fault("write");
		if (f == -1000) return -ENOSPC;
		if (f < 0) return f;
		ssize_t k = pwrite(fd, p, n, (off_t)off);
		if (k < 0) {
			if (errno == EINTR) continue;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

/* The first direct file tells the alignment: the larger of the file
 * system's direct-I/O offset unit and its block size (up to a page), so
 * that padding a block with zeros never fills a block of a hole. 0 when
 * direct I/O cannot be used there. */
static unsigned probe_align(int fd)
{
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) < 0 || !(sx.stx_mask & STATX_DIOALIGN) ||
	    sx.stx_dio_offset_align == 0 || sx.stx_dio_mem_align > 4096)
		return 0;
	unsigned block = sx.stx_blksize < 4096 ? sx.stx_blksize : 4096;
	unsigned align = sx.stx_dio_offset_align > block ? sx.stx_dio_offset_align : block;
	/* a unit larger than a block, or not a power of two, could fill a hole */
	if (align > sx.stx_blksize || (align & (align - 1))) return 0;
	return align;
}

/* Turn O_DIRECT on or off for w->fd. 0, or -errno (EINVAL: not here). */
static int set_direct(restore_writer *w, int on)
{
	int f = on ? io_fault("direct") : 0;
	if (f < 0) return f;
	int fl = fcntl(w->fd, F_GETFL);
	if (fl < 0 || fcntl(w->fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT) < 0) return -errno;
	w->direct = on;
	return 0;
}

/* After a failure past the create: no file is left behind. */
static int open_fail(restore_writer *w, int dirfd, const char *name, int rc, const char *what)
{
	close(w->fd);
	w->fd = -1;
	unlinkat(dirfd, name, 0);
	return error_errno(CAIRN_EIO, -rc, "%s", what);
}

int restore_writer_open(restore_writer *w, int dirfd, const char *name, uint64_t size)
{
	w->size = size;
	w->start = 0;
	w->len = 0;
	w->direct = 0;
	int want = size >= RESTORE_DIRECT_MIN && atomic_load(&w->mode->state) >= 0;
	if (want && !w->stage) {
		void *p;
		if (posix_memalign(&p, 4096, RESTORE_STAGE_LEN) != 0) return ERR_OOM();
		w->stage = p;
	}
	/* O_DIRECT is asked for after the open: an open that creates the file
	 * and then refuses the flag would leave the file behind */
	w->fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (w->fd < 0) return error_errno(errno == ENOMEM ? CAIRN_ENOMEM : CAIRN_EIO, errno, "create");
	if (!want) return w->fd;
	int rc = set_direct(w, 1);
	if (rc == -EINVAL) {
		refuse(w);
		return w->fd;
	}
	if (rc < 0) return open_fail(w, dirfd, name, rc, "set O_DIRECT");
	if (atomic_load(&w->mode->state) == 0) {
		unsigned align = probe_align(w->fd);
		if (align) {
			atomic_store(&w->mode->align, align);
			atomic_store(&w->mode->state, 1);
		} else {
			refuse(w);
		}
	}
	if (atomic_load(&w->mode->state) < 0 && (rc = set_direct(w, 0)) < 0)
		return open_fail(w, dirfd, name, rc, "clear O_DIRECT");
	return w->fd;
}

/* Write stage[0, n) at w->start: directly, or buffered once the file
 * system refused (then this file goes on buffered too). */
static int stage_write(restore_writer *w, size_t n)
{
	int rc = restore_pwrite_all(w->fd, w->stage, n, w->start);
	if (rc == -EINVAL && w->direct) {
		refuse(w);
		if ((rc = set_direct(w, 0)) == 0) rc = restore_pwrite_all(w->fd, w->stage, n, w->start);
	}
	if (rc < 0) return error_errno(CAIRN_EIO, -rc, "write");
	return 0;
}

/* Write out what is staged; the stage is empty after. The last partial
 * unit is padded with zeros when the file goes on past it (the block is
 * the data's anyway), and written buffered when the file ends in it: a
 * padded block past the end would need a truncate that reads it back. */
static int stage_flush(restore_writer *w)
{
	if (w->len == 0) return 0;
	unsigned align = atomic_load(&w->mode->align);
	size_t body = w->len / align * align, tail = w->len - body;
	if (tail && w->start + body + align <= w->size) {
		memset(w->stage + w->len, 0, align - tail);
		body += align;
		tail = 0;
	}
	int rc = body ? stage_write(w, body) : 0;
	if (rc == 0 && tail) {
		/* buffered, from an fd without O_DIRECT: that flag is per open file */
		if (w->direct && (rc = set_direct(w, 0)) < 0) return error_errno(CAIRN_EIO, -rc, "clear O_DIRECT");
		if ((rc = restore_pwrite_all(w->fd, w->stage + body, tail, w->start + body)) < 0)
			return error_errno(CAIRN_EIO, -rc, "write");
	}
	w->start += w->len;
	w->len = 0;
	return rc;
}

/* Make the stage's next byte the one for file offset off (ascending). */
static int stage_seek(restore_writer *w, uint64_t off)
{
	int rc;
	unsigned align = atomic_load(&w->mode->align);
	uint64_t end = w->start + w->len;
	if (w->len && off != end) {
		/* a hole: zeros up to off when off is in the block being filled */
		uint64_t unit_end = (end + align - 1) / align * align;
		if (off < unit_end && off - w->start <= RESTORE_STAGE_LEN) {
			memset(w->stage + w->len, 0, (size_t)(off - end));
			w->len = (size_t)(off - w->start);
		} else if ((rc = stage_flush(w)) < 0) {
			return rc;
		}
	}
	if (w->len == 0) {
		/* a new run starts at the unit holding off; the zeros before off
		 * are in a hole of a block the data occupies anyway */
		w->start = off / align * align;
		w->len = (size_t)(off - w->start);
		memset(w->stage, 0, w->len);
	}
	return 0;
}

int restore_writer_reserve(restore_writer *w, uint64_t off, size_t n, uint8_t **out)
{
	int rc;
	*out = NULL;
	if (!w->direct || n > RESTORE_STAGE_LEN - 4096) return 0;
	if ((rc = stage_seek(w, off)) < 0) return rc;
	if (!w->direct) return 0; /* refused in the seek's flush */
	if (w->len + n > RESTORE_STAGE_LEN) {
		/* out with the whole units staged; the partial one moves to the front */
		unsigned align = atomic_load(&w->mode->align);
		size_t body = w->len / align * align;
		if ((rc = stage_write(w, body)) < 0) return rc;
		if (!w->direct) { /* refused on the way: the rest buffered too */
			if ((rc = restore_pwrite_all(w->fd, w->stage + body, w->len - body, w->start + body)) < 0)
				return error_errno(CAIRN_EIO, -rc, "write");
			w->start += w->len;
			w->len = 0;
			return 0;
		}
		memmove(w->stage, w->stage + body, w->len - body);
		w->start += body;
		w->len -= body;
	}
	*out = w->stage + w->len;
	return 0;
}

int restore_writer_commit(restore_writer *w, size_t n)
{
	w->len += n;
	if (w->len < RESTORE_STAGE_LEN) return 0;
	int rc = stage_write(w, w->len);
	w->start += w->len;
	w->len = 0;
	return rc;
}

int restore_writer_put(restore_writer *w, uint64_t off, const void *data, size_t n)
{
	const uint8_t *p = data;
	int rc;
	if (!w->direct) {
		if ((rc = restore_pwrite_all(w->fd, p, n, off)) < 0) return error_errno(CAIRN_EIO, -rc, "write");
		return 0;
	}
	if ((rc = stage_seek(w, off)) < 0) return rc;
	while (n > 0) {
		if (!w->direct) /* the file system refused on the way */
			return (rc = restore_pwrite_all(w->fd, p, n, w->start + w->len)) < 0
			               ? error_errno(CAIRN_EIO, -rc, "write")
			               : 0;
		size_t room = RESTORE_STAGE_LEN - w->len, k = n < room ? n : room;
		memcpy(w->stage + w->len, p, k);
		w->len += k;
		p += k;
		n -= k;
		if (w->len == RESTORE_STAGE_LEN) {
			if ((rc = stage_write(w, w->len)) < 0) return rc;
			w->start += w->len;
			w->len = 0;
		}
	}
	return 0;
}

int restore_writer_end(restore_writer *w)
{
	int rc = 0;
	if (w->direct || w->len) rc = stage_flush(w);
	if (rc == 0 && ftruncate(w->fd, (off_t)w->size) < 0)
		rc = error_errno(CAIRN_EIO, errno, "truncate to %llu", (unsigned long long)w->size);
	w->len = 0;
	return rc;
}
