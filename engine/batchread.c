#include "batchread.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cairn.h"
#include "error.h"

struct batch_reader {
	struct io_uring ring;
	int open_flags;
	int ring_only; /* every file through the ring: no RWF_NOWAIT, or CAIRN_URING_ALWAYS=1 (testing) */
};

enum { OP_OPEN, OP_READ, OP_CLOSE };

int batch_reader_new(batch_reader **out, int ring_only)
{
	*out = NULL;
	batch_reader *br = calloc(1, sizeof(*br));
	if (!br) return ERR_OOM();
	int rc = io_uring_queue_init(BATCH_MAX * 3, &br->ring, 0);
	if (rc < 0) {
		free(br);
		return error_errno(CAIRN_EIO, -rc, "io_uring");
	}
	rc = io_uring_register_files_sparse(&br->ring, BATCH_MAX);
	if (rc < 0) {
		io_uring_queue_exit(&br->ring);
		free(br);
		return error_errno(CAIRN_EIO, -rc, "io_uring direct descriptors");
	}
	/* no atime updates on the instance's files (only root may ask for that);
	 * no O_CLOEXEC: direct descriptors refuse it and are never inherited */
	br->open_flags = O_RDONLY | O_NOFOLLOW | (geteuid() == 0 ? O_NOATIME : 0);
	br->ring_only = ring_only;
	*out = br;
	return 0;
}

void batch_reader_free(batch_reader *br)
{
	if (!br) return;
	io_uring_queue_exit(&br->ring);
	free(br);
}

/* Read item it whole from the page cache with plain calls, or leave it to the
 * ring (0). A read that would wait (RWF_NOWAIT: EAGAIN or short) has started
 * the readahead the ring's read then finds under way. */
static int read_cached(batch_reader *br, int rootfd, batch_item *it)
{
	int fd = openat(rootfd, it->path, br->open_flags | O_CLOEXEC);
	if (fd < 0) return 0; /* the ring's open says why, as it always did */
	struct iovec v = {it->buf, (size_t)it->size};
	ssize_t got = preadv2(fd, &v, 1, 0, RWF_NOWAIT);
	if (got < 0 && errno == EOPNOTSUPP) br->ring_only = 1; /* a filesystem that cannot say */
	close(fd);
	if (got != (ssize_t)it->size) return 0;
	it->result = got;
	return 1;
}

int batch_reader_run(batch_reader *br, int rootfd, batch_item *items, size_t n)
{
	if (n > BATCH_MAX) return error_set(CAIRN_EIO, "batch of %zu files is too large", n);
	size_t queued = 0;
	for (size_t i = 0; i < n; i++) {
		/* plain calls first: for cached files they cost less than the
		 * ring's linked open, read and close */
		if (!br->ring_only && read_cached(br, rootfd, &items[i])) continue;
		queued++;
		struct io_uring_sqe *open = io_uring_get_sqe(&br->ring);
		struct io_uring_sqe *read = io_uring_get_sqe(&br->ring);
		struct io_uring_sqe *close = io_uring_get_sqe(&br->ring);
		if (!open || !read || !close) return error_set(CAIRN_EIO, "io_uring: submission queue full");
		io_uring_prep_openat_direct(open, rootfd, items[i].path, br->open_flags, 0, (unsigned)i);
		open->flags |= IOSQE_IO_LINK;
		io_uring_sqe_set_data64(open, (uint64_t)i << 2 | OP_OPEN);
		io_uring_prep_read(read, (int)i, items[i].buf, (unsigned)items[i].size, 0);
		read->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
		io_uring_sqe_set_data64(read, (uint64_t)i << 2 | OP_READ);
		io_uring_prep_close_direct(close, (unsigned)i);
		io_uring_sqe_set_data64(close, (uint64_t)i << 2 | OP_CLOSE);
		items[i].result = -EINPROGRESS;
	}
	if (!queued) return 0;
	int rc = io_uring_submit(&br->ring);
	if (rc < 0) return error_errno(CAIRN_EIO, -rc, "io_uring submit");

	int open_err[BATCH_MAX] = {0};
	for (size_t done = 0; done < 3 * queued; done++) {
		struct io_uring_cqe *cqe;
		rc = io_uring_wait_cqe(&br->ring, &cqe);
		if (rc < 0) return error_errno(CAIRN_EIO, -rc, "io_uring wait");
		uint64_t data = io_uring_cqe_get_data64(cqe);
		size_t i = (size_t)(data >> 2);
		int res = cqe->res;
		io_uring_cqe_seen(&br->ring, cqe);
		if (i >= n) continue;
		switch (data & 3) {
		case OP_OPEN:
			if (res < 0) open_err[i] = res;
			break;
		case OP_READ:
			items[i].result = res;
			break;
		default:
			break;
		}
	}
	for (size_t i = 0; i < n; i++) {
		/* a failed open cancels its read: report the open's error */
		if (open_err[i]) items[i].result = open_err[i];
		/* a kernel without these ops says EINVAL: the ring is of no use */
		if (items[i].result == -EINVAL || items[i].result == -EBADF)
			return error_errno(CAIRN_EIO, (int)-items[i].result, "io_uring read of %s",
			                   items[i].path);
	}
	return 0;
}
