/* Shared helpers of the cairn CLI: option parsing, errors, formatting, JSON
 * output and progress. The CLI uses only the public API (cairn.h). */
#ifndef CAIRN_TOOLS_UTIL_H
#define CAIRN_TOOLS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cairn.h"

/* ---- options (options.c); errors, the repository, SNAP (cli.c) ----------- */

enum opt_kind {
	OPT_FLAG,  /* int *: set to 1 */
	OPT_STR,   /* const char **: last one given wins */
	OPT_LIST,  /* struct strlist *: repeatable, in order */
	OPT_USER,  /* const char **: a valid USER (SPEC) */
	OPT_SIZE,  /* uint64_t *: SIZE with K/M/G/T suffixes, at most max when max > 0 */
	OPT_INT    /* int *: decimal in [min, max] */
};

struct opt {
	const char *name;    /* "--root" or "-q" */
	const char *alias;   /* another spelling ("--quiet"), or NULL */
	enum opt_kind kind;
	void *dest;
	const char *metavar; /* value placeholder in the help; NULL for flags */
	const char *help;
	int required;        /* OPT_STR and OPT_USER only: exit 2 when absent */
	long long min, max;  /* OPT_INT range; OPT_SIZE upper bound when max > 0 */
};

/* Values of a repeatable option; free v with strlist_free. */
struct strlist {
	const char **v;
	size_t n;
};
void strlist_free(struct strlist *l);

/* One command invocation. main fills cmd and summary; cli_parse the rest. */
struct cli {
	const char *cmd;
	const char *summary;
	const char *repo;   /* --repo, else NULL */
	int json;           /* --json given: errors go to stdout as events too */
	char **args;        /* positional arguments */
	int nargs;
	int man;            /* --help prints roff for cairn(1) instead (man.h) */
};

/* An entry of main.c's command table, which --help and cairn(1) list. */
struct command {
	const char *name;
	const char *summary;
	int (*run)(struct cli *cli, int argc, char **argv);
};

/* Options most commands share. */
#define OPT_JSON(cli) { "--json", NULL, OPT_FLAG, &(cli)->json, NULL, "machine-readable output on stdout", 0, 0, 0 }
#define OPT_THREADS(p) { "--threads", NULL, OPT_INT, (p), "N", "worker threads (0 = one per CPU)", 0, 0, 1024 }
#define OPT_SNAP_USER(p) { "--user", NULL, OPT_USER, (p), "USER", "resolve SNAP among USER's snapshots only", 0, 0, 0 }
#define OPT_END { 0 }

/* Parse argv[1..argc) (argv[0] is the command name) against opts, plus the
 * built-in --repo and --help. args describes the positional arguments
 * ("SNAP [PATH]": words in brackets are optional, "X..." repeats) and fixes
 * how many are accepted. Options may come before or after positionals; "--"
 * ends options. Prints the help and exits 0 on --help; prints one line and
 * exits 2 on a usage error. Positionals are left in cli->args (inside argv). */
void cli_parse(struct cli *cli, const char *args, const struct opt *opts, int argc, char **argv);

/* Print "cairn: CMD: message" on stderr (and an error event on stdout with
 * --json). Returns the exit code for code (cairn_error_exit_code). */
