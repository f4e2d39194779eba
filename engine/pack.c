#include "pack.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"
#include "store.h"

/* A streamed writer stages small blobs here and hands the store this
 * much at a time: one write per many small blobs, through a buffer reused
 * for the whole pack (not 32 MiB of fresh pages faulted in one by one). */
#define STAGE_LEN (1u << 20)

struct pack_writer {
	buf b; /* in memory: the whole file; streamed: staged bytes not yet written */
	pack_blob *blobs;
	size_t nblobs, cap;
	uint64_t len; /* bytes of the file so far */
	int finished;
	store_writer *sw;       /* streamed when set */
	XXH3_state_t *file_xs;  /* streamed: the whole-file check so far */
	XXH3_state_t *blob_xs;  /* streamed: a blob check over pieces */
	int failed;             /* streamed: a write failed; the pack is lost */
};

/* Checks shared by the writer, the parser and the blob reader: what a blob
 * header may say on its own. Returns NULL or the fault. */
static const char *blob_fields_fault(uint8_t type, uint8_t comp, uint16_t reserved,
                                     uint32_t raw_len, uint32_t stored_len)
{
	if (type != BLOB_DATA && type != BLOB_TREE) return "unknown blob type";
	if (comp != COMP_NONE && comp != COMP_ZSTD) return "unknown compression";
	if (reserved != 0) return "reserved field not zero";
	if (type == BLOB_DATA && raw_len > MAX_CHUNK_LEN) return "data blob longer than the chunk limit";
	if (type == BLOB_TREE && raw_len > MAX_TREE_LEN) return "tree blob longer than the tree limit";
	if (comp == COMP_NONE && stored_len != raw_len) return "stored length differs from raw length";
	if (comp == COMP_ZSTD && stored_len == 0) return "empty compressed blob";
	if (stored_len > MAX_PACK_LEN) return "stored length beyond the pack limit";
	return NULL;
}

static void put_blob_header(uint8_t *p, const pack_blob *bl)
{
	memcpy(p, bl->id.b, OID_LEN);
	p[32] = bl->type;
	p[33] = bl->comp;
	put_u16(p + 34, 0);
	put_u32(p + 36, bl->raw_len);
	put_u32(p + 40, bl->stored_len);
}

/* The 44 bytes shared by a blob header and a directory entry. */
static void get_blob_header(const uint8_t *p, pack_blob *bl, uint16_t *reserved)
{
	memcpy(bl->id.b, p, OID_LEN);
	bl->type = p[32];
	bl->comp = p[33];
	*reserved = get_u16(p + 34);
	bl->raw_len = get_u32(p + 36);
	bl->stored_len = get_u32(p + 40);
}

static void short_id(char out[17], const oid *id) { hex_encode(out, id->b, 8); }

int pack_writer_new(pack_writer **out)
{
	*out = NULL;
	pack_writer *pw = calloc(1, sizeof(*pw));
	if (!pw) return ERR_OOM();
	buf_init(&pw->b);
	buf_header(&pw->b, MAGIC_PACK, 0);
	if (pw->b.oom) {
		free(pw);
		return ERR_OOM();
	}
	pw->len = pw->b.len;
	*out = pw;
	return 0;
}

int pack_writer_new_stream(pack_writer **out, store *st, const char *name)
{
	pack_writer *pw;
	int rc = pack_writer_new(&pw);
	if (rc < 0) return rc;
	if (buf_reserve(&pw->b, STAGE_LEN) < 0 || !(pw->file_xs = XXH3_createState()) ||
	    !(pw->blob_xs = XXH3_createState())) {
		rc = ERR_OOM();
		goto fail;
	}
	XXH3_64bits_reset(pw->file_xs);
	if ((rc = store_write_begin(st, name, &pw->sw)) < 0) goto fail;
	*out = pw;
	return 0;
fail:
	pack_writer_free(pw);
	return rc;
}

