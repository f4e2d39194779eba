/* diff: two snapshots compared tree by tree. Trees are content-addressed, so
 * equal subtree ids mean equal subtrees: only directories whose ids differ
 * are loaded, and a change of ten files in a large tree reads the trees on
 * the paths to those ten files. */
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "repo.h"
#include "tree.h"

typedef struct dstate {
	cairn_repo *repo;
	cairn_diff_cb cb;
	void *payload;
	cairn_diff_result res;
	char *path;
	size_t len, cap;
} dstate;

static int xattrs_equal(const tree_entry *a, const tree_entry *b)
{
	if (a->nxattrs != b->nxattrs) return 0;
	for (uint32_t i = 0; i < a->nxattrs; i++) {
		const tree_xattr *x = &a->xattrs[i], *y = &b->xattrs[i];
		if (x->name_len != y->name_len || memcmp(x->name, y->name, x->name_len) != 0 ||
		    x->value_len != y->value_len ||
		    (x->value_len && memcmp(x->value, y->value, x->value_len) != 0))
			return 0;
	}
	return 1;
}

static int content_equal(const tree_entry *a, const tree_entry *b)
{
	if (a->nextents != b->nextents || a->nchunks != b->nchunks) return 0;
	for (uint32_t i = 0; i < a->nextents; i++)
		if (a->extents[i].offset != b->extents[i].offset ||
		    a->extents[i].length != b->extents[i].length)
			return 0;
	for (uint32_t i = 0; i < a->nchunks; i++)
		if (a->chunks[i].size != b->chunks[i].size || oid_cmp(&a->chunks[i].id, &b->chunks[i].id))
			return 0;
	return 1;
}

/* CAIRN_CHANGED_* bits; 0 when the entries are the same. */
static unsigned changes_of(const tree_entry *a, const tree_entry *b)
{
	unsigned c = 0;
	if (a->type != b->type) return CAIRN_CHANGED_TYPE;
	if (a->mode != b->mode) c |= CAIRN_CHANGED_MODE;
	if (a->uid != b->uid || a->gid != b->gid) c |= CAIRN_CHANGED_OWNER;
	if (a->type != TREE_DIR && a->size != b->size) c |= CAIRN_CHANGED_SIZE;
	if (a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec) c |= CAIRN_CHANGED_MTIME;
	if (a->type == TREE_REG && !content_equal(a, b)) c |= CAIRN_CHANGED_CONTENT;
	if (!xattrs_equal(a, b)) c |= CAIRN_CHANGED_XATTRS;
	if (a->type == TREE_SYMLINK &&
	    (a->target_len != b->target_len || memcmp(a->target, b->target, a->target_len) != 0))
		c |= CAIRN_CHANGED_TARGET;
	if ((a->type == TREE_CHR || a->type == TREE_BLK) &&
	    (a->rdev_major != b->rdev_major || a->rdev_minor != b->rdev_minor))
		c |= CAIRN_CHANGED_RDEV;
	return c;
}

/* Append "/name" (or "name" at the top) to the path; returns the old length. */
static int path_push(dstate *s, const tree_entry *e, size_t *old)
{
	size_t need = s->len + 1 + e->name_len + 1;
	if (need > s->cap) {
		size_t cap = need * 2;
		char *p = realloc(s->path, cap);
		if (!p) return ERR_OOM();
		s->path = p;
		s->cap = cap;
	}
	*old = s->len;
	if (s->len) s->path[s->len++] = '/';
	memcpy(s->path + s->len, e->name, e->name_len);
	s->len += e->name_len;
	s->path[s->len] = 0;
	return 0;
}

static int report(dstate *s, cairn_diff_kind kind, unsigned changes, const tree_entry *a,
                  const tree_entry *b)
{
	cairn_entry ca, cb;
	if (a) tree_entry_public(&ca, a);
	if (b) tree_entry_public(&cb, b);
	cairn_diff_item item = {kind, s->path, s->len, changes, a ? &ca : NULL, b ? &cb : NULL};
	if (kind == CAIRN_DIFF_ADDED) s->res.added++;
	else if (kind == CAIRN_DIFF_REMOVED) s->res.removed++;
	else s->res.changed++;
	return s->cb ? s->cb(&item, s->payload) : 0;
}

static int load(dstate *s, const oid *id, tree *t)
{
	int rc = repo_load_tree(s->repo, id, t);
	if (rc < 0) {
		error_prefix("/%s", s->path);
		return rc;
	}
	s->res.trees_read++;
	return 0;
}

static int diff_trees(dstate *s, const oid *a, const oid *b);

/* Everything in subtree, reported as kind. */
static int one_side(dstate *s, const oid *subtree, cairn_diff_kind kind)
{
	tree t;
	int rc = load(s, subtree, &t);
	if (rc < 0) return rc;
	for (size_t i = 0; i < t.n && rc == 0; i++) {
		const tree_entry *e = &t.entries[i];
		size_t old = 0; /* set by path_push; the compiler cannot tell */
		if ((rc = path_push(s, e, &old)) < 0) break;
		rc = report(s, kind, 0, kind == CAIRN_DIFF_REMOVED ? e : NULL,
		            kind == CAIRN_DIFF_ADDED ? e : NULL);
		if (rc == 0 && e->type == TREE_DIR) rc = one_side(s, &e->subtree, kind);
		s->len = old;
		s->path[old] = 0;
	}
	tree_free(&t);
	return rc;
}

