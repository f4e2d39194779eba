/* Freezing (internal.h): the group's control files, cgroup v2 and the v1
 * freezer: read and write them, frozen or not, its processes, killing them. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

/* Async-signal-safe: used by the handler and the guardian. */
int cgroup_write_thaw(int fd, int v2)
{
	const char *s = v2 ? "0" : "THAWED";
	size_t n = strlen(s);
	return pwrite(fd, s, n, 0) == (ssize_t)n ? 0 : -1;
}

/* Read a small control file of the group into buf. 0 or -errno. */
int cgroup_read_ctl(const char *dir, const char *name, char *buf, size_t cap)
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

int cgroup_write_ctl(const char *dir, const char *name, const char *value)
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
int cgroup_is_frozen(const freezer *f)
{
	char buf[512];
	int rc = f->v2 ? cgroup_read_ctl(f->dir, "cgroup.events", buf, sizeof(buf))
	               : cgroup_read_ctl(f->dir, "freezer.state", buf, sizeof(buf));
	if (rc < 0) return rc;
	if (f->v2) {
		const char *p = strstr(buf, "frozen ");
		return p && p[7] == '1';
	}
	return strncmp(buf, "FROZEN", 6) == 0;
}

void freeze_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Is pid listed in the group's cgroup.procs? 1, 0 or -errno. */
int cgroup_has_pid(const char *dir, pid_t pid)
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
int cgroup_kill_tree(const char *dir, int depth)
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
		int n = cgroup_kill_tree(path, depth + 1);
		if (n > 0) count += n;
	}
	closedir(d);
	return count;
}

int cgroup_open(freezer *f, const char *cgdir)
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

	int mine = cgroup_has_pid(cgdir, getpid());
	if (mine < 0) return error_errno(CAIRN_EIO, -mine, "cgroup %s: read cgroup.procs", cgdir);
	if (mine) return error_set(CAIRN_EUSAGE, "cgroup %s: cairn itself runs in it and would freeze too", cgdir);

	/* someone else's freeze (another take?): thawing it at the end would be wrong */
	char buf[64];
	int rc = f->v2 ? cgroup_read_ctl(cgdir, "cgroup.freeze", buf, sizeof(buf))
	               : cgroup_read_ctl(cgdir, "freezer.state", buf, sizeof(buf));
	if (rc < 0) return error_errno(CAIRN_EIO, -rc, "cgroup %s: read its freeze state", cgdir);
	if (f->v2 ? buf[0] == '1' : strncmp(buf, "THAWED", 6) != 0)
		return error_set(CAIRN_EBUSY, "cgroup %s: already frozen (by another take?)", cgdir);
	return 0;
}

/* Did someone else ask for a thaw? The asked-for state, not the reached one:
 * a process moved into a frozen group makes cgroup.events say "frozen 0"
 * until it froze too. A group that cannot be read is not taken as thawed. */
int cgroup_thawed_by_others(const freezer *f)
{
	char buf[64];
	if (f->v2) return cgroup_read_ctl(f->dir, "cgroup.freeze", buf, sizeof(buf)) == 0 && buf[0] == '0';
	return cgroup_read_ctl(f->dir, "freezer.state", buf, sizeof(buf)) == 0 && strncmp(buf, "THAWED", 6) == 0;
}
