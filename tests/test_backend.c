/* The public backend interface (include/cairn/sys/backend.h), from a
 * caller's side: an in-memory backend written against the public header
 * alone, counting every call, then the engine's wrapping backends over it.
 * The read caches (readcache_wrap): small reads of packs fetch one block,
 * index segments are read whole once, other objects always pass through,
 * and a delete drops what was cached so a new object of that name is read
 * afresh; writes, lists and sizes pass through. Fault injection
 * (store_fault_wrap): exactly the Nth call of the op named fails, with the
 * code asked for and a message naming the object, and does not reach the
 * backend; a failed commit leaves nothing; SLOW waits; a bad spec is a
 * usage error. A caller's own backend under a repository
 * (cairn_repo_open_ext): a take and a restore through it give the tree
 * back, and the repository frees it. Read-ahead advice (the advise op):
 * a restore advises the pack ranges it then reads, coalesced (a range of
 * many chunks, each within its pack, each read after at its offset); a
 * failing advice, from the backend or injected, fails no read; a table of
 * version 1, which ends before advise, works and is never read past. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "cairn/sys/backend.h"
#include "t.h"

/* engine internals under test */
#include "buf.h"
#include "readcache.h"
#include "repo.h"
#include "store.h"
#include "store_fault.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAXOBJ 16
typedef struct mem_backend {
	cairn_backend base;
	char *names[MAXOBJ];
	uint8_t *data[MAXOBJ];
	size_t len[MAXOBJ];
	unsigned puts, gets, ranges, uptos, sizes, lists, dels, frees;
} mem_backend;

static mem_backend *mem_of(cairn_backend *b) { return (mem_backend *)b; }

static int find(mem_backend *m, const char *name)
{
	for (int i = 0; i < MAXOBJ; i++)
		if (m->names[i] && strcmp(m->names[i], name) == 0) return i;
	return -1;
}

static void mem_free(cairn_backend *b)
{
	mem_backend *m = mem_of(b);
	m->frees++;
	for (int i = 0; i < MAXOBJ; i++) {
		free(m->names[i]);
		free(m->data[i]);
		m->names[i] = NULL;
		m->data[i] = NULL;
	}
}

static int mem_put(cairn_backend *b, const char *name, const void *data, size_t len, unsigned flags)
{
	mem_backend *m = mem_of(b);
	m->puts++;
	int i = find(m, name);
	if (i >= 0 && (flags & CAIRN_BACKEND_EXCL)) return cairn_error_set(CAIRN_EEXISTS, "mem:%s: exists", name);
	if (i < 0)
		for (i = 0; i < MAXOBJ && m->names[i]; i++) {}
	if (i == MAXOBJ) return cairn_error_set(CAIRN_EIO, "mem:%s: full", name);
	free(m->names[i]);
	free(m->data[i]);
	m->names[i] = strdup(name);
	m->data[i] = malloc(len ? len : 1);
	memcpy(m->data[i], data, len);
	m->len[i] = len;
	return 0;
}

static int mem_get(cairn_backend *b, const char *name, size_t max, uint8_t **out, size_t *len)
{
	mem_backend *m = mem_of(b);
	m->gets++;
	int i = find(m, name);
	if (i < 0) return cairn_error_set(CAIRN_ENOTFOUND, "mem:%s: not found", name);
	if (m->len[i] > max) return cairn_error_set(CAIRN_ECORRUPT, "mem:%s: too large", name);
	*out = malloc(m->len[i] ? m->len[i] : 1);
	memcpy(*out, m->data[i], m->len[i]);
	*len = m->len[i];
	return 0;
}

static int mem_get_upto(cairn_backend *b, const char *name, uint64_t off, void *out, size_t len, size_t *got)
{
	mem_backend *m = mem_of(b);
	m->uptos++;
	int i = find(m, name);
	*got = 0;
	if (i < 0) return cairn_error_set(CAIRN_ECORRUPT, "mem:%s: missing", name);
	if (off >= m->len[i]) return 0;
	*got = m->len[i] - off < len ? m->len[i] - off : len;
	memcpy(out, m->data[i] + off, *got);
	return 0;
}

static int mem_get_range(cairn_backend *b, const char *name, uint64_t off, void *out, size_t len)
{
	mem_backend *m = mem_of(b);
	m->ranges++;
	int i = find(m, name);
	if (i < 0 || off + len > m->len[i]) return cairn_error_set(CAIRN_ECORRUPT, "mem:%s: short", name);
	memcpy(out, m->data[i] + off, len);
	return 0;
}

