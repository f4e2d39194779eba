/* cairn recover: thaw the cgroups that dead takes left frozen (for boot
 * scripts; every command that opens a repository does it quietly too). */
#include <stdlib.h>

#include "util.h"

#include <stdio.h>
#include <string.h>

struct recover_out {
	const struct cli *cli;
	struct table t;
	struct json j;
	int failed;
};

static void on_record(const cairn_recovered *r, void *payload)
{
	struct recover_out *o = payload;
	char pid[32];
	snprintf(pid, sizeof(pid), "%ld", r->pid);
	if (!strcmp(r->action, "failed"))
		o->failed = 1;
	if (o->cli->json) {
		json_open(&o->j, NULL, '{');
		json_str(&o->j, "action", r->action);
		json_str(&o->j, "cgroup", r->cgroup);
		json_i64(&o->j, "pid", r->pid);
		json_str(&o->j, "record", r->record);
		json_str(&o->j, "detail", r->detail);
		json_close(&o->j, '}');
		return;
	}
	const char *row[] = { r->action, r->cgroup[0] ? r->cgroup : "-", pid, r->detail };
	table_add(&o->t, row);
}

int cmd_recover(struct cli *cli, int argc, char **argv)
{
	struct recover_out o = { .cli = cli };
	const struct opt opts[] = { OPT_JSON(cli), OPT_END };
	cli_parse(cli, "", opts, argc, argv);
	static const unsigned char right[] = { 0, 0, 1, 0 };
	o.t.ncols = 4;
	o.t.right = right;
	const char *head[] = { "ACTION", "CGROUP", "TAKE PID", "DETAIL" };
	table_add(&o.t, head);
	if (cli->json) {
		json_start(&o.j, stdout);
		json_open(&o.j, NULL, '[');
	}
	int rc = cairn_recover(getenv("CAIRN_STATE_DIR"), on_record, &o);
	if (cli->json) {
		json_close(&o.j, ']');
		fputc('\n', stdout);
	} else if (o.t.nrows > 1) {
		table_print(&o.t, stdout);
	} else if (rc == 0) {
		printf("no freeze records: nothing left frozen\n");
	}
	table_free(&o.t);
	return rc < 0 ? cli_fail(cli, rc) : 0;
}
