/* Sessions and gc marks (session_records.h): their records as bytes and back, no
 * I/O, and the marks in memory that a decoded record merges into. */
#define ERROR_CLASS "session"
#include "session_records.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"
#include "format.h"

int session_encode(const session_rec *s, uint8_t **out, size_t *len)
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
	return buf_finish(&b, out, len);
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

void marks_free(marks *ms)
{
	free(ms->m);
	index_free(ms->pos);
	index_free(ms->cpos);
	for (size_t i = 0; i < ms->nc; i++) free(ms->c[i].name);
	free(ms->c);
	for (size_t i = 0; i < ms->nobjects; i++) free(ms->objects[i]);
	free(ms->objects);
	memset(ms, 0, sizeof(*ms));
}

int marks_init(marks *ms)
{
	memset(ms, 0, sizeof(*ms));
	int rc = index_new(&ms->pos);
	if (rc == 0 && (rc = index_new(&ms->cpos)) < 0) marks_free(ms);
	return rc;
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
	mark *p = vec_grow(ms->m, &ms->cap, ms->n + 1, sizeof(*p));
	if (!p) return ERR_OOM();
	ms->m = p;
	index_entry e;
	memset(&e, 0, sizeof(e));
	e.id = nm->id;
	e.offset = (uint32_t)ms->n;
	int rc = index_insert(ms->pos, &e);
	if (rc < 0) return rc;
	ms->m[ms->n++] = *nm;
	return 0;
}

/* A candidate's entry in cpos: keyed by the SHA-256 of its name, so that a
 * record of many candidates loads in linear time (a search of the list for
 * each was quadratic in what a hostile record may hold). It holds the latest
 * candidate of that name: only the latest can be not dropped. */
static index_entry *cand_slot(marks *ms, const char *name, oid *key)
{
	hash_sha256(key, name, strlen(name));
	return (index_entry *)index_lookup(ms->cpos, key);
}

cand *cand_find(marks *ms, const char *name)
{
	oid key;
	const index_entry *e = cand_slot(ms, name, &key);
	return e && !ms->c[e->offset].drop ? &ms->c[e->offset] : NULL;
}

int cand_add(marks *ms, const char *name, int64_t seen, uint8_t kind)
{
	oid key;
	index_entry *e = cand_slot(ms, name, &key);
	if (e && !ms->c[e->offset].drop) {
		cand *c = &ms->c[e->offset];
		if (seen > c->seen_ns) c->seen_ns = seen;
		return 0;
	}
	cand *p = vec_grow(ms->c, &ms->capc, ms->nc + 1, sizeof(*p));
	if (!p) return ERR_OOM();
	ms->c = p;
	char *copy = strdup(name);
	if (!copy) return ERR_OOM();
	if (e) {
		e->offset = (uint32_t)ms->nc; /* the dropped one's name again */
	} else {
		int rc = index_key_put(ms->cpos, key.b, OID_LEN, (uint32_t)ms->nc);
		if (rc < 0) {
			free(copy);
			return rc;
		}
	}
	ms->c[ms->nc++] = (cand){copy, seen, kind, 0};
	return 0;
}

int marks_encode(const marks *ms, int64_t time_ns, uint8_t **out, size_t *len)
{
	buf b;
	buf_init(&b);
	buf_header(&b, MAGIC_GCMARKS, 0);
	buf_u64(&b, (uint64_t)time_ns);
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
	return buf_finish(&b, out, len);
}

int marks_decode(marks *ms, const uint8_t *data, size_t len, const char *what, int64_t *time_ns)
{
	const uint8_t *body;
	size_t body_len;
	int rc = frame_check(data, len, MAGIC_GCMARKS, what, &body, &body_len);
	if (rc < 0) return rc;
	cursor c;
	cur_init(&c, body, body_len);
	int64_t t = (int64_t)cur_u64(&c);
	if (time_ns) *time_ns = t;
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