static int mem_size(cairn_backend *b, const char *name, uint64_t *size)
{
	mem_backend *m = mem_of(b);
	m->sizes++;
	int i = find(m, name);
	if (i < 0) return cairn_error_set(CAIRN_ENOTFOUND, "mem:%s: not found", name);
	*size = m->len[i];
	return 0;
}

static int mem_list(cairn_backend *b, const char *dir, int (*cb)(const char *name, void *payload), void *payload)
{
	mem_backend *m = mem_of(b);
	m->lists++;
	size_t n = strlen(dir);
	for (int i = 0; i < MAXOBJ; i++)
		if (m->names[i] && strncmp(m->names[i], dir, n) == 0 && m->names[i][n] == '/') {
			int rc = cb(m->names[i], payload);
			if (rc) return rc;
		}
	return 0;
}

static int mem_del(cairn_backend *b, const char *name)
{
	mem_backend *m = mem_of(b);
	m->dels++;
	int i = find(m, name);
	if (i < 0) return cairn_error_set(CAIRN_ENOTFOUND, "mem:%s: not found", name);
	free(m->names[i]);
	free(m->data[i]);
	m->names[i] = NULL;
	m->data[i] = NULL;
	return 0;
}

static const cairn_backend_ops mem_ops = {
	.version = CAIRN_BACKEND_OPS_VERSION,
	.kind = "mem",
	.free = mem_free,
	.put = mem_put,
	.get = mem_get,
	.get_range = mem_get_range,
	.get_upto = mem_get_upto,
	.size = mem_size,
	.list = mem_list,
	.del = mem_del,
};

static readcache_kind by_prefix(const char *name)
{
	if (strncmp(name, "packs/", 6) == 0) return READCACHE_BLOCKS;
	if (strncmp(name, "index/", 6) == 0) return READCACHE_WHOLE;
	return READCACHE_NONE;
}

static int count_cb(const char *name, void *payload)
{
	(void)name;
	(*(int *)payload)++;
	return 0;
}

