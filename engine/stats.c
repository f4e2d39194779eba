/* stats: repository totals from the snapshot list, the index and the packs. */
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "options.h"
#include "repo.h"

typedef struct totals {
	uint64_t stored, chunks, trees;
} totals;

static void add_blob(const index_entry *e, void *payload)
{
	totals *t = payload;
	t->stored += e->stored_len;
	if (e->type == BLOB_DATA) t->chunks++;
	else if (e->type == BLOB_TREE) t->trees++;
}

static int count_pack(const char *name, void *payload)
{
	(void)name;
	(*(uint64_t *)payload)++;
	return 0;
}

static int stats_run(cairn_repo_stats *out, cairn_repo *repo)
{
	cairn_snapshot_list *l;
	memset(out, 0, sizeof(*out));
	int rc = cairn_snapshot_list_load(&l, repo, NULL);
	if (rc < 0) return rc;
	out->snapshots = cairn_snapshot_list_count(l);
	for (size_t i = 0; i < out->snapshots; i++) out->logical_bytes += cairn_snapshot_list_get(l, i)->bytes;
	cairn_snapshot_list_free(l);

	/* the whole index, once: stats counts every entry (docs/performance.md "Index memory, measured") */
	totals t = {0, 0, 0};
	chunk_index *all;
	if ((rc = index_new(&all)) < 0) return rc;
	if ((rc = index_load_all(repo->st, all)) < 0) {
		index_free(all);
		return rc;
	}
	index_foreach(all, add_blob, &t);
	index_free(all);
	out->stored_bytes = t.stored;
	out->chunks = t.chunks;
	out->trees = t.trees;
	if ((rc = store_list(repo->st, "packs", count_pack, &out->packs)) < 0) {
		error_prefix("stats: listing packs");
		return rc;
	}
	out->dedup_ratio = t.stored ? (double)out->logical_bytes / (double)t.stored : 0.0;
	return 0;
}

CAIRN_EXTERN int cairn_stats(cairn_repo_stats *out, cairn_repo *repo)
{
	static const size_t result_sizes[] = {sizeof(cairn_repo_stats)};
	cairn_repo_stats r = CAIRN_REPO_STATS_INIT;
	int rc = result_check(out, CAIRN_REPO_STATS_VERSION, "stats");
	if (rc < 0) return rc;
	rc = stats_run(&r, repo);
	result_copy(out, &r, result_sizes);
	return rc;
}