void pack_writer_free(pack_writer *pw)
{
	if (!pw) return;
	store_write_abort(pw->sw);
	XXH3_freeState(pw->file_xs);
	XXH3_freeState(pw->blob_xs);
	buf_free(&pw->b);
	free(pw->blobs);
	free(pw);
}

/* Streamed: bytes leave for the store, and count towards the file check. */
static int stream_out(pack_writer *pw, const void *data, size_t len)
{
	if (len == 0) return 0;
	XXH3_64bits_update(pw->file_xs, data, len);
	int rc = store_write_append(pw->sw, data, len);
	if (rc < 0) pw->failed = 1;
	return rc;
}

static int stage_flush(pack_writer *pw)
{
	int rc = stream_out(pw, pw->b.data, pw->b.len);
	pw->b.len = 0;
	return rc;
}

/* Add bytes to the file: staged (or kept, in memory), or, for a streamed
 * piece larger than the stage, written through without a copy. */
static int emit(pack_writer *pw, const void *data, size_t len)
{
	pw->len += len;
	if (!pw->sw) {
		buf_put(&pw->b, data, len);
		return pw->b.oom ? ERR_OOM() : 0;
	}
	int rc = 0;
	if (pw->b.len + len > STAGE_LEN) rc = stage_flush(pw);
	if (rc == 0 && len > STAGE_LEN) return stream_out(pw, data, len);
	if (rc == 0) buf_put(&pw->b, data, len); /* fits the reserved stage: no allocation */
	return rc;
}

/* Size of the finished file if it were finished with n blobs in len bytes. */
static uint64_t finished_size(uint64_t len, uint64_t n)
{
	return len + n * PACK_DIR_ENTRY_LEN + PACK_FOOTER_LEN + FORMAT_CHECK_LEN;
}

int pack_writer_add(pack_writer *pw, const oid *id, uint8_t type, uint8_t comp,
                    const void *stored, uint32_t stored_len, uint32_t raw_len)
{
	char sid[17];
	short_id(sid, id);
	if (pw->finished)
		return error_set(CAIRN_EIO, "pack writer: blob %s added after finish", sid);
	const char *fault = blob_fields_fault(type, comp, 0, raw_len, stored_len);
	if (fault) return error_set(CAIRN_EIO, "pack writer: blob %s: %s", sid, fault);
	/* Offsets are u32: the caller starts a new pack well before this. */
	uint64_t after = finished_size(pw->len + BLOB_OVERHEAD + stored_len, pw->nblobs + 1);
	if (after > MAX_PACK_LEN)
		return error_set(CAIRN_EIO, "pack writer: blob %s of %u bytes would exceed the pack limit",
		                 sid, stored_len);
	if (pw->nblobs == pw->cap) {
		size_t cap = pw->cap ? pw->cap * 2 : 64;
		pack_blob *nb = realloc(pw->blobs, cap * sizeof(*nb));
		if (!nb) return ERR_OOM();
		pw->blobs = nb;
		pw->cap = cap;
	}
	if (!pw->sw && buf_reserve(&pw->b, BLOB_OVERHEAD + (size_t)stored_len) < 0) return ERR_OOM();
	if (pw->failed) return error_set(CAIRN_EIO, "pack writer: blob %s added after a failed write", sid);

	pack_blob *bl = &pw->blobs[pw->nblobs];
	bl->id = *id;
	bl->type = type;
	bl->comp = comp;
	bl->raw_len = raw_len;
	bl->stored_len = stored_len;
	bl->offset = (uint32_t)pw->len;

	uint8_t hdr[BLOB_HEADER_LEN], check[8];
	put_blob_header(hdr, bl);
	size_t whole = BLOB_OVERHEAD + (size_t)stored_len;
	int rc;
	if (!pw->sw || whole <= STAGE_LEN) {
		/* contiguous in the buffer: checked where it lies */
		if (pw->sw && pw->b.len + whole > STAGE_LEN && (rc = stage_flush(pw)) < 0) return rc;
		size_t at = pw->b.len;
		buf_put(&pw->b, hdr, sizeof(hdr));
		buf_put(&pw->b, stored, stored_len);
		buf_u64(&pw->b, hash_xxh3(pw->b.data + at, BLOB_HEADER_LEN + (size_t)stored_len));
		pw->len += whole;
	} else {
		XXH3_64bits_reset(pw->blob_xs);
		XXH3_64bits_update(pw->blob_xs, hdr, sizeof(hdr));
		XXH3_64bits_update(pw->blob_xs, stored, stored_len);
		put_u64(check, XXH3_64bits_digest(pw->blob_xs));
		if ((rc = emit(pw, hdr, sizeof(hdr))) < 0 || (rc = emit(pw, stored, stored_len)) < 0 ||
		    (rc = emit(pw, check, sizeof(check))) < 0)
			return rc;
	}
	pw->nblobs++;
	return 0;
}

