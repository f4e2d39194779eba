/* Walks over every tree below a root (repo_walk_trees, reading trees in
 * batches) and trees read ahead (repo_prefetch_trees): on real snapshots of a random directory tree with
 * many directories (some identical, so shared subtrees), over two takes so
 * that the trees lie in several packs, a walk visits each tree once, as
 * it is when read alone, numbered as its map says, skips what it is told
 * to and stops when asked; every tree served from the read-ahead equals
 * the tree read alone; a tree missing from
 * the index and a damaged tree fail with ECORRUPT naming the tree, a walk
 * that tolerates damage leaves out exactly the damaged tree and what only
 * it leads to, and a damaged tree does not poison the read-ahead (it fails
 * where it is read). A walk that asks for each tree's stored form gets it
 * just before the visit, and it unstores (pack_unstore) to the visit's
 * plain bytes. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "format.h"
#include "pack.h"
#include "repo.h"
#include "t.h"

static char base[256];
static size_t ndirs; /* made by gen */

/* depth levels of directories, 2 to 6 each, two files; every fourth
 * directory empty (identical trees) */
static void gen(const char *dir, int depth)
{
	int n = 2 + (int)(t_rand() % 5);
	for (int i = 0; i < n; i++) {
		char p[1100];
		snprintf(p, sizeof(p), "%.1000s/d%d", dir, i);
		CHECK_EQ(mkdir(p, 0755), 0);
		ndirs++;
		if (depth > 0 && t_rand() % 4) gen(p, depth - 1);
	}
	for (int i = 0; i < 2; i++) {
		char p[1100];
		snprintf(p, sizeof(p), "%.1000s/f%d", dir, i);
		FILE *f = fopen(p, "w");
		CHECK(f != NULL);
		if (f) {
			fprintf(f, "%llu\n", (unsigned long long)t_rand());
			fclose(f);
		}
	}
}

static void take(cairn_repo *r, const char *root, const char *name, char id[65])
{
	cairn_take_options o = CAIRN_TAKE_OPTIONS_INIT;
	cairn_take_result res = CAIRN_TAKE_RESULT_INIT;
	o.root = root;
	o.name = name;
	o.threads = 1;
	CHECK_EQ(cairn_take(&res, r, &o), 0);
	memcpy(id, res.snapshot, 65);
}

/* Every tree id from root down (each once, root first) by single reads,
 * not entering the tree except (when not NULL). */
static size_t reach(cairn_repo *r, const oid *root, const oid *except, oid **out)
{
	size_t n = 0, cap = 1024;
	oid *v = malloc(cap * sizeof(*v));
	v[n++] = *root;
	for (size_t i = 0; i < n; i++) {
		tree t;
		if (except && !oid_cmp(&v[i], except)) continue;
		CHECK_EQ(repo_load_tree(r, &v[i], &t), 0);
		for (size_t k = 0; k < t.n; k++) {
			if (t.entries[k].type != TREE_DIR) continue;
			int seen = 0;
			for (size_t j = 0; j < n && !seen; j++) seen = !oid_cmp(&v[j], &t.entries[k].subtree);
			if (seen) continue;
			if (n == cap) v = realloc(v, (cap *= 2) * sizeof(*v));
			v[n++] = t.entries[k].subtree;
		}
		tree_free(&t);
	}
	*out = v;
	return n;
}

/* Every tree id under the snapshot's content, each once, by single reads. */
static size_t all_trees(cairn_repo *r, const char *snap, oid **out)
{
	snapshot_manifest m;
	tree top;
	CHECK_EQ(repo_load_snapshot(r, snap, &m), 0);
	CHECK_EQ(repo_load_tree(r, &m.tree, &top), 0);
	size_t n = reach(r, &top.entries[0].subtree, NULL, out);
	tree_free(&top);
	snapshot_manifest_free(&m);
	return n;
}

static int same_tree(const tree *a, const tree *b)
{
	if (a->n != b->n) return 0;
	for (size_t i = 0; i < a->n; i++) {
		const tree_entry *x = &a->entries[i], *y = &b->entries[i];
		if (x->type != y->type || x->name_len != y->name_len || memcmp(x->name, y->name, x->name_len) ||
		    x->size != y->size || x->mode != y->mode || x->nchunks != y->nchunks ||
		    (x->type == TREE_DIR && oid_cmp(&x->subtree, &y->subtree)))
			return 0;
	}
	return 1;
}

/* Tree id read from its pack, not from the read-ahead. */
static void read_alone(cairn_repo *r, const oid *id, tree *out)
{
	uint8_t *data;
	size_t len;
	CHECK_EQ(repo_read_blob(r, id, BLOB_TREE, &data, &len), 0);
	CHECK_EQ(tree_decode(out, data, len, "tree"), 0);
	free(data);
}

