/* Freezing a cgroup around a take, with a guardian process and signal
 * handling so that the instance is never left frozen (see freeze.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "format.h"
#include "freeze.h"
#include "io.h"
#include "util.h"

#define FREEZE_TIMEOUT_MS 10000 /* a group that will not freeze: a process stuck in the kernel */
#define KILL_TIMEOUT_MS 5000    /* release: until the group is empty */

/* Guardian protocol bytes (parent -> guardian). EOF while armed: thaw. */
#define G_ARM 'F'    /* about to freeze: armed, max-pause clock starts */
#define G_DISARM 'T' /* thawed by the parent */
#define G_DONE 'D'   /* exit without doing anything */

static const int caught_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define NSIG_CAUGHT (sizeof(caught_signals) / sizeof(caught_signals[0]))

struct freezer {
	char dir[PATH_MAX];
	int v2;
	int ctl;        /* cgroup.freeze (v2) or freezer.state (v1), write-only */
	int sock;       /* our end of the guardian's socket; -1 once closed */
	pid_t guardian; /* 0 once reaped */
	int frozen;     /* we asked for a freeze and have not thawed since */
	int ever_frozen;
	int64_t t_freeze, t_thaw; /* CLOCK_MONOTONIC ns */
	uint64_t max_pause_ms;
	int handlers;   /* our signal handlers are installed */
	struct sigaction old_act[NSIG_CAUGHT];
	int blocked;    /* freeze_commit_begin blocked the signals */
	sigset_t old_mask;
	char why[PATH_MAX + 128]; /* why the take was aborted; "" while it may go on */
	char record[PATH_MAX];    /* the freeze record while it exists (state dir), else "" */
	uint64_t guardian_start;
};

/* For the signal handler: one active freezer per process. */
static volatile sig_atomic_t caught_signal;
static volatile sig_atomic_t handler_ctl = -1;
static volatile sig_atomic_t handler_v2;

/* Async-signal-safe: used by the handler and the guardian. */
static int write_thaw(int fd, int v2)
{
	const char *s = v2 ? "0" : "THAWED";
	size_t n = strlen(s);
	return pwrite(fd, s, n, 0) == (ssize_t)n ? 0 : -1;
}

static void on_signal(int sig)
{
	int saved = errno;
	if (!caught_signal) caught_signal = sig;
	if (handler_ctl >= 0) write_thaw(handler_ctl, handler_v2);
	errno = saved;
}

static void emit_state(const cairn_take_options *o, const char *state, uint64_t ms)
{
	if (!o->event_cb) return;
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CAIRN_EVENT_STATE;
	ev.state = state;
	ev.ms = ms;
	o->event_cb(&ev, o->event_payload);
}

/* Read a small control file of the group into buf. 0 or -errno. */
static int read_ctl(const char *dir, const char *name, char *buf, size_t cap)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return -errno;
	ssize_t n = pread(fd, buf, cap - 1, 0);
	int err = n < 0 ? errno : 0;
	close(fd);
	if (n < 0) return -err;
	buf[n] = 0;
	return 0;
}

static int write_ctl(const char *dir, const char *name, const char *value)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) return -errno;
	size_t n = strlen(value);
	int err = write(fd, value, n) == (ssize_t)n ? 0 : errno;
	close(fd);
	return -err;
}

