/* cairn usage and cairn quota show: per-user figures (SPEC's JSON shape). */
#include "util.h"

#include <inttypes.h>
#include <stdio.h>

#include "usage_print.h"

void usage_print_json(const cairn_usage *v, size_t n)
{
	struct json j;
	json_start(&j, stdout);
	json_open(&j, NULL, '[');
	for (size_t i = 0; i < n; i++) {
		json_open(&j, NULL, '{');
		json_str(&j, "user", v[i].user);
		json_u64(&j, "used_bytes", v[i].used_bytes);
		if (v[i].has_quota)
			json_u64(&j, "quota_bytes", v[i].quota_bytes);
		else
			json_null(&j, "quota_bytes");
		json_u64(&j, "snapshots", v[i].snapshots);
		json_close(&j, '}');
	}
	json_close(&j, ']');
	json_line_end(&j);
}

int usage_print_table(const cairn_usage *v, size_t n)
{
	static const unsigned char right[] = { 0, 1, 1, 1, 1 };
	static const char *const head[] = { "USER", "USED", "QUOTA", "USE%", "SNAPSHOTS" };
	struct table t = { .ncols = 5, .right = right };
	int rc = table_add(&t, head);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char used[32], quota[32] = "none", pct[16] = "-", snaps[24];
		format_size(used, v[i].used_bytes);
		if (v[i].has_quota) {
			format_size(quota, v[i].quota_bytes);
			if (v[i].quota_bytes)
				snprintf(pct, sizeof(pct), "%.0f%%", 100.0 * (double)v[i].used_bytes / (double)v[i].quota_bytes);
		}
		snprintf(snaps, sizeof(snaps), "%" PRIu64, v[i].snapshots);
		const char *row[] = { v[i].user, used, quota, pct, snaps };
		rc = table_add(&t, row);
	}
	if (rc == 0)
		table_print(&t, stdout);
	table_free(&t);
	return rc;
}

/* Print user's figures, or every user's (only those with a quota when
 * quota_only). 0 or the exit code. */
int usage_show(const struct cli *cli, const char *user, int quota_only)
{
	cairn_repo *repo;
	cairn_usage one, *v = NULL;
	size_t n = 0;
	int err, rc = cli_open_repo(cli, &repo);
	if (rc != 0)
		return rc;
	if (user) {
		err = cairn_usage_get(&one, repo, user);
		v = &one;
		n = 1;
	} else {
		err = cairn_usage_list(&v, &n, repo);
		if (err == 0 && quota_only) {
			size_t k = 0;
			for (size_t i = 0; i < n; i++)
				if (v[i].has_quota)
					v[k++] = v[i];
			n = k;
		}
	}
	if (err < 0)
		rc = cli_fail(cli, err);
	else if (cli->json)
		usage_print_json(v, n);
	else if (usage_print_table(v, n) < 0)
		rc = cli_error(cli, CAIRN_ENOMEM, "out of memory");
	if (!user)
		cairn_usage_list_free(v);
	cairn_repo_free(repo);
	return rc;
}

int cmd_usage(struct cli *cli, int argc, char **argv)
{
	const char *user = NULL;
	const struct opt opts[] = {
		{ "--user", NULL, OPT_USER, &user, "USER", "only USER (default: every user)", 0, 0, 0 },
		OPT_JSON(cli),
		OPT_END
	};
	cli_parse(cli, "", opts, argc, argv);
	return usage_show(cli, user, 0);
}
