/* Freezing takes through the public API: a library caller that asks for
 * nothing gets no signal handlers (dispositions and mask as they were, seen
 * from inside the take) and no guardian process; with CAIRN_TAKE_GUARDIAN
 * and CAIRN_TAKE_SIGNALS (and with options of version 2, which implied
 * both) it gets both, restored and reaped before cairn_take returns. A take
 * canceled while paused leaves the group thawed, no snapshot and the usage
 * as it was. Needs root and cgroup v2 (exit 77 otherwise). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cairn.h"
#include "compat/cairn_old.h"
#include "api_t.h"

static char tmp[256], cg[512];
static pid_t sleeper = -1;

static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};

/* What the process looks like from inside a take, at "paused". */
typedef struct seen {
	int paused;          /* "paused" was seen */
	int frozen;          /* cgroup.events said frozen 1 then */
	int handlers_changed; /* a disposition of SIGINT/SIGTERM/SIGHUP differed from before the take */
	int mask_changed;    /* the signal mask differed at "saved" */
	int guardians;       /* child processes other than the sleeper */
	int cancel;          /* cancel at "paused" */
	int saved;
} seen;

static struct sigaction before[3];
static sigset_t mask_before;

static int frozen_now(void)
{
	char path[600], buf[256] = "";
	snprintf(path, sizeof(path), "%s/cgroup.events", cg);
	FILE *f = fopen(path, "r");
	if (!f) return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, "frozen 1") != NULL;
}

/* Our children other than the sleeper (the guardian is one, while it runs). */
static int other_children(void)
{
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
		char path[300], buf[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "r");
		if (!f) continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = 0;
		const char *rp = strrchr(buf, ')');
		long ppid = 0;
		if (!rp || sscanf(rp + 2, "%*c %ld", &ppid) != 1) continue;
		if (ppid == (long)getpid() && atol(de->d_name) != (long)sleeper) n++;
	}
	if (d) closedir(d);
	return n;
}

static int handlers_differ(void)
{
	for (int i = 0; i < 3; i++) {
		struct sigaction now;
		sigaction(sigs[i], NULL, &now);
		if (now.sa_handler != before[i].sa_handler) return 1;
	}
	return 0;
}

static int on_event(const cairn_event *ev, void *payload)
{
	seen *s = payload;
	if (ev->type != CAIRN_EVENT_STATE) return 0;
	if (!strcmp(ev->state, "paused")) {
		s->paused = 1;
		s->frozen = frozen_now() == 1;
		s->handlers_changed = handlers_differ();
		s->guardians = other_children();
		return s->cancel;
	}
	if (!strcmp(ev->state, "saved")) {
		s->saved = 1;
		sigset_t now;
		sigprocmask(SIG_SETMASK, NULL, &now);
		s->mask_changed = sigismember(&now, SIGTERM) != sigismember(&mask_before, SIGTERM);
	}
	return 0;
}

static void old_event(const cairn_event *ev, void *payload)
{
	on_event(ev, payload);
}

static void snapshot_state(void)
{
	for (int i = 0; i < 3; i++) sigaction(sigs[i], NULL, &before[i]);
	sigprocmask(SIG_SETMASK, NULL, &mask_before);
}

static int take(cairn_repo *repo, const char *root, const char *name, unsigned flags, seen *s)
{
	cairn_take_options o = CAIRN_TAKE_OPTIONS_INIT;
	o.root = root;
	o.name = name;
	o.user = "alice";
	o.cgroup = cg;
	o.no_precopy = 1;
	o.flags = flags;
	o.event_cancel_cb = on_event;
	o.event_payload = s;
	cairn_take_result r = CAIRN_TAKE_RESULT_INIT;
	return cairn_take(&r, repo, &o);
}

static void cleanup(void)
{
	if (sleeper > 0) {
		kill(sleeper, SIGKILL);
		waitpid(sleeper, NULL, 0);
	}
	if (cg[0]) {
		char path[600];
		snprintf(path, sizeof(path), "%s/cgroup.freeze", cg);
		FILE *f = fopen(path, "w");
		if (f) {
			fputs("0", f);
			fclose(f);
		}
		for (int i = 0; i < 50 && rmdir(cg) < 0 && errno == EBUSY; i++) usleep(20000);
	}
	if (tmp[0]) api_rmtree(tmp);
}

