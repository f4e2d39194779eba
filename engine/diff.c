/* diff: two snapshots compared tree by tree. Trees are content-addressed, so
 * equal subtree ids mean equal subtrees: only directories whose ids differ
 * are loaded, and a change of ten files in a large tree reads the trees on
 * the paths to those ten files. */
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "options.h"
#include "repo.h"
#include "tree.h"
#include "util.h"

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

/* A directory being compared: both sides merged by name (one_side 0), or
 * everything in one tree reported as kind. dirlen: the path's length at
 * the directory. */
typedef struct dframe {
	tree a, b;
	size_t i, j, dirlen;
	int one_side;
	cairn_diff_kind kind;
} dframe;

typedef struct dstack {
	dframe *f;
	size_t n, cap;
} dstack;

/* Push the directory at the current path: trees a and b merged, or the one
 * tree (a) of one_side reported as kind. */
static int push(dstate *s, dstack *st, const oid *a, const oid *b, int one_side, cairn_diff_kind kind)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 64;
		dframe *n = realloc(st->f, cap * sizeof(*n));
		if (!n) return ERR_OOM();
		st->f = n;
		st->cap = cap;
	}
	dframe *f = &st->f[st->n];
	memset(f, 0, sizeof(*f));
	f->dirlen = s->len;
	f->one_side = one_side;
	f->kind = kind;
	int rc = load(s, a, &f->a);
	if (rc == 0 && !one_side && (rc = load(s, b, &f->b)) < 0) tree_free(&f->a);
	if (rc == 0) st->n++;
	return rc;
}

static void pop(dstack *st)
{
	dframe *f = &st->f[--st->n];
	tree_free(&f->a);
	if (!f->one_side) tree_free(&f->b);
}

/* Report what is added or removed at this side's entry; push its contents. */
static int only_in(dstate *s, dstack *st, const tree_entry *e, cairn_diff_kind kind)
{
	int rc = report(s, kind, 0, kind == CAIRN_DIFF_REMOVED ? e : NULL, kind == CAIRN_DIFF_ADDED ? e : NULL);
	if (rc == 0 && e->type == TREE_DIR) rc = push(s, st, &e->subtree, NULL, 1, kind);
	return rc;
}

/* Entry present in both trees (same name); push what is below it. */
static int diff_entry(dstate *s, dstack *st, const tree_entry *a, const tree_entry *b)
{
	int rc = 0;
	unsigned c = changes_of(a, b);
	if (c) rc = report(s, CAIRN_DIFF_CHANGED, c, a, b);
	if (rc == 0) {
		if (a->type == TREE_DIR && b->type == TREE_DIR) {
			if (oid_cmp(&a->subtree, &b->subtree)) rc = push(s, st, &a->subtree, &b->subtree, 0, 0);
		} else if (a->type == TREE_DIR) {
			rc = push(s, st, &a->subtree, NULL, 1, CAIRN_DIFF_REMOVED);
		} else if (b->type == TREE_DIR) {
			rc = push(s, st, &b->subtree, NULL, 1, CAIRN_DIFF_ADDED);
		}
	}
	return rc;
}

/* Merge two sorted trees, depth first in name order, with the directories
 * being compared on a heap stack: any depth costs memory, not C stack. */
static int diff_trees(dstate *s, const oid *a, const oid *b)
{
	dstack st = {NULL, 0, 0};
	int rc = push(s, &st, a, b, 0, 0);
	while (rc == 0 && st.n > 0) {
		dframe *f = &st.f[st.n - 1];
		s->len = f->dirlen;
		s->path[s->len] = 0;
		const tree_entry *ea = f->i < f->a.n ? &f->a.entries[f->i] : NULL;
		const tree_entry *eb = !f->one_side && f->j < f->b.n ? &f->b.entries[f->j] : NULL;
		if (!ea && !eb) {
			pop(&st);
			continue;
		}
		size_t old; /* unused: the path is cut back to f->dirlen above */
		if (f->one_side) {
			f->i++;
			if ((rc = path_push(s, ea, &old)) == 0) rc = only_in(s, &st, ea, f->kind);
			continue;
		}
		int c = !ea ? 1 : !eb ? -1 : name_cmp(ea->name, ea->name_len, eb->name, eb->name_len);
		if (c < 0) f->i++;
		else if (c > 0) f->j++;
		else f->i++, f->j++;
		if ((rc = path_push(s, c > 0 ? eb : ea, &old)) < 0) break;
		if (c < 0) rc = only_in(s, &st, ea, CAIRN_DIFF_REMOVED);
		else if (c > 0) rc = only_in(s, &st, eb, CAIRN_DIFF_ADDED);
		else rc = diff_entry(s, &st, ea, eb);
	}
	while (st.n > 0) pop(&st);
	free(st.f);
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

static int diff_run(cairn_diff_result *out, cairn_repo *repo, const char *old_id, const char *new_id,
                    cairn_diff_cb cb, void *payload)
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

CAIRN_EXTERN int cairn_diff(cairn_diff_result *out, cairn_repo *repo, const char *old_id,
                            const char *new_id, cairn_diff_cb cb, void *payload)
{
	static const size_t result_sizes[] = {sizeof(cairn_diff_result)};
	cairn_diff_result r = CAIRN_DIFF_RESULT_INIT;
	int rc = result_check(out, CAIRN_DIFF_RESULT_VERSION, "diff");
	if (rc < 0) return rc;
	rc = diff_run(&r, repo, old_id, new_id, cb, payload);
	result_copy(out, &r, result_sizes);
	return rc;
}
