#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cmd_export(struct cli *cli, int argc, char **argv)
{
	const char *user = NULL, *output = NULL, *format = "pax", *compress = "none";
	int quiet = 0;
	const struct opt opts[] = {
		{ "-o", "--output", OPT_STR, &output, "FILE", "write the archive to FILE ('-' or absent: stdout)", 0, 0, 0 },
		{ "--format", NULL, OPT_STR, &format, "pax|gnutar|ustar", "tar dialect (default pax: xattrs, ACLs, sparse files, ns times)", 0, 0, 0 },
		{ "--compress", NULL, OPT_STR, &compress, "zstd|gzip|none", "compression (default none)", 0, 0, 0 },
		{ "-q", "--quiet", OPT_FLAG, &quiet, NULL, "no progress line", 0, 0, 0 },
		OPT_SNAP_USER(&user),
		OPT_END
	};
	cli_parse(cli, "SNAP", opts, argc, argv);

	cairn_export_options eo = CAIRN_EXPORT_OPTIONS_INIT;
	if (!strcmp(format, "pax"))
		eo.format = CAIRN_ARCHIVE_PAX;
	else if (!strcmp(format, "gnutar"))
		eo.format = CAIRN_ARCHIVE_GNUTAR;
	else if (!strcmp(format, "ustar"))
		eo.format = CAIRN_ARCHIVE_USTAR;
	else
		return cli_error(cli, CAIRN_EUSAGE, "--format '%s': expected pax, gnutar or ustar", format);
	if (!strcmp(compress, "none"))
		eo.compress = CAIRN_COMPRESS_NONE;
	else if (!strcmp(compress, "gzip"))
		eo.compress = CAIRN_COMPRESS_GZIP;
	else if (!strcmp(compress, "zstd"))
		eo.compress = CAIRN_COMPRESS_ZSTD;
	else
		return cli_error(cli, CAIRN_EUSAGE, "--compress '%s': expected zstd, gzip or none", compress);
	int to_stdout = !output || !strcmp(output, "-");
	if (to_stdout && isatty(STDOUT_FILENO))
		return cli_error(cli, CAIRN_EUSAGE, "refusing to write an archive to a terminal; give -o FILE or redirect stdout");

	cairn_repo *repo;
	char id[65];
	int fd = -1, rc = cli_open_repo(cli, &repo);
	if (rc == 0)
		rc = cli_resolve(cli, repo, cli->args[0], user, id);
	if (rc == 0) {
		fd = to_stdout ? STDOUT_FILENO : open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			rc = cli_error(cli, CAIRN_EIO, "%s: %s", output, strerror(errno));
	}
	if (rc == 0) {
		struct events ev;
		events_init(&ev, cli, quiet, 0);
		eo.event_cb = events_cb;
		eo.event_payload = &ev;
		cairn_export_result res = CAIRN_EXPORT_RESULT_INIT;
		int err = cairn_export(&res, repo, id, fd, &eo);
		progress_clear();
		if (err < 0)
			rc = cli_fail(cli, err);
		else if (!to_stdout && fsync(fd) < 0)
			rc = cli_error(cli, CAIRN_EIO, "%s: fsync: %s", output, strerror(errno));
		if (rc != 0 && !to_stdout)
			unlink(output); /* never leave half an archive behind */
	}
	if (fd >= 0 && !to_stdout && close(fd) < 0 && rc == 0)
		rc = cli_error(cli, CAIRN_EIO, "%s: %s", output, strerror(errno));
	cairn_repo_free(repo);
	return rc;
}
