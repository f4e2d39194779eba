/* Per-user accounting: usage independent of who stored first, exact quota
 * edges, forget, crash states settled by the next operation, compaction,
 * quota_verify finding tampered records, hostile records never crashing,
 * refs records written as deltas on the parent's, the parent's refs held
 * as bits over the user's blobs. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <malloc.h>

#include "cairn.h"
#include "format.h"
#include "hash.h"
#include "quota.h"
#include "quota/internal.h"
#include "repo.h"
#include "t.h"

static char base[256];

static void write_file(const char *path, size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len ? len : 1);
	uint64_t s = t_rng_state;
	t_rng_state = seed | 1;
	t_fill(b, len);
	t_rng_state = s;
	FILE *f = fopen(path, "wb");
	fwrite(b, 1, len, f);
	fclose(f);
	free(b);
}

/* dir with a shared file (seed 1) and a file of its own (seed own). */
static void make_tree(const char *dir, uint64_t own, size_t own_len)
{
	char p[512];
	mkdir(dir, 0755);
	snprintf(p, sizeof(p), "%s/shared", dir);
	write_file(p, 300000, 1);
	snprintf(p, sizeof(p), "%s/own", dir);
	write_file(p, own_len, own);
}

static int take(cairn_repo *r, const char *root, const char *user, const char *name, char id[65])
{
	cairn_take_options o = CAIRN_TAKE_OPTIONS_INIT;
	cairn_take_result res = CAIRN_TAKE_RESULT_INIT;
	o.root = root;
	o.user = user;
	o.name = name;
	o.no_parent = 1;
	o.threads = 2;
	int rc = cairn_take(&res, r, &o);
	if (rc == 0 && id) memcpy(id, res.snapshot, 65);
	return rc;
}

static uint64_t used(cairn_repo *r, const char *user)
{
	quota_usage u;
	CHECK_EQ(quota_usage_get(r, user, &u), 0);
	return u.used;
}

static int nproblems;
static void report(const char *user, const char *problem, void *payload)
{
	(void)payload;
	printf("  verify: %s: %s\n", user, problem);
	nproblems++;
}

static int verify(cairn_repo *r)
{
	nproblems = 0;
	int rc = quota_verify(r, report, NULL);
	CHECK(rc >= 0);
	CHECK_EQ(rc, nproblems);
	return rc;
}

static char *path_of(const char *fmt, const char *a)
{
	static char p[600];
	snprintf(p, sizeof(p), fmt, base, a);
	return p;
}

/* The newest entry of users/U/log. */
static int top_log(const char *user, char out[900])
{
	DIR *d = opendir(path_of("%s/repo/users/%s/log", user));
	struct dirent *de;
	char best[256] = "";
	if (!d) return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && strcmp(de->d_name, best) > 0) snprintf(best, sizeof(best), "%s", de->d_name);
	closedir(d);
	snprintf(out, 900, "%s/repo/users/%s/log/%s", base, user, best);
	return best[0] ? 0 : -1;
}

static void test_two_users(cairn_repo *r, const char *t1)
{
	/* bob first in one order, then alice; carol/dave the other way round */
	CHECK_EQ(take(r, t1, "bob", "s", NULL), 0);
	CHECK_EQ(take(r, t1, "alice", "s", NULL), 0);
	CHECK(used(r, "bob") > 300000);
	CHECK_EQ(used(r, "alice"), used(r, "bob"));
	CHECK_EQ(take(r, t1, "dave", "s", NULL), 0);
	CHECK_EQ(take(r, t1, "carol", "s", NULL), 0);
	CHECK_EQ(used(r, "carol"), used(r, "bob"));
	CHECK_EQ(used(r, "dave"), used(r, "bob"));
	/* a second identical snapshot adds nothing */
	uint64_t before = used(r, "bob");
	CHECK_EQ(take(r, t1, "bob", "s2", NULL), 0);
	CHECK_EQ(used(r, "bob"), before);
	quota_usage u;
	CHECK_EQ(quota_usage_get(r, "bob", &u), 0);
	CHECK_EQ(u.snapshots, 2);
	CHECK_EQ(verify(r), 0);
}

static void test_quota_edges(cairn_repo *r, const char *t2)
{
	char id[65];
	/* measure with a take, forget it: the blobs stay in the repository */
	CHECK_EQ(take(r, t2, "erin", "m", id), 0);
	uint64_t need = used(r, "erin"), rel = 0;
	CHECK(need > 0);
	CHECK_EQ(quota_forget(r, id, &rel), 0);
	CHECK_EQ(rel, need);
	CHECK_EQ(used(r, "erin"), 0);
	CHECK_EQ(quota_set(r, "erin", 1, need - 1), 0);
	CHECK_EQ(take(r, t2, "erin", "x", NULL), CAIRN_EQUOTA);
	CHECK(strstr(cairn_error_last(), "quota") != NULL);
	CHECK_EQ(used(r, "erin"), 0);
	cairn_snapshot_list *l;
	CHECK_EQ(cairn_snapshot_list_load(&l, r, "erin"), 0);
	CHECK_EQ(cairn_snapshot_list_count(l), 0);
	cairn_snapshot_list_free(l);
	CHECK_EQ(quota_set(r, "erin", 1, need), 0);
	CHECK_EQ(take(r, t2, "erin", "fits", NULL), 0);
	CHECK_EQ(used(r, "erin"), need);
	quota_usage u;
	CHECK_EQ(quota_usage_get(r, "erin", &u), 0);
	CHECK(u.has_quota && u.quota == need);
	CHECK_EQ(quota_set(r, "erin", 0, 0), 0);
	CHECK_EQ(quota_usage_get(r, "erin", &u), 0);
	CHECK_EQ(u.has_quota, 0);
	CHECK_EQ(verify(r), 0);
}

