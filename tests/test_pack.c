#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "format.h"
#include "hash.h"
#include "pack.h"
#include "store.h"
#include "t.h"

/* Exact-size heap copy, so ASan sees any read past the end. */
static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	if (n) memcpy(d, p, n);
	return d;
}

static void reseal(uint8_t *d, size_t len) { put_u64(d + len - 8, hash_xxh3(d, len - 8)); }

static int parse_copy(const uint8_t *data, size_t len)
{
	uint8_t *d = dup_exact(data, len);
	pack_blob *b = NULL;
	size_t n = 99;
	int rc = pack_parse(d, len, "pack test", &b, &n);
	if (rc < 0) CHECK(b == NULL && n == 0);
	free(b);
	free(d);
	return rc;
}

/* Largest blob content build() makes; the flip and truncation tests keep
 * packs small because they parse the pack once per byte. */
static size_t content_max = 256 * 1024;

/* Some compressible (text-like), some random, some trees, some empty. */
static uint8_t *make_content(size_t i, size_t *len, uint8_t *type)
{
	size_t n;
	switch (t_rand() % 4) {
	case 0: n = 0; break;
	case 1: n = 1 + t_rand() % 300; break;
	default: n = t_rand() % content_max; break;
	}
	if (i == 0) n = 0;
	uint8_t *p = malloc(n ? n : 1);
	if (t_rand() % 2) {
		static const char words[] = "lorem ipsum dolor sit amet consectetur adipiscing elit ";
		for (size_t k = 0; k < n; k++) p[k] = (uint8_t)words[(k * 7 + k / 13) % (sizeof(words) - 1)];
	} else {
		t_fill(p, n);
	}
	*len = n;
	*type = t_rand() % 5 == 0 ? BLOB_TREE : BLOB_DATA;
	return p;
}

typedef struct built {
	uint8_t *file;
	size_t len;
	size_t n;
	uint8_t **raw;
	size_t *raw_len;
	pack_blob *blobs; /* copy of the writer's result */
} built;

static void build(built *bt, size_t n, int level)
{
	memset(bt, 0, sizeof(*bt));
	bt->n = n;
	bt->raw = calloc(n, sizeof(*bt->raw));
	bt->raw_len = calloc(n, sizeof(*bt->raw_len));
	pack_writer *pw;
	CHECK_EQ(pack_writer_new(&pw), 0);
	size_t compressed = 0, plain = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t type;
		bt->raw[i] = make_content(i, &bt->raw_len[i], &type);
		oid id;
		hash_sha256(&id, bt->raw[i], bt->raw_len[i]);
		uint8_t comp, *stored;
		size_t stored_len;
		CHECK_EQ(pack_compress(bt->raw[i], bt->raw_len[i], level, &comp, &stored, &stored_len), 0);
		if (comp == COMP_ZSTD) {
			CHECK(stored != NULL && stored_len < bt->raw_len[i]);
			compressed++;
		} else {
			CHECK(stored == NULL && stored_len == bt->raw_len[i]);
			plain++;
		}
		CHECK_EQ(pack_writer_add(pw, &id, type, comp, stored ? stored : bt->raw[i],
		                         (uint32_t)stored_len, (uint32_t)bt->raw_len[i]),
		         0);
		free(stored);
	}
	if (n >= 20) CHECK(compressed > 0 && plain > 0);
	CHECK_EQ(pack_writer_count(pw), n);
	size_t predicted = pack_writer_size(pw);
	const pack_blob *blobs;
	size_t nblobs;
	CHECK_EQ(pack_writer_finish(pw, &bt->file, &bt->len, &blobs, &nblobs), 0);
	CHECK_EQ(predicted, bt->len);
	CHECK_EQ(nblobs, n);
	bt->blobs = malloc((n ? n : 1) * sizeof(*bt->blobs));
	if (n) memcpy(bt->blobs, blobs, n * sizeof(*blobs));
	/* finished: no more adds, no second finish */
	oid z = {{0}};
	CHECK_EQ(pack_writer_add(pw, &z, BLOB_DATA, COMP_NONE, "", 0, 0), CAIRN_EIO);
	uint8_t *again;
	size_t again_len;
	CHECK_EQ(pack_writer_finish(pw, &again, &again_len, NULL, NULL), CAIRN_EIO);
	pack_writer_free(pw);
}

