/* The take (take.h): the frozen walk on two cores: the root split into parts
 * walked by a second thread, then grafted. */
#include "take.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "freeze.h"

/* Entries in n's subtree, n included. */
static size_t subtree_size(const walk_node *n) { return count_nodes((walk_node *)n, 0); }

#define SPLIT_PARTS 8       /* directories the second thread walks, at most */
#define SPLIT_FRONTIER 1024 /* candidates looked at */

typedef struct split_cand {
	const walk_node *dir;
	size_t size;
} split_cand;

/* Add dir's subdirectories (not mount points) to the candidates. */
static void add_candidates(split_cand *f, size_t *n, const walk_node *dir)
{
	for (size_t i = 0; i < dir->nkids && *n < SPLIT_FRONTIER; i++) {
		const walk_node *k = dir->kids[i];
		if (k->type == TREE_DIR && !k->is_mount) f[(*n)++] = (split_cand){k, subtree_size(k)};
	}
}

/* Directories of the pre-copy's walk holding together about half of its
 * entries, for the frozen walk's second thread: the largest candidates
 * that fit, a too large one replaced by its subdirectories. Their count,
 * 0 when they would not hold an eighth. */
static size_t split_parts(const walk_node *root, const walk_node **parts)
{
	split_cand *f = malloc(SPLIT_FRONTIER * sizeof(*f));
	if (!f) return 0;
	size_t total = subtree_size(root), want = total / 2, slack = total / 16, got = 0, n = 0, nf = 0;
	add_candidates(f, &nf, root);
	while (nf > 0 && n < SPLIT_PARTS && got + slack < want) {
		size_t big = 0;
		for (size_t i = 1; i < nf; i++)
			if (f[i].size > f[big].size) big = i;
		split_cand c = f[big];
		f[big] = f[--nf];
		if (got + c.size <= want + slack) {
			parts[n++] = c.dir;
			got += c.size;
		} else {
			add_candidates(f, &nf, c.dir);
		}
	}
	free(f);
	return got >= total / 8 ? n : 0;
}

typedef struct part_walk {
	const walk_node *pre[SPLIT_PARTS]; /* the parts in the pre-copy's walk */
	walk_node *root[SPLIT_PARTS];      /* and walked now */
	walk_stats st[SPLIT_PARTS];
	size_t n;
	const char *root_path;
	walk_options wo;
	int rc;
} part_walk;

static void *walk_parts(void *arg)
{
	part_walk *p = arg;
	for (size_t i = 0; i < p->n && p->rc == 0; i++) {
		char *rel = walk_path(p->pre[i]), path[PATH_MAX];
		if (!rel || snprintf(path, sizeof(path), "%s/%s", p->root_path, rel) >= (int)sizeof(path)) {
			free(rel);
			p->rc = -1;
			break;
		}
		free(rel);
		p->wo.prior = p->pre[i];
		p->rc = walk_run(&p->root[i], path, &p->wo, &p->st[i]);
	}
	return NULL;
}

/* Put part i's walk in the main one at its place: 0, or -1 when the two
 * do not fit together (its parent gone, the part on another mount). */
static int graft_part(walk_node *root, walk_stats *ws, part_walk *p, size_t i)
{
	const walk_node *pre = p->pre[i], *chain[PATH_MAX / 2];
	const walk_stats *st = &p->st[i];
	size_t depth = 0;
	for (const walk_node *n = pre->parent; n && n->parent && depth < PATH_MAX / 2; n = n->parent)
		chain[depth++] = n;
	walk_node *dir = root;
	while (dir && depth > 0) {
		const walk_node *want = chain[--depth];
		dir = walk_find_kid(dir, want->name, want->name_len);
		if (dir && (dir->type != TREE_DIR || dir->is_mount)) dir = NULL;
	}
	if (!dir || walk_find_kid(dir, pre->name, pre->name_len)) return -1;
	if (ws->root_mnt != st->root_mnt || root->dev_major != p->root[i]->dev_major ||
	    root->dev_minor != p->root[i]->dev_minor)
		return -1;
	if (walk_graft(dir, p->root[i], pre->name, pre->name_len) < 0) {
		error_clear();
		return -1;
	}
	p->root[i] = NULL; /* in root's tree now */
	ws->files += st->files;
	ws->dirs += st->dirs;
	ws->symlinks += st->symlinks;
	ws->specials += st->specials;
	ws->sockets_skipped += st->sockets_skipped;
	ws->mounts_skipped += st->mounts_skipped;
	ws->excluded += st->excluded - 1; /* the part itself was excluded from the main walk */
	ws->bytes += st->bytes;
	ws->ring_statx += st->ring_statx;
	return 0;
}

/* The frozen walk, which the pause waits for: with two workers or more, a
 * second thread walks directories holding about half of the pre-copy's
 * entries while this one walks the rest. Anything unexpected (a part
 * gone, or no longer a directory) and the walk is done again whole. */
int frozen_walk(take_ctx *c, const cairn_take_options *o, const char *root_path, const walk_options *wo,
                walk_stats *ws, const walk_node *pre_root)
{
	part_walk p;
	memset(&p, 0, sizeof(p));
	if (c->nworkers > 1 && !o->nexcludes && !o->upper) p.n = split_parts(pre_root, p.pre);
	char *excl[SPLIT_PARTS] = {NULL};
	size_t nexcl = 0;
	for (; nexcl < p.n; nexcl++) {
		char *rel = walk_path(p.pre[nexcl]);
		if (!rel || !(excl[nexcl] = malloc(strlen(rel) + 2))) {
			free(rel);
			break;
		}
		sprintf(excl[nexcl], "/%s", rel);
		free(rel);
	}
	pthread_t thread;
	p.root_path = root_path;
	p.wo = (walk_options){.no_uring = wo->no_uring, .uring_always = wo->uring_always, .no_xattrat = wo->no_xattrat,
	                      .prior_start = wo->prior_start, .subtree = 1};
	int rc = 0, whole = !(p.n > 0 && nexcl == p.n && pthread_create(&thread, NULL, walk_parts, &p) == 0);
	if (!whole) {
		walk_options main_wo = *wo;
		main_wo.excludes = (const char *const *)excl;
		main_wo.nexcludes = nexcl;
		rc = walk_run(&c->root, root_path, &main_wo, ws);
		pthread_join(thread, NULL);
		for (size_t i = 0; rc == 0 && !whole && i < p.n; i++)
			whole = p.rc < 0 || graft_part(c->root, ws, &p, i) < 0;
		if (whole) { /* the parts do not fit: done again whole */
			walk_free(c->root);
			c->root = NULL;
		}
	}
	if (whole) rc = walk_run(&c->root, root_path, wo, ws);
	for (size_t i = 0; i < SPLIT_PARTS; i++) {
		walk_free(p.root[i]);
		free(excl[i]);
	}
	return rc;
}
