/* Sessions and gc marks (session.h): a session object registered and
 * refreshed by a thread, the marks a writer must not deduplicate against,
 * read from storage (their records: session_records.c). */
#include "session.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "format.h"
#include "io.h"
#include "repo.h"
#include "util.h"

#define MS 1000000LL
#define MARKS_MAX (1024u * 1024u * 1024u)
#define LOAD_RETRIES 20

void session_host_name(char out[128])
{
	memset(out, 0, 128);
	gethostname(out, 127);
}

/* ---- sessions -------------------------------------------------------------- */

struct gc_session {
	store *st;
	char name[64];
	int64_t start_ns, expiry_ns;
	int ok;             /* registered and never lost */
	char why[512];      /* when not ok */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	int thread_running, stop;
};

/* Write our session with a new expiry; the caller holds s->lock. */
static int session_write(struct gc_session *s)
{
	session_rec rec = {s->start_ns, now_ns() + (int64_t)GC_SESSION_TTL_MS * MS, (uint32_t)getpid(), ""};
	session_host_name(rec.host);
	size_t len;
	uint8_t *data;
	int rc = session_encode(&rec, &data, &len);
	if (rc < 0) return rc;
	rc = store_put(s->st, s->name, data, len, 0);
	free(data);
	if (rc == 0) s->expiry_ns = rec.expiry_ns;
	return rc;
}

/* Refresh, unless the session is lost: deleted by gc, or so close to expiry
 * that gc may already judge it dead. Caller holds s->lock. */
static int session_refresh(struct gc_session *s)
{
	if (!s->ok) return error_set(CAIRN_EIO, "%s", s->why);
	uint64_t size;
	int rc = 0;
	if (now_ns() > s->expiry_ns - (int64_t)GC_SESSION_TTL_MS * MS / 2)
		rc = error_set(CAIRN_EIO, "session %s: not refreshed in time; gc may have reclaimed data "
		               "this process relies on (retry)", s->name);
	else if ((rc = store_size(s->st, s->name, &size)) == CAIRN_ENOTFOUND)
		rc = error_set(CAIRN_EIO, "session %s: removed by gc; retry", s->name);
	else if (rc < 0) {
		/* the store's own message names the backend and what failed (an
		 * unreachable OSD is not a gc: e2e_osd_stop) */
		error_prefix("session %s: cannot refresh", s->name);
		rc = CAIRN_EIO;
	} else
		rc = session_write(s);
	if (rc < 0) {
		s->ok = 0;
		snprintf(s->why, sizeof(s->why), "%s", cairn_error_last());
	}
	return rc;
}

static void *session_thread(void *arg)
{
	struct gc_session *s = arg;
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += GC_SESSION_REFRESH_MS / 1000;
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		if (!s->stop && s->ok) session_refresh(s);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

void gc_session_begin(cairn_repo *r)
{
	struct gc_session *s = calloc(1, sizeof(*s));
	if (!s) return;
	uint8_t id[16];
	char hex[33];
	s->st = r->st;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	r->session = s;
	if (io_random(id, sizeof(id)) < 0) {
		snprintf(s->why, sizeof(s->why), "session: %s", cairn_error_last());
		return;
	}
	hex_encode(hex, id, sizeof(id));
	snprintf(s->name, sizeof(s->name), "gc/sessions/%s", hex);
	s->start_ns = now_ns();
	pthread_mutex_lock(&s->lock);
	/* Until the session is in place, nothing protects its own temporary
	 * file: a gc without grace that sees it in both of its scans deletes
	 * it, and the rename fails (e2e_concurrency, once). Each try writes a
	 * new one. */
	int rc = session_write(s);
	for (int again = 0; rc < 0 && again < 3; again++) {
		error_clear();
		rc = session_write(s);
	}
	pthread_mutex_unlock(&s->lock);
	if (rc < 0) {
		snprintf(s->why, sizeof(s->why), "cannot register a session: %s", cairn_error_last());
		error_clear();
		return;
	}
	s->ok = 1;
	/* block signals in the refresher so that they reach the main thread */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	s->thread_running = pthread_create(&s->thread, NULL, session_thread, s) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void gc_session_end(cairn_repo *r)
{
	struct gc_session *s = r ? r->session : NULL;
	if (!s) return;
	pthread_mutex_lock(&s->lock);
	s->stop = 1;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->thread_running) pthread_join(s->thread, NULL);
	if (s->ok) store_delete(s->st, s->name);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
	r->session = NULL;
}

int gc_session_check(cairn_repo *r)
{
	struct gc_session *s = r->session;
	if (!s) return error_set(CAIRN_EIO, "no session registered (out of memory)");
	pthread_mutex_lock(&s->lock);
	int rc = session_refresh(s);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

const char *session_name(cairn_repo *r) { return r->session ? r->session->name : ""; }

/* ---- marks ------------------------------------------------------------------ */

struct marks_load {
	store *st;
	marks *ms;
	int vanished;
};

static int marks_load_one(const char *name, void *payload)
{
	struct marks_load *ml = payload;
	uint8_t *data;
	size_t len;
	int rc = store_get(ml->st, name, MARKS_MAX, &data, &len);
	if (rc == CAIRN_ENOTFOUND) {
		ml->vanished = 1; /* replaced by a newer one meanwhile: list again */
		return 1;
	}
	if (rc < 0) return rc;
	rc = marks_decode(ml->ms, data, len, name, NULL);
	free(data);
	if (rc < 0) return rc;
	marks *ms = ml->ms;
	return strv_push(&ms->objects, &ms->nobjects, &ms->capobjects, name);
}

/* Every mark object, merged; a listing that races a replacement is redone. */
int marks_load(store *st, marks *ms)
{
	for (int tries = 0; tries < LOAD_RETRIES; tries++) {
		int rc = marks_init(ms);
		if (rc < 0) return rc;
		struct marks_load ml = {st, ms, 0};
		rc = store_list(st, "gc/marks", marks_load_one, &ml);
		if (rc < 0 || (rc == 0 && !ml.vanished)) {
			if (rc < 0) marks_free(ms);
			return rc;
		}
		marks_free(ms);
	}
	return error_set(CAIRN_EBUSY, "gc marks: kept changing while being read");
}

int gc_marks_load(cairn_repo *r, chunk_index **out)
{
	marks ms;
	*out = NULL;
	int rc = marks_load(r->st, &ms);
	if (rc < 0) return rc;
	/* the set is the id table already built; hand it over */
	*out = ms.pos;
	ms.pos = NULL;
	marks_free(&ms);
	return 0;
}
