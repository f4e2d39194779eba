#include "writer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "format.h"
#include "index.h"
#include "pack.h"

#define SEGMENT_ENTRIES_MAX (4u * 1024u * 1024u)

struct snap_writer {
	cairn_repo *repo;
	pthread_mutex_t lock; /* guards everything below */
	chunk_index *pending; /* blobs stored or being stored by this writer */
	pack_writer *pw;      /* the pack being filled */
	index_entry *entries; /* blobs in packs already written */
	size_t nentries, capentries;
};

int writer_new(snap_writer **out, cairn_repo *repo)
{
	*out = NULL;
	snap_writer *w = calloc(1, sizeof(*w));
	if (!w) return ERR_OOM();
	w->repo = repo;
	pthread_mutex_init(&w->lock, NULL);
	int rc = index_new(&w->pending);
	if (rc < 0) {
		writer_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

void writer_free(snap_writer *w)
{
	if (!w) return;
	pack_writer_free(w->pw);
	index_free(w->pending);
	free(w->entries);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* Write a full pack and remember where its blobs are. */
static int flush_pack(snap_writer *w, pack_writer *pw)
{
	int rc;
	uint8_t *data = NULL, pack_id[PACK_ID_LEN];
	size_t len, nblobs;
	const pack_blob *blobs;
	char name[64];

	if ((rc = pack_writer_finish(pw, &data, &len, &blobs, &nblobs)) < 0) goto done;
	if ((rc = repo_random(pack_id, sizeof(pack_id))) < 0) goto done;
	repo_pack_name(name, pack_id);
	if ((rc = store_put(w->repo->st, name, data, len, STORE_EXCL)) < 0) goto done;

	pthread_mutex_lock(&w->lock);
	if (w->nentries + nblobs > w->capentries) {
		size_t cap = w->capentries ? w->capentries : 1024;
		while (cap < w->nentries + nblobs) cap *= 2;
		index_entry *e = realloc(w->entries, cap * sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&w->lock);
			rc = ERR_OOM();
			goto done;
		}
		w->entries = e;
		w->capentries = cap;
	}
	for (size_t i = 0; i < nblobs; i++) {
		index_entry *e = &w->entries[w->nentries++];
		memset(e, 0, sizeof(*e));
		e->id = blobs[i].id;
		memcpy(e->pack, pack_id, PACK_ID_LEN);
		e->offset = blobs[i].offset;
		e->raw_len = blobs[i].raw_len;
		e->stored_len = blobs[i].stored_len;
		e->type = blobs[i].type;
		e->comp = blobs[i].comp;
	}
	pthread_mutex_unlock(&w->lock);
done:
	free(data);
	pack_writer_free(pw);
	return rc;
}

int writer_put(snap_writer *w, const oid *id, uint8_t type, const uint8_t *data, size_t len,
               size_t *stored)
{
	int rc;
	uint8_t comp, *packed = NULL;
	size_t packed_len;
	pack_writer *full = NULL;

	*stored = 0;
	pthread_mutex_lock(&w->lock);
	/* repo->index only grows at commit, which no put runs beside */
	if (index_lookup(w->repo->index, id) || index_lookup(w->pending, id)) {
		pthread_mutex_unlock(&w->lock);
		return 0;
	}
	index_entry claim;
	memset(&claim, 0, sizeof(claim));
	claim.id = *id;
	rc = index_insert(w->pending, &claim);
	pthread_mutex_unlock(&w->lock);
	if (rc < 0) return rc;

	/* compressed outside the lock: this is where the cores are spent */
	if ((rc = pack_compress(data, len, w->repo->cfg.zstd_level, &comp, &packed, &packed_len)) < 0)
		return rc;
	const uint8_t *bytes = packed ? packed : data;
	size_t bytes_len = packed ? packed_len : len;

	pthread_mutex_lock(&w->lock);
	if (!w->pw) rc = pack_writer_new(&w->pw);
	if (rc == 0)
		rc = pack_writer_add(w->pw, id, type, comp, bytes, (uint32_t)bytes_len, (uint32_t)len);
	if (rc == 0 && pack_writer_size(w->pw) >= PACK_TARGET_LEN) {
		full = w->pw;
		w->pw = NULL;
	}
	pthread_mutex_unlock(&w->lock);
	free(packed);
	if (rc < 0) return rc;
	*stored = bytes_len;
	/* written outside the lock: the other threads keep compressing */
	if (full) rc = flush_pack(w, full);
	return rc;
}

int writer_put_chunk(snap_writer *w, const uint8_t *data, size_t len, oid *id, size_t *stored)
{
	hash_sha256(id, data, len);
	return writer_put(w, id, BLOB_DATA, data, len, stored);
}

int writer_put_tree(snap_writer *w, const tree_entry *entries, size_t n, oid *id, size_t *stored)
{
	uint8_t *data;
	size_t len;
	*stored = 0;
	int rc = tree_encode(entries, n, &data, &len);
	if (rc < 0) return rc;
	hash_sha256(id, data, len);
	rc = writer_put(w, id, BLOB_TREE, data, len, stored);
	free(data);
	return rc;
}

static int write_index(snap_writer *w)
{
	int rc = 0;
	for (size_t start = 0; start < w->nentries && rc == 0; start += SEGMENT_ENTRIES_MAX) {
		size_t n = w->nentries - start;
		if (n > SEGMENT_ENTRIES_MAX) n = SEGMENT_ENTRIES_MAX;
		uint8_t *data, id[16];
		size_t len;
		char name[64], hex[33];
		if ((rc = index_segment_encode(w->entries + start, n, &data, &len)) < 0) break;
		if ((rc = repo_random(id, sizeof(id))) == 0) {
			hex_encode(hex, id, sizeof(id));
			snprintf(name, sizeof(name), "index/%s", hex);
			rc = store_put(w->repo->st, name, data, len, STORE_EXCL);
		}
		free(data);
	}
	return rc;
}

int writer_commit(snap_writer *w, const snapshot_manifest *m, char id_out[OID_HEX_LEN + 1])
{
	int rc;
	uint8_t *mdata = NULL;
	size_t mlen;
	char name[OID_HEX_LEN + 16];
	oid sid;

	if (w->pw) {
		pack_writer *pw = w->pw;
		w->pw = NULL;
		if ((rc = flush_pack(w, pw)) < 0) return rc;
	}
	if ((rc = write_index(w)) < 0) return rc;
	if ((rc = snapshot_encode(m, &mdata, &mlen)) < 0) return rc;
	hash_sha256(&sid, mdata, mlen);
	oid_hex(id_out, &sid);
	snprintf(name, sizeof(name), "snapshots/%s", id_out);
	rc = store_put(w->repo->st, name, mdata, mlen, STORE_EXCL); /* the commit point */
	free(mdata);
	if (rc < 0) return rc;

	/* this handle now knows the new blobs too */
	pthread_mutex_lock(&w->repo->lock);
	for (size_t i = 0; i < w->nentries && rc == 0; i++)
		if (index_insert(w->repo->index, &w->entries[i]) < 0) rc = ERR_OOM();
	pthread_mutex_unlock(&w->repo->lock);
	return rc;
}