/* The size the file will have when finished now (compare with PACK_TARGET_LEN). */
size_t pack_writer_size(const pack_writer *pw)
{
	return (size_t)finished_size(pw->len, pw->nblobs);
}

size_t pack_writer_count(const pack_writer *pw) { return pw->nblobs; }

int pack_writer_holds(const pack_writer *pw, uint8_t type)
{
	for (size_t i = 0; i < pw->nblobs; i++)
		if (pw->blobs[i].type == type) return 1;
	return 0;
}

/* Directory and footer after the blobs. */
static int put_tail(pack_writer *pw)
{
	uint32_t dir_offset = (uint32_t)pw->len;
	int rc = 0;
	for (size_t i = 0; i < pw->nblobs && rc == 0; i++) {
		uint8_t e[PACK_DIR_ENTRY_LEN];
		put_blob_header(e, &pw->blobs[i]);
		put_u32(e + BLOB_HEADER_LEN, pw->blobs[i].offset);
		rc = emit(pw, e, sizeof(e));
	}
	uint8_t footer[PACK_FOOTER_LEN];
	put_u32(footer, (uint32_t)pw->nblobs);
	put_u32(footer + 4, dir_offset);
	return rc < 0 ? rc : emit(pw, footer, sizeof(footer));
}

int pack_writer_finish(pack_writer *pw, uint8_t **data, size_t *len, const pack_blob **blobs,
                       size_t *nblobs)
{
	*data = NULL;
	*len = 0;
	if (pw->finished) return error_set(CAIRN_EIO, "pack writer: finished twice");
	if (pw->sw) return error_set(CAIRN_EIO, "pack writer: a streamed pack is committed, not finished");
	if (buf_reserve(&pw->b, pw->nblobs * PACK_DIR_ENTRY_LEN + PACK_FOOTER_LEN + FORMAT_CHECK_LEN) < 0)
		return ERR_OOM();
	int rc = put_tail(pw);
	if (rc < 0) return rc;
	buf_check(&pw->b);
	if (pw->b.oom) return ERR_OOM();
	pw->finished = 1;
	*data = buf_take(&pw->b, len);
	if (blobs) *blobs = pw->blobs;
	if (nblobs) *nblobs = pw->nblobs;
	return 0;
}

int pack_writer_commit(pack_writer *pw, unsigned flags, const pack_blob **blobs, size_t *nblobs,
                       uint64_t *len)
{
	if (pw->finished) return error_set(CAIRN_EIO, "pack writer: finished twice");
	if (!pw->sw) return error_set(CAIRN_EIO, "pack writer: an in-memory pack is finished, not committed");
	if (pw->failed) return error_set(CAIRN_EIO, "pack writer: commit after a failed write");
	int rc = put_tail(pw);
	if (rc == 0) rc = stage_flush(pw);
	if (rc < 0) return rc;
	uint8_t check[FORMAT_CHECK_LEN];
	put_u64(check, XXH3_64bits_digest(pw->file_xs));
	pw->len += sizeof(check);
	if ((rc = store_write_append(pw->sw, check, sizeof(check))) < 0) return rc;
	pw->finished = 1;
	store_writer *sw = pw->sw;
	pw->sw = NULL; /* commit frees it, whatever it returns */
	if ((rc = store_write_commit(sw, flags)) < 0) return rc;
	if (blobs) *blobs = pw->blobs;
	if (nblobs) *nblobs = pw->nblobs;
	if (len) *len = pw->len;
	return 0;
}

