/* The inode table of a mount: every tree of the snapshot read at mount time
 * (in a few large reads, repo_walk_trees), every entry given a node id,
 * breadth first. Metadata never changes, so the table is built once and
 * never shrinks: FORGET has nothing to free. Two directories with the same
 * content share a tree object but get nodes of their own; the members of a
 * hardlink group share one node, whose nlink counts them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mount/mount.h"

typedef struct tree_keep {
	node_table *t;
	size_t cap;
} tree_keep;

static int keep_tree(void *payload, uint32_t seq, const oid *id, tree *t, const uint8_t *plain,
                     size_t len)
{
	(void)id;
	(void)plain;
	(void)len;
	tree_keep *k = payload;
	if (seq >= k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 256;
		while (cap <= seq) cap *= 2;
		tree *v = realloc(k->t->trees, cap * sizeof(*v));
		if (!v) return ERR_OOM();
		memset(v + k->cap, 0, (cap - k->cap) * sizeof(*v));
		k->t->trees = v;
		k->cap = cap;
	}
	k->t->trees[seq] = *t;
	memset(t, 0, sizeof(*t));
	if (seq >= k->t->ntrees) k->t->ntrees = (size_t)seq + 1;
	return 0;
}

static int grow(void **v, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap) return 0;
	size_t c = *cap ? *cap : 1024;
	while (c < need) c *= 2;
	void *n = realloc(*v, c * size);
	if (!n) return ERR_OOM();
	*v = n;
	*cap = c;
	return 0;
}

static uint64_t data_bytes(const tree_entry *e)
{
	uint64_t n = 0;
	for (uint32_t c = 0; c < e->nchunks; c++) n += e->chunks[c].size;
	return n;
}

int nodes_load(node_table *t, cairn_repo *r, const char *snap_id)
{
	snapshot_manifest m;
	chunk_index *seen = NULL, *groups = NULL;
	size_t vcap = 0, kcap = 0;
	int rc;
	memset(t, 0, sizeof(*t));
	memset(&m, 0, sizeof(m));
	if ((rc = repo_load_snapshot(r, snap_id, &m)) < 0) return rc;
	if ((rc = repo_load_tree(r, &m.tree, &t->top)) < 0) goto done;
	const tree_entry *root = t->top.n == 1 ? &t->top.entries[0] : NULL;
	if (!root || root->type != TREE_DIR || root->name_len != 4 || memcmp(root->name, "root", 4)) {
		rc = error_set(CAIRN_ECORRUPT, "snapshot %.12s: its top tree is not one directory \"root\"",
		               snap_id);
		goto done;
	}
	if ((rc = index_new(&seen)) < 0 || (rc = index_new(&groups)) < 0) goto done;
	tree_keep k = {t, 0};
	tree_walk w = {keep_tree, NULL, &k, seen, 0, NULL};
	if ((rc = repo_walk_trees(r, &root->subtree, &w)) < 0) goto done;

	if ((rc = grow((void **)&t->v, &vcap, 2 + m.files + m.dirs, sizeof(mnode))) < 0) goto done;
	memset(&t->v[0], 0, sizeof(mnode));
	t->v[1] = (mnode){root, NODE_ROOT, 2, 0, 0, NO_FILE};
	t->n = 2;
	/* breadth first: expanding node i appends its children */
	for (size_t i = 1; i < t->n; i++) {
		if (t->v[i].e->type != TREE_DIR) continue;
		const index_entry *at = index_key_get(seen, t->v[i].e->subtree.b, OID_LEN);
		if (!at || at->offset >= t->ntrees) {
			char hex[OID_HEX_LEN + 1];
			oid_hex(hex, &t->v[i].e->subtree);
			rc = error_set(CAIRN_ECORRUPT, "tree %s: not found by the walk", hex);
			goto done;
		}
		const tree *d = &t->trees[at->offset];
		t->v[i].tree = at->offset;
		t->v[i].kids = (uint32_t)t->nkids;
		if ((rc = grow((void **)&t->kids, &kcap, t->nkids + d->n, sizeof(uint32_t))) < 0 ||
		    (rc = grow((void **)&t->v, &vcap, t->n + d->n, sizeof(mnode))) < 0)
			goto done;
		if (t->n + d->n >= UINT32_MAX) {
			rc = error_set(CAIRN_EUSAGE, "snapshot %.12s: too many entries to mount", snap_id);
			goto done;
		}
		for (size_t j = 0; j < d->n; j++) {
			const tree_entry *e = &d->entries[j];
			uint32_t id = (uint32_t)t->n;
			if (e->type == TREE_DIR) t->v[i].nlink++;
			if (e->hardlink && e->type != TREE_DIR) {
				const index_entry *g = index_key_get(groups, &e->hardlink, sizeof(e->hardlink));
				if (g) {
					t->v[g->offset].nlink++;
					t->kids[t->nkids++] = g->offset;
					continue;
				}
				if ((rc = index_key_put(groups, &e->hardlink, sizeof(e->hardlink), id)) < 0)
					goto done;
			}
			t->v[t->n++] = (mnode){e, (uint32_t)i, e->type == TREE_DIR ? 2 : 1, 0, 0, NO_FILE};
			t->kids[t->nkids++] = id;
			if (e->type == TREE_REG) {
				t->files++;
				t->data_bytes += data_bytes(e);
			}
		}
	}
	rc = 0;
done:
	index_free(seen);
	index_free(groups);
	snapshot_manifest_free(&m);
	if (rc < 0) nodes_free(t);
	return rc;
}

void nodes_free(node_table *t)
{
	for (size_t i = 0; i < t->ntrees; i++) tree_free(&t->trees[i]);
	free(t->trees);
	tree_free(&t->top);
	free(t->v);
	free(t->kids);
	memset(t, 0, sizeof(*t));
}

uint32_t nodes_lookup(const node_table *t, uint32_t dir, const char *name, size_t len)
{
	if (dir == 0 || dir >= t->n || t->v[dir].e->type != TREE_DIR) return 0;
	const tree *d = &t->trees[t->v[dir].tree];
	const tree_entry *e = tree_find(d, name, len);
	return e ? t->kids[t->v[dir].kids + (size_t)(e - d->entries)] : 0;
}

void nodes_path(const node_table *t, uint32_t id, char *out, size_t size)
{
	/* the names from the node up, then reversed into place */
	const tree_entry *chain[64];
	size_t n = 0, at = 0;
	while (id > NODE_ROOT && id < t->n && n < 64) {
		chain[n++] = t->v[id].e;
		id = t->v[id].parent;
	}
	if (size == 0) return;
	out[0] = 0;
	if (n == 0) {
		snprintf(out, size, "/");
		return;
	}
	while (n > 0 && at + 1 < size) {
		const tree_entry *e = chain[--n];
		int w = snprintf(out + at, size - at, "/%s", e->name);
		if (w < 0) break;
		at += (size_t)w;
	}
}
