/* The take (take.h): reading files on every core: the workers, large files'
 * chunks shared out, small files in batches, cuts where the parent's version
 * was cut. */
#include "take.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "batchread.h"
#include "cairn.h"
#include "error.h"
#include "freeze.h"

/* The workers' large buffers are mapped, not malloc'd: glibc would keep a
 * freed one in its heap (its mmap threshold grows past their size), and a
 * worker out of files gives its memory back for the one still reading. */
static void *big_alloc(size_t len, int huge)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
	/* a capture that reads everything fills them: one fault per 2 MiB,
	 * not 512 (a fault is ~10 us on a VM). Not for one that reads a few
	 * files (an incremental or frozen one): 2 MiB zeroed for a small file.
	 * Only a hint (THP may be off or short of pages). */
	if (huge) madvise(p, len, MADV_HUGEPAGE);
#endif
	return p;
}

static void big_free(void *p, size_t len)
{
	if (p) munmap(p, len);
}

/* The next slot of fs->chunks. Under jobs_lock when fs shares its chunks:
 * other workers write the slots before it. */
static int64_t chunk_slot(file_state *fs)
{
	if (fs->nchunks == fs->cap) {
		uint32_t cap = fs->cap ? fs->cap * 2 : 1; /* most files are one chunk */
		tree_chunk *ch = realloc(fs->chunks, cap * sizeof(*ch));
		if (!ch) return ERR_OOM();
		fs->chunks = ch;
		fs->cap = cap;
	}
	return fs->nchunks++;
}

static void count_chunk(take_ctx *c, size_t len, size_t added)
{
	c->bytes += len;
	if (added) {
		c->new_bytes += len;
		c->stored_bytes += added;
	}
}

/* A chunk whose id the reader has (hashed, or a prior cut verified):
 * stored (or referenced) here. locked: other workers write fs's slots (its
 * chunks are queued), so the slot is taken under jobs_lock. */
static int add_known_chunk(take_ctx *c, file_state *fs, const oid *id, const uint8_t *data, size_t len,
                           int locked)
{
	size_t added;
	int rc = writer_put(c->writer, id, BLOB_DATA, data, len, &added);
	if (rc < 0) return rc;
	if (locked) pthread_mutex_lock(&c->jobs_lock);
	int64_t slot = chunk_slot(fs);
	if (slot >= 0) {
		fs->chunks[slot] = (tree_chunk){*id, (uint32_t)len};
		count_chunk(c, len, added);
	}
	if (locked) pthread_mutex_unlock(&c->jobs_lock);
	return slot < 0 ? (int)slot : 0;
}

static int add_chunk(take_ctx *c, file_state *fs, const uint8_t *data, size_t len)
{
	oid id;
	hash_sha256(&id, data, len);
	return add_known_chunk(c, fs, &id, data, len, 0);
}

/* A changed file is mostly its old content, moved or not (appends, an
 * insert, bytes rewritten in place), and the chunker cuts it where it cut
 * the old one. So after a cut, the reader tries the parent's next chunk:
 * if the next bytes hash to its id, they are that chunk, and since a cut
 * depends only on the bytes since the last cut, the chunker would have cut
 * there too; the cut is skipped and the hash is the chunk's id. A wrong
 * guess costs one hash. Which old chunk comes next: the one after the one
 * just verified, or after one as long as the chunk the chunker just cut
 * (the content has moved by an insert or a deletion). The parent's last
 * chunk ended where its file did, not at a cut: never guessed. */
typedef struct size_at {
	uint32_t size, at; /* an old chunk's size and index */
} size_at;

typedef struct prior_cuts {
	const tree_chunk *was;
	uint32_t n;
	size_at *by_size; /* the old chunks but the last, by size */
	int64_t next;     /* the old chunk to try at the next cut, or -1 */
} prior_cuts;

static int size_at_cmp(const void *a, const void *b)
{
	const size_at *x = a, *y = b;
	return x->size != y->size ? (x->size < y->size ? -1 : 1) : (x->at < y->at ? -1 : x->at > y->at);
}

