/* Overlay upper-layer capture: a snapshot made of a base snapshot's tree
 * with an overlayfs upper directory applied (take --upper DIR --base SNAP).
 *
 * Upper semantics: a character device 0/0 (or an entry carrying
 * overlay.whiteout) deletes the base's entry of that name; a directory with
 * overlay.opaque=y drops the base's children of that directory; any other
 * upper entry replaces the base's entry of its name, except that a
 * non-opaque directory merges with a base directory (its own metadata from
 * upper, children merged recursively). The trusted. and user. forms are
 * both understood; overlay.redirect and overlay.metacopy are refused
 * (CAIRN_EUSAGE naming the path: the entry is not self-contained); no
 * overlay.* xattr is stored. Unchanged base subtrees keep their tree ids.
 *
 * Hardlinks: when the base has hardlink groups (manifest hardlinks > 0),
 * the take is refused if the upper has hardlink groups of its own or
 * replaces, deletes or drops any hardlinked base entry; otherwise base
 * groups are kept as they are and upper groups keep take's numbering. */
#ifndef CAIRN_OVERLAY_H
#define CAIRN_OVERLAY_H

#include <stdint.h>

#include "repo.h"
#include "tree.h"
#include "walk.h"
#include "writer.h"

/* Check the walked upper tree: refuse redirect/metacopy entries, mark
 * opaque directories and whiteouts, and drop every overlay.* xattr from the
 * nodes (before their entries are built). Uses walk_node.user of
 * non-regular nodes. */
int overlay_prepare(walk_node *root);

/* Fills e (and xa, room for n->nxattrs) from an upper node, as take does. */
typedef void (*overlay_entry_fn)(void *arg, tree_entry *e, const walk_node *n, tree_xattr *xa);

/* Counts of the merged snapshot (for its manifest). */
typedef struct overlay_counts {
	uint64_t files, dirs, symlinks, specials, hardlinks;
	uint64_t stored_bytes; /* bytes the new tree objects added */
} overlay_counts;

/* Build the merged top tree of upper over snapshot base_hex (full id) into
 * *top. counts: in, nothing; out, the merged snapshot's counts. */
int overlay_build(cairn_repo *repo, snap_writer *w, walk_node *upper, const char *base_hex,
                  overlay_entry_fn fn, void *arg, oid *top, overlay_counts *counts);

#endif
