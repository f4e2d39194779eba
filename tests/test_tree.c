/* tree objects: round trips, encoder validation, hostile decoder input, fuzz. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "cairn.h"
#include "format.h"
#include "hash.h"
#include "t.h"
#include "tree.h"

/* ---- helpers ------------------------------------------------------------ */

/* Our own ordering, written independently of tree.c. */
static int ref_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	size_t n = al < bl ? al : bl;
	int c = memcmp(a, b, n);
	if (c) return c < 0 ? -1 : 1;
	return al == bl ? 0 : (al < bl ? -1 : 1);
}

static void reframe(uint8_t *p, size_t len)
{
	if (len >= FORMAT_HEADER_LEN + FORMAT_CHECK_LEN)
		put_u64(p + len - FORMAT_CHECK_LEN, hash_xxh3(p, len - FORMAT_CHECK_LEN));
}

/* A count field written as value while the real items are still written:
 * a count that lies about the data behind it. */
enum { OV_NONE, OV_NXATTRS, OV_NEXTENTS, OV_NCHUNKS, OV_TARGET_LEN };
static struct { size_t entry; int field; uint32_t value; } ov;

static uint32_t count_of(size_t i, int field, uint32_t real)
{
	return ov.field == field && ov.entry == i ? ov.value : real;
}

/* The grammar written out without any validation, so tests can build
 * structurally bad trees with a valid frame. count_override < 0: use n. */
static uint8_t *raw_tree(const tree_entry *es, size_t n, long long count_override, size_t *len)
{
	buf b;
	buf_init(&b);
	buf_header(&b, MAGIC_TREE, 0);
	buf_u32(&b, count_override < 0 ? (uint32_t)n : (uint32_t)count_override);
	for (size_t i = 0; i < n; i++) {
		const tree_entry *e = &es[i];
		buf_u16(&b, e->name_len);
		buf_put(&b, e->name, e->name_len);
		buf_u8(&b, e->type);
		buf_u32(&b, e->mode);
		buf_u32(&b, e->uid);
		buf_u32(&b, e->gid);
		buf_u64(&b, (uint64_t)e->mtime_sec);
		buf_u32(&b, e->mtime_nsec);
		buf_u64(&b, (uint64_t)e->ctime_sec);
		buf_u32(&b, e->ctime_nsec);
		buf_u64(&b, e->ino);
		buf_u64(&b, e->size);
		buf_u32(&b, e->rdev_major);
		buf_u32(&b, e->rdev_minor);
		buf_u32(&b, e->hardlink);
		buf_u32(&b, count_of(i, OV_NXATTRS, e->nxattrs));
		for (uint32_t j = 0; j < e->nxattrs; j++) {
			buf_u16(&b, e->xattrs[j].name_len);
			buf_put(&b, e->xattrs[j].name, e->xattrs[j].name_len);
			buf_u32(&b, e->xattrs[j].value_len);
			buf_put(&b, e->xattrs[j].value, e->xattrs[j].value_len);
		}
		/* payload by the type byte; types outside 1..6 get none */
		if (e->type == TREE_REG) {
			buf_u32(&b, count_of(i, OV_NEXTENTS, e->nextents));
			for (uint32_t j = 0; j < e->nextents; j++) {
				buf_u64(&b, e->extents[j].offset);
				buf_u64(&b, e->extents[j].length);
			}
			buf_u32(&b, count_of(i, OV_NCHUNKS, e->nchunks));
			for (uint32_t j = 0; j < e->nchunks; j++) {
				buf_put(&b, e->chunks[j].id.b, OID_LEN);
				buf_u32(&b, e->chunks[j].size);
			}
		} else if (e->type == TREE_DIR) {
			buf_put(&b, e->subtree.b, OID_LEN);
		} else if (e->type == TREE_SYMLINK) {
			buf_u32(&b, count_of(i, OV_TARGET_LEN, e->target_len));
			buf_put(&b, e->target, e->target_len);
		}
	}
	buf_check(&b);
	if (b.oom) abort();
	return buf_take(&b, len);
}

