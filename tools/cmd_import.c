#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void print_done(const cairn_import_result *r)
{
	struct json j;
	json_start(&j, stdout);
	json_open(&j, NULL, '{');
	json_str(&j, "event", "done");
	json_str(&j, "snapshot", r->snapshot);
	json_u64(&j, "entries", r->entries);
	json_u64(&j, "files", r->files);
	json_u64(&j, "dirs", r->dirs);
	json_u64(&j, "bytes", r->bytes);
	json_u64(&j, "new_bytes", r->new_bytes);
	json_u64(&j, "stored_bytes", r->stored_bytes);
	json_u64(&j, "whiteouts", r->whiteouts);
	json_u64(&j, "sockets_skipped", r->sockets_skipped);
	json_u64(&j, "duration_ms", r->duration_ms);
	json_close(&j, '}');
	json_line_end(&j);
}

int cmd_import(struct cli *cli, int argc, char **argv)
{
	const char *name = NULL, *user = NULL, *base = NULL;
	struct strlist labels = { 0 };
	int quiet = 0;
	const struct opt opts[] = {
		{ "--name", NULL, OPT_STR, &name, "NAME", "snapshot name", 1, 0, 0 },
		{ "--user", NULL, OPT_USER, &user, "USER", "owner of the snapshot (default: \"default\"); --base is one of USER's snapshots", 0, 0, 0 },
		{ "--base", NULL, OPT_STR, &base, "SNAP", "the archive is an OCI/Docker layer over SNAP (.wh. whiteouts applied)", 0, 0, 0 },
		{ "--label", NULL, OPT_LIST, &labels, "KEY=VALUE", "attach a label", 0, 0, 0 },
		{ "-q", "--quiet", OPT_FLAG, &quiet, NULL, "print only the snapshot id", 0, 0, 0 },
		OPT_JSON(cli),
		OPT_END
	};
	cli_parse(cli, "FILE", opts, argc, argv);
	const char *file = cli->args[0];
	int from_stdin = !strcmp(file, "-");
	if (!*name) {
		strlist_free(&labels);
		return cli_error(cli, CAIRN_EUSAGE, "--name must not be empty");
	}
	for (size_t i = 0; i < labels.n; i++) {
		const char *eq = strchr(labels.v[i], '=');
		if (!eq || eq == labels.v[i]) {
			int rc = cli_error(cli, CAIRN_EUSAGE, "--label '%s': expected KEY=VALUE", labels.v[i]);
			strlist_free(&labels);
			return rc;
		}
	}

	cairn_repo *repo;
	char base_id[65], source[4200];
	int fd = -1, rc = cli_open_repo(cli, &repo);
	if (rc == 0 && base)
		rc = cli_resolve(cli, repo, base, user, base_id);
	if (rc == 0) {
		fd = from_stdin ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			rc = cli_error(cli, errno == ENOENT ? CAIRN_ENOTFOUND : CAIRN_EIO, "%s: %s", file,
			               strerror(errno));
	}
	if (rc == 0) {
		struct events ev;
		events_init(&ev, cli, quiet, 1);
		snprintf(source, sizeof(source), "archive:%s", from_stdin ? "-" : file);
		cairn_import_options io = CAIRN_IMPORT_OPTIONS_INIT;
		io.name = name;
		io.user = user;
		io.base = base ? base_id : NULL;
		io.source = source;
		io.labels = labels.v;
		io.nlabels = labels.n;
		io.event_cb = events_cb;
		io.event_payload = &ev;
		cairn_import_result res = CAIRN_IMPORT_RESULT_INIT;
		int err = cairn_import(&res, repo, fd, &io);
		progress_clear();
		if (err < 0) {
			rc = cli_fail(cli, err);
		} else if (cli->json) {
			print_done(&res);
		} else if (quiet) {
			printf("%s\n", res.snapshot);
		} else {
			char bytes[32], fresh[32], stored[32], took[32];
			format_size(bytes, res.bytes);
			format_size(fresh, res.new_bytes);
			format_size(stored, res.stored_bytes);
			format_duration(took, res.duration_ms);
			printf("snapshot  %s\nentries   %" PRIu64 "\nfiles     %" PRIu64 "\nbytes     %s\n"
			       "new       %s\nstored    %s\nduration  %s\n",
			       res.snapshot, res.entries, res.files, bytes, fresh, stored, took);
			if (res.whiteouts)
				printf("whiteouts %" PRIu64 "\n", res.whiteouts);
		}
	}
	if (fd >= 0 && !from_stdin)
		close(fd);
	strlist_free(&labels);
	cairn_repo_free(repo);
	return rc;
}
