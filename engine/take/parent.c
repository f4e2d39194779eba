/* The take (take.h): the parent: finding it, its trees loaded as the walk's
 * prior, reuse of its chunk lists (and the pre-copy's), restore records. */
#include "take.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cairn.h"
#include "error.h"
#include "pack.h"
#include "restored.h"

/* Unchanged since the parent: inode number, ctime, size and mtime (p, the
 * parent's prior node, has them). */
int same_file(const walk_node *n, const walk_node *p)
{
	return p->type == TREE_REG && p->ino != 0 && p->ino == n->ino && p->size == n->size &&
	       p->mtime_sec == n->mtime_sec && p->mtime_nsec == n->mtime_nsec && p->ctime_sec == n->ctime_sec &&
	       p->ctime_nsec == n->ctime_nsec;
}

/* 1 when every chunk is usable (present, not marked by gc): the take then
 * references them all already. */
static int chunks_present(take_ctx *c, const prior_file *pf)
{
	return writer_ref_chunks(c->writer, pf->chunks, pf->nchunks);
}

/* fs gets content captured before (copies of the lists): not read again. */
static int reuse_content(file_state *fs, uint64_t size, const tree_chunk *chunks, uint32_t nchunks,
                         const tree_extent *extents, uint32_t nextents)
{
	fs->size = size;
	if (nchunks && !(fs->chunks = malloc(nchunks * sizeof(tree_chunk)))) return ERR_OOM();
	if (nchunks) memcpy(fs->chunks, chunks, nchunks * sizeof(tree_chunk));
	fs->nchunks = fs->cap = nchunks;
	if (nextents && !(fs->extents = malloc(nextents * sizeof(tree_extent)))) return ERR_OOM();
	if (nextents) memcpy(fs->extents, extents, nextents * sizeof(tree_extent));
	fs->nextents = nextents;
	fs->reused = REUSED_COPY;
	fs->captured = 1;
	return 0;
}

/* A copy of a file's content lists in mem's arena; NULL when out of memory. */
static prior_file *prior_file_copy(walk_node *mem, const tree_extent *extents, uint32_t nextents,
                                   const tree_chunk *chunks, uint32_t nchunks)
{
	size_t ext_len = nextents * sizeof(tree_extent), chunks_len = nchunks * sizeof(tree_chunk);
	prior_file *pf = walk_alloc(mem, sizeof(*pf) + ext_len + chunks_len); /* extents first: aligned */
	if (!pf) return NULL;
	tree_extent *ext = (tree_extent *)(pf + 1);
	tree_chunk *ch = (tree_chunk *)((char *)ext + ext_len);
	if (ext_len) memcpy(ext, extents, ext_len);
	if (chunks_len) memcpy(ch, chunks, chunks_len);
	*pf = (prior_file){ext, ch, nextents, nchunks};
	return pf;
}

void keep_reusable(take_ctx *c, walk_node *n, const prior_file *pf)
{
	/* streamed: with n, so that it goes with n's directory */
	if (!c->stream && !c->reuse_mem && !(c->reuse_mem = walk_node_new("", 0, NULL))) return;
	prior_file *kept = prior_file_copy(c->stream ? n : c->reuse_mem, pf->extents, pf->nextents, pf->chunks, pf->nchunks);
	if (!kept) return;
	n->user = kept;
	n->user_kind = NODE_REUSABLE;
}

int reuse_walked(take_ctx *c)
{
	int rc = 0;
	for (size_t i = 0; i < c->nstates && rc >= 0; i++) {
		file_state *fs = &c->states[i];
		if (fs->reused != REUSED_BORROWED || fs->captured) continue; /* captured: referenced by stream_dir */
		/* a follower gets its leader's content */
		if (!fs->leader && (rc = writer_ref_chunks(c->writer, fs->chunks, fs->nchunks)) == 1) {
			fs->captured = 1;
			continue;
		}
		if (rc >= 0 && !fs->leader) keep_prior_cuts(fs, fs->node, fs->chunks, fs->nchunks, fs->nextents);
		fs->chunks = NULL; /* read */
		fs->extents = NULL;
		fs->nchunks = fs->nextents = fs->cap = 0;
		fs->size = 0;
		fs->reused = 0;
	}
	return rc < 0 ? rc : 0;
}

