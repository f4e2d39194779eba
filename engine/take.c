/* The take pipeline: walk, match against the parent, read + chunk + hash on
 * every core (dedup, compression and packs in writer.c), build trees
 * bottom-up, commit. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "batchread.h"
#include "cairn.h"
#include "error.h"
#include "format.h"
#include "freeze.h"
#include "gc.h"
#include "index.h"
#include "inodes.h"
#include "overlay.h"
#include "repo.h"
#include "restored.h"
#include "user.h"
#include "walk.h"
#include "writer.h"

#define READ_BLOCK (8u * 1024u * 1024u)
#define SMALL_FILE_MAX (256u * 1024u) /* read whole, in io_uring batches */

/* Per regular file: where its content went. */
typedef struct file_state {
	walk_node *node;
	struct file_state *leader; /* hardlink follower: content is the leader's */
	uint64_t size;             /* bytes actually captured (the file may shrink) */
	tree_extent *extents;
	uint32_t nextents;
	tree_chunk *chunks;
	uint32_t nchunks, cap;
	int reused;
	int captured; /* content complete (read or reused); a pre-copy may skip files */
	uint32_t pending; /* its chunks queued for other workers (under jobs_lock) */
	tree_chunk *was;  /* the chunks of its namesake in the parent (a dense file), or NULL */
	uint32_t nwas;
} file_state;

/* A chunk of a large file, cut by the worker reading it and hashed and
 * stored by whichever worker is free: so the last large files of a take
 * do not run on one core. */
typedef struct chunk_job {
	file_state *fs;
	uint32_t slot;       /* in fs->chunks */
	const uint8_t *data; /* in one of the reader's two buffers */
	size_t len;
	uint32_t *buf_jobs;  /* that buffer's jobs not yet done (under jobs_lock) */
} chunk_job;
#define JOBS_MAX 64 /* two buffers of chunks: the reader hashes only when the others fall behind */
#define SHARE_MIN (4u * 1024u * 1024u) /* files from this size share their chunks */

typedef struct take_ctx {
	cairn_repo *repo;
	int rootfd;
	walk_node *root;
	int use_uring; /* small files through io_uring (when the walk could use it) */

	file_state *states; /* one per regular file, walk order */
	size_t nstates;
	file_state **todo;  /* leaders that must be read */
	size_t ntodo;
	atomic_size_t next;
	/* Large files found by the walk and read while it goes on (early_file),
	 * each in a state of its own that its entry's state names as leader.
	 * Under jobs_lock: the list grows on the walking thread, workers take
	 * from early_taken; walk_done says todo is complete. */
	file_state **early;
	size_t nearly, cap_early, early_taken, early_busy;
	int walk_done;

	snap_writer *writer;
	/* The pre-copy: a capture while the instance runs, before the freeze.
	 * Files that cannot be read then are left to the frozen capture; a
	 * file changed at or after start (its ctime) is read again. */
	int precopy;
	struct timespec start;
	pthread_mutex_t lock; /* guards rc, message, uring_fallback */
	int rc;
	char message[1024];
	char uring_fallback[256]; /* why file reads left io_uring, "" if they did not */

	atomic_uint_fast64_t files_done, bytes, new_bytes, stored_bytes, reused;
	atomic_uint_fast64_t prior_cuts; /* chunks cut where the parent's were (read_file) */
	int no_prior_cuts;               /* CAIRN_PRIOR_CUTS=0 (testing): always the chunker */
	atomic_int workers_left;
	/* chunk jobs: a worker with no file left to read takes them */
	pthread_mutex_t jobs_lock;
	pthread_cond_t jobs_cv; /* a job queued or done, or a worker out of files */
	pthread_cond_t done_cv; /* the last worker ended (workers_left, under jobs_lock) */
	chunk_job jobs[JOBS_MAX];
	size_t jobs_head, jobs_len;
	atomic_int readers; /* workers still taking files */
	int nworkers;
	struct hl_assign *hl_table; /* sorted by node address */
	size_t hl_count;
	uint32_t hardlink_extra;    /* links beyond the first of each group */
	inode_list inodes;          /* the snapshot's inodes record, built with its trees */
} take_ctx;

/* The parent snapshot as a take compares against it: built once as a prior
 * walk (walk_options.prior; load_prior), each node's user pointing at its
 * tree entry and each regular file with the inode number and ctime of the
 * parent's inodes record (or, from older takes, of its tree entry). The
 * walk copies the xattrs of files unchanged since from it instead of
 * listing them; reuse_from_parent gives them its chunk lists. */
typedef struct parent_view {
	oid root;              /* its content tree */
	inode_list inodes;     /* its inodes record; empty when it has none */
	struct timespec start; /* its take's start: ctimes from then on are not trusted */
	walk_node *prior;
	tree *trees;           /* the prior's entries point into these */
	size_t ntrees, cap_trees;
	chunk_index *tree_at;  /* tree id -> its place in trees (load_prior_trees) */
} parent_view;

/* Where load_prior is in the parent's inodes record. ok drops to 0 when
 * the record does not fit the trees: from there only trees written with
 * inode numbers in them (before the record existed) are compared. */
typedef struct parent_cursor {
	const inode_list *l;
	size_t pos;
	int ok;
} parent_cursor;

