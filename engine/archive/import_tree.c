/* Export and import (internal.h): the tree an import builds in memory: nodes
 * and inodes, the base snapshot loaded whole, paths. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void inode_unref(inode *i)
{
	if (!i || --i->links > 0) return;
	for (uint32_t k = 0; k < i->nxattrs; k++) {
		free(i->xattrs[k].name);
		free(i->xattrs[k].value);
	}
	free(i->xattrs);
	free(i->target);
	free(i->extents);
	free(i->chunks);
	free(i);
}

/* Free n and everything below it, the nodes still to free on a heap stack
 * (imports of any depth); out of memory for it, what is left leaks. */
void node_free(node *n)
{
	node **todo = NULL;
	size_t nt = 0, cap = 0;
	while (n) {
		if (n->nkids && nt + n->nkids > cap) {
			size_t want = (nt + n->nkids) * 2;
			node **v = realloc(todo, want * sizeof(*v));
			if (v) {
				todo = v;
				cap = want;
			} else {
				n->nkids = 0;
			}
		}
		for (size_t k = 0; k < n->nkids; k++) todo[nt++] = n->kids[k];
		free(n->kids);
		inode_unref(n->ino);
		free(n->name);
		free(n);
		n = nt ? todo[--nt] : NULL;
	}
	free(todo);
}

nframe *nstack_push(nstack *st, node *d)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 64;
		nframe *f = realloc(st->f, cap * sizeof(*f));
		if (!f) return NULL;
		st->f = f;
		st->cap = cap;
	}
	nframe *f = &st->f[st->n++];
	memset(f, 0, sizeof(*f));
	f->d = d;
	return f;
}

/* The path of the walk's position (names of the frames above k = 1),
 * before the current message. */
void nstack_prefix(const nstack *st)
{
	for (size_t i = st->n; i-- > 1;) error_prefix("%s", st->f[i].d->name);
}

/* Index of name among d's kids, or where it would go (*found = 0). Archives
 * usually come in name order, so the last slot is tried first. */
size_t kid_pos(const node *d, const char *name, size_t len, int *found)
{
	size_t lo = 0, hi = d->nkids;
	*found = 0;
	if (hi > 0) {
		const node *last = d->kids[hi - 1];
		int c = name_cmp(last->name, last->name_len, name, len);
		if (c < 0) return hi;
		if (c == 0) {
			*found = 1;
			return hi - 1;
		}
	}
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = name_cmp(d->kids[mid]->name, d->kids[mid]->name_len, name, len);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}

int kid_insert(node *d, size_t at, node *k)
{
	if (d->nkids == d->capkids) {
		size_t cap = d->capkids ? d->capkids * 2 : 8;
		node **n = realloc(d->kids, cap * sizeof(*n));
		if (!n) return ERR_OOM();
		d->kids = n;
		d->capkids = cap;
	}
	memmove(d->kids + at + 1, d->kids + at, (d->nkids - at) * sizeof(*d->kids));
	d->kids[at] = k;
	d->nkids++;
	return 0;
}

void kid_remove(node *d, size_t at)
{
	node_free(d->kids[at]);
	memmove(d->kids + at, d->kids + at + 1, (d->nkids - at - 1) * sizeof(*d->kids));
	d->nkids--;
}

node *node_new(const char *name, size_t len, inode *ino)
{
	node *n = calloc(1, sizeof(*n));
	if (!n || !(n->name = malloc(len + 1))) {
		free(n);
		return NULL;
	}
	memcpy(n->name, name, len);
	n->name[len] = 0;
	n->name_len = (uint16_t)len;
	n->ino = ino;
	return n;
}

typedef struct group_map {
	uint32_t *keys;
	inode **vals;
	size_t cap, n;
} group_map;

static inode **group_slot(group_map *g, uint32_t key)
{
	if (g->n * 2 >= g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		uint32_t *keys = calloc(cap, sizeof(*keys));
		inode **vals = calloc(cap, sizeof(*vals));
		if (!keys || !vals) {
			free(keys);
			free(vals);
			return NULL;
		}
		for (size_t i = 0; i < g->cap; i++) {
			if (!g->keys[i]) continue;
			size_t h = (g->keys[i] * 2654435761u) & (cap - 1);
			while (keys[h]) h = (h + 1) & (cap - 1);
			keys[h] = g->keys[i];
			vals[h] = g->vals[i];
		}
		free(g->keys);
		free(g->vals);
		g->keys = keys;
		g->vals = vals;
		g->cap = cap;
	}
	size_t h = (key * 2654435761u) & (g->cap - 1);
	while (g->keys[h] && g->keys[h] != key) h = (h + 1) & (g->cap - 1);
	if (!g->keys[h]) {
		g->keys[h] = key;
		g->n++;
	}
	return &g->vals[h];
}