static void prior_cuts_init(prior_cuts *pc, const tree_chunk *was, uint32_t n)
{
	memset(pc, 0, sizeof(*pc));
	pc->next = -1;
	if (n < 2 || !(pc->by_size = malloc((n - 1) * sizeof(*pc->by_size)))) return;
	pc->was = was;
	pc->n = n;
	pc->next = 0;
	for (uint32_t i = 0; i + 1 < n; i++) pc->by_size[i] = (size_at){was[i].size, i};
	qsort(pc->by_size, n - 1, sizeof(*pc->by_size), size_at_cmp);
}

/* After the chunker cut len bytes: the old chunk after one of that size. */
static void prior_cuts_after(prior_cuts *pc, size_t len)
{
	pc->next = -1;
	size_t lo = 0, hi = pc->n ? pc->n - 1 : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pc->by_size[mid].size < len) lo = mid + 1;
		else hi = mid;
	}
	if (pc->n && lo < pc->n - 1 && pc->by_size[lo].size == len) pc->next = pc->by_size[lo].at + 1;
}

/* The chunk at data (avail bytes on) if it is the old chunk tried: its
 * length, and its id in *id; else 0. */
static size_t prior_cuts_try(prior_cuts *pc, const uint8_t *data, size_t avail, oid *id)
{
	if (pc->next < 0 || (uint32_t)pc->next + 1 >= pc->n) return 0;
	const tree_chunk *w = &pc->was[pc->next];
	if (w->size > avail) return 0;
	hash_sha256(id, data, w->size);
	if (oid_cmp(id, &w->id) != 0) return 0;
	pc->next++;
	return w->size;
}

/* fs is to be read: keep its earlier version's chunk list (the parent's
 * or the pre-copy's) for prior cuts, when that version was dense and cut
 * at least once, and fs is large enough for read_file (not a batch). */
void keep_prior_cuts(file_state *fs, const walk_node *n, const tree_chunk *chunks, uint32_t nchunks,
                     uint32_t nextents)
{
	if (fs->was || n->size <= SMALL_FILE_MAX || nextents || nchunks < 2) return;
	if (!(fs->was = malloc(nchunks * sizeof(*fs->was)))) return; /* only a shortcut */
	memcpy(fs->was, chunks, nchunks * sizeof(*fs->was)); /* the parent is freed while fs is read */
	fs->nwas = nchunks;
}

/* Hash and store one queued chunk (any worker). */
static void run_job(take_ctx *c, chunk_job *j)
{
	oid id;
	size_t added = 0;
	int rc = take_failed(c); /* then only the bookkeeping: the take fails */
	if (rc == 0 && (rc = writer_put_chunk(c->writer, j->data, j->len, &id, &added)) < 0) take_fail(c, rc);
	pthread_mutex_lock(&c->jobs_lock);
	(*j->buf_jobs)--;
	if (rc == 0) {
		j->fs->chunks[j->slot] = (tree_chunk){id, (uint32_t)j->len};
		count_chunk(c, j->len, added);
	}
	j->fs->pending--;
	pthread_cond_broadcast(&c->jobs_cv);
	pthread_mutex_unlock(&c->jobs_lock);
}

/* Take the oldest queued job, if any. jobs_lock held. */
static int pop_job(take_ctx *c, chunk_job *out)
{
	if (!c->jobs_len) return 0;
	*out = c->jobs[c->jobs_head];
	c->jobs_head = (c->jobs_head + 1) % JOBS_MAX;
	c->jobs_len--;
	pthread_cond_broadcast(&c->jobs_cv);
	return 1;
}

/* Run the oldest queued job, or else wait for a change. jobs_lock held. */
static void run_or_wait(take_ctx *c)
{
	chunk_job j;
	if (pop_job(c, &j)) {
		pthread_mutex_unlock(&c->jobs_lock);
		run_job(c, &j);
		pthread_mutex_lock(&c->jobs_lock);
	} else {
		pthread_cond_wait(&c->jobs_cv, &c->jobs_lock);
	}
}