static void test_estimate(cairn_repo *r, const char *t1, const char *t3)
{
	cairn_take_options o = CAIRN_TAKE_OPTIONS_INIT;
	cairn_estimate_result e = CAIRN_ESTIMATE_RESULT_INIT;
	o.root = t3;
	o.user = "alice";
	o.no_parent = 1;
	CHECK_EQ(cairn_estimate(&e, r, &o), 0);
	uint64_t before = used(r, "alice");
	CHECK(e.added_bytes > 0);
	CHECK(e.added_bytes < 400000); /* the shared file is charged already */
	CHECK_EQ(take(r, t3, "alice", "e", NULL), 0);
	CHECK_EQ(used(r, "alice") - before, e.added_bytes);
	(void)t1;
}

static void test_crash_states(cairn_repo *r, const char *t2)
{
	char id[65], mname[600];
	uint64_t before = used(r, "frank");
	CHECK_EQ(take(r, t2, "frank", "c1", id), 0);
	uint64_t after = used(r, "frank");
	CHECK(after > before);
	/* a take that wrote its ledger entry but not its manifest */
	snprintf(mname, sizeof(mname), "%s/repo/snapshots/%s", base, id);
	size_t mlen;
	uint8_t *m = t_slurp(mname, &mlen);
	CHECK(m != NULL);
	unlink(mname);
	CHECK_EQ(used(r, "frank"), before); /* readers do not count it */
	CHECK_EQ(verify(r), 0);
	CHECK_EQ(take(r, t2, "frank", "c2", id), 0); /* settles it, then charges */
	CHECK_EQ(used(r, "frank"), after);
	CHECK_EQ(verify(r), 0);
	/* a forget that wrote its entry but did not delete the manifest */
	snprintf(mname, sizeof(mname), "%s/repo/snapshots/%s", base, id);
	free(m);
	m = t_slurp(mname, &mlen);
	CHECK_EQ(quota_forget(r, id, NULL), 0);
	t_spit(mname, m, mlen);
	free(m);
	CHECK_EQ(used(r, "frank"), before);
	CHECK_EQ(quota_set(r, "frank", 0, 0), 0);
	CHECK_EQ(take(r, t2, "frank", "c3", NULL), 0); /* finishes the forget */
	CHECK(access(mname, F_OK) != 0);
	CHECK_EQ(verify(r), 0);
}

static void test_compaction(cairn_repo *r, const char *t2)
{
	char id[65];
	for (int i = 0; i < 40; i++) {
		CHECK_EQ(take(r, t2, "gina", "k", id), 0);
		if (i % 2) CHECK_EQ(quota_forget(r, id, NULL), 0);
	}
	quota_usage u;
	CHECK_EQ(quota_usage_get(r, "gina", &u), 0);
	CHECK_EQ(u.snapshots, 20);
	int nlogs = 0;
	DIR *d = opendir(path_of("%s/repo/users/%s/log", "gina"));
	struct dirent *de;
	while (d && (de = readdir(d))) nlogs += de->d_name[0] != '.';
	if (d) closedir(d);
	CHECK(nlogs > 0 && nlogs <= 33);
	CHECK(access(path_of("%s/repo/users/%s/base", "gina"), F_OK) == 0);
	CHECK_EQ(verify(r), 0);
}

static void test_tamper(cairn_repo *r, const char *t2)
{
	char p[900];
	CHECK_EQ(take(r, t2, "hal", "t", NULL), 0);
	uint64_t real = used(r, "hal");
	CHECK_EQ(top_log("hal", p), 0);
	size_t len;
	uint8_t *b = t_slurp(p, &len);
	/* used_after sits 8 + 8 + 8 + 8 + 8 + 1 + 32 + 8 bytes... find it by value */
	size_t off = 0;
	for (size_t i = FORMAT_HEADER_LEN; i + 8 <= len - FORMAT_CHECK_LEN; i++)
		if (get_u64(b + i) == real) off = i;
	CHECK(off > 0);
	put_u64(b + off, real - 1000);
	put_u64(b + len - 8, hash_xxh3(b, len - 8)); /* a well-formed lie */
	t_spit(p, b, len);
	free(b);
	CHECK_EQ(used(r, "hal"), real - 1000);
	CHECK(verify(r) > 0);
	CHECK_EQ(take(r, t2, "hal", "t2", NULL), CAIRN_ECORRUPT); /* never builds on a bad ledger */
	CHECK_EQ(quota_rebuild(r, "hal"), 0);
	CHECK_EQ(used(r, "hal"), real);
	CHECK_EQ(verify(r), 0);
	CHECK_EQ(take(r, t2, "hal", "t3", NULL), 0);

	/* a deleted ledger entry is found too */
	CHECK_EQ(take(r, t2, "ivy", "t", NULL), 0);
	CHECK_EQ(top_log("ivy", p), 0);
	unlink(p);
	CHECK(verify(r) > 0);
	CHECK_EQ(quota_rebuild(r, "ivy"), 0);
	CHECK_EQ(verify(r), 0);
}