static int64_t now_ns(int clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A notice event (CLI: a line on stderr), when the caller listens. */
static void notice(const cairn_take_options *o, const char *msg)
{
	if (!o->event_cb) return;
	cairn_event ev = {.type = CAIRN_EVENT_NOTICE, .message = msg};
	o->event_cb(&ev, o->event_payload);
}

/* Record the first failure of any thread; later ones are dropped. */
static int fail(take_ctx *c, int rc)
{
	pthread_mutex_lock(&c->lock);
	if (c->rc == 0) {
		c->rc = rc;
		snprintf(c->message, sizeof(c->message), "%s", cairn_error_last());
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static int failed(take_ctx *c)
{
	pthread_mutex_lock(&c->lock);
	int rc = c->rc;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* ---- reading files --------------------------------------------------------- */

/* The workers' large buffers are mapped, not malloc'd: glibc would keep a
 * freed one in its heap (its mmap threshold grows past their size), and a
 * worker out of files gives its memory back for the one still reading. */
static void *big_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
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
		uint32_t cap = fs->cap ? fs->cap * 2 : 4;
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

/* ---- cutting where the parent's version was cut ---------------------------- */

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
static void keep_prior_cuts(file_state *fs, const walk_node *n, const tree_chunk *chunks, uint32_t nchunks,
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
	int rc = failed(c); /* then only the bookkeeping: the take fails */
	if (rc == 0 && (rc = writer_put_chunk(c->writer, j->data, j->len, &id, &added)) < 0) fail(c, rc);
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
			if (queued && !bufs[1] && !(bufs[1] = big_alloc(bufcap))) {
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
		if (failed(c)) goto done;
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

/* The next large file found by the walk, waiting while it goes on; NULL
 * once it is done (or stopped) and every such file is taken. */
static file_state *next_early(take_ctx *c)
{
	file_state *fs = NULL;
	pthread_mutex_lock(&c->jobs_lock);
	while (c->early_taken == c->nearly && !c->walk_done) pthread_cond_wait(&c->jobs_cv, &c->jobs_lock);
	if (c->early_taken < c->nearly) {
		fs = c->early[c->early_taken++];
		c->early_busy++;
	}
	pthread_mutex_unlock(&c->jobs_lock);
	return fs;
}

static void *worker(void *arg)
{
	take_ctx *c = arg;
	size_t bufcap = READ_BLOCK + c->repo->cfg.chunk_max, arena_len = (size_t)BATCH_MAX * SMALL_FILE_MAX;
	uint8_t *bufs[2] = {big_alloc(bufcap), NULL}, *arena = NULL; /* the second for large files */
	batch_reader *br = NULL;
	if (!bufs[0]) fail(c, ERR_OOM());
	for (file_state *fs; bufs[0] && !failed(c) && (fs = next_early(c));) {
		int rc = file_read(c, fs, read_file(c, fs, bufs, bufcap));
		pthread_mutex_lock(&c->jobs_lock);
		c->early_busy--;
		pthread_cond_broadcast(&c->jobs_cv);
		pthread_mutex_unlock(&c->jobs_lock);
		if (rc < 0) fail(c, rc);
	}
	/* the walk is done: todo and use_uring are set */
	if (bufs[0] && c->use_uring && batch_reader_new(&br, c->repo->settings.test_uring_always) == 0) arena = big_alloc(arena_len);
	if (!arena) {
		batch_reader_free(br);
		br = NULL;
	}
	while (bufs[0] && !failed(c)) {
		size_t start = atomic_fetch_add(&c->next, BATCH_MAX);
		if (start >= c->ntodo) break;
		size_t n = c->ntodo - start < BATCH_MAX ? c->ntodo - start : BATCH_MAX;
		int rc = read_batch(c, &br, c->todo + start, n, arena, bufs, bufcap);
		if (rc < 0) {
			fail(c, rc);
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

/* ---- walk bookkeeping ------------------------------------------------------ */

typedef struct hl_item {
	uint32_t dev_major, dev_minor;
	uint64_t ino;
	size_t order;
	walk_node *node;
} hl_item;

static int hl_cmp(const void *a, const void *b)
{
	const hl_item *x = a, *y = b;
	if (x->dev_major != y->dev_major) return x->dev_major < y->dev_major ? -1 : 1;
	if (x->dev_minor != y->dev_minor) return x->dev_minor < y->dev_minor ? -1 : 1;
	if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

typedef struct collect {
	file_state *states;
	size_t nstates;
	hl_item *hl;
	size_t nhl, caphl;
	int rc;
} collect;

/* Depth first in name order below a directory, with the directories
 * entered on a heap stack: trees of any depth cost memory, not C stack. */
typedef struct node_walk {
	struct nw_level {
		walk_node *dir;
		size_t i;
	} *v;
	size_t n, cap;
} node_walk;

/* Enter directory dir: its kids come next. */
static int nw_enter(node_walk *nw, walk_node *dir)
{
	if (nw->n == nw->cap) {
		size_t cap = nw->cap ? nw->cap * 2 : 64;
		struct nw_level *v = realloc(nw->v, cap * sizeof(*v));
		if (!v) return ERR_OOM();
		nw->v = v;
		nw->cap = cap;
	}
	nw->v[nw->n++] = (struct nw_level){dir, 0};
	return 0;
}

/* The next node; NULL at the end (the stack then freed). */
static walk_node *nw_next(node_walk *nw)
{
	while (nw->n > 0) {
		struct nw_level *l = &nw->v[nw->n - 1];
		if (l->i < l->dir->nkids) return l->dir->kids[l->i++];
		nw->n--;
	}
	free(nw->v);
	memset(nw, 0, sizeof(*nw));
	return NULL;
}

static void nw_free(node_walk *nw)
{
	free(nw->v);
	memset(nw, 0, sizeof(*nw));
}

/* Depth-first, name order: the order that numbers hardlink groups. */
static void collect_nodes(collect *col, walk_node *n, size_t *order)
{
	node_walk nw = {NULL, 0, 0};
	if ((col->rc = nw_enter(&nw, n)) < 0) return;
	for (walk_node *k; col->rc == 0 && (k = nw_next(&nw));) {
		(*order)++;
		if (k->type == TREE_REG) {
			file_state *fs = &col->states[col->nstates++];
			memset(fs, 0, sizeof(*fs));
			fs->node = k;
			fs->leader = k->user; /* read early (early_file): content is there */
			k->user = fs;
		}
		if (k->type != TREE_DIR && k->nlink > 1) {
			if (col->nhl == col->caphl) {
				size_t cap = col->caphl ? col->caphl * 2 : 64;
				hl_item *h = realloc(col->hl, cap * sizeof(*h));
				if (!h) {
					col->rc = ERR_OOM();
					break;
				}
				col->hl = h;
				col->caphl = cap;
			}
			col->hl[col->nhl++] = (hl_item){k->dev_major, k->dev_minor, k->ino, *order, k};
		}
		if (k->type == TREE_DIR) col->rc = nw_enter(&nw, k);
	}
	nw_free(&nw);
}

/* Entries below n of type (any type: 0) and n itself when counted; -1 when
 * out of memory. */
static size_t count_nodes(walk_node *n, uint8_t type)
{
	node_walk nw = {NULL, 0, 0};
	size_t count = type == 0 || n->type == type ? 1 : 0;
	if (nw_enter(&nw, n) < 0) return (size_t)-1;
	for (walk_node *k; (k = nw_next(&nw));) {
		if (type == 0 || k->type == type) count++;
		if (k->type == TREE_DIR && nw_enter(&nw, k) < 0) {
			nw_free(&nw);
			return (size_t)-1;
		}
	}
	return count;
}

static size_t count_regular(walk_node *n) { return count_nodes(n, TREE_REG); }

static int hl_same(const hl_item *x, const hl_item *y)
{
	return x->dev_major == y->dev_major && x->dev_minor == y->dev_minor && x->ino == y->ino;
}

static int hl_first_cmp(const void *a, const void *b)
{
	const hl_item *x = *(hl_item *const *)a, *y = *(hl_item *const *)b;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Group number of each hardlinked entry, looked up by node address. */
typedef struct hl_assign {
	const walk_node *node;
	uint32_t group;
} hl_assign;

static int hl_node_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const hl_assign *)a)->node, y = (uintptr_t)((const hl_assign *)b)->node;
	return x < y ? -1 : x > y;
}

/* Entries sharing an inode inside the tree form a group, numbered from 1 in
 * walk order; a regular file's followers take their content from the first. */
static int assign_hardlinks(take_ctx *c, collect *col)
{
	size_t ngroups = 0;
	if (col->nhl) qsort(col->hl, col->nhl, sizeof(*col->hl), hl_cmp);
	hl_item **firsts = calloc(col->nhl ? col->nhl : 1, sizeof(*firsts));
	c->hl_table = calloc(col->nhl ? col->nhl : 1, sizeof(*c->hl_table));
	if (!firsts || !c->hl_table) {
		free(firsts);
		return ERR_OOM();
	}
	for (size_t i = 0; i < col->nhl;) {
		size_t j = i + 1;
		while (j < col->nhl && hl_same(&col->hl[i], &col->hl[j])) j++;
		if (j - i > 1) firsts[ngroups++] = &col->hl[i];
		i = j;
	}
	qsort(firsts, ngroups, sizeof(*firsts), hl_first_cmp);
	for (size_t g = 0; g < ngroups; g++) {
		hl_item *h = firsts[g];
		file_state *leader = h->node->type == TREE_REG ? h->node->user : NULL;
		for (hl_item *m = h; m < col->hl + col->nhl && hl_same(h, m); m++) {
			c->hl_table[c->hl_count++] = (hl_assign){m->node, (uint32_t)(g + 1)};
			if (m != h && leader) ((file_state *)m->node->user)->leader = leader;
		}
	}
	c->hardlink_extra = (uint32_t)(c->hl_count - ngroups);
	qsort(c->hl_table, c->hl_count, sizeof(*c->hl_table), hl_node_cmp);
	free(firsts);
	return 0;
}

/* ---- parent reuse ---------------------------------------------------------- */

/* The next item of the parent's inodes record, which must be of kind. */
static const inode_item *next_item(parent_cursor *pc, uint8_t kind)
{
	if (!pc->ok) return NULL;
	if (pc->pos < pc->l->n && pc->l->v[pc->pos].kind == kind) return &pc->l->v[pc->pos++];
	pc->ok = 0;
	return NULL;
}

/* Unchanged since the parent: inode number and ctime (p, the parent's
 * prior node, has them), size and mtime (its tree entry e). */
static int same_file(const walk_node *n, const walk_node *p, const tree_entry *e)
{
	return e->type == TREE_REG && p->ino != 0 && p->ino == n->ino && e->size == n->size &&
	       e->mtime_sec == n->mtime_sec && e->mtime_nsec == n->mtime_nsec && p->ctime_sec == n->ctime_sec &&
	       p->ctime_nsec == n->ctime_nsec;
}

/* 1 when every chunk is usable (present, not marked by gc): the take then
 * references them all already. */
static int chunks_present(take_ctx *c, const tree_entry *e)
{
	return writer_ref_chunks(c->writer, e->chunks, e->nchunks);
}

/* fs gets content captured before (copies of the lists): not read again. */
static int reuse_content(file_state *fs, uint64_t size, const tree_chunk *chunks, uint32_t nchunks,
                         const tree_extent *extents, uint32_t nextents)
{
	fs->size = size;
	if (nchunks && !(fs->chunks = malloc(nchunks * sizeof(tree_chunk)))) return ERR_OOM();
	if (nchunks) memcpy(fs->chunks, chunks, nchunks * sizeof(tree_chunk));
	fs->nchunks = fs->cap = nchunks;
	if (nextents && !(fs->extents = malloc(nextents * sizeof(tree_extent)))) return ERR_OOM();
	if (nextents) memcpy(fs->extents, extents, nextents * sizeof(tree_extent));
	fs->nextents = nextents;
	fs->reused = fs->captured = 1;
	return 0;
}

/* repo_walk_trees' visit for load_prior_trees: the parent's tree, kept at
 * its place in the walk (the place v->tree_at gives its id). */
static int keep_prior_tree(void *payload, uint32_t seq, const oid *id, tree *t, const uint8_t *plain,
                           size_t len)
{
	(void)id;
	(void)plain;
	(void)len;
	parent_view *v = payload;
	if (seq >= v->cap_trees) {
		size_t cap = v->cap_trees ? 2 * v->cap_trees : 256;
		if (cap <= seq) cap = (size_t)seq + 1;
		tree *nt = realloc(v->trees, cap * sizeof(*nt));
		if (!nt) return ERR_OOM();
		memset(nt + v->cap_trees, 0, (cap - v->cap_trees) * sizeof(*nt)); /* places not yet read */
		v->trees = nt;
		v->cap_trees = cap;
	}
	v->trees[seq] = *t;
	memset(t, 0, sizeof(*t));
	if (seq >= v->ntrees) v->ntrees = (size_t)seq + 1;
	return 0;
}

/* A prior node for entry e (a directory or a regular file: nothing else is
 * ever found unchanged). Only a regular file with an inode number can be,
 * so only those carry xattrs, and only when the walk may take them. */
static int prior_node(const parent_view *v, walk_node *dir, const tree_entry *e, const inode_item *it,
                      const struct stat *root, walk_node **out)
{
	walk_node *n = *out = walk_node_new(e->name, e->name_len, dir);
	if (!n) return ERR_OOM();
	n->type = e->type;
	n->user = (void *)e;
	dir->kids[dir->nkids++] = n;
	if (e->type != TREE_REG) return 0;
	n->ino = it ? it->value : e->ino;
	n->ctime_sec = it ? it->ctime_sec : e->ctime_sec;
	n->ctime_nsec = it ? it->ctime_nsec : e->ctime_nsec;
	n->dev_major = major(root->st_dev); /* the walk's entries are all on the root's filesystem */
	n->dev_minor = minor(root->st_dev);
	if (!n->ino || !e->nxattrs || (!v->start.tv_sec && !v->start.tv_nsec)) return 0;
	if (!(n->xattrs = walk_alloc(n, e->nxattrs * sizeof(*n->xattrs)))) return ERR_OOM();
	int rc = 0;
	for (uint32_t i = 0; i < e->nxattrs && rc == 0; i++)
		rc = walk_xattr_add(n, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].value_len);
	return rc;
}

/* Every tree of the parent into v->trees and v->tree_at (repo_walk_trees:
 * level by level, in batches). */
static int load_prior_trees(take_ctx *c, parent_view *v)
{
	int rc = index_new(&v->tree_at);
	tree_walk w = {keep_prior_tree, NULL, v, v->tree_at, 0};
	if (rc == 0) rc = repo_walk_trees(c->repo, &v->root, &w);
	return rc;
}

/* A directory of the parent being loaded: its tree, the next entry, and
 * where its items in the inodes record end (has_end: it had an item). */
typedef struct prior_frame {
	walk_node *dir;
	tree t;
	size_t i, end;
	int has_end;
} prior_frame;

typedef struct prior_stack {
	prior_frame *f;
	size_t n, cap;
} prior_stack;

/* Push the prior's directory dir, the parent's tree id. */
static int prior_enter(parent_view *v, prior_stack *st, walk_node *dir, const oid *id, int has_end, size_t end)
{
	const index_entry *at = index_key_get(v->tree_at, id->b, OID_LEN);
	if (!at || at->offset >= v->ntrees) {
		char hex[OID_HEX_LEN + 1];
		oid_hex(hex, id);
		return error_set(CAIRN_EIO, "tree %s: internal error: not among the parent's trees read", hex);
	}
	const tree t = v->trees[at->offset]; /* the array no longer moves */
	if (t.n && !(dir->kids = walk_alloc(dir, t.n * sizeof(*dir->kids)))) return ERR_OOM();
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 64;
		prior_frame *f = realloc(st->f, cap * sizeof(*f));
		if (!f) return ERR_OOM();
		st->f = f;
		st->cap = cap;
	}
	st->f[st->n++] = (prior_frame){dir, t, 0, end, has_end};
	return 0;
}

/* The prior's directory dir from the parent's tree id, going through the
 * parent's entries in order, as its inodes record does. Depth first with a
 * heap stack: any depth costs memory, not C stack. */
static int load_prior_dir(parent_view *v, walk_node *dir, const oid *id, parent_cursor *pc,
                          const struct stat *root)
{
	prior_stack st = {NULL, 0, 0};
	int rc = prior_enter(v, &st, dir, id, 0, 0);
	while (rc == 0 && st.n > 0) {
		prior_frame *f = &st.f[st.n - 1];
		if (f->i == f->t.n) {
			if (f->has_end && pc->pos != f->end) pc->ok = 0;
			st.n--;
			continue;
		}
		const tree_entry *e = &f->t.entries[f->i++];
		walk_node *k;
		const inode_item *it = e->type == TREE_DIR ? next_item(pc, INODE_DIR)
		                       : e->type == TREE_REG ? next_item(pc, INODE_REG)
		                                             : NULL; /* only those two have items */
		if (e->type != TREE_DIR && e->type != TREE_REG) continue;
		if ((rc = prior_node(v, f->dir, e, it, root, &k)) < 0) break;
		if (e->type == TREE_DIR) /* inodes_read checked that its items fit */
			rc = prior_enter(v, &st, k, &e->subtree, it != NULL, it ? pc->pos + it->value : 0);
	}
	free(st.f);
	return rc;
}

/* Builds v->prior from v->root and v->inodes (freed then); root_path names
 * the root in messages. */
static int load_prior(take_ctx *c, parent_view *v, const char *root_path)
{
	struct stat root;
	if (fstat(c->rootfd, &root) < 0) return error_errno(CAIRN_EIO, errno, "root %s: stat", root_path);
	if (!(v->prior = walk_node_new("", 0, NULL))) return ERR_OOM();
	v->prior->type = TREE_DIR;
	parent_cursor pc = {&v->inodes, 0, v->inodes.n > 0};
	int rc = load_prior_trees(c, v);
	if (rc == 0) rc = load_prior_dir(v, v->prior, &v->root, &pc, &root);
	inodes_free(&v->inodes);
	if (rc < 0) error_prefix("parent");
	return rc;
}

static void parent_view_free(parent_view *v)
{
	walk_free(v->prior);
	v->prior = NULL;
	for (size_t i = 0; i < v->ntrees; i++) tree_free(&v->trees[i]);
	free(v->trees);
	v->trees = NULL;
	index_free(v->tree_at);
	v->tree_at = NULL;
	v->ntrees = v->cap_trees = 0;
	inodes_free(&v->inodes);
}

/* A directory of this take walked beside its namesake in another walk
 * (the parent's, the pre-copy's): the next kid, and where the other's
 * search goes on. */
typedef struct pair_frame {
	walk_node *dir;
	const walk_node *other;
	size_t i, at;
} pair_frame;

typedef struct pair_walk {
	pair_frame *f;
	size_t n, cap;
} pair_walk;

static int pair_enter(pair_walk *pw, walk_node *dir, const walk_node *other)
{
	if (pw->n == pw->cap) {
		size_t cap = pw->cap ? pw->cap * 2 : 64;
		pair_frame *f = realloc(pw->f, cap * sizeof(*f));
		if (!f) return ERR_OOM();
		pw->f = f;
		pw->cap = cap;
	}
	pw->f[pw->n++] = (pair_frame){dir, other, 0, 0};
	return 0;
}

/* The next kid k of the walk that has a namesake of its type in the other
 * walk (*other), depth first; NULL at the end. Enter k with pair_enter to
 * go below it. */
static walk_node *pair_next(pair_walk *pw, const walk_node **other)
{
	while (pw->n > 0) {
		pair_frame *f = &pw->f[pw->n - 1];
		if (f->i == f->dir->nkids) {
			pw->n--;
			continue;
		}
		walk_node *k = f->dir->kids[f->i++];
		const walk_node *p = walk_find_kid_from(f->other, &f->at, k->name, k->name_len);
		if (!p || p->type != k->type) continue;
		*other = p;
		return k;
	}
	return NULL;
}

/* Give unchanged files their parent's chunk lists, so they are not read. */
static int reuse_from_parent(take_ctx *c, walk_node *dir, const walk_node *pdir)
{
	pair_walk pw = {NULL, 0, 0};
	int rc = pair_enter(&pw, dir, pdir);
	const walk_node *p;
	for (walk_node *k; rc == 0 && (k = pair_next(&pw, &p));) {
		if (k->type == TREE_DIR && !k->is_mount) {
			rc = pair_enter(&pw, k, p);
		} else if (k->type == TREE_REG && !((file_state *)k->user)->leader) {
			const tree_entry *e = p->user;
			if (same_file(k, p, e) && (rc = chunks_present(c, e)) == 1)
				rc = reuse_content(k->user, e->size, e->chunks, e->nchunks, e->extents, e->nextents);
			else if (rc >= 0) /* read: hardlinked, or not found by the walk's early reads */
				keep_prior_cuts(k->user, k, e->chunks, e->nchunks, e->nextents);
		}
	}
	free(pw.f);
	return rc;
}

/* Content unchanged since the pre-copy captured it: the same inode and
 * ctime, that ctime before the pre-copy started (walk_unchanged_since),
 * and (belt and braces) the same size and mtime. */
static int unchanged_since(const walk_node *k, const walk_node *p, const struct timespec *start)
{
	return walk_unchanged_since(k, p, start) && k->size == p->size && k->mtime_sec == p->mtime_sec &&
	       k->mtime_nsec == p->mtime_nsec;
}

/* Give files the pre-copy captured and that have not changed since its
 * content, so that the frozen capture reads only what changed. */
static int reuse_from_precopy(take_ctx *c, walk_node *dir, const walk_node *pre_dir,
                              const struct timespec *start)
{
	pair_walk pw = {NULL, 0, 0};
	int rc = pair_enter(&pw, dir, pre_dir);
	const walk_node *p;
	for (walk_node *k; rc == 0 && (k = pair_next(&pw, &p));) {
		if (k->type == TREE_DIR) {
			if (!k->is_mount && !p->is_mount) rc = pair_enter(&pw, k, p);
			continue;
		}
		file_state *fs = k->user;
		if (k->type != TREE_REG || fs->leader) continue; /* a follower gets its leader's */
		const file_state *ps = p->user;
		if (ps->leader) ps = ps->leader;
		if (!ps->captured) continue;
		if (ps->size != p->size || !unchanged_since(k, p, start) ||
		    (rc = writer_ref_chunks(c->writer, ps->chunks, ps->nchunks)) != 1) {
			/* changed since the pre-copy (a log written to, say): read
			 * again while frozen, cut where the pre-copy cut it */
			if (rc >= 0) keep_prior_cuts(fs, k, ps->chunks, ps->nchunks, ps->nextents);
			continue;
		}
		rc = reuse_content(fs, ps->size, ps->chunks, ps->nchunks, ps->extents, ps->nextents);
	}
	free(pw.f);
	return rc;
}

/* ---- trees ----------------------------------------------------------------- */

static uint32_t hardlink_of(const take_ctx *c, const walk_node *n)
{
	hl_assign key = {n, 0};
	const hl_assign *found = bsearch(&key, c->hl_table, c->hl_count, sizeof(key), hl_node_cmp);
	return found ? found->group : 0;
}

static void entry_from_node(const take_ctx *c, tree_entry *e, const walk_node *n, tree_xattr *xa)
{
	memset(e, 0, sizeof(*e));
	e->name = n->name;
	e->name_len = n->name_len;
	e->type = n->type;
	e->mode = n->mode;
	e->uid = n->uid;
	e->gid = n->gid;
	e->mtime_sec = n->mtime_sec;
	e->mtime_nsec = n->mtime_nsec;
	/* ctime and ino stay 0: they go to the inodes record (inodes.h) */
	e->rdev_major = n->rdev_major;
	e->rdev_minor = n->rdev_minor;
	e->hardlink = hardlink_of(c, n);
	for (uint32_t i = 0; i < n->nxattrs; i++) {
		xa[i].name = n->xattrs[i].name;
		xa[i].name_len = (uint16_t)strlen(n->xattrs[i].name);
		xa[i].value = n->xattrs[i].value;
		xa[i].value_len = n->xattrs[i].value_len;
	}
	e->nxattrs = n->nxattrs;
	e->xattrs = xa;
	if (n->type == TREE_SYMLINK) {
		e->target = n->target;
		e->target_len = n->target_len;
		e->size = n->target_len;
	}
	if (n->type == TREE_REG) {
		const file_state *fs = n->user;
		if (fs->leader) fs = fs->leader;
		e->size = fs->size;
		e->nextents = fs->nextents;
		e->extents = fs->extents;
		e->nchunks = fs->nchunks;
		e->chunks = fs->chunks;
	}
}

static int put_tree(take_ctx *c, tree_entry *entries, size_t n, oid *out)
{
	size_t added;
	int rc = writer_put_tree_counted(c->writer, entries, n, out, &added, 1);
	c->stored_bytes += added;
	return rc;
}

/* A directory whose tree is being built: its entries (subtree ids filled
 * in as they are built), the next kid, its item in the inodes record. */
typedef struct build_frame {
	walk_node *dir;
	tree_entry *entries;
	tree_xattr *xa;
	size_t i, nx;
	int64_t item;
} build_frame;

static int build_enter(build_frame **st, size_t *n, size_t *cap, walk_node *dir, int64_t item)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		build_frame *f = realloc(*st, ncap * sizeof(*f));
		if (!f) return ERR_OOM();
		*st = f;
		*cap = ncap;
	}
	build_frame *f = &(*st)[(*n)++];
	size_t nx = 0;
	for (size_t i = 0; i < dir->nkids; i++) nx += dir->kids[i]->nxattrs;
	*f = (build_frame){dir, calloc(dir->nkids ? dir->nkids : 1, sizeof(*f->entries)),
	                   calloc(nx ? nx : 1, sizeof(*f->xa)), 0, 0, item};
	return f->entries && f->xa ? 0 : ERR_OOM();
}

/* The trees of dir and below, bottom-up (a tree's id needs its subtrees'),
 * the inodes record in tree order; a heap stack, so that trees of any
 * depth cost memory, not C stack. */
static int build_tree(take_ctx *c, walk_node *dir, oid *out)
{
	build_frame *st = NULL;
	size_t n = 0, cap = 0;
	int rc = build_enter(&st, &n, &cap, dir, -1);
	while (rc == 0 && n > 0) {
		build_frame *f = &st[n - 1];
		if (f->i < f->dir->nkids) {
			walk_node *k = f->dir->kids[f->i];
			entry_from_node(c, &f->entries[f->i++], k, f->xa + f->nx);
			f->nx += k->nxattrs;
			int64_t at = 0;
			if (k->type == TREE_REG) at = inodes_push(&c->inodes, INODE_REG, k->ino, k->ctime_sec, k->ctime_nsec);
			if (k->type == TREE_DIR) at = inodes_push(&c->inodes, INODE_DIR, 0, 0, 0);
			if (at < 0) rc = (int)at;
			else if (k->type == TREE_DIR) rc = build_enter(&st, &n, &cap, k, at);
			continue;
		}
		oid id;
		if ((rc = put_tree(c, f->entries, f->dir->nkids, &id)) < 0) {
			char *path = walk_path(f->dir);
			error_prefix("directory /%s", path ? path : "?");
			free(path);
			break;
		}
		if (f->item >= 0) c->inodes.v[f->item].value = c->inodes.n - (size_t)f->item - 1;
		free(f->entries);
		free(f->xa);
		if (--n > 0) st[n - 1].entries[st[n - 1].i - 1].subtree = id;
		else *out = id;
	}
	while (n > 0) {
		free(st[--n].entries);
		free(st[n].xa);
	}
	free(st);
	return rc;
}

/* The top tree: one entry "root" carrying the captured directory itself. */
static int build_top(take_ctx *c, oid *out)
{
	oid content;
	int rc = build_tree(c, c->root, &content);
	if (rc < 0) return rc;
	tree_xattr *xa = calloc(c->root->nxattrs ? c->root->nxattrs : 1, sizeof(*xa));
	if (!xa) return ERR_OOM();
	tree_entry top;
	entry_from_node(c, &top, c->root, xa);
	top.name = "root";
	top.name_len = 4;
	top.subtree = content;
	rc = put_tree(c, &top, 1, out);
	free(xa);
	return rc;
}

/* Upper mode: the base snapshot's tree with the upper layer applied. */
static void overlay_entry(void *arg, tree_entry *e, const walk_node *n, tree_xattr *xa)
{
	entry_from_node(arg, e, n, xa);
}

static int build_overlay_top(take_ctx *c, const char *base, walk_stats *ws, oid *out)
{
	overlay_counts oc;
	int rc = overlay_build(c->repo, c->writer, c->root, base, overlay_entry, c, out, &oc);
	if (rc < 0) return rc;
	c->stored_bytes += oc.stored_bytes;
	ws->files = oc.files;
	ws->dirs = oc.dirs;
	ws->symlinks = oc.symlinks;
	ws->specials = oc.specials;
	c->hardlink_extra = (uint32_t)oc.hardlinks;
	return 0;
}

/* ---- options, parent, commit ----------------------------------------------- */

/* The snapshot is committed: a failure here costs the next take a read of
 * every file, so it is a notice, not an error. */
static void write_inodes(take_ctx *c, const cairn_take_options *o, const char *sid_hex)
{
	if (inodes_write(c->repo, sid_hex, &c->inodes) == 0) return;
	char msg[1200];
	snprintf(msg, sizeof(msg), "snapshot %s saved without its inodes record (%s): the next take reads every file",
	         sid_hex, cairn_error_last());
	error_clear();
	notice(o, msg);
}

static int check_options(const cairn_take_options *o)
{
	if (!o || o->version != CAIRN_TAKE_OPTIONS_VERSION)
		return error_set(CAIRN_EUSAGE, "take: missing or unsupported options");
	if (!o->upper != !o->base) return error_set(CAIRN_EUSAGE, "take: --upper and --base go together");
	if (!o->upper && (!o->root || !*o->root)) return error_set(CAIRN_EUSAGE, "take: --root is required");
	if (!o->dry_run && (!o->name || !*o->name)) return error_set(CAIRN_EUSAGE, "take: --name is required");
	if (o->name && strlen(o->name) > MAX_STR_LEN) return error_set(CAIRN_EUSAGE, "take: name too long");
	if (o->user && user_name_check(o->user) < 0) return CAIRN_EUSAGE;
	for (size_t i = 0; i < o->nlabels; i++) {
		const char *eq = strchr(o->labels[i], '=');
		if (!eq || eq == o->labels[i] || strlen(o->labels[i]) > MAX_STR_LEN)
			return error_set(CAIRN_EUSAGE, "label %s: must be KEY=VALUE", o->labels[i]);
	}
	for (size_t i = 0; i < o->nexcludes; i++)
		if (o->excludes[i][0] != '/')
			return error_set(CAIRN_EUSAGE, "exclude %s: must be an absolute path inside the root",
			                 o->excludes[i]);
	return 0;
}

/* parent: the user's latest snapshot of root_path (or --parent); kin: the
 * user's latest snapshot of any root, for a take without a parent (a new
 * instance restored from a snapshot): its refs give known stored sizes
 * and the base of this take's refs delta. */
static int find_parent(cairn_repo *repo, const cairn_take_options *o, const char *user,
                       const char *root_path, char parent[OID_HEX_LEN + 1], char kin[OID_HEX_LEN + 1])
{
	parent[0] = kin[0] = 0;
	if (o->no_parent) return 0;
	if (o->parent) return cairn_snapshot_resolve(parent, repo, o->parent, o->user);
	cairn_snapshot_list *l;
	int rc = cairn_snapshot_list_load(&l, repo, user);
	if (rc < 0) return rc;
	for (size_t i = cairn_snapshot_list_count(l); i-- > 0;) {
		const cairn_snapshot_info *s = cairn_snapshot_list_get(l, i);
		if (!kin[0]) memcpy(kin, s->id, OID_HEX_LEN + 1);
		if (strcmp(s->root_path, root_path) == 0) {
			memcpy(parent, s->id, OID_HEX_LEN + 1);
			break;
		}
	}
	cairn_snapshot_list_free(l);
	return 0;
}

static void emit_progress(const cairn_take_options *o, take_ctx *c, uint64_t total_files,
                          uint64_t total_bytes)
{
	if (!o->event_cb) return;
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CAIRN_EVENT_PROGRESS;
	ev.files = c->files_done + c->reused;
	ev.bytes = c->bytes;
	ev.new_bytes = c->new_bytes;
	ev.stored_bytes = c->stored_bytes;
	ev.total_files = total_files;
	ev.total_bytes = total_bytes;
	ev.phase = c->precopy ? "precopy" : NULL;
	o->event_cb(&ev, o->event_payload);
}

static void ctx_init(take_ctx *c, cairn_repo *repo, int rootfd, snap_writer *w)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->jobs_lock, NULL);
	pthread_cond_init(&c->jobs_cv, NULL);
	pthread_condattr_t monotonic;
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&c->done_cv, &monotonic);
	pthread_condattr_destroy(&monotonic);
	c->repo = repo;
	c->rootfd = rootfd;
	c->writer = w;
	c->no_prior_cuts = repo->settings.no_prior_cuts;
}

/* What a capture holds (the walk, the file states); not the writer or rootfd. */
static void ctx_free(take_ctx *c)
{
	for (size_t i = 0; i < c->nstates; i++) {
		free(c->states[i].chunks);
		free(c->states[i].extents);
		free(c->states[i].was);
	}
	free(c->states);
	for (size_t i = 0; i < c->nearly; i++) {
		free(c->early[i]->chunks);
		free(c->early[i]->extents);
		free(c->early[i]->was);
		free(c->early[i]);
	}
	free(c->early);
	c->early = NULL;
	c->nearly = c->cap_early = c->early_taken = 0;
	free(c->todo);
	free(c->hl_table);
	inodes_free(&c->inodes);
	walk_free(c->root);
	c->states = NULL;
	c->nstates = 0;
	c->todo = NULL;
	c->hl_table = NULL;
	c->root = NULL;
}

/* The parent snapshot: its user's refs give the writer stored sizes
 * without index lookups; view (unless NULL) gets its content tree's id and
 * its inodes record. */
static int load_parent(take_ctx *c, const char *parent, parent_view *view)
{
	snapshot_manifest pm;
	int rc = repo_load_snapshot(c->repo, parent, &pm);
	if (rc < 0) return rc;
	writer_parent(c->writer, pm.user, parent);
	tree top = {0};
	if (view) rc = repo_load_tree(c->repo, &pm.tree, &top);
	if (view && rc == 0 && (top.n != 1 || top.entries[0].type != TREE_DIR))
		rc = error_set(CAIRN_ECORRUPT, "snapshot %s: bad top tree", parent);
	if (view && rc == 0) {
		view->root = top.entries[0].subtree;
		/* duration_ms runs from the start to the commit; a second more for clock steps */
		int64_t start = pm.time_ns - (int64_t)pm.duration_ms * 1000000 - 1000000000;
		view->start.tv_sec = start > 0 ? start / 1000000000 : 0;
		view->start.tv_nsec = start > 0 ? start % 1000000000 : 0;
		if (inodes_read(c->repo, parent, &view->inodes) < 0)
			error_clear(); /* none or damaged: only old trees' inode numbers are compared */
	}
	if (top.mem) tree_free(&top);
	snapshot_manifest_free(&pm);
	if (rc < 0) error_prefix("parent");
	return rc;
}

/* A restore record of the root (restored.h): the view is then its snapshot's
 * tree with the inode numbers and ctimes the restore gave. 1 when it is
 * used, 0 when there is none, -1 when there is one but it is of no use
 * (damaged, or its snapshot is gone): a notice, the take reads every file. */
static int use_restore_record(take_ctx *c, const cairn_take_options *o, parent_view *view)
{
	oid snap;
	inode_list rec;
	char hex[OID_HEX_LEN + 1];
	int rc = restored_get(c->repo->settings.state_dir, c->rootfd, &snap, &rec);
	if (rc == CAIRN_ENOTFOUND) {
		error_clear();
		return 0;
	}
	if (rc == 0) {
		hex_encode(hex, snap.b, OID_LEN);
		rc = load_parent(c, hex, view);
	}
	if (rc == 0) {
		inodes_free(&view->inodes);
		view->inodes = rec;
		/* a restore may have left out xattrs it could not set (not root):
		 * the restored files' xattrs are read, not taken from the trees */
		view->start.tv_sec = view->start.tv_nsec = 0;
		return 1;
	}
	inodes_free(&rec);
	char msg[1024];
	snprintf(msg, sizeof(msg), "restore record not used (%s): every file is read", cairn_error_last());
	notice(o, msg);
	error_clear();
	return -1;
}

/* Upper mode without a parent: the unchanged part of the snapshot is the
 * base's, so its refs record gives the stored sizes of nearly every chunk
 * referenced (no index lookup for them). */
static int base_refs(take_ctx *c, const char *base)
{
	return load_parent(c, base, NULL);
}

/* Let the workers past the walk: todo is complete (or the take failed). */
static void walk_finished(take_ctx *c)
{
	pthread_mutex_lock(&c->jobs_lock);
	c->walk_done = 1;
	pthread_cond_broadcast(&c->jobs_cv);
	pthread_mutex_unlock(&c->jobs_lock);
}

/* The walk found regular file n (walk_options.on_file): a large one with
 * one link and no unchanged namesake in the parent is read at once, by a
 * worker, while the walk goes on (collect_nodes makes its state the
 * leader of its entry's). n NULL: the walk failed; stop reading its nodes. */
static void early_file(void *payload, walk_node *n, const walk_node *prior)
{
	take_ctx *c = payload;
	if (!n) {
		fail(c, CAIRN_EIO); /* the walk's error: read_file stops at its next chunk */
		walk_finished(c);
		pthread_mutex_lock(&c->jobs_lock);
		while (c->early_busy) pthread_cond_wait(&c->jobs_cv, &c->jobs_lock);
		pthread_mutex_unlock(&c->jobs_lock);
		return;
	}
	if (n->size <= SMALL_FILE_MAX || n->nlink != 1) return; /* small: batched after the walk */
	if (prior && prior->type == TREE_REG && same_file(n, prior, prior->user)) return; /* reused */
	file_state *fs = calloc(1, sizeof(*fs));
	if (!fs) return; /* read after the walk instead */
	fs->node = n;
	const tree_entry *e = prior && prior->type == TREE_REG ? prior->user : NULL;
	if (e) keep_prior_cuts(fs, n, e->chunks, e->nchunks, e->nextents);
	pthread_mutex_lock(&c->jobs_lock);
	if (c->nearly == c->cap_early) {
		size_t cap = c->cap_early ? c->cap_early * 2 : 64;
		file_state **e = realloc(c->early, cap * sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&c->jobs_lock);
			free(fs);
			return;
		}
		c->early = e;
		c->cap_early = cap;
	}
	c->early[c->nearly++] = fs;
	n->user = fs;
	pthread_cond_signal(&c->jobs_cv);
	pthread_mutex_unlock(&c->jobs_lock);
}

