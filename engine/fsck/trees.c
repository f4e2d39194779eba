/* The check (internal.h): a snapshot's trees and files checked, each tree
 * once, damaged snapshots marked. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

static int result_add(tree_result *t, const char *path, long problem)
{
	if (t->n >= TREE_RESULT_MAX) return 0;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4;
		finding *f = realloc(t->f, cap * sizeof(*f));
		if (!f) return ERR_OOM();
		t->f = f;
		t->cap = cap;
	}
	char *p = strdup(path);
	if (!p) return ERR_OOM();
	t->f[t->n++] = (finding){p, problem};
	return 0;
}

static void join_path(char *out, size_t cap, const char *dir, const char *name, size_t name_len)
{
	char *esc = malloc(name_len + 1);
	if (!esc) {
		snprintf(out, cap, "%s", dir);
		return;
	}
	memcpy(esc, name, name_len);
	esc[name_len] = 0;
	snprintf(out, cap, "%s%s%s", dir, *dir ? "/" : "", esc);
	free(esc);
}

/* Start on tree id: its slot in c->results, memoized (shared trees are
 * checked once). *t is loaded, and *walk set, when its entries are still to
 * be checked; else the slot is final (checked before, or the tree itself is
 * damaged). -1 when out of memory. */
static long tree_open(fsck_ctx *c, const oid *id, tree *t, int *walk)
{
	*walk = 0;
	memset(t, 0, sizeof(*t));
	const index_entry *m = index_lookup(c->tree_memo, id);
	if (m) return (long)m->offset;
	if (c->nresults == c->capresults) {
		size_t cap = c->capresults ? c->capresults * 2 : 256;
		tree_result *r = realloc(c->results, cap * sizeof(*r));
		if (!r) return -1;
		c->results = r;
		c->capresults = cap;
	}
	long ri = (long)c->nresults++;
	memset(&c->results[ri], 0, sizeof(c->results[ri]));
	if (index_key_put(c->tree_memo, id->b, OID_LEN, (uint32_t)ri) < 0) return -1;
	index_key_put(c->referenced, id->b, OID_LEN, 0);

	long pr = blob_check(c, id, BLOB_TREE);
	if (pr < 0) {
		int rc = repo_load_tree(c->r, id, t);
		if (rc < 0) {
			char hex[OID_HEX_LEN + 1], obj[96];
			oid_hex(hex, id);
			snprintf(obj, sizeof(obj), "tree %s", hex);
			pr = report_add(c->rep, CAIRN_FSCK_DAMAGE, "tree", obj, "%s", cairn_error_last());
			/* later lookups of this blob see the problem too */
			const index_entry *st = index_lookup(c->blob_status, id);
			if (st) ((index_entry *)st)->offset = (uint32_t)(pr + 1);
		}
	}
	if (pr >= 0) {
		result_add(&c->results[ri], "", pr);
		return ri;
	}
	*walk = 1;
	return ri;
}

/* A regular file's chunks, findings into slot ri under the file's name. */
static void check_file(fsck_ctx *c, long ri, const tree_entry *e)
{
	char path[4096];
	join_path(path, sizeof(path), "", e->name, e->name_len);
	for (uint32_t k = 0; k < e->nchunks; k++) {
		index_key_put(c->referenced, e->chunks[k].id.b, OID_LEN, 0);
		long cp = blob_check(c, &e->chunks[k].id, BLOB_DATA);
		if (cp < 0) {
			const index_entry *ie = index_lookup(c->r->index, &e->chunks[k].id);
			if (ie && ie->raw_len != e->chunks[k].size) {
				char hex[OID_HEX_LEN + 1], obj[96];
				oid_hex(hex, &e->chunks[k].id);
				snprintf(obj, sizeof(obj), "chunk %s", hex);
				cp = report_add(c->rep, CAIRN_FSCK_DAMAGE, "chunk", obj,
				                "%u bytes in the index, %u in the tree", ie->raw_len, e->chunks[k].size);
			}
		}
		if (cp >= 0) result_add(&c->results[ri], path, cp);
	}
}

/* The findings of subdirectory e (slot sub) into slot ri, under e's name. */
static void add_sub_findings(fsck_ctx *c, long ri, const tree_entry *e, long sub)
{
	char path[4096], full[8200];
	if (sub < 0) return;
	join_path(path, sizeof(path), "", e->name, e->name_len);
	for (size_t k = 0; k < c->results[sub].n; k++) {
		const finding *f = &c->results[sub].f[k];
		snprintf(full, sizeof(full), "%s%s%s", path, f->path[0] ? "/" : "", f->path);
		result_add(&c->results[ri], full, f->problem);
	}
}

typedef struct check_frame {
	tree t;
	long ri;
	size_t next;
} check_frame;