int cli_error(const struct cli *cli, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "cairn: CMD: message" on stderr, escaped, on one line. */
void cli_notice(const struct cli *cli, const char *msg);
/* cli_error with the engine's last message. */
int cli_fail(const struct cli *cli, int code);

/* The repository path: --repo, else $CAIRN_REPO. NULL after printing a
 * usage error; then return cairn_error_exit_code(CAIRN_EUSAGE). */
const char *cli_repo_path(const struct cli *cli);
/* Open the repository. 0, or the exit code after printing the error. */
int cli_open_repo(const struct cli *cli, cairn_repo **out);
/* The engine's open options from the environment (tools/env.h); non-zero
 * (the exit code, the error printed) on a bad value. */
int cli_open_options(const struct cli *cli, cairn_repo_open_options *o);
/* The snapshot of list with this full id, or NULL (list may be NULL). */
const cairn_snapshot_info *snapshot_by_id(const cairn_snapshot_list *list, const char *id);
/* Resolve SNAP to a full id; with user, among user's snapshots only.
 * 0, or the exit code after printing the error. */
int cli_resolve(const struct cli *cli, cairn_repo *repo, const char *snap, const char *user,
                char id[65]);

/* ---- values and formatting (format.c), tables (table.c) ------------------ */

/* SPEC's USER, as cairn_user_name_valid checks it, for messages. */
#define USER_RULE "1 to 64 characters of A-Z a-z 0-9 . _ -, not starting with '.'"
/* "123", "64K", "1M", "2GiB", "1t": powers of 1024. 0 or -1 on garbage/overflow. */
int parse_size(const char *s, uint64_t *out);

/* "512 B", "1.4 GiB". */
void format_size(char out[32], uint64_t bytes);
/* "850 ms", "2.4 s", "3m07s", "2h05m". */
void format_duration(char out[32], uint64_t ms);
/* Seconds since the epoch, rounded down, of a time in ns. */
int64_t ns_to_sec(int64_t time_ns);
/* "2026-11-27 14:03:05" in local time. */
void format_local_time(char out[32], int64_t sec);
/* "2026-11-27T13:03:05Z". */
void format_utc_time(char out[32], int64_t sec);

/* Human output of arbitrary bytes: valid printable UTF-8 as is; control
 * bytes, DEL and bytes that are not valid UTF-8 as \xNN; backslash as \\. */
void print_escaped(FILE *f, const char *s, size_t len);
/* The same into a malloc'd string (NULL when out of memory). */
char *escape_dup(const char *s, size_t len);
/* Columns a UTF-8 string takes (one per code point). */
size_t display_width(const char *s);

/* Length of the valid UTF-8 sequence at s (1..4), 0 if none starts there. */
size_t utf8_seq(const unsigned char *s, size_t len);

/* An aligned text table of at most TABLE_MAX_COLS columns; every cell is
 * escaped (print_escaped). */
#define TABLE_MAX_COLS 16
struct table {
	size_t ncols, nrows;
	const unsigned char *right; /* ncols flags: right-align the column */
	char **cells;               /* nrows * ncols */
};
/* Append a row of ncols cells (copied). 0, or -1 when out of memory. */
int table_add(struct table *t, const char *const *row);
/* Columns separated by two spaces, no trailing blanks. */
void table_print(const struct table *t, FILE *f);
void table_free(struct table *t);

/* ---- JSON output (json.c) --------------------------------------------------- */

/* A writer of one JSON value. Keys are ignored inside arrays (pass NULL).
 * Strings may hold arbitrary bytes: valid UTF-8 is written as is, control
 * characters as JSON escapes, and every byte that is not part of valid UTF-8
 * as \u00XX (the byte's value as a code point, as if read as Latin-1). */
struct json {
	FILE *f;
	int depth;
	unsigned char more[16]; /* a value was written at this depth: comma next */
};

void json_start(struct json *j, FILE *f);
void json_open(struct json *j, const char *key, char bracket);  /* '{' or '[' */
void json_close(struct json *j, char bracket);                  /* '}' or ']' */
void json_str(struct json *j, const char *key, const char *s);  /* NULL: null */
void json_strn(struct json *j, const char *key, const char *s, size_t len);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_null(struct json *j, const char *key);
void json_bool(struct json *j, const char *key, int v);
/* One snapshot as `info --json` and `snapshots --json` print it. */
void json_snapshot(struct json *j, const cairn_snapshot_info *s);
/* A JSON string literal of s[0..len) (quotes included). */
void json_escape(FILE *f, const char *s, size_t len);
/* End an event line on stdout and flush it, so readers see it at once. */
void json_line_end(struct json *j);

/* ---- progress and engine events (events.c) -------------------------------- */

/* Event handling shared by take and restore; pass as event_payload. */
struct events {
	const struct cli *cli;
	int progress_line;  /* draw the progress line on stderr (a TTY, no -q, no --json) */
	int json_progress;  /* write progress events on stdout */
	int json_state;     /* write state events on stdout */
	int saved;          /* a "saved" state event was written */
	uint64_t start_ns, last_ns;
};

void events_init(struct events *e, const struct cli *cli, int quiet, int json_events);
void events_cb(const cairn_event *event, void *payload);
/* Erase the progress line, if one is drawn (before other stderr output). */
void progress_clear(void);
void progress_drawn(void); /* events.c drew a progress line: clear it before the next message */

/* ---- commands (one file each) ----------------------------------------------- */

int cmd_init(struct cli *cli, int argc, char **argv);
int cmd_take(struct cli *cli, int argc, char **argv);
int cmd_restore(struct cli *cli, int argc, char **argv);
int cmd_snapshots(struct cli *cli, int argc, char **argv);
int cmd_ls(struct cli *cli, int argc, char **argv);
int cmd_cat(struct cli *cli, int argc, char **argv);
int cmd_version(struct cli *cli, int argc, char **argv);
/* "cairn X.Y.Z (format N)": the version command and --version */
void print_version(void);
int cmd_quota(struct cli *cli, int argc, char **argv);
int cmd_usage(struct cli *cli, int argc, char **argv);
int cmd_estimate(struct cli *cli, int argc, char **argv);
int cmd_forget(struct cli *cli, int argc, char **argv);
int cmd_info(struct cli *cli, int argc, char **argv);
int cmd_diff(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
int cmd_export(struct cli *cli, int argc, char **argv);
int cmd_import(struct cli *cli, int argc, char **argv);
int cmd_fsck(struct cli *cli, int argc, char **argv);
int cmd_gc(struct cli *cli, int argc, char **argv);
int cmd_recover(struct cli *cli, int argc, char **argv);
int cmd_mount(struct cli *cli, int argc, char **argv);
int cmd_umount(struct cli *cli, int argc, char **argv);

#endif
