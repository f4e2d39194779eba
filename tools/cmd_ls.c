#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct ls {
	const char *dir; /* the listed directory, without leading or trailing '/' */
	size_t dir_len;
	int long_format, recursive;
};

/* "drwxr-xr-x", with setuid, setgid and sticky bits as ls shows them. */
static void mode_string(char out[11], const cairn_entry *e)
{
	static const char types[] = { [CAIRN_ENTRY_FILE] = '-', [CAIRN_ENTRY_DIR] = 'd',
	                              [CAIRN_ENTRY_SYMLINK] = 'l', [CAIRN_ENTRY_FIFO] = 'p',
	                              [CAIRN_ENTRY_CHR] = 'c', [CAIRN_ENTRY_BLK] = 'b' };
	out[0] = e->type > 0 && (size_t)e->type < sizeof(types) ? types[e->type] : '?';
	for (int i = 0; i < 9; i++)
		out[1 + i] = e->mode & (0400u >> i) ? "rwxrwxrwx"[i] : '-';
	if (e->mode & S_ISUID)
		out[3] = out[3] == 'x' ? 's' : 'S';
	if (e->mode & S_ISGID)
		out[6] = out[6] == 'x' ? 's' : 'S';
	if (e->mode & S_ISVTX)
		out[9] = out[9] == 'x' ? 't' : 'T';
	out[10] = 0;
}

/* The entry's directory relative to the listed one ("" when it is that one). */
static const char *relative_dir(const struct ls *ls, const char *path)
{
	while (*path == '/')
		path++;
	if (ls->dir_len && !strncmp(path, ls->dir, ls->dir_len) &&
	    (path[ls->dir_len] == 0 || path[ls->dir_len] == '/'))
		path += ls->dir_len;
	return path + strspn(path, "/");
}

static int print_entry(const char *path, const cairn_entry *e, void *payload)
{
	const struct ls *ls = payload;
	if (ls->long_format) {
		char mode[11], size[32], mtime[32];
		mode_string(mode, e);
		if (e->type == CAIRN_ENTRY_CHR || e->type == CAIRN_ENTRY_BLK)
			snprintf(size, sizeof(size), "%" PRIu32 ", %" PRIu32, e->rdev_major, e->rdev_minor);
		else
			snprintf(size, sizeof(size), "%" PRIu64, e->size);
		format_local_time(mtime, e->mtime_sec);
		printf("%s %6" PRIu32 " %6" PRIu32 " %12s %s ", mode, e->uid, e->gid, size, mtime);
	}
	if (ls->recursive) {
		const char *dir = relative_dir(ls, path);
		if (*dir) {
			print_escaped(stdout, dir, strlen(dir));
			putchar('/');
		}
	}
	print_escaped(stdout, e->name, e->name_len);
	if (ls->long_format && e->type == CAIRN_ENTRY_SYMLINK && e->link_target) {
		fputs(" -> ", stdout);
		print_escaped(stdout, e->link_target, strlen(e->link_target));
	}
	putchar('\n');
	return 0;
}

int cmd_ls(struct cli *cli, int argc, char **argv)
{
	struct ls ls = { 0 };
	const char *user = NULL;
	const struct opt opts[] = {
		{ "-l", "--long", OPT_FLAG, &ls.long_format, NULL,
		  "mode, uid, gid, size (major, minor of devices), mtime, symlink target", 0, 0, 0 },
		{ "-R", "--recursive", OPT_FLAG, &ls.recursive, NULL,
		  "every entry below PATH, as a path relative to it", 0, 0, 0 },
		OPT_SNAP_USER(&user),
		OPT_END
	};
	cli_parse(cli, "SNAP [PATH]", opts, argc, argv);
	const char *path = cli->nargs > 1 ? cli->args[1] : "";
	ls.dir = path + strspn(path, "/");
	ls.dir_len = strlen(ls.dir);
	while (ls.dir_len && ls.dir[ls.dir_len - 1] == '/')
		ls.dir_len--;

	cairn_repo *repo;
	char id[65];
	int rc = cli_open_repo(cli, &repo);
	if (rc == 0)
		rc = cli_resolve(cli, repo, cli->args[0], user, id);
	if (rc == 0) {
		int err = cairn_ls(repo, id, path, ls.recursive, print_entry, &ls);
		if (err < 0)
			rc = cli_fail(cli, err);
	}
	cairn_repo_free(repo);
	return rc;
}