/* Flipped and truncated records: errors, never crashes. */
static void test_hostile(cairn_repo *r, const char *t2)
{
	char p[900];
	CHECK_EQ(take(r, t2, "jo", "h", NULL), 0);
	CHECK_EQ(top_log("jo", p), 0);
	size_t len;
	uint8_t *orig = t_slurp(p, &len);
	for (int round = 0; round < 60; round++) {
		uint8_t *b = malloc(len);
		memcpy(b, orig, len);
		size_t n = len;
		if (round % 3 == 0) n = (size_t)(t_rand() % len);
		else b[t_rand() % len] ^= (uint8_t)(1 + t_rand() % 255);
		if (round % 2 && n >= 8) put_u64(b + n - 8, hash_xxh3(b, n - 8)); /* past the checksum */
		t_spit(p, b, n);
		quota_usage u;
		int rc = quota_usage_get(r, "jo", &u);
		CHECK(rc == 0 || rc == CAIRN_ECORRUPT);
		nproblems = 0;
		rc = quota_verify(r, report, NULL);
		CHECK(rc >= 0);
		free(b);
	}
	t_spit(p, orig, len);
	free(orig);
	CHECK_EQ(verify(r), 0);
}

/* Incremental takes reuse the parent's chunk lists and take their stored
 * sizes from the parent's refs record (no index lookup): the usage stays
 * exact, for the parent's user and for another user taking from it. */
static void test_incremental(cairn_repo *r, const char *dir)
{
	char p[512], i1[65], i2[65], i3[65];
	cairn_take_options o = CAIRN_TAKE_OPTIONS_INIT;
	cairn_take_result res = CAIRN_TAKE_RESULT_INIT;
	make_tree(dir, t_rand(), 120000);
	for (int k = 0; k < 6; k++) {
		snprintf(p, sizeof(p), "%s/f%d", dir, k);
		write_file(p, 40000 + 1000 * (size_t)k, t_rand());
	}
	CHECK_EQ(take(r, dir, "kim", "i", i1), 0);
	uint64_t u1 = used(r, "kim");
	/* a changed file, a new one, a removed one */
	snprintf(p, sizeof(p), "%s/f1", dir);
	write_file(p, 45000, t_rand());
	snprintf(p, sizeof(p), "%s/f9", dir);
	write_file(p, 30000, t_rand());
	snprintf(p, sizeof(p), "%s/f2", dir);
	unlink(p);
	o.root = dir;
	o.user = "kim";
	o.name = "i";
	o.threads = 2;
	CHECK_EQ(cairn_take(&res, r, &o), 0);
	memcpy(i2, res.snapshot, 65);
	CHECK(res.reused_files >= 5); /* shared, own, f0, f3..f5 */
	CHECK(used(r, "kim") > u1);
	CHECK_EQ(verify(r), 0);
	/* unchanged: nothing new to the user */
	uint64_t u2 = used(r, "kim");
	CHECK_EQ(cairn_take(&res, r, &o), 0);
	memcpy(i3, res.snapshot, 65);
	CHECK_EQ(used(r, "kim"), u2);
	CHECK(strcmp(i2, i3) != 0);
	/* another user, from kim's snapshot: charged what a full read of the
	 * same tree (user max) is */
	CHECK_EQ(take(r, dir, "max", "m", NULL), 0);
	uint64_t full = used(r, "max");
	CHECK(full > 0 && full < u2); /* kim also holds f1's and f2's old data */
	o.user = "lou";
	o.parent = i3;
	CHECK_EQ(cairn_take(&res, r, &o), 0);
	CHECK(res.reused_files >= 6);
	CHECK_EQ(used(r, "lou"), full);
	CHECK_EQ(verify(r), 0);
	/* forgetting kim's snapshots releases only what lou does not hold */
	CHECK_EQ(quota_forget(r, i1, NULL), 0);
	CHECK_EQ(quota_forget(r, i2, NULL), 0);
	CHECK_EQ(quota_forget(r, i3, NULL), 0);
	CHECK_EQ(used(r, "kim"), 0);
	CHECK_EQ(used(r, "lou"), full);
	CHECK_EQ(verify(r), 0);
}