/* Run queued jobs, or wait for other workers' to end, until *count is 0. */
static void wait_jobs(take_ctx *c, const uint32_t *count)
{
	pthread_mutex_lock(&c->jobs_lock);
	while (*count > 0) run_or_wait(c);
	pthread_mutex_unlock(&c->jobs_lock);
}

/* A chunk of a large file, in the reader's buffer whose job count is
 * buf_jobs: queued (1) when some worker has no file left to read, else
 * hashed here (0); the queue full, this worker runs the oldest job. */
static int share_chunk(take_ctx *c, file_state *fs, const uint8_t *data, size_t len, uint32_t *buf_jobs)
{
	/* readers only drop: once one chunk of fs is queued, all later ones are */
	if (atomic_load(&c->readers) == c->nworkers) return add_chunk(c, fs, data, len);
	pthread_mutex_lock(&c->jobs_lock);
	int64_t slot = chunk_slot(fs);
	if (slot < 0) {
		pthread_mutex_unlock(&c->jobs_lock);
		return (int)slot;
	}
	while (c->jobs_len == JOBS_MAX) run_or_wait(c); /* full: a job is there to run */
	c->jobs[(c->jobs_head + c->jobs_len++) % JOBS_MAX] = (chunk_job){fs, (uint32_t)slot, data, len, buf_jobs};
	fs->pending++;
	(*buf_jobs)++;
	pthread_cond_broadcast(&c->jobs_cv);
	pthread_mutex_unlock(&c->jobs_lock);
	return 1;
}

/* Data extents of a sparse file, from SEEK_DATA/SEEK_HOLE. */
static int find_extents(int fd, uint64_t size, const char *path, tree_extent **out, uint32_t *n)
{
	tree_extent *ext = NULL;
	uint32_t count = 0, cap = 0;
	off_t pos = 0;
	*out = NULL;
	*n = 0;
	while ((uint64_t)pos < size) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO) break; /* only a hole remains */
			free(ext);
			return error_errno(CAIRN_EIO, errno, "%s: SEEK_DATA", path);
		}
		if ((uint64_t)data >= size) break;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0) {
			free(ext);
			return error_errno(CAIRN_EIO, errno, "%s: SEEK_HOLE", path);
		}
		if ((uint64_t)hole > size) hole = (off_t)size;
		if (count == cap) {
			cap = cap ? cap * 2 : 8;
			tree_extent *e = realloc(ext, cap * sizeof(*e));
			if (!e) {
				free(ext);
				return ERR_OOM();
			}
			ext = e;
		}
		ext[count].offset = (uint64_t)data;
		ext[count].length = (uint64_t)(hole - data);
		count++;
		pos = hole;
	}
	*out = ext;
	*n = count;
	return 0;
}

/* A source file could not be read. While frozen that fails the take; in
 * the pre-copy (the instance runs, files come and go) the file is left to
 * the frozen capture: 1. */
static int source_error(take_ctx *c, int rc)
{
	if (!c->precopy || rc == CAIRN_ENOMEM) return rc;
	error_clear();
	return 1;
}

/* Count a file read (rc 0), or skipped by the pre-copy (rc 1). */
static int file_read(take_ctx *c, file_state *fs, int rc)
{
	if (rc < 0) return rc;
	fs->captured = rc == 0;
	c->files_done++;
	return 0;
}

/* Read one file through the chunker. buf holds READ_BLOCK + chunk_max
 * bytes. 1: skipped (source_error). */
