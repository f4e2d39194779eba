/* The check (internal.h): repairs: damaged packs quarantined (their good blobs
 * copied out), the index rebuilt from the packs. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "io.h"

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
int quarantine_pack(fsck_ctx *c, cairn_fsck_report *out, const char *pname, const uint8_t *pid)
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
int rebuild_index(cairn_repo *r, cairn_fsck_report *out)
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
	rc = store_list(r->st, "packs", fsck_pack_visit, &c);
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
	fsck_ctx_free(&c);
	return rc;
}