static void check_readcache(void)
{
	mem_backend m = {.base = {.ops = &mem_ops}};
	store *st;
	CHECK_EQ(readcache_wrap(&st, &m.base, by_prefix), 0);
	CHECK(strcmp(store_kind(st), "mem") == 0);
	size_t len = 200000;
	uint8_t *pack = malloc(len), out[4096];
	t_fill(pack, len);
	CHECK_EQ(store_put(st, "packs/p1", pack, len, 0), 0);
	CHECK_EQ(store_put(st, "index/s1", pack, 5000, 0), 0);
	CHECK_EQ(store_put(st, "snapshots/a", pack, 100, 0), 0);
	CHECK_EQ(m.puts, 3);

	size_t bad = 0;
	for (int k = 0; k < 100; k++) { /* small reads inside one 1 MiB block */
		size_t n = 1 + t_rand() % sizeof(out);
		uint64_t off = t_rand() % (len - n + 1);
		CHECK_EQ(store_get_range(st, "packs/p1", off, out, n), 0);
		bad += memcmp(out, pack + off, n) != 0;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(m.uptos, 1); /* one block fetched for all of them */
	CHECK_EQ(m.ranges, 0);

	for (int k = 0; k < 10; k++) CHECK_EQ(store_get_range(st, "index/s1", 100 * k, out, 100), 0);
	CHECK(!memcmp(out, pack + 900, 100));
	CHECK_EQ(m.gets, 1); /* the segment whole, once */

	for (int k = 0; k < 3; k++) CHECK_EQ(store_get_range(st, "snapshots/a", 0, out, 10), 0);
	CHECK_EQ(m.ranges, 3); /* mutable objects: never cached */

	/* a deleted object's cached bytes go with it */
	CHECK_EQ(store_delete(st, "packs/p1"), 0);
	CHECK_EQ(m.dels, 1);
	memset(pack, 0x5a, 4096);
	CHECK_EQ(store_put(st, "packs/p1", pack, 4096, 0), 0);
	CHECK_EQ(store_get_range(st, "packs/p1", 0, out, 4096), 0);
	CHECK(out[0] == 0x5a && out[4095] == 0x5a);
	CHECK_EQ(m.uptos, 2);
	/* past the end: the backend's own message */
	CHECK_EQ(store_get_range(st, "packs/p1", 4000, out, 200), CAIRN_ECORRUPT);
	CHECK(strstr(cairn_error_last(), "mem:packs/p1") != NULL);
	/* the error's code, class (who set it) and message */
	const cairn_error_info *ei = cairn_error_last_info();
	CHECK(ei->code == CAIRN_ECORRUPT && strcmp(ei->klass, "backend") == 0 && ei->message == cairn_error_last());

	int n = 0;
	CHECK_EQ(store_list(st, "packs", count_cb, &n), 0);
	CHECK_EQ(n, 1);
	uint64_t size = 0;
	CHECK_EQ(store_size(st, "snapshots/a", &size), 0);
	CHECK_EQ(size, 100);
	/* no streamed writes in this backend: buffered by the engine, put whole */
	store_writer *w;
	CHECK_EQ(store_write_begin(st, "packs/p2", &w), 0);
	CHECK_EQ(store_write_append(w, "abc", 3), 0);
	CHECK_EQ(store_write_commit(w, 0), 0);
	CHECK_EQ(store_get_range(st, "packs/p2", 0, out, 3), 0);
	CHECK(!memcmp(out, "abc", 3));
	store_free(st);
	CHECK_EQ(m.frees, 1); /* the wrapper owns what it wraps */
	free(pack);
}

static void check_faults(void)
{
	mem_backend m = {.base = {.ops = &mem_ops}};
	store *st;
	uint8_t out[16];
	CHECK_EQ(store_fault_wrap(&st, &m.base, "store.put:1:CORRUPT,store.range:2:EIO,store.commit:1:EIO,"
	                                         "store.size:1:SLOW100,write:1:EIO"), 0);
	CHECK(strcmp(store_kind(st), "mem") == 0);
	CHECK_EQ(store_put(st, "snapshots/a", "hello", 5, 0), CAIRN_ECORRUPT);
	CHECK(strstr(cairn_error_last(), "snapshots/a") && strstr(cairn_error_last(), "injected"));
	CHECK_EQ(m.puts, 0); /* never reached the backend */
	CHECK_EQ(store_put(st, "snapshots/a", "hello", 5, 0), 0);
	CHECK_EQ(store_get_range(st, "snapshots/a", 0, out, 5), 0);
	CHECK_EQ(store_get_range(st, "snapshots/a", 0, out, 5), CAIRN_EIO);
	CHECK_EQ(store_get_range(st, "snapshots/a", 1, out, 4), 0);
	CHECK(!memcmp(out, "ello", 4));
	CHECK_EQ(m.ranges, 2);
	store_writer *w;
	CHECK_EQ(store_write_begin(st, "packs/p", &w), 0);
	CHECK_EQ(store_write_append(w, "abc", 3), 0);
	CHECK_EQ(store_write_commit(w, 0), CAIRN_EIO);
	uint64_t size;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(store_size(st, "packs/p", &size), CAIRN_ENOTFOUND); /* slow, then through: absent */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 100);
	CHECK_EQ(store_write_begin(st, "packs/p", &w), 0);
	CHECK_EQ(store_write_append(w, "abc", 3), 0);
	CHECK_EQ(store_write_commit(w, 0), 0);
	CHECK_EQ(store_size(st, "packs/p", &size), 0);
	CHECK_EQ(size, 3);
	store_free(st);
	CHECK_EQ(m.frees, 1);

	mem_backend m2 = {.base = {.ops = &mem_ops}};
	CHECK_EQ(store_fault_wrap(&st, &m2.base, "store.teleport:1:EIO"), CAIRN_EUSAGE);
	CHECK(strstr(cairn_error_last(), "store.teleport") != NULL);
	CHECK(cairn_error_last_info()->code == CAIRN_EUSAGE && strcmp(cairn_error_last_info()->klass, "store_fault") == 0);
	CHECK(st == NULL && m2.frees == 1);
}

/* A caller's backend: every call counted, passed to a directory store. */
#define MAXLOG 4096
typedef struct call_log {
	char kind; /* 'a' advise, 'r' ranged read */
	char name[64];
	uint64_t off, len;
} call_log;

typedef struct counting_backend {
	cairn_backend base;
	store *inner;
	unsigned calls, frees;
	pthread_mutex_t mu; /* the log: a restore's workers call at once */
	call_log log[MAXLOG];
	size_t nlog;
	int advise_fails; /* every advise fails, as a backend's own error */
	unsigned directs;        /* direct reads begun (under mu) */
	unsigned direct_fails;   /* this one (from 1) fails, as a backend's own error */
	pthread_cond_t direct_cv; /* signalled as each begins */
} counting_backend;

