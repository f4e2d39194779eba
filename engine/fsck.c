/* fsck: structure (config, index segments, packs, manifests, trees, every
 * chunk's place), optionally every blob's data, and per-user usage; with
 * --repair the index is rebuilt from the packs, damaged packs go to
 * quarantine/ (their good blobs salvaged first) and snapshots that stay
 * damaged get a damaged/<id> marker. Nothing is ever deleted but what is
 * rebuilt or moved aside. */
#include "fsck.h"

#include <pthread.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "damaged.h"
#include "error.h"
#include "format.h"
#include "gc.h"
#include "index.h"
#include "inodes.h"
#include "io.h"
#include "options.h"
#include "pack.h"
#include "quota.h"
#include "repo.h"
#include "store.h"
#include "tree.h"
#include "util.h"

#define AFFECTED_MAX 200   /* (snapshot, path) pairs listed per problem */
#define TREE_RESULT_MAX 1000
#define SEGMENT_MAX (1024u * 1024u * 1024u)
#define CONFIG_MAX 4096

/* ---- the report ---------------------------------------------------------------- */

typedef struct problem {
	cairn_fsck_problem pub;
	char *kind, *object, *message;
	char **ids, **names, **paths;
	size_t cap;
	chunk_index *seen; /* snapshot ids already listed with path "/" (dedup) */
} problem;

struct cairn_fsck_report {
	problem **p;
	size_t n, cap;
	cairn_fsck_stats stats;
};

static void problem_free(problem *p)
{
	if (!p) return;
	for (size_t i = 0; i < p->pub.naffected; i++) {
		free(p->ids[i]);
		free(p->names[i]);
		free(p->paths[i]);
	}
	free(p->ids);
	free(p->names);
	free(p->paths);
	free(p->kind);
	free(p->object);
	free(p->message);
	free(p);
}

CAIRN_EXTERN void cairn_fsck_report_free(cairn_fsck_report *r)
{
	if (!r) return;
	for (size_t i = 0; i < r->n; i++) problem_free(r->p[i]);
	free(r->p);
	free(r);
}

CAIRN_EXTERN size_t cairn_fsck_report_count(const cairn_fsck_report *r) { return r ? r->n : 0; }

CAIRN_EXTERN const cairn_fsck_problem *cairn_fsck_report_get(const cairn_fsck_report *r, size_t i)
{
	return r && i < r->n ? &r->p[i]->pub : NULL;
}

CAIRN_EXTERN void cairn_fsck_report_stats(const cairn_fsck_report *r, cairn_fsck_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (r) *out = r->stats;
}

/* Add a problem; returns its number, or -1 when out of memory. */
static long report_add(cairn_fsck_report *r, cairn_fsck_severity sev, const char *kind,
                       const char *object, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	problem *p = calloc(1, sizeof(*p));
	if (!p) return -1;
	p->kind = strdup(kind);
	p->object = strdup(object);
	p->message = strdup(msg);
	if (!p->kind || !p->object || !p->message || (r->n == r->cap && !(r->cap = r->cap ? r->cap * 2 : 16, 1))) {
		problem_free(p);
		return -1;
	}
	problem **np = realloc(r->p, r->cap * sizeof(*np));
	if (!np) {
		problem_free(p);
		return -1;
	}
	r->p = np;
	p->pub.severity = sev;
	p->pub.kind = p->kind;
	p->pub.object = p->object;
	p->pub.message = p->message;
	r->p[r->n] = p;
	return (long)r->n++;
}

static void affect(problem *p, const char *id, const char *name, const char *path)
{
	for (size_t i = 0; i < p->pub.naffected; i++)
		if (strcmp(p->ids[i], id) == 0 && (strcmp(p->paths[i], path) == 0 || strcmp(p->paths[i], "/") == 0))
			return;
	if (p->pub.naffected >= AFFECTED_MAX) {
		p->pub.more_affected++;
		return;
	}
	if (p->pub.naffected == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4;
		char **a = realloc(p->ids, cap * sizeof(char *));
		if (a) p->ids = a;
		char **b = realloc(p->names, cap * sizeof(char *));
		if (b) p->names = b;
		char **c = realloc(p->paths, cap * sizeof(char *));
		if (c) p->paths = c;
		if (!a || !b || !c) return;
		p->cap = cap;
	}
	size_t i = p->pub.naffected;
	p->ids[i] = strdup(id);
	p->names[i] = strdup(name ? name : "");
	p->paths[i] = strdup(path);
	if (!p->ids[i] || !p->names[i] || !p->paths[i]) {
		free(p->ids[i]);
		free(p->names[i]);
		free(p->paths[i]);
		return;
	}
	p->pub.naffected++;
	p->pub.snapshot_ids = (const char *const *)p->ids;
	p->pub.snapshot_names = (const char *const *)p->names;
	p->pub.paths = (const char *const *)p->paths;
}

/* ---- the check ------------------------------------------------------------------- */

typedef struct pack_state {
	char name[64];
	uint8_t id[PACK_ID_LEN];
	uint64_t size;
	int damaged;     /* does not parse */
	long problem;    /* its problem, when damaged */
	pack_blob *blobs;
	size_t nblobs;
	chunk_index *at; /* offset -> blob number (keyed by offset) */
	chunk_index *bad; /* --read-data: id -> problem number of a blob that fails */
	int used;        /* an index entry points here */
} pack_state;

/* A tree's findings: (path below the tree, problem) pairs. */
typedef struct finding {
	char *path;
	long problem;
} finding;

typedef struct tree_result {
	finding *f;
	size_t n, cap;
} tree_result;

