/* The filesystem walker: getdents64 for directories, a statx per entry
 * (plain calls while they are served from the cache, batched through
 * io_uring where they wait on the disk), with a plain-syscall fallback
 * producing the identical result. */
#ifndef CAIRN_WALK_H
#define CAIRN_WALK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct walk_xattr {
	char *name;       /* NUL-terminated */
	uint8_t *value;
	uint32_t value_len;
} walk_xattr;

typedef struct walk_node {
	char *name;               /* NUL-terminated; "" for the root */
	uint16_t name_len;
	uint8_t type;             /* TREE_* from format.h */
	uint8_t user_kind;        /* free for the caller, beside user (in a hole: no size) */
	uint32_t mode, uid, gid;  /* mode: full st_mode */
	int64_t mtime_sec;
	uint32_t mtime_nsec, ctime_nsec; /* side by side: no padding (a node a file) */
	int64_t ctime_sec;
	uint64_t ino, size;
	uint64_t blocks;          /* 512-byte blocks allocated (sparse detection) */
	uint32_t nlink;
	uint32_t dev_major, dev_minor;   /* of the filesystem holding the entry */
	uint32_t rdev_major, rdev_minor; /* CHR/BLK */
	uint32_t nxattrs;
	walk_xattr *xattrs;       /* sorted by name (memcmp) */
	char *target;             /* SYMLINK: NUL-terminated */
	uint32_t target_len;
	int is_mount;             /* a mount point or /datadrive: kept as an empty dir */
	struct walk_node *parent;
	struct walk_node **kids;  /* DIR: sorted by name (memcmp, shorter first) */
	size_t nkids;
	void *user;               /* free for the caller (take's per-file state) */
	struct walk_arena *arena; /* of the whole tree: see walk_node_new */
} walk_node;

typedef struct walk_options {
	const char *const *excludes; /* absolute paths inside the root, e.g. "/var/cache"; omitted entirely */
	size_t nexcludes;
	int no_uring;                /* use plain syscalls */
	int uring_always, no_xattrat; /* tests: every statx through the ring; xattrs by /proc paths */
	/* A walk of the same root made earlier (a take's pre-copy, or its
	 * parent snapshot as seen then), or NULL:
	 * an entry unchanged since (walk_unchanged_since with prior_start)
	 * takes its xattrs and symlink target from it instead of reading them
	 * again (setxattr and a new symlink change the ctime). */
	const struct walk_node *prior;
	struct timespec prior_start;
	/* Called on the walking thread for each regular file once it is in
	 * the tree (its metadata final), with its namesake in prior (or NULL),
	 * so a caller can start reading it before the walk ends. The node stays
	 * valid while the tree does; if the walk fails, on_file(payload, NULL,
	 * NULL) is called before the partial tree is freed and must return only
	 * once nothing uses its nodes. NULL: not called. */
	void (*on_file)(void *payload, struct walk_node *n, const struct walk_node *prior);
	void *payload;
	/* Optional, for a prior loaded a directory at a time: prior_dir is
	 * called (on the walking thread, with payload) before the entries of
	 * a directory are compared with its namesake pd in prior, so that the
	 * caller fills in pd's kids then (< 0 ends the walk with that error);
	 * prior_done once every entry of it has been, so that the caller may
	 * drop them (the kids' own directories stay: the walk compares with
	 * them later). A walk that fails may leave some not done. */
	int (*prior_dir)(void *payload, const struct walk_node *pd);
	void (*prior_done)(void *payload, const struct walk_node *pd);
	/* Optional, streaming: called on the walking thread once a directory
	 * dir (not the root) and everything below it are walked: its kids in
	 * their order, each subdirectory's own call made. Returning 1 frees
	 * its kids (dir keeps none: the caller has what it needs of them),
	 * 0 keeps them. dir->user is the caller's from this call on. Set, each
	 * directory's kids live in an arena of their own (walk_alloc on a kid
	 * allocates there), and the tree cannot be grafted (walk_graft). */
	int (*on_dir_done)(void *payload, struct walk_node *dir);
	/* root is a directory inside the captured tree (a part walked on its
	 * own, for walk_graft): no /datadrive rule, and root itself is not
	 * followed if it became a symlink */
	int subtree;
} walk_options;