static void log_call(counting_backend *c, char kind, const char *name, uint64_t off, uint64_t len)
{
	pthread_mutex_lock(&c->mu);
	if (c->nlog < MAXLOG) {
		call_log *l = &c->log[c->nlog++];
		l->kind = kind;
		snprintf(l->name, sizeof(l->name), "%s", name);
		l->off = off;
		l->len = len;
	}
	pthread_mutex_unlock(&c->mu);
}

static counting_backend *cb_of(cairn_backend *b) { return (counting_backend *)b; }
static void cb_free(cairn_backend *b)
{
	cb_of(b)->frees++;
	store_free(cb_of(b)->inner);
}
static int cb_put(cairn_backend *b, const char *n, const void *d, size_t l, unsigned f)
{
	cb_of(b)->calls++;
	return store_put(cb_of(b)->inner, n, d, l, f);
}
static int cb_get(cairn_backend *b, const char *n, size_t max, uint8_t **out, size_t *len)
{
	cb_of(b)->calls++;
	return store_get(cb_of(b)->inner, n, max, out, len);
}
static int cb_range(cairn_backend *b, const char *n, uint64_t off, void *out, size_t len)
{
	cb_of(b)->calls++;
	log_call(cb_of(b), 'r', n, off, len);
	return store_get_range(cb_of(b)->inner, n, off, out, len);
}
/* A read past the local caches (O_DIRECT), as the directory store's. */
static int cb_range_direct(cairn_backend *b, const char *n, uint64_t off, void *out, size_t len)
{
	counting_backend *c = cb_of(b);
	c->calls++;
	log_call(c, 'r', n, off, len);
	pthread_mutex_lock(&c->mu);
	unsigned nth = ++c->directs;
	pthread_cond_broadcast(&c->direct_cv);
	pthread_mutex_unlock(&c->mu);
	if (nth == c->direct_fails) return cairn_error_set(CAIRN_EIO, "%s: direct read %u refused", n, nth);
	store *in = c->inner;
	return in->ops->get_range_direct(in, n, off, out, len);
}
static int cb_advise(cairn_backend *b, const char *n, uint64_t off, size_t len)
{
	log_call(cb_of(b), 'a', n, off, len);
	if (cb_of(b)->advise_fails) return cairn_error_set(CAIRN_EIO, "%s: advise: no", n);
	store_advise(cb_of(b)->inner, n, off, len);
	return 0;
}
static int cb_size(cairn_backend *b, const char *n, uint64_t *size)
{
	cb_of(b)->calls++;
	return store_size(cb_of(b)->inner, n, size);
}
static int cb_list(cairn_backend *b, const char *dir, int (*cb)(const char *, void *), void *payload)
{
	cb_of(b)->calls++;
	return store_list(cb_of(b)->inner, dir, cb, payload);
}
static int cb_del(cairn_backend *b, const char *n)
{
	cb_of(b)->calls++;
	return store_delete(cb_of(b)->inner, n);
}
static int cb_lock(cairn_backend_lock **out, cairn_backend *b, const char *n, uint64_t ttl, uint64_t wait)
{
	cb_of(b)->calls++;
	return store_lock_acquire(out, cb_of(b)->inner, n, ttl, wait);
}

static const cairn_backend_ops counting_ops = {
	.version = CAIRN_BACKEND_OPS_VERSION,
	.kind = "counting",
	.free = cb_free,
	.put = cb_put,
	.get = cb_get,
	.get_range = cb_range,
	.size = cb_size,
	.list = cb_list,
	.del = cb_del,
	.lock_acquire = cb_lock,
	.advise = cb_advise,
	.get_range_direct = cb_range_direct,
};


/* A repository in repo_dir through cb (reset, over a directory store),
 * its calls through ops, with fault injection when fault is set. */
static cairn_repo *counting_open(counting_backend *cb, const cairn_backend_ops *ops, const char *repo_dir,
                                 const char *fault)
{
	memset(cb, 0, sizeof(*cb));
	cb->base.ops = ops;
	pthread_mutex_init(&cb->mu, NULL);
	pthread_cond_init(&cb->direct_cv, NULL);
	CHECK_EQ(store_open(&cb->inner, repo_dir, NULL), 0);
	cairn_repo_open_options oo = CAIRN_REPO_OPEN_OPTIONS_INIT;
	oo.backend = &cb->base;
	oo.fault = fault;
	cairn_repo *r = NULL;
	CHECK_EQ(cairn_repo_open_ext(&r, "counting:test", &oo), 0);
	return r;
}