typedef struct fsck_ctx {
	cairn_repo *r;
	cairn_fsck_report *rep;
	const cairn_fsck_options *o;
	int threads;
	long config_problem;
	/* index */
	char **segments;
	size_t nsegments, capsegments;
	int index_damaged;
	long index_problem;
	/* packs */
	pack_state *packs;
	size_t npacks, cappacks;
	chunk_index *packpos;
	atomic_size_t next_pack;
	pthread_mutex_t lock;
	/* blobs: id -> problem number + 1 in offset (0 = checked fine) */
	chunk_index *blob_status;
	chunk_index *referenced;
	/* trees */
	chunk_index *tree_memo; /* id -> results[offset] */
	tree_result *results;
	size_t nresults, capresults;
	/* snapshots */
	char **snaps;
	size_t nsnaps, capsnaps;
	chunk_index *damaged_snaps; /* ids (hex-decoded) with damage */
	char **damaged_reason;
	size_t ndamaged_reason;
	long missing_index_problem; /* shared by blobs missing from the index while a segment is bad */
} fsck_ctx;

static problem *P(fsck_ctx *c, long i) { return c->rep->p[i]; }

/* config */
static void check_config(fsck_ctx *c)
{
	uint8_t *data = NULL;
	size_t len;
	repo_config cfg;
	c->config_problem = -1;
	int rc = store_get(c->r->st, "config", CONFIG_MAX, &data, &len);
	if (rc == 0) rc = repo_config_decode(&cfg, data, len);
	free(data);
	if (rc < 0)
		c->config_problem = report_add(c->rep, CAIRN_FSCK_DAMAGE, "config", "config",
		                               "%s; no command can open the repository", cairn_error_last());
}

/* index segments: decode each; the entries go into the handle's index */
static int segment_visit(const char *name, void *payload)
{
	fsck_ctx *c = payload;
	uint8_t *data = NULL;
	size_t len, n = 0;
	index_entry *e = NULL;
	int rc = strv_push(&c->segments, &c->nsegments, &c->capsegments, name);
	if (rc < 0) return rc;
	c->rep->stats.index_segments++;
	rc = store_get(c->r->st, name, SEGMENT_MAX, &data, &len);
	if (rc == 0) rc = index_segment_decode(data, len, name, &e, &n);
	free(data);
	if (rc == CAIRN_ENOMEM) return rc;
	if (rc < 0) {
		c->index_damaged = 1;
		c->index_problem = report_add(c->rep, CAIRN_FSCK_DAMAGE, "index", name, "%s", cairn_error_last());
		return 0;
	}
	for (size_t i = 0; i < n && rc >= 0; i++) rc = index_insert(c->r->index, &e[i]);
	free(e);
	return rc < 0 ? rc : 0;
}

static int pack_visit(const char *name, void *payload)
{
	fsck_ctx *c = payload;
	uint8_t id[PACK_ID_LEN];
	char canonical[64];
	const char *base = strrchr(name, '/');
	if (!base || hex_decode(id, PACK_ID_LEN, base + 1) < 0) {
		report_add(c->rep, CAIRN_FSCK_INFO, "pack", name, "not a pack name: ignored");
		return 0;
	}
	repo_pack_name(canonical, id);
	if (strcmp(canonical, name) != 0) {
		report_add(c->rep, CAIRN_FSCK_INFO, "pack", name, "pack in the wrong folder (%s): ignored", canonical);
		return 0;
	}
	if (c->npacks == c->cappacks) {
		size_t cap = c->cappacks ? c->cappacks * 2 : 64;
		pack_state *p = realloc(c->packs, cap * sizeof(*p));
		if (!p) return ERR_OOM();
		c->packs = p;
		c->cappacks = cap;
	}
	pack_state *p = &c->packs[c->npacks];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	memcpy(p->id, id, PACK_ID_LEN);
	p->problem = -1;
	int rc = index_key_put(c->packpos, id, PACK_ID_LEN, (uint32_t)c->npacks);
	if (rc < 0) return rc;
	c->npacks++;
	return 0;
}

/* One pack, read into the worker's buffer pb: parse (every blob's check),
 * and with --read-data every blob's data against its SHA-256. Runs on worker
 * threads. */
static void check_pack(fsck_ctx *c, pack_state *p, buf *pb)
{
	char msg[1024] = "";
	int rc = store_get_into(c->r->st, p->name, MAX_PACK_LEN, pb);
	const uint8_t *data = pb->data;
	size_t len = pb->len;
	if (rc == 0) rc = pack_parse(data, len, p->name, &p->blobs, &p->nblobs);
	if (rc < 0) snprintf(msg, sizeof(msg), "%s", cairn_error_last());
	if (rc == 0) {
		p->size = len;
		rc = index_new(&p->at);
		for (size_t i = 0; rc == 0 && i < p->nblobs; i++) {
			uint8_t key[4];
			put_u32(key, p->blobs[i].offset);
			rc = index_key_put(p->at, key, 4, (uint32_t)i);
			if (rc > 0) rc = 0;
		}
	}
	if (rc == 0 && c->o->read_data) {
		for (size_t i = 0; i < p->nblobs; i++) {
			const pack_blob *b = &p->blobs[i];
			uint8_t *plain = NULL;
			char what[160], hex[OID_HEX_LEN + 1];
			oid_hex(hex, &b->id);
			snprintf(what, sizeof(what), "%s blob %s", p->name, hex);
			int brc = pack_blob_open(data + b->offset, (size_t)b->stored_len + BLOB_OVERHEAD, b, what, &plain);
			free(plain);
			if (brc == 0) continue;
			pthread_mutex_lock(&c->lock);
			long pi = report_add(c->rep, CAIRN_FSCK_DAMAGE, b->type == BLOB_TREE ? "tree" : "chunk",
			                     what, "%s", cairn_error_last());
			if (!p->bad && index_new(&p->bad) < 0) p->bad = NULL;
			if (p->bad && pi >= 0) index_key_put(p->bad, b->id.b, OID_LEN, (uint32_t)pi);
			pthread_mutex_unlock(&c->lock);
		}
	}
	pthread_mutex_lock(&c->lock);
	c->rep->stats.packs++;
	if (rc == 0) c->rep->stats.bytes_checked += len;
	if (rc < 0) {
		p->damaged = 1;
		p->problem = report_add(c->rep, CAIRN_FSCK_DAMAGE, "pack", p->name, "%s", msg);
	}
	pthread_mutex_unlock(&c->lock);
}