static int entry_eq(const tree_entry *a, const tree_entry *b)
{
	if (ref_cmp(a->name, a->name_len, b->name, b->name_len)) return 0;
	if (a->type != b->type || a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
	    a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec ||
	    a->ctime_sec != b->ctime_sec || a->ctime_nsec != b->ctime_nsec || a->ino != b->ino ||
	    a->size != b->size || a->rdev_major != b->rdev_major || a->rdev_minor != b->rdev_minor ||
	    a->hardlink != b->hardlink || a->nxattrs != b->nxattrs)
		return 0;
	for (uint32_t i = 0; i < a->nxattrs; i++) {
		const tree_xattr *x = &a->xattrs[i], *y = &b->xattrs[i];
		if (x->name_len != y->name_len || memcmp(x->name, y->name, x->name_len)) return 0;
		if (x->value_len != y->value_len) return 0;
		if (x->value_len && memcmp(x->value, y->value, x->value_len)) return 0;
	}
	switch (a->type) {
	case TREE_REG:
		if (a->nextents != b->nextents || a->nchunks != b->nchunks) return 0;
		for (uint32_t i = 0; i < a->nextents; i++)
			if (a->extents[i].offset != b->extents[i].offset ||
			    a->extents[i].length != b->extents[i].length)
				return 0;
		for (uint32_t i = 0; i < a->nchunks; i++)
			if (oid_cmp(&a->chunks[i].id, &b->chunks[i].id) ||
			    a->chunks[i].size != b->chunks[i].size)
				return 0;
		return 1;
	case TREE_DIR: return oid_cmp(&a->subtree, &b->subtree) == 0;
	case TREE_SYMLINK:
		return a->target_len == b->target_len && !memcmp(a->target, b->target, a->target_len);
	default: return 1;
	}
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* Decoded strings are NUL-terminated copies inside the tree's own memory. */
static void check_owned(const tree *t, const uint8_t *in, size_t inlen)
{
	const char *lo = t->mem;
	for (size_t i = 0; i < t->n; i++) {
		const tree_entry *e = &t->entries[i];
		CHECK(e->name >= lo && e->name[e->name_len] == 0);
		CHECK(!((const uint8_t *)e->name >= in && (const uint8_t *)e->name < in + inlen));
		for (uint32_t j = 0; j < e->nxattrs; j++) {
			CHECK((const char *)&e->xattrs[j] >= lo);
			CHECK(e->xattrs[j].name >= lo && e->xattrs[j].name[e->xattrs[j].name_len] == 0);
		}
		if (e->type == TREE_SYMLINK) CHECK(e->target >= lo && e->target[e->target_len] == 0);
		if (e->nextents) CHECK((const char *)e->extents >= lo);
		if (e->nchunks) CHECK((const char *)e->chunks >= lo);
	}
}

/* encode, decode (after freeing the encoding), compare, re-encode */
static void roundtrip(const tree_entry *es, size_t n)
{
	uint8_t *enc = NULL, *enc2 = NULL;
	size_t len = 0, len2 = 0;
	tree t;
	int rc = tree_encode(es, n, &enc, &len);
	CHECK_EQ(rc, 0);
	if (rc) {
		fprintf(stderr, "  %s\n", cairn_error_last());
		return;
	}
	uint8_t *copy = malloc(len);
	memcpy(copy, enc, len);
	rc = tree_decode(&t, copy, len, "tree test");
	CHECK_EQ(rc, 0);
	if (rc) fprintf(stderr, "  %s\n", cairn_error_last());
	check_owned(&t, copy, len);
	memset(copy, 0xAA, len); /* the tree must not borrow the input */
	free(copy);
	CHECK_EQ(t.n, n);
	for (size_t i = 0; i < n && i < t.n; i++) CHECK(entry_eq(&es[i], &t.entries[i]));
	for (size_t i = 0; i < t.n; i++) {
		const tree_entry *f = tree_find(&t, es[i].name, es[i].name_len);
		CHECK(f == &t.entries[i]);
	}
	CHECK_EQ(tree_encode(t.entries, t.n, &enc2, &len2), 0);
	CHECK(len2 == len && memcmp(enc, enc2, len) == 0);
	/* the independent writer agrees with the encoder byte for byte */
	size_t rlen;
	uint8_t *raw = raw_tree(es, n, -1, &rlen);
	CHECK(rlen == len && memcmp(raw, enc, len) == 0);
	free(raw);
	tree_free(&t);
	CHECK(t.entries == NULL && t.mem == NULL && t.n == 0);
	free(enc);
	free(enc2);
}

static oid rand_oid(void)
{
	oid o;
	t_fill(o.b, OID_LEN);
	return o;
}

/* ---- a tree with every kind of entry ------------------------------------ */

static tree_xattr sample_xattrs[3];
static uint8_t xval_bin[300];
static tree_extent sample_extents[3];
static tree_chunk sample_chunks_sparse[3], sample_chunks_dense[2];

static tree_entry mk(const char *name, uint8_t type, uint32_t perm)
{
	static const uint32_t ifmt[] = {0, S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK};
	tree_entry e;
	memset(&e, 0, sizeof(e));
	e.name = name;
	e.name_len = (uint16_t)strlen(name);
	e.type = type;
	e.mode = ifmt[type] | perm;
	e.uid = 1000;
	e.gid = 100;
	e.mtime_sec = 1700000000;
	e.mtime_nsec = 123456789;
	e.ctime_sec = 1700000001;
	e.ctime_nsec = 999999999;
	e.ino = 42;
	return e;
}

/* 9 entries, sorted: every type, xattrs, sparse and dense files */
static size_t sample(tree_entry *es)
{
	size_t n = 0;
	t_fill(xval_bin, sizeof(xval_bin));
	xval_bin[0] = 0; /* binary values may hold NULs */
	xval_bin[7] = 0;
	sample_xattrs[0] = (tree_xattr){"security.capability", 19, xval_bin, 20};
	sample_xattrs[1] = (tree_xattr){"user.bin", 8, xval_bin, sizeof(xval_bin)};
	sample_xattrs[2] = (tree_xattr){"user.empty", 10, NULL, 0};

	es[n] = mk("blk", TREE_BLK, 0660);
	es[n].rdev_major = 8;
	es[n].rdev_minor = 1;
	n++;
	es[n] = mk("chr", TREE_CHR, 0666);
	es[n].rdev_major = 1;
	es[n].rdev_minor = 3;
	n++;
	es[n] = mk("dir", TREE_DIR, 0755 | S_ISVTX);
	es[n].subtree = rand_oid();
	es[n].nxattrs = 1;
	es[n].xattrs = &sample_xattrs[1];
	n++;
	es[n] = mk("empty", TREE_REG, 0600);
	es[n].hardlink = 7;
	es[n].mtime_sec = -5; /* before the epoch */
	n++;
	es[n] = mk("fifo", TREE_FIFO, 0644);
	n++;
	es[n] = mk("file", TREE_REG, 04755);
	es[n].size = 100000;
	es[n].nxattrs = 3;
	es[n].xattrs = sample_xattrs;
	sample_chunks_dense[0] = (tree_chunk){rand_oid(), 65536};
	sample_chunks_dense[1] = (tree_chunk){rand_oid(), 100000 - 65536};
	es[n].nchunks = 2;
	es[n].chunks = sample_chunks_dense;
	n++;
	es[n] = mk("file.hard", TREE_REG, 0644);
	es[n].hardlink = 7;
	n++;
	es[n] = mk("link", TREE_SYMLINK, 0777);
	es[n].target = "../some/where/\xff\xfe";
	es[n].target_len = (uint32_t)strlen(es[n].target);
	es[n].size = es[n].target_len;
	n++;
	/* 1 GiB sparse file: three data extents, the last touching the end */
	es[n] = mk("sparse", TREE_REG, 0644);
	es[n].size = 1ull << 30;
	sample_extents[0] = (tree_extent){0, 4096};
	sample_extents[1] = (tree_extent){1 << 20, 8192};
	sample_extents[2] = (tree_extent){(1ull << 30) - 4096, 4096};
	es[n].nextents = 3;
	es[n].extents = sample_extents;
	sample_chunks_sparse[0] = (tree_chunk){rand_oid(), 4096};
	sample_chunks_sparse[1] = (tree_chunk){rand_oid(), 8192};
	sample_chunks_sparse[2] = (tree_chunk){rand_oid(), 4096};
	es[n].nchunks = 3;
	es[n].chunks = sample_chunks_sparse;
	n++;
	return n;
}

/* ---- tests -------------------------------------------------------------- */

static void test_name_ok(void)
{
	char big[300];
	memset(big, 'x', sizeof(big));
	CHECK(tree_name_ok("a", 1));
	CHECK(tree_name_ok("...", 3));
	CHECK(tree_name_ok(".a", 2));
	CHECK(tree_name_ok("\xff\x80", 2));
	CHECK(tree_name_ok(big, 255));
	CHECK(!tree_name_ok(big, 256));
	CHECK(!tree_name_ok("", 0));
	CHECK(!tree_name_ok(".", 1));
	CHECK(!tree_name_ok("..", 2));
	CHECK(!tree_name_ok("a/b", 3));
	CHECK(!tree_name_ok("/", 1));
	CHECK(!tree_name_ok("a\0b", 3));
	CHECK(!tree_name_ok(NULL, 1));
}

/* The format pinned by hand: one FIFO entry, every field at its offset. */
static void test_golden(void)
{
	tree_entry e = mk("p", TREE_FIFO, 0600);
	e.uid = 0x01020304;
	e.mtime_sec = -1;
	uint8_t *enc;
	size_t len;
	CHECK_EQ(tree_encode(&e, 1, &enc, &len), 0);
	/* header 16, count 4, entry 72 (71 fixed + 1 name byte), check 8 */
	CHECK_EQ(len, 100);
	if (len != 100) return;
	CHECK(memcmp(enc, "CAIRNTRE", 8) == 0);
	CHECK_EQ(get_u32(enc + 8), 1);   /* version */
	CHECK_EQ(get_u32(enc + 12), 0);  /* flags */
	CHECK_EQ(get_u32(enc + 16), 1);  /* count */
	CHECK_EQ(get_u16(enc + 20), 1);  /* name_len */
	CHECK_EQ(enc[22], 'p');
	CHECK_EQ(enc[23], TREE_FIFO);
	CHECK_EQ(get_u32(enc + 24), S_IFIFO | 0600);
	CHECK_EQ(enc[28], 4); /* uid, little-endian */
	CHECK_EQ(enc[31], 1);
	CHECK_EQ(get_u32(enc + 32), 100);          /* gid */
	CHECK(get_u64(enc + 36) == UINT64_MAX);    /* mtime_sec -1 */
	CHECK_EQ(get_u32(enc + 44), 123456789);    /* mtime_nsec */
	CHECK_EQ(get_u64(enc + 48), 1700000001);   /* ctime_sec */
	CHECK_EQ(get_u32(enc + 56), 999999999);    /* ctime_nsec */
	CHECK_EQ(get_u64(enc + 60), 42);           /* ino */
	CHECK_EQ(get_u64(enc + 68), 0);            /* size */
	CHECK_EQ(get_u32(enc + 88), 0);            /* nxattrs, after rdev and hardlink */
	CHECK(get_u64(enc + 92) == hash_xxh3(enc, 92));
	free(enc);
}

static void test_roundtrip_sample(void)
{
	tree_entry es[16];
	size_t n = sample(es);
	roundtrip(es, n);
	roundtrip(es, 0); /* an empty directory */
	for (size_t i = 0; i < n; i++) roundtrip(&es[i], 1);

	/* lookups that must miss: prefixes, extensions, neighbours */
	uint8_t *enc;
	size_t len;
	tree t;
	CHECK_EQ(tree_encode(es, n, &enc, &len), 0);
	CHECK_EQ(tree_decode(&t, enc, len, "tree sample"), 0);
	CHECK(tree_find(&t, "fil", 3) == NULL);
	CHECK(tree_find(&t, "file.", 5) == NULL);
	CHECK(tree_find(&t, "a", 1) == NULL);
	CHECK(tree_find(&t, "zzz", 3) == NULL);
	CHECK(tree_find(&t, "", 0) == NULL);
	CHECK(tree_find(&t, "file", 4) != NULL && tree_find(&t, "file", 4)->size == 100000);
	/* the finder does not read past name_len */
	CHECK(tree_find(&t, "file.hardXYZ", 9) == &t.entries[6]);
	tree_free(&t);
	tree empty = {0};
	CHECK(tree_find(&empty, "a", 1) == NULL);
	tree_free(&empty);
	tree_free(NULL);
	free(enc);
}

typedef struct rname {
	char b[256];
	size_t len;
} rname;

static int rname_cmp(const void *a, const void *b)
{
	const rname *x = a, *y = b;
	return ref_cmp(x->b, x->len, y->b, y->len);
}

/* Names of arbitrary bytes (non-UTF-8, no '/' or NUL), many 255 bytes long,
 * some prefixes of others so shorter-first ordering is exercised. */
static void test_binary_names(void)
{
	enum { N = 400 };
	rname *names = calloc(N, sizeof(*names));
	tree_entry *es = calloc(N, sizeof(*es));
	for (size_t i = 0; i < N; i++) {
		if (i % 4 == 3) { /* a prefix of the one before */
			names[i] = names[i - 1];
			names[i].len = 1 + t_rand() % (names[i - 1].len);
			if (names[i].len == names[i - 1].len) names[i].len--;
			if (names[i].len == 0) names[i].len = 1;
		} else {
			names[i].len = i % 2 ? 255 : 1 + t_rand() % 255;
			for (size_t j = 0; j < names[i].len; j++) {
				uint8_t c;
				do c = (uint8_t)t_rand(); while (c == 0 || c == '/');
				names[i].b[j] = (char)c;
			}
		}
		/* the rare "." or ".." from the generator is not wanted here */
		if (!tree_name_ok(names[i].b, names[i].len)) names[i].b[0] = '\xff';
	}
	qsort(names, N, sizeof(*names), rname_cmp);
	size_t n = 0;
	for (size_t i = 0; i < N; i++) {
		if (n && rname_cmp(&names[i], &names[n - 1]) == 0) continue;
		names[n++] = names[i];
	}
	CHECK(n > N / 2);
	for (size_t i = 0; i < n; i++) {
		es[i] = mk("x", (uint8_t)(1 + i % 6), 0644);
		es[i].name = names[i].b;
		es[i].name_len = (uint16_t)names[i].len;
		if (es[i].type == TREE_SYMLINK) {
			es[i].target = names[i].b; /* any bytes but NUL */
			es[i].target_len = (uint32_t)names[i].len;
			es[i].size = names[i].len;
		}
	}
	roundtrip(es, n);
	free(names);
	free(es);
}

static void test_big_dir(void)
{
	enum { N = 10000 };
	rname *names = calloc(N, sizeof(*names));
	tree_entry *es = calloc(N, sizeof(*es));
	tree_chunk *chunks = calloc(N, sizeof(*chunks));
	for (size_t i = 0; i < N; i++)
		names[i].len = (size_t)snprintf(names[i].b, sizeof(names[i].b), "f%zu.%llx", i,
		                                (unsigned long long)(t_rand() % 1000));
	qsort(names, N, sizeof(*names), rname_cmp);
	for (size_t i = 0; i < N; i++) {
		uint8_t type = (uint8_t)(i % 3 == 0 ? TREE_DIR : TREE_REG);
		es[i] = mk("x", type, 0644);
		es[i].name = names[i].b;
		es[i].name_len = (uint16_t)names[i].len;
		es[i].ino = i;
		if (type == TREE_DIR) {
			es[i].subtree = rand_oid();
		} else {
			es[i].size = 1 + t_rand() % MAX_CHUNK_LEN;
			chunks[i] = (tree_chunk){rand_oid(), (uint32_t)es[i].size};
			es[i].nchunks = 1;
			es[i].chunks = &chunks[i];
		}
	}
	roundtrip(es, N);
	free(names);
	free(es);
	free(chunks);
}

static void expect_usage(const tree_entry *es, size_t n, const char *msg)
{
	uint8_t *enc = (uint8_t *)1;
	size_t len = 1;
	int rc = tree_encode(es, n, &enc, &len);
	CHECK_EQ(rc, CAIRN_EUSAGE);
	CHECK(enc == NULL && len == 0);
	int has = contains(cairn_error_last(), msg);
	CHECK(has);
	if (!has) {
		fprintf(stderr, "  want \"%s\" in \"%s\"\n", msg, cairn_error_last());
	}
	if (rc == 0) free(enc);
}

static void test_encode_rejects(void)
{
	tree_entry base[16], es[16];
	size_t n = sample(base);
	char longname[300];
	memset(longname, 'n', sizeof(longname));
	static uint8_t bigval[MAX_XATTR_VALUE_LEN + 1];
	char longtarget[MAX_SYMLINK_LEN + 2];
	memset(longtarget, 't', sizeof(longtarget));

#define RESET() memcpy(es, base, sizeof(es))
	const struct { const char *name; size_t len; const char *msg; } bad_names[] = {
		{"", 0, "empty"}, {".", 1, "\".\""}, {"..", 2, "\"..\""}, {"a/b", 3, "'/'"},
		{"a\0b", 3, "NUL"}, {longname, 256, "longer"},
	};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		RESET();
		es[0].name = bad_names[i].name;
		es[0].name_len = (uint16_t)bad_names[i].len;
		expect_usage(es, 1, bad_names[i].msg);
	}
	RESET(); /* unsorted */
	es[0] = base[1];
	es[1] = base[0];
	expect_usage(es, n, "entry 1: names not in ascending order");
	RESET(); /* shorter first on a common prefix: "file.hard" before "file" */
	es[5] = base[6];
	es[6] = base[5];
	expect_usage(es, n, "entry 6: names not in ascending order");
	RESET();
	es[1] = base[0];
	expect_usage(es, n, "entry 1: duplicate name");
	RESET();
	es[4].type = 0;
	expect_usage(es, n, "entry 4: bad type 0");
	RESET();
	es[4].type = 7;
	expect_usage(es, n, "bad type 7");
	RESET();
	es[4].mode = S_IFREG | 0644; /* a FIFO with a file's mode */
	expect_usage(es, n, "does not match type");
	RESET();
	es[4].mode |= 0200000;
	expect_usage(es, n, "unknown bits");
	RESET();
	es[4].mtime_nsec = 1000000000;
	expect_usage(es, n, "nanoseconds");
	RESET();
	es[4].size = 1;
	expect_usage(es, n, "must be 0");

	/* xattrs */
	tree_xattr xs[2];
	RESET();
	xs[0] = sample_xattrs[1];
	xs[1] = sample_xattrs[0];
	es[4].nxattrs = 2;
	es[4].xattrs = xs;
	expect_usage(es, n, "entry 4: xattr 1: names not in ascending order");
	xs[1] = xs[0];
	expect_usage(es, n, "xattr 1: duplicate");
	xs[0] = (tree_xattr){"", 0, NULL, 0};
	expect_usage(es, n, "xattr 0: name length 0");
	xs[0] = (tree_xattr){longname, 256, NULL, 0};
	expect_usage(es, n, "xattr 0: name length 256");
	xs[0] = (tree_xattr){"user.a\0b", 8, NULL, 0};
	expect_usage(es, n, "xattr 0: name contains NUL");
	xs[0] = (tree_xattr){"user.big", 8, bigval, MAX_XATTR_VALUE_LEN + 1};
	expect_usage(es, n, "value length");
	xs[0] = (tree_xattr){"user.big", 8, bigval, MAX_XATTR_VALUE_LEN}; /* the limit is fine */
	es[4].nxattrs = 1;
	roundtrip(es, n);

	/* symlinks: entry 7 */
	RESET();
	es[7].target_len = 0;
	es[7].size = 0;
	expect_usage(es, n, "target length 0");
	es[7].target = longtarget;
	es[7].target_len = es[7].size = MAX_SYMLINK_LEN + 1;
	expect_usage(es, n, "target length 4096");
	es[7].target_len = es[7].size = MAX_SYMLINK_LEN;
	roundtrip(es, n);
	es[7].target = "a\0b";
	es[7].target_len = es[7].size = 3;
	expect_usage(es, n, "target contains NUL");
	RESET();
	es[7].size = 1;
	expect_usage(es, n, "not the target length");
	RESET();
	es[4].target = "x";
	es[4].target_len = 1;
	expect_usage(es, n, "payload fields");

	/* regular files: 5 dense, 8 sparse */
	tree_extent xt[3];
	tree_chunk ch[3];
	RESET();
	es[5].size = 99999;
	expect_usage(es, n, "entry 5: chunk sizes sum to 100000, data is 99999 bytes");
	RESET();
	memcpy(ch, sample_chunks_dense, sizeof(sample_chunks_dense));
	ch[0].size = 0;
	es[5].chunks = ch;
	expect_usage(es, n, "chunk 0: size 0");
	ch[0].size = MAX_CHUNK_LEN + 1;
	expect_usage(es, n, "out of range");
	RESET();
	memcpy(xt, sample_extents, sizeof(xt));
	es[8].extents = xt;
	xt[1].offset = 100; /* overlaps [0, 4096) */
	expect_usage(es, n, "entry 8: extent 1: overlaps");
	memcpy(xt, sample_extents, sizeof(xt));
	xt[0] = sample_extents[1];
	xt[1] = sample_extents[0];
	expect_usage(es, n, "extent 1: overlaps or out of order");
	memcpy(xt, sample_extents, sizeof(xt));
	xt[2].offset += 1; /* one byte past size */
	expect_usage(es, n, "extent 2: beyond size");
	memcpy(xt, sample_extents, sizeof(xt));
	xt[2].offset = UINT64_MAX - 100; /* offset + length wraps */
	xt[2].length = 4096;
	expect_usage(es, n, "extent 2: beyond size");
	memcpy(xt, sample_extents, sizeof(xt));
	xt[1].length = 0;
	expect_usage(es, n, "extent 1: empty");
	memcpy(xt, sample_extents, sizeof(xt));
	xt[1].length = 8191;
	expect_usage(es, n, "chunk sizes sum to 16384, data is 16383");
	memcpy(xt, sample_extents, sizeof(xt));
	xt[1].offset = 4096; /* adjacent extents are fine */
	roundtrip(es, n);
	/* a file that is all hole: the one empty extent [size, 0) */
	RESET();
	tree_extent hole = {1ull << 30, 0};
	es[8].nextents = 1;
	es[8].extents = &hole;
	es[8].nchunks = 0;
	roundtrip(es, n);
	es[8].nchunks = 1;
	expect_usage(es, n, "entry 8: chunk sizes sum to 4096, data is 0 bytes");
	es[8].nchunks = 0;
	hole.offset = 0; /* empty, but not at the end */
	expect_usage(es, n, "entry 8: extent 0: empty");
	hole.offset = (1ull << 30) + 1;
	expect_usage(es, n, "entry 8: extent 0: empty");
	memcpy(xt, sample_extents, sizeof(xt));
	xt[2] = (tree_extent){1ull << 30, 0}; /* [size, 0) is only allowed alone */
	es[8].extents = xt;
	es[8].nextents = 3;
	es[8].chunks = sample_chunks_sparse;
	es[8].nchunks = 2;
	expect_usage(es, n, "entry 8: extent 2: empty");
	RESET();
	es[3].nextents = 1; /* an empty file may say so either way */
	hole.offset = 0;
	es[3].extents = &hole;
	roundtrip(es, n);
	RESET();
	es[2].nchunks = 1; /* a directory with chunks */
	es[2].chunks = sample_chunks_dense;
	expect_usage(es, n, "entry 2: payload fields");
	RESET();
	es[0].name = NULL;
	expect_usage(es, n, "entry 0: name missing");
	RESET();
	es[5].chunks = NULL;
	expect_usage(es, n, "chunks missing");
	expect_usage(NULL, 3, "entries missing");
#undef RESET
}

