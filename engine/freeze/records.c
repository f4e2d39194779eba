/* Freezing (internal.h): freeze records in the state directory, and
 * cairn_recover, which thaws the groups of takes that died with their
 * guardians. */
#include "internal.h"
#include "freeze/codec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "format.h"
#include "io.h"

#define RECORDS_DIR "freezes"
#define RECORD_MAX 8192

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

/* The record's path for this process: one freeze per process at a time. */
int freeze_record_path(freezer *f, const char *state_dir)
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
int freeze_record_write(freezer *f)
{
	freeze_rec r = {0};
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	host_ids(r.boot, &r.pidns);
	r.pid = (uint32_t)getpid();
	io_proc_start(getpid(), &r.start);
	r.guardian = (uint32_t)f->guardian;
	r.guardian_start = f->guardian_start;
	r.v2 = (uint8_t)f->v2;
	r.time_ns = (int64_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	memcpy(r.cgroup, f->dir, sizeof(r.cgroup)); /* both PATH_MAX */
	uint8_t *data;
	size_t len;
	int rc = freeze_record_encode(&r, &data, &len);
	if (rc < 0) return rc;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", f->record);
	*strrchr(dir, '/') = 0;
	int dfd = -1;
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
void freeze_record_remove(freezer *f)
{
	if (f->record[0]) unlink(f->record);
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
	int rc = cgroup_read_ctl(r->cgroup, name, buf, sizeof(buf));
	if (rc == -ENOENT || rc == -ENODEV) return 0;
	if (rc < 0) return rc;
	if (r->v2 ? buf[0] != '1' : strncmp(buf, "THAWED", 6) == 0) return 0;
	rc = cgroup_write_ctl(r->cgroup, name, r->v2 ? "0" : "THAWED");
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
			r = freeze_record_decode(&x->r, data, dlen, what);
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