static void *pack_worker(void *arg)
{
	fsck_ctx *c = arg;
	buf pb; /* one pack at a time, the memory reused */
	buf_init(&pb);
	for (;;) {
		size_t i = atomic_fetch_add(&c->next_pack, 1);
		if (i >= c->npacks) break;
		check_pack(c, &c->packs[i], &pb);
	}
	buf_free(&pb);
	return NULL;
}

static int check_packs(fsck_ctx *c)
{
	int n = c->threads;
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	if (!t) return ERR_OOM();
	atomic_store(&c->next_pack, 0);
	int started = 0;
	for (; started < n; started++)
		if (pthread_create(&t[started], NULL, pack_worker, c) != 0) break;
	if (started == 0) pack_worker(c);
	for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
	free(t);
	return 0;
}

/* Status of blob id as a snapshot needs it: -1 fine, else a problem number. */
static long blob_check(fsck_ctx *c, const oid *id, uint8_t type)
{
	const index_entry *st = index_lookup(c->blob_status, id);
	if (st) return (long)st->offset - 1;
	char hex[OID_HEX_LEN + 1], obj[96];
	oid_hex(hex, id);
	snprintf(obj, sizeof(obj), "%s %s", type == BLOB_TREE ? "tree" : "chunk", hex);
	long pr = -1;
	const index_entry *e = index_lookup(c->r->index, id);
	if (!e) {
		pr = report_add(c->rep, CAIRN_FSCK_DAMAGE, type == BLOB_TREE ? "tree" : "chunk", obj,
		                "missing from the index%s", c->index_damaged ? " (an index segment is damaged)" : "");
	} else {
		char pname[64];
		repo_pack_name(pname, e->pack);
		const index_entry *pp = index_key_get(c->packpos, e->pack, PACK_ID_LEN);
		pack_state *p = pp ? &c->packs[pp->offset] : NULL;
		uint8_t key[4];
		put_u32(key, e->offset);
		const index_entry *at = p && p->at ? index_key_get(p->at, key, 4) : NULL;
		const pack_blob *b = at ? &p->blobs[at->offset] : NULL;
		const index_entry *bad = p && p->bad ? index_lookup(p->bad, id) : NULL;
		if (p) p->used = 1;
		if (e->type != type)
			pr = report_add(c->rep, CAIRN_FSCK_DAMAGE, "index", obj, "the index says type %u, the snapshot needs %u", e->type, type);
		else if (!p)
			pr = report_add(c->rep, CAIRN_FSCK_DAMAGE, type == BLOB_TREE ? "tree" : "chunk", obj,
			                "its pack %s is missing", pname);
		else if (p->damaged)
			pr = p->problem;
		else if (!b || oid_cmp(&b->id, id) != 0 || b->type != e->type || b->comp != e->comp ||
		         b->raw_len != e->raw_len || b->stored_len != e->stored_len)
			pr = report_add(c->rep, CAIRN_FSCK_DAMAGE, "index", obj,
			                "the index entry (%s at offset %u) does not match the pack's blob there",
			                pname, e->offset);
		else if (bad)
			pr = (long)bad->offset;
	}
	index_key_put(c->blob_status, id->b, OID_LEN, (uint32_t)(pr + 1));
	if (type == BLOB_TREE) c->rep->stats.trees++;
	else c->rep->stats.chunks++;
	return pr;
}

static int result_add(tree_result *t, const char *path, long problem)
{
	if (t->n >= TREE_RESULT_MAX) return 0;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4;
		finding *f = realloc(t->f, cap * sizeof(*f));
		if (!f) return ERR_OOM();
		t->f = f;
		t->cap = cap;
	}
	char *p = strdup(path);
	if (!p) return ERR_OOM();
	t->f[t->n++] = (finding){p, problem};
	return 0;
}

static void join_path(char *out, size_t cap, const char *dir, const char *name, size_t name_len)
{
	char *esc = malloc(name_len + 1);
	if (!esc) {
		snprintf(out, cap, "%s", dir);
		return;
	}
	memcpy(esc, name, name_len);
	esc[name_len] = 0;
	snprintf(out, cap, "%s%s%s", dir, *dir ? "/" : "", esc);
	free(esc);
}

/* Start on tree id: its slot in c->results, memoized (shared trees are
 * checked once). *t is loaded, and *walk set, when its entries are still to
 * be checked; else the slot is final (checked before, or the tree itself is
 * damaged). -1 when out of memory. */
static long tree_open(fsck_ctx *c, const oid *id, tree *t, int *walk)
{
	*walk = 0;
	memset(t, 0, sizeof(*t));
	const index_entry *m = index_lookup(c->tree_memo, id);
	if (m) return (long)m->offset;
	if (c->nresults == c->capresults) {
		size_t cap = c->capresults ? c->capresults * 2 : 256;
		tree_result *r = realloc(c->results, cap * sizeof(*r));
		if (!r) return -1;
		c->results = r;
		c->capresults = cap;
	}
	long ri = (long)c->nresults++;
	memset(&c->results[ri], 0, sizeof(c->results[ri]));
	if (index_key_put(c->tree_memo, id->b, OID_LEN, (uint32_t)ri) < 0) return -1;
	index_key_put(c->referenced, id->b, OID_LEN, 0);

	long pr = blob_check(c, id, BLOB_TREE);
	if (pr < 0) {
		int rc = repo_load_tree(c->r, id, t);
		if (rc < 0) {
			char hex[OID_HEX_LEN + 1], obj[96];
			oid_hex(hex, id);
			snprintf(obj, sizeof(obj), "tree %s", hex);
			pr = report_add(c->rep, CAIRN_FSCK_DAMAGE, "tree", obj, "%s", cairn_error_last());
			/* later lookups of this blob see the problem too */
			const index_entry *st = index_lookup(c->blob_status, id);
			if (st) ((index_entry *)st)->offset = (uint32_t)(pr + 1);
		}
	}
	if (pr >= 0) {
		result_add(&c->results[ri], "", pr);
		return ri;
	}
	*walk = 1;
	return ri;
}

