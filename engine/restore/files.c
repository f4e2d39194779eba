/* Restore (internal.h): pass 2: regular files created and filled by the worker
 * threads. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
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

static int file_reserve(void *ctx, uint64_t off, size_t n, uint8_t **out)
{
	file_out *o = ctx;
	return restore_writer_reserve(o->w, off, n, out);
}

static int file_commit(void *ctx, size_t n)
{
	file_out *o = ctx;
	int rc = restore_writer_commit(o->w, n);
	if (rc < 0) return rc;
	atomic_fetch_add(&o->st->bytes, n);
	return 0;
}

static const content_place file_place = {file_reserve, file_commit};

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

static int meta_all(rstate *st, int fd, const tree_entry *e, struct stat *sb)
{
	int rc = restore_meta_fd(st, fd, e->mode, e->uid, e->gid, e->mtime_sec, e->mtime_nsec, e->nxattrs,
	                         e->xattrs);
	if (rc == 0 && fstat(fd, sb) < 0) rc = error_errno(CAIRN_EIO, errno, "stat");
	return rc;
}

/* A file created with its permission bits (write_small) by the restorer
 * mostly needs neither chown nor chmod: each is a syscall and an inode
 * update, two of seven a small file cost. The fstat that gives the
 * record its inode checks the guess; where a umask, a set-group-id
 * directory or a default ACL made the file otherwise, or chown could
 * not be skipped, the whole sequence runs (chown first: it clears
 * set-user-id bits and capabilities). */
static int meta_guessed(rstate *st, int fd, const tree_entry *e, struct stat *sb)
{
	if (e->nxattrs || (e->mode & 07000) || e->uid != st->euid || e->gid != st->egid)
		return meta_all(st, fd, e, sb);
	struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec}, {e->mtime_sec, e->mtime_nsec}};
	if (futimens(fd, ts) < 0) return error_errno(CAIRN_EIO, errno, "set times");
	if (fstat(fd, sb) < 0) return error_errno(CAIRN_EIO, errno, "stat");
	if (sb->st_uid == e->uid && sb->st_gid == e->gid && (sb->st_mode & 07777) == (e->mode & 07777)) return 0;
	return meta_all(st, fd, e, sb);
}

/* The end of e's restore, its data written (rc 0) or not: its metadata on
 * fd (guessed: created by write_small), sb the file as left (its inode and
 * its ctime after the last change), fd closed. On any failure the file is
 * removed: never a file with wrong bytes left behind. */
static int file_done(rstate *st, dctx *d, const tree_entry *e, int fd, int rc, int guessed, struct stat *sb)
{
	if (rc == 0) rc = guessed ? meta_guessed(st, fd, e, sb) : meta_all(st, fd, e, sb);
	if (close(fd) < 0 && rc == 0) rc = error_errno(CAIRN_EIO, errno, "close");
	if (rc == 0) {
		atomic_fetch_add(&st->files, 1);
		return 0;
	}
	unlinkat(d->fd, e->name, 0);
	return restore_fail_at(st, 1, d->dir, e->name, rc);
}

static int restore_file(rstate *st, restore_writer *w, buf *scratch, dctx *d, const tree_entry *e,
                        struct stat *sb)
{
	file_out o = {st, w};
	int fd = restore_writer_open(w, d->fd, e->name, e->size);
	if (fd < 0) return restore_fail_at(st, 1, d->dir, e->name, fd);
	/* bytes counts data written, not holes, as take counts data read */
	int rc = content_walk(st->repo, e, file_emit, &file_place, &o, &st->stop, scratch);
	if (rc == 0) rc = restore_writer_end(w);
	return file_done(st, d, e, fd, rc, 0, sb);
}

/* A worker's memory for batches, reused: every chunk's id and place, the
 * files' bytes one after the other. */
typedef struct batch_mem {
	rstate *st;
	oid *ids;
	uint8_t **dst; /* where each chunk's bytes go */
	uint32_t *len; /* and their length, as the tree says */
	size_t cap;
	uint64_t base[BATCH_FILES]; /* each file's bytes at data.data + base */
	buf data;
} batch_mem;

static int batch_dst(void *payload, size_t slot, size_t len, uint8_t **out)
{
	batch_mem *m = payload;
	if (len != m->len[slot]) return error_set(CAIRN_ECORRUPT, "chunk of %zu bytes, tree says %u", len, m->len[slot]);
	*out = m->dst[slot];
	return 0;
}

