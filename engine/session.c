/* Sessions and gc marks (session.h): a session object registered and
 * refreshed by a thread, the marks a writer must not deduplicate against,
 * and their records. */
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

static uint8_t *session_encode(const session_rec *s, size_t *len)
{
	buf b;
	buf_init(&b);
	buf_header(&b, MAGIC_SESSION, 0);
	buf_u64(&b, (uint64_t)s->start_ns);
	buf_u64(&b, (uint64_t)s->expiry_ns);
	buf_u32(&b, s->pid);
	size_t hl = strlen(s->host);
	buf_u16(&b, (uint16_t)hl);
	buf_put(&b, s->host, hl);
	buf_check(&b);
	if (b.oom) {
		buf_free(&b);
		return NULL;
	}
	return buf_take(&b, len);
}

int gc_session_decode(session_rec *s, const uint8_t *data, size_t len, const char *what)
{
	const uint8_t *body, *host;
	size_t body_len;
	memset(s, 0, sizeof(*s));
	int rc = frame_check(data, len, MAGIC_SESSION, what, &body, &body_len);
	if (rc < 0) return rc;
	cursor c;
	cur_init(&c, body, body_len);
	s->start_ns = (int64_t)cur_u64(&c);
	s->expiry_ns = (int64_t)cur_u64(&c);
	s->pid = cur_u32(&c);
	uint16_t hl = cur_u16(&c);
	if (hl >= sizeof(s->host) || cur_bytes(&c, &host, hl) < 0 || c.bad || c.left != 0)
		return error_set(CAIRN_ECORRUPT, "%s: bad length", what);
	memcpy(s->host, host, hl);
	s->host[hl] = 0;
	return 0;
}

