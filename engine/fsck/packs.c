/* The check (internal.h): the config, index segments and packs checked, blobs
 * verified (on every core). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

/* config */
void check_config(fsck_ctx *c)
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
int fsck_segment_visit(const char *name, void *payload)
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

int fsck_pack_visit(const char *name, void *payload)
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

int check_packs(fsck_ctx *c)
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
long blob_check(fsck_ctx *c, const oid *id, uint8_t type)
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
