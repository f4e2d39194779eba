#include "util.h"
#include "man.h"

#include "env.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- errors ----------------------------------------------------------------- */

void cli_notice(const struct cli *cli, const char *msg)
{
	progress_clear();
	fprintf(stderr, "cairn: %s: ", cli->cmd);
	print_escaped(stderr, msg, strlen(msg));
	fputc('\n', stderr);
}

static int verror(const struct cli *cli, int code, const char *fmt, va_list ap)
{
	char msg[4096];
	vsnprintf(msg, sizeof(msg), fmt, ap);

	cli_notice(cli, msg);

	if (cli->json) {
		struct json j;
		json_start(&j, stdout);
		json_open(&j, NULL, '{');
		json_str(&j, "event", "error");
		json_str(&j, "code", cairn_error_name(code));
		json_str(&j, "message", msg);
		json_close(&j, '}');
		json_line_end(&j);
	}
	return cairn_error_exit_code(code);
}

int cli_error(const struct cli *cli, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = verror(cli, code, fmt, ap);
	va_end(ap);
	return rc;
}

int cli_fail(const struct cli *cli, int code)
{
	const char *msg = cairn_error_last();
	return cli_error(cli, code, "%s", *msg ? msg : cairn_error_name(code));
}

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

/* ---- option parsing ------------------------------------------------------- */

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

/* ---- repository and snapshots ----------------------------------------------- */

/* A group a dead take left frozen is thawed by the next command (a look
 * at the state directory; cairn recover says more). */
static void recover_notice(const cairn_recovered *r, void *payload)
{
	const struct cli *cli = payload;
	char msg[8192];
	if (strcmp(r->action, "thawed") && strcmp(r->action, "failed"))
		return;
	snprintf(msg, sizeof(msg), "cgroup %s: %s (%s; freeze record %s)", r->cgroup,
	         !strcmp(r->action, "thawed") ? "thawed" : "not thawed", r->detail, r->record);
	cli_notice(cli, msg);
}

const char *cli_repo_path(const struct cli *cli)
{
	const char *path = cli->repo;
	if (!path || !*path)
		path = getenv("CAIRN_REPO");
	if (!path || !*path) {
		cli_error(cli, CAIRN_EUSAGE, "no repository: give --repo PATH or set CAIRN_REPO");
		return NULL;
	}
	/* best effort: its failures are not this command's */
	cairn_recover(getenv("CAIRN_STATE_DIR"), recover_notice, (void *)cli);
	return path;
}

int cli_open_options(const struct cli *cli, cairn_repo_open_options *o)
{
	char err[256];
	if (env_open_options(o, err, sizeof(err)) < 0)
		return cli_error(cli, CAIRN_EUSAGE, "%s", err);
	return 0;
}

int cli_open_repo(const struct cli *cli, cairn_repo **out)
{
	*out = NULL;
	const char *path = cli_repo_path(cli);
	if (!path)
		return cairn_error_exit_code(CAIRN_EUSAGE);
	cairn_repo_open_options o = CAIRN_REPO_OPEN_OPTIONS_INIT;
	int rc = cli_open_options(cli, &o);
	if (rc) return rc;
	rc = cairn_repo_open_ext(out, path, &o);
	return rc < 0 ? cli_fail(cli, rc) : 0;
}

int cli_resolve(const struct cli *cli, cairn_repo *repo, const char *snap, const char *user,
                char id[65])
{
	int rc = cairn_snapshot_resolve_ext(id, repo, snap, user, CAIRN_RESOLVE_USER_ONLY);
	return rc < 0 ? cli_fail(cli, rc) : 0;
}

const cairn_snapshot_info *snapshot_by_id(const cairn_snapshot_list *list, const char *id)
{
	for (size_t i = 0; i < cairn_snapshot_list_count(list); i++)
		if (!strcmp(cairn_snapshot_list_get(list, i)->id, id))
			return cairn_snapshot_list_get(list, i);
	return NULL;
}

/* ---- values ----------------------------------------------------------------- */

