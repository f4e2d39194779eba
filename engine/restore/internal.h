/* Restore, ls and cat (engine/restore/), internal: reading snapshots back
 * out of the repository.
 *
 * Restore runs in passes so that every byte lands inside the target and every
 * time stamp ends exact:
 *   1. the calling thread walks the trees depth-first, creating directories,
 *      symlinks and special files, and queueing regular files;
 *   2. worker threads create and fill the queued files (concurrently with 1);
 *   3. hardlink members after the first are linked to it;
 *   4. directory metadata is applied bottom-up, after everything inside.
 * Every syscall is relative to a directory fd opened with O_NOFOLLOW, so paths
 * longer than PATH_MAX work and symlinks in the target are never followed.
 * Directories are remembered by index (parent, name), and later passes reach
 * them again through a cursor that keeps only the current chain open.
 *
 * The state a restore shares between its files, and what each file owns:
 *   browse.c   cairn_ls and cairn_cat: a path resolved in a snapshot's trees, listed or its
 *              content written out
 *   restore.c  cairn_restore: the target opened, the passes run, hardlinks (pass 3) and directory
 *              metadata (pass 4)
 *   walk.c     pass 1: the trees walked depth-first, directories, symlinks and special files
 *              created, what is in the way removed
 *   files.c    pass 2: regular files created and filled by the worker threads, small
 *              ones in batches
 *   state.c    the restore's shared state: progress, errors, directories by index, hardlink
 *              groups, the directory cursor
 *   content.c  a file's content as verified chunks, batched by pack range, and a snapshot's top
 *              tree
 * A file uses only those listed below it (no cycles, engine/LAYERS). Large
 * files are written by restore_write.c. */
#ifndef CAIRN_RESTORE_INTERNAL_H
#define CAIRN_RESTORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "buf.h"
#include "cairn.h"
#include "inodes.h"
#include "repo.h"
#include "restore_write.h"
#include "tree.h"

#define PROGRESS_NS 100000000LL /* at most one progress event per 100 ms */
#define QUEUE_CAP 8192          /* queued file jobs */
/* Jobs at the queue's head whose pack ranges are advised to the store
 * (repo_advise_blobs) while the workers restore the ones before: their
 * reads are under way when a worker takes them. A job's advice is its
 * batch's chunks or a file's first run, at most 4 or 8 MiB. */
#define AHEAD_JOBS 2
#define MAX_THREADS 256
#define REMOTE_WORKERS_PER_CPU 2 /* RADOS, S3: the 351 MiB fixture into a tmpfs, 0.57-0.99 s -> 0.50-0.61 s */
#define LOCAL_WORKERS_PER_CPU 2 /* a directory: a worker waits for its O_DIRECT writes and pack reads */
#define ZERO_LEN (64u * 1024u)
/* Directory fds a deep chain may hold open: the walk's (above the one it
 * is in; the rest are reopened with ".." on the way back) and each cursor's
 * of passes 3 and 4, so that restore needs the same few fds at any depth. */
#define WALK_FDS 64
/* Directories with files queued, a worker: enough to keep every worker in
 * a directory of its own; each holds its decoded tree (~200 bytes a file),
 * so a walk further ahead costs memory and gains nothing. */
#define DIRS_AHEAD_PER_WORKER 8
/* Queued jobs a worker looks through for the largest file restored alone
 * or a batch in a directory no other worker is in (take_job). */
#define PICK_SCAN 256
#define CURSOR_FDS 32
/* Bytes written through the page cache (small files) after which the
 * flusher thread writes them out (syncfs) while the workers go on: with
 * a large memory, nothing starts writeback before the final syncfs
 * (dirty_background_ratio), which then wrote them all with the cores
 * idle. */
#define FLUSH_BYTES (64u * 1024u * 1024u)
/* Index blocks kept in memory: a restore looks up each chunk two or three
 * times (advice, read ahead, read), a pread and a 4 KiB check each
 * otherwise. 32 MiB holds the blocks of ~600k chunks. */
#define INDEX_CACHE_BYTES (32u * 1024u * 1024u)
#define REMOVE_FDS 16

typedef int (*emit_fn)(void *ctx, uint64_t off, const uint8_t *p, size_t n);
/* Optional, for content_walk: room for the n bytes at off (*out NULL: none,
 * emit them instead), then commit once they are there. */
typedef struct content_place {
	int (*reserve)(void *ctx, uint64_t off, size_t n, uint8_t **out);
	int (*commit)(void *ctx, size_t n);
} content_place;

/* A directory restored, remembered for the later passes. Index 0 is the target. */
typedef struct rdir {
	uint32_t parent, depth; /* depth: 0 for the target */
	uint16_t name_len;
	char *name;
	uint32_t mode, uid, gid, nxattrs;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	tree_xattr *xattrs; /* one block with the names and values */
} rdir;

/* A directory being restored: its decoded tree and an O_PATH fd, shared by
 * the walk and every queued file job of the directory. Far above the
 * directory being walked, the fd is closed (-1) and the directory known by
 * dev and ino until the walk comes back to it (park_dir, unpark_dir). */
typedef struct dctx {
	atomic_int refs;
	int workers; /* workers creating files in it now, under rstate.mu */
	int fd;
	uint32_t dir;
	dev_t dev;
	ino_t ino;
	tree t;
} dctx;

/* Small files of one directory restored together by one worker: their
 * chunks read in pack order, neighbouring ranges as one read, each
 * decompressed straight into the file's place in one buffer, then the files
 * created and written whole. A batch spreads a directory's files over fewer
 * workers (less contention on the directory's lock) and reads each stretch
 * of a pack once instead of once a file. */
