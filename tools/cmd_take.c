#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct take_args {
	const char *root, *name, *user, *parent, *cgroup, *upper, *base;
	struct strlist excludes, labels;
	int no_parent, release, quiet, threads, no_uring, max_pause, no_precopy;
};

/* The engine's events, plus whether it froze the cgroup: a failed take then
 * says "resumed" after the error (the engine thawed before returning). */
struct take_events {
	struct events ev;
	int suspended;
};

static void take_events_cb(const cairn_event *event, void *payload)
{
	struct take_events *t = payload;
	if (event->type == CAIRN_EVENT_STATE && event->state && !strcmp(event->state, "suspending"))
		t->suspended = 1;
	events_cb(event, &t->ev);
}

/* What the engine would reject less clearly, or later. 0 or an exit code. */
static int check_args(const struct cli *cli, const struct take_args *a)
{
	if (!a->upper != !a->base)
		return cli_error(cli, CAIRN_EUSAGE, "--upper and --base go together");
	if (!a->upper && !a->root)
		return cli_error(cli, CAIRN_EUSAGE, "--root is required (or --upper with --base)");
	if (a->release && !a->cgroup)
		return cli_error(cli, CAIRN_EUSAGE, "--release needs --cgroup");
	if (a->no_precopy && !a->cgroup)
		return cli_error(cli, CAIRN_EUSAGE, "--no-precopy needs --cgroup");
	if (a->max_pause && !a->cgroup)
		return cli_error(cli, CAIRN_EUSAGE, "--max-pause needs --cgroup");
	if (a->cgroup && !*a->cgroup)
		return cli_error(cli, CAIRN_EUSAGE, "--cgroup must not be empty");
	if (!*a->name)
		return cli_error(cli, CAIRN_EUSAGE, "--name must not be empty");
	if (a->parent && a->no_parent)
		return cli_error(cli, CAIRN_EUSAGE, "--parent and --no-parent exclude each other");
	for (size_t i = 0; i < a->excludes.n; i++)
		if (a->excludes.v[i][0] != '/')
			return cli_error(cli, CAIRN_EUSAGE,
			                 "--exclude '%s': write it as an absolute path inside the root, e.g. /var/cache",
			                 a->excludes.v[i]);
	for (size_t i = 0; i < a->labels.n; i++) {
		const char *eq = strchr(a->labels.v[i], '=');
		if (!eq || eq == a->labels.v[i])
			return cli_error(cli, CAIRN_EUSAGE, "--label '%s': expected KEY=VALUE", a->labels.v[i]);
	}
	return 0;
}

static void print_done(const cairn_take_result *r)
{
	struct json j;
	json_start(&j, stdout);
	json_open(&j, NULL, '{');
	json_str(&j, "event", "done");
	json_str(&j, "snapshot", r->snapshot);
	json_u64(&j, "files", r->files);
	json_u64(&j, "bytes", r->bytes);
	json_u64(&j, "new_bytes", r->new_bytes);
	json_u64(&j, "stored_bytes", r->stored_bytes);
	json_u64(&j, "added_bytes", r->charged_bytes);
	json_u64(&j, "pause_ms", r->pause_ms);
	json_u64(&j, "duration_ms", r->duration_ms);
	json_u64(&j, "precopy_ms", r->precopy_ms);
	json_u64(&j, "dirs", r->dirs);
	json_u64(&j, "reused_files", r->reused_files);
	json_u64(&j, "prior_cut_chunks", r->prior_cut_chunks);
	json_u64(&j, "sockets_skipped", r->sockets_skipped);
	json_u64(&j, "mounts_skipped", r->mounts_skipped);
	json_u64(&j, "excluded", r->excluded);
	json_bool(&j, "io_uring", r->used_uring);
	json_close(&j, '}');
	json_line_end(&j);
}

static void print_summary(const cairn_take_result *r)
{
	char bytes[32], added[32], fresh[32], stored[32], took[32], pause[32];
	format_size(bytes, r->bytes);
	format_size(added, r->charged_bytes);
	format_size(fresh, r->new_bytes);
	format_size(stored, r->stored_bytes);
	format_duration(took, r->duration_ms);
	format_duration(pause, r->pause_ms);

	printf("snapshot  %s\n", r->snapshot);
	printf("files     %" PRIu64, r->files);
	if (r->reused_files)
		printf(" (%" PRIu64 " unchanged, not read)", r->reused_files);
	printf("\nbytes     %s\nadded     %s\nnew       %s\nstored    %s\nduration  %s", bytes, added, fresh,
	       stored, took);
	if (r->pause_ms)
		printf(" (paused %s)", pause);
	printf("\n");

	const char *sep = "skipped   ";
	const struct { uint64_t n; const char *one, *many; } skipped[] = {
		{ r->sockets_skipped, "socket", "sockets" },
		{ r->mounts_skipped, "mount point", "mount points" },
		{ r->excluded, "excluded path", "excluded paths" },
	};
	for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++) {
		if (skipped[i].n) {
			printf("%s%" PRIu64 " %s", sep, skipped[i].n,
			       skipped[i].n == 1 ? skipped[i].one : skipped[i].many);
			sep = ", ";
		}
	}
	if (*sep == ',')
		printf("\n");
}

