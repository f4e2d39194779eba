/* The take pipeline (engine/take/), internal: the state a take shares
 * between its files, and what each file owns:
 *   estimate.c       cairn_estimate: a dry-run take with the user's usage
 *   take.c           the take itself: option checks, the capture (walk, with large files handed to
 *                    the readers as it finds them; reads; trees) and its commit, cairn_take
 *   parallel_walk.c  the frozen walk on two cores: the root split into parts walked by a second
 *                    thread, then grafted
 *   trees.c          tree objects built bottom-up from the walk, and over a base in upper mode
 *   parent.c         the parent: finding it, its trees loaded as the walk's prior, reuse of its
 *                    chunk lists (and the pre-copy's), restore records
 *   nodes.c          the walked tree's files in order, counts, hardlink groups
 *   read.c           reading files on every core: the workers, large files' chunks shared out,
 *                    small files in batches, cuts where the parent's version was cut
 *   ctx.c            a capture's shared state: set up, freed, its first failure, notices
 * A file uses only those listed below it (no cycles, engine/LAYERS).
 * Dedup, compression and packs are the writer's (writer.c). */
#ifndef CAIRN_TAKE_INTERNAL_H
#define CAIRN_TAKE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cairn.h"
#include "inodes.h"
#include "repo.h"
#include "tree.h"
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
	tree_chunk *chunks;
	tree_chunk *was;  /* the chunks of its namesake in the parent (a dense file), or NULL */
	uint32_t nextents, nchunks, cap, nwas; /* the counts together: no padding (a state a file) */
	uint32_t pending; /* its chunks queued for other workers (under jobs_lock) */
	int reused;   /* REUSED_COPY or REUSED_BORROWED: content captured before, not read */
	int captured; /* content complete (read or reused); a pre-copy may skip files */
} file_state;

#define REUSED_COPY 1     /* lists of its own */
#define REUSED_BORROWED 2 /* lists in take_ctx.reuse_mem (streamed: the walk's arenas), not freed with it */
#define NODE_REUSABLE 1   /* walk_node.user_kind: user is a prior_file (keep_reusable) */
#define NODE_REFD 2       /* the same, its chunks already referenced (stream_dir) */
#define NODE_BUILT 3      /* a directory whose tree the walk's stream built: user is a built_dir */
#define NODE_QUEUED 4     /* a first take's directory whose files the workers read: user is a stream_job */

/* A directory built as the walk completed it (stream_dir): its tree, and
 * the inode items of what it holds, all levels, in tree order; in its
 * node's arena, kept until its parent's tree is built. */
typedef struct built_dir {
	oid id;
	size_t nitems;
	inode_item *items;
} built_dir;

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
/* A directory of a first take completed by the walk, its files handed to
 * the workers (stream_first_dir); its tree is built by the capture's
 * thread once they are read and its subdirectories built, then its kids
 * and their states go. */
typedef struct stream_job {
	walk_node *dir;
	file_state *states;  /* its regular files, in kid order */
	file_state **files;  /* the same, for read_batch */
	uint32_t nfiles, taken; /* taken: handed to workers (under jobs_lock) */
	atomic_uint left;   /* files not read and subdirectories not built */
	struct stream_job *next;      /* in the queue, then the done list (under jobs_lock) */
	struct stream_job *all_prev, *all_next; /* every job not built (capture's thread) */
} stream_job;
#define STREAM_AHEAD 8192u /* files handed over and not built before the walk waits */

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
	/* the capture reads every file (no parent, no pre-copy): the workers'
	 * buffers are filled whole, so they get huge pages (read.c) */
	int bulk_read;
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
	struct parent_view *parent; /* compared with while walking (prior_walk_options), or NULL */
	/* Streamed (a take with a parent, not frozen, not upper mode): a
	 * directory whose files are all unchanged since the parent gets its
	 * tree as soon as the walk completes it, and its walk nodes go then
	 * (stream_dir); what is left is built at the end, as before. */
	int stream;
	/* Regular files found unchanged since the parent by the walk
	 * (early_file): a copy of the parent's content (prior_file), in an
	 * arena (this node's), kept until the trees are built */
	walk_node *reuse_mem;
	/* A first take streamed (no parent, not frozen, not upper mode): the
	 * directories queued for the workers (queue, queue_tail), those read
	 * (done), under jobs_lock; all jobs not built, and their files, on
	 * the capture's thread */
	int stream_first;
	int stream_uring; /* small files of queued directories through io_uring */
	stream_job *queue, *queue_tail, *done, *jobs_all;
	size_t stream_out; /* files queued and not built (capture's thread) */
} take_ctx;

