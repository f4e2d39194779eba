/* Directory backend of the storage interface. Objects are files under the
 * repository directory; writes go through io (tmp + fsync + rename + dir
 * fsync); ranged reads share a small cache of open descriptors. */
#include "store_backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"
#include "io.h"

#define FD_CACHE 64

struct fd_slot {
	char name[96];
	int fd;
	uint64_t used; /* LRU clock */
	int pins;      /* readers using fd now: never closed while > 0 */
};

typedef struct dir_store {
	store base;
	int rootfd;
	char *path;
	pthread_mutex_t lock;
	struct fd_slot fds[FD_CACHE];
	uint64_t clock;
} dir_store;

static const store_ops dir_ops;

/* Folders a new repository starts with (format.h, "Repository layout"). */
static const char *const layout[] = {"packs", "index", "snapshots", "tmp", "locks"};

static void dir_free(store *base)
{
	dir_store *st = (dir_store *)base;
	for (int i = 0; i < FD_CACHE; i++)
		if (st->fds[i].fd >= 0) close(st->fds[i].fd);
	close(st->rootfd);
	pthread_mutex_destroy(&st->lock);
	free(st->path);
	free(st);
}

int store_dir_open(store **out, const char *path, int create)
{
	*out = NULL;
	if (create && mkdir(path, 0755) < 0 && errno != EEXIST)
		return error_errno(error_from_errno(errno), errno, "repository %s: mkdir", path);
	dir_store *st = calloc(1, sizeof(*st));
	if (!st) return ERR_OOM();
	st->base.ops = &dir_ops;
	st->rootfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->rootfd < 0) {
		int e = errno;
		free(st);
		if (e == ENOENT) return error_set(CAIRN_ENOTFOUND, "repository %s: no such directory", path);
		if (e == ENOTDIR) return error_set(CAIRN_ENOTFOUND, "repository %s: not a directory", path);
		return error_errno(CAIRN_EIO, e, "repository %s: open", path);
	}
	st->path = strdup(path);
	pthread_mutex_init(&st->lock, NULL);
	for (int i = 0; i < FD_CACHE; i++) st->fds[i].fd = -1;
	int rc = 0;
	for (size_t i = 0; create && rc == 0 && i < sizeof(layout) / sizeof(layout[0]); i++)
		if (mkdirat(st->rootfd, layout[i], 0755) < 0 && errno != EEXIST)
			rc = error_errno(CAIRN_EIO, errno, "repository %s: mkdir %s", path, layout[i]);
	if (create && rc == 0) rc = io_fsync_dir(st->rootfd, path);
	if (rc < 0) {
		dir_free(&st->base);
		return rc;
	}
	*out = &st->base;
	return 0;
}


static int dir_put(store *base, const char *name, const void *data, size_t len, unsigned flags)
{
	dir_store *st = (dir_store *)base;
	return io_write_atomic(st->rootfd, "tmp", name, data, len, (flags & STORE_EXCL) != 0, name);
}

static int dir_get(store *base, const char *name, size_t max, uint8_t **out, size_t *len)
{
	dir_store *st = (dir_store *)base;
	return io_read_all(st->rootfd, name, max, out, len, name);
}

/* A descriptor for name: from the cache (pinned until fd_release) or, when
 * every slot is pinned, a private one. */
typedef struct fd_ref {
	int fd;
	struct fd_slot *slot; /* NULL for a private descriptor */
} fd_ref;

static int fd_acquire(dir_store *st, const char *name, fd_ref *ref)
{
	int cacheable = strlen(name) < sizeof(st->fds[0].name);
	pthread_mutex_lock(&st->lock);
	struct fd_slot *victim = NULL;
	for (int i = 0; cacheable && i < FD_CACHE; i++) {
		struct fd_slot *s = &st->fds[i];
		if (s->fd >= 0 && strcmp(s->name, name) == 0) {
			s->used = ++st->clock;
			s->pins++;
			pthread_mutex_unlock(&st->lock);
			*ref = (fd_ref){s->fd, s};
			return 0;
		}
		if (s->pins == 0 && (!victim || s->used < victim->used)) victim = s;
	}
	pthread_mutex_unlock(&st->lock);

	int fd = openat(st->rootfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) return error_set(CAIRN_ECORRUPT, "%s: missing", name);
		return error_errno(CAIRN_EIO, errno, "%s: open", name);
	}
	*ref = (fd_ref){fd, NULL};
	if (!victim) return 0;
	pthread_mutex_lock(&st->lock);
	if (victim->pins == 0) { /* still free: cache this descriptor */
		if (victim->fd >= 0) close(victim->fd);
		snprintf(victim->name, sizeof(victim->name), "%s", name);
		victim->fd = fd;
		victim->used = ++st->clock;
		victim->pins = 1;
		ref->slot = victim;
	}
	pthread_mutex_unlock(&st->lock);
	return 0;
}