static void expect_corrupt(const uint8_t *p, size_t len, const char *msg)
{
	tree t;
	memset(&t, 0x5A, sizeof(t));
	int rc = tree_decode(&t, p, len, "tree 3fa1");
	CHECK_EQ(rc, CAIRN_ECORRUPT);
	CHECK(t.n == 0 && t.entries == NULL && t.mem == NULL);
	int has = !msg || contains(cairn_error_last(), msg);
	CHECK(has);
	if (!has) {
		fprintf(stderr, "  want \"%s\" in \"%s\"\n", msg, cairn_error_last());
	}
	if (rc == 0) tree_free(&t);
}

/* Build raw (unvalidated) bytes for es and expect the decoder to refuse them. */
static void expect_raw_corrupt(const tree_entry *es, size_t n, long long count, const char *msg)
{
	size_t len;
	uint8_t *p = raw_tree(es, n, count, &len);
	expect_corrupt(p, len, msg);
	free(p);
}

static void test_decode_frame(void)
{
	tree_entry es[16];
	size_t n = sample(es);
	uint8_t *enc;
	size_t len;
	CHECK_EQ(tree_encode(es, n, &enc, &len), 0);
	for (size_t l = 0; l < len; l++) {
		uint8_t *p = malloc(l ? l : 1); /* exact size, so ASan sees any over-read */
		memcpy(p, enc, l);
		expect_corrupt(p, l, NULL);
		free(p);
	}
	uint8_t *p = malloc(len);
	for (size_t i = 0; i < len; i++) {
		memcpy(p, enc, len);
		p[i] ^= (uint8_t)(1 + t_rand() % 255);
		expect_corrupt(p, len, NULL);
		memcpy(p, enc, len);
		p[i] ^= 0x01;
		expect_corrupt(p, len, NULL);
	}
	/* with a valid check: header fields */
	memcpy(p, enc, len);
	p[0] = 'X';
	reframe(p, len);
	expect_corrupt(p, len, "bad magic");
	memcpy(p, enc, len);
	put_u32(p + 8, 2);
	reframe(p, len);
	expect_corrupt(p, len, "version");
	memcpy(p, enc, len);
	put_u32(p + 12, 1);
	reframe(p, len);
	expect_corrupt(p, len, "tree 3fa1: unsupported feature flags 0x1");
	free(p);
	/* trailing bytes inside the frame */
	p = malloc(len + 3);
	memcpy(p, enc, len - 8);
	memset(p + len - 8, 0, 3);
	reframe(p, len + 3);
	expect_corrupt(p, len + 3, "3 trailing bytes");
	free(p);
	free(enc);
}