/* ---- the frozen walk on two cores ------------------------------------------ */

/* Entries in n's subtree, n included. */
static size_t subtree_size(const walk_node *n) { return count_nodes((walk_node *)n, 0); }

#define SPLIT_PARTS 8       /* directories the second thread walks, at most */
#define SPLIT_FRONTIER 1024 /* candidates looked at */

typedef struct split_cand {
	const walk_node *dir;
	size_t size;
} split_cand;

/* Add dir's subdirectories (not mount points) to the candidates. */
static void add_candidates(split_cand *f, size_t *n, const walk_node *dir)
{
	for (size_t i = 0; i < dir->nkids && *n < SPLIT_FRONTIER; i++) {
		const walk_node *k = dir->kids[i];
		if (k->type == TREE_DIR && !k->is_mount) f[(*n)++] = (split_cand){k, subtree_size(k)};
	}
}

/* Directories of the pre-copy's walk holding together about half of its
 * entries, for the frozen walk's second thread: the largest candidates
 * that fit, a too large one replaced by its subdirectories. Their count,
 * 0 when they would not hold an eighth. */
static size_t split_parts(const walk_node *root, const walk_node **parts)
{
	split_cand *f = malloc(SPLIT_FRONTIER * sizeof(*f));
	if (!f) return 0;
	size_t total = subtree_size(root), want = total / 2, slack = total / 16, got = 0, n = 0, nf = 0;
	add_candidates(f, &nf, root);
	while (nf > 0 && n < SPLIT_PARTS && got + slack < want) {
		size_t big = 0;
		for (size_t i = 1; i < nf; i++)
			if (f[i].size > f[big].size) big = i;
		split_cand c = f[big];
		f[big] = f[--nf];
		if (got + c.size <= want + slack) {
			parts[n++] = c.dir;
			got += c.size;
		} else {
			add_candidates(f, &nf, c.dir);
		}
	}
	free(f);
	return got >= total / 8 ? n : 0;
}

