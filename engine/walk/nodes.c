/* The walker (internal.h): the walked tree: nodes in an arena, kids in name
 * order, grafts, paths, error messages. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "util.h"

int kid_cmp(const void *pa, const void *pb)
{
	const walk_node *a = *(walk_node *const *)pa, *b = *(walk_node *const *)pb;
	return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

walk_node *walk_find_kid_from(const walk_node *dir, size_t *at, const char *name, size_t len)
{
	for (; *at < dir->nkids; ++*at) {
		const walk_node *k = dir->kids[*at];
		int c = name_cmp(k->name, k->name_len, name, len);
		if (c == 0) return dir->kids[(*at)++];
		if (c > 0) break;
	}
	return NULL;
}

walk_node *walk_find_kid(const walk_node *dir, const char *name, size_t len)
{
	size_t lo = 0, hi = dir->nkids;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const walk_node *k = dir->kids[mid];
		int c = name_cmp(k->name, k->name_len, name, len);
		if (c == 0) return dir->kids[mid];
		if (c < 0) lo = mid + 1;
		else hi = mid;
	}
	return NULL;
}

int xattr_cmp(const void *pa, const void *pb)
{
	return strcmp(((const walk_xattr *)pa)->name, ((const walk_xattr *)pb)->name);
}

/* Blocks of ARENA_BLOCK bytes, bump-allocated; a request of more than a
 * quarter block gets a block of its own (so the current one keeps
 * filling). Dropped nodes (vanished entries) stay until the tree goes. */
#define ARENA_BLOCK (256u * 1024u)
#define ARENA_ALIGN 16u

typedef struct arena_block {
	struct arena_block *next;
	size_t used, cap;
} arena_block;

/* A tree has one arena (its root node's), and when streamed one more a
 * directory (its kids), chained from the root's; those start small (most
 * directories are) and double up to ARENA_BLOCK. */
struct walk_arena {
	arena_block *head;
	size_t block; /* the next block's size; 0: ARENA_BLOCK */
	struct walk_arena *prev, *next;
};

#define BLOCK_HDR ((sizeof(arena_block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

void *arena_alloc(struct walk_arena *a, size_t len)
{
	len = (len + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	arena_block *b = a->head;
	if (!b || b->cap - b->used < len) {
		size_t block = a->block ? a->block : ARENA_BLOCK;
		int own = len > block / 4;
		size_t cap = own ? len : block - BLOCK_HDR;
		if (!own && a->block && a->block < ARENA_BLOCK) a->block *= 2;
		arena_block *nb = malloc(BLOCK_HDR + cap);
		if (!nb) return NULL;
		nb->used = 0;
		nb->cap = cap;
		if (own && b) { /* behind the current block, which keeps filling */
			nb->next = b->next;
			b->next = nb;
		} else {
			nb->next = b;
			a->head = nb;
		}
		b = nb;
	}
	void *p = (char *)b + BLOCK_HDR + b->used;
	b->used += len;
	memset(p, 0, len);
	return p;
}

void *walk_alloc(walk_node *n, size_t len) { return arena_alloc(n->arena, len ? len : 1); }

char *arena_copy(struct walk_arena *a, const void *data, size_t len)
{
	char *p = arena_alloc(a, len + 1); /* NUL-terminated for names and targets */
	if (p && len) memcpy(p, data, len);
	return p;
}

struct walk_arena *arena_new_kids(struct walk_arena *root, size_t hint)
{
	struct walk_arena *a = calloc(1, sizeof(*a));
	if (!a) return NULL;
	a->block = 1024;
	while (a->block < ARENA_BLOCK && a->block < hint) a->block *= 2;
	a->prev = root;
	a->next = root->next;
	if (root->next) root->next->prev = a;
	root->next = a;
	return a;
}

static void arena_free_blocks(struct walk_arena *a)
{
	for (arena_block *b = a->head, *next; b; b = next) {
		next = b->next;
		free(b);
	}
}

void arena_drop(struct walk_arena *a)
{
	if (a->prev) a->prev->next = a->next;
	if (a->next) a->next->prev = a->prev;
	arena_free_blocks(a);
	free(a);
}

walk_node *walk_node_new(const char *name, size_t len, walk_node *parent)
{
	struct walk_arena *a = parent ? parent->arena : calloc(1, sizeof(*a));
	if (!a) return NULL;
	walk_node *n = node_new_in(a, name, len, parent);
	if (!n && !parent) free(a);
	return n;
}

walk_node *node_new_in(struct walk_arena *a, const char *name, size_t len, walk_node *parent)
{
	walk_node *n = arena_alloc(a, sizeof(*n) + len + 1);
	if (!n) return NULL;
	n->name = (char *)(n + 1);
	memcpy(n->name, name, len);
	n->name[len] = 0;
	n->name_len = (uint16_t)len;
	n->parent = parent;
	n->arena = a;
	return n;
}

/* Where kid k is among dir's kids (sorted, unique): found by name. */
static size_t kid_index(const walk_node *dir, const walk_node *k)
{
	size_t lo = 0, hi = dir->nkids;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (dir->kids[mid] == k) return mid;
		if (name_cmp(dir->kids[mid]->name, dir->kids[mid]->name_len, k->name, k->name_len) < 0) lo = mid + 1;
		else hi = mid;
	}
	for (lo = 0; lo < dir->nkids && dir->kids[lo] != k; lo++) {} /* never: kids are sorted */
	return lo;
}

