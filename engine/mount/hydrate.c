/* Background hydration: a thread that queues the missing chunks of the
 * trace's files, then of every file, behind the readers' (cache.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "mount/cache.h"
#include "util.h"

/* ---- hydration ------------------------------------------------------------ */

static void hydrate_event(mcache *c, int done, int64_t t0)
{
	if (!c->hcb) return;
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = done ? CAIRN_EVENT_STATE : CAIRN_EVENT_PROGRESS;
	ev.state = done ? "hydrated" : NULL;
	pthread_mutex_lock(&c->mu);
	ev.bytes = c->bytes_local;
	pthread_mutex_unlock(&c->mu);
	ev.total_bytes = c->nodes->data_bytes;
	ev.total_files = c->nodes->files;
	ev.ms = (uint64_t)((mono_ns() - t0) / 1000000);
	c->hcb(&ev, c->hpayload);
}

/* Queue one file's missing chunks behind every reader's, a few runs at a
 * time so that a reader's fetch never waits behind a long queue. */
static void hydrate_file(mcache *c, uint32_t id)
{
	mfile *f;
	if (c->nodes->v[id].e->type != TREE_REG || c->nodes->v[id].e->nchunks == 0) return;
	if (mcache_file(c, id, &f) < 0) {
		logf_(c, "hydration: %s", cairn_error_last());
		return;
	}
	pthread_mutex_lock(&c->mu);
	for (uint32_t k = 0; k < f->e->nchunks && !c->stop;) {
		while (!c->stop && c->q[PRIO_HYDRATE].len + c->q[PRIO_READ].len >= c->nfetchers)
			pthread_cond_wait(&c->room_cv, &c->mu);
		uint32_t end = k + RUN_MAX_CHUNKS < f->e->nchunks ? k + RUN_MAX_CHUNKS : f->e->nchunks;
		mcache_queue_missing(c, f, k, end, PRIO_HYDRATE, 0);
		k = end;
	}
	pthread_mutex_unlock(&c->mu);
}

static void *hydrator(void *arg)
{
	mcache *c = arg;
	int64_t t0 = mono_ns(), last = t0;
	node_table *t = c->nodes;
	for (size_t i = 0; i < c->norder && !c->stop; i++)
		if (c->order[i] > 0 && c->order[i] < t->n) hydrate_file(c, c->order[i]);
	for (size_t id = 1; c->hydrate_all && id < t->n && !c->stop; id++) {
		hydrate_file(c, (uint32_t)id);
		if (mono_ns() - last >= PROGRESS_NS) {
			hydrate_event(c, 0, t0);
			last = mono_ns();
		}
	}
	/* the last runs: wait until every queue has drained */
	pthread_mutex_lock(&c->mu);
	for (;;) {
		int busy = c->running > 0;
		for (int p = 0; p < NPRIO; p++) busy |= c->q[p].len > 0;
		if (!busy || c->stop) break;
		struct timespec dl = deadline(CLOCK_REALTIME, 1000);
		pthread_cond_timedwait(&c->room_cv, &c->mu, &dl);
	}
	int stopped = c->stop;
	pthread_mutex_unlock(&c->mu);
	if (!stopped) hydrate_event(c, 1, t0);
	return NULL;
}

int mcache_hydrate(mcache *c, const uint32_t *order, size_t n, int all, cairn_event_cb cb,
                   void *payload)
{
	c->hydrate_all = all;
	if (n) {
		if (!(c->order = malloc(n * sizeof(uint32_t)))) return ERR_OOM();
		memcpy(c->order, order, n * sizeof(uint32_t));
	}
	c->norder = n;
	c->hcb = cb;
	c->hpayload = payload;
	if (pthread_create(&c->hydrator, NULL, hydrator, c) != 0)
		return error_set(CAIRN_EIO, "mount: cannot start the hydration thread");
	c->hydrating = 1;
	return 0;
}

