/* A snapshot's inodes record (inodes/<snapshot id>): the inode number and
 * ctime of each of its regular files, which the next take compares to skip
 * unchanged files. They are kept out of the trees so that trees depend only
 * on what a restore gives back: a copy of an instance (new inodes, new
 * ctimes) stores no new trees. Format in format.h. */
#ifndef CAIRN_INODES_H
#define CAIRN_INODES_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"

#define INODE_REG 1
#define INODE_DIR 2

/* One per regular file and directory of the snapshot's content tree, in
 * tree order, depth first (a directory before what it holds). */
typedef struct inode_item { /* 24 bytes: one per file held through a take */
	uint64_t value;  /* REG: the inode number; DIR: items inside it, all levels */
	int64_t ctime_sec; /* REG only */
	uint32_t ctime_nsec;
	uint8_t kind;    /* INODE_REG or INODE_DIR */
} inode_item;

typedef struct inode_list {
	inode_item *v;
	size_t n, cap;
} inode_list;

/* Appends an item; its index, or a negative error. */
int64_t inodes_push(inode_list *l, uint8_t kind, uint64_t value, int64_t ctime_sec, uint32_t ctime_nsec);
void inodes_free(inode_list *l);

/* The record as bytes (format.h), for the repository or a restore record
 * (restored.h); decode checks everything and says which snapshot it is of.
 * name is for messages. */
int inodes_encode(const oid *snap, const inode_list *l, uint8_t **data, size_t *len);
int inodes_decode(const char *name, const uint8_t *data, size_t len, oid *snap, inode_list *out);
size_t inodes_max_len(void);

int inodes_write(cairn_repo *r, const char *snap_hex, const inode_list *l);
/* CAIRN_ENOTFOUND when the snapshot has none (older takes, upper mode, imports). */
int inodes_read(cairn_repo *r, const char *snap_hex, inode_list *out);
/* Removes it if there is one. */
int inodes_delete(cairn_repo *r, const char *snap_hex);

#endif
