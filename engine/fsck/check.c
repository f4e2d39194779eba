/* The check (internal.h): the whole check: every snapshot, unreferenced and
 * leftover objects, markers, inodes records, quotas. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "damaged.h"
#include "error.h"
#include "inodes.h"
#include "quota.h"

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
	if (pr >= 0) report_affect(P(c, pr), id, "", "/");
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

void fsck_ctx_free(fsck_ctx *c)
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
int check_all(fsck_ctx *c)
{
	int rc;
	pthread_mutex_init(&c->lock, NULL);
	c->index_problem = -1;
	if ((rc = index_new(&c->packpos)) < 0 || (rc = index_new(&c->blob_status)) < 0 ||
	    (rc = index_new(&c->referenced)) < 0 || (rc = index_new(&c->tree_memo)) < 0 ||
	    (rc = index_new(&c->damaged_snaps)) < 0)
		return rc;
	check_config(c);
	if ((rc = store_list(c->r->st, "snapshots", fsck_snapshot_visit, c)) < 0) return rc;
	if ((rc = store_list(c->r->st, "index", fsck_segment_visit, c)) < 0) return rc;
	if ((rc = store_list(c->r->st, "packs", fsck_pack_visit, c)) < 0) return rc;
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
					report_affect(P(c, c->index_problem), p->ids[k], p->names[k], p->paths[k]);
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