/* What a take keeps of a regular file of the parent: a prior node's user,
 * in the prior's arena (its size and mtime are the node's), so that the
 * parent's decoded trees are freed as soon as the prior is built. */
typedef struct prior_bytes {
	uint8_t *stored; /* as the pack stores it (compressed): a third of the plain bytes */
	uint32_t len, plain_len;
	uint8_t comp;
} prior_bytes;

/* A directory of the parent's prior (its node's user): its tree, where its
 * kids' items start in the inodes record (and end: has_end, it had an
 * item), and while loaded, the arena of its files' nodes. */
typedef struct prior_dir {
	oid id;
	size_t item, end;
	int has_end;
	walk_node *mem;
	int loaded;
} prior_dir;

typedef struct prior_file {
	const tree_extent *extents;
	const tree_chunk *chunks;
	uint32_t nextents, nchunks;
} prior_file;

/* The parent snapshot as a take compares against it: built once as a prior
 * walk (walk_options.prior; load_prior), each regular file's node with its
 * size, mtime and content (prior_file), and the inode number and ctime of
 * the parent's inodes record (or, from older takes, of its tree entry). The
 * walk copies the xattrs of files unchanged since from it instead of
 * listing them; reuse_from_parent gives them its chunk lists. */
typedef struct parent_view {
	oid root;              /* its content tree */
	inode_list inodes;     /* its inodes record; empty when it has none */
	/* 0 once the record is found not to fit the trees: from then on only
	 * trees written with inode numbers in them (before the record
	 * existed) are compared */
	int inodes_ok;
	struct timespec start; /* its take's start: ctimes from then on are not trusted */
	uint32_t dev_major, dev_minor; /* the root's filesystem: its prior nodes' */
	walk_node *prior;      /* directories as the walk loads them (prior_walk_options) */
	prior_bytes *trees;    /* each tree's stored bytes until its directory is loaded */
	size_t ntrees, cap_trees;
	chunk_index *tree_at;  /* tree id -> its place in trees (load_prior_trees) */
	struct prior_dir **loaded; /* every directory loaded: arenas not dropped go with the view */
	size_t nloaded, cap_loaded;
} parent_view;

typedef struct hl_item {
	uint32_t dev_major, dev_minor;
	uint64_t ino;
	size_t order;
	walk_node *node;
} hl_item;

typedef struct collect {
	file_state *states;
	size_t nstates;
	hl_item *hl;
	size_t nhl, caphl;
	int rc;
} collect;

/* Group number of each hardlinked entry, looked up by node address. */
typedef struct hl_assign {
	const walk_node *node;
	uint32_t group;
} hl_assign;

/* ctx.c: a capture's shared state: set up, freed, its first failure, notices */
void take_notice(const cairn_take_options *o, const char *msg);
/* take.c: a caller's options of any version (cairn.h) as the current one in
 * dst: the defaults for what its version lacks, the flags its version
 * implied; CAIRN_EUSAGE for NULL, an unknown version, both callbacks. */
int take_options_load(cairn_take_options *dst, const cairn_take_options *src, const char *what);
int take_fail(take_ctx *c, int rc);
int take_failed(take_ctx *c);
void take_ctx_init(take_ctx *c, cairn_repo *repo, int rootfd, snap_writer *w);
void take_ctx_free_walk(take_ctx *c);
/* n files of j read (or a subdirectory built): j on the done list once
 * nothing of it is left */
