/* The CLI's shared helpers (util.h): errors as one line on stderr (and an
 * event with --json), clearing a progress line first (events.c draws it);
 * the repository opened and SNAP resolved. */
#include "util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

static int progress_on_line; /* stderr's cursor is at the end of a progress line */

void progress_drawn(void) { progress_on_line = 1; }

void progress_clear(void)
{
	if (progress_on_line) {
		fputs("\r\033[K", stderr);
		progress_on_line = 0;
	}
}

void cli_notice(const struct cli *cli, const char *msg)
{
	progress_clear();
	fprintf(stderr, "cairn: %s: ", cli->cmd);
	print_escaped(stderr, msg, strlen(msg));
	fputc('\n', stderr);
}

static int verror(const struct cli *cli, int code, const char *fmt, va_list ap)
{
	char msg[4096];
	vsnprintf(msg, sizeof(msg), fmt, ap);

	cli_notice(cli, msg);

	if (cli->json) {
		struct json j;
		json_start(&j, stdout);
		json_open(&j, NULL, '{');
		json_str(&j, "event", "error");
		json_str(&j, "code", cairn_error_name(code));
		json_str(&j, "message", msg);
		json_close(&j, '}');
		json_line_end(&j);
	}
	return cairn_error_exit_code(code);
}

int cli_error(const struct cli *cli, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = verror(cli, code, fmt, ap);
	va_end(ap);
	return rc;
}

int cli_fail(const struct cli *cli, int code)
{
	const char *msg = cairn_error_last();
	return cli_error(cli, code, "%s", *msg ? msg : cairn_error_name(code));
}

/* A group a dead take left frozen is thawed by the next command (a look
 * at the state directory; cairn recover says more). */
static void recover_notice(const cairn_recovered *r, void *payload)
{
	const struct cli *cli = payload;
	char msg[8192];
	if (strcmp(r->action, "thawed") && strcmp(r->action, "failed"))
		return;
	snprintf(msg, sizeof(msg), "cgroup %s: %s (%s; freeze record %s)", r->cgroup,
	         !strcmp(r->action, "thawed") ? "thawed" : "not thawed", r->detail, r->record);
	cli_notice(cli, msg);
}

const char *cli_repo_path(const struct cli *cli)
{
	const char *path = cli->repo;
	if (!path || !*path)
		path = getenv("CAIRN_REPO");
	if (!path || !*path) {
		cli_error(cli, CAIRN_EUSAGE, "no repository: give --repo PATH or set CAIRN_REPO");
		return NULL;
	}
	/* best effort: its failures are not this command's */
	cairn_recover(getenv("CAIRN_STATE_DIR"), recover_notice, (void *)cli);
	return path;
}

int cli_open_options(const struct cli *cli, cairn_repo_open_options *o)
{
	char err[256];
	if (env_open_options(o, err, sizeof(err)) < 0)
		return cli_error(cli, CAIRN_EUSAGE, "%s", err);
	return 0;
}

int cli_open_repo(const struct cli *cli, cairn_repo **out)
{
	*out = NULL;
	const char *path = cli_repo_path(cli);
	if (!path)
		return cairn_error_exit_code(CAIRN_EUSAGE);
	cairn_repo_open_options o = CAIRN_REPO_OPEN_OPTIONS_INIT;
	int rc = cli_open_options(cli, &o);
	if (rc) return rc;
	rc = cairn_repo_open_ext(out, path, &o);
	return rc < 0 ? cli_fail(cli, rc) : 0;
}

int cli_resolve(const struct cli *cli, cairn_repo *repo, const char *snap, const char *user,
                char id[65])
{
	int rc = cairn_snapshot_resolve_ext(id, repo, snap, user, CAIRN_RESOLVE_USER_ONLY);
	return rc < 0 ? cli_fail(cli, rc) : 0;
}

const cairn_snapshot_info *snapshot_by_id(const cairn_snapshot_list *list, const char *id)
{
	for (size_t i = 0; i < cairn_snapshot_list_count(list); i++)
		if (!strcmp(cairn_snapshot_list_get(list, i)->id, id))
			return cairn_snapshot_list_get(list, i);
	return NULL;
}
