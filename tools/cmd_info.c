#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void print_json(const cairn_snapshot_info *s)
{
	struct json j;
	json_start(&j, stdout);
	json_snapshot(&j, s);
	json_line_end(&j);
}

/* 0, or -1 when out of memory. */
static int print_human(const cairn_snapshot_info *s)
{
	char time[32], bytes[32], fresh[32], stored[32], added[32], pause[32], took[32];
	char files[32], dirs[32], links[32], specials[32], hard[32];
	format_local_time(time, ns_to_sec(s->time_ns));
	format_size(bytes, s->bytes);
	format_size(fresh, s->new_bytes);
	format_size(stored, s->stored_bytes);
	format_size(added, s->added_bytes);
	format_duration(pause, s->pause_ms);
	format_duration(took, s->duration_ms);
	snprintf(files, sizeof(files), "%" PRIu64, s->files);
	snprintf(dirs, sizeof(dirs), "%" PRIu64, s->dirs);
	snprintf(links, sizeof(links), "%" PRIu64, s->symlinks);
	snprintf(specials, sizeof(specials), "%" PRIu64, s->specials);
	snprintf(hard, sizeof(hard), "%" PRIu64, s->hardlinks);
	const char *rows[][2] = {
		{ "id", s->id }, { "name", s->name }, { "user", s->user }, { "time", time },
		{ "root", s->root_path }, { "host", s->hostname },
		{ "parent", *s->parent ? s->parent : "-" },
		{ "files", files }, { "dirs", dirs }, { "symlinks", links },
		{ "specials", specials }, { "hardlinks", hard },
		{ "bytes", bytes }, { "added", s->has_added_bytes ? added : "-" },
		{ "new bytes", fresh }, { "stored", stored },
		{ "pause", s->pause_ms ? pause : "-" }, { "duration", took },
	};
	struct table t = { .ncols = 2 };
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(rows) / sizeof(rows[0]); i++)
		rc = table_add(&t, rows[i]);
	for (size_t l = 0; rc == 0 && l < s->nlabels; l++) {
		char key[96];
		snprintf(key, sizeof(key), "label %s", s->label_keys[l]);
		const char *row[] = { key, s->label_values[l] };
		rc = table_add(&t, row);
	}
	if (rc == 0)
		table_print(&t, stdout);
	table_free(&t);
	return rc;
}

int cmd_info(struct cli *cli, int argc, char **argv)
{
	const char *user = NULL;
	const struct opt opts[] = { OPT_SNAP_USER(&user), OPT_JSON(cli), OPT_END };
	cli_parse(cli, "SNAP", opts, argc, argv);

	cairn_repo *repo;
	cairn_snapshot_list *list = NULL;
	char id[65];
	int rc = cli_open_repo(cli, &repo);
	if (rc == 0)
		rc = cli_resolve(cli, repo, cli->args[0], user, id);
	if (rc == 0) {
		int err = cairn_snapshot_list_load(&list, repo, NULL);
		const cairn_snapshot_info *s = snapshot_by_id(list, id);
		if (err < 0)
			rc = cli_fail(cli, err);
		else if (!s)
			rc = cli_error(cli, CAIRN_ENOTFOUND, "snapshot %s: not found", id);
		else if (cli->json)
			print_json(s);
		else if (print_human(s) < 0)
			rc = cli_error(cli, CAIRN_ENOMEM, "out of memory");
	}
	cairn_snapshot_list_free(list);
	cairn_repo_free(repo);
	return rc;
}