static inode *inode_from_entry(const tree_entry *e)
{
	inode *i = calloc(1, sizeof(*i));
	if (!i) return NULL;
	i->type = e->type;
	i->mode = e->mode;
	i->uid = e->uid;
	i->gid = e->gid;
	i->mtime_sec = e->mtime_sec;
	i->mtime_nsec = e->mtime_nsec;
	i->size = e->type == TREE_REG ? e->size : 0;
	i->rdev_major = e->rdev_major;
	i->rdev_minor = e->rdev_minor;
	i->links = 1;
	i->base_data = e->type == TREE_REG;
	int bad = 0;
	if (e->nxattrs && !(i->xattrs = calloc(e->nxattrs, sizeof(*i->xattrs)))) bad = 1;
	for (uint32_t k = 0; !bad && k < e->nxattrs; k++) {
		ixattr *x = &i->xattrs[i->nxattrs++];
		x->name = strndup(e->xattrs[k].name, e->xattrs[k].name_len);
		x->value = malloc(e->xattrs[k].value_len ? e->xattrs[k].value_len : 1);
		x->len = e->xattrs[k].value_len;
		if (!x->name || !x->value) bad = 1;
		else memcpy(x->value, e->xattrs[k].value, x->len);
	}
	if (!bad && e->type == TREE_SYMLINK) {
		if (!(i->target = strndup(e->target, e->target_len))) bad = 1;
		i->target_len = e->target_len;
	}
	if (!bad && e->type == TREE_REG && e->nextents) {
		if (!(i->extents = malloc(e->nextents * sizeof(tree_extent)))) bad = 1;
		else memcpy(i->extents, e->extents, e->nextents * sizeof(tree_extent));
		i->nextents = e->nextents;
	}
	if (!bad && e->type == TREE_REG && e->nchunks) {
		if (!(i->chunks = malloc(e->nchunks * sizeof(tree_chunk)))) bad = 1;
		else memcpy(i->chunks, e->chunks, e->nchunks * sizeof(tree_chunk));
		i->nchunks = i->capchunks = e->nchunks;
	}
	if (bad) {
		inode_unref(i);
		return NULL;
	}
	return i;
}

/* d's kids, and everything below, from the base's tree id. */
static int load_base_dir(ictx *c, node *d, const oid *id, group_map *g)
{
	nstack st = {NULL, 0, 0};
	nframe *f = nstack_push(&st, d);
	int rc = f ? repo_load_tree(c->repo, id, &f->t) : ERR_OOM();
	if (rc < 0) st.n = 0;
	while (rc == 0 && st.n > 0) {
		f = &st.f[st.n - 1];
		d = f->d;
		if (f->k == 0 && f->t.n && !d->kids) {
			if (!(d->kids = calloc(f->t.n, sizeof(*d->kids)))) {
				rc = ERR_OOM();
				break;
			}
			d->capkids = f->t.n;
		}
		if (f->k == f->t.n) {
			tree_free(&f->t);
			st.n--;
			continue;
		}
		const tree_entry *e = &f->t.entries[f->k++];
		inode *ino = NULL, **slot = NULL;
		if (e->hardlink && e->type != TREE_DIR) {
			if (!(slot = group_slot(g, e->hardlink))) {
				rc = ERR_OOM();
				break;
			}
			if ((ino = *slot)) ino->links++;
		}
		if (!ino && !(ino = inode_from_entry(e))) {
			rc = ERR_OOM();
			break;
		}
		if (slot) *slot = ino;
		node *n = node_new(e->name, e->name_len, ino);
		if (!n) {
			inode_unref(ino);
			rc = ERR_OOM();
			break;
		}
		n->from_base = 1;
		d->kids[d->nkids++] = n;
		if (e->type != TREE_DIR) continue;
		oid sub = e->subtree; /* the push may move f's tree */
		if (!(f = nstack_push(&st, n))) {
			rc = ERR_OOM();
			break;
		}
		if ((rc = repo_load_tree(c->repo, &sub, &f->t)) < 0) {
			nstack_prefix(&st);
			st.n--;
		}
	}
	while (st.n > 0) tree_free(&st.f[--st.n].t);
	free(st.f);
	return rc;
}