/* The findings below tree id: its slot in c->results (-1 when out of
 * memory). Depth first with a stack on the heap: trees as deep as a
 * repository can hold cost memory, not C stack. */
static long check_tree(fsck_ctx *c, const oid *id)
{
	check_frame *st = NULL;
	size_t n = 0, cap = 0;
	tree t;
	int walk;
	long root = tree_open(c, id, &t, &walk), next = root;
	while (walk) {
		if (n == cap) {
			check_frame *ns = realloc(st, (cap = cap ? cap * 2 : 64) * sizeof(*st));
			if (!ns) {
				tree_free(&t);
				root = -1;
				break;
			}
			st = ns;
		}
		st[n++] = (check_frame){t, next, 0};
		walk = 0;
		while (n > 0 && !walk) {
			check_frame *f = &st[n - 1];
			if (f->next == f->t.n) {
				long done = f->ri;
				tree_free(&f->t);
				if (--n > 0) {
					f = &st[n - 1];
					add_sub_findings(c, f->ri, &f->t.entries[f->next++], done);
				}
				continue;
			}
			const tree_entry *e = &f->t.entries[f->next];
			if (e->type != TREE_DIR) {
				if (e->type == TREE_REG) check_file(c, f->ri, e);
				f->next++;
				continue;
			}
			/* a subtree to walk is pushed above; its findings join
			 * ours when it is done */
			next = tree_open(c, &e->subtree, &t, &walk);
			if (!walk) add_sub_findings(c, f->ri, &f->t.entries[f->next++], next);
		}
	}
	while (n > 0) tree_free(&st[--n].t);
	free(st);
	return root;
}

void mark_damaged(fsck_ctx *c, const char *id, const char *reason)
{
	uint8_t key[OID_LEN];
	if (hex_decode(key, OID_LEN, id) < 0) return;
	if (index_key_put(c->damaged_snaps, key, OID_LEN, (uint32_t)c->ndamaged_reason) != 0) return;
	size_t cap = c->ndamaged_reason;
	char **v = realloc(c->damaged_reason, (cap + 1) * sizeof(char *));
	if (!v) return;
	c->damaged_reason = v;
	v[c->ndamaged_reason++] = strdup(reason);
}

int fsck_snapshot_visit(const char *name, void *payload)
{
	fsck_ctx *c = payload;
	const char *id = strrchr(name, '/');
	id = id ? id + 1 : name;
	uint8_t key[OID_LEN];
	if (strlen(id) != OID_HEX_LEN || hex_decode(key, OID_LEN, id) < 0) {
		report_add(c->rep, CAIRN_FSCK_INFO, "snapshot", name, "not a manifest name: ignored");
		return 0;
	}
	return strv_push(&c->snaps, &c->nsnaps, &c->capsnaps, id);
}

/* repo_prefetch_trees' skip: a tree checked for an earlier snapshot */
static int tree_checked(void *payload, const oid *id)
{
	fsck_ctx *c = payload;
	return index_lookup(c->tree_memo, id) != NULL;
}

void check_snapshot(fsck_ctx *c, const char *id)
{
	snapshot_manifest m;
	char obj[96];
	snprintf(obj, sizeof(obj), "snapshot %s", id);
	c->rep->stats.snapshots++;
	int rc = repo_load_snapshot(c->r, id, &m);
	if (rc < 0) {
		long pr = report_add(c->rep, CAIRN_FSCK_DAMAGE, "snapshot", obj, "%s", cairn_error_last());
		if (pr >= 0) report_affect(P(c, pr), id, "", "/");
		mark_damaged(c, id, cairn_error_last());
		return;
	}
	if (c->config_problem >= 0) report_affect(P(c, c->config_problem), id, m.name, "/");
	if (!index_lookup(c->tree_memo, &m.tree)) /* its trees in batches, not one read each */
		repo_prefetch_trees(c->r, &m.tree, REPO_TREES_AHEAD, tree_checked, c);
	long ri = check_tree(c, &m.tree);
	repo_prefetch_drop(c->r);
	if (ri >= 0) {
		tree_result *tr = &c->results[ri];
		for (size_t k = 0; k < tr->n; k++) {
			/* the top tree's one entry is "root", the captured directory */
			const char *p = tr->f[k].path;
			char path[4096];
			if (strncmp(p, "root", 4) == 0 && (p[4] == '/' || p[4] == 0)) p += 4;
			snprintf(path, sizeof(path), "%s", *p ? p : "/");
			problem *pb = P(c, tr->f[k].problem);
			report_affect(pb, id, m.name, path);
			char reason[1200];
			snprintf(reason, sizeof(reason), "%s: %s", pb->object, pb->message);
			mark_damaged(c, id, reason);
		}
	}
	snapshot_manifest_free(&m);
}
