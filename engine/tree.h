/* Tree objects: one per directory, entries sorted by name (format.h). */
#ifndef CAIRN_TREE_H
#define CAIRN_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "format.h"
#include "hash.h"

typedef struct tree_xattr {
	const char *name;      /* NUL-terminated */
	uint16_t name_len;
	const uint8_t *value;
	uint32_t value_len;
} tree_xattr;

typedef struct tree_extent {
	uint64_t offset, length;
} tree_extent;

typedef struct tree_chunk {
	oid id;
	uint32_t size;
} tree_chunk;

/* The largest size of a regular file, 64 PiB: beyond what the file systems
 * cairn writes to hold in practice (ext4: 16 TiB), and small enough that the
 * holes of a sparse file export in bounded time. tree_decode (and
 * tree_encode) refuse more, so restore, export, cat and fsck all see such
 * a tree as damage. */
#define TREE_FILE_SIZE_MAX (UINT64_C(1) << 56)

typedef struct tree_entry {
	const char *name;      /* NUL-terminated; never contains '/' or NUL */
	uint16_t name_len;
	uint8_t type;          /* TREE_* */
	uint32_t mode;         /* full st_mode including the S_IFMT bits */
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	int64_t ctime_sec;     /* kept for incremental takes only */
	uint32_t ctime_nsec;
	uint64_t ino;          /* kept for incremental takes only */
	uint64_t size;         /* REG: logical size; SYMLINK: target length; else 0 */
	uint32_t rdev_major, rdev_minor;
	uint32_t hardlink;     /* hardlink group within the snapshot, 0 = none */
	uint32_t nxattrs;
	const tree_xattr *xattrs; /* sorted by name, no duplicates */
	const char *target;    /* SYMLINK; NUL-terminated */
	uint32_t target_len;
	oid subtree;           /* DIR */
	uint32_t nextents;     /* REG: 0 = dense */
	const tree_extent *extents;
	uint32_t nchunks;      /* REG */
	const tree_chunk *chunks;
} tree_entry;

/* Encode entries (which must already be sorted by name, memcmp order,
 * shorter first on a common prefix; duplicates rejected) as a tree object.
 * Returns CAIRN_EUSAGE for invalid input (bad name, order, lengths). */
int tree_encode(const tree_entry *entries, size_t n, uint8_t **out, size_t *len);

/* A decoded tree: entries point into memory owned by the tree. */
typedef struct tree {
	size_t n;
	tree_entry *entries;
	void *mem;  /* owned storage (internal) */
} tree;

/* Decode and validate (framing, bounds, names, order, per-type payload,
 * extent/chunk consistency). what names the tree in messages
 * ("tree 3fa1..."). On error out is left empty. */
int tree_decode(tree *out, const uint8_t *data, size_t len, const char *what);
void tree_free(tree *t);

/* Binary search by name; NULL if absent. */
const tree_entry *tree_find(const tree *t, const char *name, size_t name_len);

/* The public view of an entry (ls and diff callbacks); its pointers point into e. */
void tree_entry_public(cairn_entry *ce, const tree_entry *e);

/* 1 if name is acceptable as an entry name (1..255 bytes, no '/', no NUL,
 * not "." or ".."). */
int tree_name_ok(const char *name, size_t len);

#endif