/* Write our session with a new expiry; the caller holds s->lock. */
static int session_write(struct gc_session *s)
{
	session_rec rec = {s->start_ns, now_ns() + (int64_t)GC_SESSION_TTL_MS * MS, (uint32_t)getpid(), ""};
	session_host_name(rec.host);
	size_t len;
	uint8_t *data = session_encode(&rec, &len);
	if (!data) return ERR_OOM();
	int rc = store_put(s->st, s->name, data, len, 0);
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

void marks_free(marks *ms)
{
	free(ms->m);
	index_free(ms->pos);
	for (size_t i = 0; i < ms->nc; i++) free(ms->c[i].name);
	free(ms->c);
	for (size_t i = 0; i < ms->nobjects; i++) free(ms->objects[i]);
	free(ms->objects);
	memset(ms, 0, sizeof(*ms));
}

static int marks_init(marks *ms)
{
	memset(ms, 0, sizeof(*ms));
	return index_new(&ms->pos);
}

mark *marks_find(marks *ms, const oid *id)
{
	const index_entry *e = index_lookup(ms->pos, id);
	return e ? &ms->m[e->offset] : NULL;
}

/* Add or merge (keeping the later, more conservative times). */
int marks_add(marks *ms, const mark *nm)
{
	mark *m = marks_find(ms, &nm->id);
	if (m) {
		if (nm->marked_ns > m->marked_ns) m->marked_ns = nm->marked_ns;
		if (nm->gone_ns > m->gone_ns) m->gone_ns = nm->gone_ns;
		m->prov |= nm->prov;
		return 0;
	}
	if (ms->n == ms->cap) {
		size_t cap = ms->cap ? ms->cap * 2 : 256;
		mark *p = realloc(ms->m, cap * sizeof(*p));
		if (!p) return ERR_OOM();
		ms->m = p;
		ms->cap = cap;
	}
	index_entry e;
	memset(&e, 0, sizeof(e));
	e.id = nm->id;
	e.offset = (uint32_t)ms->n;
	int rc = index_insert(ms->pos, &e);
	if (rc < 0) return rc;
	ms->m[ms->n++] = *nm;
	return 0;
}

cand *cand_find(marks *ms, const char *name)
{
	for (size_t i = 0; i < ms->nc; i++)
		if (!ms->c[i].drop && strcmp(ms->c[i].name, name) == 0) return &ms->c[i];
	return NULL;
}

int cand_add(marks *ms, const char *name, int64_t seen, uint8_t kind)
{
	cand *c = cand_find(ms, name);
	if (c) {
		if (seen > c->seen_ns) c->seen_ns = seen;
		return 0;
	}
	if (ms->nc == ms->capc) {
		size_t cap = ms->capc ? ms->capc * 2 : 64;
		cand *p = realloc(ms->c, cap * sizeof(*p));
		if (!p) return ERR_OOM();
		ms->c = p;
		ms->capc = cap;
	}
	char *copy = strdup(name);
	if (!copy) return ERR_OOM();
	ms->c[ms->nc++] = (cand){copy, seen, kind, 0};
	return 0;
}

uint8_t *marks_encode(const marks *ms, size_t *len)
{
	buf b;
	buf_init(&b);
	buf_header(&b, MAGIC_GCMARKS, 0);
	buf_u64(&b, (uint64_t)now_ns());
	uint32_t n = 0, nc = 0;
	for (size_t i = 0; i < ms->n; i++) n += !ms->m[i].drop;
	for (size_t i = 0; i < ms->nc; i++) nc += !ms->c[i].drop;
	buf_u32(&b, n);
	for (size_t i = 0; i < ms->n; i++) {
		const mark *m = &ms->m[i];
		if (m->drop) continue;
		buf_put(&b, m->id.b, OID_LEN);
		buf_u64(&b, (uint64_t)m->marked_ns);
		buf_u64(&b, (uint64_t)m->gone_ns);
		buf_u8(&b, m->prov ? GCMARK_PROVISIONAL : 0);
	}
	buf_u32(&b, nc);
	for (size_t i = 0; i < ms->nc; i++) {
		const cand *c = &ms->c[i];
		if (c->drop) continue;
		size_t l = strlen(c->name);
		buf_u8(&b, c->kind);
		buf_u16(&b, (uint16_t)l);
		buf_put(&b, c->name, l);
		buf_u64(&b, (uint64_t)c->seen_ns);
	}
	buf_check(&b);
	if (b.oom) {
		buf_free(&b);
		return NULL;
	}
	return buf_take(&b, len);
}

/* Decode one marks object into ms (merged). */
static int gc_marks_decode(marks *ms, const uint8_t *data, size_t len, const char *what)
{
	const uint8_t *body;
	size_t body_len;
	int rc = frame_check(data, len, MAGIC_GCMARKS, what, &body, &body_len);
	if (rc < 0) return rc;
	cursor c;
	cur_init(&c, body, body_len);
	cur_u64(&c);
	uint32_t n = cur_u32(&c);
	if (c.bad || (uint64_t)n * (OID_LEN + 17) > c.left)
		return error_set(CAIRN_ECORRUPT, "%s: %u marks do not fit", what, n);
	for (uint32_t i = 0; i < n; i++) {
		mark m;
		memset(&m, 0, sizeof(m));
		cur_copy(&c, m.id.b, OID_LEN);
		m.marked_ns = (int64_t)cur_u64(&c);
		m.gone_ns = (int64_t)cur_u64(&c);
		uint8_t f = cur_u8(&c);
		if (f & ~GCMARK_PROVISIONAL) return error_set(CAIRN_ECORRUPT, "%s: mark %u: bad flags", what, i);
		m.prov = (f & GCMARK_PROVISIONAL) != 0;
		if ((rc = marks_add(ms, &m)) < 0) return rc;
	}
	uint32_t nc = cur_u32(&c);
	if (c.bad || (uint64_t)nc * 11 > c.left)
		return error_set(CAIRN_ECORRUPT, "%s: %u candidates do not fit", what, nc);
	for (uint32_t i = 0; i < nc; i++) {
		uint8_t kind = cur_u8(&c);
		uint16_t l = cur_u16(&c);
		const uint8_t *name;
		char tmp[1024];
		if (cur_bytes(&c, &name, l) < 0 || l == 0 || l >= sizeof(tmp) || memchr(name, 0, l) ||
		    (kind != CAND_PACK && kind != CAND_TMP))
			return error_set(CAIRN_ECORRUPT, "%s: candidate %u: bad name or kind", what, i);
		memcpy(tmp, name, l);
		tmp[l] = 0;
		int64_t seen = (int64_t)cur_u64(&c);
		if (c.bad) break;
		/* only names gc itself would delete: never a path out of its folders */
		if (strstr(tmp, "..") || (strncmp(tmp, "packs/", 6) != 0 && strncmp(tmp, "tmp/", 4) != 0))
			return error_set(CAIRN_ECORRUPT, "%s: candidate %u: name %s outside packs/ and tmp/",
			                 what, i, tmp);
		if ((rc = cand_add(ms, tmp, seen, kind)) < 0) return rc;
	}
	if (c.bad || c.left != 0) return error_set(CAIRN_ECORRUPT, "%s: bad length", what);
	return 0;
}

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
	rc = gc_marks_decode(ml->ms, data, len, name);
	free(data);
	if (rc < 0) return rc;
	marks *ms = ml->ms;
	if (ms->nobjects == ms->capobjects) {
		size_t cap = ms->capobjects ? ms->capobjects * 2 : 4;
		char **p = realloc(ms->objects, cap * sizeof(*p));
		if (!p) return ERR_OOM();
		ms->objects = p;
		ms->capobjects = cap;
	}
	if (!(ms->objects[ms->nobjects] = strdup(name))) return ERR_OOM();
	ms->nobjects++;
	return 0;
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

int gc_record_check(const uint8_t *data, size_t len)
{
	if (len >= 8 && memcmp(data, MAGIC_SESSION, 8) == 0) {
		session_rec rec;
		return gc_session_decode(&rec, data, len, "session");
	}
	marks ms;
	int rc = marks_init(&ms);
	if (rc == 0) rc = gc_marks_decode(&ms, data, len, "gc marks");
	marks_free(&ms);
	return rc;
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
