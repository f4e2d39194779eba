/* The collector (internal.h): cairn_gc: the mark phase, the sweep (packs
 * rewritten, segments and objects deleted) and the marks stored between runs. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "options.h"
#include "io.h"
#include "pack.h"
#include "util.h"

/* Write ms as a new marks object, then delete the ones it replaces. With
 * nothing to keep, only the deletions happen. */
static int marks_store(store *st, marks *ms, cairn_gc_result *res)
{
	int rc = 0;
	size_t keep = 0;
	for (size_t i = 0; i < ms->n; i++) keep += !ms->m[i].drop;
	for (size_t i = 0; i < ms->nc; i++) keep += !ms->c[i].drop;
	char *newname = NULL;
	if (keep) {
		uint8_t id[16], *data;
		char hex[33], name[64];
		size_t len;
		if ((rc = io_random(id, sizeof(id))) < 0) return rc;
		hex_encode(hex, id, sizeof(id));
		snprintf(name, sizeof(name), "gc/marks/%s", hex);
		if ((rc = marks_encode(ms, now_ns(), &data, &len)) < 0) return rc;
		rc = store_put(st, name, data, len, STORE_EXCL);
		free(data);
		if (rc < 0) return rc;
		if (res) res->bytes_written += len;
		if (!(newname = strdup(name))) return ERR_OOM();
	}
	for (size_t i = 0; i < ms->nobjects; i++) {
		uint64_t size = 0;
		store_size(st, ms->objects[i], &size);
		rc = store_delete(st, ms->objects[i]);
		if (rc == CAIRN_ENOTFOUND) rc = 0;
		if (rc < 0) {
			free(newname);
			return rc;
		}
		if (res) res->bytes_deleted += size;
		free(ms->objects[i]);
	}
	ms->nobjects = 0;
	if (newname) {
		if (!ms->capobjects) {
			ms->objects = malloc(4 * sizeof(char *));
			if (!ms->objects) {
				free(newname);
				return ERR_OOM();
			}
			ms->capobjects = 4;
		}
		ms->objects[ms->nobjects++] = newname;
	}
	return 0;
}

typedef struct gc_run {
	cairn_repo *r;
	cairn_gc_result *res;
	int dry;
	int64_t grace, skew;
	unsigned rewrite_percent;
	store_lock *lock;
	int64_t last_refresh;
	marks ms;
} gc_run;

static int keep_lock(gc_run *g)
{
	if (now_ns() - g->last_refresh < (int64_t)GC_LOCK_TTL_MS * MS / 4) return 0;
	g->last_refresh = now_ns();
	return store_lock_refresh(g->lock);
}

/* May an object that became decidable at t go now? Old enough, and every
 * live session started after it (so none can still use it). */
static int may_go(const gc_run *g, int64_t t, int64_t min_start, int64_t now)
{
	return t + g->grace <= now && min_start > t + g->skew;
}

/* Unfinished writes (S3 multipart uploads) go like tmp files: begun long
 * enough ago, and before every live session started (so a take still
 * writing one is not cut off; a killed take's session is dead). */
struct sweep_ctx {
	gc_run *g;
	int64_t min_start, now;
};

static int sweep_visit(const char *name, const char *id, int64_t began_ns, void *payload)
{
	struct sweep_ctx *sc = payload;
	if (!may_go(sc->g, began_ns, sc->min_start, sc->now)) return 0;
	if (!sc->g->dry) {
		int rc = store_unfinished_abort(sc->g->r->st, name, id);
		if (rc < 0) return rc;
	}
	sc->g->res->uploads_aborted++;
	return keep_lock(sc->g);
}

static int sweep_unfinished(gc_run *g, int64_t min_start, int64_t now)
{
	struct sweep_ctx sc = {g, min_start, now};
	return store_unfinished_list(g->r->st, sweep_visit, &sc);
}

