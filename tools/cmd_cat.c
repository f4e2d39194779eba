#include "util.h"

#include <unistd.h>

int cmd_cat(struct cli *cli, int argc, char **argv)
{
	const char *user = NULL;
	const struct opt opts[] = { OPT_SNAP_USER(&user), OPT_END };
	cli_parse(cli, "SNAP PATH", opts, argc, argv);

	cairn_repo *repo;
	char id[65];
	int rc = cli_open_repo(cli, &repo);
	if (rc == 0)
		rc = cli_resolve(cli, repo, cli->args[0], user, id);
	if (rc == 0) {
		int err = cairn_cat(repo, id, cli->args[1], STDOUT_FILENO);
		if (err < 0)
			rc = cli_fail(cli, err);
	}
	cairn_repo_free(repo);
	return rc;
}
