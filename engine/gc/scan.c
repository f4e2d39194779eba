/* The collector (internal.h): a scan of the repository: sessions, index
 * segments, packs, temporary files and markers listed, and the blobs the
 * snapshots reference. */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "util.h"

void scan_free(scan *s)
{
	strv_free(s->dead_sessions, s->ndead);
	for (size_t i = 0; i < s->nseg; i++) {
		free(s->seg[i].name);
		free(s->seg[i].e);
	}
	free(s->seg);
	index_free(s->canon);
	free(s->packs);
	index_free(s->packpos);
	index_free(s->live);
	strv_free(s->snap_ids, s->nsnap_ids);
	strv_free(s->tmp, s->ntmp);
	free(s->tmp_size);
	strv_free(s->markers, s->nmarkers);
	memset(s, 0, sizeof(*s));
}

struct sess_ctx {
	cairn_repo *r;
	scan *s;
	int64_t now;
	size_t capdead;
	int rc;
};

static int session_visit(const char *name, void *payload)
{
	struct sess_ctx *sc = payload;
	uint8_t *data;
	size_t len;
	session_rec rec;
	char host[128];
	if (strcmp(name, session_name(sc->r)) == 0) return 0;
	int rc = store_get(sc->r->st, name, SESSION_MAX, &data, &len);
	if (rc == CAIRN_ENOTFOUND) return 0; /* ended meanwhile */
	if (rc < 0) return rc;
	rc = gc_session_decode(&rec, data, len, name);
	free(data);
	session_host_name(host);
	int dead = rc < 0 || rec.expiry_ns < sc->now ||
	           (strcmp(host, rec.host) == 0 && rec.pid > 0 && kill((pid_t)rec.pid, 0) < 0 && errno == ESRCH);
	if (dead) return strv_push(&sc->s->dead_sessions, &sc->s->ndead, &sc->capdead, name);
	sc->s->nlive_sessions++;
	if (rec.start_ns < sc->s->min_start) sc->s->min_start = rec.start_ns;
	return 0;
}

int scan_sessions(cairn_repo *r, scan *s)
{
	strv_free(s->dead_sessions, s->ndead);
	s->dead_sessions = NULL;
	s->ndead = 0;
	s->nlive_sessions = 0;
	s->min_start = INT64_MAX;
	struct sess_ctx sc = {r, s, now_ns(), 0, 0};
	return store_list(r->st, "gc/sessions", session_visit, &sc);
}

struct seg_ctx {
	cairn_repo *r;
	scan *s;
	size_t cap;
	int vanished;
};

static int segment_visit(const char *name, void *payload)
{
	struct seg_ctx *sc = payload;
	scan *s = sc->s;
	uint8_t *data;
	size_t len;
	int rc = store_get(sc->r->st, name, SEGMENT_MAX, &data, &len);
	if (rc == CAIRN_ENOTFOUND) {
		sc->vanished = 1;
		return 1;
	}
	if (rc < 0) return rc;
	segment *p = vec_grow(s->seg, &sc->cap, s->nseg + 1, sizeof(*p));
	if (!p) {
		free(data);
		return ERR_OOM();
	}
	s->seg = p;
	segment *g = &s->seg[s->nseg];
	memset(g, 0, sizeof(*g));
	g->size = len;
	rc = index_segment_decode(data, len, name, &g->e, &g->n);
	free(data);
	if (rc < 0) {
		error_prefix("gc: run cairn fsck --repair");
		return rc;
	}
	if (!(g->name = strdup(name))) {
		free(g->e);
		return ERR_OOM();
	}
	s->nseg++;
	return 0;
}

static int pack_visit(const char *name, void *payload)
{
	struct seg_ctx *sc = payload;
	scan *s = sc->s;
	uint8_t id[PACK_ID_LEN];
	char canonical[64];
	const char *base = strrchr(name, '/');
	if (!base || hex_decode(id, PACK_ID_LEN, base + 1) < 0) return 0; /* not a pack: leave it */
	repo_pack_name(canonical, id);
	if (strcmp(canonical, name) != 0) return 0;
	pack_info *p = vec_grow(s->packs, &s->cappacks, s->npacks + 1, sizeof(*p));
	if (!p) return ERR_OOM();
	s->packs = p;
	p = &s->packs[s->npacks];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	memcpy(p->id, id, PACK_ID_LEN);
	int rc = store_size(sc->r->st, name, &p->size);
	if (rc == CAIRN_ENOTFOUND) return 0;
	if (rc < 0) return rc;
	rc = index_key_put(s->packpos, id, PACK_ID_LEN, (uint32_t)s->npacks);
	if (rc < 0) return rc;
	s->npacks++;
	return 0;
}