/* A regular file's chunks, findings into slot ri under the file's name. */
static void check_file(fsck_ctx *c, long ri, const tree_entry *e)
{
	char path[4096];
	join_path(path, sizeof(path), "", e->name, e->name_len);
	for (uint32_t k = 0; k < e->nchunks; k++) {
		index_key_put(c->referenced, e->chunks[k].id.b, OID_LEN, 0);
		long cp = blob_check(c, &e->chunks[k].id, BLOB_DATA);
		if (cp < 0) {
			const index_entry *ie = index_lookup(c->r->index, &e->chunks[k].id);
			if (ie && ie->raw_len != e->chunks[k].size) {
				char hex[OID_HEX_LEN + 1], obj[96];
				oid_hex(hex, &e->chunks[k].id);
				snprintf(obj, sizeof(obj), "chunk %s", hex);
				cp = report_add(c->rep, CAIRN_FSCK_DAMAGE, "chunk", obj,
				                "%u bytes in the index, %u in the tree", ie->raw_len, e->chunks[k].size);
			}
		}
		if (cp >= 0) result_add(&c->results[ri], path, cp);
	}
}

/* The findings of subdirectory e (slot sub) into slot ri, under e's name. */
static void add_sub_findings(fsck_ctx *c, long ri, const tree_entry *e, long sub)
{
	char path[4096], full[8200];
	if (sub < 0) return;
	join_path(path, sizeof(path), "", e->name, e->name_len);
	for (size_t k = 0; k < c->results[sub].n; k++) {
		const finding *f = &c->results[sub].f[k];
		snprintf(full, sizeof(full), "%s%s%s", path, f->path[0] ? "/" : "", f->path);
		result_add(&c->results[ri], full, f->problem);
	}
}

typedef struct check_frame {
	tree t;
	long ri;
	size_t next;
} check_frame;

/* The findings below tree id: its slot in c->results (-1 when out of
 * memory). Depth first with a stack on the heap: trees as deep as a
 * repository can hold cost memory, not C stack. */
static long check_tree(fsck_ctx *c, const oid *id)
{
	check_frame *st = NULL;
	size_t n = 0, cap = 0;
	tree t;
	int walk;
	long root = tree_open(c, id, &t, &walk), next = root;
	while (walk) {
		if (n == cap) {
			check_frame *ns = realloc(st, (cap = cap ? cap * 2 : 64) * sizeof(*st));
			if (!ns) {
				tree_free(&t);
				root = -1;
				break;
			}
			st = ns;
		}
		st[n++] = (check_frame){t, next, 0};
		walk = 0;
		while (n > 0 && !walk) {
			check_frame *f = &st[n - 1];
			if (f->next == f->t.n) {
				long done = f->ri;
				tree_free(&f->t);
				if (--n > 0) {
					f = &st[n - 1];
					add_sub_findings(c, f->ri, &f->t.entries[f->next++], done);
				}
				continue;
			}
			const tree_entry *e = &f->t.entries[f->next];
			if (e->type != TREE_DIR) {
				if (e->type == TREE_REG) check_file(c, f->ri, e);
				f->next++;
				continue;
			}
			/* a subtree to walk is pushed above; its findings join
			 * ours when it is done */
			next = tree_open(c, &e->subtree, &t, &walk);
			if (!walk) add_sub_findings(c, f->ri, &f->t.entries[f->next++], next);
		}
	}
	while (n > 0) tree_free(&st[--n].t);
	free(st);
	return root;
}

static void mark_damaged(fsck_ctx *c, const char *id, const char *reason)
{
	uint8_t key[OID_LEN];
	if (hex_decode(key, OID_LEN, id) < 0) return;
	if (index_key_put(c->damaged_snaps, key, OID_LEN, (uint32_t)c->ndamaged_reason) != 0) return;
	size_t cap = c->ndamaged_reason;
	char **v = realloc(c->damaged_reason, (cap + 1) * sizeof(char *));
	if (!v) return;
	c->damaged_reason = v;
	v[c->ndamaged_reason++] = strdup(reason);
}

static int snapshot_visit(const char *name, void *payload)
{
	fsck_ctx *c = payload;
	const char *id = strrchr(name, '/');
	id = id ? id + 1 : name;
	uint8_t key[OID_LEN];
	if (strlen(id) != OID_HEX_LEN || hex_decode(key, OID_LEN, id) < 0) {
		report_add(c->rep, CAIRN_FSCK_INFO, "snapshot", name, "not a manifest name: ignored");
		return 0;
	}
	return strv_push(&c->snaps, &c->nsnaps, &c->capsnaps, id);
}

/* repo_prefetch_trees' skip: a tree checked for an earlier snapshot */
static int tree_checked(void *payload, const oid *id)
{
	fsck_ctx *c = payload;
	return index_lookup(c->tree_memo, id) != NULL;
}

