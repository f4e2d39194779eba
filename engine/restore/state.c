/* Restore (internal.h): the restore's shared state: progress, errors,
 * directories by index, hardlink groups, the directory cursor. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn.h"
#include "error.h"
#include "options.h"
#include "util.h"

void restore_progress(rstate *st)
{
	if (!st->opts->event_cb && !st->opts->event_cancel_cb) return;
	int64_t now = mono_ns();
	if (now - st->last_progress < PROGRESS_NS) return;
	st->last_progress = now;
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CAIRN_EVENT_PROGRESS;
	ev.files = atomic_load(&st->files);
	ev.bytes = atomic_load(&st->bytes);
	ev.total_files = st->total_files;
	ev.total_bytes = st->total_bytes;
	if (event_emit(st->opts->event_cb, st->opts->event_cancel_cb, st->opts->event_payload, &ev))
		restore_record_error(st, error_set(CAIRN_ECANCELED, "restore: canceled by the caller"));
}

/* Wait on cv for at most 100 ms (so the caller can report progress). mu held. */
void restore_wait_a_bit(rstate *st, pthread_cond_t *cv)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += PROGRESS_NS;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, &st->mu, &ts);
}

/* Keep the first failure (its message is thread-local) and stop everyone. */
void restore_record_error(rstate *st, int rc)
{
	pthread_mutex_lock(&st->mu);
	if (!st->err) {
		st->err = rc;
		snprintf(st->errmsg, sizeof(st->errmsg), "%s", cairn_error_last());
	}
	atomic_store(&st->stop, 1);
	pthread_cond_broadcast(&st->cv_work);
	pthread_cond_broadcast(&st->cv_space);
	pthread_mutex_unlock(&st->mu);
}

/* "/a/b" for directory idx ("" for the target), plus "/name" when name is
 * given; malloc'd (NULL when out of memory). For messages only: syscalls
 * never see whole paths. Callers other than the walking thread hold dirs_mu. */
static char *entry_path(const rstate *st, uint32_t idx, const char *name)
{
	size_t len = name ? strlen(name) + 1 : 0;
	for (uint32_t x = idx; x != 0; x = st->dirs[x].parent) len += st->dirs[x].name_len + 1u;
	char *p = malloc(len + 1);
	if (!p) return NULL;
	size_t at = len;
	p[at] = 0;
	if (name) {
		size_t n = strlen(name);
		at -= n;
		memcpy(p + at, name, n);
		p[--at] = '/';
	}
	for (uint32_t x = idx; x != 0; x = st->dirs[x].parent) {
		at -= st->dirs[x].name_len;
		memcpy(p + at, st->dirs[x].name, st->dirs[x].name_len);
		p[--at] = '/';
	}
	return p;
}

/* Prefix the current message with the path of dir/name. */
int restore_fail_at(rstate *st, int locked, uint32_t dir, const char *name, int rc)
{
	if (locked) pthread_mutex_lock(&st->dirs_mu);
	char *p = entry_path(st, dir, name);
	if (locked) pthread_mutex_unlock(&st->dirs_mu);
	const char *show = p ? p : name ? name : "/";
	size_t len = strlen(show);
	if (len == 0)
		error_prefix("/");
	else if (len > 400) /* keep room for the message itself */
		error_prefix("%.150s...%s", show, show + len - 200);
	else
		error_prefix("%s", show);
	free(p);
	return rc;
}

int restore_sys_fail(rstate *st, int locked, uint32_t dir, const char *name, const char *op)
{
	int err = errno;
	error_errno(err == ENOMEM ? CAIRN_ENOMEM : CAIRN_EIO, err, "%s", op);
	return restore_fail_at(st, locked, dir, name, err == ENOMEM ? CAIRN_ENOMEM : CAIRN_EIO);
}

/* Failures a non-root restore may ignore. */
int restore_tolerable(const rstate *st, int err)
{
	return st->lenient && (err == EPERM || err == EACCES);
}