/* Phase 1: mark what scan s found dead; record candidates. */
static int mark_phase(gc_run *g, scan *s)
{
	int rc;
	marks *ms = &g->ms;
	int64_t t = s->done_ns;
	for (size_t i = 0; i < ms->n; i++) {
		mark *m = &ms->m[i];
		if (m->prov) { /* never made durable with a known time: mark again */
			m->prov = 1;
			m->marked_ns = t;
		}
		if (index_key_get(s->live, m->id.b, OID_LEN)) m->drop = 1; /* referenced again */
		else if (!index_lookup(s->canon, &m->id) && m->gone_ns == 0) m->gone_ns = t;
		else if (index_lookup(s->canon, &m->id)) m->gone_ns = 0;
	}
	for (size_t i = 0; i < s->nseg; i++)
		for (size_t k = 0; k < s->seg[i].n; k++) {
			const index_entry *e = &s->seg[i].e[k];
			if (index_key_get(s->live, e->id.b, OID_LEN) || marks_find(ms, &e->id)) continue;
			mark m = {e->id, t, 0, 1, 0};
			if ((rc = marks_add(ms, &m)) < 0) return rc;
		}
	/* unindexed packs and tmp files: candidates from the first sighting */
	chunk_index *used;
	if ((rc = index_new(&used)) < 0) return rc;
	for (size_t i = 0; i < s->nseg && rc == 0; i++)
		for (size_t k = 0; k < s->seg[i].n && rc == 0; k++) {
			int x = index_key_put(used, s->seg[i].e[k].pack, PACK_ID_LEN, 0);
			if (x < 0) rc = x;
		}
	for (size_t i = 0; i < s->npacks && rc == 0; i++)
		if (!index_key_get(used, s->packs[i].id, PACK_ID_LEN)) rc = cand_add(ms, s->packs[i].name, t, CAND_PACK);
	index_free(used);
	for (size_t i = 0; i < s->ntmp && rc == 0; i++) rc = cand_add(ms, s->tmp[i], t, CAND_TMP);
	if (rc < 0) return rc;
	if (!g->dry && (rc = marks_store(g->r->st, ms, NULL)) < 0) return rc;
	int64_t durable = now_ns();
	for (size_t i = 0; i < ms->n; i++)
		if (ms->m[i].prov) {
			ms->m[i].prov = 0;
			ms->m[i].marked_ns = durable;
		}
	return 0;
}