typedef struct part_walk {
	const walk_node *pre[SPLIT_PARTS]; /* the parts in the pre-copy's walk */
	walk_node *root[SPLIT_PARTS];      /* and walked now */
	walk_stats st[SPLIT_PARTS];
	size_t n;
	const char *root_path;
	walk_options wo;
	int rc;
} part_walk;

static void *walk_parts(void *arg)
{
	part_walk *p = arg;
	for (size_t i = 0; i < p->n && p->rc == 0; i++) {
		char *rel = walk_path(p->pre[i]), path[PATH_MAX];
		if (!rel || snprintf(path, sizeof(path), "%s/%s", p->root_path, rel) >= (int)sizeof(path)) {
			free(rel);
			p->rc = -1;
			break;
		}
		free(rel);
		p->wo.prior = p->pre[i];
		p->rc = walk_run(&p->root[i], path, &p->wo, &p->st[i]);
	}
	return NULL;
}

/* Put part i's walk in the main one at its place: 0, or -1 when the two
 * do not fit together (its parent gone, the part on another mount). */
static int graft_part(walk_node *root, walk_stats *ws, part_walk *p, size_t i)
{
	const walk_node *pre = p->pre[i], *chain[PATH_MAX / 2];
	const walk_stats *st = &p->st[i];
	size_t depth = 0;
	for (const walk_node *n = pre->parent; n && n->parent && depth < PATH_MAX / 2; n = n->parent)
		chain[depth++] = n;
	walk_node *dir = root;
	while (dir && depth > 0) {
		const walk_node *want = chain[--depth];
		dir = walk_find_kid(dir, want->name, want->name_len);
		if (dir && (dir->type != TREE_DIR || dir->is_mount)) dir = NULL;
	}
	if (!dir || walk_find_kid(dir, pre->name, pre->name_len)) return -1;
	if (ws->root_mnt != st->root_mnt || root->dev_major != p->root[i]->dev_major ||
	    root->dev_minor != p->root[i]->dev_minor)
		return -1;
	if (walk_graft(dir, p->root[i], pre->name, pre->name_len) < 0) {
		error_clear();
		return -1;
	}
	p->root[i] = NULL; /* in root's tree now */
	ws->files += st->files;
	ws->dirs += st->dirs;
	ws->symlinks += st->symlinks;
	ws->specials += st->specials;
	ws->sockets_skipped += st->sockets_skipped;
	ws->mounts_skipped += st->mounts_skipped;
	ws->excluded += st->excluded - 1; /* the part itself was excluded from the main walk */
	ws->bytes += st->bytes;
	ws->ring_statx += st->ring_statx;
	return 0;
}

