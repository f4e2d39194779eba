/* snapshot manifests: round trips, limits, hostile decoder input, fuzz. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cairn.h"
#include "format.h"
#include "hash.h"
#include "snapshot.h"
#include "t.h"

static void reframe(uint8_t *p, size_t len)
{
	if (len >= FORMAT_HEADER_LEN + FORMAT_CHECK_LEN)
		put_u64(p + len - FORMAT_CHECK_LEN, hash_xxh3(p, len - FORMAT_CHECK_LEN));
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* A str written with any length and bytes: len is what the field says,
 * n how many bytes follow. */
static void raw_str(buf *b, uint16_t len, const void *p, size_t n)
{
	buf_u16(b, len);
	buf_put(b, p, n);
}

/* The grammar written out independently, for the golden comparison and
 * for structurally bad manifests with a valid frame. */
typedef struct raw_opts {
	const char *user;      /* written as is (may hold NULs via user_len) */
	size_t user_len;
	uint16_t user_len_field;
	uint32_t nlabels_field;
	size_t nlabels;        /* label pairs actually written: "k0"="v0"... */
	size_t trailing;
	uint32_t header_flags;
	size_t added_len;      /* bytes of added_bytes written (8 = whole), 0x01 each */
} raw_opts;

static uint8_t *raw_manifest(const raw_opts *o, size_t *len)
{
	buf b;
	buf_init(&b);
	buf_put(&b, "CAIRNSNP", 8);
	buf_u32(&b, 1);
	buf_u32(&b, o->header_flags);
	for (int i = 0; i < 64; i++) buf_u8(&b, (uint8_t)i); /* tree, parent */
	buf_u32(&b, 0);                                       /* flags */
	buf_u64(&b, 1700000000000000000ull);                  /* time_ns */
	raw_str(&b, o->user_len_field, o->user, o->user_len);
	raw_str(&b, 4, "name", 4);
	raw_str(&b, 1, "/", 1);
	raw_str(&b, 0, NULL, 0);
	for (int i = 0; i < 11; i++) buf_u64(&b, (uint64_t)i * 1000);
	buf_u32(&b, o->nlabels_field);
	for (size_t i = 0; i < o->nlabels; i++) {
		char k[16], v[16];
		int kl = snprintf(k, sizeof(k), "k%zu", i), vl = snprintf(v, sizeof(v), "v%zu", i);
		raw_str(&b, (uint16_t)kl, k, (size_t)kl);
		raw_str(&b, (uint16_t)vl, v, (size_t)vl);
	}
	for (size_t i = 0; i < o->added_len; i++) buf_u8(&b, 1);
	for (size_t i = 0; i < o->trailing; i++) buf_u8(&b, 0);
	buf_check(&b);
	if (b.oom) abort();
	return buf_take(&b, len);
}

static raw_opts good_opts(void)
{
	raw_opts o = {"alice", 5, 5, 2, 2, 0, 0, 0};
	return o;
}

static int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static int manifest_eq(const snapshot_manifest *a, const snapshot_manifest *b)
{
	if (oid_cmp(&a->tree, &b->tree) || oid_cmp(&a->parent, &b->parent)) return 0;
	if (a->flags != b->flags || a->time_ns != b->time_ns) return 0;
	if (!streq(a->user, b->user) || !streq(a->name, b->name) ||
	    !streq(a->root_path, b->root_path) || !streq(a->hostname, b->hostname))
		return 0;
	if (a->files != b->files || a->dirs != b->dirs || a->symlinks != b->symlinks ||
	    a->specials != b->specials || a->hardlinks != b->hardlinks ||
	    a->sockets_skipped != b->sockets_skipped || a->bytes != b->bytes ||
	    a->new_bytes != b->new_bytes || a->stored_bytes != b->stored_bytes ||
	    a->pause_ms != b->pause_ms || a->duration_ms != b->duration_ms)
		return 0;
	if (a->has_added != b->has_added || a->added_bytes != b->added_bytes) return 0;
	if (a->nlabels != b->nlabels) return 0;
	for (size_t i = 0; i < a->nlabels; i++)
		if (!streq(a->label_keys[i], b->label_keys[i]) ||
		    !streq(a->label_values[i], b->label_values[i]))
			return 0;
	return 1;
}

