/* Overlay upper-layer capture (overlay.h): merge an upper directory's walk
 * into a base snapshot's trees. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "format.h"
#include "overlay.h"

static char opaque_mark; /* walk_node.user of an opaque upper directory */

/* "overlay.X" under the trusted. or user. namespace: X, else NULL. */
static const char *overlay_key(const char *name)
{
	if (!strncmp(name, "trusted.overlay.", 16)) return name + 16;
	if (!strncmp(name, "user.overlay.", 13)) return name + 13;
	return NULL;
}

static int prepare_node(walk_node *n)
{
	int rc = 0;
	uint32_t kept = 0;
	for (uint32_t i = 0; i < n->nxattrs; i++) {
		walk_xattr *x = &n->xattrs[i];
		const char *key = overlay_key(x->name);
		if (!key) {
			n->xattrs[kept++] = *x;
			continue;
		}
		if (rc == 0 && (!strcmp(key, "redirect") || !strcmp(key, "metacopy") ||
		                (!strcmp(key, "whiteout") && n->type != TREE_DIR))) {
			char *path = walk_path(n);
			rc = error_set(CAIRN_EUSAGE,
			               "upper /%s: has %s: the entry is not self-contained (redirect, metacopy "
			               "and data-only whiteouts are not supported)",
			               path ? path : n->name, x->name);
			free(path);
		}
		if (n->type == TREE_DIR && !strcmp(key, "opaque") && x->value_len == 1 && x->value[0] == 'y')
			n->user = &opaque_mark;
		/* name and value stay in the tree's arena, unused */
	}
	n->nxattrs = kept;
	for (size_t i = 0; i < n->nkids && rc == 0; i++) rc = prepare_node(n->kids[i]);
	return rc;
}

int overlay_prepare(walk_node *root) { return prepare_node(root); }

/* ---- merging --------------------------------------------------------------- */

typedef struct merge_ctx {
	cairn_repo *repo;
	snap_writer *w;
	overlay_entry_fn fn;
	void *arg;
	int base_hl;          /* the base has hardlink groups */
	int64_t files, dirs, symlinks, specials; /* change against the base */
	uint64_t stored;
	uint8_t *groups;      /* upper hardlink groups seen (whiteouts share one too) */
	uint32_t ngroups;
	uint64_t hl_extra;    /* upper links beyond the first of each group */
} merge_ctx;

static int is_whiteout(const walk_node *n)
{
	return n->type == TREE_CHR && n->rdev_major == 0 && n->rdev_minor == 0;
}

static void count(merge_ctx *m, uint8_t type, int delta)
{
	if (type == TREE_REG) m->files += delta;
	else if (type == TREE_DIR) m->dirs += delta;
	else if (type == TREE_SYMLINK) m->symlinks += delta;
	else m->specials += delta;
}

/* Hardlink rule (overlay.h): name says which side. */
static int hl_refuse(const char *path, const char *name)
{
	return error_set(CAIRN_EUSAGE,
	                 "upper /%s%s%s: %s; --upper is refused when the base has hardlink groups and the "
	                 "upper changes them or adds its own",
	                 path, *path && name ? "/" : "", name ? name : "",
	                 name ? "replaces or deletes a hardlinked entry of the base"
	                      : "is a hardlink of the upper");
}

/* A base entry leaves the snapshot: uncount it and everything under it. */
static int drop_base(merge_ctx *m, const tree_entry *e, const char *path)
{
	count(m, e->type, -1);
	if (m->base_hl && e->hardlink) return hl_refuse(path, e->name);
	if (e->type != TREE_DIR) return 0;
	tree t;
	int rc = repo_load_tree(m->repo, &e->subtree, &t);
	if (rc < 0) return rc;
	for (size_t i = 0; i < t.n && rc == 0; i++) rc = drop_base(m, &t.entries[i], path);
	tree_free(&t);
	return rc;
}

/* memcmp order, shorter first on a common prefix (tree.h). */
static int name_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	if (c) return c;
	return al < bl ? -1 : al > bl;
}

static int merge_dir(merge_ctx *m, const walk_node *u, const oid *base, oid *out);

/* An upper entry going into the snapshot (its subtree merged with base_sub
 * when given). */
static int add_upper(merge_ctx *m, tree_entry *e, tree_xattr *xa, const walk_node *k,
                     const oid *base_sub, int counted)
{
	m->fn(m->arg, e, k, xa);
	if (m->base_hl && e->hardlink) {
		char *path = walk_path(k);
		int rc = hl_refuse(path ? path : k->name, NULL);
		free(path);
		return rc;
	}
	if (!counted) count(m, k->type, 1);
	if (e->hardlink) {
		if (e->hardlink >= m->ngroups) {
			uint32_t cap = e->hardlink * 2;
			uint8_t *g = realloc(m->groups, cap);
			if (!g) return ERR_OOM();
			memset(g + m->ngroups, 0, cap - m->ngroups);
			m->groups = g;
			m->ngroups = cap;
		}
		if (m->groups[e->hardlink]) m->hl_extra++;
		m->groups[e->hardlink] = 1;
	}
	if (k->type == TREE_DIR) return merge_dir(m, k, base_sub, &e->subtree);
	return 0;
}