/* The frozen walk, which the pause waits for: with two workers or more, a
 * second thread walks directories holding about half of the pre-copy's
 * entries while this one walks the rest. Anything unexpected (a part
 * gone, or no longer a directory) and the walk is done again whole. */
static int frozen_walk(take_ctx *c, const cairn_take_options *o, const char *root_path, const walk_options *wo,
                       walk_stats *ws, const walk_node *pre_root)
{
	part_walk p;
	memset(&p, 0, sizeof(p));
	if (c->nworkers > 1 && !o->nexcludes && !o->upper) p.n = split_parts(pre_root, p.pre);
	char *excl[SPLIT_PARTS] = {NULL};
	size_t nexcl = 0;
	for (; nexcl < p.n; nexcl++) {
		char *rel = walk_path(p.pre[nexcl]);
		if (!rel || !(excl[nexcl] = malloc(strlen(rel) + 2))) {
			free(rel);
			break;
		}
		sprintf(excl[nexcl], "/%s", rel);
		free(rel);
	}
	pthread_t thread;
	p.root_path = root_path;
	p.wo = (walk_options){.no_uring = wo->no_uring, .uring_always = wo->uring_always, .no_xattrat = wo->no_xattrat,
	                      .prior_start = wo->prior_start, .subtree = 1};
	int rc = 0, whole = !(p.n > 0 && nexcl == p.n && pthread_create(&thread, NULL, walk_parts, &p) == 0);
	if (!whole) {
		walk_options main_wo = *wo;
		main_wo.excludes = (const char *const *)excl;
		main_wo.nexcludes = nexcl;
		rc = walk_run(&c->root, root_path, &main_wo, ws);
		pthread_join(thread, NULL);
		for (size_t i = 0; rc == 0 && !whole && i < p.n; i++)
			whole = p.rc < 0 || graft_part(c->root, ws, &p, i) < 0;
		if (whole) { /* the parts do not fit: done again whole */
			walk_free(c->root);
			c->root = NULL;
		}
	}
	if (whole) rc = walk_run(&c->root, root_path, wo, ws);
	for (size_t i = 0; i < SPLIT_PARTS; i++) {
		walk_free(p.root[i]);
		free(excl[i]);
	}
	return rc;
}