static void check_snapshot(fsck_ctx *c, const char *id)
{
	snapshot_manifest m;
	char obj[96];
	snprintf(obj, sizeof(obj), "snapshot %s", id);
	c->rep->stats.snapshots++;
	int rc = repo_load_snapshot(c->r, id, &m);
	if (rc < 0) {
		long pr = report_add(c->rep, CAIRN_FSCK_DAMAGE, "snapshot", obj, "%s", cairn_error_last());
		if (pr >= 0) affect(P(c, pr), id, "", "/");
		mark_damaged(c, id, cairn_error_last());
		return;
	}
	if (c->config_problem >= 0) affect(P(c, c->config_problem), id, m.name, "/");
	if (!index_lookup(c->tree_memo, &m.tree)) /* its trees in batches, not one read each */
		repo_prefetch_trees(c->r, &m.tree, REPO_TREES_AHEAD, tree_checked, c);
	long ri = check_tree(c, &m.tree);
	repo_prefetch_drop(c->r);
	if (ri >= 0) {
		tree_result *tr = &c->results[ri];
		for (size_t k = 0; k < tr->n; k++) {
			/* the top tree's one entry is "root", the captured directory */
			const char *p = tr->f[k].path;
			char path[4096];
			if (strncmp(p, "root", 4) == 0 && (p[4] == '/' || p[4] == 0)) p += 4;
			snprintf(path, sizeof(path), "%s", *p ? p : "/");
			problem *pb = P(c, tr->f[k].problem);
			affect(pb, id, m.name, path);
			char reason[1200];
			snprintf(reason, sizeof(reason), "%s: %s", pb->object, pb->message);
			mark_damaged(c, id, reason);
		}
	}
	snapshot_manifest_free(&m);
}

struct unref {
	fsck_ctx *c;
	uint64_t n, bytes;
};

static void unref_visit(const index_entry *e, void *payload)
{
	struct unref *u = payload;
	if (index_lookup(u->c->referenced, &e->id)) return;
	u->n++;
	u->bytes += (uint64_t)e->stored_len + BLOB_OVERHEAD;
	const index_entry *pp = index_key_get(u->c->packpos, e->pack, PACK_ID_LEN);
	if (pp) u->c->packs[pp->offset].used = 1;
}

static void quota_problem(const char *user, const char *what, void *payload)
{
	fsck_ctx *c = payload;
	char obj[128];
	snprintf(obj, sizeof(obj), "users/%s", user);
	report_add(c->rep, CAIRN_FSCK_DAMAGE, "usage", obj, "%s", what);
}

static int tmp_count(const char *name, void *payload)
{
	(void)name;
	(*(uint64_t *)payload)++;
	return 0;
}

struct marker_ctx {
	fsck_ctx *c;
};

/* A snapshot's side object (damaged/ID, inodes/ID): ID, and whether its
 * manifest is still there. */
static const char *side_snapshot(fsck_ctx *c, const char *name, int *present)
{
	const char *id = strrchr(name, '/');
	id = id ? id + 1 : name;
	char snap[128];
	uint64_t size;
	snprintf(snap, sizeof(snap), "snapshots/%s", id);
	*present = store_size(c->r->st, snap, &size) == 0;
	if (!*present) error_clear();
	return id;
}

static int marker_visit(const char *name, void *payload)
{
	fsck_ctx *c = ((struct marker_ctx *)payload)->c;
	int present;
	const char *id = side_snapshot(c, name, &present);
	if (!present) return 0; /* forgotten: gc removes the marker */
	uint8_t key[OID_LEN];
	if (hex_decode(key, OID_LEN, id) == 0 && index_key_get(c->damaged_snaps, key, OID_LEN)) return 0;
	int rc = damaged_check(c->r, id);
	if (rc == 0) return 0;
	long pr = report_add(c->rep, CAIRN_FSCK_DAMAGE, "snapshot", name, "%s", cairn_error_last());
	if (pr >= 0) affect(P(c, pr), id, "", "/");
	mark_damaged(c, id, "marked damaged");
	return 0;
}

/* Inodes records only speed takes up: a damaged or orphan one is an info. */
static int inodes_visit(const char *name, void *payload)
{
	fsck_ctx *c = payload;
	int present;
	const char *id = side_snapshot(c, name, &present);
	inode_list l;
	if (!present) {
		report_add(c->rep, CAIRN_FSCK_INFO, "inodes", name, "its snapshot is gone (gc removes it)");
		return 0;
	}
	int rc = inodes_read(c->r, id, &l);
	if (rc == CAIRN_ENOMEM) return rc;
	if (rc < 0) {
		report_add(c->rep, CAIRN_FSCK_INFO, "inodes", name, "%s: a take from this snapshot reads every file",
		           cairn_error_last());
		error_clear();
	}
	inodes_free(&l);
	return 0;
}

static void ctx_free(fsck_ctx *c)
{
	for (size_t i = 0; i < c->nsegments; i++) free(c->segments[i]);
	free(c->segments);
	for (size_t i = 0; i < c->npacks; i++) {
		free(c->packs[i].blobs);
		index_free(c->packs[i].at);
		index_free(c->packs[i].bad);
	}
	free(c->packs);
	index_free(c->packpos);
	index_free(c->blob_status);
	index_free(c->referenced);
	index_free(c->tree_memo);
	for (size_t i = 0; i < c->nresults; i++) {
		for (size_t k = 0; k < c->results[i].n; k++) free(c->results[i].f[k].path);
		free(c->results[i].f);
	}
	free(c->results);
	for (size_t i = 0; i < c->nsnaps; i++) free(c->snaps[i]);
	free(c->snaps);
	index_free(c->damaged_snaps);
	for (size_t i = 0; i < c->ndamaged_reason; i++) free(c->damaged_reason[i]);
	free(c->damaged_reason);
	pthread_mutex_destroy(&c->lock);
	memset(c, 0, sizeof(*c));
}

/* One full check of r into rep. Order: snapshots are listed first, then the
 * index, then packs: whatever a listed snapshot needs is then listed too. */
