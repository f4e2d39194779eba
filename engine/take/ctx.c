/* The take (take.h): a capture's shared state: set up, freed, its first
 * failure, notices. */
#include "take.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "options.h"

/* A notice event (CLI: a line on stderr), when the caller listens. */
void take_notice(const cairn_take_options *o, const char *msg)
{
	cairn_event ev = {.type = CAIRN_EVENT_NOTICE, .message = msg};
	event_emit(o->event_cb, o->event_cancel_cb, o->event_payload, &ev); /* a notice never cancels */
}

/* Record the first failure of any thread; later ones are dropped. */
int take_fail(take_ctx *c, int rc)
{
	pthread_mutex_lock(&c->lock);
	if (c->rc == 0) {
		c->rc = rc;
		snprintf(c->message, sizeof(c->message), "%s", cairn_error_last());
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int take_failed(take_ctx *c)
{
	pthread_mutex_lock(&c->lock);
	int rc = c->rc;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void take_ctx_init(take_ctx *c, cairn_repo *repo, int rootfd, snap_writer *w)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->jobs_lock, NULL);
	pthread_cond_init(&c->jobs_cv, NULL);
	pthread_condattr_t monotonic;
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&c->done_cv, &monotonic);
	pthread_condattr_destroy(&monotonic);
	c->repo = repo;
	c->rootfd = rootfd;
	c->writer = w;
	c->no_prior_cuts = repo->settings.no_prior_cuts;
}

void stream_job_left(take_ctx *c, stream_job *j, uint32_t n)
{
	if (atomic_fetch_sub(&j->left, n) != n) return;
	pthread_mutex_lock(&c->jobs_lock);
	j->next = c->done;
	c->done = j;
	pthread_cond_broadcast(&c->jobs_cv); /* a walk waiting for the workers */
	pthread_cond_broadcast(&c->done_cv); /* the capture's thread after the walk */
	pthread_mutex_unlock(&c->jobs_lock);
}

void stream_job_free(take_ctx *c, stream_job *j)
{
	if (j->all_prev) j->all_prev->all_next = j->all_next;
	else c->jobs_all = j->all_next;
	if (j->all_next) j->all_next->all_prev = j->all_prev;
	for (uint32_t i = 0; i < j->nfiles; i++) {
		free(j->states[i].chunks);
		free(j->states[i].extents);
		free(j->states[i].was);
	}
	c->stream_out -= j->nfiles;
	free(j->states);
	free(j->files);
	free(j);
}

/* The walk and the file states, of no use once the trees are built: freed
 * before the commit, whose quota and index work is the take's peak. */
void take_ctx_free_walk(take_ctx *c)
{
	for (size_t i = 0; i < c->nstates; i++) {
		if (c->states[i].reused != REUSED_BORROWED) {
			free(c->states[i].chunks);
			free(c->states[i].extents);
		}
		free(c->states[i].was);
	}
	free(c->states);
	walk_free(c->reuse_mem);
	c->reuse_mem = NULL;
	for (size_t i = 0; i < c->nearly; i++) {
		free(c->early[i]->chunks);
		free(c->early[i]->extents);
		free(c->early[i]->was);
		free(c->early[i]);
	}
	free(c->early);
	c->early = NULL;
	c->nearly = c->cap_early = c->early_taken = 0;
	free(c->todo);
	free(c->hl_table);
	while (c->jobs_all) stream_job_free(c, c->jobs_all); /* a failed take's */
	c->queue = c->queue_tail = c->done = NULL;
	walk_free(c->root);
	c->states = NULL;
	c->nstates = c->ntodo = c->hl_count = 0;
	c->todo = NULL;
	c->hl_table = NULL;
	c->root = NULL;
}

/* What a capture holds (the walk, the file states, the inodes record); not
 * the writer or rootfd. */
void take_ctx_free(take_ctx *c)
{
	take_ctx_free_walk(c);
	inodes_free(&c->inodes);
}
