#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

int cmd_init(struct cli *cli, int argc, char **argv)
{
	uint64_t chunk_avg = UINT64_MAX; /* not given */
	int zstd_level = 0;
	const struct opt opts[] = {
		{ "--chunk-avg", NULL, OPT_SIZE, &chunk_avg, "SIZE",
		  "average chunk size, a power of two (default: the engine's)", 0, 0, UINT32_MAX },
		{ "--zstd-level", NULL, OPT_INT, &zstd_level, "N",
		  "zstd compression level (default: the engine's)", 0, 1, 19 },
		OPT_END
	};
	cli_parse(cli, "", opts, argc, argv);

	const char *path = cli_repo_path(cli);
	if (!path)
		return cairn_error_exit_code(CAIRN_EUSAGE);
	/* 0 means "the default" to the engine: given, it is a bad value */
	if (chunk_avg == 0)
		return cli_error(cli, CAIRN_EUSAGE, "--chunk-avg 0: must be a power of two from %u KiB to %u KiB",
		                 CAIRN_CHUNK_AVG_MIN / 1024, CAIRN_CHUNK_AVG_MAX / 1024);
	cairn_init_options io = CAIRN_INIT_OPTIONS_INIT;
	cairn_repo_open_options oo = CAIRN_REPO_OPEN_OPTIONS_INIT;
	int rc = cli_open_options(cli, &oo);
	if (rc) return rc;
	io.chunk_avg = chunk_avg == UINT64_MAX ? 0 : (uint32_t)chunk_avg;
	io.zstd_level = zstd_level;
	io.open = &oo;
	rc = cairn_repo_init(path, &io);
	if (rc < 0)
		return cli_fail(cli, rc);
	printf("initialized repository at ");
	print_escaped(stdout, path, strlen(path));
	printf("\n");
	return 0;
}