/* A walk's record: how often each seq was visited, and with which id. */
typedef struct walked {
	cairn_repo *r;
	size_t cap, visits, bad, stop_after;
	uint32_t *count;
	oid *id;
	const oid *skip; /* a subtree not to enter */
	int stored_on;   /* ask for the stored form: unstored, it is the plain bytes visit gets */
	uint32_t stored_seq;
	uint8_t *unstored;
	size_t unstored_len, nstored;
} walked;

static int walk_stored(void *payload, uint32_t seq, const tree_stored *s)
{
	walked *w = payload;
	free(w->unstored);
	w->unstored = malloc(s->plain_len + 1);
	CHECK_EQ(pack_unstore(s->comp, s->bytes, s->len, w->unstored, s->plain_len, "tree"), 0);
	w->unstored_len = s->plain_len;
	w->stored_seq = seq;
	w->nstored++;
	return 0;
}

static int walk_visit(void *payload, uint32_t seq, const oid *id, tree *t, const uint8_t *plain, size_t len)
{
	walked *w = payload;
	if (seq >= w->cap) {
		w->bad++;
		return 0;
	}
	w->count[seq]++;
	w->id[seq] = *id;
	if (w->stored_on) /* the stored form of this tree came just before */
		w->bad += !w->unstored || w->stored_seq != seq || w->unstored_len != len ||
		          memcmp(w->unstored, plain, len) != 0;
	tree want;
	CHECK_EQ(repo_load_tree(w->r, id, &want), 0);
	w->bad += !same_tree(&want, t);
	tree_free(&want);
	if (++w->visits == w->stop_after) return 1;
	return 0;
}

static int walk_skip(void *payload, const oid *id)
{
	walked *w = payload;
	return w->skip && !oid_cmp(w->skip, id);
}

/* Walks from root; the ids visited, each once, into *out (sorted). */
static size_t walk(cairn_repo *r, const oid *root, walked *w, int tolerate, int want_rc, oid **out)
{
	chunk_index *seen;
	CHECK_EQ(index_new(&seen), 0);
	w->r = r;
	w->cap = 100000;
	w->visits = w->bad = 0;
	w->count = calloc(w->cap, sizeof(*w->count));
	w->id = calloc(w->cap, sizeof(*w->id));
	w->nstored = 0;
	tree_walk tw = {walk_visit, walk_skip, w, seen, tolerate, w->stored_on ? walk_stored : NULL};
	CHECK_EQ(repo_walk_trees(r, root, &tw), want_rc);
	size_t n = 0;
	oid *v = malloc(w->cap * sizeof(*v));
	for (size_t s = 0; s < w->cap; s++) {
		if (!w->count[s]) continue;
		CHECK_EQ(w->count[s], 1);
		const index_entry *at = index_key_get(seen, w->id[s].b, OID_LEN);
		CHECK(at && at->offset == s); /* the map gives the place the visit had */
		v[n++] = w->id[s];
	}
	CHECK_EQ(w->bad, 0);
	CHECK_EQ(n, w->visits);
	if (w->stored_on) CHECK_EQ(w->nstored, w->visits);
	free(w->unstored);
	w->unstored = NULL;
	qsort(v, n, sizeof(*v), (int (*)(const void *, const void *))oid_cmp);
	free(w->count);
	free(w->id);
	index_free(seen);
	*out = v;
	return n;
}

/* The walk from root visits exactly the trees reach finds. */
static void check_walk(cairn_repo *r, const oid *root, const oid *except, const oid *skip, int tolerate,
                       int stored)
{
	oid *want, *got;
	size_t nwant = reach(r, root, except ? except : skip, &want);
	if (skip || except) { /* the skipped or damaged tree itself is never visited */
		const oid *x = except ? except : skip;
		for (size_t i = 0; i < nwant; i++)
			if (!oid_cmp(&want[i], x)) want[i--] = want[--nwant];
	}
	qsort(want, nwant, sizeof(*want), (int (*)(const void *, const void *))oid_cmp);
	walked w = {.skip = skip, .stored_on = stored};
	size_t ngot = walk(r, root, &w, tolerate, 0, &got);
	CHECK_EQ(ngot, nwant);
	CHECK(ngot == nwant && !memcmp(got, want, ngot * sizeof(*got)));
	free(want);
	free(got);
}

/* A pack byte inside tree id's blob, flipped. */
static void damage(cairn_repo *r, const char *repo, const oid *id)
{
	index_entry e;
	CHECK_EQ(repo_index_lookup(r, id, &e), 1);
	char pack[64], path[600];
	repo_pack_name(pack, e.pack);
	snprintf(path, sizeof(path), "%s/%s", repo, pack);
	int fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	uint8_t c;
	off_t at = (off_t)e.offset + BLOB_OVERHEAD / 2 + e.stored_len / 2;
	CHECK_EQ(pread(fd, &c, 1, at), 1);
	c ^= 0x40;
	CHECK_EQ(pwrite(fd, &c, 1, at), 1);
	close(fd);
}