/* One capture of root_path: walk (the workers reading large files as it
 * finds them), hardlink groups, reuse (from pre, a pre-copy of the same
 * root, which is freed then; else from the parent's tree, freed while the
 * workers read), then read what is left on every core, with progress
 * events. fz (may be NULL) is checked all along: a
 * frozen capture stops when the freeze is aborted (signal, --max-pause). */
static int capture(take_ctx *c, const cairn_take_options *o, const char *root_path,
                   parent_view *parent, take_ctx *pre, freezer *fz, walk_stats *ws)
{
	int rc;
	collect col = {0};
	pthread_t *threads = NULL;
	int nthreads = 0;
	const struct repo_settings *rs = &c->repo->settings;
	walk_options wo = {.excludes = o->excludes, .nexcludes = o->nexcludes, .no_uring = o->no_uring || rs->no_uring,
	                   .uring_always = rs->test_uring_always, .no_xattrat = rs->test_no_xattrat};
	if (pre) { /* unchanged entries keep the pre-copy's xattrs and targets: no syscalls */
		wo.prior = pre->root;
		wo.prior_start = pre->start;
	} else if (parent) { /* or the parent's xattrs */
		wo.prior = parent->prior;
		wo.prior_start = parent->start;
	}

	/* Workers start before the walk: large files are read as it finds
	 * them (not while frozen after a pre-copy, where little is read, nor
	 * in upper mode, whose entries the overlay rules still change) */
	int want = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (want < 1) want = 1;
	if (!(threads = calloc((size_t)want, sizeof(*threads)))) {
		rc = ERR_OOM();
		goto done;
	}
	nthreads = want;
	c->workers_left = nthreads;
	c->readers = c->nworkers = nthreads;
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&threads[i], NULL, worker, c) != 0) {
			c->workers_left -= nthreads - i;
			pthread_mutex_lock(&c->jobs_lock);
			c->readers -= nthreads - i;
			pthread_cond_broadcast(&c->jobs_cv);
			pthread_mutex_unlock(&c->jobs_lock);
			fail(c, error_set(CAIRN_EIO, "take: cannot start worker threads"));
			nthreads = i;
			break;
		}
	if (!pre && !o->upper && !failed(c)) {
		wo.on_file = early_file;
		wo.payload = c;
	}

	rc = pre ? frozen_walk(c, o, root_path, &wo, ws, pre->root) : walk_run(&c->root, root_path, &wo, ws);
	if (rc < 0) goto done;
	if ((rc = freeze_check(fz)) < 0) goto done;
	if (o->upper && (rc = overlay_prepare(c->root)) < 0) goto done;
	c->use_uring = ws->used_uring;
	if (ws->notice[0] && !c->precopy) notice(o, ws->notice);

	/* every regular file gets a state; hardlinked ones share their leader's */
	c->nstates = count_regular(c->root);
	c->states = calloc(c->nstates ? c->nstates : 1, sizeof(*c->states));
	c->todo = calloc(c->nstates ? c->nstates : 1, sizeof(*c->todo));
	if (!c->states || !c->todo) {
		rc = ERR_OOM();
		goto done;
	}
	col.states = c->states;
	size_t order = 0;
	collect_nodes(&col, c->root, &order);
	if ((rc = col.rc) < 0) goto done;
	if ((rc = assign_hardlinks(c, &col)) < 0) goto done;

	if (pre) {
		rc = reuse_from_precopy(c, c->root, pre->root, &pre->start);
		ctx_free(pre);
	} else if (parent) {
		if ((rc = reuse_from_parent(c, c->root, parent->prior)) < 0) error_prefix("parent");
	}
	if (rc < 0) goto done;
	for (size_t i = 0; i < c->nstates; i++) {
		file_state *fs = &c->states[i];
		if (fs->leader) continue;
		if (fs->reused) {
			c->reused++;
			for (uint32_t k = 0; k < fs->nchunks; k++) c->bytes += fs->chunks[k].size; /* referenced at reuse */
		} else {
			c->todo[c->ntodo++] = fs;
		}
	}

	walk_finished(c);
	/* Reused files have copies of their chunk lists: the parent is of no
	 * more use, and freeing it costs time (memory touched once more) that
	 * this thread has while the workers read. */
	if (parent) parent_view_free(parent);
	/* progress 10 times a second, the freeze checked every 5 ms; woken
	 * at once by the last worker, since a frozen instance waits on us */
	for (int64_t last = 0; c->workers_left > 0;) {
		int64_t now = now_ns(CLOCK_MONOTONIC);
		if (now - last >= 100 * 1000 * 1000) {
			emit_progress(o, c, ws->files, ws->bytes);
			last = now;
		}
		int frc = freeze_check(fz);
		if (frc < 0) fail(c, frc); /* stops the workers */
		now += 5 * 1000 * 1000;
		struct timespec until = {(time_t)(now / 1000000000), (long)(now % 1000000000)};
		pthread_mutex_lock(&c->jobs_lock);
		if (c->workers_left > 0) pthread_cond_timedwait(&c->done_cv, &c->jobs_lock, &until);
		pthread_mutex_unlock(&c->jobs_lock);
	}
	for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
	nthreads = 0;
	if (c->uring_fallback[0] && !c->precopy) notice(o, c->uring_fallback);
	if ((rc = c->rc) < 0) error_set(rc, "%s", c->message);