static void test_decode_structure(void)
{
	tree_entry base[16], es[16];
	size_t n = sample(base);
#define RESET() memcpy(es, base, sizeof(es))
	/* sanity: the raw writer's output of the untouched sample decodes */
	RESET();
	{
		size_t len;
		uint8_t *p = raw_tree(es, n, -1, &len);
		tree t;
		CHECK_EQ(tree_decode(&t, p, len, "tree ok"), 0);
		tree_free(&t);
		free(p);
	}

	const struct { const char *name; size_t len; const char *msg; } bad_names[] = {
		{"", 0, "entry 0: empty name"}, {".", 1, "entry 0: name is \".\""},
		{"..", 2, "entry 0: name is \".\" or \"..\""}, {"a/b", 3, "entry 0: name contains '/'"},
		{"a\0b", 3, "entry 0: name contains NUL"},
	};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		RESET();
		es[0].name = bad_names[i].name;
		es[0].name_len = (uint16_t)bad_names[i].len;
		expect_raw_corrupt(es, n, -1, bad_names[i].msg);
	}
	char longname[300];
	memset(longname, 'n', sizeof(longname));
	RESET();
	es[0].name = longname;
	es[0].name_len = 256;
	expect_raw_corrupt(es, n, -1, "entry 0: name longer");
	RESET();
	es[3] = base[4];
	es[4] = base[3];
	expect_raw_corrupt(es, n, -1, "tree 3fa1: entry 4: names not in ascending order");
	RESET();
	es[5] = base[6];
	es[6] = base[5];
	expect_raw_corrupt(es, n, -1, "entry 6: names not in ascending order");
	RESET();
	es[n - 1] = base[n - 2];
	expect_raw_corrupt(es, n, -1, "duplicate name");

	/* counts larger than the data */
	RESET();
	expect_raw_corrupt(es, n, (long long)n + 1, "entry 9: truncated");
	expect_raw_corrupt(es, n, 100000, "entry count 100000 exceeds the data");
	expect_raw_corrupt(es, n, UINT32_MAX, "exceeds the data");
	expect_raw_corrupt(es, n, (long long)n - 1, "trailing bytes");
	expect_raw_corrupt(es, n, 0, "trailing bytes");
	/* a count that lies, followed by the real items */
	RESET();
	ov.entry = 4, ov.field = OV_NXATTRS, ov.value = 1000000; /* a FIFO without xattrs */
	expect_raw_corrupt(es, n, -1, "entry 4: xattr count 1000000 exceeds the data");
	ov.value = UINT32_MAX;
	expect_raw_corrupt(es, n, -1, "exceeds the data");
	ov.value = 1;
	expect_raw_corrupt(es, n, -1, "entry 4: ");
	ov.entry = 8, ov.field = OV_NEXTENTS, ov.value = UINT32_MAX;
	expect_raw_corrupt(es, 9, -1, "entry 8: extent count");
	ov.value = 4;
	expect_raw_corrupt(es, 9, -1, "entry 8: ");
	ov.field = OV_NCHUNKS, ov.value = 1u << 30;
	expect_raw_corrupt(es, 9, -1, "entry 8: chunk count");
	ov.value = 4; /* one more than present: short by a chunk */
	expect_raw_corrupt(es, 9, -1, "entry 8: ");
	ov.value = 2; /* one fewer: the rest is trailing garbage or a sum mismatch */
	expect_raw_corrupt(es, 9, -1, NULL);
	ov.entry = 7, ov.field = OV_TARGET_LEN, ov.value = 0xFFFFFFF0u;
	expect_raw_corrupt(es, n, -1, "entry 7: truncated");
	ov.field = OV_NONE;

	/* bad types: the payload can't be parsed, so stop at once */
	const uint8_t bad_types[] = {0, 7, 8, 255};
	for (size_t i = 0; i < sizeof(bad_types); i++) {
		RESET();
		es[4].type = bad_types[i];
		expect_raw_corrupt(es, n, -1, "entry 4: bad type");
	}
	RESET();
	es[4].mode = S_IFDIR | 0755;
	expect_raw_corrupt(es, n, -1, "entry 4: mode 040755 does not match type 4");
	RESET();
	es[2].type = TREE_FIFO; /* a DIR's payload read as a FIFO: mode mismatch */
	expect_raw_corrupt(es, n, -1, NULL);

	/* REG consistency */
	RESET();
	es[5].size = 100001;
	expect_raw_corrupt(es, n, -1, "entry 5: chunk sizes sum to 100000, data is 100001");
	tree_chunk ch[3];
	memcpy(ch, sample_chunks_sparse, sizeof(ch));
	RESET();
	es[8].chunks = ch;
	ch[2].size = 4095;
	expect_raw_corrupt(es, n, -1, "entry 8: chunk sizes sum");
	ch[2].size = 0;
	expect_raw_corrupt(es, n, -1, "chunk 2: size 0");
	tree_extent xt[3];
	memcpy(xt, sample_extents, sizeof(xt));
	RESET();
	es[8].extents = xt;
	xt[2].offset = 2048;
	expect_raw_corrupt(es, n, -1, "entry 8: extent 2: overlaps");
	memcpy(xt, sample_extents, sizeof(xt));
	xt[2].offset = UINT64_MAX;
	expect_raw_corrupt(es, n, -1, "extent 2: beyond size");
	xt[0] = (tree_extent){0, 0};
	es[8].nextents = 1;
	es[8].nchunks = 0;
	expect_raw_corrupt(es, n, -1, "entry 8: extent 0: empty");
	xt[0] = (tree_extent){1ull << 30, 0};
	es[8].nchunks = 1;
	expect_raw_corrupt(es, n, -1, "entry 8: chunk sizes sum to 4096, data is 0 bytes");

	/* xattrs */
	tree_xattr xs[2] = {sample_xattrs[1], sample_xattrs[0]};
	RESET();
	es[4].nxattrs = 2;
	es[4].xattrs = xs;
	expect_raw_corrupt(es, n, -1, "entry 4: xattr 1: names not in ascending order");
	xs[1] = xs[0];
	expect_raw_corrupt(es, n, -1, "xattr 1: duplicate");
	xs[0] = (tree_xattr){"", 0, NULL, 0};
	expect_raw_corrupt(es, n, -1, "xattr 0: name length 0");
	xs[0] = (tree_xattr){"a\0", 2, NULL, 0};
	expect_raw_corrupt(es, n, -1, "xattr 0: name contains NUL");
	static uint8_t bigval[MAX_XATTR_VALUE_LEN + 1];
	xs[0] = (tree_xattr){"user.a", 6, bigval, sizeof(bigval)};
	es[4].nxattrs = 1;
	expect_raw_corrupt(es, n, -1, "value length 65537");

	/* symlinks */
	RESET();
	es[7].target = "a\0b";
	es[7].target_len = es[7].size = 3;
	expect_raw_corrupt(es, n, -1, "entry 7: symlink target contains NUL");
	es[7].target_len = es[7].size = 0;
	expect_raw_corrupt(es, n, -1, "entry 7: symlink target length 0");
	RESET();
	es[7].size = 5;
	expect_raw_corrupt(es, n, -1, "entry 7: size 5 is not the target length");
	RESET();
	es[0].size = 4096;
	expect_raw_corrupt(es, n, -1, "entry 0: size 4096 on type 6");
	RESET();
	es[0].ctime_nsec = UINT32_MAX;
	expect_raw_corrupt(es, n, -1, "entry 0: nanoseconds");