static int batch_chunk(void *payload, size_t slot, const uint8_t *p, size_t len, const char *what)
{
	(void)slot, (void)p, (void)len, (void)what;
	batch_mem *m = payload;
	return atomic_load(&m->st->stop) ? error_set(CAIRN_EIO, "interrupted") : 0;
}

/* Every chunk of the batch read, verified and decompressed into m->data at
 * its file's place. Fails (the caller falls back to one file at a time, for
 * its messages) on anything wrong. */
static int batch_read(rstate *st, buf *scratch, batch_mem *m, dctx *d, const fbatch *b)
{
	size_t nchunks = 0;
	uint64_t total = 0;
	int rc;
	for (uint32_t k = 0; k < b->n; k++) {
		const tree_entry *e = &d->t.entries[b->idx[k]];
		if ((rc = content_check(e)) < 0) return rc;
		m->base[k] = total;
		nchunks += e->nchunks;
		for (uint32_t c = 0; c < e->nchunks; c++) total += e->chunks[c].size;
	}
	if (total > 2 * (uint64_t)BATCH_BYTES) return error_set(CAIRN_ECORRUPT, "batch larger than its files");
	if (nchunks > m->cap) {
		size_t cap = nchunks * 2;
		oid *ids = realloc(m->ids, cap * sizeof(*ids));
		if (ids) m->ids = ids;
		uint8_t **dst = realloc(m->dst, cap * sizeof(*dst));
		if (dst) m->dst = dst;
		uint32_t *len = realloc(m->len, cap * sizeof(*len));
		if (len) m->len = len;
		if (!ids || !dst || !len) return ERR_OOM();
		m->cap = cap;
	}
	if (buf_reserve(&m->data, (size_t)total ? (size_t)total : 1) < 0) return ERR_OOM();
	size_t at = 0;
	for (uint32_t k = 0; k < b->n; k++) {
		const tree_entry *e = &d->t.entries[b->idx[k]];
		uint64_t off = m->base[k];
		for (uint32_t c = 0; c < e->nchunks; c++, at++) {
			m->ids[at] = e->chunks[c].id;
			m->dst[at] = m->data.data + off;
			m->len[at] = e->chunks[c].size;
			off += e->chunks[c].size;
		}
	}
	m->st = st;
	return repo_read_blobs_into(st->repo, m->ids, nchunks, BLOB_DATA, REPO_READ_UNCACHED, scratch, batch_dst,
	                            batch_chunk, m);
}

/* Create e in d and write its data (its extents' bytes, one after the
 * other), then its metadata. sb as restore_file's. */
static int write_small(rstate *st, dctx *d, const tree_entry *e, const uint8_t *data, struct stat *sb)
{
	int rc = 0;
	tree_extent dense = {0, e->size};
	const tree_extent *ext = e->nextents ? e->extents : &dense;
	uint32_t next = e->nextents ? e->nextents : 1;
	uint64_t end = 0;
	/* its permission bits from the start (never more than the tree's:
	 * no set-id bits, the umask only takes away); owner and times below */
	int fd = openat(d->fd, e->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                e->mode & 0777);
	if (fd < 0) return restore_sys_fail(st, 1, d->dir, e->name, "create");
	for (uint32_t x = 0; x < next && rc == 0; x++) {
		if (ext[x].length == 0) continue;
		if ((rc = restore_pwrite_all(fd, data, (size_t)ext[x].length, ext[x].offset)) < 0)
			rc = error_errno(CAIRN_EIO, -rc, "write");
		data += ext[x].length;
		end = ext[x].offset + ext[x].length;
	}
	/* a hole at the end, or an empty file's size */
	if (rc == 0 && end < e->size && ftruncate(fd, (off_t)e->size) < 0)
		rc = error_errno(CAIRN_EIO, errno, "truncate to %llu", (unsigned long long)e->size);
	return file_done(st, d, e, fd, rc, 1, sb);
}

/* The restore record: a file's inode and its ctime once written. */
static void record_item(rstate *st, uint32_t item, const struct stat *sb)
{
	if (!sb->st_ino || item == UINT32_MAX) return;
	pthread_mutex_lock(&st->mu);
	inode_item *it = &st->items.v[item];
	it->value = sb->st_ino;
	it->ctime_sec = sb->st_ctim.tv_sec;
	it->ctime_nsec = (uint32_t)sb->st_ctim.tv_nsec;
	pthread_mutex_unlock(&st->mu);
}