static int tmp_visit(const char *name, void *payload)
{
	struct seg_ctx *sc = payload;
	scan *s = sc->s;
	uint64_t size = 0;
	if (store_size(sc->r->st, name, &size) < 0) return 0; /* gone meanwhile */
	if (s->ntmp == s->captmp) {
		size_t cap = s->captmp ? s->captmp * 2 : 16;
		uint64_t *sz = realloc(s->tmp_size, cap * sizeof(*sz));
		if (!sz) return ERR_OOM();
		s->tmp_size = sz;
		char **v = realloc(s->tmp, cap * sizeof(*v));
		if (!v) return ERR_OOM();
		s->tmp = v;
		s->captmp = cap;
	}
	if (!(s->tmp[s->ntmp] = strdup(name))) return ERR_OOM();
	s->tmp_size[s->ntmp++] = size;
	return 0;
}

static int marker_visit(const char *name, void *payload)
{
	struct seg_ctx *sc = payload;
	size_t cap = sc->s->capmarkers;
	int rc = strv_push(&sc->s->markers, &sc->s->nmarkers, &cap, name);
	sc->s->capmarkers = cap;
	return rc;
}

/* The live set: every tree and chunk reachable from a snapshot. */
typedef struct live_ctx {
	cairn_repo *shadow; /* reads through the scan's own index */
	scan *s;
	const char *snap;
	int damaged; /* the snapshot is marked damaged: unreadable parts are skipped */
} live_ctx;

/* repo_walk_trees' skip: a tree marked live is covered, with all below it */
static int live_already(void *payload, const oid *id)
{
	live_ctx *lc = payload;
	return index_key_get(lc->s->live, id->b, OID_LEN) != NULL;
}

/* repo_walk_trees' visit: what the tree refers to is live */
static int live_refs(void *payload, uint32_t seq, const oid *id, tree *t, const uint8_t *plain, size_t len)
{
	(void)seq;
	(void)id;
	(void)plain;
	(void)len;
	live_ctx *lc = payload;
	int rc = 0;
	for (size_t i = 0; i < t->n && rc >= 0; i++) {
		const tree_entry *e = &t->entries[i];
		if (e->type == TREE_DIR) rc = index_key_put(lc->s->live, e->subtree.b, OID_LEN, 0);
		for (uint32_t k = 0; e->type == TREE_REG && k < e->nchunks && rc >= 0; k++)
			rc = index_key_put(lc->s->live, e->chunks[k].id.b, OID_LEN, 0);
	}
	return rc < 0 ? rc : 0;
}

/* Every tree and chunk below id into the live set: the trees read in
 * batches (repo_walk_trees), those marked by an earlier snapshot not
 * again. In a snapshot marked damaged, unreadable trees are left out. */
static int live_tree(live_ctx *lc, const oid *id)
{
	int rc = index_key_put(lc->s->live, id->b, OID_LEN, 0);
	if (rc != 0) return rc < 0 ? rc : 0; /* marked already: so is everything below it */
	tree_walk w = {live_refs, live_already, lc, NULL, lc->damaged, NULL};
	if ((rc = repo_walk_trees(lc->shadow, id, &w)) < 0)
		error_prefix("gc: snapshot %s (run cairn fsck)", lc->snap);
	return rc;
}

struct snap_ctx {
	live_ctx lc;
	size_t cap;
};

static int snapshot_visit(const char *name, void *payload)
{
	struct snap_ctx *sc = payload;
	scan *s = sc->lc.s;
	const char *id = strrchr(name, '/');
	id = id ? id + 1 : name;
	if (strlen(id) != OID_HEX_LEN) return 0;
	snapshot_manifest m;
	char marker[128];
	uint64_t size;
	snprintf(marker, sizeof(marker), "damaged/%s", id);
	sc->lc.damaged = store_size(sc->lc.shadow->st, marker, &size) == 0;
	sc->lc.snap = id;
	int rc = repo_load_snapshot(sc->lc.shadow, id, &m);
	if (rc == CAIRN_ENOTFOUND) return 0; /* forgotten meanwhile */
	if (rc < 0) {
		if (sc->lc.damaged) return strv_push(&s->snap_ids, &s->nsnap_ids, &sc->cap, id);
		error_prefix("gc (run cairn fsck)");
		return rc;
	}
	rc = live_tree(&sc->lc, &m.tree);
	snapshot_manifest_free(&m);
	if (rc < 0) return rc;
	s->nsnapshots++;
	return strv_push(&s->snap_ids, &s->nsnap_ids, &sc->cap, id);
}