void stream_job_left(take_ctx *c, stream_job *j, uint32_t n);
/* j out of the list of jobs, its states and lists freed */
void stream_job_free(take_ctx *c, stream_job *j);
void take_ctx_free(take_ctx *c);

/* nodes.c: the walked tree's files in order, counts, hardlink groups */
void collect_nodes(collect *col, walk_node *n, size_t *order);
size_t count_nodes(walk_node *n, uint8_t type);
size_t count_regular(walk_node *n);
int hl_node_cmp(const void *a, const void *b);
int assign_hardlinks(take_ctx *c, collect *col);

/* parallel_walk.c: the frozen walk on two cores: the root split into parts
 * walked by a second thread, then grafted */
int frozen_walk(take_ctx *c, const cairn_take_options *o, const char *root_path, const walk_options *wo,
                walk_stats *ws, const walk_node *pre_root);

/* parent.c: the parent: finding it, its trees loaded as the walk's prior,
 * reuse of its chunk lists (and the pre-copy's), restore records */
int same_file(const walk_node *n, const walk_node *p);
int load_prior(take_ctx *c, parent_view *v, const char *root_path);
/* The walk's options to compare with v, loading its directories as it
 * reaches them (and with drop, dropping their files once compared: then
 * only the walk itself, through on_file, can reuse them). */
void prior_walk_options(take_ctx *c, parent_view *v, walk_options *wo, int drop);
/* Every directory of v loaded now (the walk then finds them loaded): for
 * a capture that compares with the parent while frozen, so that decoding
 * the parent's trees stays out of the pause. */
int load_prior_whole(take_ctx *c, parent_view *v);
void parent_view_free(parent_view *v);
int reuse_from_parent(take_ctx *c, walk_node *dir, const walk_node *pdir);
/* The walk found n unchanged since pf, its namesake in the parent: a copy
 * of pf for n (collect_nodes gives it to n's state, reuse_walked checks
 * it); out of memory, n is read instead. */
void keep_reusable(take_ctx *c, walk_node *n, const prior_file *pf);
/* Reuse what keep_reusable kept, for the files that are no hardlink
 * follower and whose chunks are all usable; the others are read. */
int reuse_walked(take_ctx *c);
int reuse_from_precopy(take_ctx *c, walk_node *dir, const walk_node *pre_dir,
                       const struct timespec *start);
int find_parent(cairn_repo *repo, const cairn_take_options *o, const char *user,
                const char *root_path, char parent[OID_HEX_LEN + 1], char kin[OID_HEX_LEN + 1]);
int load_parent(take_ctx *c, const char *parent, parent_view *view);
int use_restore_record(take_ctx *c, const cairn_take_options *o, parent_view *view);

/* read.c: reading files on every core: the workers, large files' chunks shared
 * out, small files in batches, cuts where the parent's version was cut */
void keep_prior_cuts(file_state *fs, const walk_node *n, const tree_chunk *chunks, uint32_t nchunks,
                     uint32_t nextents);
void *take_worker(void *arg);

/* trees.c: tree objects built bottom-up from the walk, and over a base in
 * upper mode */
int build_top(take_ctx *c, oid *out);
/* walk_options.on_dir_done of a streamed take: dir's tree built now (1)
 * when every file in it is unchanged since the parent (kept by the walk,
 * its chunks present), none has other links and every subdirectory was
 * built; else 0, left to build_top. */
int stream_dir(void *payload, walk_node *dir);
int build_overlay_top(take_ctx *c, const char *base, walk_stats *ws, oid *out);
/* walk_options.on_dir_done of a streamed first take: dir's files handed to
 * the workers when it holds only small files of one link and every
 * subdirectory was queued or built (its tree built once they are); else
 * left to build_top. Always 0: its kids go when its tree is built. */
int stream_first_dir(void *payload, walk_node *dir);
/* The capture's thread: the trees of the queued directories read since,
 * and of their parents that this completes. */
void stream_drain(take_ctx *c);

#endif
