/* Tree prefetch: see prefetch.h. */
#include "prefetch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"

enum { QUEUED, LOADING, READY, FAILED, TAKEN };

typedef struct slot {
	oid id;
	int state;
	tree t; /* READY */
} slot;

struct tree_prefetch {
	cairn_repo *repo;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a tree read, taken, or stop */
	slot *slots;       /* open addressing on the id; cap a power of two */
	size_t nslots, cap;
	size_t *stack;     /* QUEUED slots, the next on top (depth first) */
	size_t nstack, stack_cap;
	size_t ready_entries, max_entries, loading;
	int stop;
	pthread_t *threads;
	int nthreads;
};

static size_t find(const tree_prefetch *p, const oid *id)
{
	size_t i;
	memcpy(&i, id->b, sizeof(i)); /* ids are uniform */
	for (i &= p->cap - 1; p->slots[i].state != -1; i = (i + 1) & (p->cap - 1))
		if (oid_cmp(&p->slots[i].id, id) == 0) return i;
	return i; /* the empty slot where it would go */
}

/* Add id as QUEUED (once) and push it. mu held. 0, or ERR_OOM (then not added). */
static int enqueue(tree_prefetch *p, const oid *id)
{
	if (2 * (p->nslots + 1) > p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 1024;
		slot *old = p->slots, *ns = malloc(cap * sizeof(*ns));
		if (!ns) return ERR_OOM();
		for (size_t i = 0; i < cap; i++) ns[i].state = -1;
		size_t oldcap = p->cap;
		p->slots = ns;
		p->cap = cap;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].state != -1) p->slots[find(p, &old[i].id)] = old[i];
		/* the stack holds slot indices: find them again */
		for (size_t k = 0; k < p->nstack; k++) p->stack[k] = find(p, &old[p->stack[k]].id);
		free(old);
	}
	size_t i = find(p, id);
	if (p->slots[i].state != -1) return 0; /* a subtree seen twice: read once */
	if (p->nstack == p->stack_cap) {
		size_t cap = p->stack_cap ? p->stack_cap * 2 : 256;
		size_t *s = realloc(p->stack, cap * sizeof(*s));
		if (!s) return ERR_OOM();
		p->stack = s;
		p->stack_cap = cap;
	}
	p->slots[i] = (slot){*id, QUEUED, {0, NULL, NULL}};
	p->nslots++;
	p->stack[p->nstack++] = i;
	return 0;
}

static void *worker(void *arg)
{
	tree_prefetch *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && (p->ready_entries >= p->max_entries || (!p->nstack && p->loading)))
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop || !p->nstack) break; /* stopped, or every tree read */
		size_t i = p->stack[--p->nstack];
		if (p->slots[i].state != QUEUED) continue; /* taken by the caller meanwhile */
		p->slots[i].state = LOADING;
		p->loading++;
		oid id = p->slots[i].id;
		pthread_mutex_unlock(&p->mu);
		tree t;
		int rc = repo_load_tree(p->repo, &id, &t);
		if (rc < 0) error_clear(); /* the caller reads it again and reports */
		pthread_mutex_lock(&p->mu);
		p->loading--;
		i = find(p, &id); /* the table may have grown */
		if (rc < 0) {
			p->slots[i].state = FAILED;
		} else {
			p->slots[i].t = t;
			p->slots[i].state = READY;
			p->ready_entries += t.n;
			/* children in reverse, so the first is on top: depth first, in order */
			for (size_t k = t.n; k-- > 0;)
				if (t.entries[k].type == TREE_DIR && enqueue(p, &t.entries[k].subtree) < 0) {
					error_clear();
					break;
				}
		}
		pthread_cond_broadcast(&p->cv);
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

void prefetch_start(tree_prefetch **out, cairn_repo *r, const oid *root, int nthreads, size_t max_entries)
{
	*out = NULL;
	tree_prefetch *p = calloc(1, sizeof(*p));
	if (!p || !(p->threads = calloc((size_t)nthreads, sizeof(pthread_t)))) {
		free(p);
		return;
	}
	p->repo = r;
	p->max_entries = max_entries;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (enqueue(p, root) < 0) {
		error_clear();
		prefetch_free(p);
		return;
	}
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&p->threads[i], NULL, worker, p) != 0) break;
		p->nthreads++;
	}
	*out = p;
}

int prefetch_load(tree_prefetch *p, cairn_repo *r, const oid *id, tree *out)
{
	if (!p) return repo_load_tree(r, id, out);
	pthread_mutex_lock(&p->mu);
	size_t i = find(p, id);
	while (p->slots[i].state == LOADING) {
		pthread_cond_wait(&p->cv, &p->mu);
		i = find(p, id);
	}
	if (p->slots[i].state == READY) {
		*out = p->slots[i].t;
		p->slots[i].state = TAKEN;
		p->ready_entries -= out->n;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		return 0;
	}
	/* not read yet (no thread will start it now), failed, absent or taken before */
	if (p->slots[i].state == QUEUED) p->slots[i].state = TAKEN;
	pthread_mutex_unlock(&p->mu);
	return repo_load_tree(r, id, out);
}

void prefetch_free(tree_prefetch *p)
{
	if (!p) return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
	for (size_t i = 0; i < p->cap; i++)
		if (p->slots[i].state == READY) tree_free(&p->slots[i].t);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->slots);
	free(p->stack);
	free(p->threads);
	free(p);
}
