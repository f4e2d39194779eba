#include "util.h"

#include <inttypes.h>
#include <stdio.h>

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	const struct opt opts[] = { OPT_JSON(cli), OPT_END };
	cli_parse(cli, "", opts, argc, argv);

	cairn_repo *repo;
	int rc = cli_open_repo(cli, &repo);
	if (rc != 0)
		return rc;
	cairn_repo_stats s = CAIRN_REPO_STATS_INIT;
	int err = cairn_stats(&s, repo);
	if (err < 0) {
		rc = cli_fail(cli, err);
	} else if (cli->json) {
		struct json j;
		json_start(&j, stdout);
		json_open(&j, NULL, '{');
		json_u64(&j, "snapshots", s.snapshots);
		json_u64(&j, "logical_bytes", s.logical_bytes);
		json_u64(&j, "stored_bytes", s.stored_bytes);
		json_u64(&j, "chunks", s.chunks);
		json_u64(&j, "trees", s.trees);
		json_u64(&j, "packs", s.packs);
		fprintf(stdout, ",\"dedup_ratio\":%.4f", s.dedup_ratio);
		json_close(&j, '}');
		json_line_end(&j);
	} else {
		char logical[32], stored[32], n[5][32], ratio[32];
		format_size(logical, s.logical_bytes);
		format_size(stored, s.stored_bytes);
		snprintf(n[0], sizeof(n[0]), "%" PRIu64, s.snapshots);
		snprintf(n[1], sizeof(n[1]), "%" PRIu64, s.chunks);
		snprintf(n[2], sizeof(n[2]), "%" PRIu64, s.trees);
		snprintf(n[3], sizeof(n[3]), "%" PRIu64, s.packs);
		snprintf(ratio, sizeof(ratio), "%.2fx", s.dedup_ratio);
		const char *rows[][2] = {
			{ "snapshots", n[0] }, { "logical", logical }, { "stored", stored },
			{ "dedup ratio", ratio }, { "chunks", n[1] }, { "trees", n[2] }, { "packs", n[3] },
		};
		struct table t = { .ncols = 2 };
		for (size_t i = 0; rc == 0 && i < sizeof(rows) / sizeof(rows[0]); i++)
			if (table_add(&t, rows[i]) < 0)
				rc = cli_error(cli, CAIRN_ENOMEM, "out of memory");
		if (rc == 0)
			table_print(&t, stdout);
		table_free(&t);
	}
	cairn_repo_free(repo);
	return rc;
}