static int canon_add(scan *s, const index_entry *e, int want_pack_present)
{
	int present = index_key_get(s->packpos, e->pack, PACK_ID_LEN) != NULL;
	if (present != want_pack_present) return 0;
	int rc = index_insert(s->canon, e);
	return rc < 0 ? rc : 0;
}

/* Sessions first, then the index, then snapshots (read through that index),
 * then packs and tmp: a snapshot listed here has its segments listed too, and
 * a pack written by a take that was not listed started before the listing. */
static int scan_once(cairn_repo *r, scan *s)
{
	int rc;
	memset(s, 0, sizeof(*s));
	if ((rc = scan_sessions(r, s)) < 0) return rc;
	for (int tries = 0;; tries++) {
		struct seg_ctx sc = {r, s, 0, 0};
		rc = store_list(r->st, "index", segment_visit, &sc);
		if (rc < 0) return rc;
		if (!sc.vanished) break;
		for (size_t i = 0; i < s->nseg; i++) {
			free(s->seg[i].name);
			free(s->seg[i].e);
		}
		free(s->seg);
		s->seg = NULL;
		s->nseg = 0;
		if (tries == LOAD_RETRIES) return error_set(CAIRN_EBUSY, "index: kept changing while being read");
	}
	if ((rc = index_new(&s->packpos)) < 0 || (rc = index_new(&s->canon)) < 0 ||
	    (rc = index_new(&s->live)) < 0)
		return rc;
	struct seg_ctx sc = {r, s, 0, 0};
	if ((rc = store_list(r->st, "packs", pack_visit, &sc)) < 0) return rc;
	/* canonical location of each id: the first whose pack exists */
	for (int pass = 1; pass >= 0; pass--)
		for (size_t i = 0; i < s->nseg; i++)
			for (size_t k = 0; k < s->seg[i].n; k++)
				if ((rc = canon_add(s, &s->seg[i].e[k], pass)) < 0) return rc;

	cairn_repo *shadow = calloc(1, sizeof(*shadow));
	if (!shadow) return ERR_OOM();
	shadow->st = r->st;
	shadow->cfg = r->cfg;
	shadow->index = s->canon;
	pthread_mutex_init(&shadow->lock, NULL);
	struct snap_ctx snc = {{shadow, s, NULL, 0}, 0};
	rc = store_list(r->st, "snapshots", snapshot_visit, &snc);
	pthread_mutex_destroy(&shadow->lock);
	free(shadow);
	if (rc < 0) return rc;
	if ((rc = store_list(r->st, "tmp", tmp_visit, &sc)) < 0) return rc;
	if ((rc = store_list(r->st, "damaged", marker_visit, &sc)) < 0) return rc;
	if ((rc = store_list(r->st, "inodes", marker_visit, &sc)) < 0) return rc;
	if ((rc = store_list(r->st, "traces", marker_visit, &sc)) < 0) return rc; /* engine/mount */
	s->done_ns = now_ns();
	return 0;
}

struct new_seg_ctx {
	const scan *s;
	int found;
};

static int new_seg_visit(const char *name, void *payload)
{
	struct new_seg_ctx *nc = payload;
	for (size_t i = 0; i < nc->s->nseg; i++)
		if (strcmp(nc->s->seg[i].name, name) == 0) return 0;
	nc->found = 1;
	return 1;
}

/* A take that commits its index segment after the index was listed and its
 * snapshot before the snapshots were makes that snapshot read as damaged
 * (a wide window when listing is slow, as on S3): when the index has new
 * segments since, scan again. */
int scan_run(cairn_repo *r, scan *s)
{
	for (int tries = 0;; tries++) {
		int rc = scan_once(r, s);
		if (rc != CAIRN_ECORRUPT || tries == LOAD_RETRIES) return rc;
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", cairn_error_last());
		struct new_seg_ctx nc = {s, 0};
		if (store_list(r->st, "index", new_seg_visit, &nc) < 0 || !nc.found)
			return error_set(rc, "%s", msg);
		scan_free(s);
	}
}