static int check_all(fsck_ctx *c)
{
	int rc;
	pthread_mutex_init(&c->lock, NULL);
	c->index_problem = -1;
	if ((rc = index_new(&c->packpos)) < 0 || (rc = index_new(&c->blob_status)) < 0 ||
	    (rc = index_new(&c->referenced)) < 0 || (rc = index_new(&c->tree_memo)) < 0 ||
	    (rc = index_new(&c->damaged_snaps)) < 0)
		return rc;
	check_config(c);
	if ((rc = store_list(c->r->st, "snapshots", snapshot_visit, c)) < 0) return rc;
	if ((rc = store_list(c->r->st, "index", segment_visit, c)) < 0) return rc;
	if ((rc = store_list(c->r->st, "packs", pack_visit, c)) < 0) return rc;
	if ((rc = check_packs(c)) < 0) return rc;
	for (size_t i = 0; i < c->nsnaps; i++) check_snapshot(c, c->snaps[i]);
	struct marker_ctx mc = {c};
	if ((rc = store_list(c->r->st, "damaged", marker_visit, &mc)) < 0) return rc;
	if (c->index_problem >= 0)
		for (size_t i = 0; i < c->rep->n; i++) {
			/* a damaged segment affects whoever misses an entry */
			problem *p = P(c, (long)i);
			if (strstr(p->message, "missing from the index"))
				for (size_t k = 0; k < p->pub.naffected; k++)
					affect(P(c, c->index_problem), p->ids[k], p->names[k], p->paths[k]);
		}

	/* leftovers: harmless, reclaimed by gc */
	struct unref u = {c, 0, 0};
	index_foreach(c->r->index, unref_visit, &u);
	if (u.n)
		report_add(c->rep, CAIRN_FSCK_INFO, "index", "index",
		           "%llu blobs (%llu bytes) no snapshot references (gc reclaims them)",
		           (unsigned long long)u.n, (unsigned long long)u.bytes);
	for (size_t i = 0; i < c->npacks; i++) {
		pack_state *p = &c->packs[i];
		if (!p->used && !p->damaged)
			report_add(c->rep, CAIRN_FSCK_INFO, "pack", p->name,
			           "in no index segment: left by a failed take or gc (gc reclaims it)");
	}
	uint64_t ntmp = 0;
	store_list(c->r->st, "tmp", tmp_count, &ntmp);
	if (ntmp)
		report_add(c->rep, CAIRN_FSCK_INFO, "tmp", "tmp", "%llu leftover files (gc removes them)",
		           (unsigned long long)ntmp);
	if ((rc = store_list(c->r->st, "inodes", inodes_visit, c)) < 0) return rc;
	/* per-user usage (engine/quota/) */
	if (c->config_problem < 0 && !c->index_damaged) {
		rc = quota_verify(c->r, quota_problem, c);
		if (rc < 0)
			report_add(c->rep, CAIRN_FSCK_DAMAGE, "usage", "users", "usage could not be verified: %s",
			           cairn_error_last());
	}
	return 0;
}

/* ---- repair --------------------------------------------------------------------- */

static int new_name(char *out, size_t cap, const char *dir)
{
	uint8_t id[16];
	char hex[33];
	int rc = io_random(id, sizeof(id));
	if (rc < 0) return rc;
	hex_encode(hex, id, sizeof(id));
	snprintf(out, cap, "%s/%s", dir, hex);
	return 0;
}

struct collect {
	const uint8_t *pack;
	index_entry *list;
	size_t n, cap;
	int oom;
};

static void collect_visit(const index_entry *e, void *payload)
{
	struct collect *col = payload;
	if (memcmp(e->pack, col->pack, PACK_ID_LEN) != 0 || col->oom) return;
	if (col->n == col->cap) {
		size_t cap = col->cap ? col->cap * 2 : 64;
		index_entry *l = realloc(col->list, cap * sizeof(*l));
		if (!l) {
			col->oom = 1;
			return;
		}
		col->list = l;
		col->cap = cap;
	}
	col->list[col->n++] = *e;
}

static int put_pack(cairn_repo *r, pack_writer *pw, char name[64])
{
	uint8_t *data = NULL, id[PACK_ID_LEN];
	size_t len, nblobs;
	const pack_blob *blobs;
	int rc = pack_writer_finish(pw, &data, &len, &blobs, &nblobs);
	if (rc == 0) rc = io_random(id, sizeof(id));
	if (rc == 0) {
		repo_pack_name(name, id);
		rc = store_put(r->st, name, data, len, STORE_EXCL);
	}
	free(data);
	return rc;
}

/* The blobs of a damaged pack that still verify (found through the index)
 * go to a new pack; then the pack moves to quarantine/. */