int main(void)
{
	t_seed();
	snprintf(base, sizeof(base), "/tmp/test_repo.%d", (int)getpid());
	char repo[300], root[300];
	snprintf(repo, sizeof(repo), "%s/repo", base);
	snprintf(root, sizeof(root), "%s/root", base);
	CHECK_EQ(mkdir(base, 0755), 0);
	CHECK_EQ(mkdir(root, 0755), 0);
	cairn_init_options io = CAIRN_INIT_OPTIONS_INIT;
	CHECK_EQ(cairn_repo_init(repo, &io), 0);
	cairn_repo *r;
	CHECK_EQ(cairn_repo_open(&r, repo), 0);

	/* two takes: the second's unchanged trees are the first's, in its packs */
	char s1[65], s2[65];
	for (int i = 0; ndirs < 80; i++) { /* enough directories, whatever the seed */
		char top[400];
		snprintf(top, sizeof(top), "%s/t%d", root, i);
		CHECK_EQ(mkdir(top, 0755), 0);
		gen(top, 4);
	}
	take(r, root, "one", s1);
	char more[400];
	snprintf(more, sizeof(more), "%s/t0/more", root);
	CHECK_EQ(mkdir(more, 0755), 0);
	gen(more, 3);
	take(r, root, "two", s2);

	oid *ids;
	size_t n = all_trees(r, s2, &ids);
	size_t npacks = 0;
	uint8_t packs[8][PACK_ID_LEN];
	for (size_t i = 0; i < n; i++) {
		index_entry e;
		CHECK_EQ(repo_index_lookup(r, &ids[i], &e), 1);
		int known = 0;
		for (size_t k = 0; k < npacks && !known; k++) known = !memcmp(packs[k], e.pack, PACK_ID_LEN);
		if (!known && npacks < 8) memcpy(packs[npacks++], e.pack, PACK_ID_LEN);
	}
	printf("  %zu distinct trees in %zu packs\n", n, npacks);
	CHECK(n > 50);
	CHECK(npacks >= 2);
	/* walks: all of it; without one subtree; stopped after a few visits */
	check_walk(r, &ids[0], NULL, NULL, 0, 0);
	check_walk(r, &ids[0], NULL, &ids[1 + t_rand() % (n - 1)], 0, 0);
	/* with each tree's stored form: it gives back the plain bytes */
	check_walk(r, &ids[0], NULL, NULL, 0, 1);
	walked stop = {.stop_after = 5};
	oid *some;
	CHECK_EQ(walk(r, &ids[0], &stop, 0, 0, &some), 5);
	free(some);

	/* read ahead: the same trees, then gone with the drop */
	CHECK_EQ(repo_prefetch_trees(r, &ids[0], 64u << 20, NULL, NULL), 0);
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		tree a, b;
		CHECK_EQ(repo_load_tree(r, &ids[i], &a), 0);
		read_alone(r, &ids[i], &b);
		bad += !same_tree(&a, &b);
		tree_free(&a);
		tree_free(&b);
	}
	CHECK_EQ(bad, 0);
	repo_prefetch_drop(r);
	/* a read-ahead bounded to almost nothing still serves every tree */
	CHECK_EQ(repo_prefetch_trees(r, &ids[0], 1, NULL, NULL), 0);
	for (size_t i = 0; i < n; i++) {
		tree a;
		CHECK_EQ(repo_load_tree(r, &ids[i], &a), 0);
		tree_free(&a);
	}
	repo_prefetch_drop(r);

	/* an id the index does not have */
	oid missing = ids[0];
	missing.b[0] ^= 1;
	walked none = {0};
	oid *nothing;
	CHECK_EQ(walk(r, &missing, &none, 0, CAIRN_ECORRUPT, &nothing), 0);
	CHECK(strstr(cairn_error_last(), "missing from the index") != NULL);
	free(nothing);

	/* a damaged tree: a walk fails naming it, or leaves out it and what only
	 * it leads to; the read-ahead skips it and the single read fails where
	 * it is needed */
	size_t victim = n / 2;
	char hex[OID_HEX_LEN + 1];
	oid_hex(hex, &ids[victim]);
	damage(r, repo, &ids[victim]);
	walked fail = {0};
	oid *part;
	walk(r, &ids[0], &fail, 0, CAIRN_ECORRUPT, &part);
	CHECK(strstr(cairn_error_last(), hex) != NULL);
	free(part);
	check_walk(r, &ids[0], &ids[victim], NULL, 1, 0);
	check_walk(r, &ids[0], &ids[victim], NULL, 1, 1); /* the stored form past the damage too */
	CHECK_EQ(repo_prefetch_trees(r, &ids[0], 64u << 20, NULL, NULL), 0);
	tree t;
	CHECK_EQ(repo_load_tree(r, &ids[victim], &t), CAIRN_ECORRUPT);
	CHECK(strstr(cairn_error_last(), hex) != NULL);
	repo_prefetch_drop(r);

	free(ids);
	cairn_repo_free(r);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
	return t_done();
}