int load_base(ictx *c, const char *base_id)
{
	snapshot_manifest m;
	tree top = {0};
	group_map g = {0};
	int rc = repo_load_snapshot(c->repo, base_id, &m);
	if (rc < 0) return rc;
	if ((rc = repo_load_tree(c->repo, &m.tree, &top)) < 0) goto done;
	if (top.n != 1 || top.entries[0].type != TREE_DIR) {
		rc = error_set(CAIRN_ECORRUPT, "top tree must hold one directory");
		goto done;
	}
	inode *ri = inode_from_entry(&top.entries[0]);
	if (!ri || !(c->root = node_new("", 0, ri))) {
		inode_unref(ri);
		rc = ERR_OOM();
		goto done;
	}
	c->root->from_base = 1;
	rc = load_base_dir(c, c->root, &top.entries[0].subtree, &g);
done:
	if (rc < 0) error_prefix("base %.12s", base_id);
	free(g.keys);
	free(g.vals);
	if (top.mem) tree_free(&top);
	snapshot_manifest_free(&m);
	return rc;
}

void comps_free(comps *cp)
{
	free(cp->p);
	free(cp->len);
	memset(cp, 0, sizeof(*cp));
}

/* Split an archive path into components: "." and empty ones dropped; an
 * absolute path or a ".." component refused. */
int split_path(const char *path, comps *cp, const char *what)
{
	size_t max = 1;
	memset(cp, 0, sizeof(*cp));
	if (!path) return error_set(CAIRN_ECORRUPT, "%s without a path", what);
	if (path[0] == '/') return error_set(CAIRN_EUSAGE, "%s %s: absolute path refused", what, path);
	for (const char *s = path; *s; s++)
		if (*s == '/') max++;
	if (!(cp->p = calloc(max, sizeof(*cp->p))) || !(cp->len = calloc(max, sizeof(*cp->len)))) {
		comps_free(cp);
		return ERR_OOM();
	}
	for (const char *s = path; *s;) {
		size_t n = strcspn(s, "/");
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			comps_free(cp);
			return error_set(CAIRN_EUSAGE, "%s %s: \"..\" component refused", what, path);
		}
		if (n > 0 && !(n == 1 && s[0] == '.')) {
			if (!tree_name_ok(s, n)) {
				comps_free(cp);
				return error_set(CAIRN_EUSAGE, "%s %s: a component is longer than %d bytes", what,
				                 path, MAX_NAME_LEN);
			}
			cp->p[cp->n] = s;
			cp->len[cp->n++] = n;
		}
		s += n;
		while (*s == '/') s++;
	}
	return 0;
}

inode *dir_inode(void)
{
	inode *i = calloc(1, sizeof(*i));
	if (!i) return NULL;
	i->type = TREE_DIR;
	i->mode = S_IFDIR | 0755;
	i->links = 1;
	return i;
}

/* The directory holding the last component, created (0755, root, time 0)
 * where the archive did not list it. A non-directory on the way is refused:
 * that is how a symlink would be written through. */
int import_parent_of(ictx *c, const comps *cp, node **out)
{
	node *d = c->root;
	for (size_t k = 0; k + 1 < cp->n; k++) {
		int found;
		size_t at = kid_pos(d, cp->p[k], cp->len[k], &found);
		if (!found) {
			inode *ino = dir_inode();
			node *n = ino ? node_new(cp->p[k], cp->len[k], ino) : NULL;
			if (!n) {
				inode_unref(ino);
				return ERR_OOM();
			}
			if (kid_insert(d, at, n) < 0) {
				node_free(n);
				return ERR_OOM();
			}
		}
		d = d->kids[at];
		if (d->ino->type != TREE_DIR)
			return error_set(CAIRN_EUSAGE, "entry %s: %.*s is not a directory (%s); refused",
			                 c->entry, (int)(cp->p[k] + cp->len[k] - cp->p[0]), cp->p[0],
			                 d->ino->type == TREE_SYMLINK ? "a symlink" : "a file");
	}
	*out = d;
	return 0;
}

/* The node at a path, without creating anything; NULL if absent. */
node *node_lookup(ictx *c, const comps *cp)
{
	node *d = c->root;
	for (size_t k = 0; k < cp->n; k++) {
		int found;
		if (d->ino->type != TREE_DIR) return NULL;
		size_t at = kid_pos(d, cp->p[k], cp->len[k], &found);
		if (!found) return NULL;
		d = d->kids[at];
	}
	return d;
}
