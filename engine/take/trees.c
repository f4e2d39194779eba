/* The take (take.h): tree objects built bottom-up from the walk, and over a
 * base in upper mode. */
#include "take.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "overlay.h"

static uint32_t hardlink_of(const take_ctx *c, const walk_node *n)
{
	hl_assign key = {n, 0};
	const hl_assign *found = bsearch(&key, c->hl_table, c->hl_count, sizeof(key), hl_node_cmp);
	return found ? found->group : 0;
}

static void entry_from_node(const take_ctx *c, tree_entry *e, const walk_node *n, tree_xattr *xa)
{
	memset(e, 0, sizeof(*e));
	e->name = n->name;
	e->name_len = n->name_len;
	e->type = n->type;
	e->mode = n->mode;
	e->uid = n->uid;
	e->gid = n->gid;
	e->mtime_sec = n->mtime_sec;
	e->mtime_nsec = n->mtime_nsec;
	/* ctime and ino stay 0: they go to the inodes record (inodes.h) */
	e->rdev_major = n->rdev_major;
	e->rdev_minor = n->rdev_minor;
	e->hardlink = hardlink_of(c, n);
	for (uint32_t i = 0; i < n->nxattrs; i++) {
		xa[i].name = n->xattrs[i].name;
		xa[i].name_len = (uint16_t)strlen(n->xattrs[i].name);
		xa[i].value = n->xattrs[i].value;
		xa[i].value_len = n->xattrs[i].value_len;
	}
	e->nxattrs = n->nxattrs;
	e->xattrs = xa;
	if (n->type == TREE_SYMLINK) {
		e->target = n->target;
		e->target_len = n->target_len;
		e->size = n->target_len;
	}
	if (n->type == TREE_REG) {
		const file_state *fs = n->user;
		if (fs->leader) fs = fs->leader;
		e->size = fs->size;
		e->nextents = fs->nextents;
		e->extents = fs->extents;
		e->nchunks = fs->nchunks;
		e->chunks = fs->chunks;
	}
}

static int put_tree(take_ctx *c, tree_entry *entries, size_t n, oid *out)
{
	size_t added;
	int rc = writer_put_tree_counted(c->writer, entries, n, out, &added, 1);
	c->stored_bytes += added;
	return rc;
}

/* A directory whose tree is being built: its entries (subtree ids filled
 * in as they are built), the next kid, its item in the inodes record. */
typedef struct build_frame {
	walk_node *dir;
	tree_entry *entries;
	tree_xattr *xa;
	size_t i, nx;
	int64_t item;
} build_frame;

static int build_enter(build_frame **st, size_t *n, size_t *cap, walk_node *dir, int64_t item)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		build_frame *f = realloc(*st, ncap * sizeof(*f));
		if (!f) return ERR_OOM();
		*st = f;
		*cap = ncap;
	}
	build_frame *f = &(*st)[(*n)++];
	size_t nx = 0;
	for (size_t i = 0; i < dir->nkids; i++) nx += dir->kids[i]->nxattrs;
	*f = (build_frame){dir, calloc(dir->nkids ? dir->nkids : 1, sizeof(*f->entries)),
	                   calloc(nx ? nx : 1, sizeof(*f->xa)), 0, 0, item};
	return f->entries && f->xa ? 0 : ERR_OOM();
}

/* The trees of dir and below, bottom-up (a tree's id needs its subtrees'),
 * the inodes record in tree order; a heap stack, so that trees of any
 * depth cost memory, not C stack. */
static int build_tree(take_ctx *c, walk_node *dir, oid *out)
{
	build_frame *st = NULL;
	size_t n = 0, cap = 0;
	int rc = build_enter(&st, &n, &cap, dir, -1);
	while (rc == 0 && n > 0) {
		build_frame *f = &st[n - 1];
		if (f->i < f->dir->nkids) {
			walk_node *k = f->dir->kids[f->i];
			entry_from_node(c, &f->entries[f->i++], k, f->xa + f->nx);
			f->nx += k->nxattrs;
			int64_t at = 0;
			if (k->type == TREE_REG) at = inodes_push(&c->inodes, INODE_REG, k->ino, k->ctime_sec, k->ctime_nsec);
			if (k->type == TREE_DIR) at = inodes_push(&c->inodes, INODE_DIR, 0, 0, 0);
			if (at < 0) rc = (int)at;
			else if (k->type == TREE_DIR) rc = build_enter(&st, &n, &cap, k, at);
			continue;
		}
		oid id;
		if ((rc = put_tree(c, f->entries, f->dir->nkids, &id)) < 0) {
			char *path = walk_path(f->dir);
			error_prefix("directory /%s", path ? path : "?");
			free(path);
			break;
		}
		if (f->item >= 0) c->inodes.v[f->item].value = c->inodes.n - (size_t)f->item - 1;
		free(f->entries);
		free(f->xa);
		if (--n > 0) st[n - 1].entries[st[n - 1].i - 1].subtree = id;
		else *out = id;
	}
	while (n > 0) {
		free(st[--n].entries);
		free(st[n].xa);
	}
	free(st);
	return rc;
}

/* The top tree: one entry "root" carrying the captured directory itself. */
int build_top(take_ctx *c, oid *out)
{
	oid content;
	int rc = build_tree(c, c->root, &content);
	if (rc < 0) return rc;
	tree_xattr *xa = calloc(c->root->nxattrs ? c->root->nxattrs : 1, sizeof(*xa));
	if (!xa) return ERR_OOM();
	tree_entry top;
	entry_from_node(c, &top, c->root, xa);
	top.name = "root";
	top.name_len = 4;
	top.subtree = content;
	rc = put_tree(c, &top, 1, out);
	free(xa);
	return rc;
}

/* Upper mode: the base snapshot's tree with the upper layer applied. */
static void overlay_entry(void *arg, tree_entry *e, const walk_node *n, tree_xattr *xa)
{
	entry_from_node(arg, e, n, xa);
}

int build_overlay_top(take_ctx *c, const char *base, walk_stats *ws, oid *out)
{
	overlay_counts oc;
	int rc = overlay_build(c->repo, c->writer, c->root, base, overlay_entry, c, out, &oc);
	if (rc < 0) return rc;
	c->stored_bytes += oc.stored_bytes;
	ws->files = oc.files;
	ws->dirs = oc.dirs;
	ws->symlinks = oc.symlinks;
	ws->specials = oc.specials;
	c->hardlink_extra = (uint32_t)oc.hardlinks;
	return 0;
}