/* Is the group frozen right now? 1, 0, or -errno. */
static int is_frozen(const freezer *f)
{
	char buf[512];
	int rc = f->v2 ? read_ctl(f->dir, "cgroup.events", buf, sizeof(buf))
	               : read_ctl(f->dir, "freezer.state", buf, sizeof(buf));
	if (rc < 0) return rc;
	if (f->v2) {
		const char *p = strstr(buf, "frozen ");
		return p && p[7] == '1';
	}
	return strncmp(buf, "FROZEN", 6) == 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* ---- the guardian ---------------------------------------------------------- */

/* The child: only async-signal-safe calls from here (fork of a threaded
 * process). Thaws when the socket closes while armed, or at the deadline. */
static _Noreturn void guardian_main(int sock, int ctl, int v2, uint64_t max_pause_ms,
                                    const char *died_msg, const char *record)
{
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
				write_thaw(ctl, v2);
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
		if (armed && write_thaw(ctl, v2) == 0) {
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
		int rc = write_ctl(dirs[i], "cgroup.procs", num);
		if (rc < 0)
			return error_errno(CAIRN_EIO, -rc,
			                   "cgroup %s: cannot move the guardian process out of cairn's cgroup into %s", f->dir,
			                   dirs[i]);
	}
	return 0;
}

static int start_guardian(freezer *f)
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

static int tell_guardian(freezer *f, char b)
{
	if (f->sock < 0) return -1;
	ssize_t n;
	do n = send(f->sock, &b, 1, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

/* Let the guardian go: "done" only when the group is thawed; closing the
 * socket otherwise makes it thaw. Then reap it. */
static void stop_guardian(freezer *f)
{
	if (f->sock >= 0) {
		if (!f->frozen) tell_guardian(f, G_DONE);
		close(f->sock);
		f->sock = -1;
	}
	if (f->guardian > 0) {
		while (waitpid(f->guardian, NULL, 0) < 0 && errno == EINTR) {}
		f->guardian = 0;
	}
}

/* Has the guardian died? It never writes: its end closing is all our end can read. */
static int guardian_gone(const freezer *f)
{
	if (f->sock < 0) return 0;
	struct pollfd p = {f->sock, POLLIN, 0};
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

/* ---- freeze records ------------------------------------------------------------ */

#define RECORDS_DIR "freezes"
#define RECORD_MAX 8192

typedef struct freeze_rec {
	uint32_t pid, guardian;
	uint64_t start, guardian_start, pidns;
	uint8_t v2;
	int64_t time_ns;
	char boot[64];
	char cgroup[PATH_MAX];
} freeze_rec;

/* This boot's id and our pid namespace: a record from an earlier boot names
 * processes and groups that are gone; one from another pid namespace names
 * a pid we cannot look up. */
static void host_ids(char boot[64], uint64_t *pidns)
{
	char buf[64] = "";
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0) close(fd);
	buf[n > 0 ? n : 0] = 0;
	buf[strcspn(buf, "\n")] = 0;
	memcpy(boot, buf, 64);
	struct stat st;
	*pidns = stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static void put_str(buf *b, const char *s)
{
	size_t n = strlen(s);
	buf_u16(b, (uint16_t)n);
	buf_put(b, s, n);
}

static int get_str(cursor *c, char *out, size_t cap)
{
	const uint8_t *p;
	uint16_t n = cur_u16(c);
	if (c->bad || n >= cap || cur_bytes(c, &p, n) < 0 || memchr(p, 0, n)) return -1;
	memcpy(out, p, n);
	out[n] = 0;
	return 0;
}

static int record_decode(freeze_rec *r, const uint8_t *data, size_t len, const char *what)
{
	const uint8_t *body;
	size_t body_len;
	memset(r, 0, sizeof(*r));
	int rc = frame_check(data, len, MAGIC_FREEZE, what, &body, &body_len);
	if (rc < 0) return rc;
	cursor c;
	cur_init(&c, body, body_len);
	r->pid = cur_u32(&c);
	r->start = cur_u64(&c);
	r->guardian = cur_u32(&c);
	r->guardian_start = cur_u64(&c);
	r->v2 = cur_u8(&c);
	r->pidns = cur_u64(&c);
	r->time_ns = (int64_t)cur_u64(&c);
	if (get_str(&c, r->boot, sizeof(r->boot)) < 0 || get_str(&c, r->cgroup, sizeof(r->cgroup)) < 0 || c.bad ||
	    c.left != 0 || r->cgroup[0] != '/')
		return error_set(CAIRN_ECORRUPT, "%s: bad length or cgroup", what);
	return 0;
}

/* The record's path for this process: one freeze per process at a time. */
static int record_path(freezer *f, const char *state_dir)
{
	uint64_t start;
	int rc = io_proc_start(getpid(), &start);
	if (rc < 0) return error_errno(CAIRN_EIO, -rc, "/proc/self/stat");
	if ((size_t)snprintf(f->record, sizeof(f->record), "%s/" RECORDS_DIR "/%ld-%llu", state_dir, (long)getpid(),
	                     (unsigned long long)start) >= sizeof(f->record))
		return error_set(CAIRN_EUSAGE, "state directory %s: path too long", state_dir);
	return 0;
}

/* Written (durably) before the freeze: a take that dies with its guardian
 * leaves it, and the next cairn command or cairn recover thaws the group. */
static int record_write(freezer *f)
{
	freeze_rec r = {0};
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	host_ids(r.boot, &r.pidns);
	buf b;
	buf_init(&b);
	buf_header(&b, MAGIC_FREEZE, 0);
	buf_u32(&b, (uint32_t)getpid());
	uint64_t start = 0;
	io_proc_start(getpid(), &start);
	buf_u64(&b, start);
	buf_u32(&b, (uint32_t)f->guardian);
	buf_u64(&b, f->guardian_start);
	buf_u8(&b, (uint8_t)f->v2);
	buf_u64(&b, r.pidns);
	buf_u64(&b, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	put_str(&b, r.boot);
	put_str(&b, f->dir);
	buf_check(&b);
	size_t len;
	uint8_t *data = b.oom ? NULL : buf_take(&b, &len);
	buf_free(&b);
	if (!data) return ERR_OOM();
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", f->record);
	*strrchr(dir, '/') = 0;
	int rc = 0, dfd = -1;
	if (io_mkdir_parents(dir, 0700) < 0) rc = error_errno(CAIRN_EIO, errno, "state directory %s", dir);
	else if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) rc = error_errno(CAIRN_EIO, errno, "%s", dir);
	else rc = io_write_atomic(dfd, ".", strrchr(f->record, '/') + 1, data, len, 0, f->record);
	if (dfd >= 0) close(dfd);
	free(data);
	if (rc < 0) error_prefix("cgroup %s: not frozen: freeze record", f->dir);
	return rc;
}

/* After the thaw. Not synced: a record that comes back after a crash names
 * a group of an earlier boot, which recover only clears. */
static void record_remove(freezer *f)
{
	if (f->record[0]) unlink(f->record);
}

/* ---- signals ----------------------------------------------------------------- */

static void install_handlers(freezer *f)
{
	caught_signal = 0;
	handler_v2 = f->v2;
	handler_ctl = f->ctl;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < NSIG_CAUGHT; i++) {
		sigaction(caught_signals[i], NULL, &f->old_act[i]);
		/* a signal the caller ignores stays ignored */
		if (f->old_act[i].sa_handler != SIG_IGN) sigaction(caught_signals[i], &sa, NULL);
	}
	f->handlers = 1;
}

static void restore_signals(freezer *f)
{
	if (f->blocked) {
		/* pending signals run our handler (harmless now), not the default */
		pthread_sigmask(SIG_SETMASK, &f->old_mask, NULL);
		f->blocked = 0;
	}
	if (f->handlers) {
		for (size_t i = 0; i < NSIG_CAUGHT; i++) sigaction(caught_signals[i], &f->old_act[i], NULL);
		handler_ctl = -1;
		f->handlers = 0;
	}
}

/* ---- freeze, thaw, kill -------------------------------------------------------- */

static int thaw(freezer *f)
{
	if (!f->frozen) return 0;
	if (write_thaw(f->ctl, f->v2) < 0)
		return error_errno(CAIRN_EIO, errno, "cgroup %s: thaw", f->dir);
	f->frozen = 0;
	f->t_thaw = mono_ns();
	tell_guardian(f, G_DISARM);
	record_remove(f);
	return 0;
}

/* Is pid listed in the group's cgroup.procs? 1, 0 or -errno. */
static int group_has_pid(const char *dir, pid_t pid)
{
	char path[PATH_MAX + 64];
	if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= sizeof(path)) return -ENAMETOOLONG;
	FILE *fp = fopen(path, "re");
	if (!fp) return -errno;
	long p;
	int found = 0;
	while (fscanf(fp, "%ld", &p) == 1)
		if (p == (long)pid) found = 1;
	fclose(fp);
	return found;
}

/* SIGKILL every process of dir and of its descendant groups. Returns how
 * many were signalled, or -errno when dir cannot be read. */
static int kill_tree(const char *dir, int depth)
{
	char path[PATH_MAX + 64];
	int count = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= sizeof(path)) return -ENAMETOOLONG;
	FILE *fp = fopen(path, "re");
	if (!fp) return -errno;
	long p;
	while (fscanf(fp, "%ld", &p) == 1)
		if (p > 0 && kill((pid_t)p, SIGKILL) == 0) count++;
	fclose(fp);
	if (depth > 64) return count;
	DIR *d = opendir(dir);
	if (!d) return count;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.') continue;
		/* a cut path could name another group: such a child is left alone (and
		 * its processes keep the wait below from ending well) */
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path)) continue;
		int n = kill_tree(path, depth + 1);
		if (n > 0) count += n;
	}
	closedir(d);
	return count;
}

