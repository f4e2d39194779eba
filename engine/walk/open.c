/* The walker (internal.h): walk_open: opening a file the walk found, by its
 * path relative to the root, never following a link. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "cairn.h"
#include "error.h"

static atomic_int no_openat2;

static int open_final(int dirfd, const char *name)
{
	int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
	int fd = openat(dirfd, name, flags | O_NOATIME);
	if (fd < 0 && errno == EPERM) fd = openat(dirfd, name, flags);
	return fd;
}

/* One openat2 refusing symlinks and escapes; -1 with errno, or ENOSYS-like
 * errnos when the caller should descend by hand. */
static int open_resolved(int rootfd, const char *rel)
{
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
	int fd = -1;
	for (int tries = 0; tries < 4; tries++) {
		how.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOATIME;
		fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
		if (fd < 0 && errno == EPERM) {
			how.flags &= ~(uint64_t)O_NOATIME;
			fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
		}
		if (fd >= 0 || errno != EAGAIN) break; /* EAGAIN: a racing rename; retry */
	}
	return fd;
}

int walk_open(int rootfd, const walk_node *n)
{
	char *path = NULL;
	const walk_node **chain = NULL;
	int fd = -1, dfd = rootfd, err = 0, rc;
	size_t depth = 0;
	for (const walk_node *p = n; p->parent; p = p->parent) depth++;
	path = walk_path(n);
	if (!path) {
		rc = ERR_OOM();
		goto done;
	}
	if (!depth) {
		rc = error_set(CAIRN_EUSAGE, "walk_open: the root is not a regular file");
		goto done;
	}
	int fallback = 1;
	if (strlen(path) < PATH_MAX && !atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
		fd = open_resolved(rootfd, path);
		err = errno;
		fallback = 0;
		if (fd < 0 && (err == ENOSYS || err == EAGAIN || err == E2BIG || err == EINVAL)) {
			if (err == ENOSYS) atomic_store_explicit(&no_openat2, 1, memory_order_relaxed);
			fallback = 1;
		}
	}
	if (fallback) {
		/* Descend one component at a time: O_PATH fds, never following a
		 * symlink, so any depth works and nothing escapes the root. */
		chain = malloc(depth * sizeof(*chain));
		if (!chain) {
			rc = ERR_OOM();
			goto done;
		}
		size_t i = depth;
		for (const walk_node *p = n; p->parent; p = p->parent) chain[--i] = p;
		fd = -1;
		err = 0;
		for (i = 0; i + 1 < depth; i++) {
			int nfd = openat(dfd, chain[i]->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			err = errno;
			if (dfd != rootfd) close(dfd);
			dfd = nfd;
			if (nfd < 0) break;
		}
		if (dfd >= 0) {
			fd = open_final(dfd, n->name);
			err = errno;
		}
	}
	if (fd < 0) {
		rc = error_errno(err == ENOENT ? CAIRN_ENOTFOUND : CAIRN_EIO, err, "open %s", path);
		goto done;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "open %s: fstat", path);
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = error_set(CAIRN_EIO, "open %s: no longer a regular file", path);
		goto done;
	}
	/* O_NONBLOCK only guarded against a FIFO swapped in; reads want blocking */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "open %s: fcntl", path);
		goto done;
	}
	rc = fd;
	fd = -1;
done:
	if (fd >= 0) close(fd);
	if (dfd >= 0 && dfd != rootfd) close(dfd);
	free(chain);
	free(path);
	return rc;
}
