/* cairn quota set USER SIZE|none, cairn quota show [USER]. */
#include "util.h"

#include <string.h>

#include "usage_print.h"

int cmd_quota(struct cli *cli, int argc, char **argv)
{
	const struct opt opts[] = {
		OPT_JSON(cli),
		OPT_END
	};
	cli_parse(cli, "set|show [USER] [SIZE|none]", opts, argc, argv);
	const char *action = cli->args[0];
	if (!strcmp(action, "show")) {
		if (cli->nargs > 2)
			return cli_error(cli, CAIRN_EUSAGE, "usage: cairn quota show [USER] [--json]");
		const char *user = cli->nargs == 2 ? cli->args[1] : NULL;
		if (user && !cairn_user_name_valid(user))
			return cli_error(cli, CAIRN_EUSAGE, "bad user name '%s': " USER_RULE, user);
		return usage_show(cli, user, 1);
	}
	if (strcmp(action, "set") != 0)
		return cli_error(cli, CAIRN_EUSAGE, "unknown action '%s': expected set or show", action);
	if (cli->nargs != 3)
		return cli_error(cli, CAIRN_EUSAGE, "usage: cairn quota set USER SIZE|none");
	const char *user = cli->args[1], *size = cli->args[2];
	uint64_t bytes = 0;
	int none = !strcmp(size, "none");
	if (!cairn_user_name_valid(user))
		return cli_error(cli, CAIRN_EUSAGE, "bad user name '%s': " USER_RULE, user);
	if (!none && parse_size(size, &bytes) < 0)
		return cli_error(cli, CAIRN_EUSAGE, "size '%s': expected bytes, or a number with K, M, G or T, or none", size);

	cairn_repo *repo;
	int rc = cli_open_repo(cli, &repo);
	if (rc != 0)
		return rc;
	int err = cairn_quota_set(repo, user, !none, bytes);
	if (err < 0) {
		rc = cli_fail(cli, err);
	} else if (cli->json) {
		cairn_usage u;
		if ((err = cairn_usage_get(&u, repo, user)) < 0)
			rc = cli_fail(cli, err);
		else
			usage_print_json(&u, 1);
	} else if (none) {
		printf("quota of %s removed\n", user);
	} else {
		char h[32];
		format_size(h, bytes);
		printf("quota of %s set to %s (%llu bytes)\n", user, h, (unsigned long long)bytes);
	}
	cairn_repo_free(repo);
	return rc;
}
