/* Shared by cmd_usage.c, cmd_quota.c and cmd_estimate.c. */
#ifndef CAIRN_TOOLS_USAGE_PRINT_H
#define CAIRN_TOOLS_USAGE_PRINT_H

#include "util.h"

void usage_print_json(const cairn_usage *v, size_t n);
/* 0, or -1 when out of memory. */
int usage_print_table(const cairn_usage *v, size_t n);
int usage_show(const struct cli *cli, const char *user, int quota_only);

#endif