static void built_free(built *bt)
{
	for (size_t i = 0; i < bt->n; i++) free(bt->raw[i]);
	free(bt->raw);
	free(bt->raw_len);
	free(bt->blobs);
	free(bt->file);
}

static void test_round_trip(void)
{
	built bt;
	build(&bt, 200, 3);
	CHECK(bt.len <= PACK_TARGET_LEN * 2);
	pack_blob *b;
	size_t n;
	CHECK_EQ(pack_parse(bt.file, bt.len, "pack rt", &b, &n), 0);
	CHECK_EQ(n, bt.n);
	size_t ok = 0;
	for (size_t i = 0; i < n && i < bt.n; i++) {
		CHECK(memcmp(&b[i].id, &bt.blobs[i].id, OID_LEN) == 0);
		CHECK(b[i].type == bt.blobs[i].type && b[i].comp == bt.blobs[i].comp);
		CHECK(b[i].raw_len == bt.raw_len[i] && b[i].stored_len == bt.blobs[i].stored_len);
		CHECK_EQ(b[i].offset, bt.blobs[i].offset);
		uint8_t *raw = dup_exact(bt.file + b[i].offset, BLOB_OVERHEAD + b[i].stored_len);
		uint8_t *out = NULL;
		int rc = pack_blob_open(raw, BLOB_OVERHEAD + b[i].stored_len, &b[i], "blob", &out);
		if (rc == 0 && memcmp(out, bt.raw[i], bt.raw_len[i]) == 0) ok++;
		else fprintf(stderr, "blob %zu: %s\n", i, cairn_error_last());
		free(out);
		free(raw);
	}
	CHECK_EQ(ok, bt.n);
	free(b);
	built_free(&bt);

	/* an empty pack is valid */
	build(&bt, 0, 3);
	CHECK_EQ(bt.len, FORMAT_HEADER_LEN + PACK_FOOTER_LEN + FORMAT_CHECK_LEN);
	CHECK_EQ(pack_parse(bt.file, bt.len, "empty", &b, &n), 0);
	CHECK_EQ(n, 0);
	free(b);
	built_free(&bt);
}

/* Every single-byte change is caught, and still caught when the file
 * checksum is recomputed (the inner checks stand on their own). */
static void test_flips(void)
{
	built bt;
	content_max = 400;
	build(&bt, 4, 3);
	printf("flip test pack: %zu bytes\n", bt.len);
	CHECK_EQ(parse_copy(bt.file, bt.len), 0);
	uint8_t *d = malloc(bt.len);
	size_t missed = 0, missed_resealed = 0;
	static const uint8_t deltas[] = {0x01, 0x80, 0xff, 0x10};
	for (size_t pos = 0; pos < bt.len; pos++) {
		for (size_t k = 0; k < sizeof(deltas); k++) {
			memcpy(d, bt.file, bt.len);
			d[pos] ^= deltas[k];
			if (parse_copy(d, bt.len) != CAIRN_ECORRUPT) missed++;
			if (pos < bt.len - 8) {
				reseal(d, bt.len);
				if (parse_copy(d, bt.len) != CAIRN_ECORRUPT) {
					missed_resealed++;
					fprintf(stderr, "resealed flip at %zu not detected\n", pos);
				}
			}
		}
	}
	CHECK_EQ(missed, 0);
	CHECK_EQ(missed_resealed, 0);
	free(d);
	built_free(&bt);
}

static void test_truncation(void)
{
	built bt;
	content_max = 400;
	build(&bt, 6, 3);
	printf("truncation test pack: %zu bytes\n", bt.len);
	size_t missed = 0, missed_resealed = 0;
	for (size_t l = 0; l < bt.len; l++) {
		if (parse_copy(bt.file, l) == 0) missed++;
		if (l >= FORMAT_HEADER_LEN + FORMAT_CHECK_LEN) {
			uint8_t *d = dup_exact(bt.file, l);
			reseal(d, l);
			if (parse_copy(d, l) == 0) missed_resealed++;
			free(d);
		}
	}
	CHECK_EQ(missed, 0);
	CHECK_EQ(missed_resealed, 0);
	/* trailing garbage */
	uint8_t *d = malloc(bt.len + 1);
	memcpy(d, bt.file, bt.len);
	d[bt.len] = 0;
	reseal(d, bt.len + 1);
	CHECK_EQ(parse_copy(d, bt.len + 1), CAIRN_ECORRUPT);
	free(d);
	built_free(&bt);
}

