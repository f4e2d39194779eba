/* The filesystem walker (engine/walk/), internal.
 *
 * Directories are processed breadth-first. Each one is read whole with
 * getdents64, then one statx per entry is issued. Each is tried as a plain
 * syscall first, completed at once: cheapest when the inodes are cached. One
 * that had to wait on the disk sends the entries after it through io_uring,
 * where many directories' statx are in flight at once (up to MAX_INFLIGHT),
 * so the kernel's workers stat in parallel while this thread reads the next
 * directories and does readlink/xattrs for finished entries. Without io_uring
 * every statx is a plain syscall.
 *
 * No syscall ever sees a path longer than one name: everything is relative to
 * a directory fd. Open directory fds are bounded (fd_budget): a directory
 * whose fd is not pinned by in-flight work sits in an LRU and may be closed;
 * it is reopened from its parent (recursively, the root stays open) when a
 * subdirectory needs it.
 *
 * The walker's state, and what each file owns (walk.h is the module's
 * interface):
 *   walk.c     walk_run: the breadth-first loop, statx as a plain call or through io_uring,
 *              directories scanned and finished
 *   open.c     walk_open: opening a file the walk found, by its path relative to the root, never
 *              following a link
 *   entries.c  an entry's metadata, symlink target and xattrs (listed, or copied from the prior
 *              walk)
 *   dirs.c     excluded paths, and the bounded set of open directory fds (an LRU, reopened from
 *              the parent)
 *   nodes.c    the walked tree: nodes in an arena, kids in name order, grafts, paths, error
 *              messages
 * A file uses only those listed below it (no cycles, engine/LAYERS). */
#ifndef CAIRN_WALK_INTERNAL_H
#define CAIRN_WALK_INTERNAL_H

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "format.h"
#include "walk.h"

#define DENTS_BUF (64u * 1024u)
#define RING_SQ 512u
#define MAX_INFLIGHT 4096u
#define STATX_WANT (STATX_BASIC_STATS | STATX_MNT_ID)
#define XATTR_LIST_BUF (64u * 1024u)  /* XATTR_LIST_MAX */
#define XATTR_VALUE_BUF (64u * 1024u) /* XATTR_SIZE_MAX */
#define SYMLINK_MAX (1u << 20)        /* sanity cap; the tree format takes 4095 */
/* A plain statx slower than this waited on the disk (a cached one costs a
 * few microseconds); the entries after it go through the ring, a window of
 * RING_WINDOW_MIN doubling while the probes stay slow. One slow statx alone
 * is more often the thread losing its core (workers hash beside the walk):
 * the ring is taken at a second one within SLOW_PAIR_SPAN plain calls, which
 * a cold tree gives at once. */
#define SLOW_STATX_NS 40000
#define SLOW_PAIR_SPAN 16u
#define RING_WINDOW_MIN 256u
#define RING_WINDOW_MAX 16384u

/* Excludes as a trie of path components. */
typedef struct excl {
	char *name;
	size_t len;
	int terminal;
	struct excl **kids;
	size_t nkids;
} excl;

/* Per-directory state during the walk (walk_node.user points here). */
typedef struct dstate {
	walk_node *node;       /* NULL once the directory vanished */
	const excl *ex;        /* exclude trie node of this path, or NULL */
	int fd;                /* -1 when closed */
	uint32_t pins;         /* users of fd: scanning, in-flight statx, reopen chain */
	int in_lru;
	struct dstate *lru_prev, *lru_next;
	struct dstate *down;   /* acquire's path from an open ancestor */
	walk_node **ents;      /* entries read by getdents, statx not yet issued */
	size_t nents, next;
	size_t outstanding;    /* statx issued, not completed */
	int scanned;           /* all entries issued */
	const walk_node *prior; /* this directory in the prior walk, or NULL */
	/* streaming (walk_options.on_dir_done): its kids' arena, its
	 * subdirectories not yet complete, its own entries all done */
	struct walk_arena *kids_arena;
	size_t pending;
	int finished;
} dstate;

typedef struct req {
	walk_node *node;
	dstate *dir;
	int via_ring;
	struct statx stx;
} req;