static void roundtrip(const snapshot_manifest *m)
{
	uint8_t *enc = NULL, *enc2 = NULL;
	size_t len = 0, len2 = 0;
	snapshot_manifest d;
	int rc = snapshot_encode(m, &enc, &len);
	CHECK_EQ(rc, 0);
	if (rc) {
		fprintf(stderr, "  %s\n", cairn_error_last());
		return;
	}
	uint8_t *copy = malloc(len);
	memcpy(copy, enc, len);
	rc = snapshot_decode(&d, copy, len, "snapshot test");
	CHECK_EQ(rc, 0);
	memset(copy, 0xAA, len); /* nothing may borrow the input */
	free(copy);
	if (rc) {
		fprintf(stderr, "  %s\n", cairn_error_last());
		free(enc);
		return;
	}
	CHECK(manifest_eq(m, &d));
	CHECK_EQ(snapshot_encode(&d, &enc2, &len2), 0);
	CHECK(len2 == len && memcmp(enc, enc2, len) == 0);
	snapshot_manifest_free(&d);
	CHECK(d.user == NULL && d.nlabels == 0 && d.label_keys == NULL);
	free(enc);
	free(enc2);
}

static char *keys[] = {"env", "gpu", "empty", "utf8 \xc3\xa9", "\xff\xfe bytes"};
static char *values[] = {"prod", "a100", "", "x=y", "\x01\x02"};

static snapshot_manifest sample(void)
{
	snapshot_manifest m;
	memset(&m, 0, sizeof(m));
	t_fill(m.tree.b, OID_LEN);
	t_fill(m.parent.b, OID_LEN);
	m.time_ns = 1712345678123456789;
	m.user = "alice";
	m.name = "before upgrade";
	m.root_path = "/var/lib/instances/42/rootfs";
	m.hostname = "gpu-node-7";
	m.files = 12345;
	m.dirs = 678;
	m.symlinks = 90;
	m.specials = 3;
	m.hardlinks = 4;
	m.sockets_skipped = 2;
	m.bytes = 5ull << 30;
	m.new_bytes = 1ull << 20;
	m.stored_bytes = 700000;
	m.pause_ms = 120;
	m.duration_ms = UINT64_MAX;
	m.nlabels = 5;
	m.label_keys = keys;
	m.label_values = values;
	return m;
}

static void test_roundtrip(void)
{
	snapshot_manifest m = sample();
	roundtrip(&m);
	/* no parent, no labels, empty strings, negative time, flags kept as given */
	m.nlabels = 0;
	m.label_keys = m.label_values = NULL;
	memset(m.parent.b, 0, OID_LEN);
	m.user = m.name = m.root_path = m.hostname = "";
	m.time_ns = -1;
	m.flags = 0xDEADBEEF;
	roundtrip(&m);
	/* with what the commit added to the user's usage, 0 and large */
	m.has_added = 1;
	roundtrip(&m);
	m.added_bytes = UINT64_MAX - 1;
	roundtrip(&m);
	/* strings at the limit */
	char *big = malloc(MAX_STR_LEN + 1);
	memset(big, 'b', MAX_STR_LEN);
	big[MAX_STR_LEN] = 0;
	m = sample();
	m.root_path = big;
	m.label_values[0] = big;
	roundtrip(&m);
	m.label_values[0] = values[0] = "prod";
	free(big);
	/* NULL strings encode as empty ones */
	m = sample();
	m.hostname = NULL;
	uint8_t *enc;
	size_t len;
	snapshot_manifest d;
	CHECK_EQ(snapshot_encode(&m, &enc, &len), 0);
	CHECK_EQ(snapshot_decode(&d, enc, len, "snapshot null"), 0);
	CHECK(streq(d.hostname, ""));
	snapshot_manifest_free(&d);
	snapshot_manifest_free(NULL);
	free(enc);
}

/* The encoder's bytes equal the independently written grammar. */
static void test_golden(void)
{
	snapshot_manifest m;
	memset(&m, 0, sizeof(m));
	for (int i = 0; i < 32; i++) m.tree.b[i] = (uint8_t)i, m.parent.b[i] = (uint8_t)(32 + i);
	m.time_ns = 1700000000000000000;
	m.user = "alice";
	m.name = "name";
	m.root_path = "/";
	m.hostname = "";
	uint64_t *c[] = {&m.files, &m.dirs, &m.symlinks, &m.specials, &m.hardlinks,
	                 &m.sockets_skipped, &m.bytes, &m.new_bytes, &m.stored_bytes,
	                 &m.pause_ms, &m.duration_ms};
	for (int i = 0; i < 11; i++) *c[i] = (uint64_t)i * 1000;
	char *k[] = {"k0", "k1"}, *v[] = {"v0", "v1"};
	m.nlabels = 2;
	m.label_keys = k;
	m.label_values = v;
	uint8_t *enc, *raw;
	size_t len, rlen;
	raw_opts o = good_opts();
	CHECK_EQ(snapshot_encode(&m, &enc, &len), 0);
	raw = raw_manifest(&o, &rlen);
	CHECK(len == rlen && memcmp(enc, raw, len) == 0);
	/* a few fields by offset */
	CHECK_EQ(get_u32(enc + 80), 0);                    /* flags after tree, parent */
	CHECK(get_u64(enc + 84) == 1700000000000000000ull); /* time_ns */
	CHECK_EQ(get_u16(enc + 92), 5);                    /* user len */
	CHECK(memcmp(enc + 94, "alice", 5) == 0);
	free(enc);
	free(raw);
	m.has_added = 1;
	m.added_bytes = 0x0101010101010101ull;
	o.header_flags = SNAPSHOT_HAS_ADDED;
	o.added_len = 8;
	CHECK_EQ(snapshot_encode(&m, &enc, &len), 0);
	raw = raw_manifest(&o, &rlen);
	CHECK(len == rlen && memcmp(enc, raw, len) == 0);
	CHECK_EQ(get_u32(enc + 12), SNAPSHOT_HAS_ADDED);   /* header flags */
	free(enc);
	free(raw);
}