#define BATCH_FILES 64
#define BATCH_BYTES (4u * 1024u * 1024u)
#define BATCH_FILE_MAX RESTORE_DIRECT_MIN /* larger files go alone, through restore_write.c */

typedef struct fbatch {
	uint32_t n;
	uint64_t bytes;
	uint32_t idx[BATCH_FILES];  /* entries of the directory's tree */
	uint32_t item[BATCH_FILES]; /* in rstate.items, UINT32_MAX for none */
} fbatch;

typedef struct fjob {
	dctx *d;
	uint32_t i;
	uint32_t item; /* in rstate.items */
	fbatch *b;     /* a batch of small files instead of entry i; the job owns it */
} fjob;

typedef struct hl_first {
	uint32_t group, dir;
	char *name;
} hl_first;

typedef struct hl_link {
	uint32_t group, dir;
	char *name;
	uint8_t type;
} hl_link;

typedef struct rstate {
	cairn_repo *repo;
	const cairn_restore_options *opts;
	int lenient; /* not root: ownership and privileged xattrs are best effort */
	uid_t euid;  /* who a created file belongs to, unless its directory says otherwise */
	gid_t egid;
	int rootfd;

	pthread_mutex_t mu;
	pthread_cond_t cv_work, cv_space;
	fjob *q;
	size_t qhead, qlen, inflight, live_dirs, max_dirs;
	size_t qadvised; /* jobs at the queue's head whose reads were advised */
	int large_workers, max_large; /* workers on a file restored alone, and at most (take_job) */
	int closed;
	/* the flusher (restore_flusher): bytes written buffered since its last
	 * syncfs began, its wake-up, and whether it is to end */
	uint64_t unflushed;
	pthread_cond_t cv_flush;
	int flush_end;
	atomic_int stop;
	int err;
	char errmsg[1024];

	pthread_mutex_t dirs_mu; /* dirs may move while workers name a path */
	rdir *dirs;
	size_t ndirs, dirs_cap;

	hl_first *hl;
	size_t hl_cap, hl_n;
	hl_link *links;
	size_t nlinks, links_cap;

	/* the restore record (restored.h), in tree order: the walk adds items
	 * (push_item), workers fill in the inode numbers and ctimes of the
	 * files they write, under mu */
	inode_list items;

	restore_write_mode wmode; /* how file data is written (restore_write.h) */
	atomic_uint_fast64_t files, bytes;
	uint64_t dirs_done, symlinks, specials, hardlinks;
	uint64_t total_files, total_bytes;
	int64_t last_progress;
} rstate;

/* One level of a cursor's chain: its directory, and its fd while open or
 * its identity once closed. */
typedef struct clevel {
	int fd;
	uint32_t id;
	dev_t dev;
	ino_t ino;
} clevel;

/* The chain of directories from the target down to one directory, with
 * O_PATH fds open for at most CURSOR_FDS of its deepest levels (lo..n-1),
 * however deep it is. Moving it to another directory reopens only below
 * the common ancestor, climbing to that with ".." when it was closed. */
typedef struct dcursor {
	clevel *l;
	uint32_t *chain;
	size_t n, lo, cap;
} dcursor;

/* content.c: a file's content as verified chunks, batched by pack range, and a
 * snapshot's top tree */
char *restore_short_id(char out[13], const char *id);
int content_check(const tree_entry *e);
int content_walk(cairn_repo *r, const tree_entry *e, emit_fn emit, const content_place *place,
                 void *ctx, atomic_int *stop, buf scratch[2]);
int load_top(cairn_repo *r, const snapshot_manifest *m, const char *snap_id, tree *top);

/* files.c: pass 2: regular files created and filled by the worker threads */
int restore_meta_fd(rstate *st, int fd, uint32_t mode, uint32_t uid, uint32_t gid, int64_t sec,
            uint32_t nsec, uint32_t nxattrs, const tree_xattr *xattrs);
void dctx_release(rstate *st, dctx *d);
void *restore_worker(void *arg);
void *restore_flusher(void *arg);
void restore_enqueue(rstate *st, dctx *d, uint32_t i, uint32_t item, fbatch *b);
void reserve_dir(rstate *st);
void unreserve_dir(rstate *st);

/* state.c: the restore's shared state: progress, errors, directories by index,
 * hardlink groups, the directory cursor */
void restore_progress(rstate *st);
void restore_wait_a_bit(rstate *st, pthread_cond_t *cv);
void restore_record_error(rstate *st, int rc);
int restore_fail_at(rstate *st, int locked, uint32_t dir, const char *name, int rc);
int restore_sys_fail(rstate *st, int locked, uint32_t dir, const char *name, const char *op);
int restore_tolerable(const rstate *st, int err);
int restore_copy_xattrs(const tree_entry *e, tree_xattr **out);
int restore_dir_add(rstate *st, uint32_t parent, const tree_entry *e, uint32_t *idx);
hl_first *hl_find(rstate *st, uint32_t group);
int hl_insert(rstate *st, uint32_t group, uint32_t dir, const char *name);
int link_add(rstate *st, uint32_t group, uint32_t dir, const char *name, uint8_t type);
int restore_open_parent(rstate *st, int childfd, uint32_t dir, dev_t dev, ino_t ino, int *out);
void cursor_free(dcursor *c);
int cursor_open(rstate *st, dcursor *c, uint32_t dir, int *fd);

/* walk.c: pass 1: the trees walked depth-first, directories, symlinks and
 * special files created, what is in the way removed */
int walk_trees(rstate *st, const oid *root_tree, int fresh);

#endif
