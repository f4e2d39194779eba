/* cairn estimate: what a take would add to a user's usage, writing nothing. */
#include "util.h"

#include <stdio.h>
#include <string.h>

int cmd_estimate(struct cli *cli, int argc, char **argv)
{
	const char *root = NULL, *user = NULL, *parent = NULL;
	struct strlist excludes = { 0 };
	int no_parent = 0, threads = 0;
	const struct opt opts[] = {
		{ "--root", NULL, OPT_STR, &root, "DIR", "directory a take would capture", 1, 0, 0 },
		{ "--user", NULL, OPT_USER, &user, "USER", "owner (default: \"default\"); --parent is one of USER's snapshots", 0, 0, 0 },
		{ "--parent", NULL, OPT_STR, &parent, "SNAP", "as a take from SNAP (default: USER's latest of DIR)", 0, 0, 0 },
		{ "--no-parent", NULL, OPT_FLAG, &no_parent, NULL, "read every file, reuse no parent", 0, 0, 0 },
		{ "--exclude", NULL, OPT_LIST, &excludes, "PATH", "skip PATH, written as absolute inside DIR (/var/cache)", 0, 0, 0 },
		OPT_THREADS(&threads),
		OPT_JSON(cli),
		OPT_END
	};
	cli_parse(cli, "", opts, argc, argv);

	cairn_repo *repo = NULL;
	char pid[65];
	int rc = 0;
	if (parent && no_parent)
		rc = cli_error(cli, CAIRN_EUSAGE, "--parent and --no-parent exclude each other");
	for (size_t i = 0; rc == 0 && i < excludes.n; i++)
		if (excludes.v[i][0] != '/')
			rc = cli_error(cli, CAIRN_EUSAGE,
			               "--exclude '%s': write it as an absolute path inside the root, e.g. /var/cache",
			               excludes.v[i]);
	if (rc == 0)
		rc = cli_open_repo(cli, &repo);
	if (rc == 0 && parent)
		rc = cli_resolve(cli, repo, parent, user, pid);
	if (rc == 0) {
		cairn_take_options o = CAIRN_TAKE_OPTIONS_INIT;
		o.root = root;
		o.user = user;
		o.parent = parent ? pid : NULL;
		o.no_parent = no_parent;
		o.excludes = excludes.v;
		o.nexcludes = excludes.n;
		o.threads = threads;
		cairn_estimate_result e = CAIRN_ESTIMATE_RESULT_INIT;
		int err = cairn_estimate(&e, repo, &o);
		if (err < 0) {
			rc = cli_fail(cli, err);
		} else if (cli->json) {
			struct json j;
			json_start(&j, stdout);
			json_open(&j, NULL, '{');
			json_str(&j, "user", e.usage.user);
			json_u64(&j, "added_bytes", e.added_bytes);
			json_u64(&j, "used_bytes", e.usage.used_bytes);
			if (e.usage.has_quota)
				json_u64(&j, "quota_bytes", e.usage.quota_bytes);
			else
				json_null(&j, "quota_bytes");
			json_bool(&j, "fits", e.fits);
			json_u64(&j, "files", e.files);
			json_u64(&j, "bytes", e.bytes);
			json_u64(&j, "new_bytes", e.new_bytes);
			json_close(&j, '}');
			json_line_end(&j);
		} else {
			char added[32], used[32], quota[32] = "none", bytes[32];
			format_size(added, e.added_bytes);
			format_size(used, e.usage.used_bytes);
			format_size(bytes, e.bytes);
			if (e.usage.has_quota)
				format_size(quota, e.usage.quota_bytes);
			printf("user      %s\nadds      %s (%llu bytes)\nused      %s\nquota     %s\nfits      %s\nfiles     %llu (%s)\n",
			       e.usage.user, added, (unsigned long long)e.added_bytes, used, quota,
			       e.fits ? "yes" : "no", (unsigned long long)e.files, bytes);
		}
	}
	cairn_repo_free(repo);
	strlist_free(&excludes);
	return rc;
}
