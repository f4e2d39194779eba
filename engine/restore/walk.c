/* Restore (internal.h): pass 1: the trees walked depth-first, directories,
 * symlinks and special files created, what is in the way removed. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "error.h"

/* A directory being removed: its stream while open, its identity. */
typedef struct rmlevel {
	DIR *dp;
	char *name;
	dev_t dev;
	ino_t ino;
} rmlevel;

/* Open directory name in parentfd to remove what it holds, never following a
 * symlink nor entering another filesystem. */
static int rm_open(int parentfd, const char *name, dev_t dev, rmlevel *l)
{
	struct stat sb;
	int rc, fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	memset(l, 0, sizeof(*l));
	if (fd < 0) return error_errno(CAIRN_EIO, errno, "open %s", name);
	if (fstat(fd, &sb) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "stat %s", name);
		close(fd);
		return rc;
	}
	if (sb.st_dev != dev) {
		close(fd);
		return error_set(CAIRN_EIO, "%s: a mount point is in the way", name);
	}
	if (!(l->name = strdup(name))) {
		close(fd);
		return ERR_OOM();
	}
	if (!(l->dp = fdopendir(fd))) {
		rc = error_errno(CAIRN_EIO, errno, "open %s", name);
		close(fd);
		free(l->name);
		return rc;
	}
	l->dev = sb.st_dev;
	l->ino = sb.st_ino;
	return 0;
}

/* The level above l, closed since (lv[lo..] are open): reopened through
 * "..", which must still be the directory it was. Read again from its
 * start, it holds only what is left to remove. */
static int rm_reopen_parent(rmlevel *l, rmlevel *up)
{
	struct stat sb;
	int fd = openat(dirfd(l->dp), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) return error_errno(CAIRN_EIO, errno, "open %s/..", l->name);
	if (fstat(fd, &sb) < 0 || sb.st_dev != up->dev || sb.st_ino != up->ino) {
		close(fd);
		return error_set(CAIRN_EIO, "%s: moved or replaced while it was being removed", up->name);
	}
	if (!(up->dp = fdopendir(fd))) {
		int rc = error_errno(CAIRN_EIO, errno, "open %s", up->name);
		close(fd);
		return rc;
	}
	return 0;
}

/* Remove everything in directory name in parentfd (not name itself), never
 * following symlinks nor crossing into another filesystem. Depth first, the
 * levels on a heap stack with at most REMOVE_FDS of them open: any depth
 * costs memory, not C stack or fds. */
static int remove_tree(int parentfd, const char *name, dev_t dev)
{
	size_t n = 0, lo = 0, cap = 16;
	rmlevel *lv = malloc(cap * sizeof(*lv));
	if (!lv) return ERR_OOM();
	int rc = rm_open(parentfd, name, dev, &lv[0]);
	if (rc == 0) n = 1;
	while (rc == 0 && n > 0) {
		rmlevel *l = &lv[n - 1];
		int fd = dirfd(l->dp);
		errno = 0;
		struct dirent *de = readdir(l->dp);
		if (!de && errno) {
			rc = error_errno(CAIRN_EIO, errno, "read %s", l->name);
			break;
		}
		if (!de) { /* empty: its parent removes it */
			if (n == 1) break;
			rmlevel *up = &lv[n - 2];
			if (!up->dp) {
				if ((rc = rm_reopen_parent(l, up)) < 0) break;
				lo = n - 2;
			}
			closedir(l->dp);
			l->dp = NULL;
			if (unlinkat(dirfd(up->dp), l->name, AT_REMOVEDIR) < 0)
				rc = error_errno(CAIRN_EIO, errno, "remove %s", l->name);
			free(l->name);
			n--;
			continue;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
		int isdir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) {
			struct stat cs;
			if (fstatat(fd, de->d_name, &cs, AT_SYMLINK_NOFOLLOW) < 0) {
				rc = error_errno(CAIRN_EIO, errno, "stat %s", de->d_name);
				break;
			}
			isdir = S_ISDIR(cs.st_mode);
		}
		if (!isdir) {
			if (unlinkat(fd, de->d_name, 0) < 0) rc = error_errno(CAIRN_EIO, errno, "remove %s", de->d_name);
			continue;
		}
		if (n == cap) {
			rmlevel *nl = realloc(lv, (cap *= 2) * sizeof(*lv));
			if (!nl) {
				rc = ERR_OOM();
				break;
			}
			lv = nl;
		}
		if ((rc = rm_open(fd, de->d_name, dev, &lv[n])) < 0) break;
		n++;
		if (n - lo > REMOVE_FDS) {
			closedir(lv[lo].dp);
			lv[lo++].dp = NULL;
		}
	}
	while (n > 0) {
		if (lv[--n].dp) closedir(lv[n].dp);
		free(lv[n].name);
	}
	free(lv);
	return rc;
}