int main(void)
{
	char v2[256] = "", line[1024], dir[256], type[64];
	if (geteuid() != 0) {
		printf("skip: needs root (cgroups)\n");
		return 77;
	}
	FILE *m = fopen("/proc/mounts", "r");
	while (m && fgets(line, sizeof(line), m))
		if (sscanf(line, "%*s %255s %63s", dir, type) == 2 && !strcmp(type, "cgroup2")) {
			snprintf(v2, sizeof(v2), "%s", dir);
			break;
		}
	if (m) fclose(m);
	snprintf(cg, sizeof(cg), "%s/cairn-api-freeze-%ld", v2, (long)getpid());
	if (!v2[0] || mkdir(cg, 0755) < 0) {
		printf("skip: no cgroup v2 hierarchy to make a group in (%s)\n", v2[0] ? strerror(errno) : "none mounted");
		cg[0] = 0;
		return 77;
	}

	/* the instance: a process in the group */
	sleeper = fork();
	if (sleeper == 0) {
		for (;;) pause();
	}
	char path[600], num[32];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	snprintf(num, sizeof(num), "%ld", (long)sleeper);
	FILE *f = fopen(path, "w");
	int moved = f && fputs(num, f) >= 0;
	if (f && fclose(f) != 0) moved = 0;
	if (!moved) {
		printf("skip: cannot move a process into %s\n", cg);
		cleanup();
		return 77;
	}

	char root[300], repo_path[300], state[300];
	api_tmpdir(tmp, sizeof(tmp), "freeze");
	snprintf(root, sizeof(root), "%s/root", tmp);
	snprintf(repo_path, sizeof(repo_path), "%s/repo", tmp);
	snprintf(state, sizeof(state), "%s/state", tmp);
	mkdir(root, 0755);
	snprintf(path, sizeof(path), "%s/file", root);
	api_write_file(path, "instance data\n");
	CHECK_EQ(cairn_repo_init(repo_path, NULL), 0);
	cairn_repo_open_options oo = CAIRN_REPO_OPEN_OPTIONS_INIT;
	oo.state_dir = state;
	cairn_repo *repo = NULL;
	CHECK_EQ(cairn_repo_open_ext(&repo, repo_path, &oo), 0);
	if (!repo) {
		cleanup();
		return t_done();
	}
	uint64_t used = api_used_bytes(repo, "alice");

	/* asked for nothing: no handlers, mask untouched, no guardian; committed and thawed */
	snapshot_state();
	seen s = {0};
	CHECK_EQ(take(repo, root, "plain", 0, &s), 0);
	CHECK(s.paused && s.frozen && s.saved);
	CHECK_EQ(s.handlers_changed, 0);
	CHECK_EQ(s.mask_changed, 0);
	CHECK_EQ(s.guardians, 0);
	CHECK_EQ(frozen_now(), 0);
	CHECK_EQ(handlers_differ(), 0);
	CHECK_EQ(api_snapshot_count(repo), 1);
	used = api_used_bytes(repo, "alice");

	/* canceled while paused: thawed, nothing committed, usage as it was */
	snprintf(path, sizeof(path), "%s/more", root);
	api_write_file(path, "more data\n");
	seen c = {0};
	c.cancel = 1;
	CHECK_EQ(take(repo, root, "canceled", 0, &c), CAIRN_ECANCELED);
	CHECK(c.paused && c.frozen && !c.saved);
	CHECK_EQ(frozen_now(), 0);
	CHECK_EQ(api_snapshot_count(repo), 1);
	CHECK_EQ(api_used_bytes(repo, "alice"), used);

	/* asked for both: handlers installed and a guardian while paused; both gone after */
	seen g = {0};
	CHECK_EQ(take(repo, root, "guarded", CAIRN_TAKE_GUARDIAN | CAIRN_TAKE_SIGNALS, &g), 0);
	CHECK(g.paused && g.frozen && g.saved);
	CHECK_EQ(g.handlers_changed, 1);
	CHECK_EQ(g.mask_changed, 1); /* blocked from the commit point */
	CHECK_EQ(g.guardians, 1);
	CHECK_EQ(handlers_differ(), 0);
	CHECK_EQ(other_children(), 0);
	CHECK_EQ(frozen_now(), 0);

	/* options of version 2 keep their behaviour: guardian and handlers */
	old_take_options_v2 o2;
	memset(&o2, 0, sizeof(o2));
	o2.v1.version = 2;
	o2.v1.root = root;
	o2.v1.name = "v2";
	o2.v1.user = "alice";
	o2.v1.cgroup = cg;
	o2.no_precopy = 1;
	o2.v1.event_cb = old_event;
	seen s2 = {0};
	o2.v1.event_payload = &s2;
	cairn_take_result r2 = CAIRN_TAKE_RESULT_INIT;
	CHECK_EQ(cairn_take(&r2, repo, (const cairn_take_options *)&o2), 0);
	CHECK(s2.paused && s2.frozen);
	CHECK_EQ(s2.handlers_changed, 1);
	CHECK_EQ(s2.guardians, 1);
	CHECK(r2.freeze_ms <= r2.pause_ms);
	CHECK_EQ(frozen_now(), 0);
	CHECK_EQ(api_snapshot_count(repo), 3);

	/* no record left behind: recover has nothing to thaw */
	CHECK_EQ(cairn_recover(state, NULL, NULL), 0);
	cairn_repo_free(repo);
	cleanup();
	return t_done();
}
