#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "error.h"

/* ---- fault injection ---------------------------------------------------- */

#define MAX_FAULTS 8
static struct fault {
	char op[16];
	long nth;
	int err; /* errno, or -1 = SHORT, -2 = CRASH */
} faults[MAX_FAULTS];
static int nfaults;
static atomic_long op_counts[6]; /* write, fsync, rename, read, stat, direct */
static pthread_mutex_t faults_lock = PTHREAD_MUTEX_INITIALIZER;
static char *fault_spec; /* the one configured, to keep its counts when given again */

static int op_slot(const char *op)
{
	static const char *ops[] = {"write", "fsync", "rename", "read", "stat", "direct"};
	for (int i = 0; i < 6; i++)
		if (strcmp(op, ops[i]) == 0) return i;
	return -1;
}

static void faults_parse(const char *spec)
{
	nfaults = 0;
	for (int i = 0; i < 6; i++) atomic_store(&op_counts[i], 0);
	if (!spec || !*spec) return;
	char *copy = strdup(spec), *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok && nfaults < MAX_FAULTS;
	     tok = strtok_r(NULL, ",", &save)) {
		char op[16], err[16];
		long nth;
		if (sscanf(tok, "%15[a-z]:%ld:%15s", op, &nth, err) != 3 || op_slot(op) < 0) continue;
		struct fault *f = &faults[nfaults];
		snprintf(f->op, sizeof(f->op), "%s", op);
		f->nth = nth;
		if (strcmp(err, "EIO") == 0) f->err = EIO;
		else if (strcmp(err, "ENOSPC") == 0) f->err = ENOSPC;
		else if (strcmp(err, "EINVAL") == 0) f->err = EINVAL;
		else if (strcmp(err, "SHORT") == 0) f->err = -1;
		else if (strcmp(err, "CRASH") == 0) f->err = -2;
		else continue;
		nfaults++;
	}
	free(copy);
}

/* Take spec (the counts start afresh) unless keep and it is the one in use. */
static void faults_set(const char *spec, int keep)
{
	if (spec && !*spec) spec = NULL;
	pthread_mutex_lock(&faults_lock);
	if (!(keep && spec && fault_spec && strcmp(spec, fault_spec) == 0)) {
		free(fault_spec);
		fault_spec = spec ? strdup(spec) : NULL;
		faults_parse(fault_spec);
	}
	pthread_mutex_unlock(&faults_lock);
}

void io_fault_configure(const char *spec) { faults_set(spec, 1); }

void io_fault_reset(const char *spec) { faults_set(spec, 0); }