static int merge_dir(merge_ctx *m, const walk_node *u, const oid *base, oid *out)
{
	int rc = 0;
	tree t = {0};
	tree_entry *entries = NULL;
	tree_xattr *xa = NULL;
	char *path = walk_path(u);
	int opaque = u->user == &opaque_mark;
	size_t nx = 0, n = 0;
	if (!path) return ERR_OOM();
	if (base && (rc = repo_load_tree(m->repo, base, &t)) < 0) goto done;
	for (size_t i = 0; i < u->nkids; i++) nx += u->kids[i]->nxattrs;
	entries = calloc(u->nkids + t.n + 1, sizeof(*entries));
	xa = calloc(nx + 1, sizeof(*xa));
	if (!entries || !xa) {
		rc = ERR_OOM();
		goto done;
	}
	nx = 0;
	size_t i = 0, j = 0;
	while (rc == 0 && (i < u->nkids || j < t.n)) {
		const walk_node *k = i < u->nkids ? u->kids[i] : NULL;
		const tree_entry *b = j < t.n ? &t.entries[j] : NULL;
		int c = !k ? 1 : !b ? -1 : name_cmp(k->name, k->name_len, b->name, b->name_len);
		if (c > 0) { /* base only */
			j++;
			if (opaque) {
				rc = drop_base(m, b, path);
				continue;
			}
			entries[n++] = *b;
			if (b->type == TREE_DIR) rc = writer_ref(m->w, &b->subtree, BLOB_TREE);
			for (uint32_t q = 0; q < b->nchunks && rc == 0; q++)
				rc = writer_ref(m->w, &b->chunks[q].id, BLOB_DATA);
			continue;
		}
		i++;
		const oid *sub = NULL;
		int merged = 0;
		if (c == 0) {
			j++;
			if (k->type == TREE_DIR && b->type == TREE_DIR && k->user != &opaque_mark) {
				sub = &b->subtree; /* a merge: the base dir stays, with upper's metadata */
				merged = 1;
			} else if ((rc = drop_base(m, b, path)) < 0) {
				break;
			}
		}
		if (is_whiteout(k)) continue;
		rc = add_upper(m, &entries[n], xa + nx, k, sub, merged);
		nx += k->nxattrs;
		n++;
	}
	if (rc == 0) {
		size_t added = 0;
		rc = writer_put_tree(m->w, entries, n, out, &added);
		m->stored += added;
		if (rc < 0) error_prefix("directory /%s", path);
	}
done:
	if (t.mem) tree_free(&t);
	free(entries);
	free(xa);
	free(path);
	return rc;
}

int overlay_build(cairn_repo *repo, snap_writer *w, walk_node *upper, const char *base_hex,
                  overlay_entry_fn fn, void *arg, oid *top, overlay_counts *counts)
{
	snapshot_manifest bm;
	tree bt = {0};
	tree_xattr *xa = NULL;
	merge_ctx m = {repo, w, fn, arg, 0, 0, 0, 0, 0, 0, NULL, 0, 0};
	memset(counts, 0, sizeof(*counts));
	int rc = repo_load_snapshot(repo, base_hex, &bm);
	if (rc < 0) {
		error_prefix("base");
		return rc;
	}
	m.base_hl = bm.hardlinks > 0;
	if ((rc = repo_load_tree(repo, &bm.tree, &bt)) < 0) goto done;
	if (bt.n != 1 || bt.entries[0].type != TREE_DIR) {
		rc = error_set(CAIRN_ECORRUPT, "base snapshot %s: bad top tree", base_hex);
		goto done;
	}
	if (!(xa = calloc(upper->nxattrs + 1, sizeof(*xa)))) {
		rc = ERR_OOM();
		goto done;
	}
	tree_entry e;
	oid content;
	/* the root: always a merge (an opaque root drops all of the base) */
	if ((rc = merge_dir(&m, upper, &bt.entries[0].subtree, &content)) < 0) goto done;
	fn(arg, &e, upper, xa);
	e.name = "root";
	e.name_len = 4;
	e.subtree = content;
	size_t added = 0;
	if ((rc = writer_put_tree(w, &e, 1, top, &added)) < 0) goto done;
	m.stored += added;
	counts->files = (uint64_t)((int64_t)bm.files + m.files);
	counts->dirs = (uint64_t)((int64_t)bm.dirs + m.dirs);
	counts->symlinks = (uint64_t)((int64_t)bm.symlinks + m.symlinks);
	counts->specials = (uint64_t)((int64_t)bm.specials + m.specials);
	counts->hardlinks = bm.hardlinks + m.hl_extra;
	counts->stored_bytes = m.stored;
done:
	free(m.groups);
	free(xa);
	if (bt.mem) tree_free(&bt);
	snapshot_manifest_free(&bm);
	return rc;
}