int pack_parse(const uint8_t *data, size_t len, const char *what, pack_blob **blobs,
               size_t *nblobs)
{
	*blobs = NULL;
	*nblobs = 0;
	if (len > MAX_PACK_LEN)
		return error_set(CAIRN_ECORRUPT, "%s: %zu bytes, beyond the pack limit", what, len);
	const uint8_t *body;
	size_t body_len;
	int rc = frame_check(data, len, MAGIC_PACK, what, &body, &body_len);
	if (rc < 0) return rc;
	uint32_t flags = get_u32(data + 12);
	if (flags != 0) return error_set(CAIRN_ECORRUPT, "%s: unknown flags 0x%x", what, flags);
	if (body_len < PACK_FOOTER_LEN) return error_set(CAIRN_ECORRUPT, "%s: no footer", what);

	/* All offsets below are file offsets; len <= MAX_PACK_LEN fits u32. */
	uint64_t footer = len - FORMAT_CHECK_LEN - PACK_FOOTER_LEN;
	uint32_t count = get_u32(data + footer);
	uint32_t dir_offset = get_u32(data + footer + 4);
	if (dir_offset < FORMAT_HEADER_LEN || dir_offset > footer ||
	    (footer - dir_offset) != (uint64_t)count * PACK_DIR_ENTRY_LEN)
		return error_set(CAIRN_ECORRUPT, "%s: directory of %u entries at %u does not fit", what,
		                 count, dir_offset);
	/* count <= len / 48 now, so the allocation is bounded by the file. */
	pack_blob *out = malloc((count ? count : 1) * sizeof(*out));
	if (!out) return ERR_OOM();

	uint64_t pos = FORMAT_HEADER_LEN;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = data + dir_offset + (uint64_t)i * PACK_DIR_ENTRY_LEN;
		pack_blob *bl = &out[i];
		uint16_t reserved;
		get_blob_header(e, bl, &reserved);
		bl->offset = get_u32(e + BLOB_HEADER_LEN);
		char sid[17];
		short_id(sid, &bl->id);
		const char *fault = blob_fields_fault(bl->type, bl->comp, reserved, bl->raw_len,
		                                      bl->stored_len);
		if (fault) {
			rc = error_set(CAIRN_ECORRUPT, "%s: directory entry %u (blob %s): %s", what, i, sid,
			               fault);
			goto done;
		}
		/* Blobs lie back to back in directory order, from the header to the directory. */
		if (bl->offset != pos) {
			rc = error_set(CAIRN_ECORRUPT, "%s: blob %s at offset %u, expected %llu", what, sid,
			               bl->offset, (unsigned long long)pos);
			goto done;
		}
		uint64_t end = pos + BLOB_OVERHEAD + (uint64_t)bl->stored_len;
		if (end > dir_offset) {
			rc = error_set(CAIRN_ECORRUPT, "%s: blob %s at offset %u runs into the directory",
			               what, sid, bl->offset);
			goto done;
		}
		const uint8_t *b = data + pos;
		if (memcmp(b, e, BLOB_HEADER_LEN) != 0) {
			rc = error_set(CAIRN_ECORRUPT, "%s: blob %s at offset %u differs from its directory entry",
			               what, sid, bl->offset);
			goto done;
		}
		size_t checked = BLOB_HEADER_LEN + (size_t)bl->stored_len;
		if (hash_xxh3(b, checked) != get_u64(b + checked)) {
			rc = error_set(CAIRN_ECORRUPT, "%s: blob %s at offset %u: checksum mismatch", what, sid,
			               bl->offset);
			goto done;
		}
		pos = end;
	}
	if (pos != dir_offset) {
		rc = error_set(CAIRN_ECORRUPT, "%s: %llu bytes between the last blob and the directory",
		               what, (unsigned long long)(dir_offset - pos));
		goto done;
	}
	*blobs = out;
	*nblobs = count;
	out = NULL;
	rc = 0;