/* Returns 0, -errno, or -1000 for "short write". */
int io_fault(const char *op)
{
	if (nfaults == 0) return 0;
	int slot = op_slot(op);
	if (slot < 0) return 0;
	long n = atomic_fetch_add(&op_counts[slot], 1) + 1;
	for (int i = 0; i < nfaults; i++) {
		if (faults[i].nth != n || strcmp(faults[i].op, op) != 0) continue;
		if (faults[i].err == -2) _exit(99);
		if (faults[i].err == -1) return -1000;
		return -faults[i].err;
	}
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

int io_write_full(int fd, const void *data, size_t len, const char *what)
{
	const uint8_t *p = data;
	while (len > 0) {
		int f = io_fault("write");
		if (f == -1000) {
			/* short write: part of the data lands, then the disk is full */
			ssize_t n = write(fd, p, len / 2);
			(void)n;
			return error_errno(CAIRN_EIO, ENOSPC, "%s: write", what);
		}
		if (f < 0) return error_errno(CAIRN_EIO, -f, "%s: write", what);
		size_t chunk = len > (1u << 30) ? (1u << 30) : len;
		ssize_t n = write(fd, p, chunk);
		if (n < 0) {
			if (errno == EINTR) continue;
			return error_errno(CAIRN_EIO, errno, "%s: write", what);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int do_fsync(int fd, const char *what)
{
	int f = io_fault("fsync");
	if (f < 0) return error_errno(CAIRN_EIO, f == -1000 ? EIO : -f, "%s: fsync", what);
	if (fsync(fd) < 0) return error_errno(CAIRN_EIO, errno, "%s: fsync", what);
	return 0;
}

int io_fsync_dir(int dirfd, const char *what) { return do_fsync(dirfd, what); }

/* Split "a/b/c" into its parent "a/b" (or "." when none). */
static void parent_of(char *out, size_t cap, const char *name)
{
	const char *slash = strrchr(name, '/');
	if (!slash) {
		snprintf(out, cap, ".");
		return;
	}
	snprintf(out, cap, "%.*s", (int)(slash - name), name);
}

/* Make every directory on the way to name exist, durably. */
static int make_parents(int dirfd, const char *name, const char *what)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s", name);
	for (char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		if (mkdirat(dirfd, path, 0755) == 0) {
			char parent[4096];
			parent_of(parent, sizeof(parent), path);
			int pfd = openat(dirfd, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (pfd < 0) return error_errno(CAIRN_EIO, errno, "%s: open %s", what, parent);
			int rc = do_fsync(pfd, what);
			close(pfd);
			if (rc < 0) return rc;
		} else if (errno != EEXIST) {
			return error_errno(CAIRN_EIO, errno, "%s: mkdir %s", what, path);
		}
		*s = '/';
	}
	return 0;
}

/* Start writing syncs back every this many bytes: the disk works while the
 * caller produces the rest, and the fsync at commit has little left to do. */
#define WRITEBACK_STEP (8u << 20)

/* "<pid>-<start>@<host>": who writes a temporary file (io_tmp_owner_alive). */
static void tmp_owner(char out[128])
{
	uint64_t start = 0;
	char host[80] = "";
	io_proc_start(getpid(), &start);
	gethostname(host, sizeof(host) - 1);
	for (char *p = host; *p; p++)
		if (*p == '/' || (unsigned char)*p <= ' ' || (unsigned char)*p >= 127) *p = '_';
	snprintf(out, 128, "%ld-%llu@%s", (long)getpid(), (unsigned long long)start, host);
}

int io_tmp_owner_alive(const char *name)
{
	const char *base = strrchr(name, '/');
	base = base ? base + 1 : name;
	size_t len = strlen(base);
	long pid;
	unsigned long long start;
	int at = 0;
	if (len < 4 || strcmp(base + len - 4, ".tmp") != 0 ||
	    sscanf(base, "%*24[0-9a-f].%ld-%llu@%n", &pid, &start, &at) != 2 || at == 0)
		return 0; /* not named by its writer (older cairn): no one to ask */
	char mine[128];
	tmp_owner(mine);
	const char *host = strchr(mine, '@') + 1;
	/* another host's writer is judged by the sessions alone */
	if (len - 4 - (size_t)at != strlen(host) || strncmp(base + at, host, strlen(host)) != 0) return 0;
	return io_proc_alive((pid_t)pid, start);
}

int io_atomic_begin(io_atomic *a, int dirfd, const char *tmpdir, const char *name,
                    const char *what)
{
	uint8_t rnd[12];
	char rhex[25];
	memset(a, 0, sizeof(*a));
	a->fd = -1;
	a->dirfd = dirfd;
	a->what = what;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return error_errno(CAIRN_EIO, errno, "%s: getrandom", what);
	for (int i = 0; i < 12; i++) snprintf(rhex + 2 * i, 3, "%02x", rnd[i]);
	char owner[128];
	tmp_owner(owner);
	snprintf(a->tmp, sizeof(a->tmp), "%s/%s.%s.tmp", tmpdir, rhex, owner);
	if (!(a->name = strdup(name))) return ERR_OOM();
	if (!what) a->what = a->name;
	int rc = make_parents(dirfd, name, a->what);
	if (rc < 0) goto fail;
	a->fd = openat(dirfd, a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (a->fd < 0) {
		rc = error_errno(CAIRN_EIO, errno, "%s: create %s", a->what, a->tmp);
		goto fail;
	}
	return 0;
fail:
	free(a->name);
	a->name = NULL;
	return rc;
}

int io_atomic_append(io_atomic *a, const void *data, size_t len)
{
	int rc = io_write_full(a->fd, data, len, a->what);
	if (rc < 0) return rc;
	a->written += len;
	if (a->written - a->synced >= WRITEBACK_STEP) {
		/* only starts writeback (no wait): a hint, so its failure is not fatal */
		(void)sync_file_range(a->fd, (off_t)a->synced, (off_t)(a->written - a->synced),
		                      SYNC_FILE_RANGE_WRITE);
		a->synced = a->written;
	}
	return 0;
}

void io_atomic_abort(io_atomic *a)
{
	if (a->fd >= 0) close(a->fd);
	if (a->name) unlinkat(a->dirfd, a->tmp, 0);
	free(a->name);
	a->fd = -1;
	a->name = NULL;
}

int io_atomic_commit(io_atomic *a, int excl)
{
	int rc, pfd = -1;
	char parent[4096];
	const char *what = a->what;
	if ((rc = do_fsync(a->fd, what)) < 0) goto fail;
	/* clean after the fsync, so they go now; a hint, so its failure is not fatal */
	if (a->uncached) (void)posix_fadvise(a->fd, 0, 0, POSIX_FADV_DONTNEED);
	close(a->fd);
	a->fd = -1;

	int f = io_fault("rename");
	if (f < 0) {
		rc = error_errno(CAIRN_EIO, f == -1000 ? EIO : -f, "%s: rename", what);
		goto fail;
	}
	if (excl) {
		/* link(2) never replaces: the create-only commit point */
		if (linkat(a->dirfd, a->tmp, a->dirfd, a->name, 0) < 0) {
			int e = errno;
			if (e == EEXIST) rc = error_set(CAIRN_EEXISTS, "%s: already exists", what);
			else rc = error_errno(CAIRN_EIO, e, "%s: link into place", what);
			goto fail;
		}
		unlinkat(a->dirfd, a->tmp, 0);
	} else if (renameat(a->dirfd, a->tmp, a->dirfd, a->name) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "%s: rename into place", what);
		goto fail;
	}

	parent_of(parent, sizeof(parent), a->name);
	pfd = openat(a->dirfd, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0) rc = error_errno(CAIRN_EIO, errno, "%s: open %s", what, parent);
	else rc = do_fsync(pfd, what);
	if (pfd >= 0) close(pfd);
	free(a->name);
	a->name = NULL;
	return rc;
fail:
	io_atomic_abort(a);
	return rc;
}

int io_write_atomic(int dirfd, const char *tmpdir, const char *name, const void *data, size_t len,
                    int excl, const char *what)
{
	io_atomic a;
	int rc = io_atomic_begin(&a, dirfd, tmpdir, name, what);
	if (rc < 0) return rc;
	if ((rc = io_atomic_append(&a, data, len)) < 0) {
		io_atomic_abort(&a);
		return rc;
	}
	return io_atomic_commit(&a, excl);
}

int io_pread_full(int fd, void *data, size_t len, uint64_t off, const char *what)
{
	uint8_t *p = data;
	while (len > 0) {
		int f = io_fault("read");
		if (f < 0) return error_errno(CAIRN_EIO, f == -1000 ? EIO : -f, "%s: read", what);
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR) continue;
			return error_errno(CAIRN_EIO, errno, "%s: read at offset %llu", what,
			                   (unsigned long long)off);
		}
		if (n == 0)
			return error_set(CAIRN_ECORRUPT, "%s: truncated (read past end at offset %llu)",
			                 what, (unsigned long long)off);
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int io_read_all(int dirfd, const char *name, size_t max, uint8_t **out, size_t *len,
                const char *what)
{
	int rc = 0;
	uint8_t *data = NULL;
	struct stat st;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	*out = NULL;
	*len = 0;
	if (fd < 0) {
		if (errno == ENOENT) return error_set(CAIRN_ENOTFOUND, "%s: not found", what);
		return error_errno(CAIRN_EIO, errno, "%s: open", what);
	}
	if (fstat(fd, &st) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "%s: stat", what);
		goto done;
	}
	if ((uint64_t)st.st_size > max) {
		rc = error_set(CAIRN_ECORRUPT, "%s: too large (%lld bytes)", what, (long long)st.st_size);
		goto done;
	}
	data = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!data) {
		rc = ERR_OOM();
		goto done;
	}
	if ((rc = io_pread_full(fd, data, (size_t)st.st_size, 0, what)) < 0) goto done;
	*out = data;
	*len = (size_t)st.st_size;
	data = NULL;
done:
	free(data);
	close(fd);
	return rc;
}

int io_proc_start(pid_t pid, uint64_t *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int err = errno;
	close(fd);
	if (n <= 0) return n < 0 ? -err : -ENOENT;
	buf[n] = 0;
	/* the name (field 2) may hold spaces and parentheses: count from its end */
	char *p = strrchr(buf, ')');
	if (!p) return -EINVAL;
	p++;
	if (p[0] == ' ' && (p[1] == 'Z' || p[1] == 'X')) return -ESRCH; /* dead, not yet reaped */
	for (int field = 2; field < 21; field++) {
		p = strchr(p + 1, ' ');
		if (!p) return -EINVAL;
	}
	char *end;
	unsigned long long v = strtoull(p + 1, &end, 10);
	if (end == p + 1) return -EINVAL;
	*start = v;
	return 0;
}

int io_proc_alive(pid_t pid, uint64_t start)
{
	uint64_t now;
	return pid > 0 && io_proc_start(pid, &now) == 0 && now == start;
}

int io_mkdir_parents(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0 || errno == EEXIST) return 0;
	if (errno != ENOENT) return -1;
	char *copy = strdup(path);
	if (!copy) return -1;
	char *slash = strrchr(copy, '/');
	while (slash && slash > copy && slash[-1] == '/') slash--;
	int rc = -1;
	if (slash && slash != copy) {
		*slash = 0;
		if (io_mkdir_parents(copy, 0755) == 0) rc = mkdir(path, mode) == 0 || errno == EEXIST ? 0 : -1;
	}
	int err = errno;
	free(copy);
	errno = err;
	return rc;
}

int io_random(void *out, size_t len)
{
	uint8_t *p = out;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR) continue;
			return error_errno(CAIRN_EIO, errno, "getrandom");
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