/* *buffered: the bytes written through the page cache. */
static int restore_batch(rstate *st, restore_writer *w, buf *scratch, batch_mem *m, dctx *d,
                         const fbatch *b, uint64_t *buffered)
{
	int rc, batched = batch_read(st, scratch, m, d, b) == 0;
	if (!batched) error_clear(); /* each file again, alone: its own message */
	for (uint32_t k = 0; k < b->n; k++) {
		if (atomic_load(&st->stop)) return 0;
		const tree_entry *e = &d->t.entries[b->idx[k]];
		struct stat sb = {0};
		if (batched) rc = write_small(st, d, e, m->data.data + m->base[k], &sb);
		else rc = restore_file(st, w, scratch, d, e, &sb);
		if (rc < 0) return rc;
		if (batched) {
			uint64_t n = 0;
			for (uint32_t c = 0; c < e->nchunks; c++) n += e->chunks[c].size;
			atomic_fetch_add(&st->bytes, n);
			*buffered += n;
		}
		record_item(st, b->item[k], &sb);
	}
	return 0;
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

/* The job a worker takes next, among the first PICK_SCAN queued:
 * - the largest file restored alone, while fewer than half the workers
 *   are on one: a large file is a long chain of reads and writes that one
 *   worker does alone, so that started last it is the restore's tail (and
 *   its one create never waits for a directory's lock);
 * - else the first batch whose directory no other worker is in: files
 *   created in one directory take its lock in turn;
 * - else the first. Order within a directory does not matter. Under st->mu. */
static fjob take_job(rstate *st)
{
	size_t pick = SIZE_MAX, free_dir = SIZE_MAX;
	uint64_t largest = 0;
	int large_ok = st->large_workers < st->max_large;
	for (size_t k = 0; k < st->qlen && k < PICK_SCAN; k++) {
		const fjob *q = &st->q[(st->qhead + k) % QUEUE_CAP];
		if (!q->b) {
			uint64_t size = q->d->t.entries[q->i].size;
			if (large_ok && (pick == SIZE_MAX || size > largest)) {
				pick = k;
				largest = size;
			}
		} else if (free_dir == SIZE_MAX && q->d->workers == 0) {
			free_dir = k;
			if (!large_ok) break;
		}
	}
	if (pick == SIZE_MAX) pick = free_dir != SIZE_MAX ? free_dir : 0;
	size_t at = (st->qhead + pick) % QUEUE_CAP;
	fjob j = st->q[at];
	st->q[at] = st->q[st->qhead];
	st->qhead = (st->qhead + 1) % QUEUE_CAP;
	st->qlen--;
	j.d->workers++;
	if (!j.b) st->large_workers++;
	return j;
}

/* A queued job, copied under st->mu for advice outside it: its directory
 * held (a ref), its batch copied (the job owns and frees its own). */
typedef struct job_ahead {
	fjob j;
	fbatch b;
} job_ahead;

/* Under st->mu, at a dequeue: the jobs now at the queue's head not yet
 * advised, up to AHEAD_JOBS of them, into out. */
static size_t take_ahead(rstate *st, job_ahead *out)
{
	size_t n = 0;
	if (st->qadvised) st->qadvised--; /* the job just taken */
	for (; st->qadvised < st->qlen && st->qadvised < AHEAD_JOBS; st->qadvised++) {
		const fjob *q = &st->q[(st->qhead + st->qadvised) % QUEUE_CAP];
		out[n].j = *q;
		if (q->b) {
			out[n].b = *q->b;
			out[n].j.b = &out[n].b;
		}
		atomic_fetch_add(&q->d->refs, 1);
		n++;
	}
	return n;
}

/* The pack ranges a job will read through the page cache, advised: a
 * batch's chunks, or a large file's first REPO_TREE_RUN bytes of ranges
 * (content_walk advises each next window itself). */
static void advise_job(rstate *st, const job_ahead *a, oid **ids, size_t *cap)
{
	const tree_entry *one = a->j.b ? NULL : &a->j.d->t.entries[a->j.i];
	uint32_t nfiles = a->j.b ? a->j.b->n : 1;
	size_t n = 0;
	uint64_t bytes = 0;
	/* twice the window, so that the ranges it advises are whole */
	for (uint32_t k = 0; k < nfiles && bytes < 2 * REPO_TREE_RUN; k++) {
		const tree_entry *e = one ? one : &a->j.d->t.entries[a->j.b->idx[k]];
		for (uint32_t c = 0; c < e->nchunks && bytes < 2 * REPO_TREE_RUN; c++) {
			if (n == *cap) {
				size_t ncap = *cap ? 2 * *cap : 256;
				oid *v = realloc(*ids, ncap * sizeof(*v));
				if (!v) return; /* only a hint */
				*ids = v;
				*cap = ncap;
			}
			(*ids)[n++] = e->chunks[c].id;
			bytes += e->chunks[c].size;
		}
	}
	/* as batch_read and content_walk read them */
	if (n)
		repo_advise_blobs(st->repo, *ids, n, BLOB_DATA,
		                  REPO_READ_UNCACHED | (a->j.b ? 0 : REPO_READ_IN_ORDER));
}

void *restore_worker(void *arg)
{
	rstate *st = arg;
	restore_writer w;
	restore_writer_init(&w, &st->wmode);
	buf scratch[2]; /* runs of chunks read from packs: one read, one in flight */
	buf_init(&scratch[0]);
	buf_init(&scratch[1]);
	batch_mem m;
	memset(&m, 0, sizeof(m));
	buf_init(&m.data);
	job_ahead ahead[AHEAD_JOBS];
	oid *ahead_ids = NULL;
	size_t ahead_cap = 0;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (st->qlen == 0 && !st->closed) pthread_cond_wait(&st->cv_work, &st->mu);
		if (st->qlen == 0) break;
		fjob j = take_job(st);
		st->inflight++;
		size_t nahead = take_ahead(st, ahead);
		pthread_cond_broadcast(&st->cv_space);
		pthread_mutex_unlock(&st->mu);

		for (size_t a = 0; a < nahead; a++) {
			if (!atomic_load(&st->stop)) advise_job(st, &ahead[a], &ahead_ids, &ahead_cap);
			dctx_release(st, ahead[a].j.d);
		}

		struct stat sb = {0};
		uint64_t buffered = 0;
		if (!atomic_load(&st->stop)) {
			int rc = j.b ? restore_batch(st, &w, scratch, &m, j.d, j.b, &buffered)
			             : restore_file(st, &w, scratch, j.d, &j.d->t.entries[j.i], &sb);
			if (rc < 0) restore_record_error(st, rc);
			if (!j.b) record_item(st, j.item, &sb);
			if (!j.b && !w.direct) buffered = j.d->t.entries[j.i].size;
		}
		free(j.b);
		pthread_mutex_lock(&st->mu);
		j.d->workers--;
		if (!j.b) st->large_workers--;
		st->unflushed += buffered;
		if (st->unflushed >= FLUSH_BYTES) pthread_cond_signal(&st->cv_flush);
		pthread_mutex_unlock(&st->mu);
		dctx_release(st, j.d);

		pthread_mutex_lock(&st->mu);
		st->inflight--;
		pthread_cond_broadcast(&st->cv_space);
	}
	pthread_mutex_unlock(&st->mu);
	restore_writer_free(&w);
	buf_free(&scratch[0]);
	buf_free(&scratch[1]);
	buf_free(&m.data);
	free(m.ids);
	free(m.dst);
	free(m.len);
	free(ahead_ids);
	return NULL;
}

/* Writes out what the workers wrote through the page cache, FLUSH_BYTES at
 * a time, so that the final syncfs has little left. Its errors are the
 * final syncfs's to report. */
void *restore_flusher(void *arg)
{
	rstate *st = arg;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (!st->flush_end && st->unflushed < FLUSH_BYTES) pthread_cond_wait(&st->cv_flush, &st->mu);
		if (st->flush_end) break;
		st->unflushed = 0;
		pthread_mutex_unlock(&st->mu);
		syncfs(st->rootfd);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

void restore_enqueue(rstate *st, dctx *d, uint32_t i, uint32_t item, fbatch *b)
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
		free(b);
		dctx_release(st, d);
		return;
	}
	st->q[(st->qhead + st->qlen) % QUEUE_CAP] = (fjob){d, i, item, b};
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
