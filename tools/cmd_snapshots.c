#include "util.h"

#include <stdio.h>

static void print_json(const cairn_snapshot_list *list)
{
	struct json j;
	json_start(&j, stdout);
	json_open(&j, NULL, '[');
	for (size_t i = 0; i < cairn_snapshot_list_count(list); i++)
		json_snapshot(&j, cairn_snapshot_list_get(list, i));
	json_close(&j, ']');
	json_line_end(&j);
}

/* 0, or -1 when out of memory. */
static int print_table(const cairn_snapshot_list *list)
{
	static const unsigned char right[] = { 0, 0, 0, 0, 1, 1, 1 };
	static const char *const head[] = { "ID", "USER", "NAME", "TIME", "SIZE", "PAUSE", "DURATION" };
	struct table t = { .ncols = 7, .right = right };
	int rc = table_add(&t, head);
	for (size_t i = 0; rc == 0 && i < cairn_snapshot_list_count(list); i++) {
		const cairn_snapshot_info *s = cairn_snapshot_list_get(list, i);
		char id[13], time[32], size[32], pause[32], took[32];
		snprintf(id, sizeof(id), "%.12s", s->id);
		format_local_time(time, ns_to_sec(s->time_ns));
		format_size(size, s->bytes);
		format_duration(pause, s->pause_ms);
		format_duration(took, s->duration_ms);
		const char *row[] = { id, s->user, s->name, time, size, s->pause_ms ? pause : "-", took };
		rc = table_add(&t, row);
	}
	if (rc == 0)
		table_print(&t, stdout);
	table_free(&t);
	return rc;
}

int cmd_snapshots(struct cli *cli, int argc, char **argv)
{
	const char *user = NULL;
	const struct opt opts[] = {
		{ "--user", NULL, OPT_USER, &user, "USER", "only USER's snapshots", 0, 0, 0 },
		OPT_JSON(cli),
		OPT_END
	};
	cli_parse(cli, "", opts, argc, argv);

	cairn_repo *repo;
	cairn_snapshot_list *list = NULL;
	int err, rc = cli_open_repo(cli, &repo);
	if (rc != 0)
		goto done;
	err = cairn_snapshot_list_load(&list, repo, user);
	if (err < 0)
		rc = cli_fail(cli, err);
	else if (cli->json)
		print_json(list);
	else if (print_table(list) < 0)
		rc = cli_error(cli, CAIRN_ENOMEM, "out of memory");
done:
	cairn_snapshot_list_free(list);
	cairn_repo_free(repo);
	return rc;
}