/* With --force, in a directory that existed before: clear what is in the way
 * of name. *reuse = 1 when an existing directory can take a directory's place. */
static int clear_way(rstate *st, dctx *d, const tree_entry *e, int *reuse)
{
	struct stat sb;
	*reuse = 0;
	if (fstatat(d->fd, e->name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT) return 0;
		return restore_sys_fail(st, 0, d->dir, e->name, "stat");
	}
	if (S_ISDIR(sb.st_mode)) {
		if (e->type == TREE_DIR) {
			*reuse = 1;
			return 0;
		}
		int rc = remove_tree(d->fd, e->name, sb.st_dev);
		if (rc < 0) return restore_fail_at(st, 0, d->dir, e->name, rc);
		if (unlinkat(d->fd, e->name, AT_REMOVEDIR) < 0)
			return restore_sys_fail(st, 0, d->dir, e->name, "remove");
		return 0;
	}
	if (unlinkat(d->fd, e->name, 0) < 0) return restore_sys_fail(st, 0, d->dir, e->name, "remove");
	return 0;
}

/* Metadata of a symlink or special file just created in d: through the
 * directory fd, never following the name. */
static int meta_at(rstate *st, dctx *d, const tree_entry *e)
{
	char proc[64 + MAX_NAME_LEN];
	if (fchownat(d->fd, e->name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0 && !restore_tolerable(st, errno))
		return error_errno(CAIRN_EIO, errno, "chown %u:%u", e->uid, e->gid);
	/* no fd-based lsetxattr: reach the name through the directory's fd */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", d->fd, e->name);
	for (uint32_t i = 0; i < e->nxattrs; i++)
		if (lsetxattr(proc, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].value_len, 0) < 0 &&
		    !restore_tolerable(st, errno))
			return error_errno(CAIRN_EIO, errno, "set xattr %s", e->xattrs[i].name);
	if (e->type != TREE_SYMLINK &&
	    fchmodat(d->fd, e->name, e->mode & 07777, AT_SYMLINK_NOFOLLOW) < 0)
		return error_errno(CAIRN_EIO, errno, "chmod %o", e->mode & 07777);
	struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec}, {e->mtime_sec, e->mtime_nsec}};
	if (utimensat(d->fd, e->name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return error_errno(CAIRN_EIO, errno, "set times");
	return 0;
}

typedef struct frame {
	dctx *d;
	size_t next;
	int fresh;     /* created by us: nothing can be in the way */
	int64_t item;  /* its item in rstate.items (-1: the target) */
	fbatch *batch; /* small files of d not queued yet */
} frame;

/* Queue f's batch of small files. Before the walk leaves f's directory
 * (for a subdirectory, or for good): a parked directory's fd is closed only
 * once no queued job needs it, and an unqueued batch holds no reference. */
static void flush_batch(rstate *st, frame *f)
{
	if (!f->batch) return;
	restore_enqueue(st, f->d, 0, 0, f->batch);
	f->batch = NULL;
}

static int batch_add(rstate *st, frame *f, uint32_t i, uint32_t item)
{
	if (!f->batch && !(f->batch = calloc(1, sizeof(*f->batch)))) return ERR_OOM();
	fbatch *b = f->batch;
	b->idx[b->n] = i;
	b->item[b->n] = item;
	b->n++;
	b->bytes += f->d->t.entries[i].size;
	if (b->n == BATCH_FILES || b->bytes >= BATCH_BYTES) flush_batch(st, f);
	return 0;
}

typedef struct walk {
	frame *f;
	size_t n, cap;
} walk;

/* Close the fd of directory d, far above the one being walked, once no
 * queued file of d needs it; d is known by its identity until unpark_dir. */
static int park_dir(rstate *st, dctx *d)
{
	struct stat sb;
	pthread_mutex_lock(&st->mu);
	while (atomic_load(&d->refs) > 1 && !atomic_load(&st->stop)) {
		restore_wait_a_bit(st, &st->cv_space);
		pthread_mutex_unlock(&st->mu);
		restore_progress(st);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	if (atomic_load(&st->stop)) return 0; /* the walk ends at once */
	if (fstat(d->fd, &sb) < 0) return restore_sys_fail(st, 0, d->dir, NULL, "stat");
	d->dev = sb.st_dev;
	d->ino = sb.st_ino;
	close(d->fd);
	d->fd = -1;
	unreserve_dir(st);
	return 0;
}

/* The walk is back in parked directory d from its subdirectory at childfd. */
static int unpark_dir(rstate *st, dctx *d, int childfd)
{
	reserve_dir(st);
	int rc = restore_open_parent(st, childfd, d->dir, d->dev, d->ino, &d->fd);
	if (rc < 0) unreserve_dir(st);
	return rc;
}

static int push_dir(rstate *st, walk *w, int fd, uint32_t dir, const oid *subtree, int fresh,
                    int64_t item)
{
	int rc;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		frame *n = realloc(w->f, cap * sizeof(*n));
		if (!n) {
			close(fd);
			return ERR_OOM();
		}
		w->f = n;
		w->cap = cap;
	}
	dctx *d = calloc(1, sizeof(*d));
	if (!d) {
		close(fd);
		return ERR_OOM();
	}
	atomic_init(&d->refs, 1);
	d->fd = fd;
	d->dir = dir;
	reserve_dir(st);
	if ((rc = repo_load_tree(st->repo, subtree, &d->t)) < 0) {
		close(fd);
		free(d);
		unreserve_dir(st);
		return restore_fail_at(st, 0, dir, NULL, rc);
	}
	w->f[w->n++] = (frame){d, 0, fresh, item, NULL};
	/* WALK_FDS open above the new top at most, whatever the depth */
	if (w->n > WALK_FDS && w->f[w->n - 1 - WALK_FDS].d->fd >= 0)
		return park_dir(st, w->f[w->n - 1 - WALK_FDS].d);
	return 0;
}

/* The next item of the restore record: a file's inode comes later, from
 * the worker that writes it; a directory's count when it is done. Only
 * this thread adds items; workers write theirs under mu, so the list moves
 * (grows) under mu too: rarely, as it is sized from the manifest. */
static int64_t push_item(rstate *st, uint8_t kind)
{
	int locked = st->items.n == st->items.cap;
	if (locked) pthread_mutex_lock(&st->mu);
	int64_t at = inodes_push(&st->items, kind, 0, 0, 0);
	if (locked) pthread_mutex_unlock(&st->mu);
	return at;
}

static int restore_entry(rstate *st, walk *w, frame *f, uint32_t i)
{
	dctx *d = f->d;
	const tree_entry *e = &d->t.entries[i];
	int rc, reuse = 0;
	int64_t item = -1;
	if (e->type == TREE_REG || e->type == TREE_DIR) {
		item = push_item(st, e->type == TREE_REG ? INODE_REG : INODE_DIR);
		if (item < 0) return (int)item;
	}

	if (!tree_name_ok(e->name, e->name_len) || strlen(e->name) != e->name_len) {
		rc = error_set(CAIRN_ECORRUPT, "entry %u: invalid name", i);
		return restore_fail_at(st, 0, d->dir, NULL, rc);
	}
	if (!f->fresh && (rc = clear_way(st, d, e, &reuse)) < 0) return rc;

	if (e->hardlink && e->type != TREE_DIR) {
		if (hl_find(st, e->hardlink)) return link_add(st, e->hardlink, d->dir, e->name, e->type);
		if ((rc = hl_insert(st, e->hardlink, d->dir, e->name)) < 0) return rc;
	}

	switch (e->type) {
	case TREE_REG: { /* hardlinked: links change the ctime later, so it stays out of the record */
		uint32_t rec = e->hardlink ? UINT32_MAX : (uint32_t)item;
		if (e->size < BATCH_FILE_MAX) return batch_add(st, f, i, rec);
		restore_enqueue(st, d, i, rec, NULL);
		return 0;
	}
	case TREE_DIR: {
		uint32_t idx = 0;
		flush_batch(st, f);
		if (!reuse && mkdirat(d->fd, e->name, 0700) < 0)
			return restore_sys_fail(st, 0, d->dir, e->name, "mkdir");
		if ((rc = restore_dir_add(st, d->dir, e, &idx)) < 0) return rc;
		int fd = openat(d->fd, e->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) return restore_sys_fail(st, 0, d->dir, e->name, "open");
		st->dirs_done++;
		return push_dir(st, w, fd, idx, &e->subtree, !reuse, item);
	}
	case TREE_SYMLINK:
		if (!e->target || e->target_len == 0 || strlen(e->target) != e->target_len) {
			rc = error_set(CAIRN_ECORRUPT, "bad symlink target");
			return restore_fail_at(st, 0, d->dir, e->name, rc);
		}
		if (symlinkat(e->target, d->fd, e->name) < 0)
			return restore_sys_fail(st, 0, d->dir, e->name, "symlink");
		st->symlinks++;
		break;
	case TREE_FIFO:
		if (mkfifoat(d->fd, e->name, 0600) < 0) return restore_sys_fail(st, 0, d->dir, e->name, "mkfifo");
		st->specials++;
		break;
	case TREE_CHR:
	case TREE_BLK: {
		mode_t m = (e->type == TREE_CHR ? S_IFCHR : S_IFBLK) | 0600;
		if (mknodat(d->fd, e->name, m, makedev(e->rdev_major, e->rdev_minor)) < 0)
			return restore_sys_fail(st, 0, d->dir, e->name, "mknod");
		st->specials++;
		break;
	}
	default:
		rc = error_set(CAIRN_ECORRUPT, "unknown entry type %u", e->type);
		return restore_fail_at(st, 0, d->dir, e->name, rc);
	}
	if ((rc = meta_at(st, d, e)) < 0) return restore_fail_at(st, 0, d->dir, e->name, rc);
	return 0;
}

int walk_trees(rstate *st, const oid *root_tree, int fresh)
{
	walk w = {NULL, 0, 0};
	int rc, fd = fcntl(st->rootfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) return error_errno(CAIRN_EIO, errno, "target: dup");
	rc = push_dir(st, &w, fd, 0, root_tree, fresh, -1);
	while (rc == 0 && w.n > 0) {
		if (atomic_load(&st->stop)) break;
		frame *f = &w.f[w.n - 1];
		if (f->next == f->d->t.n) {
			flush_batch(st, f);
			if (f->item >= 0) st->items.v[f->item].value = st->items.n - (size_t)f->item - 1;
			if (w.n > 1 && w.f[w.n - 2].d->fd < 0) rc = unpark_dir(st, w.f[w.n - 2].d, f->d->fd);
			dctx_release(st, f->d);
			w.n--;
			continue;
		}
		rc = restore_entry(st, &w, f, (uint32_t)f->next++);
		restore_progress(st);
	}
	while (w.n > 0) {
		free(w.f[--w.n].batch);
		dctx_release(st, w.f[w.n].d);
	}
	free(w.f);
	return rc;
}