static void expect_usage(const snapshot_manifest *m, const char *msg)
{
	uint8_t *enc = (uint8_t *)1;
	size_t len = 1;
	int rc = snapshot_encode(m, &enc, &len);
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
	char *big = malloc(MAX_STR_LEN + 2);
	memset(big, 'b', MAX_STR_LEN + 1);
	big[MAX_STR_LEN + 1] = 0;
	snapshot_manifest m = sample();
	m.user = big;
	expect_usage(&m, "user: 4097 bytes");
	m = sample();
	m.hostname = big;
	expect_usage(&m, "hostname");
	m = sample();
	char *ks[5];
	memcpy(ks, keys, sizeof(ks));
	ks[3] = big;
	m.label_keys = ks;
	expect_usage(&m, "label 3 key");
	m = sample();
	m.label_values = NULL;
	expect_usage(&m, "labels missing");
	free(big);
}

static void expect_corrupt(const uint8_t *p, size_t len, const char *msg)
{
	snapshot_manifest m;
	memset(&m, 0x5A, sizeof(m));
	int rc = snapshot_decode(&m, p, len, "snapshot 3fa1");
	CHECK_EQ(rc, CAIRN_ECORRUPT);
	CHECK(m.user == NULL && m.label_keys == NULL && m.nlabels == 0);
	int has = !msg || contains(cairn_error_last(), msg);
	CHECK(has);
	if (!has) {
		fprintf(stderr, "  want \"%s\" in \"%s\"\n", msg, cairn_error_last());
	}
	if (rc == 0) snapshot_manifest_free(&m);
}

static void expect_raw_corrupt(const raw_opts *o, const char *msg)
{
	size_t len;
	uint8_t *p = raw_manifest(o, &len);
	expect_corrupt(p, len, msg);
	free(p);
}

static void test_decode_rejects(void)
{
	snapshot_manifest m = sample();
	uint8_t *enc;
	size_t len;
	CHECK_EQ(snapshot_encode(&m, &enc, &len), 0);
	for (size_t l = 0; l < len; l++) {
		uint8_t *p = malloc(l ? l : 1);
		memcpy(p, enc, l);
		expect_corrupt(p, l, NULL);
		free(p);
	}
	uint8_t *p = malloc(len);
	for (size_t i = 0; i < len; i++) {
		memcpy(p, enc, len);
		p[i] ^= (uint8_t)(1 + t_rand() % 255);
		expect_corrupt(p, len, NULL);
	}
	free(p);
	free(enc);

	/* structure, with a valid frame */
	raw_opts o = good_opts();
	{
		size_t rlen;
		uint8_t *raw = raw_manifest(&o, &rlen);
		snapshot_manifest d;
		CHECK_EQ(snapshot_decode(&d, raw, rlen, "snapshot raw"), 0);
		CHECK(streq(d.user, "alice") && d.nlabels == 2 && streq(d.label_values[1], "v1"));
		CHECK(streq(d.hostname, "") && d.pause_ms == 9000);
		snapshot_manifest_free(&d);
		free(raw);
	}
	o = good_opts();
	o.header_flags = 4;
	expect_raw_corrupt(&o, "snapshot 3fa1: unsupported feature flags 0x4");
	o.header_flags = SNAPSHOT_HAS_ADDED | 4;
	o.added_len = 8;
	expect_raw_corrupt(&o, "snapshot 3fa1: unsupported feature flags 0x5");
	/* added_bytes: after the labels, present exactly when flagged */
	o = good_opts();
	o.header_flags = SNAPSHOT_HAS_ADDED;
	o.added_len = 8;
	{
		size_t rlen;
		uint8_t *raw = raw_manifest(&o, &rlen);
		snapshot_manifest d;
		CHECK_EQ(snapshot_decode(&d, raw, rlen, "snapshot raw"), 0);
		CHECK(d.has_added && d.added_bytes == 0x0101010101010101ull && d.nlabels == 2);
		snapshot_manifest_free(&d);
		free(raw);
	}
	o.added_len = 5;
	expect_raw_corrupt(&o, "added_bytes: truncated");
	o.added_len = 0;
	expect_raw_corrupt(&o, "added_bytes: truncated");
	o.added_len = 9;
	expect_raw_corrupt(&o, "1 trailing bytes");
	o = good_opts();
	o.added_len = 8; /* not flagged */
	expect_raw_corrupt(&o, "8 trailing bytes");
	o = good_opts();
	o.user = "al\0ce";
	expect_raw_corrupt(&o, "user: contains NUL");
	o = good_opts();
	o.user_len_field = 60000; /* more than is there */
	expect_raw_corrupt(&o, "user: truncated");
	char *big = calloc(1, MAX_STR_LEN + 1);
	memset(big, 'u', MAX_STR_LEN + 1);
	o = good_opts();
	o.user = big;
	o.user_len = o.user_len_field = MAX_STR_LEN + 1;
	expect_raw_corrupt(&o, "user: 4097 bytes is longer than 4096");
	o.user_len = o.user_len_field = MAX_STR_LEN; /* the limit itself is fine */
	{
		size_t rlen;
		uint8_t *raw = raw_manifest(&o, &rlen);
		snapshot_manifest d;
		CHECK_EQ(snapshot_decode(&d, raw, rlen, "snapshot raw"), 0);
		CHECK(d.user && strlen(d.user) == MAX_STR_LEN);
		snapshot_manifest_free(&d);
		free(raw);
	}
	free(big);
	o = good_opts();
	o.nlabels_field = UINT32_MAX;
	expect_raw_corrupt(&o, "label count 4294967295 exceeds the data");
	o.nlabels_field = 1000;
	expect_raw_corrupt(&o, "label count 1000 exceeds the data");
	o.nlabels_field = 3; /* one pair short: fails part way, after allocating */
	expect_raw_corrupt(&o, "label 2 key: truncated");
	o.nlabels_field = 1;
	expect_raw_corrupt(&o, "trailing bytes");
	o = good_opts();
	o.trailing = 1;
	expect_raw_corrupt(&o, "1 trailing bytes");
}

