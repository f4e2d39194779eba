/* cairn mount: a snapshot served read-only over FUSE, its file data fetched
 * on first read. This folder owns:
 *   fuse_abi.h  what the FUSE kernel protocol has beyond the system's
 *               <linux/fuse.h> (7.38 here; passthrough came in 7.40)
 *   nodes.c     the inode table: every entry of the snapshot's trees, read
 *               once at mount time, numbered (hardlinks share a node)
 *   cache.h     the chunk cache's design and its shared state:
 *   files.c       a content's state, its sparse cache file and its backing
 *   cache.c       opens and their passthrough backing, the cache's life
 *   record.c      the cache's record log, and the syncer that appends to it
 *                 once the data its entries name is durable
 *   fetch.c       the queues, the fetchers (coalesced pack reads), the
 *                 bounded waits of readers, their read-ahead
 *   hydrate.c     background hydration
 *   codec.h     its records as bytes and back, no I/O: the access trace
 *               and the cache's record log (format.h)
 *   session.c   /dev/fuse: mount(2), the request loop, every operation
 *   mount.c     the public API (cairn_mount_*, cairn_umount)
 * It reads trees and chunks only through repo.h (verified reads) and holds
 * a gc session while mounted. */
#ifndef CAIRN_MOUNT_H
#define CAIRN_MOUNT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cairn.h"
#include "index.h"
#include "repo.h"
#include "tree.h"

/* One log line (a NOTICE event) to cb, when there is one (log.c). */
void mount_log(cairn_event_cb cb, void *payload, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- nodes (nodes.c) ------------------------------------------------------ */

#define NODE_ROOT 1u
#define NO_FILE UINT32_MAX

typedef struct mnode {
	const tree_entry *e; /* points into a tree the table keeps */
	uint32_t parent;     /* node of the directory holding it (the root: itself) */
	uint32_t nlink;
	uint32_t tree;       /* DIR: its tree in node_table.trees */
	uint32_t kids;       /* DIR: its children's node ids at node_table.kids[kids..+n) */
	uint32_t file;       /* REG: its slot in the cache's files (cache.c), NO_FILE until opened */
} mnode;

typedef struct node_table {
	tree top;            /* the snapshot's top tree: its "root" entry is node 1 */
	tree *trees;         /* every tree of the snapshot, by walk order */
	size_t ntrees;
	mnode *v;            /* v[0] unused: node ids start at 1 */
	size_t n;
	uint32_t *kids;
	size_t nkids;
	uint64_t files, data_bytes; /* regular files and their data bytes (holes excluded) */
} node_table;

/* Read every tree of snapshot snap_id and number its entries. */
int nodes_load(node_table *t, cairn_repo *r, const char *snap_id);
void nodes_free(node_table *t);
/* The child name of directory node dir: its node id, 0 when absent. */
uint32_t nodes_lookup(const node_table *t, uint32_t dir, const char *name, size_t len);
/* "/a/b/c" of a node into out (truncated to size), for log lines. */
void nodes_path(const node_table *t, uint32_t id, char *out, size_t size);

/* ---- the chunk cache (files.c, cache.c, record.c, fetch.c, hydrate.c) ---- */

typedef struct mfile mfile;
typedef struct mcache mcache;

typedef struct mcache_options {
	const char *dir;           /* the cache directory (created if absent) */
	unsigned fetchers;         /* threads fetching chunks */
	uint64_t wait_ms;          /* a reader's bound on one fetch */
	unsigned readahead;        /* chunks fetched ahead of a read */
	cairn_event_cb log;        /* NOTICE events: one line per failed chunk */
	void *log_payload;
} mcache_options;

int mcache_new(mcache **out, cairn_repo *r, node_table *nodes, const mcache_options *o);
/* 1 when fetchers stuck in the store were left behind: c, and the nodes
 * they read, must then stay allocated. */
int mcache_free(mcache *c);
/* The cache state of regular file node id (created, with its cache file, on
 * the first call). */
int mcache_file(mcache *c, uint32_t id, mfile **out);
/* Make bytes [off, off + len) of f local: fetch what is missing, wait at
 * most the bounded time. 0, or a negative errno (-EIO) to answer with. */
int mcache_need(mcache *c, mfile *f, uint32_t id, uint64_t off, uint64_t len);
/* The cache file's descriptor (valid while the file is open) */
int mcache_fd(mfile *f);
/* An open of f. With devfd >= 0 (passthrough negotiated), a file whose
 * bytes are all local and that no open holds in the page-cache mode gets a
 * backing id registered on devfd (FUSE_DEV_IOC_BACKING_OPEN, kept for the
 * mount's life): *backing_id, else -1 (page-cache mode). 0 or -errno. */
int mcache_open(mcache *c, mfile *f, int devfd, int32_t *backing_id);
/* After an open of f (node id) was granted: one in passthrough, which no
 * read will reach, is the file's first use (the access trace, its
 * directory's next files queued as read-ahead), as a first read is. */
void mcache_opened(mcache *c, mfile *f, uint32_t id, int passthrough);
/* The matching release (backing_id as the open gave it). */
void mcache_release(mcache *c, mfile *f, int32_t backing_id);
/* Passthrough was negotiated on devfd: fetchers may register backings. */
void mcache_passthrough(mcache *c, int devfd);
/* Backing ids registered on devfd, closed before the session ends (no
 * more are registered after). */
void mcache_backing_close(mcache *c, int devfd);
/* Background hydration: fetch the missing chunks of the files order[0..n)
 * (node ids), then with all of every other file, never ahead of a reader's
 * fetch. Returns at once; progress and the end go to cb. */
int mcache_hydrate(mcache *c, const uint32_t *order, size_t n, int all, cairn_event_cb cb,
                   void *payload);
/* Stop fetchers and hydration (before the nodes go). */
void mcache_stop(mcache *c);
/* Node ids in the order readers first opened them (the access trace). */
size_t mcache_trace(mcache *c, uint32_t **out);

/* ---- the FUSE session (session.c) ----------------------------------------- */

typedef struct msession msession;
typedef struct msession_options {
	const char *mountpoint;
	const char *source;        /* shown in mountinfo */
	unsigned threads;
	int no_passthrough;
	cairn_event_cb log;
	void *log_payload;
} msession_options;

/* Mount at o->mountpoint and serve nodes from c with o->threads threads;
 * returns once the mount answers. */
int msession_start(msession **out, node_table *nodes, mcache *c, const msession_options *o);
/* Until the kernel ends the connection (unmounted or aborted). */
void msession_wait(msession *s);
/* Detach the mount (the server ends when the kernel lets go of it). */
void msession_unmount(msession *s);
void msession_free(msession *s);
int msession_passthrough(const msession *s);

#endif