done:
	free(out);
	return rc;
}

/* One compression and one decompression context per thread, freed at thread exit. */
static pthread_key_t cctx_key, dctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static int ctx_keys_ok;

static void free_cctx(void *p) { ZSTD_freeCCtx(p); }
static void free_dctx(void *p) { ZSTD_freeDCtx(p); }

static void ctx_keys_init(void)
{
	ctx_keys_ok = pthread_key_create(&cctx_key, free_cctx) == 0 &&
	              pthread_key_create(&dctx_key, free_dctx) == 0;
}

static ZSTD_CCtx *thread_cctx(void)
{
	pthread_once(&ctx_once, ctx_keys_init);
	if (!ctx_keys_ok) return NULL;
	ZSTD_CCtx *c = pthread_getspecific(cctx_key);
	if (!c) {
		c = ZSTD_createCCtx();
		if (c && pthread_setspecific(cctx_key, c) != 0) {
			ZSTD_freeCCtx(c);
			c = NULL;
		}
	}
	return c;
}

static ZSTD_DCtx *thread_dctx(void)
{
	pthread_once(&ctx_once, ctx_keys_init);
	if (!ctx_keys_ok) return NULL;
	ZSTD_DCtx *d = pthread_getspecific(dctx_key);
	if (!d) {
		d = ZSTD_createDCtx();
		if (d && pthread_setspecific(dctx_key, d) != 0) {
			ZSTD_freeDCtx(d);
			d = NULL;
		}
	}
	return d;
}

int pack_unstore(uint8_t comp, const uint8_t *stored, size_t stored_len, uint8_t *dst, size_t raw_len,
                 const char *what)
{
	if (comp == COMP_NONE) {
		if (stored_len != raw_len)
			return error_set(CAIRN_ECORRUPT, "%s: %zu bytes stored, expected %zu", what, stored_len, raw_len);
		memcpy(dst, stored, raw_len);
		return 0;
	}
	ZSTD_DCtx *d = thread_dctx();
	if (!d) return ERR_OOM();
	/* dst holds exactly raw_len: a frame that decodes to more fails. */
	size_t n = ZSTD_decompressDCtx(d, dst, raw_len, stored, stored_len);
	if (ZSTD_isError(n)) return error_set(CAIRN_ECORRUPT, "%s: zstd: %s", what, ZSTD_getErrorName(n));
	if (n != raw_len)
		return error_set(CAIRN_ECORRUPT, "%s: decompressed to %zu bytes, expected %zu", what, n, raw_len);
	return 0;
}

int pack_blob_open_into(const uint8_t *raw, size_t raw_size, const pack_blob *want, const char *what,
                        uint8_t *dst)
{
	if (raw_size != BLOB_OVERHEAD + (size_t)want->stored_len)
		return error_set(CAIRN_ECORRUPT, "%s: %zu bytes read, expected %zu", what, raw_size,
		                 BLOB_OVERHEAD + (size_t)want->stored_len);
	pack_blob got;
	uint16_t reserved;
	get_blob_header(raw, &got, &reserved);
	if (oid_cmp(&got.id, &want->id) != 0)
		return error_set(CAIRN_ECORRUPT, "%s: blob header names another id", what);
	if (got.type != want->type || got.comp != want->comp || got.raw_len != want->raw_len ||
	    got.stored_len != want->stored_len)
		return error_set(CAIRN_ECORRUPT,
		                 "%s: blob header (type %u comp %u raw %u stored %u) differs from the index "
		                 "(type %u comp %u raw %u stored %u)",
		                 what, got.type, got.comp, got.raw_len, got.stored_len, want->type,
		                 want->comp, want->raw_len, want->stored_len);
	const char *fault = blob_fields_fault(got.type, got.comp, reserved, got.raw_len, got.stored_len);
	if (fault) return error_set(CAIRN_ECORRUPT, "%s: %s", what, fault);
	size_t checked = BLOB_HEADER_LEN + (size_t)got.stored_len;
	if (hash_xxh3(raw, checked) != get_u64(raw + checked))
		return error_set(CAIRN_ECORRUPT, "%s: checksum mismatch", what);

	int rc = pack_unstore(got.comp, raw + BLOB_HEADER_LEN, got.stored_len, dst, got.raw_len, what);
	if (rc < 0) return rc;
	oid h;
	hash_sha256(&h, dst, got.raw_len);
	if (oid_cmp(&h, &got.id) != 0) return error_set(CAIRN_ECORRUPT, "%s: content does not match its id", what);
	return 0;
}