static int open_copy(const uint8_t *raw, size_t len, const pack_blob *want, uint8_t **out)
{
	uint8_t *d = dup_exact(raw, len);
	int rc = pack_blob_open(d, len, want, "blob test", out);
	if (rc < 0) CHECK(*out == NULL);
	free(d);
	return rc;
}

/* Make a single blob as it would sit in a pack, with a valid blob_check. */
static uint8_t *make_blob(const oid *id, uint8_t type, uint8_t comp, uint32_t raw_len,
                          const void *stored, uint32_t stored_len)
{
	uint8_t *b = malloc(BLOB_OVERHEAD + stored_len);
	memcpy(b, id->b, OID_LEN);
	b[32] = type;
	b[33] = comp;
	put_u16(b + 34, 0);
	put_u32(b + 36, raw_len);
	put_u32(b + 40, stored_len);
	memcpy(b + BLOB_HEADER_LEN, stored, stored_len);
	put_u64(b + BLOB_HEADER_LEN + stored_len, hash_xxh3(b, BLOB_HEADER_LEN + stored_len));
	return b;
}

static void test_blob_open(void)
{
	size_t len = 5000;
	uint8_t *raw = malloc(len);
	for (size_t i = 0; i < len; i++) raw[i] = (uint8_t)(i % 17);
	oid id;
	hash_sha256(&id, raw, len);
	uint8_t comp, *stored;
	size_t slen;
	CHECK_EQ(pack_compress(raw, len, 3, &comp, &stored, &slen), 0);
	CHECK_EQ(comp, COMP_ZSTD);
	pack_blob want = {.id = id, .type = BLOB_DATA, .comp = comp, .raw_len = (uint32_t)len,
	                  .stored_len = (uint32_t)slen};
	uint8_t *b = make_blob(&id, BLOB_DATA, comp, (uint32_t)len, stored, (uint32_t)slen);
	size_t blen = BLOB_OVERHEAD + slen;
	uint8_t *out = NULL;
	CHECK_EQ(open_copy(b, blen, &want, &out), 0);
	CHECK(out && memcmp(out, raw, len) == 0);
	free(out);

	/* what the index says must match */
	pack_blob w = want;
	w.id.b[5] ^= 1;
	CHECK_EQ(open_copy(b, blen, &w, &out), CAIRN_ECORRUPT);
	w = want;
	w.type = BLOB_TREE;
	CHECK_EQ(open_copy(b, blen, &w, &out), CAIRN_ECORRUPT);
	w = want;
	w.comp = COMP_NONE;
	CHECK_EQ(open_copy(b, blen, &w, &out), CAIRN_ECORRUPT);
	w = want;
	w.raw_len++;
	CHECK_EQ(open_copy(b, blen, &w, &out), CAIRN_ECORRUPT);
	w = want;
	w.stored_len--;
	CHECK_EQ(open_copy(b, blen - 1, &w, &out), CAIRN_ECORRUPT);
	CHECK_EQ(open_copy(b, blen - 1, &want, &out), CAIRN_ECORRUPT);
	CHECK_EQ(open_copy(b, 0, &want, &out), CAIRN_ECORRUPT);

	/* any flipped byte, with and without a recomputed blob_check */
	size_t missed = 0, benign = 0;
	uint8_t *d = malloc(blen);
	for (size_t pos = 0; pos < blen; pos++) {
		memcpy(d, b, blen);
		d[pos] ^= (uint8_t)(1u << (pos % 8));
		if (open_copy(d, blen, &want, &out) != CAIRN_ECORRUPT) missed++;
		free(out);
		if (pos >= BLOB_HEADER_LEN && pos < blen - 8) {
			put_u64(d + blen - 8, hash_xxh3(d, blen - 8));
			/* A change to the compressed bytes that still decodes to the
			 * same content is harmless; anything else must be refused. */
			int rc = open_copy(d, blen, &want, &out);
			if (rc == 0 && memcmp(out, raw, len) == 0) benign++;
			else if (rc != CAIRN_ECORRUPT) missed++;
			free(out);
		}
	}
	CHECK_EQ(missed, 0);
	CHECK(benign * 10 < slen);
	printf("blob flips: %zu of %zu resealed flips decode to the same content\n", benign, slen);
	free(d);
	free(b);

	/* content that does not hash to its id: stored raw and compressed */
	oid other = id;
	other.b[0] ^= 0x40;
	w = want;
	w.id = other;
	b = make_blob(&other, BLOB_DATA, COMP_ZSTD, (uint32_t)len, stored, (uint32_t)slen);
	CHECK_EQ(open_copy(b, blen, &w, &out), CAIRN_ECORRUPT);
	free(b);
	w.comp = COMP_NONE;
	w.stored_len = (uint32_t)len;
	b = make_blob(&other, BLOB_DATA, COMP_NONE, (uint32_t)len, raw, (uint32_t)len);
	CHECK_EQ(open_copy(b, BLOB_OVERHEAD + len, &w, &out), CAIRN_ECORRUPT);
	free(b);

	/* a frame that decodes to more or fewer bytes than raw_len says */
	for (int delta = -1; delta <= 1; delta += 2) {
		w = want;
		w.raw_len = (uint32_t)(len + delta);
		b = make_blob(&id, BLOB_DATA, COMP_ZSTD, w.raw_len, stored, (uint32_t)slen);
		CHECK_EQ(open_copy(b, blen, &w, &out), CAIRN_ECORRUPT);
		free(b);
	}

	/* raw_len beyond the limits is refused before allocating */
	w = want;
	w.raw_len = MAX_CHUNK_LEN + 1;
	b = make_blob(&id, BLOB_DATA, COMP_ZSTD, w.raw_len, stored, (uint32_t)slen);
	CHECK_EQ(open_copy(b, blen, &w, &out), CAIRN_ECORRUPT);
	free(b);
	w.type = BLOB_TREE;
	w.raw_len = MAX_TREE_LEN + 1;
	b = make_blob(&id, BLOB_TREE, COMP_ZSTD, w.raw_len, stored, (uint32_t)slen);
	CHECK_EQ(open_copy(b, blen, &w, &out), CAIRN_ECORRUPT);
	free(b);
	/* unknown type and compression */
	w = want;
	w.type = 7;
	b = make_blob(&id, 7, COMP_ZSTD, w.raw_len, stored, (uint32_t)slen);
	CHECK_EQ(open_copy(b, blen, &w, &out), CAIRN_ECORRUPT);
	free(b);
	w = want;
	w.comp = 9;
	b = make_blob(&id, BLOB_DATA, 9, w.raw_len, stored, (uint32_t)slen);
	CHECK_EQ(open_copy(b, blen, &w, &out), CAIRN_ECORRUPT);
	free(b);

	/* a tree blob, uncompressed, and an empty data blob */
	w = (pack_blob){.type = BLOB_TREE, .comp = COMP_NONE, .raw_len = 100, .stored_len = 100};
	hash_sha256(&w.id, raw, 100);
	b = make_blob(&w.id, BLOB_TREE, COMP_NONE, 100, raw, 100);
	CHECK_EQ(open_copy(b, BLOB_OVERHEAD + 100, &w, &out), 0);
	CHECK(out && memcmp(out, raw, 100) == 0);
	free(out);
	free(b);
	w = (pack_blob){.type = BLOB_DATA, .comp = COMP_NONE};
	hash_sha256(&w.id, "", 0);
	b = make_blob(&w.id, BLOB_DATA, COMP_NONE, 0, "", 0);
	CHECK_EQ(open_copy(b, BLOB_OVERHEAD, &w, &out), 0);
	CHECK(out != NULL);
	free(out);
	free(b);

	free(stored);
	free(raw);
}