static void test_fuzz(void)
{
	snapshot_manifest m = sample();
	uint8_t *seed;
	size_t seed_len;
	CHECK_EQ(snapshot_encode(&m, &seed, &seed_len), 0);
	size_t ok = 0, iters = 30000;
	for (size_t it = 0; it < iters; it++) {
		size_t len = seed_len;
		uint8_t *p = malloc(len + 64);
		memcpy(p, seed, len);
		int muts = 1 + (int)(t_rand() % 4);
		for (int k = 0; k < muts; k++) {
			size_t at = 16 + t_rand() % (len > 24 ? len - 24 : 1);
			switch (t_rand() % 6) {
			case 0: p[at] ^= (uint8_t)(1u << (t_rand() % 8)); break;
			case 1: p[at] = (uint8_t)t_rand(); break;
			case 2: /* an interesting u16 (string lengths) */
				if (at + 2 <= len - 8) {
					const uint16_t v[] = {0, 1, 0xFFFF, 4096, 4097};
					put_u16(p + at, v[t_rand() % 5]);
				}
				break;
			case 3:
				if (len > 30) {
					size_t n = 1 + t_rand() % 8;
					if (at + n > len) n = len - at;
					memmove(p + at, p + at + n, len - at - n);
					len -= n;
				}
				break;
			case 4:
				if (len + 8 <= seed_len + 64) {
					size_t n = 1 + t_rand() % 8;
					memmove(p + at + n, p + at, len - at);
					t_fill(p + at, n);
					len += n;
				}
				break;
			case 5: len = 16 + t_rand() % (len - 16 + 1); break;
			}
		}
		reframe(p, len);
		uint8_t *exact = malloc(len ? len : 1);
		memcpy(exact, p, len);
		free(p);
		snapshot_manifest d;
		int rc = snapshot_decode(&d, exact, len, "fuzz");
		if (rc == 0) {
			uint8_t *re;
			size_t relen;
			ok++;
			CHECK_EQ(snapshot_encode(&d, &re, &relen), 0);
			CHECK(relen == len && memcmp(re, exact, len) == 0);
			free(re);
			snapshot_manifest_free(&d);
		} else {
			CHECK_EQ(rc, CAIRN_ECORRUPT);
			CHECK(d.user == NULL && d.nlabels == 0);
		}
		free(exact);
	}
	printf("snapshot fuzz: %zu of %zu mutants decoded\n", ok, iters);
	free(seed);
}

int main(void)
{
	t_seed();
	test_roundtrip();
	test_golden();
	test_encode_rejects();
	test_decode_rejects();
	test_fuzz();
	return t_done();
}