/* repo_walk_trees' stored for load_prior_trees: a copy of the parent's
 * tree as its pack stores it (compressed: a third of its plain bytes) at
 * its place in the walk (the place v->tree_at gives its id), decompressed
 * and decoded only when the take's walk reaches that directory. */
static int keep_prior_tree(void *payload, uint32_t seq, const tree_stored *s)
{
	parent_view *v = payload;
	if (seq >= v->cap_trees) {
		size_t cap = v->cap_trees ? 2 * v->cap_trees : 256;
		if (cap <= seq) cap = (size_t)seq + 1;
		prior_bytes *nt = realloc(v->trees, cap * sizeof(*nt));
		if (!nt) return ERR_OOM();
		memset(nt + v->cap_trees, 0, (cap - v->cap_trees) * sizeof(*nt)); /* places not yet read */
		v->trees = nt;
		v->cap_trees = cap;
	}
	if (!(v->trees[seq].stored = malloc(s->len ? s->len : 1))) return ERR_OOM();
	memcpy(v->trees[seq].stored, s->bytes, s->len);
	v->trees[seq].len = s->len;
	v->trees[seq].plain_len = s->plain_len;
	v->trees[seq].comp = s->comp;
	if (seq >= v->ntrees) v->ntrees = (size_t)seq + 1;
	return 0;
}

/* repo_walk_trees' visit for load_prior_trees: keep_prior_tree kept it. */
static int prior_tree_seen(void *payload, uint32_t seq, const oid *id, tree *t, const uint8_t *plain,
                           size_t len)
{
	(void)payload, (void)seq, (void)id, (void)t, (void)plain, (void)len;
	return 0;
}

/* A prior node for entry e (a directory or a regular file: nothing else is
 * ever found unchanged) in dir, allocated in mem's arena. Only a regular
 * file with an inode number can be, so only those carry xattrs, and only
 * when the walk may take them. */
static int prior_node(const parent_view *v, walk_node *dir, walk_node *mem, const tree_entry *e,
                      const inode_item *it, walk_node **out)
{
	walk_node *n = *out = walk_node_new(e->name, e->name_len, mem);
	if (!n) return ERR_OOM();
	n->parent = dir;
	n->type = e->type;
	dir->kids[dir->nkids++] = n;
	if (e->type != TREE_REG) return 0;
	if (!(n->user = prior_file_copy(n, e->extents, e->nextents, e->chunks, e->nchunks))) return ERR_OOM();
	n->size = e->size;
	n->mtime_sec = e->mtime_sec;
	n->mtime_nsec = e->mtime_nsec;
	n->ino = it ? it->value : e->ino;
	n->ctime_sec = it ? it->ctime_sec : e->ctime_sec;
	n->ctime_nsec = it ? it->ctime_nsec : e->ctime_nsec;
	n->dev_major = v->dev_major; /* the walk's entries are all on the root's filesystem */
	n->dev_minor = v->dev_minor;
	if (!n->ino || !e->nxattrs || (!v->start.tv_sec && !v->start.tv_nsec)) return 0;
	if (!(n->xattrs = walk_alloc(n, e->nxattrs * sizeof(*n->xattrs)))) return ERR_OOM();
	int rc = 0;
	for (uint32_t i = 0; i < e->nxattrs && rc == 0; i++)
		rc = walk_xattr_add(n, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].value_len);
	return rc;
}

/* The bytes of every tree of the parent into v->trees and v->tree_at
 * (repo_walk_trees: level by level, in batches: a round trip per level,
 * not per directory, on a remote store). */
static int load_prior_trees(take_ctx *c, parent_view *v)
{
	int rc = index_new(&v->tree_at);
	tree_walk w = {prior_tree_seen, NULL, v, v->tree_at, 0, keep_prior_tree};
	if (rc == 0) rc = repo_walk_trees(c->repo, &v->root, &w);
	return rc;
}