/* A take of src into r named name; its snapshot id in snap. */
static void take_into(cairn_repo *r, const char *src, const char *name, char *snap, size_t cap)
{
	cairn_take_options to = CAIRN_TAKE_OPTIONS_INIT;
	to.root = src;
	to.name = name;
	cairn_take_result tr = CAIRN_TAKE_RESULT_INIT;
	CHECK_EQ(cairn_take(&tr, r, &to), 0);
	snprintf(snap, cap, "%s", tr.snapshot);
}

static size_t count_kind(counting_backend *c, char kind)
{
	size_t n = 0;
	for (size_t i = 0; i < c->nlog; i++) n += c->log[i].kind == kind;
	return n;
}

/* A read of a pack through the local caches: those of REPO_UNCACHE_MIN
 * or more a restore makes past them (get_range_direct). */
static int cached_read(const call_log *l)
{
	return l->kind == 'r' && !strncmp(l->name, "packs/", 6) && l->len < REPO_UNCACHE_MIN;
}

/* Bytes of packs read through the local caches. */
static uint64_t read_bytes(counting_backend *c)
{
	uint64_t n = 0;
	for (size_t i = 0; i < c->nlog; i++)
		if (cached_read(&c->log[i])) n += c->log[i].len;
	return n;
}

/* The bytes two calls' ranges share (0 for other objects). */
static uint64_t overlap(const call_log *a, const call_log *b)
{
	if (strcmp(a->name, b->name)) return 0;
	uint64_t lo = a->off > b->off ? a->off : b->off;
	uint64_t hi = a->off + a->len < b->off + b->len ? a->off + a->len : b->off + b->len;
	return hi > lo ? hi - lo : 0;
}

/* Of those, the bytes advice named before they were read. */
static uint64_t advised_before(counting_backend *c)
{
	uint64_t n = 0;
	for (size_t i = 0; i < c->nlog; i++) {
		const call_log *rd = &c->log[i];
		if (!cached_read(rd)) continue;
		uint64_t covered = 0;
		for (size_t k = 0; k < i; k++) {
			const call_log *a = &c->log[k];
			if (a->kind == 'a') covered += overlap(a, rd);
		}
		n += covered < rd->len ? covered : rd->len;
	}
	return n;
}

/* The tree of check_read_ahead: a file of many chunks (several runs of a
 * pack) and a directory of small files (several batches). */
#define AHEAD_BIG (20u * 1024u * 1024u)
#define AHEAD_SMALL 1000

static void ahead_tree(const char *src)
{
	char p[256];
	CHECK_EQ(mkdir(src, 0755), 0);
	uint8_t *big = malloc(AHEAD_BIG);
	t_fill(big, AHEAD_BIG);
	snprintf(p, sizeof(p), "%s/big", src);
	t_spit(p, big, AHEAD_BIG);
	free(big);
	snprintf(p, sizeof(p), "%s/small", src);
	CHECK_EQ(mkdir(p, 0755), 0);
	for (int i = 0; i < AHEAD_SMALL; i++) {
		uint8_t d[3000];
		t_fill(d, sizeof(d));
		snprintf(p, sizeof(p), "%s/small/f%03d", src, i);
		t_spit(p, d, sizeof(d) - (size_t)i);
	}
}

/* A restore of snapshot snap from r into dst; 1 when it equals src. */
static int restore_equal(cairn_repo *r, const char *snap, const char *src, const char *dst)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dst);
	if (system(cmd) != 0) return 0;
	cairn_restore_result rr = CAIRN_RESTORE_RESULT_INIT;
	if (cairn_restore(&rr, r, snap, dst, NULL) != 0) {
		fprintf(stderr, "restore: %s\n", cairn_error_last());
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "diff -r %s %s", src, dst);
	return system(cmd) == 0;
}

/* An ops table of version 1 at the very end of readable memory: a read of
 * any member it does not have (advise) faults. */
static cairn_backend_ops *v1_table(void **map, size_t *maplen)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t v1 = offsetof(cairn_backend_ops, advise);
	*maplen = 2 * (size_t)page;
	uint8_t *m = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) return NULL;
	*map = m;
	mprotect(m + page, (size_t)page, PROT_NONE);
	uint8_t *t = m + page - v1;
	memcpy(t, &counting_ops, v1);
	((cairn_backend_ops *)(void *)t)->version = 1;
	return (cairn_backend_ops *)(void *)t;
}

