/* fsck: checking and repairing a repository (cairn_fsck in cairn.h); the
 * damaged-snapshot markers it writes are damaged.h's. */
#ifndef CAIRN_FSCK_H
#define CAIRN_FSCK_H

#include "cairn.h"

#endif