static void fd_release(dir_store *st, fd_ref *ref)
{
	if (!ref->slot) {
		close(ref->fd);
		return;
	}
	pthread_mutex_lock(&st->lock);
	ref->slot->pins--;
	pthread_mutex_unlock(&st->lock);
}

static int dir_get_range(store *base, const char *name, uint64_t off, void *out, size_t len)
{
	dir_store *st = (dir_store *)base;
	fd_ref ref = {-1, NULL};
	int rc = fd_acquire(st, name, &ref);
	if (rc < 0) return rc;
	rc = io_pread_full(ref.fd, out, len, off, name);
	fd_release(st, &ref);
	return rc;
}

static void dir_uncache(store *base, const char *name, uint64_t off, size_t len)
{
	dir_store *st = (dir_store *)base;
	fd_ref ref = {-1, NULL};
	if (fd_acquire(st, name, &ref) < 0) {
		error_clear(); /* only a hint */
		return;
	}
	(void)posix_fadvise(ref.fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	fd_release(st, &ref);
}

/* Linux reads at most the device's read-ahead window (or its largest
 * request, if larger) of one WILLNEED: a larger range is asked for in
 * steps of the smallest default window. */
#define ADVISE_STEP (128u * 1024u)

/* The kernel reads the range into the page cache in the background. */
static int dir_advise(store *base, const char *name, uint64_t off, size_t len)
{
	dir_store *st = (dir_store *)base;
	fd_ref ref = {-1, NULL};
	int rc = fd_acquire(st, name, &ref);
	if (rc < 0) return rc;
	int e = 0;
	for (size_t done = 0; done < len && !e;) {
		size_t n = len - done < ADVISE_STEP ? len - done : ADVISE_STEP;
		e = posix_fadvise(ref.fd, (off_t)(off + done), (off_t)n, POSIX_FADV_WILLNEED);
		done += n;
	}
	fd_release(st, &ref);
	return e ? error_errno(CAIRN_EIO, e, "%s: advise", name) : 0;
}

#define DIRECT_BLOCK CAIRN_BACKEND_DIRECT_ALIGN

/* O_DIRECT into out (aligned, room for len + 2 blocks): the blocks around
 * [off, off + len). 1 when the file system refuses O_DIRECT (EINVAL), and
 * the caller reads through the cache. */
static int dir_get_range_direct(store *base, const char *name, uint64_t off, void *out, size_t len)
{
	dir_store *st = (dir_store *)base;
	uint64_t from = off / DIRECT_BLOCK * DIRECT_BLOCK;
	size_t need = (size_t)(off + len - from);
	size_t want = (need + DIRECT_BLOCK - 1) / DIRECT_BLOCK * DIRECT_BLOCK, got = 0;
	uint8_t *p = out;
	int fd = openat(st->rootfd, name, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (fd < 0) {
		if (errno == EINVAL) return 1;
		if (errno == ENOENT) return error_set(CAIRN_ECORRUPT, "%s: missing", name);
		return error_errno(CAIRN_EIO, errno, "%s: open", name);
	}
	int rc = 0;
	while (got < need) {
		int f = io_fault("read");
		if (f < 0) {
			rc = error_errno(CAIRN_EIO, f == -1000 ? EIO : -f, "%s: read", name);
			break;
		}
		ssize_t n = pread(fd, p + got, want - got, (off_t)(from + got));
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && errno == EINVAL) {
			rc = 1;
			break;
		}
		if (n < 0) {
			rc = error_errno(CAIRN_EIO, errno, "%s: read at offset %llu", name,
			                 (unsigned long long)(from + got));
			break;
		}
		if (n == 0) {
			rc = error_set(CAIRN_ECORRUPT, "%s: truncated (read past end at offset %llu)", name,
			               (unsigned long long)(from + got));
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	return rc;
}

static int dir_size(store *base, const char *name, uint64_t *size)
{
	dir_store *st = (dir_store *)base;
	struct stat sb;
	int f = io_fault("stat");
	if (f < 0) return error_errno(CAIRN_EIO, -f, "%s: stat", name);
	if (fstatat(st->rootfd, name, &sb, 0) < 0) {
		if (errno == ENOENT) return error_set(CAIRN_ENOTFOUND, "%s: not found", name);
		return error_errno(CAIRN_EIO, errno, "%s: stat", name);
	}
	*size = (uint64_t)sb.st_size;
	return 0;
}

static int list_dir(dir_store *st, const char *dir, int (*cb)(const char *, void *), void *payload)
{
	int rc = 0;
	int fd = openat(st->rootfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) return 0;
		return error_errno(CAIRN_EIO, errno, "%s: open", dir);
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return error_errno(CAIRN_EIO, errno, "%s: opendir", dir);
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.') continue; /* ".", "..", and hidden leftovers */
		char name[4096];
		snprintf(name, sizeof(name), "%s/%s", dir, de->d_name);
		int is_dir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) {
			struct stat sb;
			is_dir = fstatat(st->rootfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode);
		}
		rc = is_dir ? list_dir(st, name, cb, payload) : cb(name, payload);
		if (rc != 0) break;
	}
	if (rc == 0 && errno != 0) rc = error_errno(CAIRN_EIO, errno, "%s: readdir", dir);
	closedir(d);
	return rc;
}

static int dir_list(store *base, const char *dir, int (*cb)(const char *name, void *payload),
                    void *payload)
{
	return list_dir((dir_store *)base, dir, cb, payload);
}

static int dir_delete(store *base, const char *name)
{
	dir_store *st = (dir_store *)base;
	if (unlinkat(st->rootfd, name, 0) < 0) {
		if (errno == ENOENT) return error_set(CAIRN_ENOTFOUND, "%s: not found", name);
		return error_errno(CAIRN_EIO, errno, "%s: delete", name);
	}
	/* evict a cached descriptor so the space is given back */
	pthread_mutex_lock(&st->lock);
	for (int i = 0; i < FD_CACHE; i++)
		if (st->fds[i].fd >= 0 && st->fds[i].pins == 0 && strcmp(st->fds[i].name, name) == 0) {
			close(st->fds[i].fd);
			st->fds[i].fd = -1;
			st->fds[i].used = 0;
		}
	pthread_mutex_unlock(&st->lock);
	return 0;
}

/* ---- locks ------------------------------------------------------------------
 * "locks/NAME" holds "token host pid expiry_ns"; it is created exclusively.
 * Taking over a stale lock is serialised by flock on locks/.takeover so that
 * two processes cannot both remove it and one remove the other's new lock. */

typedef struct dir_lock {
	store_lock base;
	dir_store *st;
	char name[160];
	char token[33];
	uint64_t ttl_ms;
} dir_lock;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int lock_write(dir_lock *l, int excl)
{
	char host[128] = "", body[320];
	gethostname(host, sizeof(host) - 1);
	int n = snprintf(body, sizeof(body), "%s %s %ld %llu\n", l->token, host, (long)getpid(),
	                 (unsigned long long)(now_ms() + l->ttl_ms));
	return io_write_atomic(l->st->rootfd, "tmp", l->name, body, (size_t)n, excl, l->name);
}

typedef struct lock_info {
	char token[33], host[128];
	long pid;
	uint64_t expiry_ms;
} lock_info;

/* 0, CAIRN_ENOTFOUND (gone), or a read error. A garbled lock reads as expired. */
static int lock_read(dir_store *st, const char *name, lock_info *li)
{
	uint8_t *data;
	size_t len;
	memset(li, 0, sizeof(*li));
	int rc = io_read_all(st->rootfd, name, 4096, &data, &len, name);
	if (rc < 0) return rc;
	char text[512];
	snprintf(text, sizeof(text), "%.*s", (int)(len < sizeof(text) ? len : sizeof(text) - 1), (char *)data);
	free(data);
	unsigned long long exp = 0;
	if (sscanf(text, "%32s %127s %ld %llu", li->token, li->host, &li->pid, &exp) != 4) exp = 0;
	li->expiry_ms = exp;
	return 0;
}

static int lock_stale(const lock_info *li)
{
	if (li->expiry_ms < now_ms()) return 1;
	char host[128] = "";
	gethostname(host, sizeof(host) - 1);
	return strcmp(host, li->host) == 0 && li->pid > 0 && kill((pid_t)li->pid, 0) < 0 && errno == ESRCH;
}

/* Remove name if it still holds the stale lock we judged. */
static void lock_take_over(dir_store *st, const char *name, const lock_info *seen)
{
	int fd = openat(st->rootfd, "locks/.takeover", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) return;
	if (flock(fd, LOCK_EX) == 0) {
		lock_info now;
		if (lock_read(st, name, &now) == 0 && strcmp(now.token, seen->token) == 0 && lock_stale(&now))
			unlinkat(st->rootfd, name, 0);
		flock(fd, LOCK_UN);
	}
	close(fd);
}

static int dir_lock_acquire(store_lock **out, store *base, const char *name, uint64_t ttl_ms,
                            uint64_t wait_ms)
{
	int rc;
	uint8_t rnd[16];
	*out = NULL;
	dir_lock *l = calloc(1, sizeof(*l));
	if (!l) return ERR_OOM();
	l->base.st = base;
	l->st = (dir_store *)base;
	dir_store *st = l->st;
	l->ttl_ms = ttl_ms;
	snprintf(l->name, sizeof(l->name), "locks/%s", name);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		free(l);
		return error_errno(CAIRN_EIO, errno, "lock %s: getrandom", name);
	}
	for (int i = 0; i < 16; i++) snprintf(l->token + 2 * i, 3, "%02x", rnd[i]);

	uint64_t deadline = now_ms() + wait_ms;
	lock_info li;
	for (;;) {
		rc = lock_write(l, 1);
		if (rc == 0) {
			*out = &l->base;
			return 0;
		}
		if (rc != CAIRN_EEXISTS) break;
		rc = lock_read(st, l->name, &li);
		if (rc == CAIRN_ENOTFOUND) continue; /* released meanwhile */
		if (rc < 0) break;
		if (lock_stale(&li)) {
			lock_take_over(st, l->name, &li);
			continue;
		}
		if (now_ms() >= deadline) {
			rc = error_set(CAIRN_EBUSY, "lock %s: held by process %ld on %s", name, li.pid, li.host);
			break;
		}
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	free(l);
	return rc;
}

static int dir_lock_refresh(store_lock *base)
{
	dir_lock *l = (dir_lock *)base;
	lock_info li;
	int rc = lock_read(l->st, l->name, &li);
	if (rc < 0 || strcmp(li.token, l->token) != 0)
		return error_set(CAIRN_EBUSY, "%s: lost to another process", l->name);
	return lock_write(l, 0);
}

static void dir_lock_release(store_lock *base)
{
	dir_lock *l = (dir_lock *)base;
	lock_info li;
	if (lock_read(l->st, l->name, &li) == 0 && strcmp(li.token, l->token) == 0)
		unlinkat(l->st->rootfd, l->name, 0);
	free(l);
}

/* ---- streamed writes ------------------------------------------------------ */

typedef struct dir_writer {
	store_writer base;
	io_atomic a;
} dir_writer;

static int dir_write_begin(store *base, const char *name, store_writer **out)
{
	dir_writer *w = calloc(1, sizeof(*w));
	if (!w) return ERR_OOM();
	int rc = io_atomic_begin(&w->a, ((dir_store *)base)->rootfd, "tmp", name, NULL);
	if (rc < 0) {
		free(w);
		return rc;
	}
	w->base.st = base;
	*out = &w->base;
	return 0;
}

static int dir_write_append(store_writer *base, const void *data, size_t len)
{
	return io_atomic_append(&((dir_writer *)base)->a, data, len);
}

static int dir_write_commit(store_writer *base, unsigned flags)
{
	dir_writer *w = (dir_writer *)base;
	w->a.uncached = (flags & STORE_UNCACHED) != 0;
	int rc = io_atomic_commit(&w->a, (flags & STORE_EXCL) != 0);
	free(w);
	return rc;
}

static void dir_write_abort(store_writer *base)
{
	dir_writer *w = (dir_writer *)base;
	io_atomic_abort(&w->a);
	free(w);
}

static const store_ops dir_ops = {
	.version = CAIRN_BACKEND_OPS_VERSION,
	.kind = "dir",
	.free = dir_free,
	.put = dir_put,
	.get = dir_get,
	.get_range = dir_get_range,
	.uncache = dir_uncache,
	.get_range_direct = dir_get_range_direct,
	.size = dir_size,
	.list = dir_list,
	.del = dir_delete,
	.write_begin = dir_write_begin,
	.write_append = dir_write_append,
	.write_commit = dir_write_commit,
	.write_abort = dir_write_abort,
	.lock_acquire = dir_lock_acquire,
	.lock_refresh = dir_lock_refresh,
	.lock_release = dir_lock_release,
	.advise = dir_advise,
};