/* Entry present in both trees (same name). */
static int diff_entry(dstate *s, const tree_entry *a, const tree_entry *b)
{
	size_t old;
	int rc = path_push(s, a, &old);
	if (rc < 0) return rc;
	unsigned c = changes_of(a, b);
	if (c) rc = report(s, CAIRN_DIFF_CHANGED, c, a, b);
	if (rc == 0) {
		if (a->type == TREE_DIR && b->type == TREE_DIR) {
			if (oid_cmp(&a->subtree, &b->subtree)) rc = diff_trees(s, &a->subtree, &b->subtree);
		} else if (a->type == TREE_DIR) {
			rc = one_side(s, &a->subtree, CAIRN_DIFF_REMOVED);
		} else if (b->type == TREE_DIR) {
			rc = one_side(s, &b->subtree, CAIRN_DIFF_ADDED);
		}
	}
	s->len = old;
	s->path[old] = 0;
	return rc;
}

static int name_cmp(const tree_entry *a, const tree_entry *b)
{
	size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(a->name, b->name, n);
	if (c) return c;
	return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

/* Report what is added or removed at this side's entry, and below it. */
static int only_in(dstate *s, const tree_entry *e, cairn_diff_kind kind)
{
	size_t old;
	int rc = path_push(s, e, &old);
	if (rc < 0) return rc;
	rc = report(s, kind, 0, kind == CAIRN_DIFF_REMOVED ? e : NULL, kind == CAIRN_DIFF_ADDED ? e : NULL);
	if (rc == 0 && e->type == TREE_DIR) rc = one_side(s, &e->subtree, kind);
	s->len = old;
	s->path[old] = 0;
	return rc;
}

/* Merge two sorted trees. */
static int diff_trees(dstate *s, const oid *a, const oid *b)
{
	tree ta, tb;
	int rc = load(s, a, &ta);
	if (rc < 0) return rc;
	if ((rc = load(s, b, &tb)) < 0) {
		tree_free(&ta);
		return rc;
	}
	size_t i = 0, j = 0;
	while (rc == 0 && (i < ta.n || j < tb.n)) {
		int c = i == ta.n ? 1 : j == tb.n ? -1 : name_cmp(&ta.entries[i], &tb.entries[j]);
		if (c < 0) rc = only_in(s, &ta.entries[i++], CAIRN_DIFF_REMOVED);
		else if (c > 0) rc = only_in(s, &tb.entries[j++], CAIRN_DIFF_ADDED);
		else rc = diff_entry(s, &ta.entries[i++], &tb.entries[j++]);
	}
	tree_free(&ta);
	tree_free(&tb);
	return rc;
}

/* The "root" entry of a snapshot's top tree, which must be the only one. */
static int load_root(cairn_repo *repo, const char *id, tree *top)
{
	snapshot_manifest m;
	int rc = repo_load_snapshot(repo, id, &m);
	if (rc < 0) return rc;
	rc = repo_load_tree(repo, &m.tree, top);
	snapshot_manifest_free(&m);
	if (rc < 0) {
		error_prefix("snapshot %.12s: top tree", id);
		return rc;
	}
	if (top->n != 1 || top->entries[0].type != TREE_DIR || top->entries[0].name_len != 4 ||
	    memcmp(top->entries[0].name, "root", 4) != 0) {
		tree_free(top);
		return error_set(CAIRN_ECORRUPT, "snapshot %.12s: top tree must hold one directory \"root\"",
		                 id);
	}
	return 0;
}

CAIRN_EXTERN int cairn_diff(cairn_diff_result *out, cairn_repo *repo, const char *old_id,
                            const char *new_id, cairn_diff_cb cb, void *payload)
{
	tree ta = {0}, tb = {0};
	dstate s;
	memset(&s, 0, sizeof(s));
	s.repo = repo;
	s.cb = cb;
	s.payload = payload;
	if (out) memset(out, 0, sizeof(*out));
	if (!old_id || !new_id) return error_set(CAIRN_EUSAGE, "diff: two snapshots are needed");
	int rc = load_root(repo, old_id, &ta);
	if (rc == 0) rc = load_root(repo, new_id, &tb);
	if (rc < 0) goto done;
	s.res.trees_read = 2;
	if (!(s.path = calloc(1, s.cap = 256))) {
		rc = ERR_OOM();
		goto done;
	}
	const tree_entry *a = &ta.entries[0], *b = &tb.entries[0];
	unsigned c = changes_of(a, b);
	if (c && (rc = report(&s, CAIRN_DIFF_CHANGED, c, a, b)) != 0) goto done;
	if (oid_cmp(&a->subtree, &b->subtree)) rc = diff_trees(&s, &a->subtree, &b->subtree);
done:
	if (out) *out = s.res;
	if (ta.mem) tree_free(&ta);
	if (tb.mem) tree_free(&tb);
	free(s.path);
	return rc;
}
