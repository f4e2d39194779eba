/* cairn(1) in roff, from the command table and each command's options. */
#include "man.h"

#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Text for roff: hyphens as \- (so that options print as typed and can be
 * copied), backslashes as \e, and \& before a leading '.' or '\'' so that
 * no text is taken for a request. */
static void roff(FILE *f, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", f);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", f);
		else if (*s == '-')
			fputs("\\-", f);
		else
			fputc(*s, f);
	}
}

static void font(FILE *f, const char *fnt, const char *s)
{
	fprintf(f, "\\f%s", fnt);
	roff(f, s);
	fputs("\\fR", f);
}

/* One option as a tagged paragraph, with the words --help adds. */
static void opt_entry(FILE *f, const struct opt *o)
{
	fputs(".TP\n", f);
	font(f, "B", o->name);
	if (o->alias) {
		fputs(", ", f);
		font(f, "B", o->alias);
	}
	if (o->metavar) {
		fputc(' ', f);
		font(f, "I", o->metavar);
	}
	fputc('\n', f);
	roff(f, o->help);
	fprintf(f, "%s%s\n", o->kind == OPT_LIST ? " (repeatable)" : "",
	        o->required ? " (required)" : "");
}

void man_help(FILE *f, const struct cli *cli, const char *args, const struct opt *const tables[2])
{
	if (cli->man == MAN_BUILTINS) {
		for (const struct opt *o = tables[1]; o->name; o++)
			opt_entry(f, o);
		return;
	}
	/* the usage line --help prints: required options, then the arguments */
	fputs(".SS\n", f);
	font(f, "B", "cairn ");
	font(f, "B", cli->cmd);
	for (const struct opt *o = tables[0]; o->name; o++)
		if (o->required) {
			fputc(' ', f);
			font(f, "B", o->name);
			fputc(' ', f);
			font(f, "I", o->metavar);
		}
	if (*args) {
		fputc(' ', f);
		font(f, "I", args);
	}
	fputs(" [\\fIoptions\\fR]\n", f);
	if (cli->summary) {
		roff(f, cli->summary);
		fputc('\n', f);
	}
	for (const struct opt *o = tables[0]; o->name; o++)
		opt_entry(f, o);
}

/* Run c with --help in a child that prints its part of the page (cli_parse
 * prints the help and exits). 0 when the child printed it. */
