/* Tree prefetch: with 1 to 8 threads and memory caps down to a handful of
 * entries, a depth-first reading that skips some subtrees gets exactly the
 * trees repo_load_tree gives (subtrees shared by several directories
 * included), never waits forever, and leaves nothing behind; a missing tree
 * fails as it does without the prefetch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "hash.h"
#include "prefetch.h"
#include "repo.h"
#include "snapshot.h"
#include "t.h"

static char base[256];

/* Directories up to depth deep; every "same" directory has one content,
 * so their trees are one object. */
static void gen(const char *dir, int depth)
{
	char p[1024];
	int n = 1 + (int)(t_rand() % 6);
	for (int i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/f%d", dir, i);
		FILE *f = fopen(p, "w");
		if (f) {
			fprintf(f, "%s %d %llu\n", dir, i, (unsigned long long)t_rand());
			fclose(f);
		}
	}
	snprintf(p, sizeof(p), "%s/same", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/same/file", dir);
	FILE *f = fopen(p, "w");
	if (f) {
		fputs("the same everywhere\n", f);
		fclose(f);
	}
	if (depth == 0) return;
	int dirs = 1 + (int)(t_rand() % 4);
	for (int i = 0; i < dirs; i++) {
		snprintf(p, sizeof(p), "%s/d%d", dir, i);
		mkdir(p, 0755);
		gen(p, depth - 1);
	}
}

/* Depth first as a take asks: each tree must equal the one read directly;
 * every skip-th subdirectory is not asked for. Counts trees read. */
static size_t walk(cairn_repo *r, tree_prefetch *pf, const oid *id, int skip, size_t *seen)
{
	tree got, want;
	int rc = prefetch_load(pf, r, id, &got);
	CHECK_EQ(rc, 0);
	if (rc < 0) return 0;
	CHECK_EQ(repo_load_tree(r, id, &want), 0);
	CHECK_EQ(got.n, want.n);
	for (size_t i = 0; i < got.n && i < want.n; i++) {
		CHECK(strcmp(got.entries[i].name, want.entries[i].name) == 0);
		CHECK_EQ(got.entries[i].type, want.entries[i].type);
	}
	size_t count = 1;
	for (size_t i = 0; i < got.n; i++) {
		if (got.entries[i].type != TREE_DIR) continue;
		if (skip && ++*seen % (size_t)skip == 0) continue;
		count += walk(r, pf, &got.entries[i].subtree, skip, seen);
	}
	tree_free(&got);
	tree_free(&want);
	return count;
}

int main(void)
{
	t_seed();
	snprintf(base, sizeof(base), "/tmp/test_prefetch.%d", (int)getpid());
	mkdir(base, 0755);
	char repo[300], src[300];
	snprintf(repo, sizeof(repo), "%s/repo", base);
	snprintf(src, sizeof(src), "%s/src", base);
	mkdir(src, 0755);
	gen(src, 4);

	cairn_init_options io = CAIRN_INIT_OPTIONS_INIT;
	CHECK_EQ(cairn_repo_init(repo, &io), 0);
	cairn_repo *r;
	CHECK_EQ(cairn_repo_open(&r, repo), 0);
	cairn_take_options to = CAIRN_TAKE_OPTIONS_INIT;
	to.root = src;
	to.name = "t";
	cairn_take_result res;
	CHECK_EQ(cairn_take(&res, r, &to), 0);
	snapshot_manifest m;
	CHECK_EQ(repo_load_snapshot(r, res.snapshot, &m), 0);
	tree top;
	CHECK_EQ(repo_load_tree(r, &m.tree, &top), 0);
	CHECK(top.n == 1 && top.entries[0].type == TREE_DIR);
	oid root = top.entries[0].subtree;
	printf("  %llu directories\n", (unsigned long long)res.dirs);

	size_t seen = 0, all = walk(r, NULL, &root, 0, &seen);
	CHECK(all > 20);
	const int threads[] = {1, 2, 8};
	const size_t caps[] = {PREFETCH_MAX_ENTRIES, 64, 3};
	for (int ti = 0; ti < 3; ti++)
		for (int ci = 0; ci < 3; ci++)
			for (int skip = 0; skip <= 3; skip += 3) {
				tree_prefetch *pf;
				prefetch_start(&pf, r, &root, threads[ti], caps[ci]);
				CHECK(pf != NULL);
				seen = 0;
				size_t n = walk(r, pf, &root, skip, &seen);
				if (!skip) CHECK_EQ(n, all);
				if (skip) CHECK(n < all);
				prefetch_free(pf); /* with trees never asked for, when skipping */
			}

	/* a tree that is not there: the error repo_load_tree gives */
	oid missing;
	memset(missing.b, 0x5a, OID_LEN);
	tree t;
	tree_prefetch *pf;
	prefetch_start(&pf, r, &missing, 2, 100);
	CHECK_EQ(prefetch_load(pf, r, &missing, &t), CAIRN_ECORRUPT);
	prefetch_free(pf);
	prefetch_free(NULL);

	tree_free(&top);
	snapshot_manifest_free(&m);
	cairn_repo_free(r);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", base);
	return t_done();
}