static void test_writer_rejects(void)
{
	pack_writer *pw;
	CHECK_EQ(pack_writer_new(&pw), 0);
	oid id = {{1}};
	uint8_t data[16] = {0};
	CHECK_EQ(pack_writer_add(pw, &id, 0, COMP_NONE, data, 16, 16), CAIRN_EIO);
	CHECK_EQ(pack_writer_add(pw, &id, BLOB_DATA, 2, data, 16, 16), CAIRN_EIO);
	CHECK_EQ(pack_writer_add(pw, &id, BLOB_DATA, COMP_NONE, data, 16, 17), CAIRN_EIO);
	CHECK_EQ(pack_writer_add(pw, &id, BLOB_DATA, COMP_ZSTD, data, 16, MAX_CHUNK_LEN + 1), CAIRN_EIO);
	CHECK_EQ(pack_writer_count(pw), 0);
	CHECK_EQ(pack_writer_add(pw, &id, BLOB_DATA, COMP_NONE, data, 16, 16), 0);
	CHECK_EQ(pack_writer_count(pw), 1);
	pack_writer_free(pw);
	pack_writer_free(NULL);
}

static void test_garbage(void)
{
	size_t rejected = 0, empty = 0, tries = 3000;
	for (size_t i = 0; i < tries; i++) {
		size_t len = t_rand() % 600;
		uint8_t *d = malloc(len ? len : 1);
		t_fill(d, len);
		/* mostly valid framing, so the parser gets past the checksum */
		if (len >= 24 && i % 4 != 0) {
			memcpy(d, MAGIC_PACK, 8);
			put_u32(d + 8, FORMAT_VERSION);
			put_u32(d + 12, 0);
			if (i % 3 == 0) { /* plausible footer */
				put_u32(d + len - 16, (uint32_t)(t_rand() % 4));
				put_u32(d + len - 12, (uint32_t)(t_rand() % len));
			}
			reseal(d, len);
		}
		pack_blob *b = NULL;
		size_t n = 0;
		int rc = pack_parse(d, len, "garbage", &b, &n);
		/* A plausible footer can, rarely, spell the one valid pack that
		 * needs no blob checksum: the empty pack (count 0, directory
		 * right after the header). Anything else must be refused. */
		if (rc == CAIRN_ECORRUPT) rejected++;
		else if (rc == 0 && n == 0 && get_u32(d + len - 12) == FORMAT_HEADER_LEN) empty++;
		free(b);
		free(d);
	}
	if (empty) printf("garbage: %zu inputs were valid empty packs\n", empty);
	CHECK_EQ(rejected + empty, tries);

	/* a directory entry count so large it would overflow 32 bits */
	uint8_t f[16 + 8 + 8];
	memcpy(f, MAGIC_PACK, 8);
	put_u32(f + 8, FORMAT_VERSION);
	put_u32(f + 12, 0);
	put_u32(f + 16, 0x80000000u);
	put_u32(f + 20, 16);
	reseal(f, sizeof(f));
	CHECK_EQ(parse_copy(f, sizeof(f)), CAIRN_ECORRUPT);
	/* unknown flags */
	put_u32(f + 12, 1);
	put_u32(f + 16, 0);
	reseal(f, sizeof(f));
	CHECK_EQ(parse_copy(f, sizeof(f)), CAIRN_ECORRUPT);
	put_u32(f + 12, 0);
	reseal(f, sizeof(f));
	CHECK_EQ(parse_copy(f, sizeof(f)), 0);
}

