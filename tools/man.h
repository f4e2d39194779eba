/* cairn(1): the man page, printed in roff by the hidden 'cairn help --man'
 * from the same tables --help prints (main.c's command table, each
 * command's option table), so that the page and --help cannot drift. */
#ifndef CAIRN_TOOLS_MAN_H
#define CAIRN_TOOLS_MAN_H

#include <stddef.h>
#include <stdio.h>

#include "util.h"

/* What cli_parse prints for --help when cli->man is set (see struct cli). */
enum { MAN_OFF, MAN_COMMAND, MAN_BUILTINS };

/* The whole page on stdout: every command of cmds, each one's section
 * printed by running it with --help in a child process (cli_parse exits
 * after the help). 0, or an exit code after one error line. */
int man_page(const struct command *cmds, size_t n);

/* One command's section (MAN_COMMAND: usage, summary, its own options) or
 * the options every command takes (MAN_BUILTINS), in roff. tables as in
 * cli_parse: the command's options, then the built-in ones. */
void man_help(FILE *f, const struct cli *cli, const char *args, const struct opt *const tables[2]);

#endif