static int entry_cmp_offset(const void *a, const void *b)
{
	const index_entry *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Copy entries (one pack's kept blobs), verified, into new packs; their new
 * locations go to out. */
typedef struct rewriter {
	gc_run *g;
	pack_writer *pw;
	index_entry *out;
	size_t nout, capout;
} rewriter;

static int out_push(rewriter *w, const index_entry *e)
{
	if (w->nout == w->capout) {
		size_t cap = w->capout ? w->capout * 2 : 1024;
		index_entry *p = realloc(w->out, cap * sizeof(*p));
		if (!p) return ERR_OOM();
		w->out = p;
		w->capout = cap;
	}
	w->out[w->nout++] = *e;
	return 0;
}

static int rewriter_flush(rewriter *w)
{
	if (!w->pw) return 0;
	uint8_t *data = NULL, id[PACK_ID_LEN];
	size_t len, nblobs;
	const pack_blob *blobs;
	char name[64];
	int rc = pack_writer_finish(w->pw, &data, &len, &blobs, &nblobs);
	if (rc == 0) rc = io_random(id, sizeof(id));
	if (rc == 0) {
		repo_pack_name(name, id);
		rc = store_put(w->g->r->st, name, data, len, STORE_EXCL);
	}
	for (size_t i = 0; rc == 0 && i < nblobs; i++) {
		index_entry e;
		memset(&e, 0, sizeof(e));
		e.id = blobs[i].id;
		memcpy(e.pack, id, PACK_ID_LEN);
		e.offset = blobs[i].offset;
		e.raw_len = blobs[i].raw_len;
		e.stored_len = blobs[i].stored_len;
		e.type = blobs[i].type;
		e.comp = blobs[i].comp;
		rc = out_push(w, &e);
	}
	if (rc == 0) {
		w->g->res->packs_written++;
		w->g->res->bytes_written += len;
	}
	free(data);
	pack_writer_free(w->pw);
	w->pw = NULL;
	return rc;
}

static int rewrite_pack(rewriter *w, const pack_info *p, index_entry *kept, size_t n)
{
	int rc = 0;
	qsort(kept, n, sizeof(*kept), entry_cmp_offset);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const index_entry *e = &kept[i];
		char hex[OID_HEX_LEN + 1], what[160];
		size_t raw_size = (size_t)e->stored_len + BLOB_OVERHEAD;
		uint8_t *raw = malloc(raw_size), *plain = NULL;
		if (!raw) return ERR_OOM();
		oid_hex(hex, &e->id);
		snprintf(what, sizeof(what), "gc: blob %s in %s", hex, p->name);
		rc = store_get_range(w->g->r->st, p->name, e->offset, raw, raw_size);
		pack_blob want = {e->id, e->type, e->comp, e->raw_len, e->stored_len, e->offset};
		/* verified before it is copied: gc never spreads damage */
		if (rc == 0) rc = pack_blob_open(raw, raw_size, &want, what, &plain);
		free(plain);
		if (rc == 0 && !w->pw) rc = pack_writer_new(&w->pw);
		if (rc == 0)
			rc = pack_writer_add(w->pw, &e->id, e->type, e->comp, raw + BLOB_HEADER_LEN,
			                     e->stored_len, e->raw_len);
		free(raw);
		if (rc == 0 && pack_writer_size(w->pw) >= store_pack_target(w->g->r->st)) rc = rewriter_flush(w);
		if (rc == 0) rc = keep_lock(w->g);
	}
	return rc;
}

static int write_segments(gc_run *g, const index_entry *e, size_t n)
{
	int rc = 0;
	for (size_t start = 0; start < n && rc == 0; start += SEGMENT_ENTRIES) {
		size_t k = n - start < SEGMENT_ENTRIES ? n - start : SEGMENT_ENTRIES;
		uint8_t *data, id[16];
		size_t len;
		char hex[33], name[64];
		if ((rc = index_segment_encode(e + start, k, &data, &len)) < 0) break;
		if ((rc = io_random(id, sizeof(id))) == 0) {
			hex_encode(hex, id, sizeof(id));
			snprintf(name, sizeof(name), "index/%s", hex);
			rc = store_put(g->r->st, name, data, len, STORE_EXCL);
		}
		free(data);
		if (rc == 0) {
			g->res->segments_written++;
			g->res->bytes_written += len;
		}
	}
	return rc;
}

static int delete_object(gc_run *g, const char *name, uint64_t size)
{
	int rc = store_delete(g->r->st, name);
	if (rc == CAIRN_ENOTFOUND) return 0;
	if (rc == 0) g->res->bytes_deleted += size;
	return rc;
}

/* Phase 2 on a fresh scan: delete what may go, rewrite what is mostly garbage. */
static int sweep_phase(gc_run *g, scan *s)
{
	int rc = 0;
	marks *ms = &g->ms;
	cairn_gc_result *res = g->res;
	int64_t now = now_ns();
	index_entry *keep = NULL, *kept = NULL;
	size_t nkeep = 0, capkeep = 0;
	rewriter w = {g, NULL, NULL, 0, 0};
	chunk_index *dropped = NULL, *emitted = NULL;

	res->snapshots = s->nsnapshots;
	for (size_t i = 0; i < ms->n; i++)
		if (index_key_get(s->live, ms->m[i].id.b, OID_LEN)) ms->m[i].drop = 1;
	if ((rc = index_new(&dropped)) < 0) goto done;

	/* classify every index entry: live (canonical, referenced), dropped
	 * (a duplicate, or dead and allowed to go), kept (dead, still pending) */
	for (size_t i = 0; i < s->nseg; i++)
		for (size_t k = 0; k < s->seg[i].n; k++) {
			const index_entry *e = &s->seg[i].e[k];
			const index_entry *c = index_lookup(s->canon, &e->id);
			const index_entry *pp = index_key_get(s->packpos, e->pack, PACK_ID_LEN);
			pack_info *p = pp ? &s->packs[pp->offset] : NULL;
			uint64_t bytes = (uint64_t)e->stored_len + BLOB_OVERHEAD;
			int canonical = c && memcmp(c->pack, e->pack, PACK_ID_LEN) == 0 && c->offset == e->offset;
			if (p) p->indexed = 1;
			if (!canonical) {
				if (p) {
					p->drop_bytes += bytes;
					p->ndrop++;
				}
				continue;
			}
			if (index_key_get(s->live, e->id.b, OID_LEN)) {
				res->live_blobs++;
				if (p) {
					p->live_bytes += bytes;
					p->nlive++;
				}
				continue;
			}
			res->dead_blobs++;
			mark *m = marks_find(ms, &e->id);
			if (m && !m->drop && m->gone_ns == 0 && may_go(g, m->marked_ns, s->min_start, now) && p) {
				p->drop_bytes += bytes;
				p->ndrop++;
				if ((rc = index_key_put(dropped, e->id.b, OID_LEN, 0)) < 0) goto done;
			} else {
				res->pending_blobs++;
				res->pending_bytes += bytes;
				if (p) {
					p->kept_bytes += bytes;
					p->nkept++;
				}
			}
		}

	/* per pack: all garbage -> out of the index; mostly garbage -> rewritten */
	for (size_t i = 0; i < s->npacks; i++) {
		pack_info *p = &s->packs[i];
		if (!p->indexed || p->ndrop == 0) continue;
		if (p->nlive == 0 && p->nkept == 0) p->unindex = 1;
		else if (p->drop_bytes * 100 >= (uint64_t)g->rewrite_percent * (p->drop_bytes + p->live_bytes + p->kept_bytes))
			p->rewrite = p->unindex = 1;
	}
	int changed = 0;
	for (size_t i = 0; i < s->npacks; i++) changed |= s->packs[i].unindex;
	if (!changed && s->nseg <= 16) goto candidates;

	/* the new index: every canonical entry of a pack that stays, and the
	 * rewritten blobs' new locations; an entry listed by two segments (a
	 * crash between writing a segment and deleting the ones it replaced)
	 * is taken once */
	if ((rc = index_new(&emitted)) < 0) goto done;
	for (size_t i = 0; i < s->nseg; i++)
		for (size_t k = 0; k < s->seg[i].n; k++) {
			const index_entry *e = &s->seg[i].e[k];
			const index_entry *c = index_lookup(s->canon, &e->id);
			if (!(c && memcmp(c->pack, e->pack, PACK_ID_LEN) == 0 && c->offset == e->offset)) continue;
			const index_entry *pp = index_key_get(s->packpos, e->pack, PACK_ID_LEN);
			if (pp && s->packs[pp->offset].unindex) continue;
			if ((rc = index_key_put(emitted, e->id.b, OID_LEN, 0)) != 0) {
				if (rc < 0) goto done;
				rc = 0;
				continue;
			}
			if (nkeep == capkeep) {
				capkeep = capkeep ? capkeep * 2 : 1024;
				index_entry *x = realloc(keep, capkeep * sizeof(*x));
				if (!x) {
					rc = ERR_OOM();
					goto done;
				}
				keep = x;
			}
			keep[nkeep++] = *e;
		}
	for (size_t i = 0; i < s->npacks; i++) {
		pack_info *p = &s->packs[i];
		if (!p->rewrite) continue;
		size_t n = 0;
		free(kept);
		if (!(kept = malloc((p->nlive + p->nkept + 1) * sizeof(*kept)))) {
			rc = ERR_OOM();
			goto done;
		}
		for (size_t a = 0; a < s->nseg; a++)
			for (size_t k = 0; k < s->seg[a].n; k++) {
				const index_entry *e = &s->seg[a].e[k];
				if (memcmp(e->pack, p->id, PACK_ID_LEN) != 0) continue;
				const index_entry *c = index_lookup(s->canon, &e->id);
				if (!(c && memcmp(c->pack, e->pack, PACK_ID_LEN) == 0 && c->offset == e->offset)) continue;
				if (index_key_get(dropped, e->id.b, OID_LEN) || n > p->nlive + p->nkept) continue;
				if ((rc = index_key_put(emitted, e->id.b, OID_LEN, 0)) != 0) {
					if (rc < 0) goto done;
					rc = 0;
					continue;
				}
				kept[n++] = *e;
			}
		res->packs_rewritten++;
		if (!g->dry && (rc = rewrite_pack(&w, p, kept, n)) < 0) goto done;
	}
	if (!g->dry && (rc = rewriter_flush(&w)) < 0) goto done;
	for (size_t i = 0; i < w.nout; i++) {
		if (nkeep == capkeep) {
			capkeep = capkeep ? capkeep * 2 : 1024;
			index_entry *x = realloc(keep, capkeep * sizeof(*x));
			if (!x) {
				rc = ERR_OOM();
				goto done;
			}
			keep = x;
		}
		keep[nkeep++] = w.out[i];
	}
	/* new segments durable before the old ones go: a reader sees either */
	if (!g->dry && (rc = write_segments(g, keep, nkeep)) < 0) goto done;
	for (size_t i = 0; i < s->nseg; i++) {
		res->segments_deleted++;
		if (!g->dry && (rc = delete_object(g, s->seg[i].name, s->seg[i].size)) < 0) goto done;
		if (g->dry) res->bytes_deleted += s->seg[i].size;
		if ((rc = keep_lock(g)) < 0) goto done;
	}
	if (g->dry && nkeep) { /* what write_segments would write (format.h) */
		chunk_index *np = NULL;
		size_t npacks = 0;
		if (index_new(&np) == 0)
			for (size_t i = 0; i < nkeep; i++) npacks += index_key_put(np, keep[i].pack, PACK_ID_LEN, 0) == 0;
		index_free(np);
		res->segments_written++;
		res->bytes_written += index_segment_len(nkeep, npacks);
	}
	int64_t u = now_ns();
	for (size_t i = 0; i < ms->n; i++)
		if (!ms->m[i].drop && index_key_get(dropped, ms->m[i].id.b, OID_LEN)) {
			ms->m[i].gone_ns = u;
			res->deleted_blobs++;
		}
	for (size_t i = 0; i < s->npacks; i++)
		if (s->packs[i].unindex && (rc = cand_add(ms, s->packs[i].name, u, CAND_PACK)) < 0) goto done;

candidates:
	/* a fresh look at the sessions: who may still use what just became decidable */
	if ((rc = scan_sessions(g->r, s)) < 0) goto done;
	now = now_ns();
	for (size_t i = 0; i < ms->n; i++) {
		mark *m = &ms->m[i];
		if (m->drop) continue;
		if (m->gone_ns == 0 && !index_lookup(s->canon, &m->id)) m->gone_ns = s->done_ns;
		/* a gone mark stays while a session that may have the id in its index lives */
		if (m->gone_ns && s->min_start > m->gone_ns + g->skew) m->drop = 1;
	}
	for (size_t i = 0; i < ms->nc; i++) {
		cand *c = &ms->c[i];
		if (c->drop) continue;
		uint64_t size = 0;
		int present = 0, indexed = 0;
		if (c->kind == CAND_PACK) {
			for (size_t k = 0; k < s->npacks; k++)
				if (strcmp(s->packs[k].name, c->name) == 0) {
					present = 1;
					size = s->packs[k].size;
					indexed = s->packs[k].indexed && !s->packs[k].unindex;
				}
		} else {
			for (size_t k = 0; k < s->ntmp; k++)
				if (strcmp(s->tmp[k], c->name) == 0) {
					present = 1;
					size = s->tmp_size[k];
				}
		}
		if (!present || indexed) {
			c->drop = 1;
			continue;
		}
		if (!may_go(g, c->seen_ns, s->min_start, now)) continue;
		/* a writer on this host that still runs, with a session or not (its
		 * session's own first write, a forget): never taken from under it */
		if (c->kind == CAND_TMP && io_tmp_owner_alive(c->name)) continue;
		if (!g->dry && (rc = delete_object(g, c->name, size)) < 0) goto done;
		if (g->dry) res->bytes_deleted += size;
		if (c->kind == CAND_PACK) res->packs_deleted++;
		else res->tmp_deleted++;
		c->drop = 1;
		if ((rc = keep_lock(g)) < 0) goto done;
	}
	if ((rc = sweep_unfinished(g, s->min_start, now)) < 0) goto done;
	/* packs and tmp files that appeared since phase 1: candidates from now */
	for (size_t i = 0; i < s->npacks && rc == 0; i++)
		if (!s->packs[i].indexed && !cand_find(ms, s->packs[i].name))
			rc = cand_add(ms, s->packs[i].name, s->done_ns, CAND_PACK);
	for (size_t i = 0; i < s->ntmp && rc == 0; i++)
		if (!cand_find(ms, s->tmp[i])) rc = cand_add(ms, s->tmp[i], s->done_ns, CAND_TMP);
	if (rc < 0) goto done;

	for (size_t i = 0; i < s->ndead; i++) {
		res->sessions_removed++;
		if (!g->dry) store_delete(g->r->st, s->dead_sessions[i]);
	}
	for (size_t i = 0; i < s->nmarkers; i++) {
		const char *id = strrchr(s->markers[i], '/');
		id = id ? id + 1 : s->markers[i];
		int found = 0;
		for (size_t k = 0; k < s->nsnap_ids && !found; k++) found = strcmp(s->snap_ids[k], id) == 0;
		char name[128];
		uint64_t size;
		snprintf(name, sizeof(name), "snapshots/%s", id);
		if (found || store_size(g->r->st, name, &size) == 0) continue;
		/* an inodes record is written after its manifest: one without is a
		 * forget's leftover, never a take's work in progress */
		if (strncmp(s->markers[i], "inodes/", 7) == 0) res->inodes_removed++;
		else res->markers_removed++;
		if (!g->dry) store_delete(g->r->st, s->markers[i]);
	}
	if (!g->dry) rc = marks_store(g->r->st, ms, res);
done:
	free(keep);
	free(kept);
	free(w.out);
	pack_writer_free(w.pw);
	index_free(dropped);
	index_free(emitted);
	return rc;
}

static int gc_run_all(cairn_gc_result *out, cairn_repo *repo, const cairn_gc_options *opts)
{
	int rc;
	cairn_gc_result res;
	gc_run g;
	scan s1, s2;
	int64_t t0 = now_ns();

	memset(&res, 0, sizeof(res));
	memset(&g, 0, sizeof(g));
	memset(&s1, 0, sizeof(s1));
	memset(&s2, 0, sizeof(s2));
	if (out) memset(out, 0, sizeof(*out));
	g.r = repo;
	g.res = &res;
	g.dry = opts && opts->dry_run;
	res.dry_run = g.dry;
	g.grace = (opts && opts->grace_ms >= 0 ? opts->grace_ms : (int64_t)GC_DEFAULT_GRACE_MS) * MS;
	g.skew = g.grace < (int64_t)GC_MAX_SKEW_MS * MS ? g.grace : (int64_t)GC_MAX_SKEW_MS * MS;
	g.rewrite_percent = opts && opts->rewrite_percent ? opts->rewrite_percent : 50;
	if (g.rewrite_percent > 100) return error_set(CAIRN_EUSAGE, "gc: rewrite percentage %u above 100", g.rewrite_percent);
	uint64_t wait = opts && opts->lock_wait_ms ? opts->lock_wait_ms : GC_DEFAULT_WAIT_MS;

	if ((rc = store_lock_acquire(&g.lock, repo->st, "gc", GC_LOCK_TTL_MS, wait)) < 0) return rc;
	g.last_refresh = now_ns();
	if ((rc = marks_load(repo->st, &g.ms)) < 0) goto done;
	if ((rc = scan_run(repo, &s1)) < 0) goto done;
	if ((rc = keep_lock(&g)) < 0) goto done;
	if ((rc = mark_phase(&g, &s1)) < 0) goto done;
	if ((rc = keep_lock(&g)) < 0) goto done;
	if ((rc = scan_run(repo, &s2)) < 0) goto done;
	if ((rc = keep_lock(&g)) < 0) goto done;
	rc = sweep_phase(&g, &s2);
done:
	scan_free(&s1);
	scan_free(&s2);
	marks_free(&g.ms);
	store_lock_release(g.lock);
	res.bytes_reclaimed = (int64_t)res.bytes_deleted - (int64_t)res.bytes_written;
	res.duration_ms = (uint64_t)(now_ns() - t0) / 1000000;
	if (out) *out = res;
	return rc;
}

CAIRN_EXTERN int cairn_gc(cairn_gc_result *out, cairn_repo *repo, const cairn_gc_options *opts)
{
	static const size_t option_sizes[] = {sizeof(cairn_gc_options)};
	static const size_t result_sizes[] = {sizeof(cairn_gc_result)};
	cairn_gc_options o = CAIRN_GC_OPTIONS_INIT;
	cairn_gc_result r = CAIRN_GC_RESULT_INIT;
	int rc = result_check(out, CAIRN_GC_RESULT_VERSION, "gc");
	if (rc == 0) rc = options_copy(&o, opts, option_sizes, CAIRN_GC_OPTIONS_VERSION, "gc");
	if (rc < 0) return rc;
	rc = gc_run_all(&r, repo, &o);
	result_copy(out, &r, result_sizes);
	return rc;
}