static int quarantine_pack(fsck_ctx *c, cairn_fsck_report *out, const char *pname, const uint8_t *pid)
{
	int rc = 0;
	struct collect col = {pid, NULL, 0, 0, 0};
	pack_writer *pw = NULL;
	uint64_t saved = 0, lost = 0;
	char newpack[64] = "", qname[128];
	uint8_t *data = NULL;
	size_t len;

	index_foreach(c->r->index, collect_visit, &col);
	if (col.oom) {
		rc = ERR_OOM();
		goto done;
	}
	for (size_t i = 0; i < col.n && rc == 0; i++) {
		const index_entry *e = &col.list[i];
		size_t raw_size = (size_t)e->stored_len + BLOB_OVERHEAD;
		uint8_t *raw = malloc(raw_size), *plain = NULL;
		if (!raw) {
			rc = ERR_OOM();
			break;
		}
		pack_blob want = {e->id, e->type, e->comp, e->raw_len, e->stored_len, e->offset};
		if (store_get_range(c->r->st, pname, e->offset, raw, raw_size) == 0 &&
		    pack_blob_open(raw, raw_size, &want, pname, &plain) == 0) {
			if (!pw) rc = pack_writer_new(&pw);
			if (rc == 0)
				rc = pack_writer_add(pw, &e->id, e->type, e->comp, raw + BLOB_HEADER_LEN, e->stored_len,
				                     e->raw_len);
			saved++;
		} else {
			lost++;
		}
		free(plain);
		free(raw);
	}
	error_clear();
	if (rc == 0 && pw) rc = put_pack(c->r, pw, newpack);
	if (rc < 0) goto done;
	/* move aside: a copy under quarantine/, then the original goes */
	if ((rc = store_get(c->r->st, pname, (size_t)-1 >> 1, &data, &len)) < 0) goto done;
	snprintf(qname, sizeof(qname), "quarantine/%s", pname);
	rc = store_put(c->r->st, qname, data, len, STORE_EXCL);
	if (rc == CAIRN_EEXISTS) {
		char alt[96];
		if ((rc = new_name(alt, sizeof(alt), "quarantine/packs")) == 0) {
			snprintf(qname, sizeof(qname), "%s", alt);
			rc = store_put(c->r->st, qname, data, len, STORE_EXCL);
		}
	}
	if (rc < 0) goto done;
	if ((rc = store_delete(c->r->st, pname)) < 0) goto done;
	out->stats.repairs++;
	report_add(out, CAIRN_FSCK_REPAIRED, "repair", pname,
	           "damaged pack moved to %s; %llu blobs salvaged%s%s, %llu lost", qname,
	           (unsigned long long)saved, newpack[0] ? " into " : "", newpack, (unsigned long long)lost);
done:
	pack_writer_free(pw);
	free(col.list);
	free(data);
	return rc;
}

static int name_collect(const char *name, void *payload)
{
	fsck_ctx *c = payload;
	return strv_push(&c->segments, &c->nsegments, &c->capsegments, name);
}

/* A new index from the packs themselves (segments listed first, so every
 * pack a listed segment names is in the pack listing); then the old go. */
static int rebuild_index(cairn_repo *r, cairn_fsck_report *out)
{
	int rc;
	fsck_ctx c;
	chunk_index *ix = NULL;
	index_entry *all = NULL;
	size_t n = 0, cap = 0, nsegs = 0;
	memset(&c, 0, sizeof(c));
	pthread_mutex_init(&c.lock, NULL);
	c.r = r;
	if ((rc = store_list(r->st, "index", name_collect, &c)) < 0) goto done;
	size_t nold = c.nsegments;
	if ((rc = index_new(&c.packpos)) < 0 || (rc = index_new(&ix)) < 0) goto done;
	cairn_fsck_report scratch;
	memset(&scratch, 0, sizeof(scratch));
	c.rep = &scratch;
	rc = store_list(r->st, "packs", pack_visit, &c);
	for (size_t i = 0; i < scratch.n; i++) problem_free(scratch.p[i]);
	free(scratch.p);
	if (rc < 0) goto done;
	buf pb; /* each pack in turn, the memory reused */
	buf_init(&pb);
	for (size_t i = 0; i < c.npacks && rc == 0; i++) {
		size_t nb = 0;
		pack_blob *b = NULL;
		if (store_get_into(r->st, c.packs[i].name, MAX_PACK_LEN, &pb) < 0 ||
		    pack_parse(pb.data, pb.len, c.packs[i].name, &b, &nb) < 0)
			continue; /* unreadable: quarantined already, or reported again next check */
		for (size_t k = 0; k < nb && rc == 0; k++) {
			index_entry e;
			memset(&e, 0, sizeof(e));
			e.id = b[k].id;
			memcpy(e.pack, c.packs[i].id, PACK_ID_LEN);
			e.offset = b[k].offset;
			e.raw_len = b[k].raw_len;
			e.stored_len = b[k].stored_len;
			e.type = b[k].type;
			e.comp = b[k].comp;
			int dup = index_insert(ix, &e);
			if (dup < 0) rc = dup;
			if (dup != 0) continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				index_entry *x = realloc(all, cap * sizeof(*x));
				if (!x) {
					rc = ERR_OOM();
					break;
				}
				all = x;
			}
			all[n++] = e;
		}
		free(b);
	}
	buf_free(&pb);
	for (size_t start = 0; start < n && rc == 0; start += 4u * 1024u * 1024u) {
		size_t k = n - start < 4u * 1024u * 1024u ? n - start : 4u * 1024u * 1024u;
		uint8_t *data;
		size_t len;
		char name[64];
		if ((rc = index_segment_encode(all + start, k, &data, &len)) < 0) break;
		if ((rc = new_name(name, sizeof(name), "index")) == 0) rc = store_put(r->st, name, data, len, STORE_EXCL);
		free(data);
		nsegs++;
	}
	for (size_t i = 0; i < nold && rc == 0; i++) {
		rc = store_delete(r->st, c.segments[i]);
		if (rc == CAIRN_ENOTFOUND) rc = 0;
	}
	if (rc == 0) {
		out->stats.repairs++;
		report_add(out, CAIRN_FSCK_REPAIRED, "repair", "index",
		           "index rebuilt from %zu packs: %zu blobs in %zu segments (replacing %zu)", c.npacks, n,
		           nsegs, nold);
	}
done:
	index_free(ix);
	free(all);
	ctx_free(&c);
	return rc;
}

static int open_lenient(cairn_repo **out, const char *path, const cairn_repo_open_options *open)
{
	int rc;
	uint64_t size;
	*out = NULL;
	cairn_repo *r = calloc(1, sizeof(*r));
	if (!r) return ERR_OOM();
	pthread_mutex_init(&r->lock, NULL);
	r->settings.state_dir = strdup(open && open->state_dir ? open->state_dir : CAIRN_DEFAULT_STATE_DIR);
	if (!(r->path = strdup(path)) || !r->settings.state_dir) {
		cairn_repo_free(r);
		return ERR_OOM();
	}
	if ((rc = repo_store_open(&r->st, path, open)) < 0) {
		cairn_repo_free(r);
		return rc;
	}
	if (store_size(r->st, "config", &size) < 0 && store_size(r->st, "snapshots", &size) < 0) {
		cairn_repo_free(r);
		return error_set(CAIRN_ENOTFOUND, "%s: not a cairn repository (no config)", path);
	}
	if ((rc = index_new(&r->index)) < 0) {
		cairn_repo_free(r);
		return rc;
	}
	gc_session_begin(r); /* before any index segment is read */
	*out = r;
	return 0;
}