/* The parent's item of entry e in the inodes record at *pos, when the
 * record still fits the trees; *pos moves past it (and a directory's). */
static const inode_item *next_item(parent_view *v, const tree_entry *e, size_t *pos)
{
	uint8_t kind = e->type == TREE_DIR ? INODE_DIR : e->type == TREE_REG ? INODE_REG : 0;
	if (!kind || !v->inodes_ok) return NULL; /* only those two have items */
	const inode_item *it = *pos < v->inodes.n ? &v->inodes.v[*pos] : NULL;
	if (!it || it->kind != kind || (kind == INODE_DIR && it->value > v->inodes.n - *pos - 1)) {
		v->inodes_ok = 0; /* from here on, only old trees' inode numbers */
		return NULL;
	}
	*pos += 1 + (kind == INODE_DIR ? it->value : 0);
	return it;
}

/* The decoded tree of the prior's directory d: from the bytes read ahead
 * (freed then), or read again for a directory met twice (identical
 * subtrees share one id). */
static int prior_tree(take_ctx *c, parent_view *v, const prior_dir *d, tree *t)
{
	const index_entry *at = index_key_get(v->tree_at, d->id.b, OID_LEN);
	prior_bytes *b = at && at->offset < v->ntrees ? &v->trees[at->offset] : NULL;
	if (!b || !b->stored) return repo_load_tree(c->repo, &d->id, t);
	char what[80], hex[OID_HEX_LEN + 1];
	oid_hex(hex, &d->id);
	snprintf(what, sizeof(what), "tree %s", hex);
	uint8_t *plain = malloc(b->plain_len ? b->plain_len : 1);
	int rc = plain ? pack_unstore(b->comp, b->stored, b->len, plain, b->plain_len, what) : ERR_OOM();
	if (rc == 0) rc = tree_decode(t, plain, b->plain_len, what);
	free(plain);
	free(b->stored);
	b->stored = NULL;
	return rc;
}

/* walk_options.prior_dir: the kids of the prior's directory pd, from the
 * parent's tree, as the walk reaches it. Its subdirectories are nodes of
 * the prior for the rest of the take; its files' nodes live in an arena of
 * pd's own, dropped once the walk has compared them (prior_done). */
static int load_prior_kids(void *payload, const walk_node *pd)
{
	take_ctx *c = payload;
	parent_view *v = c->parent;
	walk_node *dir = (walk_node *)pd; /* the prior is the take's: filled in here */
	prior_dir *d = dir->user;
	if (!d || d->loaded) return 0;
	if (v->nloaded == v->cap_loaded) { /* its arena freed with the view, unless dropped before */
		size_t cap = v->cap_loaded ? v->cap_loaded * 2 : 64;
		prior_dir **l = realloc(v->loaded, cap * sizeof(*l));
		if (!l) return ERR_OOM();
		v->loaded = l;
		v->cap_loaded = cap;
	}
	v->loaded[v->nloaded++] = d;
	d->loaded = 1;
	tree t = {0};
	int rc = prior_tree(c, v, d, &t);
	if (rc == 0 && t.n && !(d->mem = walk_node_new("", 0, NULL))) rc = ERR_OOM();
	if (rc == 0 && t.n && !(dir->kids = walk_alloc(d->mem, t.n * sizeof(*dir->kids)))) rc = ERR_OOM();
	size_t pos = d->item;
	for (size_t i = 0; rc == 0 && i < t.n; i++) {
		const tree_entry *e = &t.entries[i];
		size_t kid_item = pos + 1;
		const inode_item *it = next_item(v, e, &pos);
		if (e->type != TREE_DIR && e->type != TREE_REG) continue;
		walk_node *k;
		if ((rc = prior_node(v, dir, e->type == TREE_DIR ? dir : d->mem, e, it, &k)) < 0) break;
		if (e->type != TREE_DIR) continue;
		prior_dir *kd = walk_alloc(k, sizeof(*kd));
		if (!kd) {
			rc = ERR_OOM();
			break;
		}
		/* inodes_read checked that its items fit */
		*kd = (prior_dir){e->subtree, kid_item, it ? pos : 0, it != NULL, NULL, 0};
		k->user = kd;
	}
	if (rc == 0 && d->has_end && pos != d->end) v->inodes_ok = 0;
	tree_free(&t);
	if (rc < 0) error_prefix("parent");
	return rc;
}