/* files/dirs/symlinks/specials count the nodes of the result (the root and
 * kept mount points are dirs); mounts_skipped counts is_mount nodes and
 * files mounted over files (left out); excluded counts matched entries. */
typedef struct walk_stats {
	uint64_t files, dirs, symlinks, specials, sockets_skipped, mounts_skipped, excluded;
	uint64_t bytes;   /* sum of regular file sizes */
	int used_uring;   /* 1 if the io_uring path ran */
	uint64_t ring_statx; /* statx sent through the ring (after a slow plain one) */
	uint64_t root_mnt;   /* mount id of the root (STATX_MNT_ID), 0 when unknown */
	char notice[256]; /* "" or the reason io_uring was not used (said once by the caller) */
} walk_stats;

/* Walk the tree at root. "/datadrive" (relative to root) and every mount
 * point inside root are kept as empty directories and not descended into
 * (a non-directory mounted over a file is left out); excludes are left out;
 * sockets are skipped and counted; entries are not followed through
 * symlinks. Entries that vanish during the walk are left out. Errors name
 * the path: CAIRN_ENOTFOUND (root missing), CAIRN_EUSAGE (root not a
 * directory, bad exclude), CAIRN_EIO. Env CAIRN_NO_URING=1 forces the plain
 * syscalls; CAIRN_URING_ALWAYS=1 (testing) sends every statx through the ring
 * instead of only those after a slow plain one. */
int walk_run(walk_node **out, const char *root, const walk_options *opts, walk_stats *stats);
void walk_free(walk_node *root);
/* Streaming (walk_options.on_dir_done): frees the kids of dir, a directory
 * handed over with them kept (its call returned 0), on the walking thread
 * or after the walk; dir keeps none. */
void walk_drop_kids(walk_node *dir);

/* Make sub, the root of a walk of the subtree (walk_options.subtree), the
 * kid named name of dir, a node of another walk; sub's nodes join dir's
 * tree (and are freed with it; sub itself is no longer a root). dir must
 * have no kid of that name. 0 or CAIRN_ENOMEM. */
int walk_graft(walk_node *dir, walk_node *sub, const char *name, size_t len);

/* A node (zeroed but for its name and parent) for building a prior walk by
 * hand (a take builds one from its parent snapshot). A tree's nodes, names,
 * kid arrays, xattrs and targets all live in one arena, created with the
 * root (parent NULL): nothing in a tree is freed alone, and walk_free(root)
 * frees it all in a few calls (a free per node cost 60-85 ms for the 30k
 * nodes of the benchmark's parent snapshot on a 2-core VM). */
walk_node *walk_node_new(const char *name, size_t len, walk_node *parent);
/* len zeroed bytes in n's tree (kids and xattrs arrays), freed with it; NULL
 * when out of memory. */
void *walk_alloc(walk_node *n, size_t len);
/* Copies an xattr into n->xattrs[n->nxattrs] (the array has room) and counts it. */
int walk_xattr_add(walk_node *n, const char *name, const void *value, uint32_t len);

/* Path of n relative to the root ("a/b/c"; "" for the root), malloc'd. */
char *walk_path(const walk_node *n);
/* 1 when n is p as seen by an earlier walk and unchanged since: same type,
 * device, inode and ctime, and that ctime before start (when that walk
 * began; a change in the same clock tick as a look leaves ctime as it was). */
int walk_unchanged_since(const walk_node *n, const walk_node *p, const struct timespec *start);
/* The child of dir named name (len bytes), or NULL: a binary search. */
walk_node *walk_find_kid(const walk_node *dir, const char *name, size_t len);
/* The same for names asked in ascending order (another directory's kids):
 * the search starts at *at (0 for the first name) and leaves it there for
 * the next, so a whole directory costs one merge. */
walk_node *walk_find_kid_from(const walk_node *dir, size_t *at, const char *name, size_t len);

/* Open a regular file found by the walk, for reading (O_RDONLY|O_NOFOLLOW|
 * O_CLOEXEC, and O_NOATIME where permitted), relative to rootfd, even when
 * its path exceeds PATH_MAX. No symlink on the path is followed; a FIFO
 * swapped in does not block. Thread-safe. Returns an fd or a negative
 * CAIRN_E* code with a message naming the path: CAIRN_ENOTFOUND when it has
 * vanished, CAIRN_EIO otherwise (including "no longer a regular file"). */
int walk_open(int rootfd, const walk_node *n);

#endif
