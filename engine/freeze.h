/* Freezing a live instance's cgroup for the duration of a take.
 *
 * cgroup v2: cgroup.freeze, then wait for "frozen 1" in cgroup.events;
 * cgroup v1 freezer: freezer.state FROZEN, wait until it reads FROZEN. Both
 * waits are bounded. Release kills every process of the group (cgroup.kill,
 * or SIGKILL to every pid of the group and its descendants) and then thaws,
 * so that v1 tasks can act on the signal.
 *
 * Safety, when asked for (CAIRN_TAKE_GUARDIAN): a guardian process (forked before the freeze, holding the read end
 * of a pipe whose only writer is this process) thaws the group when the pipe
 * closes without a "done" byte, i.e. when cairn dies for any reason, SIGKILL
 * included; and when max_pause_ms passes before the take ends. It leaves
 * cairn's session and cairn's cgroup before the freeze (into cairn-guardian
 * at the top of the v2 and name=systemd hierarchies): killing the caller's
 * service or cgroup spares it. A take whose guardian dies while frozen, or
 * whose group another process thaws, fails (thawed, nothing committed).
 * Before the freeze a record goes durably into the state directory
 * (freezes/<pid>-<start>; removed at the thaw): when cairn and its guardian
 * both die, cairn_recover thaws the group. With CAIRN_TAKE_SIGNALS, while the
 * group is frozen, SIGINT, SIGTERM and SIGHUP are caught: the handler thaws
 * at once and the take fails at its next check with nothing committed. The
 * signal handlers are process-wide: one freezer per process at a time. */
#ifndef CAIRN_FREEZE_H
#define CAIRN_FREEZE_H

#include <limits.h>
#include <stdint.h>

#include "cairn.h"

typedef struct freezer freezer;

/* Open the cgroup o->cgroup, start the guardian (CAIRN_TAKE_GUARDIAN; moved
 * out of cairn's cgroup: CAIRN_EIO when that fails) and catch SIGINT,
 * SIGTERM and SIGHUP (CAIRN_TAKE_SIGNALS); nothing is frozen yet (a take pre-copies now). Fails with
 * CAIRN_ENOTFOUND (no such cgroup), CAIRN_EUSAGE (not a freezable cgroup,
 * or cairn itself is in it), CAIRN_EBUSY (already frozen). */
int freeze_open(freezer **out, const cairn_take_options *o, const char *state_dir);

/* Write the freeze record, emit "suspending", freeze, wait until frozen,
 * emit "paused" (ms = time to freeze). Fails thawed with CAIRN_EIO (the
 * record could not be written: never frozen; freezing failed or timed out,
 * or a signal came), or CAIRN_ECANCELED when the caller's callback asked
 * to at either event. */
int freeze_now(freezer *f, const cairn_take_options *o);

/* 0 while the take may go on; else CAIRN_EIO with the reason (a signal,
 * before or during the freeze, max_pause_ms passed, the guardian died, or
 * another process thawed the group). The group has then been thawed
 * already. NULL: 0. */
int freeze_check(freezer *f);

/* The commit point: from here signals no longer abort the take (they are
 * blocked in the calling thread until freeze_end/freeze_free), and a last
 * freeze_check decides. */
int freeze_commit_begin(freezer *f);

/* After the commit: with release, kill every process and emit "released";
 * else thaw and emit "resumed". Disarms the guardian. An error names snap
 * (committed all the same). */
int freeze_end(freezer *f, const cairn_take_options *o, const char *snap);

/* Milliseconds from the freeze request until the group was frozen; 0 for NULL. */
uint64_t freeze_frozen_ms(const freezer *f);

/* Milliseconds the group has been frozen: from the freeze request to the
 * thaw, or to now while frozen. 0 for NULL. */
uint64_t freeze_pause_ms(const freezer *f);

/* Thaw if still frozen (a failed take), stop the guardian, restore signal
 * handling and free. NULL is fine. */
void freeze_free(freezer *f);

/* The captured root as an absolute path for take. Normally realpath(root);
 * but /proc/PID/root of a process in another mount namespace (a container)
 * reads as "/" -- our own root -- so when the resolved path is not the
 * directory root itself opens (device and inode differ, or it does not
 * resolve at all), root is kept as given, made absolute: opening it follows
 * the magic link into the container's root. CAIRN_ENOTFOUND when root does
 * not exist. */
int live_root_path(const char *root, char out[PATH_MAX]);

#endif