static int read_file(take_ctx *c, file_state *fs, uint8_t *bufs[2], size_t bufcap)
{
	/* a large file shares its chunks (share_chunk): once one is queued,
	 * the reader goes on in its other buffer (made then: most takes never
	 * need it) while the chunks of this one are hashed */
	int rc = 0, cur = 0, queued = 0, share = fs->node->size >= SHARE_MIN && c->nworkers > 1;
	uint8_t *buf = bufs[0];
	uint32_t buf_jobs[2] = {0, 0};
	walk_node *n = fs->node;
	char *path = walk_path(n);
	tree_extent *ext = NULL, dense;
	uint32_t next = 0;
	const chunker_params *cp = &c->repo->chunker;
	prior_cuts pc = {.next = -1};
	int fd = walk_open(c->rootfd, n);
	if (fd < 0) {
		rc = source_error(c, fd);
		goto done;
	}
	fs->size = n->size;
	int sparse = n->size > 0 && n->blocks * 512 < n->size;
	if (sparse && (rc = find_extents(fd, n->size, path ? path : n->name, &ext, &next)) < 0) {
		rc = source_error(c, rc);
		goto done;
	}
	if (!sparse) {
		dense.offset = 0;
		dense.length = n->size;
		ext = &dense;
		next = n->size ? 1 : 0;
	}

	if (!sparse && !c->no_prior_cuts) prior_cuts_init(&pc, fs->was, fs->nwas);
	size_t have = 0, pos = 0;
	uint32_t ei = 0;
	uint64_t eoff = 0; /* offset within extent ei */
	int eof = next == 0;
	while (!eof || pos < have) {
		if (!eof && have - pos < cp->max) {
			if (queued && !bufs[1] && !(bufs[1] = big_alloc(bufcap, c->bulk_read))) {
				wait_jobs(c, &fs->pending); /* no second buffer: this one, once free */
				queued = 0;
			}
			if (queued) { /* the other buffer, once no queued chunk is in it */
				wait_jobs(c, &buf_jobs[!cur]);
				memcpy(bufs[!cur], buf + pos, have - pos);
				cur = !cur;
				buf = bufs[cur];
			} else {
				memmove(buf, buf + pos, have - pos);
			}
			have -= pos;
			pos = 0;
			while (!eof && have < bufcap) {
				uint64_t left = ext[ei].length - eoff;
				size_t want = bufcap - have < left ? bufcap - have : (size_t)left;
				ssize_t r = pread(fd, buf + have, want, (off_t)(ext[ei].offset + eoff));
				if (r < 0) {
					if (errno == EINTR) continue;
					rc = source_error(c, error_errno(CAIRN_EIO, errno, "%s: read", path ? path : n->name));
					goto done;
				}
				if (r == 0) {
					/* the file shrank while we read it: keep what exists */
					ext[ei].length = eoff;
					fs->size = ext[ei].offset + eoff;
					next = ei + 1;
					eof = 1;
					break;
				}
				have += (size_t)r;
				eoff += (uint64_t)r;
				if (eoff == ext[ei].length) {
					ei++;
					eoff = 0;
					if (ei == next) eof = 1;
				}
			}
		}
		if (pos == have) break;
		oid id;
		size_t cut = prior_cuts_try(&pc, buf + pos, have - pos, &id);
		int q;
		if (cut) {
			atomic_fetch_add(&c->prior_cuts, 1);
			q = add_known_chunk(c, fs, &id, buf + pos, cut, queued);
		} else {
			cut = chunker_cut(cp, buf + pos, have - pos);
			prior_cuts_after(&pc, cut);
			q = share ? share_chunk(c, fs, buf + pos, cut, &buf_jobs[cur]) : add_chunk(c, fs, buf + pos, cut);
		}
		if (q < 0) {
			rc = q;
			goto done;
		}
		queued |= q;
		pos += cut;
		if (take_failed(c)) goto done;
	}

	if (sparse) {
		/* drop extents emptied by a shrink; an all-hole file keeps [size, 0) */
		while (next > 0 && ext[next - 1].length == 0) next--;
		if (next == 1 && ext[0].offset == 0 && ext[0].length == fs->size) {
			next = 0; /* no hole after all: store it as dense, like any other file */
		} else if (next == 0) {
			if (!ext) ext = malloc(sizeof(*ext));
			if (!ext) {
				rc = ERR_OOM();
				goto done;
			}
			ext[0].offset = fs->size;
			ext[0].length = 0;
			next = 1;
		}
		if (next > 0) {
			fs->extents = ext;
			fs->nextents = next;
			ext = NULL;
		}
	} else if (fs->size != n->size) {
		fs->size = dense.length;
	}
done:
	if (share) wait_jobs(c, &fs->pending); /* its chunk list is complete only then */
	free(pc.by_size);
	free(fs->was); /* of no more use */
	fs->was = NULL;
	fs->nwas = 0;
	if (ext != &dense) free(ext);
	if (fd >= 0) close(fd);
	free(path);
	return rc;
}

