#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	unsigned bit;
	const char *name;
} change_names[] = {
	{ CAIRN_CHANGED_TYPE, "type" },       { CAIRN_CHANGED_MODE, "mode" },
	{ CAIRN_CHANGED_OWNER, "owner" },     { CAIRN_CHANGED_SIZE, "size" },
	{ CAIRN_CHANGED_MTIME, "mtime" },     { CAIRN_CHANGED_CONTENT, "content" },
	{ CAIRN_CHANGED_XATTRS, "xattrs" },   { CAIRN_CHANGED_TARGET, "target" },
	{ CAIRN_CHANGED_RDEV, "rdev" },
};

static const char *type_name(const cairn_entry *e)
{
	switch (e->type) {
	case CAIRN_ENTRY_FILE: return "file";
	case CAIRN_ENTRY_DIR: return "dir";
	case CAIRN_ENTRY_SYMLINK: return "symlink";
	case CAIRN_ENTRY_FIFO: return "fifo";
	case CAIRN_ENTRY_CHR: return "chr";
	case CAIRN_ENTRY_BLK: return "blk";
	}
	return "?";
}

struct diff_out {
	struct json j;
	int json;
};

static int print_item(const cairn_diff_item *it, void *payload)
{
	struct diff_out *o = payload;
	const cairn_entry *e = it->new_entry ? it->new_entry : it->old_entry;
	const char *kind = it->kind == CAIRN_DIFF_ADDED ? "added"
	                 : it->kind == CAIRN_DIFF_REMOVED ? "removed" : "changed";
	if (o->json) {
		/* "/" + path: paths are absolute inside the snapshot */
		char *path = malloc(it->path_len + 2);
		if (!path)
			return CAIRN_ENOMEM;
		path[0] = '/';
		memcpy(path + 1, it->path, it->path_len + 1);
		json_open(&o->j, NULL, '{');
		json_strn(&o->j, "path", path, it->path_len + 1);
		json_str(&o->j, "status", kind);
		json_str(&o->j, "type", type_name(e));
		if (it->kind == CAIRN_DIFF_CHANGED) {
			json_open(&o->j, "changes", '[');
			for (size_t i = 0; i < sizeof(change_names) / sizeof(change_names[0]); i++)
				if (it->changes & change_names[i].bit)
					json_str(&o->j, NULL, change_names[i].name);
			json_close(&o->j, ']');
		}
		json_close(&o->j, '}');
		free(path);
		return 0;
	}
	putchar(it->kind == CAIRN_DIFF_ADDED ? '+' : it->kind == CAIRN_DIFF_REMOVED ? '-' : 'M');
	fputs(" /", stdout);
	print_escaped(stdout, it->path, it->path_len);
	if (e->type == CAIRN_ENTRY_DIR && it->path_len)
		putchar('/');
	if (it->kind == CAIRN_DIFF_CHANGED) {
		const char *sep = "  (";
		for (size_t i = 0; i < sizeof(change_names) / sizeof(change_names[0]); i++)
			if (it->changes & change_names[i].bit) {
				printf("%s%s", sep, change_names[i].name);
				sep = ", ";
			}
		putchar(')');
	}
	putchar('\n');
	return 0;
}

int cmd_diff(struct cli *cli, int argc, char **argv)
{
	const char *user = NULL;
	const struct opt opts[] = { OPT_SNAP_USER(&user), OPT_JSON(cli), OPT_END };
	cli_parse(cli, "SNAP1 SNAP2", opts, argc, argv);

	cairn_repo *repo;
	char a[65], b[65];
	int rc = cli_open_repo(cli, &repo);
	if (rc == 0)
		rc = cli_resolve(cli, repo, cli->args[0], user, a);
	if (rc == 0)
		rc = cli_resolve(cli, repo, cli->args[1], user, b);
	if (rc == 0) {
		struct diff_out o = { .json = cli->json };
		cairn_diff_result res = CAIRN_DIFF_RESULT_INIT;
		if (o.json) {
			json_start(&o.j, stdout);
			json_open(&o.j, NULL, '{');
			json_str(&o.j, "old", a);
			json_str(&o.j, "new", b);
			json_open(&o.j, "entries", '[');
		}
		int err = cairn_diff(&res, repo, a, b, print_item, &o);
		if (err < 0) {
			if (o.json)
				putchar('\n');
			rc = cli_fail(cli, err);
		} else if (o.json) {
			json_close(&o.j, ']');
			json_u64(&o.j, "added", res.added);
			json_u64(&o.j, "removed", res.removed);
			json_u64(&o.j, "changed", res.changed);
			json_u64(&o.j, "trees_read", res.trees_read);
			json_close(&o.j, '}');
			json_line_end(&o.j);
		}
	}
	cairn_repo_free(repo);
	return rc;
}