/* Kill every process, thaw (v1 tasks act on SIGKILL only when thawed), wait
 * until the group is empty. */
static int release(freezer *f)
{
	int rc = 0;
	int kill_file = f->v2 && write_ctl(f->dir, "cgroup.kill", "1") == 0;
	int n = kill_file ? 0 : kill_tree(f->dir, 0);
	if (n < 0) return error_errno(CAIRN_EIO, -n, "cgroup %s: cannot list its processes", f->dir);
	if ((rc = thaw(f)) < 0) return rc;
	int64_t end = mono_ns() + (int64_t)KILL_TIMEOUT_MS * 1000000;
	for (unsigned step = 1;; step = step < 50 ? step * 2 : 50) {
		n = kill_tree(f->dir, 0); /* also what forked meanwhile */
		if (n == 0) return 0;
		if (mono_ns() > end)
			return error_set(CAIRN_EIO, "cgroup %s: processes still alive %d ms after SIGKILL", f->dir,
			                 KILL_TIMEOUT_MS);
		sleep_ms(step);
	}
}

static int open_group(freezer *f, const char *cgdir)
{
	struct stat st;
	if (strlen(cgdir) >= sizeof(f->dir)) return error_set(CAIRN_EUSAGE, "cgroup %s: path too long", cgdir);
	snprintf(f->dir, sizeof(f->dir), "%s", cgdir);
	if (stat(cgdir, &st) < 0)
		return error_errno(errno == ENOENT ? CAIRN_ENOTFOUND : CAIRN_EIO, errno, "cgroup %s", cgdir);
	if (!S_ISDIR(st.st_mode)) return error_set(CAIRN_EUSAGE, "cgroup %s: not a directory", cgdir);

	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/cgroup.freeze", cgdir);
	f->ctl = open(path, O_WRONLY | O_CLOEXEC);
	f->v2 = f->ctl >= 0;
	if (f->ctl < 0) {
		snprintf(path, sizeof(path), "%s/freezer.state", cgdir);
		f->ctl = open(path, O_WRONLY | O_CLOEXEC);
	}
	if (f->ctl < 0) {
		if (errno == ENOENT)
			return error_set(CAIRN_EUSAGE,
			                 "cgroup %s: neither cgroup.freeze (cgroup v2, not the root group) nor freezer.state (v1 freezer): not a freezable cgroup",
			                 cgdir);
		return error_errno(CAIRN_EIO, errno, "cgroup %s: open %s", cgdir, path);
	}

	int mine = group_has_pid(cgdir, getpid());
	if (mine < 0) return error_errno(CAIRN_EIO, -mine, "cgroup %s: read cgroup.procs", cgdir);
	if (mine) return error_set(CAIRN_EUSAGE, "cgroup %s: cairn itself runs in it and would freeze too", cgdir);

	/* someone else's freeze (another take?): thawing it at the end would be wrong */
	char buf[64];
	int rc = f->v2 ? read_ctl(cgdir, "cgroup.freeze", buf, sizeof(buf))
	               : read_ctl(cgdir, "freezer.state", buf, sizeof(buf));
	if (rc < 0) return error_errno(CAIRN_EIO, -rc, "cgroup %s: read its freeze state", cgdir);
	if (f->v2 ? buf[0] == '1' : strncmp(buf, "THAWED", 6) != 0)
		return error_set(CAIRN_EBUSY, "cgroup %s: already frozen (by another take?)", cgdir);
	return 0;
}