/* users/U/refs/ID: -1 when absent, 0 when whole, else its delta depth. */
static int refs_depth(const char *user, const char *id)
{
	char p[900];
	size_t len;
	snprintf(p, sizeof(p), "%s/repo/users/%s/refs/%s", base, user, id);
	uint8_t *b = t_slurp(p, &len);
	if (!b) return -1;
	int depth = 0;
	size_t at = FORMAT_HEADER_LEN + 2 + strlen(user) + 32 + 32;
	if (get_u32(b + 12) & 1) depth = at + 4 <= len ? (int)get_u32(b + at) : 99;
	free(b);
	return depth;
}

/* A chain of takes writes its refs as deltas on the parent's, whole again
 * past depth 8; forgetting a snapshot rewrites whole the deltas on it
 * before its record goes; usage and verify stay exact throughout. */
static void test_refs_deltas(cairn_repo *r, const char *dir)
{
	char p[512], ids[14][65];
	cairn_take_options o = CAIRN_TAKE_OPTIONS_INIT;
	cairn_take_result res = CAIRN_TAKE_RESULT_INIT;
	mkdir(dir, 0755);
	for (int k = 0; k < 40; k++) {
		snprintf(p, sizeof(p), "%s/f%02d", dir, k);
		write_file(p, 20000 + 500 * (size_t)k, t_rand());
	}
	o.root = dir;
	o.user = "nia";
	o.name = "d";
	o.threads = 2;
	for (int i = 0; i < 14; i++) {
		if (i) { /* one file changed per take */
			snprintf(p, sizeof(p), "%s/f%02d", dir, (int)(t_rand() % 40));
			write_file(p, 21000, t_rand());
		}
		CHECK_EQ(cairn_take(&res, r, &o), 0);
		memcpy(ids[i], res.snapshot, 65);
		CHECK_EQ(verify(r), 0);
	}
	/* whole, deltas of depth 1..8, whole, deltas again */
	for (int i = 0; i < 14; i++) CHECK_EQ(refs_depth("nia", ids[i]), i % 9);
	char rp[900];
	size_t len;
	snprintf(rp, sizeof(rp), "%s/repo/users/nia/refs/%s", base, ids[5]);
	free(t_slurp(rp, &len));
	CHECK(len < 600); /* one file's chunk and three trees in, as many out */
	uint64_t u = used(r, "nia");

	/* a copy of the tree elsewhere (a new instance): no parent, so its
	 * refs are a delta on the user's latest snapshot, which it equals */
	char copy[600], cmd[1300];
	snprintf(copy, sizeof(copy), "%s.copy", dir);
	snprintf(cmd, sizeof(cmd), "cp -a %s %s", dir, copy);
	CHECK_EQ(system(cmd), 0);
	o.root = copy;
	CHECK_EQ(cairn_take(&res, r, &o), 0);
	o.root = dir;
	CHECK_EQ(res.reused_files, 0);
	CHECK_EQ(refs_depth("nia", res.snapshot), refs_depth("nia", ids[13]) + 1);
	snprintf(rp, sizeof(rp), "%s/repo/users/nia/refs/%s", base, res.snapshot);
	free(t_slurp(rp, &len));
	CHECK(len < 200); /* nothing in, nothing out */
	CHECK_EQ(used(r, "nia"), u);
	CHECK_EQ(verify(r), 0);

	/* forget the bases of ids[3] and ids[4]; the compaction that drops
	 * their records makes those two whole first */
	CHECK_EQ(quota_forget(r, ids[2], NULL), 0);
	CHECK_EQ(quota_forget(r, ids[3], NULL), 0);
	CHECK_EQ(verify(r), 0);
	for (int i = 0; i < 17 && refs_depth("nia", ids[3]) != -1; i++) /* until a compaction */
		CHECK_EQ(cairn_take(&res, r, &o), 0);
	CHECK_EQ(refs_depth("nia", ids[2]), -1);
	CHECK_EQ(refs_depth("nia", ids[3]), -1);
	CHECK_EQ(refs_depth("nia", ids[4]), 0);
	CHECK_EQ(refs_depth("nia", ids[5]), 5); /* its base, ids[4], is still there */
	CHECK_EQ(verify(r), 0);
	CHECK(used(r, "nia") <= u);
	for (int i = 0; i < 14; i++)
		if (i != 2 && i != 3) CHECK_EQ(quota_forget(r, ids[i], NULL), 0);
	CHECK_EQ(verify(r), 0);

	/* a delta whose base is gone is damage that verify names and
	 * quota_rebuild repairs (records written whole) */
	CHECK_EQ(cairn_take(&res, r, &o), 0);
	int before = refs_depth("nia", res.snapshot);
	CHECK(before >= 0 && before < 8);
	snprintf(p, sizeof(p), "%s/f00", dir);
	write_file(p, 22000, t_rand());
	CHECK_EQ(cairn_take(&res, r, &o), 0);
	CHECK_EQ(refs_depth("nia", res.snapshot), before + 1);
	snprintf(rp, sizeof(rp), "%s/repo/users/nia/refs/%s", base, res.snapshot);
	uint8_t *orig = t_slurp(rp, &len), *b = malloc(len);
	size_t at = FORMAT_HEADER_LEN + 2 + 3 + 32;
	for (int how = 0; how < 2; how++) {
		memcpy(b, orig, len);
		if (how == 0) b[at] ^= 1; /* another base, not there */
		else memcpy(b + at, b + at - 32, 32); /* itself: a loop, refused at once */
		put_u64(b + len - 8, hash_xxh3(b, len - 8));
		t_spit(rp, b, len);
		CHECK(verify(r) > 0);
		quota_usage qu;
		CHECK_EQ(quota_usage_get(r, "nia", &qu), 0); /* the last entry only */
		CHECK_EQ(quota_rebuild(r, "nia"), 0);
		CHECK_EQ(refs_depth("nia", res.snapshot), 0);
		CHECK_EQ(verify(r), 0);
		t_spit(rp, orig, len); /* a delta again, on a base still there */
		CHECK_EQ(verify(r), 0);
	}
	free(b);
	free(orig);
}