static int take(const struct cli *cli, cairn_repo *repo, const struct take_args *a,
                const char *parent)
{
	struct take_events tev = { .suspended = 0 };
	struct events *evp = &tev.ev;
	events_init(evp, cli, a->quiet, 1);
	cairn_take_options to = CAIRN_TAKE_OPTIONS_INIT;
	to.root = a->root;
	to.name = a->name;
	to.user = a->user;
	to.parent = parent;
	to.no_parent = a->no_parent;
	to.excludes = a->excludes.v;
	to.nexcludes = a->excludes.n;
	to.labels = a->labels.v;
	to.nlabels = a->labels.n;
	to.threads = a->threads;
	to.no_uring = a->no_uring;
	to.event_cb = take_events_cb;
	to.event_payload = &tev;
	to.cgroup = a->cgroup;
	to.release = a->release;
	/* the CLI guards a frozen instance itself: against its own death and its signals */
	to.flags = CAIRN_TAKE_GUARDIAN | CAIRN_TAKE_SIGNALS;
	to.max_pause_ms = (uint64_t)a->max_pause * 1000;
	to.no_precopy = a->no_precopy;
	to.upper = a->upper;
	to.base = a->base;
	cairn_take_result res = CAIRN_TAKE_RESULT_INIT;
	int err = cairn_take(&res, repo, &to);
	progress_clear();
	if (err < 0) {
		int code = cli_fail(cli, err);
		if (tev.suspended) { /* thawed by the engine on its way out */
			cairn_event resumed = { .type = CAIRN_EVENT_STATE, .state = "resumed" };
			events_cb(&resumed, evp);
		}
		return code;
	}

	if (cli->json) {
		if (!evp->saved) { /* the engine did not report it: say it as the engine would */
			cairn_event saved = { .type = CAIRN_EVENT_STATE, .state = "saved", .snapshot = res.snapshot };
			events_cb(&saved, evp);
		}
		print_done(&res);
	} else if (a->quiet) {
		printf("%s\n", res.snapshot);
	} else {
		print_summary(&res);
	}
	return 0;
}

int cmd_take(struct cli *cli, int argc, char **argv)
{
	struct take_args a = { 0 };
	const struct opt opts[] = {
		{ "--root", NULL, OPT_STR, &a.root, "DIR", "directory to capture", 0, 0, 0 },
		{ "--name", NULL, OPT_STR, &a.name, "NAME", "snapshot name", 1, 0, 0 },
		{ "--user", NULL, OPT_USER, &a.user, "USER", "owner of the snapshot (default: \"default\"); --parent is one of USER's snapshots, a --base name too", 0, 0, 0 },
		{ "--exclude", NULL, OPT_LIST, &a.excludes, "PATH", "skip PATH, written as absolute inside DIR (/var/cache)", 0, 0, 0 },
		{ "--parent", NULL, OPT_STR, &a.parent, "SNAP", "take incrementally from SNAP (default: USER's latest of DIR)", 0, 0, 0 },
		{ "--no-parent", NULL, OPT_FLAG, &a.no_parent, NULL, "read every file, reuse no parent", 0, 0, 0 },
		{ "--label", NULL, OPT_LIST, &a.labels, "KEY=VALUE", "attach a label", 0, 0, 0 },
		{ "--cgroup", NULL, OPT_STR, &a.cgroup, "CGDIR", "freeze this cgroup (v2 directory or v1 freezer group) while capturing", 0, 0, 0 },
		{ "--release", NULL, OPT_FLAG, &a.release, NULL, "kill the cgroup's processes after the commit instead of resuming them", 0, 0, 0 },
		{ "--upper", NULL, OPT_STR, &a.upper, "UPPERDIR", "capture only this overlay upper directory, applied to --base", 0, 0, 0 },
		{ "--base", NULL, OPT_STR, &a.base, "SNAP", "the snapshot of the overlay's lower layer (with --upper)", 0, 0, 0 },
		{ "--no-precopy", NULL, OPT_FLAG, &a.no_precopy, NULL, "read everything while frozen (default: copy first while the instance runs, then only what changed)", 0, 0, 0 },
		{ "--max-pause", NULL, OPT_INT, &a.max_pause, "SECONDS", "abort the take and thaw when paused longer than this", 0, 1, 86400 },
		OPT_JSON(cli),
		{ "-q", "--quiet", OPT_FLAG, &a.quiet, NULL, "no progress line; print only the snapshot id", 0, 0, 0 },
		OPT_THREADS(&a.threads),
		{ "--no-uring", NULL, OPT_FLAG, &a.no_uring, NULL, "plain syscalls instead of io_uring (also CAIRN_NO_URING=1)", 0, 0, 0 },
		OPT_END
	};
	cli_parse(cli, "", opts, argc, argv);

	cairn_repo *repo = NULL;
	char parent[65], base[65];
	int rc = check_args(cli, &a);
	if (rc == 0)
		rc = cli_open_repo(cli, &repo);
	if (rc == 0 && a.parent)
		rc = cli_resolve(cli, repo, a.parent, a.user, parent);
	if (rc == 0 && a.base) {
		/* --user narrows names only: the base may be another user's image */
		int err = cairn_snapshot_resolve(base, repo, a.base, a.user);
		if (err < 0)
			rc = cli_fail(cli, err);
		a.base = base;
	}
	if (rc == 0)
		rc = take(cli, repo, &a, a.parent ? parent : NULL);
	cairn_repo_free(repo);
	strlist_free(&a.excludes);
	strlist_free(&a.labels);
	return rc;
}