/* walk_options.prior_done: the files of the prior's directory pd are of no
 * more use (the take kept what it reuses of them: early_file). */
static void drop_prior_kids(void *payload, const walk_node *pd)
{
	(void)payload;
	walk_node *dir = (walk_node *)pd;
	prior_dir *d = dir->user;
	if (!d || !d->mem) return;
	walk_free(d->mem);
	d->mem = NULL;
	dir->kids = NULL;
	dir->nkids = 0;
}

void prior_walk_options(take_ctx *c, parent_view *v, walk_options *wo, int drop)
{
	c->parent = v;
	wo->prior = v->prior;
	wo->prior_start = v->start;
	wo->prior_dir = load_prior_kids;
	wo->prior_done = drop ? drop_prior_kids : NULL;
	wo->payload = c;
}

int load_prior_whole(take_ctx *c, parent_view *v)
{
	walk_node **stack = malloc(64 * sizeof(*stack));
	size_t n = 0, cap = 64;
	int rc = stack ? 0 : ERR_OOM();
	c->parent = v;
	if (rc == 0) stack[n++] = v->prior;
	while (rc == 0 && n > 0) { /* a heap stack: any depth costs memory, not C stack */
		walk_node *dir = stack[--n];
		if ((rc = load_prior_kids(c, dir)) < 0) break;
		for (size_t i = 0; i < dir->nkids && rc == 0; i++) {
			if (dir->kids[i]->type != TREE_DIR) continue;
			if (n == cap) {
				walk_node **s = realloc(stack, 2 * cap * sizeof(*s));
				if (!s) {
					rc = ERR_OOM();
					break;
				}
				stack = s;
				cap *= 2;
			}
			stack[n++] = dir->kids[i];
		}
	}
	free(stack);
	c->parent = NULL;
	return rc;
}

static void free_prior_trees(parent_view *v)
{
	for (size_t i = 0; i < v->ntrees; i++) free(v->trees[i].stored);
	free(v->trees);
	v->trees = NULL;
	index_free(v->tree_at);
	v->tree_at = NULL;
	v->ntrees = v->cap_trees = 0;
}

/* Reads the parent's trees for v->prior, its root directory, whose kids
 * the walk loads as it goes (prior_walk_options); root_path names the
 * root in messages. */
int load_prior(take_ctx *c, parent_view *v, const char *root_path)
{
	struct stat root;
	if (fstat(c->rootfd, &root) < 0) return error_errno(CAIRN_EIO, errno, "root %s: stat", root_path);
	v->dev_major = major(root.st_dev);
	v->dev_minor = minor(root.st_dev);
	v->inodes_ok = v->inodes.n > 0;
	if (!(v->prior = walk_node_new("", 0, NULL))) return ERR_OOM();
	v->prior->type = TREE_DIR;
	prior_dir *d = walk_alloc(v->prior, sizeof(*d));
	if (!d) return ERR_OOM();
	*d = (prior_dir){v->root, 0, 0, 0, NULL, 0};
	v->prior->user = d;
	int rc = load_prior_trees(c, v);
	if (rc < 0) error_prefix("parent");
	return rc;
}

void parent_view_free(parent_view *v)
{
	for (size_t i = 0; i < v->nloaded; i++) walk_free(v->loaded[i]->mem); /* those not dropped */
	free(v->loaded);
	v->loaded = NULL;
	v->nloaded = v->cap_loaded = 0;
	walk_free(v->prior);
	v->prior = NULL;
	free_prior_trees(v);
	inodes_free(&v->inodes);
}


/* A directory of this take walked beside its namesake in another walk
 * (the parent's, the pre-copy's): the next kid, and where the other's
 * search goes on. */
typedef struct pair_frame {
	walk_node *dir;
	const walk_node *other;
	size_t i, at;
} pair_frame;

typedef struct pair_walk {
	pair_frame *f;
	size_t n, cap;
} pair_walk;