int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	unsigned shift = 0;
	if (*s) {
		const char *units = "KMGT";
		const char *u = strchr(units, toupper((unsigned char)*s));
		if (!u)
			return -1;
		shift = 10 * (unsigned)(u - units + 1);
		s++;
		if (!strcasecmp(s, "iB"))
			s += 2;
		if (*s || v > (UINT64_MAX >> shift))
			return -1;
	}
	*out = v << shift;
	return 0;
}

/* ---- formatting --------------------------------------------------------------- */

void format_size(char out[32], uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	if (bytes < 1024) {
		snprintf(out, 32, "%llu B", (unsigned long long)bytes);
		return;
	}
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 6) {
		v /= 1024;
		u++;
	}
	if (v >= 1023.95 && u < 6) { /* would print as "1024.0" */
		v /= 1024;
		u++;
	}
	snprintf(out, 32, "%.1f %s", v, units[u]);
}

void format_duration(char out[32], uint64_t ms)
{
	unsigned long long s = ms / 1000;
	if (ms < 1000)
		snprintf(out, 32, "%llu ms", (unsigned long long)ms);
	else if (ms < 59950)
		snprintf(out, 32, "%.1f s", (double)ms / 1000);
	else if (s < 3600)
		snprintf(out, 32, "%llum%02llus", s / 60, s % 60);
	else
		snprintf(out, 32, "%lluh%02llum", s / 3600, s / 60 % 60);
}

int64_t ns_to_sec(int64_t time_ns)
{
	return time_ns / 1000000000 - (time_ns % 1000000000 < 0);
}

static void format_time(char out[32], int64_t sec, int utc)
{
	time_t t = (time_t)sec;
	struct tm tm;
	if (!(utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)) ||
	    !strftime(out, 32, utc ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, 32, "?");
}

void format_local_time(char out[32], int64_t sec) { format_time(out, sec, 0); }
void format_utc_time(char out[32], int64_t sec) { format_time(out, sec, 1); }

size_t utf8_seq(const unsigned char *s, size_t len)
{
	if (s[0] < 0x80)
		return 1;
	size_t n;
	uint32_t cp, min;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2, cp = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, cp = s[0] & 0x0f, min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4, cp = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void print_escaped(FILE *f, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(s + i, len - i);
		/* C0 and C1 controls and DEL can drive a terminal: never print them raw */
		int control = s[i] < 0x20 || s[i] == 0x7f || (n == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0);
		if (s[i] == '\\') {
			fputs("\\\\", f);
			i++;
		} else if (n == 0 || control) {
			for (size_t k = 0; k < (n ? n : 1); k++)
				fprintf(f, "\\x%02x", s[i + k]);
			i += n ? n : 1;
		} else {
			fwrite(s + i, 1, n, f);
			i += n;
		}
	}
}

char *escape_dup(const char *s, size_t len)
{
	char *out = NULL;
	size_t size;
	FILE *f = open_memstream(&out, &size);
	if (!f)
		return NULL;
	print_escaped(f, s, len);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

size_t display_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* ---- tables ------------------------------------------------------------------- */

int table_add(struct table *t, const char *const *row)
{
	if (t->ncols > TABLE_MAX_COLS)
		return -1;
	char **cells = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*cells));
	if (!cells)
		return -1;
	t->cells = cells;
	char **r = cells + t->nrows * t->ncols;
	for (size_t c = 0; c < t->ncols; c++) {
		r[c] = escape_dup(row[c], strlen(row[c]));
		if (!r[c]) {
			while (c-- > 0)
				free(r[c]);
			return -1;
		}
	}
	t->nrows++;
	return 0;
}

void table_print(const struct table *t, FILE *f)
{
	size_t width[TABLE_MAX_COLS];
	if (t->ncols > TABLE_MAX_COLS)
		return;
	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = 0;
		for (size_t r = 0; r < t->nrows; r++) {
			size_t w = display_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			size_t pad = width[c] - display_width(cell);
			int last = c + 1 == t->ncols;
			if (t->right && t->right[c])
				fprintf(f, "%*s%s", (int)pad, "", cell);
			else
				fprintf(f, "%s%*s", cell, last ? 0 : (int)pad, "");
			fputs(last ? "\n" : "  ", f);
		}
	}
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}
