/* Freezing (internal.h): the guardian process, which thaws the group when
 * cairn dies while it is frozen. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "io.h"
#include "util.h"

/* The child: only async-signal-safe calls from here (fork of a threaded
 * process). Thaws when the socket closes while armed, or at the deadline. */
static _Noreturn void guardian_main(int sock, int ctl, int v2, uint64_t max_pause_ms,
                                    const char *died_msg, const char *record)
{
	static const int caught_signals[] = CAUGHT_SIGNALS;
	struct sigaction ign;
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	for (size_t i = 0; i < NSIG_CAUGHT; i++) sigaction(caught_signals[i], &ign, NULL);
	sigaction(SIGPIPE, &ign, NULL);
	sigaction(SIGQUIT, &ign, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid(); /* out of cairn's process group: a group kill spares it */
	prctl(PR_SET_NAME, "cairn-guardian", 0, 0, 0);

	/* Hold nothing of cairn's but the socket, the control file and stderr. */
	if (sock > 2 && ctl > 2) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
	}
	unsigned lo = (unsigned)(sock < ctl ? sock : ctl), hi = (unsigned)(sock < ctl ? ctl : sock);
	if (lo > 3) syscall(SYS_close_range, 3u, lo - 1, 0u);
	if (hi > lo + 1 && hi - 1 >= 3) syscall(SYS_close_range, lo + 1 > 3 ? lo + 1 : 3u, hi - 1, 0u);
	syscall(SYS_close_range, hi + 1 > 3 ? hi + 1 : 3u, ~0u, 0u);

	int armed = 0;
	int64_t deadline = -1;
	for (;;) {
		int timeout = -1;
		if (deadline >= 0) {
			int64_t left = deadline - mono_ns();
			if (left <= 0) {
				/* silent: the take says it (one line per failure); when
				 * cairn is gone instead, the EOF below says so */
				cgroup_write_thaw(ctl, v2);
				deadline = -1;
				continue;
			}
			timeout = (int)((left + 999999) / 1000000);
		}
		struct pollfd p = {sock, POLLIN, 0};
		int r = poll(&p, 1, timeout);
		if (r < 0 && errno == EINTR) continue;
		if (r == 0) continue;
		char b;
		ssize_t n = r > 0 ? read(sock, &b, 1) : -1;
		if (n < 0 && errno == EINTR) continue;
		if (n == 1) {
			if (b == G_ARM) {
				armed = 1;
				if (max_pause_ms) deadline = mono_ns() + (int64_t)max_pause_ms * 1000000;
			} else if (b == G_DISARM) {
				armed = 0;
				deadline = -1;
			} else if (b == G_DONE) {
				_exit(0);
			}
			continue;
		}
		/* EOF or an error: cairn is gone */
		if (armed && cgroup_write_thaw(ctl, v2) == 0) {
			unlink(record); /* thawed: nothing left for cairn recover */
			if (write(2, died_msg, strlen(died_msg)) < 0) { /* nothing to do */ }
		}
		_exit(0);
	}
}

/* Where the guardian moves, out of cairn's own group: GUARDIAN_CGROUP at
 * the top of the cgroup v2 hierarchy and of the v1 hierarchy systemd
 * tracks services by (name=systemd), those of them the host has. Stopping
 * the caller's service kills its cgroup (cgroup.kill, or SIGKILL to each
 * of its processes), and the guardian must outlive that to thaw. systemd
 * leaves a top-level group it did not make alone (docker's cgroupfs driver
 * relies on that too); the group has no controllers and holds only
 * guardians while they run. */
#define GUARDIAN_CGROUP "cairn-guardian"
static int guardian_cgroup_dirs(char out[2][PATH_MAX])
{
	int n = 0;
	FILE *fp = fopen("/proc/self/mounts", "re");
	if (!fp) return 0;
	char line[4096], dir[PATH_MAX], type[64], opts[2048];
	int v2 = 0, v1 = 0;
	while (n < 2 && fgets(line, sizeof(line), fp)) {
		if (sscanf(line, "%*s %4095s %63s %2047s", dir, type, opts) != 3) continue;
		int is_v2 = !strcmp(type, "cgroup2"), is_v1 = !strcmp(type, "cgroup") && strstr(opts, "name=systemd");
		if ((is_v2 && !v2) || (is_v1 && !v1)) {
			snprintf(out[n++], PATH_MAX, "%.*s/" GUARDIAN_CGROUP, PATH_MAX - 32, dir);
			v2 |= is_v2;
			v1 |= is_v1;
		}
	}
	fclose(fp);
	return n;
}

/* Move process pid into the guardians' groups (made if need be). */
static int move_guardian(freezer *f, pid_t pid)
{
	char dirs[2][PATH_MAX], num[32];
	int n = guardian_cgroup_dirs(dirs);
	snprintf(num, sizeof(num), "%ld", (long)pid);
	for (int i = 0; i < n; i++) {
		if (mkdir(dirs[i], 0755) < 0 && errno != EEXIST)
			return error_errno(CAIRN_EIO, errno, "cgroup %s: cannot make %s for the guardian process", f->dir,
			                   dirs[i]);
		int rc = cgroup_write_ctl(dirs[i], "cgroup.procs", num);
		if (rc < 0)
			return error_errno(CAIRN_EIO, -rc,
			                   "cgroup %s: cannot move the guardian process out of cairn's cgroup into %s", f->dir,
			                   dirs[i]);
	}
	return 0;
}

int guardian_start(freezer *f)
{
	char died[PATH_MAX + 128];
	snprintf(died, sizeof(died), "cairn: take: guardian: cairn exited while cgroup %s was frozen; thawed it\n", f->dir);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return error_errno(CAIRN_EIO, errno, "cgroup %s: guardian socket", f->dir);

	/* No signal may kill the child before it ignores them. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		guardian_main(sv[1], f->ctl, f->v2, f->max_pause_ms, died, f->record);
	}
	int err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return error_errno(CAIRN_EIO, err, "cgroup %s: cannot start the guardian process", f->dir);
	}
	f->sock = sv[0];
	f->guardian = pid;
	int rc = io_proc_start(pid, &f->guardian_start);
	if (rc < 0) return error_errno(CAIRN_EIO, -rc, "cgroup %s: the guardian process %ld", f->dir, (long)pid);
	return move_guardian(f, pid);
}

int guardian_tell(freezer *f, char b)
{
	if (f->sock < 0) return -1;
	ssize_t n;
	do n = send(f->sock, &b, 1, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

/* Let the guardian go: "done" only when the group is thawed; closing the
 * socket otherwise makes it thaw. Then reap it. */
void guardian_stop(freezer *f)
{
	if (f->sock >= 0) {
		if (!f->frozen) guardian_tell(f, G_DONE);
		close(f->sock);
		f->sock = -1;
	}
	if (f->guardian > 0) {
		while (waitpid(f->guardian, NULL, 0) < 0 && errno == EINTR) {}
		f->guardian = 0;
	}
}

/* Has the guardian died? It never writes: its end closing is all our end can read. */
int guardian_gone(const freezer *f)
{
	if (f->sock < 0) return 0;
	struct pollfd p = {f->sock, POLLIN, 0};
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}
