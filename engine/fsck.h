/* fsck: checking and repairing a repository (cairn_fsck in cairn.h), and the
 * damaged-snapshot markers that --repair writes and restore honours. */
#ifndef CAIRN_FSCK_H
#define CAIRN_FSCK_H

#include "cairn.h"

/* 0 when snapshot snap_hex carries no damaged marker (damaged/<id>);
 * CAIRN_ECORRUPT naming the snapshot and fsck's reason when it does. */
int fsck_damaged_check(cairn_repo *r, const char *snap_hex);

#endif
