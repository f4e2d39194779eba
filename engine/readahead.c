/* Ranges of remote objects fetched ahead (readahead.h). The pieces are one
 * list in the order they were advised (a few dozen at most: a scan costs
 * less than a table); the threads fetch the oldest queued piece first, and
 * advice past the budget is dropped (or takes the place of pieces left
 * unread for a while). */
#include "readahead.h"

#include "store_backend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "util.h"

enum { QUEUED, FETCHING, FETCHED, FAILED };

typedef struct piece {
	struct piece *next;
	char *name;
	uint64_t off;
	size_t len;
	uint8_t *data; /* FETCHED */
	size_t used;   /* bytes handed to readers: the piece goes once all were */
	int state;
	int64_t done_ns; /* FETCHED, FAILED: when (mono_ns) */
	int err;       /* FAILED: the fetch's error, handed to the first reader */
	char *message;
	int dropped; /* while FETCHING: its thread frees it */
} piece;

struct readahead {
	store *st;
	pthread_mutex_t lock;
	pthread_cond_t work;    /* a piece was queued, or stop */
	pthread_cond_t fetched; /* a fetch ended */
	piece *head;
	uint64_t bytes; /* of every piece in the list */
	pthread_t threads[READAHEAD_THREADS];
	int nthreads, stop;
};

readahead *readahead_new(store *st)
{
	readahead *ra = calloc(1, sizeof(*ra));
	if (!ra) return NULL;
	ra->st = st;
	pthread_mutex_init(&ra->lock, NULL);
	pthread_cond_init(&ra->work, NULL);
	pthread_cond_init(&ra->fetched, NULL);
	return ra;
}

static void piece_free(piece *p)
{
	free(p->name);
	free(p->data);
	free(p->message);
	free(p);
}

/* Out of the list (under the lock) and freed, unless its thread still
 * fetches it. */
static void unlink_piece(readahead *ra, piece *p)
{
	for (piece **pp = &ra->head; *pp; pp = &(*pp)->next) {
		if (*pp != p) continue;
		*pp = p->next;
		break;
	}
	ra->bytes -= p->len;
	if (p->state == FETCHING) p->dropped = 1;
	else piece_free(p);
}

/* The piece of name holding byte at, or NULL (under the lock). */
static piece *holding(readahead *ra, const char *name, uint64_t at)
{
	for (piece *p = ra->head; p; p = p->next)
		if (p->off <= at && at - p->off < p->len && strcmp(p->name, name) == 0) return p;
	return NULL;
}

/* Where name's first piece after at begins (UINT64_MAX: none). */
static uint64_t next_start(readahead *ra, const char *name, uint64_t at)
{
	uint64_t next = UINT64_MAX;
	for (piece *p = ra->head; p; p = p->next)
		if (p->off > at && p->off < next && strcmp(p->name, name) == 0) next = p->off;
	return next;
}

static void *fetcher(void *arg)
{
	readahead *ra = arg;
	pthread_mutex_lock(&ra->lock);
	for (;;) {
		piece *p = ra->head;
		while (p && p->state != QUEUED) p = p->next;
		if (ra->stop) break;
		if (!p) {
			pthread_cond_wait(&ra->work, &ra->lock);
			continue;
		}
		p->state = FETCHING;
		pthread_mutex_unlock(&ra->lock);
		uint8_t *data = malloc(p->len);
		int rc = data ? store_get_range(ra->st, p->name, p->off, data, p->len) : ERR_OOM();
		/* a reader of these bytes gets the error as it was (a stalled
		 * OSD's timeout is waited for once, not again by the reader) */
		char *message = rc < 0 ? strdup(cairn_error_last()) : NULL;
		if (rc < 0) error_clear();
		pthread_mutex_lock(&ra->lock);
		p->done_ns = mono_ns();
		if (p->dropped) {
			free(data);
			free(message);
			piece_free(p);
		} else if (rc < 0) {
			free(data);
			p->err = rc;
			p->message = message;
			p->state = FAILED;
		} else {
			p->data = data;
			p->state = FETCHED;
		}
		pthread_cond_broadcast(&ra->fetched);
	}
	pthread_mutex_unlock(&ra->lock);
	return NULL;
}

/* Pieces fetched and left unread for READAHEAD_STALE_NS (their reader went
 * elsewhere) dropped, the oldest first, until need more bytes fit (under the
 * lock); 1 when they do. Fresh ones are kept: advice read in its order would
 * otherwise push out what its reader is about to read. */
