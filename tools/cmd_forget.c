/* cairn forget SNAP...: delete snapshots; their users' usage drops at once. */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_forget(struct cli *cli, int argc, char **argv)
{
	const char *user = NULL;
	int quiet = 0;
	const struct opt opts[] = {
		OPT_SNAP_USER(&user),
		{ "-q", "--quiet", OPT_FLAG, &quiet, NULL, "print nothing on success", 0, 0, 0 },
		OPT_JSON(cli),
		OPT_END
	};
	cli_parse(cli, "SNAP...", opts, argc, argv);

	cairn_repo *repo;
	int rc = cli_open_repo(cli, &repo);
	if (rc != 0)
		return rc;
	/* every SNAP resolved first: a typo forgets nothing; a full id or a
	 * name only, so that an id prefix never forgets what was not named */
	cairn_snapshot_list *list = NULL;
	char (*ids)[65] = calloc((size_t)cli->nargs, sizeof(*ids));
	if (!ids) {
		rc = cli_error(cli, CAIRN_ENOMEM, "out of memory");
		goto done;
	}
	for (int i = 0; i < cli->nargs && rc == 0; i++) {
		int err = cairn_snapshot_resolve_ext(ids[i], repo, cli->args[i], user,
		                                     CAIRN_RESOLVE_USER_ONLY | CAIRN_RESOLVE_NO_PREFIX);
		if (err < 0)
			rc = cli_fail(cli, err);
	}
	if (rc == 0) { /* the owners and names, to say what was deleted */
		int err = cairn_snapshot_list_load(&list, repo, NULL);
		if (err < 0)
			rc = cli_fail(cli, err);
	}
	struct json j;
	if (rc == 0 && cli->json) {
		json_start(&j, stdout);
		json_open(&j, NULL, '[');
	}
	for (int i = 0; i < cli->nargs && rc == 0; i++) {
		const cairn_snapshot_info *s = snapshot_by_id(list, ids[i]);
		const char *owner = s ? s->user : "", *name = s ? s->name : "";
		uint64_t released = 0;
		int err = cairn_forget(repo, ids[i], &released);
		if (err < 0) {
			rc = cli_fail(cli, err);
			break;
		}
		if (cli->json) {
			json_open(&j, NULL, '{');
			json_str(&j, "snapshot", ids[i]);
			json_str(&j, "user", owner);
			json_str(&j, "name", name);
			json_u64(&j, "released_bytes", released);
			json_close(&j, '}');
		} else if (!quiet) {
			char h[32];
			format_size(h, released);
			printf("forgot %s (user %s, name ", ids[i], owner);
			print_escaped(stdout, name, strlen(name));
			printf("; usage down %s)\n", h);
		}
	}
	if (cli->json && (rc == 0 || cli->nargs > 0)) {
		json_close(&j, ']');
		json_line_end(&j);
	}
done:
	cairn_snapshot_list_free(list);
	free(ids);
	cairn_repo_free(repo);
	return rc;
}