int freeze_open(freezer **out, const cairn_take_options *o, const char *state_dir)
{
	int rc;
	*out = NULL;
	freezer *f = calloc(1, sizeof(*f));
	if (!f) return ERR_OOM();
	f->ctl = f->sock = -1;
	f->max_pause_ms = o->max_pause_ms;
	if (o->release && o->dry_run) {
		rc = error_set(CAIRN_EUSAGE, "cgroup %s: a dry run never releases", o->cgroup);
		goto done;
	}
	if ((rc = open_group(f, o->cgroup)) < 0) goto done;
	if ((rc = record_path(f, state_dir)) < 0) goto done;
	if ((rc = start_guardian(f)) < 0) goto done;
	install_handlers(f);
	*out = f;
	f = NULL;
done:
	freeze_free(f);
	return rc;
}

int freeze_now(freezer *f, const cairn_take_options *o)
{
	int rc;
	if ((rc = freeze_check(f)) < 0) return rc; /* a signal since freeze_open */
	if (guardian_gone(f)) return error_set(CAIRN_EIO, "cgroup %s: the guardian process is gone; not freezing", f->dir);
	if ((rc = record_write(f)) < 0) return rc;
	emit_state(o, "suspending", 0);
	/* stamped before arming: the guardian's max-pause deadline is never the earlier one */
	f->t_freeze = mono_ns();
	if (tell_guardian(f, G_ARM) < 0) {
		record_remove(f);
		rc = error_set(CAIRN_EIO, "cgroup %s: the guardian process is gone; not freezing", f->dir);
		goto done;
	}
	f->frozen = f->ever_frozen = 1; /* from here on, every way out thaws */
	if (pwrite(f->ctl, f->v2 ? "1" : "FROZEN", f->v2 ? 1 : 6, 0) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "cgroup %s: freeze", f->dir);
		goto done;
	}
	uint64_t limit = FREEZE_TIMEOUT_MS;
	if (f->max_pause_ms && f->max_pause_ms < limit) limit = f->max_pause_ms;
	for (unsigned step = 1;; step = step < 20 ? step * 2 : 20) {
		int fr = is_frozen(f);
		if (fr < 0) {
			rc = error_errno(CAIRN_EIO, -fr, "cgroup %s: read its freeze state", f->dir);
			goto done;
		}
		if (fr) break;
		if ((rc = freeze_check(f)) < 0) goto done;
		if ((uint64_t)(mono_ns() - f->t_freeze) / 1000000 >= limit) {
			rc = error_set(CAIRN_EIO,
			               "cgroup %s: not frozen after %llu ms (a process stuck in the kernel?); thawed",
			               f->dir, (unsigned long long)limit);
			goto done;
		}
		sleep_ms(step);
	}
	emit_state(o, "paused", (uint64_t)(mono_ns() - f->t_freeze) / 1000000);
