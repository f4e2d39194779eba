#include "util.h"

#include <stdio.h>

void print_version(void) { printf("cairn %s (format %d)\n", cairn_version(), cairn_format_version()); }

int cmd_version(struct cli *cli, int argc, char **argv)
{
	const struct opt opts[] = { OPT_END };
	cli_parse(cli, "", opts, argc, argv);
	print_version();
	return 0;
}