/* SPEC's USER, one rule for every entry point: names that would leave
 * users/ (".", ".."), or hide in it (a leading '.': the directory backend
 * lists no dot-entries), are refused by the API itself, and nothing is
 * written for them. */
static void test_user_names(cairn_repo *r, const char *t2, const char *repo_dir)
{
	static const char *const bad[] = {".", "..", ".hidden", "", "a/b", "sp ace",
	                                  "u23456789012345678901234567890123456789012345678901234567890abcde"};
	static const char *const good[] = {"a", "A-z.0_9", "quota", "log", "refs", "base", "x..",
	                                   "u23456789012345678901234567890123456789012345678901234567890abcd"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		quota_usage u;
		cairn_estimate_result e = CAIRN_ESTIMATE_RESULT_INIT;
		cairn_take_options o = CAIRN_TAKE_OPTIONS_INIT;
		o.root = t2;
		o.user = bad[i];
		CHECK(!cairn_user_name_valid(bad[i]));
		CHECK_EQ(cairn_quota_set(r, bad[i], 1, 1 << 20), CAIRN_EUSAGE);
		CHECK_EQ(quota_usage_get(r, bad[i], &u), CAIRN_EUSAGE);
		CHECK_EQ(take(r, t2, bad[i], "bad", NULL), CAIRN_EUSAGE);
		CHECK_EQ(cairn_estimate(&e, r, &o), CAIRN_EUSAGE);
	}
	CHECK(!cairn_user_name_valid(NULL));
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) CHECK(cairn_user_name_valid(good[i]));
	char p[400];
	struct stat sb;
	const char *const escaped[] = {"quota", "log", "refs", "base", "users/quota", "users/log", "users/refs"};
	for (size_t i = 0; i < sizeof(escaped) / sizeof(escaped[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", repo_dir, escaped[i]);
		CHECK(lstat(p, &sb) != 0);
	}
	/* names that are record kinds are plain users */
	CHECK_EQ(cairn_quota_set(r, "quota", 1, 1 << 30), 0);
	CHECK_EQ(take(r, t2, "quota", "q", NULL), 0);
	CHECK_EQ(take(r, t2, "log", "l", NULL), 0);
	CHECK(used(r, "quota") > 0);
	CHECK_EQ(used(r, "quota"), used(r, "log"));
	CHECK_EQ(verify(r), 0);
}

/* Heap bytes in use, mapped blocks included. */
static size_t heap_used(void)
{
	struct mallinfo2 m = mallinfo2();
	return m.uordblks + m.hblkhd;
}

/* The id table: every id found, none invented, iteration over cap sees each
 * once, sorted refs complete, and 100k ids in at most 96 bytes each (79
 * here; whole-id slots took 115 for as many). */
static void test_id_table(void)
{
	enum { N = 100000 };
	oid *ids = malloc(N * sizeof(*ids));
	CHECK(ids != NULL);
	if (!ids) return;
	for (size_t i = 0; i < N; i++)
		for (size_t k = 0; k < OID_LEN; k += 8) {
			uint64_t x = t_rand();
			memcpy(ids[i].b + k, &x, 8);
		}
	size_t before = heap_used();
	utable t;
	ut_init(&t);
	for (size_t i = 0; i < N; i++) {
		uslot *s = ut_get(&t, &ids[i]);
		CHECK(s != NULL);
		if (!s) break;
		s->size = (uint32_t)i;
		s->refs = 1;
	}
	size_t bytes = heap_used() - before;
	CHECK_EQ(t.n, N);
	CHECK(bytes <= (size_t)N * 96);
	size_t bad = 0, used = 0;
	for (size_t i = 0; i < N; i++) {
		const uslot *s = ut_find(&t, &ids[i]);
		if (!s || s->size != i || ut_get(&t, &ids[i]) != s) bad++;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(t.n, N); /* finding is not inserting */
	oid absent = ids[0];
	absent.b[OID_LEN - 1] ^= 1;
	CHECK(ut_find(&t, &absent) == NULL);
	for (size_t i = 0; i < t.cap; i++) used += t.s[i].used;
	CHECK_EQ(used, N);
	uref *v;
	size_t n;
	CHECK_EQ(ut_sorted(&t, &v, &n), 0);
	CHECK_EQ(n, N);
	for (size_t i = 1; i < n; i++)
		if (oid_cmp(&v[i - 1].id, &v[i].id) >= 0) bad++;
	CHECK_EQ(bad, 0);
	free(v);
	ut_free(&t);
	free(ids);
}

static int uref_id_cmp(const void *a, const void *b) { return oid_cmp(&((const uref *)a)->id, &((const uref *)b)->id); }

/* The user's blobs as a sorted array: snapshots' refs merged in and out
 * match a count per id kept beside (usage, counts, sizes, order, nothing
 * left at 0), and a bad merge (refs out of order, another size, a forget
 * of a blob not charged) fails and changes nothing. */
static void test_user_blobs(void)
{
	enum { POOL = 3000, SNAPS = 12 };
	uref *pool = malloc(POOL * sizeof(*pool));
	uint32_t *count = calloc(POOL, sizeof(*count));
	uref *snap[SNAPS];
	size_t nsnap[SNAPS];
	CHECK(pool && count);
	if (!pool || !count) return;
	for (size_t i = 0; i < POOL; i++) {
		t_fill(pool[i].id.b, OID_LEN);
		pool[i].size = 1 + (uint32_t)(t_rand() % 100000);
		pool[i].refs = 1;
	}
	qsort(pool, POOL, sizeof(*pool), uref_id_cmp);
	for (size_t k = 0; k < SNAPS; k++) { /* a random subset, ascending */
		snap[k] = malloc(POOL * sizeof(*snap[k]));
		nsnap[k] = 0;
		unsigned keep = 1 + (unsigned)(t_rand() % 7);
		for (size_t i = 0; snap[k] && i < POOL; i++)
			if (t_rand() % 8 < keep) snap[k][nsnap[k]++] = pool[i];
	}
	ublobs b = {0};
	uint64_t used = 0;
	/* all added, then every other one forgotten, then the first added again */
	int order[][2] = {{0, 1}, {1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}, {6, 1}, {7, 1}, {8, 1}, {9, 1},
	                  {10, 1}, {11, 1}, {0, -1}, {2, -1}, {4, -1}, {6, -1}, {8, -1}, {10, -1}, {0, 1}};
	size_t bad = 0;
	for (size_t s = 0; s < sizeof(order) / sizeof(order[0]); s++) {
		int k = order[s][0], sign = order[s][1];
		if (!snap[k]) continue;
		CHECK_EQ(ub_apply(&b, sign, snap[k], nsnap[k], &used, "test"), 0);
		size_t j = 0;
		for (size_t i = 0; i < POOL; i++)
			if (j < nsnap[k] && oid_cmp(&pool[i].id, &snap[k][j].id) == 0) {
				count[i] += (uint32_t)sign;
				j++;
			}
		uint64_t want_used = 0;
		size_t want_n = 0;
		for (size_t i = 0; i < POOL; i++) {
			const uref *u = ub_find(&b, &pool[i].id);
			if (count[i]) {
				want_used += pool[i].size;
				want_n++;
			}
			if (count[i] ? !u || u->refs != count[i] || u->size != pool[i].size : u != NULL) bad++;
		}
		for (size_t i = 1; i < b.n; i++) bad += oid_cmp(&b.v[i - 1].id, &b.v[i].id) >= 0;
		CHECK_EQ(b.n, want_n);
		CHECK_EQ(used, want_used);
	}
	CHECK_EQ(bad, 0);
	/* refused merges leave b as it was */
	size_t n0 = b.n;
	uint64_t used0 = used;
	uref *copy = malloc((n0 ? n0 : 1) * sizeof(*copy));
	CHECK(copy != NULL);
	if (copy && n0 >= 2) {
		memcpy(copy, b.v, n0 * sizeof(*copy));
		uref swapped[2] = {b.v[1], b.v[0]};
		CHECK_EQ(ub_apply(&b, 1, swapped, 2, &used, "test"), CAIRN_ECORRUPT);
		uref resized[2] = {pool[0], b.v[1]};
		resized[1].size++;
		if (oid_cmp(&resized[0].id, &resized[1].id) < 0)
			CHECK_EQ(ub_apply(&b, 1, resized, 2, &used, "test"), CAIRN_ECORRUPT);
		size_t absent = 0;
		while (absent < POOL && count[absent]) absent++;
		if (absent < POOL) CHECK_EQ(ub_apply(&b, -1, &pool[absent], 1, &used, "test"), CAIRN_ECORRUPT);
		CHECK_EQ(b.n, n0);
		CHECK_EQ(used, used0);
		CHECK(memcmp(copy, b.v, n0 * sizeof(*copy)) == 0);
	}
	free(copy);
	ub_free(&b);
	for (size_t k = 0; k < SNAPS; k++) free(snap[k]);
	free(pool);
	free(count);
}

/* The tracker holds the blobs it shares with the parent's refs as bits over
 * them: an id is counted once wherever it was first added (the parent's
 * at its size, or the set: another size, or none of the parent's), seen
 * from either, and the charged refs are both merged in id order, each
 * once; a restart (the pre-copy's end) starts both over. */
static void test_parent_bits(cairn_repo *r, const char *t1)
{
	char p1[65];
	CHECK_EQ(take(r, t1, "nia", "p", p1), 0);
	oid snap, fake, x;
	uref *v = NULL;
	size_t n = 0;
	CHECK_EQ(hex_decode(snap.b, OID_LEN, p1), 0);
	CHECK_EQ(read_refs(r, "nia", &snap, &v, &n), 0);
	CHECK(n >= 3);
	if (n < 3) return;
	t_fill(x.b, OID_LEN);
	t_fill(fake.b, OID_LEN);
	quota_tracker *t;
	CHECK_EQ(quota_tracker_new(&t, r), 0);
	CHECK_EQ(quota_tracker_bind(t, "nia", 0), 0);
	quota_tracker_parent(t, "nia", p1);
	for (int round = 0; round < 2; round++) { /* the second after a restart */
		CHECK_EQ(quota_tracker_add(t, &v[0].id, v[0].size), 1);
		CHECK_EQ(quota_tracker_add(t, &v[0].id, v[0].size), 0);
		CHECK_EQ(quota_tracker_add(t, &v[0].id, v[0].size + 5), 0); /* first wins */
		CHECK_EQ(quota_tracker_add(t, &v[1].id, v[1].size + 1), 1); /* stored again, another size */
		CHECK_EQ(quota_tracker_add(t, &v[1].id, v[1].size), 0);
		CHECK_EQ(quota_tracker_add(t, &x, 7), 1);
		CHECK_EQ(quota_tracker_add(t, &x, 7), 0);
		CHECK_EQ(quota_tracker_seen(t, &v[0].id), 1);
		CHECK_EQ(quota_tracker_seen(t, &v[1].id), 1);
		CHECK_EQ(quota_tracker_seen(t, &x), 1);
		CHECK_EQ(quota_tracker_seen(t, &v[2].id), 0);
		CHECK_EQ(quota_tracker_added(t), 7); /* only x is new to nia */
		CHECK_EQ(quota_tracker_table_ids(t), 2); /* x and v[1]; v[0] is a bit */
		if (round == 0) CHECK_EQ(quota_tracker_restart(t, 16), 0);
	}
	uint32_t size = 0;
	CHECK(quota_tracker_known(t, &x, &size) && size == 7); /* from the restart's sorted refs */
	char fake_hex[OID_HEX_LEN + 1];
	oid_hex(fake_hex, &fake);
	CHECK_EQ(quota_commit_begin(t, "nia"), 0);
	CHECK_EQ(quota_commit_charge(t, fake_hex), 0);
	uref *w = NULL;
	size_t m = 0;
	CHECK_EQ(read_refs(r, "nia", &fake, &w, &m), 0);
	CHECK_EQ(m, 3);
	for (size_t i = 0; i < m; i++) {
		if (i) CHECK(oid_cmp(&w[i - 1].id, &w[i].id) < 0);
		uint32_t want = oid_cmp(&w[i].id, &x) == 0 ? 7
		                : oid_cmp(&w[i].id, &v[0].id) == 0 ? v[0].size
		                : oid_cmp(&w[i].id, &v[1].id) == 0 ? v[1].size + 1
		                                                   : 0;
		CHECK_EQ(w[i].size, want);
	}
	quota_commit_end(t, 0); /* not committed: the charge taken back */
	quota_tracker_free(t);
	CHECK_EQ(verify(r), 0);
	free(w);
	free(v);
}

/* A tree of n small files, each its own blob. */
static void many_files(const char *dir, size_t n, uint64_t seed)
{
	char p[600];
	mkdir(dir, 0755);
	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/f%zu", dir, i);
		write_file(p, 40, seed + 2 * i); /* write_file sets the low bit */
	}
}

/* The parent's refs, all among the user's blobs at their sizes, are not
 * held twice: bits over the user's state (a few bytes a ref, where a copy
 * took 40 and its directory more); they are the parent's refs all the
 * same: known at their sizes, added as bits (no table slot, nothing new
 * to charge), the user's other blobs not taken for theirs, and the
 * charged refs are exactly the parent's; a commit keeps them as bits
 * when the user's state has not changed since the bind, and charges the
 * same when it has. */
static void test_parent_shared(cairn_repo *r, const char *dir)
{
	enum { N = 3000 };
	char a[600], b[600], pa[65], pb[65];
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	mkdir(dir, 0755);
	many_files(b, 8, 1u << 30); /* the user's blobs outside the parent */
	many_files(a, N, 1u << 20);
	CHECK_EQ(take(r, b, "sam", "b", pb), 0);
	CHECK_EQ(take(r, a, "sam", "a", pa), 0);
	oid snap, other, fake;
	uref *v = NULL, *w = NULL;
	size_t n = 0, nw = 0, m = 0;
	CHECK_EQ(hex_decode(snap.b, OID_LEN, pa), 0);
	CHECK_EQ(read_refs(r, "sam", &snap, &v, &n), 0);
	CHECK_EQ(hex_decode(other.b, OID_LEN, pb), 0);
	CHECK_EQ(read_refs(r, "sam", &other, &w, &nw), 0);
	CHECK(n >= N && nw > 0);
	if (n < N || !nw) return;
	const uref *outside = NULL; /* one of b's blobs that a does not have */
	for (size_t i = 0; i < nw && !outside; i++) {
		int in_a = 0;
		for (size_t j = 0; j < n && !in_a; j++) in_a = !oid_cmp(&v[j].id, &w[i].id);
		if (!in_a) outside = &w[i];
	}
	CHECK(outside != NULL);
	quota_tracker *t;
	CHECK_EQ(quota_tracker_new(&t, r), 0);
	CHECK_EQ(quota_tracker_bind(t, "sam", 1), 0);
	size_t before = heap_used();
	quota_tracker_parent(t, "sam", pa);
	size_t grew = heap_used() - before;
	printf("  the parent's %zu refs: %zu bytes in the tracker (%.1f a ref)\n", n, grew, (double)grew / (double)n);
	CHECK(grew < n * 12);
	uint32_t size = 0;
	CHECK(quota_tracker_known(t, &v[n / 2].id, &size) && size == v[n / 2].size);
	if (outside) {
		CHECK(!quota_tracker_known(t, &outside->id, &size));
		CHECK_EQ(quota_tracker_seen(t, &outside->id), 0);
	}
	for (size_t i = 0; i < n; i++) CHECK_EQ(quota_tracker_add(t, &v[i].id, v[i].size), 1);
	CHECK_EQ(quota_tracker_add(t, &v[0].id, v[0].size), 0);
	CHECK_EQ(quota_tracker_table_ids(t), 0); /* all bits */
	CHECK_EQ(quota_tracker_added(t), 0);     /* all charged already */
	for (int round = 0; round < 2; round++) {
		/* the second time, the user's state changed since the bind (a take
		 * committed): the refs go back to an array of their own first */
		if (round == 1) {
			char c[600], pc[65];
			snprintf(c, sizeof(c), "%s/c", dir);
			many_files(c, 4, 1u << 29);
			CHECK_EQ(take(r, c, "sam", "c", pc), 0);
		}
		t_fill(fake.b, OID_LEN);
		char fake_hex[OID_HEX_LEN + 1];
		oid_hex(fake_hex, &fake);
		before = heap_used();
		CHECK_EQ(quota_commit_begin(t, "sam"), 0);
		grew = heap_used() - before;
		if (round == 0) CHECK(grew < n * 12); /* nothing new: still bits over the same state */
		CHECK_EQ(quota_commit_charge(t, fake_hex), 0);
		uref *got = NULL;
		CHECK_EQ(read_refs(r, "sam", &fake, &got, &m), 0);
		CHECK_EQ(m, n);
		for (size_t i = 0; i < m && m == n; i++)
			CHECK(!oid_cmp(&got[i].id, &v[i].id) && got[i].size == v[i].size);
		free(got);
		quota_commit_end(t, 0);
	}
	quota_tracker_free(t);
	CHECK_EQ(verify(r), 0);
	free(v);
	free(w);
}

int main(void)
{
	t_seed();
	snprintf(base, sizeof(base), "/tmp/test_quota.%d", (int)getpid());
	mkdir(base, 0755);
	char repo[300], t1[300], t2[300], t3[300], t4[300], t5[300];
	snprintf(repo, sizeof(repo), "%s/repo", base);
	snprintf(t1, sizeof(t1), "%s/t1", base);
	snprintf(t2, sizeof(t2), "%s/t2", base);
	snprintf(t3, sizeof(t3), "%s/t3", base);
	snprintf(t4, sizeof(t4), "%s/t4", base);
	snprintf(t5, sizeof(t5), "%s/t5", base);
	test_id_table();
	test_user_blobs();
	make_tree(t1, t_rand(), 200000);
	make_tree(t2, t_rand(), 150000);
	make_tree(t3, t_rand(), 100000);
	cairn_init_options io = CAIRN_INIT_OPTIONS_INIT;
	io.chunk_avg = 16384;
	CHECK_EQ(cairn_repo_init(repo, &io), 0);
	cairn_repo *r;
	CHECK_EQ(cairn_repo_open(&r, repo), 0);

	test_two_users(r, t1);
	test_quota_edges(r, t2);
	test_estimate(r, t1, t3);
	test_crash_states(r, t2);
	test_compaction(r, t2);
	test_tamper(r, t2);
	test_hostile(r, t2);
	test_incremental(r, t4);
	test_refs_deltas(r, t5);
	test_parent_bits(r, t1);
	{
		char many[400];
		snprintf(many, sizeof(many), "%s/many", base);
		test_parent_shared(r, many);
	}
	test_user_names(r, t2, repo);

	quota_usage u;
	CHECK_EQ(quota_usage_get(r, "no/such", &u), CAIRN_EUSAGE);
	CHECK_EQ(quota_usage_get(r, "nobody", &u), 0);
	CHECK_EQ(u.used, 0);
	cairn_repo_free(r);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", base);
	return t_done();
}