done:
	if (nthreads) { /* failed before the workers' end: stop and join them */
		fail(c, rc);
		walk_finished(c);
		for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
	}
	free(threads);
	free(col.hl);
	return rc;
}

CAIRN_EXTERN int cairn_take(cairn_take_result *out, cairn_repo *repo, const cairn_take_options *o)
{
	int rc;
	take_ctx c, pre;
	char base[OID_HEX_LEN + 1] = ""; /* upper mode: the base snapshot's id */
	int have_pre = 0;
	uint64_t precopy_ms = 0;
	walk_stats ws;
	char parent[OID_HEX_LEN + 1] = "", kin[OID_HEX_LEN + 1] = "", root_path[PATH_MAX], host[256] = "";
	int64_t t0 = now_ns(CLOCK_MONOTONIC);
	const char *user;
	freezer *fz = NULL; /* --cgroup: frozen from before the (frozen) walk until after the commit */
	parent_view pv = {0};

	memset(&ws, 0, sizeof(ws));
	ctx_init(&c, repo, -1, NULL);
	ctx_init(&pre, repo, -1, NULL);
	if (out) memset(out, 0, sizeof(*out));
	if ((rc = check_options(o)) < 0) goto done;
	if (!o->dry_run) repo_session(repo); /* before the marks and the index are read */
	/* The guardian is a fork: started while this process is small, since
	 * every page it shares is copied (a fault each) when written again */
	if (o->cgroup && (rc = freeze_open(&fz, o, repo->settings.state_dir)) < 0) goto done;
	user = o->user ? o->user : "default";

	if ((rc = live_root_path(o->upper ? o->upper : o->root, root_path)) < 0) goto done;
	if ((rc = find_parent(repo, o, user, root_path, parent, kin)) < 0) goto done;
	/* once, and before any freeze: resolving reads every manifest */
	if (o->upper && (rc = cairn_snapshot_resolve(base, repo, o->base, o->user)) < 0) goto done;
	c.rootfd = open(root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.rootfd < 0) {
		rc = error_errno(errno == ENOTDIR ? CAIRN_EUSAGE : CAIRN_EIO, errno, "root %s", root_path);
		goto done;
	}

	if ((rc = writer_new(&c.writer, repo)) < 0) goto done;
	if ((rc = writer_set_user(c.writer, user, o->dry_run)) < 0) goto done; /* quota from here on */
	int have_record = 0, have_parent = 0;
	if (!o->parent && !o->no_parent && !o->upper && (have_record = use_restore_record(&c, o, &pv)) == 1) {
		have_parent = 1; /* a restore's record says more of this tree than any earlier take of its path */
	} else if (parent[0]) {
		if ((rc = load_parent(&c, parent, &pv)) < 0) goto done;
		have_parent = 1;
	} else if (o->upper) {
		if ((rc = base_refs(&c, base)) < 0) goto done;
	} else if (kin[0] && load_parent(&c, kin, NULL) < 0) {
		error_clear(); /* only a shortcut (forgotten meanwhile?) */
	}
	if (have_parent && (rc = load_prior(&c, &pv, root_path)) < 0) goto done;
	/* a take that cannot commit fails before any work, and before any pause */
	if (!o->dry_run && (rc = gc_session_check(repo)) < 0) goto done;
	if (o->cgroup && !o->no_precopy && !o->dry_run) {
		/* copy while the instance runs; then the frozen capture reads only what changed */
		int64_t p0 = now_ns(CLOCK_MONOTONIC);
		pre.rootfd = c.rootfd;
		pre.writer = c.writer;
		pre.precopy = 1;
		clock_gettime(CLOCK_REALTIME_COARSE, &pre.start);
		walk_stats pws;
		memset(&pws, 0, sizeof(pws));
		rc = capture(&pre, o, root_path, have_parent ? &pv : NULL, NULL, fz, &pws);
		parent_view_free(&pv); /* the frozen capture compares with the pre-copy */
		have_parent = 0;
		/* room for its trees (and what changes meanwhile) */
		if (rc == 0) rc = writer_restart_refs(c.writer, pws.dirs + 1024);
		if (rc < 0) goto done;
		have_pre = 1;
		c.new_bytes = pre.new_bytes; /* what it stored is this take's */
		c.stored_bytes = pre.stored_bytes;
		precopy_ms = (uint64_t)(now_ns(CLOCK_MONOTONIC) - p0) / 1000000;
	}

	if (o->cgroup && (rc = freeze_now(fz, o)) < 0) goto done;
	rc = capture(&c, o, root_path, have_parent ? &pv : NULL, have_pre ? &pre : NULL, fz, &ws);
	if (rc < 0) goto done;

	oid top_id;
	if ((rc = o->upper ? build_overlay_top(&c, base, &ws, &top_id) : build_top(&c, &top_id)) < 0) goto done;
	emit_progress(o, &c, ws.files, ws.bytes);

	snapshot_manifest m;
	memset(&m, 0, sizeof(m));
	m.tree = top_id;
	if (parent[0]) hex_decode(m.parent.b, OID_LEN, parent);
	m.time_ns = now_ns(CLOCK_REALTIME);
	gethostname(host, sizeof(host) - 1);
	m.user = (char *)user;
	m.name = (char *)o->name;
	m.root_path = root_path;
	m.hostname = host;
	m.files = ws.files;
	m.dirs = ws.dirs;
	m.symlinks = ws.symlinks;
	m.specials = ws.specials;
	m.hardlinks = c.hardlink_extra;
	m.sockets_skipped = ws.sockets_skipped;
	m.bytes = c.bytes;
	m.new_bytes = c.new_bytes;
	m.stored_bytes = c.stored_bytes;
	if ((rc = freeze_commit_begin(fz)) < 0) goto done;
	m.pause_ms = freeze_pause_ms(fz); /* up to the commit; the result's runs to the thaw */
	m.duration_ms = (uint64_t)(now_ns(CLOCK_MONOTONIC) - t0) / 1000000;
	char **keys = calloc(o->nlabels + 1, sizeof(char *)), **values = calloc(o->nlabels + 1, sizeof(char *));
	if (!keys || !values) {
		free(keys);
		free(values);
		rc = ERR_OOM();
		goto done;
	}
	for (size_t i = 0; i < o->nlabels; i++) {
		const char *eq = strchr(o->labels[i], '=');
		keys[i] = strndup(o->labels[i], (size_t)(eq - o->labels[i]));
		values[i] = strdup(eq + 1);
	}
	m.nlabels = o->nlabels;
	m.label_keys = keys;
	m.label_values = values;
	char sid_hex[OID_HEX_LEN + 1] = "";
	rc = o->dry_run ? 0 : writer_commit(c.writer, &m, sid_hex);
	for (size_t i = 0; i < o->nlabels; i++) {
		free(keys[i]);
		free(values[i]);
	}
	free(keys);
	free(values);
	if (rc < 0) goto done;
	if (o->event_cb && !o->dry_run) {
		cairn_event ev = {.type = CAIRN_EVENT_STATE, .state = "saved", .snapshot = sid_hex};
		o->event_cb(&ev, o->event_payload);
	}
	if ((rc = freeze_end(fz, o, sid_hex)) < 0) goto done;
	if (!o->dry_run && !o->upper) write_inodes(&c, o, sid_hex); /* after the thaw: not in the pause */
	if (!o->dry_run && have_record) restored_drop(c.repo->settings.state_dir, c.rootfd); /* this snapshot is the next take's parent */

	if (out) {
		memcpy(out->snapshot, sid_hex, sizeof(out->snapshot));
		out->files = ws.files;
		out->dirs = ws.dirs;
		out->bytes = c.bytes;
		out->new_bytes = c.new_bytes;
		out->stored_bytes = c.stored_bytes;
		out->reused_files = c.reused;
		out->prior_cut_chunks = c.prior_cuts + pre.prior_cuts;
		out->sockets_skipped = ws.sockets_skipped;
		out->mounts_skipped = ws.mounts_skipped;
		out->excluded = ws.excluded;
		out->pause_ms = freeze_pause_ms(fz);
		out->duration_ms = (uint64_t)(now_ns(CLOCK_MONOTONIC) - t0) / 1000000; /* through the thaw */
		out->used_uring = ws.used_uring && !c.uring_fallback[0];
		out->charged_bytes = writer_charged(c.writer);
		out->precopy_ms = precopy_ms;
	}
done:
	freeze_free(fz); /* first: a failed take thaws at once */
	parent_view_free(&pv);
	ctx_free(&pre);
	ctx_free(&c);
	writer_free(c.writer);
	if (c.rootfd >= 0) close(c.rootfd);
	pthread_mutex_destroy(&c.lock);
	pthread_mutex_destroy(&pre.lock);
	pthread_mutex_destroy(&c.jobs_lock);
	pthread_mutex_destroy(&pre.jobs_lock);
	pthread_cond_destroy(&c.jobs_cv);
	pthread_cond_destroy(&pre.jobs_cv);
	pthread_cond_destroy(&c.done_cv);
	pthread_cond_destroy(&pre.done_cv);
	return rc;
}
