/* cairn: command dispatch and the global help. */
#include "man.h"
#include "util.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

static const struct command commands[] = {
	{ "init", "Create a repository at the --repo path.", cmd_init },
	{ "take", "Capture the tree at DIR into a new snapshot.", cmd_take },
	{ "restore", "Recreate a snapshot's tree in TARGET (absent or empty unless --force).", cmd_restore },
	{ "snapshots", "List snapshots: id, user, name, time, size, pause and duration.", cmd_snapshots },
	{ "ls", "List a directory (the root by default) of a snapshot.", cmd_ls },
	{ "cat", "Write the content of one file of a snapshot to stdout.", cmd_cat },
	{ "info", "Show one snapshot: counts, bytes, new and stored bytes, times, parent, labels.", cmd_info },
	{ "diff", "List the paths added, removed and changed between two snapshots.", cmd_diff },
	{ "stats", "Repository totals: logical and stored bytes, dedup ratio, chunks, packs.", cmd_stats },
	{ "export", "Write a snapshot as a tar archive (pax, gnutar or ustar; zstd or gzip).", cmd_export },
	{ "import", "Create a snapshot from a tar archive, optionally as a layer over --base.", cmd_import },
	{ "forget", "Delete snapshots; their users' usage drops at once (space returns at gc).", cmd_forget },
	{ "quota", "Set (quota set USER SIZE|none) or show (quota show [USER]) per-user limits.", cmd_quota },
	{ "usage", "Per-user stored bytes, snapshot count and quota.", cmd_usage },
	{ "estimate", "What a take of DIR would add to USER's usage, writing nothing.", cmd_estimate },
	{ "fsck", "Check the repository; name every damaged object and the snapshots it affects.", cmd_fsck },
	{ "gc", "Reclaim the space of forgotten snapshots and failed takes, beside running takes.", cmd_gc },
	{ "recover", "Thaw the cgroups that takes which died left frozen (for boot scripts).", cmd_recover },
	{ "mount", "Serve a snapshot read-only at MOUNTPOINT, file data fetched on first read.", cmd_mount },
	{ "umount", "Unmount a cairn mount and end its server (also after the server died).", cmd_umount },
	{ "version", "Print the version and the repository format version.", cmd_version },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void global_help(FILE *f)
{
	fprintf(f, "usage: cairn COMMAND [ARGS] [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-11s%s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\noptions of every command:\n"
	           "  --repo PATH   repository: a directory, rados:POOL[/PREFIX] or\n"
	           "                s3://BUCKET[/PREFIX] (default: $CAIRN_REPO)\n"
	           "  --ceph-conf FILE  Ceph configuration for rados: (default: $CEPH_CONF)\n"
	           "  -h, --help    show the command's usage and options\n"
	           "  --version     the same as 'cairn version'\n"
	           "\nRun 'cairn help COMMAND' for a command's options. Exit codes: 0 done,\n"
	           "1 failed, 2 usage, 3 quota exceeded, 4 damage, 5 busy, 6 not found.\n");
}

static int unknown(const char *what, const char *name)
{
	fprintf(stderr, "cairn: unknown %s '", what);
	print_escaped(stderr, name, strlen(name));
	fprintf(stderr, "' (see 'cairn --help')\n");
	return cairn_error_exit_code(CAIRN_EUSAGE);
}

static int run(const struct command *c, int argc, char **argv)
{
	struct cli cli = { .cmd = c->name, .summary = c->summary };
	int rc = c->run(&cli, argc, argv);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		int err = errno;
		if (rc == 0)
			rc = cli_error(&cli, CAIRN_EIO, "writing to stdout: %s", strerror(err));
	}
	return rc;
}

/* Keep freed memory for reuse instead of giving it back to the kernel at
 * once: what a take frees (the pre-copy's parent view, librados's copies of
 * every RADOS write) is allocated again moments later, and a fresh page
 * costs a fault each (~16-20 us on the benchmark VM). glibc's defaults
 * return freed blocks above 128 KiB and map each 4 MiB+ block anew; this
 * keeps up to 256 MiB and maps only blocks of 32 MiB and more. Measured
 * in docs/operations.md ("RADOS") and docs/performance.md. A program embedding libcairn makes its
 * own choice. */
static void keep_freed_memory(void)
{
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
}

int main(int argc, char **argv)
{
	keep_freed_memory();
	/* Global options before the command: --repo is handed to the command. */
	int cmd = 1;
	while (cmd < argc && argv[cmd][0] == '-') {
		const char *a = argv[cmd];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			global_help(stdout);
			return 0;
		}
		if (!strcmp(a, "--version")) {
			print_version();
			return 0;
		}
		int valued = !strcmp(a, "--repo") || !strcmp(a, "--ceph-conf");
		if (valued && cmd + 1 >= argc) {
			fprintf(stderr, "cairn: %s needs a value\n", a);
			return cairn_error_exit_code(CAIRN_EUSAGE);
		}
		if (valued)
			cmd += 2;
		else if (!strncmp(a, "--repo=", 7) || !strncmp(a, "--ceph-conf=", 12))
			cmd++;
		else
			return unknown("option", a);
	}
	if (cmd >= argc) {
		fprintf(stderr, "cairn: missing command (see 'cairn --help')\n");
		return cairn_error_exit_code(CAIRN_EUSAGE);
	}

	if (!strcmp(argv[cmd], "help")) {
		if (cmd + 1 >= argc) {
			global_help(stdout);
			return 0;
		}
		if (!strcmp(argv[cmd + 1], "--man")) /* hidden: builds cairn.1 */
			return man_page(commands, sizeof(commands) / sizeof(commands[0]));
		const struct command *c = find_command(argv[cmd + 1]);
		if (!c)
			return unknown("command", argv[cmd + 1]);
		static char help_flag[] = "--help";
		char *help_argv[] = { argv[cmd + 1], help_flag, NULL };
		return run(c, 2, help_argv);
	}

	const struct command *c = find_command(argv[cmd]);
	if (!c)
		return unknown("command", argv[cmd]);

	/* The command sees: its name, the global options, then its own arguments. */
	char **cargv = malloc(sizeof(*cargv) * (size_t)(argc + 1));
	if (!cargv) {
		fprintf(stderr, "cairn: out of memory\n");
		return 1;
	}
	int n = 0;
	cargv[n++] = argv[cmd];
	for (int i = 1; i < cmd; i++)
		cargv[n++] = argv[i];
	for (int i = cmd + 1; i < argc; i++)
		cargv[n++] = argv[i];
	cargv[n] = NULL;
	int rc = run(c, n, cargv);
	free(cargv);
	return rc;
}