/* A new scratch directory /tmp/test_backend<tag>.PID (dir) and the names
 * of its src, dst and repo below it. */
typedef struct scratch_dirs {
	char dir[128], src[160], dst[160], repo[160];
} scratch_dirs;

static void scratch_make(scratch_dirs *s, const char *tag)
{
	snprintf(s->dir, sizeof(s->dir), "/tmp/test_backend%s.%d", tag, (int)getpid());
	snprintf(s->src, sizeof(s->src), "%s/src", s->dir);
	snprintf(s->dst, sizeof(s->dst), "%s/dst", s->dir);
	snprintf(s->repo, sizeof(s->repo), "%s/repo", s->dir);
	CHECK_EQ(mkdir(s->dir, 0700), 0);
}

static void check_read_ahead(void)
{
	scratch_dirs sd;
	scratch_make(&sd, "_ahead");
	const char *dir = sd.dir, *src = sd.src, *dst = sd.dst, *repo_dir = sd.repo;
	char cmd[400];
	ahead_tree(src);
	CHECK_EQ(cairn_repo_init(repo_dir, NULL), 0);

	static counting_backend cb;
	cairn_repo *r = counting_open(&cb, &counting_ops, repo_dir, NULL);
	char snap[80];
	take_into(r, src, "read-ahead", snap, sizeof(snap));

	/* a restore advises what it then reads, in coalesced ranges */
	cb.nlog = 0;
	CHECK(restore_equal(r, snap, src, dst));
	size_t advised = count_kind(&cb, 'a');
	CHECK(advised >= 2);
	for (size_t i = 0; i < cb.nlog; i++) {
		const call_log *a = &cb.log[i];
		if (a->kind != 'a') continue;
		uint64_t size = 0;
		CHECK_EQ(store_size(cb.inner, a->name, &size), 0);
		CHECK(strncmp(a->name, "packs/", 6) == 0 && a->len > 0 && a->off + a->len <= size);
		CHECK(a->len <= REPO_TREE_RUN);
	}
	/* most bytes read from packs through the page cache were advised
	 * before they were read: all but a file's or a batch's first run,
	 * when no job came before it; none that are read past it (but a
	 * neighbouring range's gap) */
	CHECK(advised_before(&cb) * 2 > read_bytes(&cb));
	for (size_t i = 0; i < cb.nlog; i++) {
		const call_log *rd = &cb.log[i];
		if (rd->kind != 'r' || strncmp(rd->name, "packs/", 6) || rd->len < REPO_UNCACHE_MIN) continue;
		for (size_t k = 0; k < cb.nlog; k++)
			if (cb.log[k].kind == 'a' && !strcmp(cb.log[k].name, rd->name))
				CHECK(overlap(&cb.log[k], rd) <= REPO_TREE_GAP);
	}
	cairn_repo_free(r);

	/* without direct reads (a remote store: every read a ranged read into
	 * memory) the large runs are advised too */
	cairn_backend_ops nodirect = counting_ops;
	nodirect.get_range_direct = NULL;
	r = counting_open(&cb, &nodirect, repo_dir, NULL);
	CHECK(restore_equal(r, snap, src, dst));
	size_t large = 0, large_advised = 0;
	for (size_t i = 0; i < cb.nlog; i++) {
		const call_log *rd = &cb.log[i];
		if (rd->kind != 'r' || strncmp(rd->name, "packs/", 6) || rd->len < REPO_UNCACHE_MIN) continue;
		large++;
		for (size_t k = 0; k < i; k++)
			if (cb.log[k].kind == 'a' && overlap(&cb.log[k], rd) > REPO_TREE_GAP) {
				large_advised++;
				break;
			}
	}
	CHECK(large > 0);
	CHECK(large_advised * 2 > large);
	cairn_repo_free(r);

	/* advice that fails, from the backend or injected, fails no read */
	r = counting_open(&cb, &counting_ops, repo_dir, NULL);
	cb.advise_fails = 1;
	CHECK(restore_equal(r, snap, src, dst));
	CHECK(count_kind(&cb, 'a') >= 1);
	cairn_repo_free(r);
	r = counting_open(&cb, &counting_ops, repo_dir, "store.advise:1:CORRUPT");
	CHECK(restore_equal(r, snap, src, dst));
	/* the failed one never reached the backend; the others did */
	CHECK(count_kind(&cb, 'a') >= 1);
	cairn_repo_free(r);

	/* a version 1 table: no advice, and nothing read past its end */
	void *map = NULL;
	size_t maplen = 0;
	cairn_backend_ops *old = v1_table(&map, &maplen);
	CHECK(old != NULL);
	if (old) {
		r = counting_open(&cb, old, repo_dir, NULL);
		CHECK(restore_equal(r, snap, src, dst));
		CHECK_EQ(count_kind(&cb, 'a'), 0);
		CHECK(count_kind(&cb, 'r') > 0);
		cairn_repo_free(r);
		munmap(map, maplen);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
}

static void check_callers_backend(void)
{
	scratch_dirs sd;
	scratch_make(&sd, "");
	const char *dir = sd.dir, *src = sd.src, *dst = sd.dst, *repo_dir = sd.repo;
	char cmd[400];
	CHECK_EQ(mkdir(src, 0755), 0);
	char f[200];
	snprintf(f, sizeof(f), "%s/file", src);
	uint8_t data[100000];
	t_fill(data, sizeof(data));
	t_spit(f, data, sizeof(data));
	CHECK_EQ(cairn_repo_init(repo_dir, NULL), 0);

	counting_backend cb = {.base = {.ops = &counting_ops}};
	CHECK_EQ(store_open(&cb.inner, repo_dir, NULL), 0);
	cairn_repo_open_options oo = CAIRN_REPO_OPEN_OPTIONS_INIT;
	oo.backend = &cb.base;
	cairn_repo *r = NULL;
	CHECK_EQ(cairn_repo_open_ext(&r, "counting:test", &oo), 0);
	char snap[80];
	take_into(r, src, "through-a-callers-backend", snap, sizeof(snap));
	cairn_restore_result rr = CAIRN_RESTORE_RESULT_INIT;
	CHECK_EQ(cairn_restore(&rr, r, snap, dst, NULL), 0);
	snprintf(f, sizeof(f), "%s/file", dst);
	size_t len = 0;
	uint8_t *back = t_slurp(f, &len);
	CHECK(back && len == sizeof(data) && !memcmp(back, data, len));
	free(back);
	CHECK(cb.calls > 5);
	cairn_repo_free(r);
	CHECK_EQ(cb.frees, 1);

	/* a backend of a newer interface than the library's is refused, and freed */
	counting_backend bad = {.base = {.ops = NULL}};
	static cairn_backend_ops future;
	future = counting_ops;
	future.version = CAIRN_BACKEND_OPS_VERSION + 1;
	bad.base.ops = &future;
	CHECK_EQ(store_open(&bad.inner, repo_dir, NULL), 0);
	oo.backend = &bad.base;
	CHECK_EQ(cairn_repo_open_ext(&r, "counting:future", &oo), CAIRN_EUSAGE);
	CHECK(r == NULL && bad.frees == 1);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
}

/* What check_reads_in_flight's reader saw. */
typedef struct flight {
	counting_backend *c;
	const uint64_t *at; /* each chunk's offset in the file */
	const uint8_t *want;
	unsigned directs_at_first; /* direct reads begun when the first chunk came */
	size_t seen, wrong;
} flight;

/* The first chunk waits (up to 2 s) for a second direct read to begin: the
 * next range in flight begins before the first one's chunks are handed
 * over; without it, only after. */
static int flight_chunk(void *payload, size_t slot, const uint8_t *plain, size_t len, const char *what)
{
	flight *f = payload;
	(void)what;
	if (f->seen++ == 0) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 2;
		pthread_mutex_lock(&f->c->mu);
		while (f->c->directs < 2 &&
		       pthread_cond_timedwait(&f->c->direct_cv, &f->c->mu, &until) == 0) {}
		f->directs_at_first = f->c->directs;
		pthread_mutex_unlock(&f->c->mu);
	}
	if (memcmp(plain, f->want + f->at[slot], len)) f->wrong++;
	return 0;
}