done:
	if (rc < 0) thaw(f);
	return rc;
}

/* Did someone else ask for a thaw? The asked-for state, not the reached one:
 * a process moved into a frozen group makes cgroup.events say "frozen 0"
 * until it froze too. A group that cannot be read is not taken as thawed. */
static int thawed_by_others(const freezer *f)
{
	char buf[64];
	if (f->v2) return read_ctl(f->dir, "cgroup.freeze", buf, sizeof(buf)) == 0 && buf[0] == '0';
	return read_ctl(f->dir, "freezer.state", buf, sizeof(buf)) == 0 && strncmp(buf, "THAWED", 6) == 0;
}

int freeze_check(freezer *f)
{
	if (!f) return 0;
	int sig = caught_signal;
	if (f->why[0]) {
		/* aborted already: say it again */
	} else if (sig) {
		const char *name = sigabbrev_np(sig);
		snprintf(f->why, sizeof(f->why),
		         f->ever_frozen ? "interrupted by SIG%s; cgroup %s thawed, nothing committed"
		                        : "interrupted by SIG%s before cgroup %s was frozen; nothing committed",
		         name ? name : "?", f->dir);
	} else if (f->ever_frozen && f->max_pause_ms && (uint64_t)(mono_ns() - f->t_freeze) / 1000000 >= f->max_pause_ms) {
		snprintf(f->why, sizeof(f->why),
		         "cgroup %s paused longer than the maximum of %llu ms; aborted and thawed, nothing committed",
		         f->dir, (unsigned long long)f->max_pause_ms);
	} else if (f->frozen && guardian_gone(f)) {
		snprintf(f->why, sizeof(f->why),
		         "the guardian process %ld died while cgroup %s was frozen; thawed, nothing committed",
		         (long)f->guardian, f->dir);
	} else if (f->frozen && thawed_by_others(f)) {
		snprintf(f->why, sizeof(f->why),
		         "cgroup %s was thawed by another process while paused; nothing committed (not one instant)",
		         f->dir);
	} else {
		return 0;
	}
	thaw(f); /* after a signal the handler has thawed already; this records it */
	return error_set(CAIRN_EIO, "%s", f->why);
}

