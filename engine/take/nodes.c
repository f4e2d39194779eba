/* The take (take.h): the walked tree's files in order, counts, hardlink
 * groups. */
#include "take.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

static int hl_cmp(const void *a, const void *b)
{
	const hl_item *x = a, *y = b;
	if (x->dev_major != y->dev_major) return x->dev_major < y->dev_major ? -1 : 1;
	if (x->dev_minor != y->dev_minor) return x->dev_minor < y->dev_minor ? -1 : 1;
	if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Depth first in name order below a directory, with the directories
 * entered on a heap stack: trees of any depth cost memory, not C stack. */
typedef struct node_walk {
	struct nw_level {
		walk_node *dir;
		size_t i;
	} *v;
	size_t n, cap;
} node_walk;

/* Enter directory dir: its kids come next. */
static int nw_enter(node_walk *nw, walk_node *dir)
{
	if (nw->n == nw->cap) {
		size_t cap = nw->cap ? nw->cap * 2 : 64;
		struct nw_level *v = realloc(nw->v, cap * sizeof(*v));
		if (!v) return ERR_OOM();
		nw->v = v;
		nw->cap = cap;
	}
	nw->v[nw->n++] = (struct nw_level){dir, 0};
	return 0;
}

/* The next node; NULL at the end (the stack then freed). */
static walk_node *nw_next(node_walk *nw)
{
	while (nw->n > 0) {
		struct nw_level *l = &nw->v[nw->n - 1];
		if (l->i < l->dir->nkids) return l->dir->kids[l->i++];
		nw->n--;
	}
	free(nw->v);
	memset(nw, 0, sizeof(*nw));
	return NULL;
}

static void nw_free(node_walk *nw)
{
	free(nw->v);
	memset(nw, 0, sizeof(*nw));
}

/* Depth-first, name order: the order that numbers hardlink groups. */
void collect_nodes(collect *col, walk_node *n, size_t *order)
{
	node_walk nw = {NULL, 0, 0};
	if ((col->rc = nw_enter(&nw, n)) < 0) return;
	for (walk_node *k; col->rc == 0 && (k = nw_next(&nw));) {
		(*order)++;
		if (k->type == TREE_REG) {
			file_state *fs = &col->states[col->nstates++];
			memset(fs, 0, sizeof(*fs));
			fs->node = k;
			if (k->user_kind == NODE_REUSABLE || k->user_kind == NODE_REFD) { /* unchanged since the parent */
				const prior_file *pf = k->user;
				fs->size = k->size;
				fs->chunks = (tree_chunk *)pf->chunks;
				fs->extents = (tree_extent *)pf->extents;
				fs->nchunks = fs->cap = pf->nchunks;
				fs->nextents = pf->nextents;
				fs->reused = REUSED_BORROWED;
				fs->captured = k->user_kind == NODE_REFD; /* its chunks referenced by stream_dir */
				k->user_kind = 0;
			} else {
				fs->leader = k->user; /* read early (early_file): content is there */
			}
			k->user = fs;
		}
		if (k->type != TREE_DIR && k->nlink > 1) {
			if (col->nhl == col->caphl) {
				size_t cap = col->caphl ? col->caphl * 2 : 64;
				hl_item *h = realloc(col->hl, cap * sizeof(*h));
				if (!h) {
					col->rc = ERR_OOM();
					break;
				}
				col->hl = h;
				col->caphl = cap;
			}
			col->hl[col->nhl++] = (hl_item){k->dev_major, k->dev_minor, k->ino, *order, k};
		}
		if (k->type == TREE_DIR && k->user_kind != NODE_QUEUED) col->rc = nw_enter(&nw, k); /* queued: read meanwhile */
	}
	nw_free(&nw);
}

/* Entries below n of type (any type: 0) and n itself when counted; -1 when
 * out of memory. */
size_t count_nodes(walk_node *n, uint8_t type)
{
	node_walk nw = {NULL, 0, 0};
	size_t count = type == 0 || n->type == type ? 1 : 0;
	if (nw_enter(&nw, n) < 0) return (size_t)-1;
	for (walk_node *k; (k = nw_next(&nw));) {
		if (type == 0 || k->type == type) count++;
		if (k->type == TREE_DIR && k->user_kind != NODE_QUEUED && nw_enter(&nw, k) < 0) {
			nw_free(&nw);
			return (size_t)-1;
		}
	}
	return count;
}

size_t count_regular(walk_node *n) { return count_nodes(n, TREE_REG); }

static int hl_same(const hl_item *x, const hl_item *y)
{
	return x->dev_major == y->dev_major && x->dev_minor == y->dev_minor && x->ino == y->ino;
}

static int hl_first_cmp(const void *a, const void *b)
{
	const hl_item *x = *(hl_item *const *)a, *y = *(hl_item *const *)b;
	return x->order < y->order ? -1 : x->order > y->order;
}

int hl_node_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const hl_assign *)a)->node, y = (uintptr_t)((const hl_assign *)b)->node;
	return x < y ? -1 : x > y;
}

/* Entries sharing an inode inside the tree form a group, numbered from 1 in
 * walk order; a regular file's followers take their content from the first. */
int assign_hardlinks(take_ctx *c, collect *col)
{
	size_t ngroups = 0;
	if (col->nhl) qsort(col->hl, col->nhl, sizeof(*col->hl), hl_cmp);
	hl_item **firsts = calloc(col->nhl ? col->nhl : 1, sizeof(*firsts));
	c->hl_table = calloc(col->nhl ? col->nhl : 1, sizeof(*c->hl_table));
	if (!firsts || !c->hl_table) {
		free(firsts);
		return ERR_OOM();
	}
	for (size_t i = 0; i < col->nhl;) {
		size_t j = i + 1;
		while (j < col->nhl && hl_same(&col->hl[i], &col->hl[j])) j++;
		if (j - i > 1) firsts[ngroups++] = &col->hl[i];
		i = j;
	}
	qsort(firsts, ngroups, sizeof(*firsts), hl_first_cmp);
	for (size_t g = 0; g < ngroups; g++) {
		hl_item *h = firsts[g];
		file_state *leader = h->node->type == TREE_REG ? h->node->user : NULL;
		for (hl_item *m = h; m < col->hl + col->nhl && hl_same(h, m); m++) {
			c->hl_table[c->hl_count++] = (hl_assign){m->node, (uint32_t)(g + 1)};
			if (m != h && leader) ((file_state *)m->node->user)->leader = leader;
		}
	}
	c->hardlink_extra = (uint32_t)(c->hl_count - ngroups);
	qsort(c->hl_table, c->hl_count, sizeof(*c->hl_table), hl_node_cmp);
	free(firsts);
	return 0;
}