/* Whole content already in memory (a small file). */
static int chunk_memory(take_ctx *c, file_state *fs, const uint8_t *data, size_t len)
{
	for (size_t pos = 0; pos < len;) {
		size_t cut = chunker_cut(&c->repo->chunker, data + pos, len - pos);
		int rc = add_chunk(c, fs, data + pos, cut);
		if (rc < 0) return rc;
		pos += cut;
	}
	return 0;
}

/* Dense small files go through io_uring; a sparse one needs SEEK_DATA. */
static int batchable(const walk_node *n)
{
	return n->size > 0 && n->size <= SMALL_FILE_MAX && n->blocks * 512 >= n->size;
}

/* Read files[0..n): small ones in one io_uring batch, the rest one by one.
 * *brp is dropped (set NULL) if the ring turns out not to work. */
static int read_batch(take_ctx *c, batch_reader **brp, file_state **files, size_t n,
                      uint8_t *arena, uint8_t *bufs[2], size_t bufcap)
{
	int rc = 0;
	batch_item items[BATCH_MAX];
	file_state *owners[BATCH_MAX];
	size_t nitems = 0, used = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		walk_node *node = files[i]->node;
		if (node->size == 0) {
			rc = file_read(c, files[i], 0); /* nothing to read: the walk saw it empty */
			continue;
		}
		char *path = *brp && batchable(node) ? walk_path(node) : NULL;
		if (path && strlen(path) < PATH_MAX) {
			items[nitems] = (batch_item){path, arena + used, node->size, 0};
			owners[nitems++] = files[i];
			used += node->size;
			continue;
		}
		free(path);
		rc = file_read(c, files[i], read_file(c, files[i], bufs, bufcap));
	}
	if (rc == 0 && nitems > 0 && batch_reader_run(*brp, c->rootfd, items, nitems) < 0) {
		/* the plain path gives the same bytes; the caller says so once */
		pthread_mutex_lock(&c->lock);
		if (!c->uring_fallback[0])
			snprintf(c->uring_fallback, sizeof(c->uring_fallback),
			         "%s; reading files with plain syscalls", cairn_error_last());
		pthread_mutex_unlock(&c->lock);
		batch_reader_free(*brp);
		*brp = NULL;
		for (size_t i = 0; i < nitems && rc == 0; i++)
			rc = file_read(c, owners[i], read_file(c, owners[i], bufs, bufcap));
		nitems = 0;
	}
	for (size_t i = 0; i < nitems && rc == 0; i++) {
		file_state *fs = owners[i];
		if (items[i].result < 0) {
			rc = error_errno(CAIRN_EIO, (int)-items[i].result, "%s: read", items[i].path);
			rc = file_read(c, fs, source_error(c, rc));
			continue;
		}
		fs->size = (uint64_t)items[i].result; /* less than walked if it shrank */
		rc = file_read(c, fs, chunk_memory(c, fs, items[i].buf, (size_t)items[i].result));
	}
	for (size_t i = 0; i < nitems; i++) free((char *)items[i].path);
	return rc;
}

/* What the walk hands over while it goes on, waiting for it: a large file
 * (*fs), or up to BATCH_MAX files of a queued directory (*job, from
 * *start, *n); 0 once it is done (or stopped) and all is taken. */