int freeze_commit_begin(freezer *f)
{
	if (!f) return 0;
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < NSIG_CAUGHT; i++) sigaddset(&set, caught_signals[i]);
	if (!f->blocked) {
		pthread_sigmask(SIG_BLOCK, &set, &f->old_mask);
		f->blocked = 1;
	}
	return freeze_check(f);
}

int freeze_end(freezer *f, const cairn_take_options *o, const char *snap)
{
	if (!f) return 0;
	int rc = o->release ? release(f) : thaw(f);
	if (rc < 0) {
		thaw(f);
		error_prefix("snapshot %s committed, but", snap);
		return rc;
	}
	emit_state(o, o->release ? "released" : "resumed", 0);
	stop_guardian(f);
	restore_signals(f);
	return 0;
}

uint64_t freeze_pause_ms(const freezer *f)
{
	if (!f || !f->ever_frozen) return 0;
	int64_t end = f->frozen ? mono_ns() : f->t_thaw;
	return (uint64_t)(end - f->t_freeze) / 1000000;
}

void freeze_free(freezer *f)
{
	if (!f) return;
	if (f->frozen && thaw(f) < 0) {
		/* the guardian tries again when the socket closes */
	}
	stop_guardian(f);
	restore_signals(f);
	if (f->ctl >= 0) close(f->ctl);
	free(f);
}

/* ---- recovery -------------------------------------------------------------------- */

typedef struct found_rec {
	char name[256];
	freeze_rec r;
	int damaged, live, other_ns, other_boot;
} found_rec;

static void report(cairn_recover_cb cb, void *payload, const found_rec *x, const char *path, const char *action,
                   const char *detail)
{
	if (!cb) return;
	cairn_recovered ev = {x->damaged ? "" : x->r.cgroup, path, (long)x->r.pid, action, detail};
	cb(&ev, payload);
}

/* Ask for a thaw if the group is (asked to be) frozen: 1 thawed, 0 it was
 * not frozen or is gone, or -errno. */
static int thaw_group(const freeze_rec *r)
{
	char buf[64];
	const char *name = r->v2 ? "cgroup.freeze" : "freezer.state";
	int rc = read_ctl(r->cgroup, name, buf, sizeof(buf));
	if (rc == -ENOENT || rc == -ENODEV) return 0;
	if (rc < 0) return rc;
	if (r->v2 ? buf[0] != '1' : strncmp(buf, "THAWED", 6) == 0) return 0;
	rc = write_ctl(r->cgroup, name, r->v2 ? "0" : "THAWED");
	return rc == -ENOENT || rc == -ENODEV ? 0 : rc < 0 ? rc : 1;
}

static int load_records(int dfd, const char *dir, found_rec **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	int fd = dup(dfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0) close(fd);
		return error_errno(CAIRN_EIO, errno, "%s", dir);
	}
	char boot[64];
	uint64_t pidns;
	host_ids(boot, &pidns);
	size_t cap = 0;
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		size_t len = strlen(de->d_name);
		/* the temporary file of a write in progress (or left by a crash) */
		if (de->d_name[0] == '.' || len >= sizeof((*out)->name) || (len > 4 && !strcmp(de->d_name + len - 4, ".tmp")))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			found_rec *p = realloc(*out, cap * sizeof(*p));
			if (!p) {
				rc = ERR_OOM();
				break;
			}
			*out = p;
		}
		found_rec *x = &(*out)[*n];
		memset(x, 0, sizeof(*x));
		memcpy(x->name, de->d_name, len + 1);
		uint8_t *data;
		size_t dlen;
		char what[PATH_MAX + 300];
		snprintf(what, sizeof(what), "freeze record %s/%s", dir, x->name);
		int r = io_read_all(dfd, x->name, RECORD_MAX, &data, &dlen, what);
		if (r == CAIRN_ENOTFOUND) { /* removed meanwhile: its take thawed */
			error_clear();
			continue;
		}
		if (r == 0) {
			r = record_decode(&x->r, data, dlen, what);
			free(data);
		}
		if (r < 0) error_clear();
		x->damaged = r < 0;
		x->other_boot = !x->damaged && strcmp(x->r.boot, boot) != 0;
		x->other_ns = !x->damaged && !x->other_boot && x->r.pidns != pidns;
		x->live = !x->damaged && !x->other_boot && !x->other_ns && io_proc_alive((pid_t)x->r.pid, x->r.start);
		(*n)++;
	}
	closedir(d);
	return rc;
}