static int command_part(const struct command *c, int what)
{
	if (fflush(stdout) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char name[64], help[] = "--help";
		snprintf(name, sizeof(name), "%s", c->name);
		char *argv[] = { name, help, NULL };
		struct cli cli = { .cmd = c->name, .summary = c->summary, .man = what };
		c->run(&cli, 2, argv);
		_exit(1); /* not reached: --help ends in exit(0) */
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static const char *const exit_codes[][2] = {
	{ "0", "done" },
	{ "1", "failed (I/O error, internal error); the message says what and where" },
	{ "2", "usage error: unknown command or flag, bad value, missing argument, an ambiguous SNAP" },
	{ "3", "quota exceeded: nothing was committed; the message gives needed, used and quota" },
	{ "4", "damage: a corrupt or missing object was met" },
	{ "5", "busy: a lock could not be had in time" },
	{ "6", "not found: no such snapshot, path, user or repository" },
};

static const char *const environment[][2] = {
	{ "CAIRN_REPO", "the repository when --repo is not given" },
	{ "CAIRN_STATE_DIR", "where a restore keeps its record on this host, so that the first take of "
	                     "the restored tree reads only what changed (default /var/lib/cairn)" },
	{ "CAIRN_NO_URING", "1: plain system calls instead of io_uring" },
	{ "CEPH_CONF, CEPH_CLIENT_ID, CEPH_ARGS", "the Ceph cluster and client of rados: repositories" },
	{ "CAIRN_RADOS_TIMEOUT", "seconds before a RADOS operation fails (default 60)" },
	{ "CAIRN_S3_ENDPOINT", "the S3 service of s3:// repositories (default https://s3.REGION.amazonaws.com)" },
	{ "AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN",
	  "the S3 region and credentials" },
};

static void tagged(const char *const (*rows)[2], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		fputs(".TP\n", stdout);
		font(stdout, "B", rows[i][0]);
		fputc('\n', stdout);
		roff(stdout, rows[i][1]);
		fputc('\n', stdout);
	}
}

int man_page(const struct command *cmds, size_t n)
{
	printf(".TH CAIRN 1 \"\" \"cairn %s\" \"User Commands\"\n.nh\n.ad l\n", cairn_version());
	printf(".SH NAME\ncairn \\- content-addressed, deduplicating snapshots of instance filesystems\n");
	printf(".SH SYNOPSIS\n.B cairn\n.I COMMAND\n[\\fIARGS\\fR] [\\fIoptions\\fR]\n.br\n"
	       ".B cairn help\n.I COMMAND\n");
	printf(".SH DESCRIPTION\n"
	       "cairn captures a directory tree (an instance's root filesystem, less\n"
	       ".IR /datadrive )\n"
	       "into a shared repository of content-defined chunks, named by their SHA\\-256,\n"
	       "compressed with zstd and stored once for all users, and restores it exactly.\n"
	       "A running instance is paused (its cgroup frozen) only for the last part of a take.\n"
	       "Each user's usage counts the chunks of that user's snapshots once, whatever\n"
	       "other users store, and is held to the user's quota.\n"
	       ".PP\n"
	       "A repository is a directory, a Ceph pool\n"
	       "(\\fBrados:\\fIPOOL\\fR[\\fB/\\fIPREFIX\\fR]) or an S3 bucket\n"
	       "(\\fBs3://\\fIBUCKET\\fR[\\fB/\\fIPREFIX\\fR]), given by \\fB\\-\\-repo\\fR or\n"
	       "\\fBCAIRN_REPO\\fR.\n"
	       "\\fISNAP\\fR is a snapshot id (or a unique prefix of at least 8 hex digits) or a\n"
	       "snapshot name that is unique in the repository; \\fB\\-\\-user\\fR narrows names to\n"
	       "one user's snapshots.\n"
	       "\\fIUSER\\fR is 1 to 64 characters of A\\-Z a\\-z 0\\-9 . _ \\-.\n"
	       "Sizes are bytes or a number with K, M, G or T (powers of 1024).\n"
	       "Options may come before or after the arguments.\n"
	       "With \\fB\\-\\-json\\fR a command prints machine\\-readable output on stdout;\n"
	       "every failure prints one line, \\fBcairn: \\fICOMMAND\\fB: \\fImessage\\fR, on stderr.\n");
	const struct command *c = cmds;
	printf(".SH COMMANDS\n");
	for (; c < cmds + n; c++)
		if (command_part(c, MAN_COMMAND) != 0)
			goto failed;
	printf(".SH OPTIONS OF EVERY COMMAND\n");
	if (n > 0 && command_part(c = cmds, MAN_BUILTINS) != 0)
		goto failed;
	printf(".TP\n\\fB\\-\\-version\\fR\nbefore the command: the same as \\fBcairn version\\fR\n");
	printf(".SH EXIT STATUS\n");
	tagged(exit_codes, sizeof(exit_codes) / sizeof(exit_codes[0]));
	printf(".SH ENVIRONMENT\n");
	tagged(environment, sizeof(environment) / sizeof(environment[0]));
	printf(".SH SEE ALSO\n"
	       "README.md (the controller's calls, JSON output) and docs/ (architecture,\n"
	       "repository format, operations, performance) in cairn's source tree.\n");
	return 0;
failed:
	fprintf(stderr, "cairn: help: --man: 'cairn %s --help' failed\n", c->name);
	return 1;
}