int pack_blob_open(const uint8_t *raw, size_t raw_size, const pack_blob *want, const char *what,
                   uint8_t **out)
{
	*out = NULL;
	/* the index's lengths bound the allocation: checked before it */
	const char *fault = blob_fields_fault(want->type, want->comp, 0, want->raw_len, want->stored_len);
	if (fault) return error_set(CAIRN_ECORRUPT, "%s: %s", what, fault);
	uint8_t *res = malloc(want->raw_len ? want->raw_len : 1);
	if (!res) return ERR_OOM();
	int rc = pack_blob_open_into(raw, raw_size, want, what, res);
	if (rc < 0) {
		free(res);
		return rc;
	}
	*out = res;
	return 0;
}

/* Model weights, archives and compressed media do not shrink, and a full
 * zstd pass over them is most of a take's time for nothing: a chunk of at
 * least SAMPLE_MIN bytes is first judged by SAMPLES slices spread over it,
 * compressed at level 1; when those shrink by less than SAMPLE_GAIN_PCT,
 * the chunk is stored raw without the full pass. */
#define SAMPLE_MIN (32u << 10)
#define SAMPLES 4
#define SAMPLE_LEN 2048u
#define SAMPLE_GAIN_PCT 3

static int looks_incompressible(ZSTD_CCtx *c, const uint8_t *data, size_t len)
{
	if (len < SAMPLE_MIN) return 0;
	uint8_t sample[SAMPLES * SAMPLE_LEN], out[ZSTD_COMPRESSBOUND(SAMPLES * SAMPLE_LEN)];
	for (size_t i = 0; i < SAMPLES; i++) /* start, end and between */
		memcpy(sample + i * SAMPLE_LEN, data + (len - SAMPLE_LEN) * i / (SAMPLES - 1), SAMPLE_LEN);
	size_t n = ZSTD_compressCCtx(c, out, sizeof(out), sample, sizeof(sample), 1);
	return !ZSTD_isError(n) && n * 100 >= sizeof(sample) * (100 - SAMPLE_GAIN_PCT);
}

int pack_compress(const void *data, size_t len, int level, uint8_t *comp, uint8_t **stored,
                  size_t *stored_len)
{
	*comp = COMP_NONE;
	*stored = NULL;
	*stored_len = len;
	if (len == 0) return 0;
	ZSTD_CCtx *c = thread_cctx();
	if (!c) return ERR_OOM();
	if (looks_incompressible(c, data, len)) return 0;
	size_t cap = ZSTD_compressBound(len);
	uint8_t *dst = malloc(cap);
	if (!dst) return ERR_OOM();
	size_t n = ZSTD_compressCCtx(c, dst, cap, data, len, level);
	if (ZSTD_isError(n)) {
		free(dst);
		return error_set(CAIRN_EIO, "zstd compression of %zu bytes: %s", len,
		                 ZSTD_getErrorName(n));
	}
	if (n >= len) { /* incompressible: store raw */
		free(dst);
		return 0;
	}
	uint8_t *shrunk = realloc(dst, n);
	*comp = COMP_ZSTD;
	*stored = shrunk ? shrunk : dst;
	*stored_len = n;
	return 0;
}
