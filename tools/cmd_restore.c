#include "util.h"

#include <inttypes.h>
#include <stdio.h>

static void print_done(const cairn_restore_result *r, const char *id)
{
	struct json j;
	json_start(&j, stdout);
	json_open(&j, NULL, '{');
	json_str(&j, "event", "done");
	json_str(&j, "snapshot", id);
	json_u64(&j, "files", r->files);
	json_u64(&j, "dirs", r->dirs);
	json_u64(&j, "symlinks", r->symlinks);
	json_u64(&j, "specials", r->specials);
	json_u64(&j, "hardlinks", r->hardlinks);
	json_u64(&j, "bytes", r->bytes);
	json_u64(&j, "duration_ms", r->duration_ms);
	json_close(&j, '}');
	json_line_end(&j);
}

static void print_summary(const cairn_restore_result *r)
{
	const struct { uint64_t n; const char *one, *many; } counts[] = {
		{ r->files, "file", "files" },
		{ r->dirs, "directory", "directories" },
		{ r->symlinks, "symlink", "symlinks" },
		{ r->specials, "special file", "special files" },
		{ r->hardlinks, "hardlink", "hardlinks" },
	};
	char bytes[32], took[32];
	format_size(bytes, r->bytes);
	format_duration(took, r->duration_ms);
	printf("restored");
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		if (counts[i].n || i < 2) /* files and directories always */
			printf(" %" PRIu64 " %s,", counts[i].n, counts[i].n == 1 ? counts[i].one : counts[i].many);
	printf(" %s in %s\n", bytes, took);
}

static int restore(const struct cli *cli, cairn_repo *repo, const char *id,
                   cairn_restore_options *ro, int quiet)
{
	struct events ev;
	events_init(&ev, cli, quiet, 0);
	ro->event_cb = events_cb;
	ro->event_payload = &ev;
	cairn_restore_result res = CAIRN_RESTORE_RESULT_INIT;
	int err = cairn_restore(&res, repo, id, cli->args[1], ro);
	progress_clear();
	if (err < 0)
		return cli_fail(cli, err);
	if (cli->json)
		print_done(&res, id);
	else if (!quiet)
		print_summary(&res);
	return 0;
}

int cmd_restore(struct cli *cli, int argc, char **argv)
{
	cairn_restore_options ro = CAIRN_RESTORE_OPTIONS_INIT;
	int quiet = 0;
	const char *user = NULL;
	const struct opt opts[] = {
		{ "--force", NULL, OPT_FLAG, &ro.force, NULL,
		  "restore into a non-empty TARGET, replacing its entries", 0, 0, 0 },
		OPT_SNAP_USER(&user),
		OPT_JSON(cli),
		{ "-q", "--quiet", OPT_FLAG, &quiet, NULL, "no progress line, no summary", 0, 0, 0 },
		OPT_THREADS(&ro.threads),
		OPT_END
	};
	cli_parse(cli, "SNAP TARGET", opts, argc, argv);

	cairn_repo *repo;
	char id[65];
	int rc = cli_open_repo(cli, &repo);
	if (rc == 0)
		rc = cli_resolve(cli, repo, cli->args[0], user, id);
	if (rc == 0)
		rc = restore(cli, repo, id, &ro, quiet);
	cairn_repo_free(repo);
	return rc;
}
