/* The walker (internal.h): excluded paths, and the bounded set of open
 * directory fds (an LRU, reopened from the parent). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"

void excl_free(excl *e)
{
	if (!e) return;
	for (size_t i = 0; i < e->nkids; i++) excl_free(e->kids[i]);
	free(e->kids);
	free(e->name);
	free(e);
}

const excl *excl_find(const excl *e, const char *name, size_t len)
{
	if (!e) return NULL;
	for (size_t i = 0; i < e->nkids; i++)
		if (e->kids[i]->len == len && !memcmp(e->kids[i]->name, name, len)) return e->kids[i];
	return NULL;
}

int excl_add(excl *root, const char *path)
{
	if (path[0] != '/')
		return error_set(CAIRN_EUSAGE, "exclude '%s': must be an absolute path inside the root (e.g. /var/cache)", path);
	excl *e = root;
	int ncomp = 0;
	const char *p = path;
	for (;;) {
		while (*p == '/') p++;
		if (!*p) break;
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 1 && p[0] == '.') {
			p += len;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return error_set(CAIRN_EUSAGE, "exclude '%s': '..' is not allowed", path);
		excl *k = (excl *)excl_find(e, p, len);
		if (!k) {
			k = calloc(1, sizeof(*k));
			excl **nk = k ? realloc(e->kids, (e->nkids + 1) * sizeof(*nk)) : NULL;
			if (k) k->name = malloc(len ? len : 1);
			if (!k || !nk || !k->name) {
				if (nk) e->kids = nk;
				if (k) free(k->name);
				free(k);
				return ERR_OOM();
			}
			memcpy(k->name, p, len);
			k->len = len;
			e->kids = nk;
			e->kids[e->nkids++] = k;
		}
		e = k;
		ncomp++;
		p += len;
	}
	if (!ncomp) return error_set(CAIRN_EUSAGE, "exclude '%s': would exclude the whole root", path);
	e->terminal = 1;
	return 0;
}

static void lru_unlink(walker *w, dstate *d)
{
	if (!d->in_lru) return;
	if (d->lru_prev) d->lru_prev->lru_next = d->lru_next;
	else w->lru_head = d->lru_next;
	if (d->lru_next) d->lru_next->lru_prev = d->lru_prev;
	else w->lru_tail = d->lru_prev;
	d->lru_prev = d->lru_next = NULL;
	d->in_lru = 0;
	w->idle_fds--;
}

void dir_pin(walker *w, dstate *d)
{
	lru_unlink(w, d);
	d->pins++;
}

void dir_unpin(walker *w, dstate *d)
{
	if (--d->pins || d->fd < 0) return;
	d->lru_prev = NULL;
	d->lru_next = w->lru_head;
	if (w->lru_head) w->lru_head->lru_prev = d;
	else w->lru_tail = d;
	w->lru_head = d;
	d->in_lru = 1;
	w->idle_fds++;
}

/* Close idle fds down to the budget (all of them when budget is 0). */
void dir_close(walker *w, dstate *d)
{
	if (d->fd < 0) return;
	lru_unlink(w, d);
	close(d->fd);
	d->fd = -1;
	w->open_fds--;
}

static void make_room(walker *w, size_t budget)
{
	while (w->open_fds >= budget && w->lru_tail) {
		dstate *d = w->lru_tail;
		lru_unlink(w, d);
		close(d->fd);
		d->fd = -1;
		w->open_fds--;
	}
}

static int openat_dir(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

static dstate *dstate_of(const walk_node *n) { return n->user; }

/* Give d an open fd and pin it, reopening evicted ancestors from the
 * nearest open one (the root always is). Returns 0, 1 when d or an ancestor
 * has vanished, or an error. Iterative: depth is unbounded. */
int dir_acquire(walker *w, dstate *d)
{
	dstate *c = d;
	while (c->fd < 0) {
		dstate *p = dstate_of(c->node->parent);
		p->down = c;
		c = p;
	}
	dir_pin(w, c);
	while (c != d) {
		dstate *next = c->down;
		make_room(w, w->fd_budget);
		int fd = openat_dir(c->fd, next->node->name);
		int err = errno;
		if (fd < 0 && (err == EMFILE || err == ENFILE) && w->lru_tail) {
			/* fds are short (other threads?): give back every idle one */
			make_room(w, 0);
			fd = openat_dir(c->fd, next->node->name);
			err = errno;
		}
		dir_unpin(w, c);
		if (fd < 0) return err == ENOENT ? 1 : walk_fail_errno(w, next->node, err, "open directory");
		next->fd = fd;
		w->open_fds++;
		dir_pin(w, next);
		c = next;
	}
	return 0;
}