CAIRN_EXTERN int cairn_recover(const char *state_dir, cairn_recover_cb cb, void *payload)
{
	char dir[PATH_MAX], path[PATH_MAX + 300], detail[512];
	found_rec *v = NULL;
	size_t n = 0;
	int rc = 0;
	if (!state_dir || !*state_dir) state_dir = CAIRN_DEFAULT_STATE_DIR;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/" RECORDS_DIR, state_dir) >= sizeof(dir))
		return error_set(CAIRN_EUSAGE, "state directory %s: path too long", state_dir);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) return errno == ENOENT ? 0 : error_errno(CAIRN_EIO, errno, "%s", dir);
	if ((rc = load_records(dfd, dir, &v, &n)) < 0) goto done;
	for (size_t i = 0; i < n; i++) {
		found_rec *x = &v[i];
		snprintf(path, sizeof(path), "%s/%s", dir, x->name);
		if (x->live) {
			report(cb, payload, x, path, "kept", "its take is running");
			continue;
		}
		if (x->other_ns) {
			report(cb, payload, x, path, "kept", "written in another pid namespace: its take cannot be looked up");
			continue;
		}
		const char *why = NULL;
		if (x->damaged) why = "damaged record";
		else if (x->other_boot) why = "from an earlier boot";
		for (size_t k = 0; !why && k < n; k++)
			if (v[k].live && !strcmp(v[k].r.cgroup, x->r.cgroup)) why = "a running take froze the group since";
		int t = 0;
		if (!why) {
			t = thaw_group(&x->r);
			if (t < 0) {
				snprintf(detail, sizeof(detail), "take %ld died; thaw failed: %s", (long)x->r.pid, strerror(-t));
				report(cb, payload, x, path, "failed", detail);
				rc = error_errno(CAIRN_EIO, -t, "cgroup %s: thaw", x->r.cgroup);
				continue;
			}
			why = t ? "" : "not frozen any more";
		}
		if (unlinkat(dfd, x->name, 0) < 0 && errno != ENOENT) {
			rc = error_errno(CAIRN_EIO, errno, "%s: remove", path);
			report(cb, payload, x, path, "failed", cairn_error_last());
			continue;
		}
		if (t) {
			snprintf(detail, sizeof(detail), "take %ld died and left it frozen", (long)x->r.pid);
			report(cb, payload, x, path, "thawed", detail);
		} else {
			report(cb, payload, x, path, "cleared", why);
		}
	}
	if (n) io_fsync_dir(dfd, dir);
done:
	free(v);
	close(dfd);
	return rc;
}

/* ---- roots ------------------------------------------------------------------- */

int live_root_path(const char *root, char out[PATH_MAX])
{
	struct stat given, resolved;
	if (stat(root, &given) < 0)
		return error_errno(errno == ENOENT ? CAIRN_ENOTFOUND : CAIRN_EIO, errno, "root %s", root);
	if (realpath(root, out) && stat(out, &resolved) == 0 && resolved.st_dev == given.st_dev &&
	    resolved.st_ino == given.st_ino)
		return 0;
	char cwd[PATH_MAX] = "";
	if (root[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return error_errno(CAIRN_EIO, errno, "root %s: current directory", root);
	int n = root[0] == '/' ? snprintf(out, PATH_MAX, "%s", root) : snprintf(out, PATH_MAX, "%s/%s", cwd, root);
	if (n < 0 || n >= PATH_MAX) return error_set(CAIRN_EUSAGE, "root %s: path too long", root);
	return 0;
}
