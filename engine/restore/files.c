/* Restore (internal.h): pass 2: regular files created and filled by the worker
 * threads. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "error.h"

typedef struct file_out {
	rstate *st;
	restore_writer *w;
} file_out;

static int file_emit(void *ctx, uint64_t off, const uint8_t *p, size_t n)
{
	file_out *o = ctx;
	int rc = restore_writer_put(o->w, off, p, n);
	if (rc < 0) return rc;
	atomic_fetch_add(&o->st->bytes, n);
	return 0;
}

/* Owner, then xattrs (chown clears security.capability), then mode (chown
 * clears setuid/setgid), then times: through an fd of a file or directory. */
int restore_meta_fd(rstate *st, int fd, uint32_t mode, uint32_t uid, uint32_t gid, int64_t sec,
            uint32_t nsec, uint32_t nxattrs, const tree_xattr *xattrs)
{
	if (fchown(fd, uid, gid) < 0 && !restore_tolerable(st, errno))
		return error_errno(CAIRN_EIO, errno, "chown %u:%u", uid, gid);
	for (uint32_t i = 0; i < nxattrs; i++)
		if (fsetxattr(fd, xattrs[i].name, xattrs[i].value, xattrs[i].value_len, 0) < 0 &&
		    !restore_tolerable(st, errno))
			return error_errno(CAIRN_EIO, errno, "set xattr %s", xattrs[i].name);
	if (fchmod(fd, mode & 07777) < 0) return error_errno(CAIRN_EIO, errno, "chmod %o", mode & 07777);
	struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
	if (futimens(fd, ts) < 0) return error_errno(CAIRN_EIO, errno, "set times");
	return 0;
}

/* sb gets the file as left: its inode and its ctime after the last change. */
static int restore_file(rstate *st, restore_writer *w, buf *scratch, dctx *d, const tree_entry *e,
                        struct stat *sb)
{
	int rc;
	file_out o = {st, w};
	int fd = restore_writer_open(w, d->fd, e->name, e->size);
	if (fd < 0) return restore_fail_at(st, 1, d->dir, e->name, fd);
	if ((rc = content_walk(st->repo, e, file_emit, &o, &st->stop, scratch)) < 0) goto fail;
	if ((rc = restore_writer_end(w)) < 0) goto fail;
	rc = restore_meta_fd(st, fd, e->mode, e->uid, e->gid, e->mtime_sec, e->mtime_nsec, e->nxattrs,
	             e->xattrs);
	if (rc < 0) goto fail;
	if (fstat(fd, sb) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "stat");
		goto fail;
	}
	int closing = fd;
	fd = -1;
	if (close(closing) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "close");
		goto fail;
	}
	/* bytes counts data written, not holes, as take counts data read */
	atomic_fetch_add(&st->files, 1);
	return 0;
fail:
	/* never leave a file with wrong bytes behind */
	if (fd >= 0) close(fd);
	unlinkat(d->fd, e->name, 0);
	return restore_fail_at(st, 1, d->dir, e->name, rc);
}

void dctx_release(rstate *st, dctx *d)
{
	if (!d || atomic_fetch_sub(&d->refs, 1) != 1) return;
	int had_fd = d->fd >= 0; /* live_dirs counts open ones */
	if (had_fd) close(d->fd);
	tree_free(&d->t);
	free(d);
	if (!had_fd) return;
	pthread_mutex_lock(&st->mu);
	st->live_dirs--;
	pthread_cond_broadcast(&st->cv_space);
	pthread_mutex_unlock(&st->mu);
}

void *restore_worker(void *arg)
{
	rstate *st = arg;
	restore_writer w;
	restore_writer_init(&w, &st->wmode);
	buf scratch; /* runs of chunks read from packs */
	buf_init(&scratch);
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (st->qlen == 0 && !st->closed) pthread_cond_wait(&st->cv_work, &st->mu);
		if (st->qlen == 0) break;
		fjob j = st->q[st->qhead];
		st->qhead = (st->qhead + 1) % QUEUE_CAP;
		st->qlen--;
		st->inflight++;
		pthread_cond_broadcast(&st->cv_space);
		pthread_mutex_unlock(&st->mu);

		struct stat sb = {0};
		if (!atomic_load(&st->stop)) {
			int rc = restore_file(st, &w, &scratch, j.d, &j.d->t.entries[j.i], &sb);
			if (rc < 0) restore_record_error(st, rc);
		}
		dctx_release(st, j.d);

		pthread_mutex_lock(&st->mu);
		if (sb.st_ino && j.item != UINT32_MAX) {
			inode_item *it = &st->items.v[j.item];
			it->value = sb.st_ino;
			it->ctime_sec = sb.st_ctim.tv_sec;
			it->ctime_nsec = (uint32_t)sb.st_ctim.tv_nsec;
		}
		st->inflight--;
		pthread_cond_broadcast(&st->cv_space);
	}
	pthread_mutex_unlock(&st->mu);
	restore_writer_free(&w);
	buf_free(&scratch);
	return NULL;
}

void restore_enqueue(rstate *st, dctx *d, uint32_t i, uint32_t item)
{
	atomic_fetch_add(&d->refs, 1);
	pthread_mutex_lock(&st->mu);
	while (st->qlen == QUEUE_CAP && !atomic_load(&st->stop)) {
		restore_wait_a_bit(st, &st->cv_space);
		pthread_mutex_unlock(&st->mu);
		restore_progress(st);
		pthread_mutex_lock(&st->mu);
	}
	if (atomic_load(&st->stop)) {
		pthread_mutex_unlock(&st->mu);
		dctx_release(st, d);
		return;
	}
	st->q[(st->qhead + st->qlen) % QUEUE_CAP] = (fjob){d, i, item};
	st->qlen++;
	pthread_cond_signal(&st->cv_work);
	pthread_mutex_unlock(&st->mu);
}

/* Count a new open directory, first waiting (bounded fds) while workers still
 * hold many, as long as they have work that will release some. */
void reserve_dir(rstate *st)
{
	pthread_mutex_lock(&st->mu);
	while (st->live_dirs >= st->max_dirs && st->qlen + st->inflight > 0 &&
	       !atomic_load(&st->stop)) {
		restore_wait_a_bit(st, &st->cv_space);
		pthread_mutex_unlock(&st->mu);
		restore_progress(st);
		pthread_mutex_lock(&st->mu);
	}
	st->live_dirs++;
	pthread_mutex_unlock(&st->mu);
}

void unreserve_dir(rstate *st)
{
	pthread_mutex_lock(&st->mu);
	st->live_dirs--;
	pthread_cond_broadcast(&st->cv_space);
	pthread_mutex_unlock(&st->mu);
}