/* A large file's runs read past the caches (REPO_READ_UNCACHED, in pack
 * order: 8 MiB runs) with repo_read_blobs_ahead: the next run is read
 * while the chunks of the one before are handed over, the bytes exact; a
 * failure of the read in flight is the caller's error, with its message. */
static void check_reads_in_flight(void)
{
	scratch_dirs sd;
	scratch_make(&sd, "_flight");
	char cmd[400], p[300];
	CHECK_EQ(mkdir(sd.src, 0755), 0);
	uint8_t *big = malloc(AHEAD_BIG);
	t_fill(big, AHEAD_BIG);
	snprintf(p, sizeof(p), "%s/big", sd.src);
	t_spit(p, big, AHEAD_BIG);
	CHECK_EQ(cairn_repo_init(sd.repo, NULL), 0);
	static counting_backend cb;
	cairn_repo *r = counting_open(&cb, &counting_ops, sd.repo, NULL);
	char snap[80];
	take_into(r, sd.src, "in-flight", snap, sizeof(snap));

	snapshot_manifest m;
	tree top = {0}, root = {0};
	CHECK_EQ(repo_load_snapshot(r, snap, &m), 0);
	CHECK_EQ(repo_load_tree(r, &m.tree, &top), 0);
	CHECK_EQ(repo_load_tree(r, &top.entries[0].subtree, &root), 0);
	const tree_entry *e = tree_find(&root, "big", 3);
	CHECK(e != NULL && e->nchunks > 8);
	oid *ids = malloc(e->nchunks * sizeof(*ids));
	uint64_t *at = malloc(e->nchunks * sizeof(*at));
	uint64_t off = 0;
	for (uint32_t i = 0; i < e->nchunks; i++) {
		ids[i] = e->chunks[i].id;
		at[i] = off;
		off += e->chunks[i].size;
	}
	buf scratch, ahead;
	buf_init(&scratch);
	buf_init(&ahead);

	cb.directs = 0;
	flight f = {&cb, at, big, 0, 0, 0};
	CHECK_EQ(repo_read_blobs_ahead(r, ids, e->nchunks, BLOB_DATA, REPO_READ_UNCACHED, &scratch, &ahead,
	                               NULL, flight_chunk, &f),
	         0);
	CHECK_EQ(f.seen, e->nchunks);
	CHECK_EQ(f.wrong, 0);
	CHECK(cb.directs >= 3); /* 20 MiB in runs of at most 8 */
	CHECK_EQ(f.directs_at_first, 2);

	/* in the file's order (as a restore reads it): a take's workers append
	 * the chunks a little out of order; windows of them are read as one
	 * range each, every byte once, not a short range per stretch in order */
	cb.nlog = 0;
	flight h = {&cb, at, NULL, 0, 0, 0};
	h.want = big;
	CHECK_EQ(repo_read_blobs_ahead(r, ids, e->nchunks, BLOB_DATA, REPO_READ_UNCACHED | REPO_READ_IN_ORDER,
	                               &scratch, &ahead, NULL, flight_chunk, &h),
	         0);
	CHECK_EQ(h.wrong, 0);
	size_t reads = 0;
	uint64_t bytes = 0;
	for (size_t i = 0; i < cb.nlog; i++)
		if (cb.log[i].kind == 'r' && !strncmp(cb.log[i].name, "packs/", 6)) {
			reads++;
			bytes += cb.log[i].len;
		}
	CHECK(reads <= AHEAD_BIG / REPO_TREE_RUN + 2);
	CHECK(bytes < AHEAD_BIG + AHEAD_BIG / 16);

	/* the read in flight (the second) fails: its error, named */
	cb.directs = 0;
	cb.direct_fails = 2;
	flight g = {&cb, at, big, 0, 0, 0};
	int rc = repo_read_blobs_ahead(r, ids, e->nchunks, BLOB_DATA, REPO_READ_UNCACHED, &scratch, &ahead,
	                               NULL, flight_chunk, &g);
	CHECK_EQ(rc, CAIRN_EIO);
	CHECK(strstr(cairn_error_last(), "direct read 2 refused") != NULL);
	CHECK(strstr(cairn_error_last(), "chunk ") != NULL && strstr(cairn_error_last(), " in packs/") != NULL);
	CHECK_EQ(g.wrong, 0);
	cb.direct_fails = 0;

	buf_free(&scratch);
	buf_free(&ahead);
	free(ids);
	free(at);
	free(big);
	tree_free(&root);
	tree_free(&top);
	snapshot_manifest_free(&m);
	cairn_repo_free(r);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", sd.dir);
	CHECK_EQ(system(cmd), 0);
}

int main(void)
{
	t_seed();
	check_readcache();
	check_faults();
	check_callers_backend();
	check_read_ahead();
	check_reads_in_flight();
	return t_done();
}