/* Blobs reordered in the directory, or a gap between blobs, with valid
 * checksums everywhere: rejected. */
static void test_layout(void)
{
	built bt;
	build(&bt, 3, 3);
	size_t dir = get_u32(bt.file + bt.len - 12);
	uint8_t *d = dup_exact(bt.file, bt.len);
	uint8_t tmp[PACK_DIR_ENTRY_LEN];
	memcpy(tmp, d + dir, PACK_DIR_ENTRY_LEN);
	memcpy(d + dir, d + dir + PACK_DIR_ENTRY_LEN, PACK_DIR_ENTRY_LEN);
	memcpy(d + dir + PACK_DIR_ENTRY_LEN, tmp, PACK_DIR_ENTRY_LEN);
	reseal(d, bt.len);
	CHECK_EQ(parse_copy(d, bt.len), CAIRN_ECORRUPT);
	free(d);

	/* drop the last directory entry: the last blob becomes a gap */
	size_t l2 = bt.len - PACK_DIR_ENTRY_LEN;
	d = malloc(l2);
	memcpy(d, bt.file, dir + 2 * PACK_DIR_ENTRY_LEN);
	put_u32(d + l2 - 16, 2);
	put_u32(d + l2 - 12, (uint32_t)dir);
	reseal(d, l2);
	CHECK_EQ(parse_copy(d, l2), CAIRN_ECORRUPT);
	free(d);

	/* two entries for the same blob (overlap) */
	d = dup_exact(bt.file, bt.len);
	memcpy(d + dir + PACK_DIR_ENTRY_LEN, d + dir, PACK_DIR_ENTRY_LEN);
	reseal(d, bt.len);
	CHECK_EQ(parse_copy(d, bt.len), CAIRN_ECORRUPT);
	free(d);
	built_free(&bt);
}