static int run_check(cairn_fsck_report *rep, const char *path, const cairn_fsck_options *o,
                     int threads, fsck_ctx *c, cairn_repo **rout)
{
	int rc = open_lenient(rout, path, o->open);
	if (rc < 0) return rc;
	memset(c, 0, sizeof(*c));
	c->r = *rout;
	c->rep = rep;
	c->o = o;
	c->threads = threads;
	return check_all(c);
}

static void count(cairn_fsck_report *rep, fsck_ctx *c)
{
	rep->stats.damaged = rep->stats.infos = 0;
	for (size_t i = 0; i < rep->n; i++) {
		if (rep->p[i]->pub.severity == CAIRN_FSCK_DAMAGE) rep->stats.damaged++;
		if (rep->p[i]->pub.severity == CAIRN_FSCK_INFO) rep->stats.infos++;
	}
	rep->stats.damaged_snapshots = c->damaged_snaps ? index_count(c->damaged_snaps) : 0;
}

CAIRN_EXTERN int cairn_fsck(cairn_fsck_report **out, const char *path, const cairn_fsck_options *opts)
{
	int rc;
	cairn_fsck_options o = CAIRN_FSCK_OPTIONS_INIT;
	cairn_fsck_report *rep = NULL, *final = NULL;
	cairn_repo *r = NULL;
	store_lock *lock = NULL;
	fsck_ctx c;
	int64_t t0 = mono_ns();
	memset(&c, 0, sizeof(c));
	*out = NULL;
	static const size_t sizes[] = {offsetof(cairn_fsck_options, open), sizeof(cairn_fsck_options)};
	if ((rc = options_copy(&o, opts, sizes, 2, "fsck")) < 0) return rc;
	if (o.open && o.open->backend) /* it opens the store twice: once for the lock */
		return error_set(CAIRN_EUSAGE, "fsck: give the repository by its address: a caller's backend is not supported here");
	int threads = o.threads > 0 ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads < 1) threads = 1;
	if (!(rep = calloc(1, sizeof(*rep)))) return ERR_OOM();

	{
		store *st;
		if ((rc = repo_store_open(&st, path, o.open)) < 0) goto done;
		/* gc must not rewrite the index or delete packs while we look */
		rc = store_lock_acquire(&lock, st, "gc", GC_LOCK_TTL_MS,
		                        o.lock_wait_ms ? o.lock_wait_ms : GC_DEFAULT_WAIT_MS);
		if (rc < 0) {
			store_free(st);
			goto done;
		}
		rc = run_check(rep, path, &o, threads, &c, &r);
		if (rc == 0) count(rep, &c);
		if (rc < 0 || !o.repair || rep->stats.damaged == 0) {
			store_lock_release(lock);
			lock = NULL;
			store_free(st);
			goto done;
		}

		/* repair: salvage + quarantine damaged packs, rebuild the index, check
		 * again, and mark what is still damaged */
		if (!(final = calloc(1, sizeof(*final)))) {
			rc = ERR_OOM();
		}
		for (size_t i = 0; rc == 0 && i < c.npacks; i++)
			if (c.packs[i].damaged || c.packs[i].bad)
				rc = quarantine_pack(&c, final, c.packs[i].name, c.packs[i].id);
		if (rc == 0) rc = rebuild_index(r, final);
		ctx_free(&c);
		cairn_repo_free(r);
		r = NULL;
		if (rc == 0) {
			cairn_fsck_report_free(rep);
			rep = final;
			final = NULL;
			rc = run_check(rep, path, &o, threads, &c, &r);
		}
		if (rc == 0) {
			for (size_t i = 0; i < rep->n; i++) {
				problem *p = rep->p[i];
				if (p->pub.severity != CAIRN_FSCK_DAMAGE || strcmp(p->kind, "usage") != 0) continue;
				const char *u = strncmp(p->object, "users/", 6) == 0 ? p->object + 6 : NULL;
				if (u && quota_rebuild(r, u) == 0) {
					p->pub.severity = CAIRN_FSCK_REPAIRED;
					rep->stats.repairs++;
				}
			}
			for (size_t i = 0; i < c.nsnaps; i++) {
				uint8_t key[OID_LEN];
				const index_entry *e;
				if (hex_decode(key, OID_LEN, c.snaps[i]) < 0 || !(e = index_key_get(c.damaged_snaps, key, OID_LEN)))
					continue;
				if (damaged_check(r, c.snaps[i]) < 0) continue; /* marked already */
				error_clear();
				char obj[96];
				snprintf(obj, sizeof(obj), "damaged/%s", c.snaps[i]);
				if ((rc = damaged_mark(r, c.snaps[i], c.damaged_reason[e->offset])) < 0) break;
				rep->stats.repairs++;
				report_add(rep, CAIRN_FSCK_REPAIRED, "repair", obj,
				           "snapshot %s marked damaged: restore refuses it (it is kept)", c.snaps[i]);
			}
			count(rep, &c);
		}
		store_lock_release(lock);
		lock = NULL;
		store_free(st);
	}
done:
	ctx_free(&c);
	cairn_repo_free(r);
	cairn_fsck_report_free(final);
	if (rc < 0) {
		cairn_fsck_report_free(rep);
		return rc;
	}
	rep->stats.duration_ms = (uint64_t)(mono_ns() - t0) / 1000000;
	*out = rep;
	return 0;
}
