#include "util.h"

#include <stdio.h>

int cmd_version(struct cli *cli, int argc, char **argv)
{
	const struct opt opts[] = { OPT_END };
	cli_parse(cli, "", opts, argc, argv);
	printf("cairn %s (format %d)\n", cairn_version(), cairn_format_version());
	return 0;
}