static void *compress_worker(void *arg)
{
	size_t *fails = arg;
	uint8_t buf[20000];
	for (int r = 0; r < 200; r++) {
		for (size_t i = 0; i < sizeof(buf); i++) buf[i] = (uint8_t)((i * (size_t)(r + 3)) % 251);
		uint8_t comp, *stored;
		size_t slen;
		if (pack_compress(buf, sizeof(buf), 1 + r % 5, &comp, &stored, &slen) != 0 ||
		    comp != COMP_ZSTD) {
			(*fails)++;
			continue;
		}
		oid id;
		hash_sha256(&id, buf, sizeof(buf));
		uint8_t *b = make_blob(&id, BLOB_DATA, comp, sizeof(buf), stored, (uint32_t)slen);
		pack_blob w = {.id = id, .type = BLOB_DATA, .comp = comp, .raw_len = sizeof(buf),
		               .stored_len = (uint32_t)slen};
		uint8_t *out;
		if (pack_blob_open(b, BLOB_OVERHEAD + slen, &w, "thread blob", &out) != 0 ||
		    memcmp(out, buf, sizeof(buf)) != 0)
			(*fails)++;
		else
			free(out);
		free(b);
		free(stored);
	}
	return NULL;
}

static void test_threads(void)
{
	pthread_t th[3];
	size_t fails[3] = {0};
	for (int i = 0; i < 3; i++) CHECK_EQ(pthread_create(&th[i], NULL, compress_worker, &fails[i]), 0);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(fails[i], 0);
	}
}

/* A pack streamed to the store is byte for byte the pack the in-memory
 * writer builds from the same blobs, whatever their sizes against the
 * staging buffer (empty, tiny, just under and over 1 MiB, several MiB);
 * it is invisible until commit, and gone when freed uncommitted. */
static int count_visit(const char *name, void *payload)
{
	(void)name;
	(*(size_t *)payload)++;
	return 0;
}

/* Field by field: the struct has padding bytes that nothing initialises. */
static int blobs_equal(const pack_blob *a, const pack_blob *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&a[i].id, &b[i].id, sizeof(oid)) != 0 || a[i].type != b[i].type ||
		    a[i].comp != b[i].comp || a[i].raw_len != b[i].raw_len ||
		    a[i].stored_len != b[i].stored_len || a[i].offset != b[i].offset)
			return 0;
	return 1;
}

