/* Export and import through libarchive (engine/archive/), internal.
 *
 * Export walks a snapshot's trees depth-first in name order and writes one
 * tar entry per tree entry: "." for the root, hardlink members after the
 * first as hardlink entries, POSIX ACL xattrs as libarchive ACLs (so that
 * pax carries them as SCHILY.acl.*), the rest as SCHILY.xattr.*, and sparse
 * files with their data extents as the sparse map.
 *
 * Import builds the whole tree in memory first (with --base, starting from
 * the base snapshot's tree), applying entries in archive order; content goes
 * through the repository's chunker into the snapshot writer as it is read.
 * Only when the archive has been read to its end without a refusal are the
 * trees written, bottom-up, and the manifest committed.
 *
 * What each file owns:
 *   export.c        cairn_export: a snapshot's trees walked depth-first in name order, one tar
 *                   entry each (ACL xattrs as libarchive's ACLs)
 *   import.c        cairn_import: the archive read to its end, then the trees written bottom-up
 *                   and the manifest committed
 *   import_entry.c  one archive entry applied to the tree in memory: its content through the
 *                   chunker into the writer, its metadata (ACLs into the kernel's xattr format),
 *                   its place
 *   import_tree.c   the tree an import builds in memory: nodes and inodes, the base snapshot
 *                   loaded whole, paths
 * A file uses only those listed below it (no cycles, engine/LAYERS); what
 * export and import share is here: the ACL tags and ar_fail. */
#ifndef CAIRN_ARCHIVE_INTERNAL_H
#define CAIRN_ARCHIVE_INTERNAL_H

#include <archive.h>
#include <archive_entry.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "error.h"
#include "repo.h"
#include "tree.h"
#include "writer.h"

#define ACL_XATTR_ACCESS "system.posix_acl_access"
#define ACL_XATTR_DEFAULT "system.posix_acl_default"
#define ACL_XATTR_VERSION 2
/* Tags and permission bits of the kernel's POSIX ACL xattr format. */
#define PACL_USER_OBJ 0x01
#define PACL_USER 0x02
#define PACL_GROUP_OBJ 0x04
#define PACL_GROUP 0x08
#define PACL_MASK 0x10
#define PACL_OTHER 0x20
#define PACL_UNDEFINED_ID 0xffffffffu

static const struct {
	int pacl, ae;
} acl_tags[] = {
	{PACL_USER_OBJ, ARCHIVE_ENTRY_ACL_USER_OBJ}, {PACL_USER, ARCHIVE_ENTRY_ACL_USER},
	{PACL_GROUP_OBJ, ARCHIVE_ENTRY_ACL_GROUP_OBJ}, {PACL_GROUP, ARCHIVE_ENTRY_ACL_GROUP},
	{PACL_MASK, ARCHIVE_ENTRY_ACL_MASK}, {PACL_OTHER, ARCHIVE_ENTRY_ACL_OTHER},
};

static inline int ar_fail(struct archive *a, int code, const char *what)
{
	const char *m = archive_error_string(a);
	return error_set(code, "%s: %s", what, m ? m : "libarchive error");
}

typedef struct ixattr {
	char *name;
	uint8_t *value;
	uint32_t len;
} ixattr;

/* What tar calls a file and a tree entry carries: shared by hardlinks. */
typedef struct inode {
	uint8_t type;
	uint32_t mode, uid, gid, rdev_major, rdev_minor;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t size;
	ixattr *xattrs;
	uint32_t nxattrs;
	char *target;
	uint32_t target_len;
	tree_extent *extents;
	uint32_t nextents;
	tree_chunk *chunks;
	uint32_t nchunks, capchunks;
	uint32_t links; /* names in the tree */
	uint32_t group; /* hardlink group, numbered when the trees are written */
	int counted;    /* visited by the final count */
	int base_data;  /* chunks came from the base: referenced, never put */
} inode;

typedef struct node {
	char *name;
	uint16_t name_len;
	int from_base; /* came from the base and was not touched by this archive */
	inode *ino;
	struct node **kids; /* directories: sorted by name */
	size_t nkids, capkids;
} node;

typedef struct ictx {
	cairn_repo *repo;
	const cairn_import_options *o;
	snap_writer *w;
	node *root;
	uint8_t *buf; /* the chunker's window */
	size_t have, cap;
	cairn_import_result res;
	uint64_t files, dirs, symlinks, specials, hardlinks, bytes;
	uint32_t groups;
	int64_t last_ns;
	const char *entry; /* archive path being applied, for messages */
} ictx;

/* A node being walked and the next of its kids: the import walkers' heap
 * stack, so that trees of any depth cost memory, not C stack. */
typedef struct nframe {
	node *d;
	size_t k;
	tree t;              /* load_base: the base's tree of d */
	tree_entry *entries; /* write_trees: d's entries, xattrs, count of xattrs */
	tree_xattr *xa;
	size_t nx;
} nframe;

typedef struct nstack {
	nframe *f;
	size_t n, cap;
} nstack;

typedef struct comps {
	const char **p;
	size_t *len;
	size_t n;
} comps;

/* import_entry.c: one archive entry applied to the tree in memory: its content
 * through the chunker into the writer, its metadata (ACLs into the kernel's
 * xattr format), its place */
/* A progress event (at most every 100 ms unless force); 1 when the
 * caller's callback asked to cancel: the import then fails with import_canceled(). */
int import_progress(ictx *c, int force);
int import_canceled(void);
int apply_entry(ictx *c, struct archive *a, struct archive_entry *ae);

/* import_tree.c: the tree an import builds in memory: nodes and inodes, the
 * base snapshot loaded whole, paths */
void inode_unref(inode *i);
void node_free(node *n);
nframe *nstack_push(nstack *st, node *d);
void nstack_prefix(const nstack *st);
size_t kid_pos(const node *d, const char *name, size_t len, int *found);
int kid_insert(node *d, size_t at, node *k);
void kid_remove(node *d, size_t at);
node *node_new(const char *name, size_t len, inode *ino);
int load_base(ictx *c, const char *base_id);
void comps_free(comps *cp);
int split_path(const char *path, comps *cp, const char *what);
inode *dir_inode(void);
int import_parent_of(ictx *c, const comps *cp, node **out);
node *node_lookup(ictx *c, const comps *cp);

#endif