/* top and every node below it to arena a, depth first through the parent
 * links: no stack, C or heap, whatever the depth. */
static void set_arena(walk_node *top, struct walk_arena *a)
{
	walk_node *n = top;
	size_t next = 0; /* the kid of n to visit next */
	n->arena = a;
	for (;;) {
		if (next < n->nkids) {
			n = n->kids[next];
			n->arena = a;
			next = 0;
		} else if (n == top) {
			break;
		} else {
			next = kid_index(n->parent, n) + 1;
			n = n->parent;
		}
	}
}

int walk_graft(walk_node *dir, walk_node *sub, const char *name, size_t len)
{
	walk_node **kids = arena_alloc(dir->arena, (dir->nkids + 1) * sizeof(*kids));
	walk_node *n = kids ? walk_node_new(name, len, dir) : NULL;
	if (!n) return ERR_OOM();
	char *keep_name = n->name;
	*n = *sub;
	n->name = keep_name;
	n->name_len = (uint16_t)len;
	n->parent = dir;
	for (size_t i = 0; i < n->nkids; i++) n->kids[i]->parent = n;
	/* sub's blocks go behind dir's current one; its nodes point at dir's arena */
	struct walk_arena *from = sub->arena, *to = dir->arena;
	set_arena(n, to);
	arena_block *last = from->head;
	while (last && last->next) last = last->next;
	if (last) {
		last->next = to->head->next;
		to->head->next = from->head;
	}
	free(from);
	size_t at = 0;
	while (at < dir->nkids && name_cmp(dir->kids[at]->name, dir->kids[at]->name_len, name, len) < 0) at++;
	memcpy(kids, dir->kids, at * sizeof(*kids));
	kids[at] = n;
	memcpy(kids + at + 1, dir->kids + at, (dir->nkids - at) * sizeof(*kids));
	dir->kids = kids;
	dir->nkids++;
	return 0;
}

void walk_drop_kids(walk_node *dir)
{
	/* its kids, and their array, are in an arena of their own */
	if (dir->nkids && dir->kids[0]->arena != dir->arena) arena_drop(dir->kids[0]->arena);
	dir->kids = NULL;
	dir->nkids = 0;
}

void walk_free(walk_node *root)
{
	if (!root) return;
	for (struct walk_arena *a = root->arena, *next; a; a = next) {
		next = a->next;
		arena_free_blocks(a);
		free(a);
	}
}

void count_kids(walk_stats *st, const walk_node *dir)
{
	for (size_t k = 0; k < dir->nkids; k++) {
		const walk_node *n = dir->kids[k];
		switch (n->type) {
		case TREE_REG: st->files++; st->bytes += n->size; break;
		case TREE_DIR: st->dirs++; break;
		case TREE_SYMLINK: st->symlinks++; break;
		default: st->specials++; break;
		}
	}
}

char *walk_path(const walk_node *n)
{
	size_t len = 0;
	for (const walk_node *p = n; p && p->parent; p = p->parent) len += (size_t)p->name_len + 1;
	char *s = malloc(len ? len : 1);
	if (!s) return NULL;
	if (!len) {
		s[0] = 0;
		return s;
	}
	size_t at = len - 1;
	s[at] = 0;
	for (const walk_node *p = n; p && p->parent; p = p->parent) {
		at -= p->name_len;
		memcpy(s + at, p->name, p->name_len);
		if (at) s[--at] = '/';
	}
	return s;
}

/* Path for messages; never NULL. */
const char *msg_path(const walk_node *n, char **hold)
{
	*hold = walk_path(n);
	return *hold ? *hold : "(path unavailable: out of memory)";
}

int walk_fail_errno(walker *w, const walk_node *n, int err, const char *what)
{
	char *p;
	int rc = error_errno(CAIRN_EIO, err, "walk %s: %s: %s", w->root, msg_path(n, &p), what);
	free(p);
	return rc;
}
