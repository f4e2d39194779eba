/* Batched tree reads (repo_load_trees) and trees read ahead
 * (repo_prefetch_trees): on real snapshots of a random directory tree with
 * many directories (some identical, so shared subtrees), over two takes so
 * that the trees lie in several packs, every tree read in a batch, in any
 * order and with repeats, and every tree served from the read-ahead equals
 * the tree read alone; a tree missing from the index and a damaged tree
 * fail with ECORRUPT naming the tree, and a damaged tree does not poison
 * the read-ahead (it fails where it is read). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "format.h"
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
	cairn_take_result res;
	o.root = root;
	o.name = name;
	o.threads = 1;
	CHECK_EQ(cairn_take(&res, r, &o), 0);
	memcpy(id, res.snapshot, 65);
}

/* Every tree id under the snapshot's content, each once, by single reads. */
static size_t all_trees(cairn_repo *r, const char *snap, oid **out)
{
	snapshot_manifest m;
	tree top;
	CHECK_EQ(repo_load_snapshot(r, snap, &m), 0);
	CHECK_EQ(repo_load_tree(r, &m.tree, &top), 0);
	size_t n = 0, cap = 1024;
	oid *v = malloc(cap * sizeof(*v));
	v[n++] = top.entries[0].subtree;
	for (size_t i = 0; i < n; i++) {
		tree t;
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
	tree_free(&top);
	snapshot_manifest_free(&m);
	*out = v;
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

/* ids[] in a batch (shuffled, with repeats) against single reads. */
static void check_batch(cairn_repo *r, const oid *ids, size_t n)
{
	size_t m = n + n / 4;
	oid *b = calloc(m, sizeof(*b));
	CHECK(b != NULL);
	for (size_t i = 0; b && i < m; i++) b[i] = ids[i < n ? i : t_rand() % n];
	for (size_t i = m; i > 1; i--) {
		size_t j = t_rand() % i;
		oid x = b[i - 1];
		b[i - 1] = b[j];
		b[j] = x;
	}
	tree *got = calloc(m, sizeof(*got));
	CHECK_EQ(repo_load_trees(r, b, m, got), 0);
	size_t bad = 0;
	for (size_t i = 0; i < m; i++) {
		tree want;
		CHECK_EQ(repo_load_tree(r, &b[i], &want), 0);
		bad += !same_tree(&want, &got[i]);
		tree_free(&want);
		tree_free(&got[i]);
	}
	CHECK_EQ(bad, 0);
	free(got);
	free(b);
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
	check_batch(r, ids, n);
	check_batch(r, ids, 1);
	CHECK_EQ(repo_load_trees(r, ids, 0, NULL), 0);

	/* read ahead: the same trees, then gone with the drop */
	CHECK_EQ(repo_prefetch_trees(r, &ids[0], 64u << 20), 0);
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		tree a, b;
		CHECK_EQ(repo_load_tree(r, &ids[i], &a), 0);
		CHECK_EQ(repo_load_trees(r, &ids[i], 1, &b), 0);
		bad += !same_tree(&a, &b);
		tree_free(&a);
		tree_free(&b);
	}
	CHECK_EQ(bad, 0);
	repo_prefetch_drop(r);
	/* a read-ahead bounded to almost nothing still serves every tree */
	CHECK_EQ(repo_prefetch_trees(r, &ids[0], 1), 0);
	for (size_t i = 0; i < n; i++) {
		tree a;
		CHECK_EQ(repo_load_tree(r, &ids[i], &a), 0);
		tree_free(&a);
	}
	repo_prefetch_drop(r);

	/* an id the index does not have */
	oid missing = ids[0];
	missing.b[0] ^= 1;
	oid two[2] = {ids[0], missing};
	tree got[2];
	CHECK_EQ(repo_load_trees(r, two, 2, got), CAIRN_ECORRUPT);
	CHECK(strstr(cairn_error_last(), "missing from the index") != NULL);
	CHECK(got[0].mem == NULL && got[1].mem == NULL); /* nothing left to free */

	/* a damaged tree: the batch fails naming it; the read-ahead skips it and
	 * the single read fails where it is needed */
	size_t victim = n / 2;
	char hex[OID_HEX_LEN + 1];
	oid_hex(hex, &ids[victim]);
	damage(r, repo, &ids[victim]);
	tree *all = calloc(n, sizeof(*all));
	CHECK_EQ(repo_load_trees(r, ids, n, all), CAIRN_ECORRUPT);
	CHECK(strstr(cairn_error_last(), hex) != NULL);
	free(all);
	CHECK_EQ(repo_prefetch_trees(r, &ids[0], 64u << 20), 0);
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