/* Copy e's xattrs into one block that outlives e's tree. */
int restore_copy_xattrs(const tree_entry *e, tree_xattr **out)
{
	*out = NULL;
	if (e->nxattrs == 0) return 0;
	size_t size = (size_t)e->nxattrs * sizeof(tree_xattr);
	for (uint32_t i = 0; i < e->nxattrs; i++)
		size += (size_t)e->xattrs[i].name_len + 1 + e->xattrs[i].value_len;
	tree_xattr *x = malloc(size);
	if (!x) return ERR_OOM();
	char *p = (char *)(x + e->nxattrs);
	for (uint32_t i = 0; i < e->nxattrs; i++) {
		const tree_xattr *s = &e->xattrs[i];
		x[i] = *s;
		memcpy(p, s->name, s->name_len);
		p[s->name_len] = 0;
		x[i].name = p;
		p += s->name_len + 1;
		if (s->value_len) memcpy(p, s->value, s->value_len);
		x[i].value = (const uint8_t *)p;
		p += s->value_len;
	}
	*out = x;
	return 0;
}

int restore_dir_add(rstate *st, uint32_t parent, const tree_entry *e, uint32_t *idx)
{
	if (st->ndirs >= UINT32_MAX) return error_set(CAIRN_EIO, "too many directories");
	rdir d;
	memset(&d, 0, sizeof(d));
	d.parent = parent;
	d.depth = st->dirs[parent].depth + 1; /* only this thread adds to dirs */
	d.name_len = e->name_len;
	d.mode = e->mode;
	d.uid = e->uid;
	d.gid = e->gid;
	d.mtime_sec = e->mtime_sec;
	d.mtime_nsec = e->mtime_nsec;
	d.nxattrs = e->nxattrs;
	if (!(d.name = strndup(e->name, e->name_len))) return ERR_OOM();
	if (restore_copy_xattrs(e, &d.xattrs) < 0) {
		free(d.name);
		return ERR_OOM();
	}
	pthread_mutex_lock(&st->dirs_mu);
	if (st->ndirs == st->dirs_cap) {
		size_t cap = st->dirs_cap ? st->dirs_cap * 2 : 256;
		rdir *n = realloc(st->dirs, cap * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&st->dirs_mu);
			free(d.name);
			free(d.xattrs);
			return ERR_OOM();
		}
		st->dirs = n;
		st->dirs_cap = cap;
	}
	*idx = (uint32_t)st->ndirs;
	st->dirs[st->ndirs++] = d;
	pthread_mutex_unlock(&st->dirs_mu);
	return 0;
}

hl_first *hl_find(rstate *st, uint32_t group)
{
	if (!st->hl_cap) return NULL;
	size_t mask = st->hl_cap - 1;
	for (size_t i = (group * 2654435761u) & mask;; i = (i + 1) & mask) {
		if (st->hl[i].group == group) return &st->hl[i];
		if (st->hl[i].group == 0) return NULL;
	}
}

int hl_insert(rstate *st, uint32_t group, uint32_t dir, const char *name)
{
	if ((st->hl_n + 1) * 2 > st->hl_cap) {
		size_t cap = st->hl_cap ? st->hl_cap * 2 : 64;
		hl_first *n = calloc(cap, sizeof(*n));
		if (!n) return ERR_OOM();
		hl_first *old = st->hl;
		size_t old_cap = st->hl_cap;
		st->hl = n;
		st->hl_cap = cap;
		for (size_t i = 0; i < old_cap; i++) {
			if (!old[i].group) continue;
			size_t j = (old[i].group * 2654435761u) & (cap - 1);
			while (n[j].group) j = (j + 1) & (cap - 1);
			n[j] = old[i];
		}
		free(old);
	}
	char *copy = strdup(name);
	if (!copy) return ERR_OOM();
	size_t j = (group * 2654435761u) & (st->hl_cap - 1);
	while (st->hl[j].group) j = (j + 1) & (st->hl_cap - 1);
	st->hl[j] = (hl_first){group, dir, copy};
	st->hl_n++;
	return 0;
}

