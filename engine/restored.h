/* Restore records: what a restore leaves on its host so that the first take
 * of the restored tree (a new instance started from a snapshot) need not
 * read every file again. A record is the snapshot's inodes record (inodes.h)
 * with the inode numbers and ctimes the restore gave its files; it lives in
 * the host's state directory ($CAIRN_STATE_DIR, else /var/lib/cairn), under
 * restored/<dev>-<ino> of the target directory, not in the repository: only
 * this host's takes of this directory can use it. A take trusts a file of it
 * exactly as it trusts its parent's: same inode, ctime, size and mtime.
 * Format in format.h. */
#ifndef CAIRN_RESTORED_H
#define CAIRN_RESTORED_H

#include "inodes.h"

/* Records older than this are removed when a restore writes one. */
#define RESTORED_MAX_AGE_DAYS 30

/* The records live in state_dir/restored/ (the repository's settings). */
/* Keep l (of snapshot snap) as the record of the directory rootfd. */
int restored_put(const char *state_dir, int rootfd, const oid *snap, const inode_list *l);
/* The record of rootfd; CAIRN_ENOTFOUND when there is none. */
int restored_get(const char *state_dir, int rootfd, oid *snap, inode_list *out);
/* Removes rootfd's record, if any (a take of it committed). */
void restored_drop(const char *state_dir, int rootfd);

#endif
