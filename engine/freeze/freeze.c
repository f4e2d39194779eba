/* Freezing a cgroup around a take, with a guardian process and signal
 * handling so that the instance is never left frozen (see freeze.h; the
 * parts in internal.h). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "options.h"
#include "util.h"

#define FREEZE_TIMEOUT_MS 10000 /* a group that will not freeze: a process stuck in the kernel */
#define KILL_TIMEOUT_MS 5000    /* release: until the group is empty */

static const int caught_signals[] = CAUGHT_SIGNALS;

/* For the signal handler: one active freezer per process. */
static volatile sig_atomic_t caught_signal;
static volatile sig_atomic_t handler_ctl = -1;
static volatile sig_atomic_t handler_v2;

static void on_signal(int sig)
{
	int saved = errno;
	if (!caught_signal) caught_signal = sig;
	if (handler_ctl >= 0) cgroup_write_thaw(handler_ctl, handler_v2);
	errno = saved;
}

/* 1 when the caller's callback asked to cancel. */
static int emit_state(const cairn_take_options *o, const char *state, uint64_t ms)
{
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CAIRN_EVENT_STATE;
	ev.state = state;
	ev.ms = ms;
	return event_emit(o->event_cb, o->event_cancel_cb, o->event_payload, &ev);
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
	if (cgroup_write_thaw(f->ctl, f->v2) < 0)
		return error_errno(CAIRN_EIO, errno, "cgroup %s: thaw", f->dir);
	f->frozen = 0;
	f->t_thaw = mono_ns();
	guardian_tell(f, G_DISARM);
	freeze_record_remove(f);
	return 0;
}

/* Kill every process, thaw (v1 tasks act on SIGKILL only when thawed), wait
 * until the group is empty. */
static int release(freezer *f)
{
	int rc = 0;
	int kill_file = f->v2 && cgroup_write_ctl(f->dir, "cgroup.kill", "1") == 0;
	int n = kill_file ? 0 : cgroup_kill_tree(f->dir, 0);
	if (n < 0) return error_errno(CAIRN_EIO, -n, "cgroup %s: cannot list its processes", f->dir);
	if ((rc = thaw(f)) < 0) return rc;
	int64_t end = mono_ns() + (int64_t)KILL_TIMEOUT_MS * 1000000;
	for (unsigned step = 1;; step = step < 50 ? step * 2 : 50) {
		n = cgroup_kill_tree(f->dir, 0); /* also what forked meanwhile */
		if (n == 0) return 0;
		if (mono_ns() > end)
			return error_set(CAIRN_EIO, "cgroup %s: processes still alive %d ms after SIGKILL", f->dir,
			                 KILL_TIMEOUT_MS);
		freeze_sleep_ms(step);
	}
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
	if ((rc = cgroup_open(f, o->cgroup)) < 0) goto done;
	if ((rc = freeze_record_path(f, state_dir)) < 0) goto done;
	if ((o->flags & CAIRN_TAKE_GUARDIAN) && (rc = guardian_start(f)) < 0) goto done;
	if (o->flags & CAIRN_TAKE_SIGNALS) install_handlers(f);
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
	if ((rc = freeze_record_write(f)) < 0) return rc;
	if (emit_state(o, "suspending", 0)) {
		freeze_record_remove(f);
		return error_set(CAIRN_ECANCELED, "cgroup %s: take canceled by the caller before the freeze", f->dir);
	}
	/* stamped before arming: the guardian's max-pause deadline is never the earlier one */
	f->t_freeze = mono_ns();
	if (f->sock >= 0 && guardian_tell(f, G_ARM) < 0) {
		freeze_record_remove(f);
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
		int fr = cgroup_is_frozen(f);
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
		freeze_sleep_ms(step);
	}
	f->freeze_ms = (uint64_t)(mono_ns() - f->t_freeze) / 1000000;
	if (emit_state(o, "paused", f->freeze_ms))
		rc = error_set(CAIRN_ECANCELED, "cgroup %s: take canceled by the caller; thawed, nothing committed", f->dir);
done:
	if (rc < 0) thaw(f);
	return rc;
}

int freeze_check(freezer *f)
{
	if (!f) return 0;
	int sig = f->handlers ? caught_signal : 0;
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
	} else if (f->frozen && cgroup_thawed_by_others(f)) {
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
	if (f->handlers && !f->blocked) {
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
	guardian_stop(f);
	restore_signals(f);
	return 0;
}

uint64_t freeze_frozen_ms(const freezer *f)
{
	return f ? f->freeze_ms : 0;
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
	guardian_stop(f);
	restore_signals(f);
	if (f->ctl >= 0) close(f->ctl);
	free(f);
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
