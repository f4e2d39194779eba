/* cairn mount: serve a snapshot at a directory (cairn umount ends it). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


static cairn_mount *the_mount;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
	(void)sig;
	cairn_mount_unmount(the_mount);
}

/* Log lines to stderr (the log file once in the background); hydration
 * events as JSON on stdout with --json. */
static void mount_event(const cairn_event *ev, void *payload)
{
	const struct cli *cli = payload;
	pthread_mutex_lock(&out_mu);
	if (ev->type == CAIRN_EVENT_NOTICE) {
		cli_notice(cli, ev->message);
	} else if (cli->json) {
		struct json j;
		int done = ev->type == CAIRN_EVENT_STATE;
		json_start(&j, stdout);
		json_open(&j, NULL, '{');
		json_str(&j, "event", done ? "hydrated" : "progress");
		json_u64(&j, "bytes", ev->bytes);
		if (!done) json_u64(&j, "total_bytes", ev->total_bytes);
		json_u64(&j, "ms", ev->ms);
		json_close(&j, '}');
		json_line_end(&j);
	}
	pthread_mutex_unlock(&out_mu);
}

static void print_ready(const struct cli *cli, const char *id, const char *mp, uint64_t ms, long pid)
{
	if (cli->json) {
		struct json j;
		json_start(&j, stdout);
		json_open(&j, NULL, '{');
		json_str(&j, "event", "ready");
		json_u64(&j, "ms", ms);
		json_i64(&j, "pid", pid);
		json_close(&j, '}');
		json_line_end(&j);
	} else {
		printf("mounted %.12s at %s: ready in %llu ms, server pid %ld\n", id, mp,
		       (unsigned long long)ms, pid);
		fflush(stdout);
	}
}

/* Open, resolve, mount. 0 with the_mount set, or the exit code (printed). */
static int start(const struct cli *cli, const char *user, cairn_mount_options *mo, cairn_repo **repo,
                 char id[65])
{
	int rc = cli_open_repo(cli, repo);
	if (rc == 0) rc = cli_resolve(cli, *repo, cli->args[0], user, id);
	if (rc == 0) {
		int err = cairn_mount_start(&the_mount, *repo, id, cli->args[1], mo);
		if (err < 0) rc = cli_fail(cli, err);
	}
	return rc;
}

static int serve(const struct cli *cli, cairn_repo *repo)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	cairn_mount_wait(the_mount);
	cairn_mount_free(the_mount);
	the_mount = NULL;
	cairn_repo_free(repo);
	(void)cli;
	return 0;
}

int cmd_mount(struct cli *cli, int argc, char **argv)
{
	cairn_mount_options mo = CAIRN_MOUNT_OPTIONS_INIT;
	const char *user = NULL, *cache = NULL, *hydrate = "none", *log = NULL;
	int foreground = 0, timeout = 0, threads = 0;
	const struct opt opts[] = {
		{ "--cache", NULL, OPT_STR, &cache, "DIR",
		  "local cache of file data (default: $CAIRN_STATE_DIR/mount-cache, else /var/lib/cairn/mount-cache)", 0, 0, 0 },
		{ "--hydrate", NULL, OPT_STR, &hydrate, "MODE",
		  "background fetch after ready: none, trace (the files the snapshot's first mount read first) or all (those, then every file)", 0, 0, 0 },
		{ "--foreground", NULL, OPT_FLAG, &foreground, NULL, "serve in this process until unmounted", 0, 0, 0 },
		{ "--fetch-timeout", NULL, OPT_INT, &timeout, "MS", "a read waits at most this long for its data, then fails with EIO (default 30000)", 0, 1, 86400000 },
		{ "--threads", NULL, OPT_INT, &threads, "N", "request threads (default 8)", 0, 0, 256 },
		{ "--no-passthrough", NULL, OPT_FLAG, &mo.no_passthrough, NULL, "read whole files through the server, not the kernel's passthrough", 0, 0, 0 },
		{ "--log", NULL, OPT_STR, &log, "FILE", "where the background server writes its log lines (default: CACHE/mount.log)", 0, 0, 0 },
		OPT_SNAP_USER(&user),
		OPT_JSON(cli),
		OPT_END
	};
	cli_parse(cli, "SNAP MOUNTPOINT", opts, argc, argv);
	uint64_t t0 = now_ms();

	if (!strcmp(hydrate, "none")) mo.hydrate = CAIRN_HYDRATE_NONE;
	else if (!strcmp(hydrate, "trace")) mo.hydrate = CAIRN_HYDRATE_TRACE;
	else if (!strcmp(hydrate, "all")) mo.hydrate = CAIRN_HYDRATE_ALL;
	else return cli_error(cli, CAIRN_EUSAGE, "--hydrate %s: none, trace or all", hydrate);
	char cache_buf[4096], log_buf[4200];
	if (!cache) {
		const char *st = getenv("CAIRN_STATE_DIR");
		snprintf(cache_buf, sizeof(cache_buf), "%s/mount-cache", st && *st ? st : "/var/lib/cairn");
		cache = cache_buf;
	}
	if (!log) {
		snprintf(log_buf, sizeof(log_buf), "%s/mount.log", cache);
		log = log_buf;
	}
	mo.cache_dir = cache;
	mo.fetch_timeout_ms = (uint64_t)timeout;
	mo.threads = (unsigned)threads;
	mo.event_cb = mount_event;
	mo.event_payload = cli;

	cairn_repo *repo = NULL;
	char id[65];
	int rc;
	if (foreground) {
		if ((rc = start(cli, user, &mo, &repo, id)) != 0) {
			cairn_repo_free(repo);
			return rc;
		}
		print_ready(cli, id, cli->args[1], now_ms() - t0, (long)getpid());
		return serve(cli, repo);
	}

	/* in the background: the child mounts and says when it is ready; until
	 * then its errors go to the caller's stderr */
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) return cli_error(cli, CAIRN_EIO, "pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) return cli_error(cli, CAIRN_EIO, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		setsid();
		if ((rc = start(cli, user, &mo, &repo, id)) != 0) _exit(rc);
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (devnull >= 0) {
			dup2(devnull, STDIN_FILENO);
			dup2(devnull, STDOUT_FILENO);
		}
		dup2(logfd >= 0 ? logfd : devnull, STDERR_FILENO);
		cli->json = 0; /* stdout is gone: errors only as log lines */
		char ready[32];
		int n = snprintf(ready, sizeof(ready), "%ld\n", (long)getpid());
		if (write(p[1], ready, (size_t)n) != n) _exit(1);
		close(p[1]);
		_exit(serve(cli, repo));
	}
	close(p[1]);
	char buf[32] = "";
	ssize_t got;
	do got = read(p[0], buf, sizeof(buf) - 1);
	while (got < 0 && errno == EINTR);
	close(p[0]);
	if (got <= 0) {
		int status = 0;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0) return WEXITSTATUS(status);
		return cli_error(cli, CAIRN_EIO, "the server ended before the mount was ready (see %s)", log);
	}
	print_ready(cli, cli->args[0], cli->args[1], now_ms() - t0, strtol(buf, NULL, 10));
	return 0;
}