#undef RESET
}

/* Mutate valid encodings, fix the checksum, decode: never crash; on success
 * re-encoding must give the same bytes. */
static void test_fuzz(void)
{
	tree_entry es[16];
	size_t n = sample(es);
	uint8_t *seeds[3];
	size_t seed_len[3];
	CHECK_EQ(tree_encode(es, n, &seeds[0], &seed_len[0]), 0);
	CHECK_EQ(tree_encode(&es[5], 4, &seeds[1], &seed_len[1]), 0);
	CHECK_EQ(tree_encode(&es[7], 2, &seeds[2], &seed_len[2]), 0);
	size_t ok = 0, iters = 30000;
	for (size_t it = 0; it < iters; it++) {
		size_t s = t_rand() % 3;
		size_t len = seed_len[s];
		uint8_t *p = malloc(len + 64);
		memcpy(p, seeds[s], len);
		int muts = 1 + (int)(t_rand() % 4);
		for (int m = 0; m < muts; m++) {
			/* keep the header so the structure, not the frame, gets the work */
			size_t body = len > 24 ? len - 24 : 1;
			size_t at = 16 + t_rand() % body;
			switch (t_rand() % 7) {
			case 0: p[at] ^= (uint8_t)(1u << (t_rand() % 8)); break;
			case 1: p[at] = (uint8_t)t_rand(); break;
			case 2: /* an interesting u32 */
				if (at + 4 <= len - 8) {
					const uint32_t v[] = {0, 1, 2, 0x7FFFFFFF, 0xFFFFFFFF, 0x10000, (uint32_t)len};
					put_u32(p + at, v[t_rand() % 7]);
				}
				break;
			case 3: p[at] = "./\0\x01\xff"[t_rand() % 5]; break;
			case 4: /* delete bytes */
				if (len > 30) {
					size_t k = 1 + t_rand() % 8;
					if (at + k > len) k = len - at;
					memmove(p + at, p + at + k, len - at - k);
					len -= k;
				}
				break;
			case 5: /* insert bytes */
				if (len + 8 <= seed_len[s] + 64) {
					size_t k = 1 + t_rand() % 8;
					memmove(p + at + k, p + at, len - at);
					t_fill(p + at, k);
					len += k;
				}
				break;
			case 6: len = 16 + t_rand() % (len - 16 + 1); break;
			}
		}
		reframe(p, len);
		uint8_t *exact = malloc(len ? len : 1);
		memcpy(exact, p, len);
		free(p);
		tree t;
		int rc = tree_decode(&t, exact, len, "fuzz");
		if (rc == 0) {
			uint8_t *re;
			size_t relen;
			ok++;
			int rc2 = tree_encode(t.entries, t.n, &re, &relen);
			CHECK_EQ(rc2, 0);
			if (rc2 == 0) {
				CHECK(relen == len && memcmp(re, exact, len) == 0);
				free(re);
			}
			tree_free(&t);
		} else {
			CHECK_EQ(rc, CAIRN_ECORRUPT);
			CHECK(t.n == 0 && t.mem == NULL);
		}
		free(exact);
	}
	printf("tree fuzz: %zu of %zu mutants decoded\n", ok, iters);
	for (int i = 0; i < 3; i++) free(seeds[i]);
}

int main(void)
{
	t_seed();
	test_name_ok();
	test_golden();
	test_roundtrip_sample();
	test_binary_names();
	test_big_dir();
	test_encode_rejects();
	test_decode_frame();
	test_decode_structure();
	test_fuzz();
	return t_done();
}