int link_add(rstate *st, uint32_t group, uint32_t dir, const char *name, uint8_t type)
{
	if (st->nlinks == st->links_cap) {
		size_t cap = st->links_cap ? st->links_cap * 2 : 64;
		hl_link *n = realloc(st->links, cap * sizeof(*n));
		if (!n) return ERR_OOM();
		st->links = n;
		st->links_cap = cap;
	}
	char *copy = strdup(name);
	if (!copy) return ERR_OOM();
	st->links[st->nlinks++] = (hl_link){group, dir, copy, type};
	return 0;
}

/* The directory above childfd, which must be dir, known by dev and ino:
 * climbing follows no name, and a directory moved or replaced meanwhile is
 * refused rather than written into. */
int restore_open_parent(rstate *st, int childfd, uint32_t dir, dev_t dev, ino_t ino, int *out)
{
	struct stat sb;
	int fd = openat(childfd, "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) return restore_sys_fail(st, 0, dir, NULL, "open");
	if (fstat(fd, &sb) < 0) {
		int rc = restore_sys_fail(st, 0, dir, NULL, "stat");
		close(fd);
		return rc;
	}
	if (sb.st_dev != dev || sb.st_ino != ino) {
		close(fd);
		return restore_fail_at(st, 0, dir, NULL, error_set(CAIRN_EIO, "moved or replaced during the restore"));
	}
	*out = fd;
	return 0;
}

void cursor_free(dcursor *c)
{
	while (c->n > c->lo) close(c->l[--c->n].fd);
	free(c->l);
	free(c->chain);
	memset(c, 0, sizeof(*c));
}

int cursor_open(rstate *st, dcursor *c, uint32_t dir, int *fd)
{
	size_t len = st->dirs[dir].depth;
	int rc;
	if (len > c->cap) {
		size_t cap = len * 2;
		clevel *l = realloc(c->l, cap * sizeof(*l));
		if (l) c->l = l;
		uint32_t *chain = realloc(c->chain, cap * sizeof(*chain));
		if (chain) c->chain = chain;
		if (!l || !chain) return ERR_OOM();
		c->cap = cap;
	}
	/* up from dir to the deepest directory the chain has: levels keep..len-1 are new */
	size_t keep = len;
	for (uint32_t x = dir; x != 0 && !(keep <= c->n && c->l[keep - 1].id == x); x = st->dirs[x].parent)
		c->chain[--keep] = x;
	if (keep > 0 && keep - 1 < c->lo) {
		/* the common ancestor was closed: climb to it from the shallowest
		 * open level, the only one kept of those below it */
		while (c->n > c->lo + 1) close(c->l[--c->n].fd);
		while (c->lo > keep - 1) {
			clevel *up = &c->l[c->lo - 1];
			if ((rc = restore_open_parent(st, c->l[c->lo].fd, up->id, up->dev, up->ino, &up->fd)) < 0) return rc;
			close(c->l[c->lo].fd);
			c->n = c->lo--;
		}
	}
	while (c->n > keep) close(c->l[--c->n].fd);
	if (c->lo > c->n) c->lo = c->n;
	for (size_t k = keep; k < len; k++) {
		uint32_t id = c->chain[k];
		int pfd = k ? c->l[k - 1].fd : st->rootfd;
		int f = openat(pfd, st->dirs[id].name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (f < 0) return restore_sys_fail(st, 0, id, NULL, "open");
		c->l[k] = (clevel){f, id, 0, 0};
		c->n = k + 1;
		if (c->n - c->lo > CURSOR_FDS) {
			/* close the shallowest open level, known from now on by its identity */
			struct stat sb;
			clevel *o = &c->l[c->lo];
			if (fstat(o->fd, &sb) < 0) return restore_sys_fail(st, 0, o->id, NULL, "stat");
			o->dev = sb.st_dev;
			o->ino = sb.st_ino;
			close(o->fd);
			c->lo++;
		}
	}
	*fd = c->n ? c->l[c->n - 1].fd : st->rootfd;
	return 0;
}