static void test_stream(void)
{
	char dir[] = "/tmp/cairn-test-pack.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	store *st;
	CHECK_EQ(store_create(&st, dir, NULL), 0);
	static const size_t sizes[] = {0, 1, 300, 70000, (1u << 20) - BLOB_OVERHEAD,
	                               (1u << 20) - BLOB_OVERHEAD + 1, (1u << 20) + 5, 3u << 20};
	pack_writer *mem, *str;
	CHECK_EQ(pack_writer_new(&mem), 0);
	CHECK_EQ(pack_writer_new_stream(&str, st, "packs/00/0001"), 0);
	size_t n = 40 + t_rand() % 40;
	for (size_t i = 0; i < n; i++) {
		size_t len = sizes[t_rand() % (sizeof(sizes) / sizeof(sizes[0]))];
		if (t_rand() % 3 == 0) len = t_rand() % 200000;
		uint8_t *p = malloc(len ? len : 1);
		t_fill(p, len);
		oid id;
		hash_sha256(&id, p, len);
		CHECK_EQ(pack_writer_add(mem, &id, BLOB_DATA, COMP_NONE, p, (uint32_t)len, (uint32_t)len), 0);
		CHECK_EQ(pack_writer_add(str, &id, BLOB_DATA, COMP_NONE, p, (uint32_t)len, (uint32_t)len), 0);
		CHECK_EQ(pack_writer_size(mem), pack_writer_size(str));
		free(p);
	}
	size_t visible = 0;
	CHECK_EQ(store_list(st, "packs", count_visit, &visible), 0);
	CHECK_EQ(visible, 0); /* nothing before commit */

	uint8_t *want, *got = NULL, *none;
	size_t want_len, got_len, nb, mb, none_len;
	const pack_blob *bm, *bs;
	uint64_t slen;
	size_t predicted = pack_writer_size(str);
	CHECK_EQ(pack_writer_finish(str, &none, &none_len, NULL, NULL), CAIRN_EIO);
	CHECK_EQ(pack_writer_commit(mem, 0, NULL, NULL, NULL), CAIRN_EIO);
	CHECK_EQ(pack_writer_finish(mem, &want, &want_len, &bm, &mb), 0);
	CHECK_EQ(pack_writer_commit(str, STORE_EXCL, &bs, &nb, &slen), 0);
	CHECK_EQ(slen, want_len);
	CHECK_EQ(predicted, want_len);
	CHECK_EQ(nb, n);
	CHECK_EQ(mb, n);
	CHECK(blobs_equal(bm, bs, n));
	CHECK_EQ(store_get(st, "packs/00/0001", MAX_PACK_LEN, &got, &got_len), 0);
	CHECK_EQ(got_len, want_len);
	CHECK(got && got_len == want_len && memcmp(got, want, want_len) == 0);
	pack_blob *parsed;
	size_t np;
	CHECK_EQ(pack_parse(got, got_len, "streamed pack", &parsed, &np), 0);
	CHECK_EQ(np, n);
	free(parsed);
	free(got);
	free(want);
	pack_writer_free(mem);
	pack_writer_free(str);

	/* the same name again: refused at commit, as store_put would */
	CHECK_EQ(pack_writer_new_stream(&str, st, "packs/00/0001"), 0);
	oid z;
	hash_sha256(&z, "", 0);
	CHECK_EQ(pack_writer_add(str, &z, BLOB_DATA, COMP_NONE, "", 0, 0), 0);
	CHECK_EQ(pack_writer_commit(str, STORE_EXCL, NULL, NULL, NULL), CAIRN_EEXISTS);
	pack_writer_free(str);

	/* freed without a commit: nothing appears, no temporary file stays */
	CHECK_EQ(pack_writer_new_stream(&str, st, "packs/00/0002"), 0);
	uint8_t big[100000];
	t_fill(big, sizeof(big));
	hash_sha256(&z, big, sizeof(big));
	for (int i = 0; i < 30; i++)
		CHECK_EQ(pack_writer_add(str, &z, BLOB_DATA, COMP_NONE, big, sizeof(big), sizeof(big)), 0);
	pack_writer_free(str);
	visible = 0;
	CHECK_EQ(store_list(st, "packs", count_visit, &visible), 0);
	CHECK_EQ(visible, 1);
	visible = 0;
	CHECK_EQ(store_list(st, "tmp", count_visit, &visible), 0);
	CHECK_EQ(visible, 0);
	store_free(st);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
}

/* Chunks that do not compress are stored raw without a full pass; a chunk
 * that compresses a little (here ~12%, random bytes from a 128-letter
 * alphabet) still does, as do small ones and text. */
static void test_incompressible(void)
{
	size_t len = 1u << 20;
	uint8_t *rnd = malloc(len), *some = malloc(len), *text = malloc(len), comp, *stored;
	size_t slen;
	t_fill(rnd, len);
	for (size_t i = 0; i < len; i++) some[i] = (uint8_t)(t_rand() % 128);
	for (size_t i = 0; i < len; i++) text[i] = (uint8_t)("the quick brown fox "[i % 20]);
	CHECK_EQ(pack_compress(rnd, len, 3, &comp, &stored, &slen), 0);
	CHECK(comp == COMP_NONE && stored == NULL && slen == len);
	CHECK_EQ(pack_compress(some, len, 3, &comp, &stored, &slen), 0);
	CHECK(comp == COMP_ZSTD && slen < len);
	free(stored);
	CHECK_EQ(pack_compress(text, len, 3, &comp, &stored, &slen), 0);
	CHECK(comp == COMP_ZSTD && slen < len / 100);
	free(stored);
	/* random samples around a compressible middle: the sampler's choice, raw */
	memcpy(rnd + 4096, text, len - 8192);
	for (size_t i = 0; i < 4; i++) t_fill(rnd + (len - 2048) * i / 3, 2048);
	CHECK_EQ(pack_compress(rnd, len, 3, &comp, &stored, &slen), 0);
	CHECK(comp == COMP_NONE);
	free(rnd);
	free(some);
	free(text);
}

int main(void)
{
	t_seed();
	test_round_trip();
	test_incompressible();
	test_flips();
	test_truncation();
	test_blob_open();
	test_writer_rejects();
	test_garbage();
	test_layout();
	test_threads();
	test_stream();
	return t_done();
}