static int pair_enter(pair_walk *pw, walk_node *dir, const walk_node *other)
{
	if (pw->n == pw->cap) {
		size_t cap = pw->cap ? pw->cap * 2 : 64;
		pair_frame *f = realloc(pw->f, cap * sizeof(*f));
		if (!f) return ERR_OOM();
		pw->f = f;
		pw->cap = cap;
	}
	pw->f[pw->n++] = (pair_frame){dir, other, 0, 0};
	return 0;
}

/* The next kid k of the walk that has a namesake of its type in the other
 * walk (*other), depth first; NULL at the end. Enter k with pair_enter to
 * go below it. */
static walk_node *pair_next(pair_walk *pw, const walk_node **other)
{
	while (pw->n > 0) {
		pair_frame *f = &pw->f[pw->n - 1];
		if (f->i == f->dir->nkids) {
			pw->n--;
			continue;
		}
		walk_node *k = f->dir->kids[f->i++];
		const walk_node *p = walk_find_kid_from(f->other, &f->at, k->name, k->name_len);
		if (!p || p->type != k->type) continue;
		*other = p;
		return k;
	}
	return NULL;
}

/* Give unchanged files their parent's chunk lists, so they are not read. */
int reuse_from_parent(take_ctx *c, walk_node *dir, const walk_node *pdir)
{
	pair_walk pw = {NULL, 0, 0};
	int rc = pair_enter(&pw, dir, pdir);
	const walk_node *p;
	for (walk_node *k; rc == 0 && (k = pair_next(&pw, &p));) {
		if (k->type == TREE_DIR && !k->is_mount) {
			rc = pair_enter(&pw, k, p);
		} else if (k->type == TREE_REG && !((file_state *)k->user)->leader) {
			const prior_file *pf = p->user;
			if (same_file(k, p) && (rc = chunks_present(c, pf)) == 1)
				rc = reuse_content(k->user, p->size, pf->chunks, pf->nchunks, pf->extents, pf->nextents);
			else if (rc >= 0) /* read: hardlinked, or not found by the walk's early reads */
				keep_prior_cuts(k->user, k, pf->chunks, pf->nchunks, pf->nextents);
		}
	}
	free(pw.f);
	return rc;
}

/* Content unchanged since the pre-copy captured it: the same inode and
 * ctime, that ctime before the pre-copy started (walk_unchanged_since),
 * and (belt and braces) the same size and mtime. */
static int unchanged_since(const walk_node *k, const walk_node *p, const struct timespec *start)
{
	return walk_unchanged_since(k, p, start) && k->size == p->size && k->mtime_sec == p->mtime_sec &&
	       k->mtime_nsec == p->mtime_nsec;
}

/* Give files the pre-copy captured and that have not changed since its
 * content, so that the frozen capture reads only what changed. */
int reuse_from_precopy(take_ctx *c, walk_node *dir, const walk_node *pre_dir,
                       const struct timespec *start)
{
	pair_walk pw = {NULL, 0, 0};
	int rc = pair_enter(&pw, dir, pre_dir);
	const walk_node *p;
	for (walk_node *k; rc == 0 && (k = pair_next(&pw, &p));) {
		if (k->type == TREE_DIR) {
			if (!k->is_mount && !p->is_mount) rc = pair_enter(&pw, k, p);
			continue;
		}
		file_state *fs = k->user;
		if (k->type != TREE_REG || fs->leader) continue; /* a follower gets its leader's */
		const file_state *ps = p->user;
		if (ps->leader) ps = ps->leader;
		if (!ps->captured) continue;
		if (ps->size != p->size || !unchanged_since(k, p, start) ||
		    (rc = writer_ref_chunks(c->writer, ps->chunks, ps->nchunks)) != 1) {
			/* changed since the pre-copy (a log written to, say): read
			 * again while frozen, cut where the pre-copy cut it */
			if (rc >= 0) keep_prior_cuts(fs, k, ps->chunks, ps->nchunks, ps->nextents);
			continue;
		}
		rc = reuse_content(fs, ps->size, ps->chunks, ps->nchunks, ps->extents, ps->nextents);
	}
	free(pw.f);
	return rc;
}