static int make_room(readahead *ra, size_t need)
{
	int64_t stale = mono_ns() - READAHEAD_STALE_NS;
	for (piece *p = ra->head, *next; p && ra->bytes + need > READAHEAD_BYTES; p = next) {
		next = p->next;
		if ((p->state == FETCHED || p->state == FAILED) && p->done_ns < stale) unlink_piece(ra, p);
	}
	return ra->bytes + need <= READAHEAD_BYTES;
}

void readahead_advise(readahead *ra, const char *name, uint64_t off, size_t len)
{
	uint64_t end = off + len;
	pthread_mutex_lock(&ra->lock);
	/* the threads start with the first advice: most opens never advise */
	while (!ra->stop && ra->nthreads < READAHEAD_THREADS &&
	       pthread_create(&ra->threads[ra->nthreads], NULL, fetcher, ra) == 0)
		ra->nthreads++;
	for (uint64_t at = off; ra->nthreads > 0 && at < end;) {
		piece *have = holding(ra, name, at);
		if (have) { /* under way or here already */
			at = have->off + have->len;
			continue;
		}
		uint64_t stop = end - at > READAHEAD_PIECE ? at + READAHEAD_PIECE : end;
		uint64_t next = next_start(ra, name, at);
		if (next < stop) stop = next;
		size_t n = (size_t)(stop - at);
		piece *p = make_room(ra, n) ? calloc(1, sizeof(*p)) : NULL;
		if (!p || !(p->name = strdup(name))) {
			free(p);
			break; /* full (or out of memory): the rest is read when asked */
		}
		p->off = at;
		p->len = n;
		p->state = QUEUED;
		piece **tail = &ra->head;
		while (*tail) tail = &(*tail)->next;
		*tail = p;
		ra->bytes += n;
		pthread_cond_signal(&ra->work);
		at = stop;
	}
	pthread_mutex_unlock(&ra->lock);
}

/* 1 when a piece of name overlaps [off, end) (under the lock). */
static int advised(readahead *ra, const char *name, uint64_t off, uint64_t end)
{
	for (piece *p = ra->head; p; p = p->next)
		if (p->off < end && off < p->off + p->len && strcmp(p->name, name) == 0) return 1;
	return 0;
}

int readahead_read(readahead *ra, const char *name, uint64_t off, void *out, size_t len)
{
	uint64_t end = off + len, at = off;
	int rc = 0;
	pthread_mutex_lock(&ra->lock);
	if (!advised(ra, name, off, end)) {
		pthread_mutex_unlock(&ra->lock);
		return 1;
	}
	while (at < end && rc == 0) {
		piece *p = holding(ra, name, at);
		if (p && (p->state == QUEUED || p->state == FETCHING)) { /* under way: wait, look again */
			pthread_cond_wait(&ra->fetched, &ra->lock);
			continue;
		}
		if (p && p->state == FAILED) { /* once: a later read asks the store again */
			rc = error_set(p->err, "%s", p->message ? p->message : "read ahead failed");
			unlink_piece(ra, p);
			break;
		}
		if (p) {
			uint64_t stop = p->off + p->len < end ? p->off + p->len : end;
			memcpy((uint8_t *)out + (at - off), p->data + (at - p->off), (size_t)(stop - at));
			p->used += (size_t)(stop - at);
			if (p->used >= p->len) unlink_piece(ra, p);
			at = stop;
			continue;
		}
		/* not advised: from the store */
		uint64_t stop = next_start(ra, name, at);
		if (stop > end) stop = end;
		pthread_mutex_unlock(&ra->lock);
		rc = store_get_range(ra->st, name, at, (uint8_t *)out + (at - off), (size_t)(stop - at));
		pthread_mutex_lock(&ra->lock);
		at = stop;
	}
	pthread_mutex_unlock(&ra->lock);
	return rc;
}

void readahead_drop(readahead *ra, const char *name)
{
	pthread_mutex_lock(&ra->lock);
	for (piece *p = ra->head, *next; p; p = next) {
		next = p->next;
		if (strcmp(p->name, name) == 0) unlink_piece(ra, p);
	}
	pthread_mutex_unlock(&ra->lock);
}

void readahead_free(readahead *ra)
{
	if (!ra) return;
	pthread_mutex_lock(&ra->lock);
	ra->stop = 1;
	pthread_cond_broadcast(&ra->work);
	pthread_mutex_unlock(&ra->lock);
	for (int i = 0; i < ra->nthreads; i++) pthread_join(ra->threads[i], NULL);
	while (ra->head) {
		piece *p = ra->head;
		ra->head = p->next;
		piece_free(p);
	}
	pthread_cond_destroy(&ra->fetched);
	pthread_cond_destroy(&ra->work);
	pthread_mutex_destroy(&ra->lock);
	free(ra);
}
