/* Freezing a live instance's cgroup (engine/freeze.h is the interface the
 * take uses). What each file owns:
 *
 *   freeze.c    freeze_* and live_root_path: the order of a freeze, thaw
 *               and release, the abort checks, the signal handlers
 *   cgroup.c    the group's control files (cgroup v2 and the v1 freezer):
 *               opening a group, freezing state, its processes, kill
 *   guardian.c  the guardian process that thaws when cairn dies
 *   records.c   freeze records in the state directory, cairn_recover
 *   codec.c     the freeze record as bytes and back (codec.h), no I/O
 *
 * Each file uses only those listed below it. */
#ifndef CAIRN_FREEZE_INTERNAL_H
#define CAIRN_FREEZE_INTERNAL_H

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "freeze.h"

/* Guardian protocol bytes (parent -> guardian). EOF while armed: thaw. */
#define G_ARM 'F'    /* about to freeze: armed, max-pause clock starts */
#define G_DISARM 'T' /* thawed by the parent */
#define G_DONE 'D'   /* exit without doing anything */

/* The signals a take catches while frozen (and its guardian ignores). */
#define CAUGHT_SIGNALS {SIGINT, SIGTERM, SIGHUP}
#define NSIG_CAUGHT 3

struct freezer {
	char dir[PATH_MAX];
	int v2;
	int ctl;        /* cgroup.freeze (v2) or freezer.state (v1), write-only */
	int sock;       /* our end of the guardian's socket; -1 once closed */
	pid_t guardian; /* 0 once reaped */
	int frozen;     /* we asked for a freeze and have not thawed since */
	int ever_frozen;
	int64_t t_freeze, t_thaw; /* CLOCK_MONOTONIC ns */
	uint64_t freeze_ms;       /* from the request until frozen */
	uint64_t max_pause_ms;
	int handlers;   /* our signal handlers are installed */
	struct sigaction old_act[NSIG_CAUGHT];
	int blocked;    /* freeze_commit_begin blocked the signals */
	sigset_t old_mask;
	char why[PATH_MAX + 128]; /* why the take was aborted; "" while it may go on */
	char record[PATH_MAX];    /* the freeze record while it exists (state dir), else "" */
	uint64_t guardian_start;
};

/* cgroup.c */
/* Async-signal-safe: used by the signal handler and the guardian. */
int cgroup_write_thaw(int fd, int v2);
/* Read a small control file of the group into buf. 0 or -errno. */
int cgroup_read_ctl(const char *dir, const char *name, char *buf, size_t cap);
int cgroup_write_ctl(const char *dir, const char *name, const char *value);
/* Is the group frozen right now? 1, 0, or -errno. */
int cgroup_is_frozen(const freezer *f);
void freeze_sleep_ms(unsigned ms);
/* Is pid listed in the group's cgroup.procs? 1, 0 or -errno. */
int cgroup_has_pid(const char *dir, pid_t pid);
/* SIGKILL every process of dir and of its descendant groups. Returns how
 * many were signalled, or -errno when dir cannot be read. */
int cgroup_kill_tree(const char *dir, int depth);
/* f->dir, f->ctl and f->v2 for cgdir: a freezable group, not ours, not frozen. */
int cgroup_open(freezer *f, const char *cgdir);
/* Did someone else ask for a thaw? */
int cgroup_thawed_by_others(const freezer *f);

/* guardian.c */
/* Fork the guardian (f->sock, f->guardian) and move it out of cairn's cgroup. */
int guardian_start(freezer *f);
/* Send a protocol byte: 0, or -1 when the guardian is gone (or never ran). */
int guardian_tell(freezer *f, char b);
/* Let the guardian go and reap it. */
void guardian_stop(freezer *f);
/* Has the guardian died? 0 when there is none. */
int guardian_gone(const freezer *f);

/* records.c */
/* The record's path for this process (f->record). */
int freeze_record_path(freezer *f, const char *state_dir);
/* Written durably before the freeze. */
int freeze_record_write(freezer *f);
/* After the thaw. */
void freeze_record_remove(freezer *f);

#endif
