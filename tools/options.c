/* The CLI's shared helpers (util.h): the option parser, --help and usage
 * errors. */
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "man.h"

/* A usage error met while parsing: one line, a pointer to the help, exit 2. */
static _Noreturn void usage_exit(const struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static _Noreturn void usage_exit(const struct cli *cli, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	exit(cli_error(cli, CAIRN_EUSAGE, "%s (see 'cairn %s --help')", msg, cli->cmd));
}

void strlist_free(struct strlist *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int strlist_add(struct strlist *l, const char *s)
{
	const char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		return -1;
	v[l->n++] = s;
	l->v = v;
	return 0;
}

/* Match a spelling (len bytes of s) against an option's name or alias. */
static int opt_is(const struct opt *o, const char *s, size_t len)
{
	return (strlen(o->name) == len && !memcmp(o->name, s, len)) ||
	       (o->alias && strlen(o->alias) == len && !memcmp(o->alias, s, len));
}

static const struct opt *find_opt(const struct opt *const tables[2], const char *s, size_t len)
{
	for (int t = 0; t < 2; t++)
		for (const struct opt *o = tables[t]; o->name; o++)
			if (opt_is(o, s, len))
				return o;
	return NULL;
}

static void print_usage_line(FILE *f, const struct cli *cli, const char *args,
                             const struct opt *opts)
{
	fprintf(f, "usage: cairn %s", cli->cmd);
	for (const struct opt *o = opts; o->name; o++)
		if (o->required)
			fprintf(f, " %s %s", o->name, o->metavar);
	fprintf(f, "%s%s [options]\n", *args ? " " : "", args);
}

static void print_opts(FILE *f, const struct opt *opts)
{
	for (const struct opt *o = opts; o->name; o++) {
		char left[64];
		snprintf(left, sizeof(left), "%s%s%s%s%s", o->name, o->alias ? ", " : "",
		         o->alias ? o->alias : "", o->metavar ? " " : "", o->metavar ? o->metavar : "");
		fprintf(f, "  %-22s%s%s%s%s\n", left, strlen(left) >= 22 ? "  " : "", o->help,
		        o->kind == OPT_LIST ? " (repeatable)" : "", o->required ? " (required)" : "");
	}
}

static void print_help(const struct cli *cli, const char *args, const struct opt *const tables[2])
{
	if (cli->man) {
		man_help(stdout, cli, args, tables);
		return;
	}
	print_usage_line(stdout, cli, args, tables[0]);
	if (cli->summary)
		printf("\n%s\n", cli->summary);
	printf("\noptions:\n");
	print_opts(stdout, tables[0]);
	print_opts(stdout, tables[1]);
}

/* Store one option's value; exits on a bad value. */
static void apply_opt(const struct cli *cli, const struct opt *o, const char *val)
{
	char *end;
	switch (o->kind) {
	case OPT_FLAG:
		*(int *)o->dest = 1;
		return;
	case OPT_STR:
		*(const char **)o->dest = val;
		return;
	case OPT_LIST:
		if (strlist_add(o->dest, val) < 0)
			exit(cli_error(cli, CAIRN_ENOMEM, "out of memory"));
		return;
	case OPT_USER:
		if (!cairn_user_name_valid(val))
			usage_exit(cli, "%s: bad user name '%s': " USER_RULE, o->name, val);
		*(const char **)o->dest = val;
		return;
	case OPT_SIZE: {
		uint64_t v;
		if (parse_size(val, &v) < 0)
			usage_exit(cli, "%s: bad size '%s' (bytes, or a number with K, M, G or T)",
			           o->name, val);
		if (o->max > 0 && v > (uint64_t)o->max)
			usage_exit(cli, "%s: size '%s' is too large (at most %lld bytes)", o->name, val,
			           o->max);
		*(uint64_t *)o->dest = v;
		return;
	}
	case OPT_INT: {
		errno = 0;
		long long v = strtoll(val, &end, 10);
		if (errno || end == val || *end || v < o->min || v > o->max)
			usage_exit(cli, "%s: bad value '%s' (a whole number from %lld to %lld)", o->name,
			           val, o->min, o->max);
		*(int *)o->dest = (int)v;
		return;
	}
	}
}

/* How many positionals args allows: words in brackets are optional, "..." repeats. */
static void count_args(const char *args, int *min, int *max)
{
	*min = *max = 0;
	for (const char *p = args; *p;) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		size_t len = strcspn(p, " ");
		if (*p != '[')
			(*min)++;
		if (*max != INT_MAX)
			(*max)++;
		if (memmem(p, len, "...", 3))
			*max = INT_MAX;
		p += len;
	}
}

/* A cluster of short flags, "-lR". Exits unless every letter is a flag. */
static void apply_short_cluster(const struct cli *cli, const struct opt *const tables[2],
                                const char *arg)
{
	for (const char *c = arg + 1; *c; c++) {
		char one[3] = { '-', *c, 0 };
		const struct opt *o = find_opt(tables, one, 2);
		if (!o || o->kind != OPT_FLAG)
			usage_exit(cli, "unknown option '%s'", arg);
		apply_opt(cli, o, NULL);
	}
}

void cli_parse(struct cli *cli, const char *args, const struct opt *opts, int argc, char **argv)
{
	int help = 0;
	const char *ceph_conf = NULL;
	const struct opt builtins[] = {
		{ "--repo", NULL, OPT_STR, &cli->repo, "PATH", "repository (default: $CAIRN_REPO)", 0, 0, 0 },
		{ "--ceph-conf", NULL, OPT_STR, &ceph_conf, "FILE", "Ceph cluster of a rados: repository (default: $CEPH_CONF)", 0, 0, 0 },
		{ "-h", "--help", OPT_FLAG, &help, NULL, "show this help", 0, 0, 0 },
		OPT_END
	};
	const struct opt *const tables[2] = { opts, builtins };

	/* Know about --json before any error, so that errors become events too. */
	if (find_opt(tables, "--json", 6))
		for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
			if (!strcmp(argv[i], "--json"))
				cli->json = 1;

	int nargs = 0, options_done = 0;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (options_done || a[0] != '-' || !a[1]) {
			argv[1 + nargs++] = a; /* compact in place: never overtakes i */
			continue;
		}
		if (!strcmp(a, "--")) {
			options_done = 1;
			continue;
		}
		const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
		size_t len = eq ? (size_t)(eq - a) : strlen(a);
		const struct opt *o = find_opt(tables, a, len);
		if (!o && a[1] != '-' && len > 2) {
			apply_short_cluster(cli, tables, a);
			continue;
		}
		if (!o)
			usage_exit(cli, "unknown option '%.*s'", (int)len, a);
		const char *val = NULL;
		if (o->kind == OPT_FLAG) {
			if (eq)
				usage_exit(cli, "%s takes no value", o->name);
		} else if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			usage_exit(cli, "%s needs a value (%s)", o->name, o->metavar);
		}
		apply_opt(cli, o, val);
	}

	if (ceph_conf) /* librados reads it when a rados: repository is opened */
		setenv("CEPH_CONF", ceph_conf, 1);
	if (help) {
		print_help(cli, args, tables);
		exit(0);
	}
	for (const struct opt *o = opts; o->name; o++) /* required: OPT_STR and OPT_USER only */
		if (o->required && !*(const char **)o->dest)
			usage_exit(cli, "%s %s is required", o->name, o->metavar);

	int min, max;
	count_args(args, &min, &max);
	if (nargs < min)
		usage_exit(cli, "missing argument: cairn %s %s", cli->cmd, args);
	if (nargs > max)
		usage_exit(cli, "unexpected argument '%s'", argv[1 + max]);
	cli->args = argv + 1;
	cli->nargs = nargs;
}