/* parent: the user's latest snapshot of root_path (or --parent); kin: the
 * user's latest snapshot of any root, for a take without a parent (a new
 * instance restored from a snapshot): its refs give known stored sizes
 * and the base of this take's refs delta. */
int find_parent(cairn_repo *repo, const cairn_take_options *o, const char *user,
                const char *root_path, char parent[OID_HEX_LEN + 1], char kin[OID_HEX_LEN + 1])
{
	parent[0] = kin[0] = 0;
	if (o->no_parent) return 0;
	if (o->parent) return cairn_snapshot_resolve(parent, repo, o->parent, o->user);
	cairn_snapshot_list *l;
	int rc = cairn_snapshot_list_load(&l, repo, user);
	if (rc < 0) return rc;
	for (size_t i = cairn_snapshot_list_count(l); i-- > 0;) {
		const cairn_snapshot_info *s = cairn_snapshot_list_get(l, i);
		if (!kin[0]) memcpy(kin, s->id, OID_HEX_LEN + 1);
		if (strcmp(s->root_path, root_path) == 0) {
			memcpy(parent, s->id, OID_HEX_LEN + 1);
			break;
		}
	}
	cairn_snapshot_list_free(l);
	return 0;
}

/* The parent snapshot: its user's refs give the writer stored sizes
 * without index lookups; view (unless NULL) gets its content tree's id and
 * its inodes record. */
int load_parent(take_ctx *c, const char *parent, parent_view *view)
{
	snapshot_manifest pm;
	int rc = repo_load_snapshot(c->repo, parent, &pm);
	if (rc < 0) return rc;
	writer_parent(c->writer, pm.user, parent);
	tree top = {0};
	if (view) rc = repo_load_tree(c->repo, &pm.tree, &top);
	if (view && rc == 0 && (top.n != 1 || top.entries[0].type != TREE_DIR))
		rc = error_set(CAIRN_ECORRUPT, "snapshot %s: bad top tree", parent);
	if (view && rc == 0) {
		view->root = top.entries[0].subtree;
		/* duration_ms runs from the start to the commit; a second more for clock steps */
		int64_t start = pm.time_ns - (int64_t)pm.duration_ms * 1000000 - 1000000000;
		view->start.tv_sec = start > 0 ? start / 1000000000 : 0;
		view->start.tv_nsec = start > 0 ? start % 1000000000 : 0;
		if (inodes_read(c->repo, parent, &view->inodes) < 0)
			error_clear(); /* none or damaged: only old trees' inode numbers are compared */
	}
	if (top.mem) tree_free(&top);
	snapshot_manifest_free(&pm);
	if (rc < 0) error_prefix("parent");
	return rc;
}

/* A restore record of the root (restored.h): the view is then its snapshot's
 * tree with the inode numbers and ctimes the restore gave. 1 when it is
 * used, 0 when there is none, -1 when there is one but it is of no use
 * (damaged, or its snapshot is gone): a notice, the take reads every file. */
int use_restore_record(take_ctx *c, const cairn_take_options *o, parent_view *view)
{
	oid snap;
	inode_list rec;
	char hex[OID_HEX_LEN + 1];
	int rc = restored_get(c->repo->settings.state_dir, c->rootfd, &snap, &rec);
	if (rc == CAIRN_ENOTFOUND) {
		error_clear();
		return 0;
	}
	if (rc == 0) {
		hex_encode(hex, snap.b, OID_LEN);
		rc = load_parent(c, hex, view);
	}
	if (rc == 0) {
		inodes_free(&view->inodes);
		view->inodes = rec;
		/* a restore may have left out xattrs it could not set (not root):
		 * the restored files' xattrs are read, not taken from the trees */
		view->start.tv_sec = view->start.tv_nsec = 0;
		return 1;
	}
	inodes_free(&rec);
	char msg[1024];
	snprintf(msg, sizeof(msg), "restore record not used (%s): every file is read", cairn_error_last());
	take_notice(o, msg);
	error_clear();
	return -1;
}
