/* Overlay upper-layer capture (overlay.h): merge an upper directory's walk
 * into a base snapshot's trees. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "format.h"
#include "overlay.h"
#include "util.h"

static char opaque_mark; /* walk_node.user of an opaque upper directory */

/* "overlay.X" under the trusted. or user. namespace: X, else NULL. */
static const char *overlay_key(const char *name)
{
	if (!strncmp(name, "trusted.overlay.", 16)) return name + 16;
	if (!strncmp(name, "user.overlay.", 13)) return name + 13;
	return NULL;
}

static int prepare_one(walk_node *n)
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
	return rc;
}

/* Every node of the upper, depth first; the directories entered on a heap
 * stack, so that any depth costs memory, not C stack. */
int overlay_prepare(walk_node *root)
{
	struct level {
		walk_node *dir;
		size_t i;
	} *st = malloc(64 * sizeof(*st));
	size_t n = 0, cap = 64;
	if (!st) return ERR_OOM();
	int rc = prepare_one(root);
	st[n++] = (struct level){root, 0};
	while (rc == 0 && n > 0) {
		struct level *l = &st[n - 1];
		if (l->i == l->dir->nkids) {
			n--;
			continue;
		}
		walk_node *k = l->dir->kids[l->i++];
		if ((rc = prepare_one(k)) < 0 || !k->nkids) continue;
		if (n == cap) {
			struct level *ns = realloc(st, (cap *= 2) * sizeof(*st));
			if (!ns) {
				rc = ERR_OOM();
				break;
			}
			st = ns;
		}
		st[n++] = (struct level){k, 0};
	}
	free(st);
	return rc;
}

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

/* A base entry leaves the snapshot: uncount it and everything under it
 * (the trees still to read on a heap stack: any depth). */
static int drop_base(merge_ctx *m, const tree_entry *e, const char *path)
{
	count(m, e->type, -1);
	if (m->base_hl && e->hardlink) return hl_refuse(path, e->name);
	if (e->type != TREE_DIR) return 0;
	size_t n = 0, cap = 64;
	oid *todo = malloc(cap * sizeof(*todo));
	if (!todo) return ERR_OOM();
	todo[n++] = e->subtree;
	int rc = 0;
	while (rc == 0 && n > 0) {
		tree t;
		oid id = todo[--n];
		if ((rc = repo_load_tree(m->repo, &id, &t)) < 0) break;
		for (size_t i = 0; i < t.n && rc == 0; i++) {
			const tree_entry *k = &t.entries[i];
			count(m, k->type, -1);
			if (m->base_hl && k->hardlink) rc = hl_refuse(path, k->name);
			else if (k->type == TREE_DIR) {
				oid *nt = vec_grow(todo, &cap, n + 1, sizeof(*todo));
				if (nt) nt[n++] = k->subtree;
				else rc = ERR_OOM();
				todo = nt ? nt : todo;
			}
		}
		tree_free(&t);
	}
	free(todo);
	return rc;
}

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
	(void)base_sub; /* a directory's is merged by the caller */
	return 0;
}

/* An upper directory u being merged with its base tree t: the entries so
 * far (n), the next of each side (i, j). */
typedef struct merge_frame {
	const walk_node *u;
	tree t;
	tree_entry *entries;
	tree_xattr *xa;
	char *path;
	int opaque;
	size_t nx, n, i, j;
} merge_frame;

typedef struct merge_stack {
	merge_frame *f;
	size_t n, cap;
} merge_stack;

static void merge_frame_free(merge_frame *f)
{
	if (f->t.mem) tree_free(&f->t);
	free(f->entries);
	free(f->xa);
	free(f->path);
}

/* Start merging upper directory u with base tree base (NULL: none). */
static int merge_enter(merge_ctx *m, merge_stack *st, const walk_node *u, const oid *base)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 64;
		merge_frame *f = realloc(st->f, cap * sizeof(*f));
		if (!f) return ERR_OOM();
		st->f = f;
		st->cap = cap;
	}
	merge_frame *f = &st->f[st->n++];
	memset(f, 0, sizeof(*f));
	f->u = u;
	f->opaque = u->user == &opaque_mark;
	if (!(f->path = walk_path(u))) return ERR_OOM();
	int rc;
	if (base && (rc = repo_load_tree(m->repo, base, &f->t)) < 0) return rc;
	size_t nx = 0;
	for (size_t i = 0; i < u->nkids; i++) nx += u->kids[i]->nxattrs;
	f->entries = calloc(u->nkids + f->t.n + 1, sizeof(*f->entries));
	f->xa = calloc(nx + 1, sizeof(*f->xa));
	return f->entries && f->xa ? 0 : ERR_OOM();
}

/* The upper directory u merged with the base's tree base, into tree *out,
 * depth first with a heap stack: any depth costs memory, not C stack. */
static int merge_dir(merge_ctx *m, const walk_node *u, const oid *base, oid *out)
{
	merge_stack st = {NULL, 0, 0};
	int rc = merge_enter(m, &st, u, base);
	while (rc == 0 && st.n > 0) {
		merge_frame *f = &st.f[st.n - 1];
		if (f->i < f->u->nkids || f->j < f->t.n) {
			const walk_node *k = f->i < f->u->nkids ? f->u->kids[f->i] : NULL;
			const tree_entry *b = f->j < f->t.n ? &f->t.entries[f->j] : NULL;
			int c = !k ? 1 : !b ? -1 : name_cmp(k->name, k->name_len, b->name, b->name_len);
			if (c > 0) { /* base only */
				f->j++;
				if (f->opaque) {
					rc = drop_base(m, b, f->path);
					continue;
				}
				f->entries[f->n++] = *b;
				if (b->type == TREE_DIR) rc = writer_ref(m->w, &b->subtree, BLOB_TREE);
				for (uint32_t q = 0; q < b->nchunks && rc == 0; q++)
					rc = writer_ref(m->w, &b->chunks[q].id, BLOB_DATA);
				continue;
			}
			f->i++;
			const oid *sub = NULL;
			int merged = 0;
			if (c == 0) {
				f->j++;
				if (k->type == TREE_DIR && b->type == TREE_DIR && k->user != &opaque_mark) {
					sub = &b->subtree; /* a merge: the base dir stays, with upper's metadata */
					merged = 1;
				} else if ((rc = drop_base(m, b, f->path)) < 0) {
					break;
				}
			}
			if (is_whiteout(k)) continue;
			rc = add_upper(m, &f->entries[f->n], f->xa + f->nx, k, sub, merged);
			f->nx += k->nxattrs;
			f->n++;
			/* its tree, merged above; its id goes to entries[n - 1] */
			if (rc == 0 && k->type == TREE_DIR) rc = merge_enter(m, &st, k, sub);
			continue;
		}
		oid id;
		size_t added = 0;
		if ((rc = writer_put_tree(m->w, f->entries, f->n, &id, &added)) < 0) {
			error_prefix("directory /%s", f->path);
			break;
		}
		m->stored += added;
		merge_frame_free(f);
		if (--st.n > 0) st.f[st.n - 1].entries[st.f[st.n - 1].n - 1].subtree = id;
		else *out = id;
	}
	while (st.n > 0) merge_frame_free(&st.f[--st.n]);
	free(st.f);
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