static int next_early(take_ctx *c, file_state **fs, stream_job **job, uint32_t *start, uint32_t *n)
{
	int got = 1;
	*fs = NULL;
	*job = NULL;
	pthread_mutex_lock(&c->jobs_lock);
	while (c->early_taken == c->nearly && !c->queue && !c->walk_done) pthread_cond_wait(&c->jobs_cv, &c->jobs_lock);
	if (c->early_taken < c->nearly) {
		*fs = c->early[c->early_taken++];
	} else if (c->queue) {
		stream_job *j = *job = c->queue;
		*start = j->taken;
		*n = j->nfiles - j->taken < BATCH_MAX ? j->nfiles - j->taken : BATCH_MAX;
		if ((j->taken += *n) == j->nfiles && !(c->queue = j->next)) c->queue_tail = NULL;
	} else {
		got = 0;
	}
	c->early_busy += (size_t)got;
	pthread_mutex_unlock(&c->jobs_lock);
	return got;
}

void *take_worker(void *arg)
{
	take_ctx *c = arg;
	size_t bufcap = READ_BLOCK + c->repo->cfg.chunk_max, arena_len = (size_t)BATCH_MAX * SMALL_FILE_MAX;
	uint8_t *bufs[2] = {big_alloc(bufcap, c->bulk_read), NULL}, *arena = NULL; /* the second for large files */
	batch_reader *br = NULL;
	int tried_ring = 0;
	file_state *fs;
	stream_job *job;
	uint32_t from = 0, count = 0;
	if (!bufs[0]) take_fail(c, ERR_OOM());
	while (bufs[0] && !take_failed(c) && next_early(c, &fs, &job, &from, &count)) {
		int rc;
		if (job) { /* a streamed directory's small files, batched as after the walk */
			if (!tried_ring && c->stream_uring && batch_reader_new(&br, c->repo->settings.test_uring_always) == 0 &&
			    !(arena = big_alloc(arena_len, c->bulk_read))) {
				batch_reader_free(br);
				br = NULL;
			}
			tried_ring = 1;
			rc = read_batch(c, &br, job->files + from, count, arena, bufs, bufcap);
			if (rc == 0) stream_job_left(c, job, count);
		} else {
			rc = file_read(c, fs, read_file(c, fs, bufs, bufcap));
		}
		pthread_mutex_lock(&c->jobs_lock);
		c->early_busy--;
		pthread_cond_broadcast(&c->jobs_cv);
		pthread_mutex_unlock(&c->jobs_lock);
		if (rc < 0) take_fail(c, rc);
	}
	if (br && !c->use_uring) { /* the walk found no ring: the plain path, as without streaming */
		batch_reader_free(br);
		br = NULL;
	}
	/* the walk is done: todo and use_uring are set */
	if (!tried_ring && bufs[0] && c->use_uring && batch_reader_new(&br, c->repo->settings.test_uring_always) == 0)
		arena = big_alloc(arena_len, c->bulk_read);
	if (!arena) {
		batch_reader_free(br);
		br = NULL;
	}
	while (bufs[0] && !take_failed(c)) {
		size_t start = atomic_fetch_add(&c->next, BATCH_MAX);
		if (start >= c->ntodo) break;
		size_t n = c->ntodo - start < BATCH_MAX ? c->ntodo - start : BATCH_MAX;
		int rc = read_batch(c, &br, c->todo + start, n, arena, bufs, bufcap);
		if (rc < 0) {
			take_fail(c, rc);
			break;
		}
	}
	/* out of files: its buffers go (peak memory), then it helps with the
	 * chunks of the files still being read */
	batch_reader_free(br);
	big_free(arena, arena_len);
	big_free(bufs[0], bufcap);
	big_free(bufs[1], bufcap);
	pthread_mutex_lock(&c->jobs_lock);
	c->readers--;
	pthread_cond_broadcast(&c->jobs_cv);
	while (c->jobs_len > 0 || c->readers > 0) run_or_wait(c);
	if (--c->workers_left == 0) pthread_cond_broadcast(&c->done_cv);
	pthread_mutex_unlock(&c->jobs_lock);
	return NULL;
}