typedef struct walker {
	const char *root;
	int no_xattrat; /* tests: xattrs through /proc paths (walk_options) */
	int rootfd;
	int have_mnt;
	uint64_t root_mnt;
	uint32_t root_dev_major, root_dev_minor;
	walk_stats *st;
	excl *ex_root;

	int use_ring;
	struct io_uring ring;
	size_t ring_left, ring_window; /* entries still to send through the ring, and the window */
	uint64_t nplain, last_slow;    /* plain statx made, and the number of the last slow one */
	size_t inflight, max_inflight;
	req *reqs;
	uint32_t *free_reqs;
	size_t nfree;

	dstate **dirs; /* every directory, in BFS order; [head..ndirs) not yet scanned */
	size_t ndirs, cap_dirs, head;
	dstate *cur;   /* directory whose entries are being issued */

	dstate *lru_head, *lru_tail; /* idle open fds, most recent at head */
	size_t open_fds, idle_fds, fd_budget;

	uint8_t *dents;
	char *xlist;
	const walk_node *prior;          /* walk_options.prior */
	void (*on_file)(void *payload, walk_node *n, const walk_node *prior);
	int (*prior_dir)(void *payload, const walk_node *pd);
	void (*prior_done)(void *payload, const walk_node *pd);
	int (*on_dir_done)(void *payload, walk_node *dir);
	void *payload;
	int subtree; /* walk_options.subtree */
	struct walk_arena *arena; /* the root's: every arena of the tree is chained from it */
	struct timespec prior_start;
	uint8_t *xval;
	int xattrat; /* listxattrat/getxattrat available */
	int stuck;   /* statx left in flight: the tree is leaked, not freed */
} walker;

/* Where an entry's xattrs are read from: the root by its fd; others by
 * (dirfd, name) with listxattrat/getxattrat (Linux 6.13) or, before that, by
 * "/proc/self/fd/<dirfd>/<name>" with the l* calls. Both work at any depth
 * and neither follows a final symlink; the *at calls skip the procfs lookup,
 * which costs more than the statx itself. */
typedef struct xsrc {
	int fd;           /* root: f*xattr on this fd */
	int dirfd;        /* else: the entry's directory */
	const char *name;
	char path[64 + MAX_NAME_LEN];
} xsrc;

/* dirs.c: excluded paths, and the bounded set of open directory fds (an LRU,
 * reopened from the parent) */
void excl_free(excl *e);
const excl *excl_find(const excl *e, const char *name, size_t len);
int excl_add(excl *root, const char *path);
void dir_pin(walker *w, dstate *d);
void dir_unpin(walker *w, dstate *d);
int dir_acquire(walker *w, dstate *d);

/* entries.c: an entry's metadata, symlink target and xattrs (listed, or copied
 * from the prior walk) */
int read_target(walker *w, walk_node *n, int dirfd, uint64_t size_hint);
void xattrat_probe(walker *w, int rootfd);
int read_xattrs(walker *w, walk_node *n, xsrc *src);
int copy_target(walk_node *n, const walk_node *p);
int copy_xattrs(walk_node *n, const walk_node *p);
void fill_meta(walk_node *n, const struct statx *s);
int walk_type_of(uint32_t mode);
int push_dir(walker *w, walk_node *n, const excl *ex, const walk_node *prior);
void dir_finish(dstate *d);
/* Its fd closed now (a streamed directory once complete), pinned or not. */
void dir_close(walker *w, dstate *d);

/* nodes.c: the walked tree: nodes in an arena, kids in name order, grafts,
 * paths, error messages */
int kid_cmp(const void *pa, const void *pb);
int xattr_cmp(const void *pa, const void *pb);
void *arena_alloc(struct walk_arena *a, size_t len);
/* An arena of its own for a directory's kids (streaming), chained from the
 * tree's (root: the root node's), first block of about hint bytes;
 * arena_drop frees one (unchained). */
struct walk_arena *arena_new_kids(struct walk_arena *root, size_t hint);
void arena_drop(struct walk_arena *a);
walk_node *node_new_in(struct walk_arena *a, const char *name, size_t len, walk_node *parent);
/* Counts dir's kids into st (walk_stats: files, dirs, symlinks, specials, bytes). */
void count_kids(walk_stats *st, const walk_node *dir);
char *arena_copy(struct walk_arena *a, const void *data, size_t len);
const char *msg_path(const walk_node *n, char **hold);
int walk_fail_errno(walker *w, const walk_node *n, int err, const char *what);

#endif
