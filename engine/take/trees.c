/* The take (take.h): tree objects built bottom-up from the walk, and over a
 * base in upper mode. */
#include "take.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "overlay.h"
#include "util.h"

static uint32_t hardlink_of(const take_ctx *c, const walk_node *n)
{
	if (!c->hl_count) return 0; /* and a streamed directory has no hardlinks */
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
	if (n->type == TREE_DIR && n->user_kind == NODE_BUILT) e->subtree = ((const built_dir *)n->user)->id;
	if (n->type == TREE_REG && (n->user_kind == NODE_REUSABLE || n->user_kind == NODE_REFD)) {
		const prior_file *pf = n->user; /* a streamed directory's file: unchanged, no state */
		e->size = n->size;
		e->nextents = pf->nextents;
		e->extents = pf->extents;
		e->nchunks = pf->nchunks;
		e->chunks = pf->chunks;
	} else if (n->type == TREE_REG) {
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
			if (k->type == TREE_DIR && k->user_kind == NODE_BUILT) { /* its tree is there: its items */
				const built_dir *b = k->user;
				at = inodes_push(&c->inodes, INODE_DIR, b->nitems, 0, 0);
				for (size_t j = 0; j < b->nitems && at >= 0; j++)
					at = inodes_push(&c->inodes, b->items[j].kind, b->items[j].value, b->items[j].ctime_sec,
					                 b->items[j].ctime_nsec);
				if (at < 0) rc = (int)at;
				continue;
			}
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

/* The inode items below dir (each subdirectory built) and its kids' xattrs. */
static void built_sizes(const walk_node *dir, size_t *nitems, size_t *nx)
{
	*nitems = *nx = 0;
	for (size_t i = 0; i < dir->nkids; i++) {
		const walk_node *k = dir->kids[i];
		*nitems += k->type == TREE_REG || k->type == TREE_DIR; /* only those have items */
		if (k->type == TREE_DIR) *nitems += ((const built_dir *)k->user)->nitems;
		*nx += k->nxattrs;
	}
}

/* What stream_dir may build now, or 0: each file unchanged since the
 * parent and of one link, each subdirectory built. */
static int streamable(const walk_node *dir)
{
	for (size_t i = 0; i < dir->nkids; i++) {
		const walk_node *k = dir->kids[i];
		if (k->type == TREE_DIR) {
			if (k->user_kind != NODE_BUILT) return 0; /* a mount point, or a directory built at the end */
		} else if (k->nlink > 1) {
			return 0; /* hardlink groups are numbered over the whole tree */
		} else if (k->type == TREE_REG && k->user_kind != NODE_REUSABLE && k->user_kind != NODE_REFD) {
			return 0; /* read after the walk (or now, a large one) */
		}
	}
	return 1;
}

/* dir's tree, its kids' content known and its subdirectories built: a
 * built_dir in its node's arena (its parent's kids), with the inode items
 * of all below it. */
static int put_built(take_ctx *c, walk_node *dir)
{
	size_t nitems, nx, at = 0, xat = 0;
	int rc = 0;
	built_sizes(dir, &nitems, &nx);
	built_dir *b = walk_alloc(dir, sizeof(*b) + nitems * sizeof(*b->items)); /* with dir: its parent's kids */
	tree_entry *entries = calloc(dir->nkids ? dir->nkids : 1, sizeof(*entries));
	tree_xattr *xa = calloc(nx ? nx : 1, sizeof(*xa));
	if (!b || !entries || !xa) {
		rc = ERR_OOM();
		goto done;
	}
	b->items = (inode_item *)(b + 1);
	b->nitems = nitems;
	for (size_t i = 0; i < dir->nkids; i++) {
		const walk_node *k = dir->kids[i];
		entry_from_node(c, &entries[i], k, xa + xat);
		xat += k->nxattrs;
		if (k->type == TREE_REG) b->items[at++] = (inode_item){k->ino, k->ctime_sec, k->ctime_nsec, INODE_REG};
		if (k->type != TREE_DIR) continue;
		const built_dir *kb = k->user;
		b->items[at++] = (inode_item){kb->nitems, 0, 0, INODE_DIR};
		memcpy(b->items + at, kb->items, kb->nitems * sizeof(*kb->items));
		at += kb->nitems;
	}
	if ((rc = put_tree(c, entries, dir->nkids, &b->id)) < 0) {
		char *path = walk_path(dir);
		error_prefix("directory /%s", path ? path : "?");
		free(path);
		goto done;
	}
	dir->user = b;
	dir->user_kind = NODE_BUILT;
done:
	free(entries);
	free(xa);
	return rc;
}

int stream_dir(void *payload, walk_node *dir)
{
	take_ctx *c = payload;
	int rc = 0;
	if (take_failed(c) || !streamable(dir)) return 0;
	/* the parent's chunks still there (as reuse_walked checks them), each
	 * referenced once: a file whose are not is read, its directory built
	 * at the end, where the files referenced here are not again */
	uint64_t bytes = 0, files = 0;
	for (size_t i = 0; i < dir->nkids; i++) {
		walk_node *k = dir->kids[i];
		if (k->type != TREE_REG) continue;
		const prior_file *pf = k->user;
		if (k->user_kind == NODE_REUSABLE && (rc = writer_ref_chunks(c->writer, pf->chunks, pf->nchunks)) != 1) {
			if (rc < 0) take_fail(c, rc);
			return 0;
		}
		k->user_kind = NODE_REFD;
		for (uint32_t j = 0; j < pf->nchunks; j++) bytes += pf->chunks[j].size;
		files++;
	}
	if ((rc = put_built(c, dir)) < 0) {
		take_fail(c, rc);
		return 0;
	}
	c->reused += files;
	c->bytes += bytes;
	return 1;
}

void stream_drain(take_ctx *c)
{
	pthread_mutex_lock(&c->jobs_lock);
	stream_job *list = c->done;
	c->done = NULL;
	pthread_mutex_unlock(&c->jobs_lock);
	while (list && !take_failed(c)) { /* a failed take's jobs go with its walk */
		stream_job *j = list;
		walk_node *dir = j->dir, *up = dir->parent;
		list = j->next;
		int rc = put_built(c, dir);
		if (rc < 0) {
			take_fail(c, rc);
			break;
		}
		stream_job_free(c, j);
		walk_drop_kids(dir);
		/* its parent, queued, may be complete now */
		if (up && up->user_kind == NODE_QUEUED) {
			stream_job *pj = up->user;
			if (atomic_fetch_sub(&pj->left, 1) == 1) {
				pj->next = list;
				list = pj;
			}
		}
	}
}

int stream_first_dir(void *payload, walk_node *dir)
{
	take_ctx *c = payload;
	uint32_t nfiles = 0, nsub = 0;
	if (take_failed(c)) return 0;
	for (size_t i = 0; i < dir->nkids; i++) {
		const walk_node *k = dir->kids[i];
		if (k->type == TREE_DIR) {
			if (k->user_kind != NODE_QUEUED && k->user_kind != NODE_BUILT) return 0; /* a mount point, or left */
			nsub += k->user_kind == NODE_QUEUED;
		} else if (k->nlink > 1) {
			return 0; /* hardlink groups are numbered over the whole tree */
		} else if (k->type == TREE_REG && k->size > SMALL_FILE_MAX) {
			return 0; /* a large one: read as the walk found it (early_file) */
		} else {
			nfiles += k->type == TREE_REG;
		}
	}
	stream_job *j = calloc(1, sizeof(*j));
	if (j) {
		j->states = calloc(nfiles ? nfiles : 1, sizeof(*j->states));
		j->files = calloc(nfiles ? nfiles : 1, sizeof(*j->files));
	}
	if (!j || !j->states || !j->files) { /* built at the end instead */
		if (j) free(j->states);
		if (j) free(j->files);
		free(j);
		return 0;
	}
	j->dir = dir;
	for (size_t i = 0; i < dir->nkids; i++) {
		walk_node *k = dir->kids[i];
		if (k->type != TREE_REG) continue;
		file_state *fs = &j->states[j->nfiles];
		fs->node = k;
		k->user = fs;
		j->files[j->nfiles++] = fs;
	}
	atomic_init(&j->left, nfiles + nsub + 1); /* 1: until it is queued */
	dir->user = j;
	dir->user_kind = NODE_QUEUED;
	j->all_next = c->jobs_all;
	if (c->jobs_all) c->jobs_all->all_prev = j;
	c->jobs_all = j;
	c->stream_out += nfiles;
	if (nfiles) {
		pthread_mutex_lock(&c->jobs_lock);
		if (c->queue_tail) c->queue_tail->next = j;
		else c->queue = j;
		c->queue_tail = j;
		pthread_cond_broadcast(&c->jobs_cv);
		pthread_mutex_unlock(&c->jobs_lock);
	}
	stream_job_left(c, j, 1);
	stream_drain(c);
	/* the walk waits while the workers are far behind it: the nodes it
	 * makes meanwhile are the take's memory */
	while (c->stream_out > STREAM_AHEAD && !take_failed(c)) {
		int64_t until_ns = mono_ns() + 20 * 1000 * 1000;
		struct timespec until = {(time_t)(until_ns / 1000000000), (long)(until_ns % 1000000000)};
		pthread_mutex_lock(&c->jobs_lock);
		if (!c->done) pthread_cond_timedwait(&c->done_cv, &c->jobs_lock, &until);
		pthread_mutex_unlock(&c->jobs_lock);
		stream_drain(c);
	}
	return 0;
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
