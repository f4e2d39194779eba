/* The storage interface's contract on any backend: a fresh repository
 * address from CAIRN_TEST_STORE, or built from CAIRN_TEST_BACKEND
 * (rados: $CAIRN_TEST_POOL, s3: $CAIRN_TEST_BUCKET) with a unique prefix;
 * a temporary directory otherwise. What test_store.c checks of the
 * directory backend's insides (tmp files, fault injection) stays there. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cairn.h"
#include "store.h"
#include "store_env.h"
#include "store_fault.h"
#include "t.h"

static char address[600];

struct names {
	char *v[64];
	int n, other;
};

static int collect_cb(const char *name, void *payload)
{
	struct names *ns = payload;
	if (ns->n < 64) ns->v[ns->n++] = strdup(name);
	else ns->other++;
	return 0;
}

static int has(const struct names *ns, const char *name)
{
	for (int i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0) return 1;
	return 0;
}

static void names_free(struct names *ns)
{
	for (int i = 0; i < ns->n; i++) free(ns->v[i]);
	ns->n = 0;
}

static int stop_cb(const char *name, void *payload)
{
	(void)name;
	(*(int *)payload)++;
	return 42;
}

/* Racers: several threads (each with its own store handle, as separate
 * hosts would have) create one commit point; exactly one wins. */
struct racer {
	const char *name;
	int rc;
	uint8_t tag;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	store *s;
	r->rc = env_store(&s, address, 0);
	if (r->rc < 0) return NULL;
	r->rc = store_put(s, r->name, &r->tag, 1, STORE_EXCL);
	store_free(s);
	return NULL;
}

static int cleanup_cb(const char *name, void *payload)
{
	store_delete(payload, name);
	return 0;
}

int main(void)
{
	uint64_t seed = t_seed();
	const char *given = getenv("CAIRN_TEST_STORE"), *backend = getenv("CAIRN_TEST_BACKEND");
	char dir[] = "/tmp/cairn-test-store-any-XXXXXX";
	int is_dir = 0;
	if (given && *given) {
		snprintf(address, sizeof(address), "%s", given);
	} else if (backend && strcmp(backend, "rados") == 0 && getenv("CAIRN_TEST_POOL")) {
		snprintf(address, sizeof(address), "rados:%s/unit-%llx", getenv("CAIRN_TEST_POOL"),
		         (unsigned long long)seed ^ (unsigned long long)getpid());
	} else if (backend && strcmp(backend, "s3") == 0 && getenv("CAIRN_TEST_BUCKET")) {
		snprintf(address, sizeof(address), "s3://%s/unit-%llx", getenv("CAIRN_TEST_BUCKET"),
		         (unsigned long long)seed ^ (unsigned long long)getpid());
	} else if (backend && strcmp(backend, "dir") != 0) {
		printf("SKIP: CAIRN_TEST_BACKEND=%s without its cluster (CAIRN_TEST_POOL, CAIRN_TEST_BUCKET)\n",
		       backend);
		return 77;
	} else {
		CHECK(mkdtemp(dir) != NULL);
		snprintf(address, sizeof(address), "%s/repo", dir);
		is_dir = 1;
	}
	printf("store address: %s\n", address);

	store *st = NULL, *other = NULL;
	int rc = env_store(&st, address, 1);
	CHECK_EQ(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "store_create %s: %s\n", address, cairn_error_last());
		return t_done();
	}
	printf("backend: %s\n", store_kind(st));

	size_t len = 100000 + (size_t)(t_rand() % 100000);
	uint8_t *data = malloc(len), *back = NULL, range[100];
	t_fill(data, len);
	size_t got;
	uint64_t size;

	/* put, create-only, get with its bound, missing objects */
	CHECK_EQ(store_put(st, "packs/ab/obj1", data, len, STORE_EXCL), 0);
	CHECK_EQ(store_put(st, "packs/ab/obj1", data, 10, STORE_EXCL), CAIRN_EEXISTS);
	CHECK(strstr(cairn_error_last(), "packs/ab/obj1") != NULL);
	CHECK_EQ(store_get(st, "packs/ab/obj1", len, &back, &got), 0);
	CHECK(got == len && back && memcmp(back, data, len) == 0);
	free(back);
	back = NULL;
	CHECK_EQ(store_get(st, "packs/ab/obj1", len - 1, &back, &got), CAIRN_ECORRUPT);
	CHECK_EQ(store_get(st, "packs/ab/missing", len, &back, &got), CAIRN_ENOTFOUND);
	CHECK(strstr(cairn_error_last(), "packs/ab/missing") != NULL);
	CHECK_EQ(store_size(st, "packs/ab/missing", &size), CAIRN_ENOTFOUND);
	CHECK(store_size(st, "packs/ab/obj1", &size) == 0 && size == len);

	/* ranges: exact, short, missing */
	size_t off = (size_t)(t_rand() % (len - sizeof(range)));
	CHECK_EQ(store_get_range(st, "packs/ab/obj1", off, range, sizeof(range)), 0);
	CHECK(memcmp(range, data + off, sizeof(range)) == 0);
	CHECK_EQ(store_get_range(st, "packs/ab/obj1", len - 10, range, sizeof(range)), CAIRN_ECORRUPT);
	CHECK_EQ(store_get_range(st, "packs/ab/none", 0, range, 1), CAIRN_ECORRUPT);

	/* replace whole without EXCL; an empty object is an object */
	CHECK_EQ(store_put(st, "snapshots/x", data, 50, 0), 0);
	CHECK_EQ(store_put(st, "snapshots/x", data + 1, 40, 0), 0);
	CHECK_EQ(store_get(st, "snapshots/x", 1000, &back, &got), 0);
	CHECK(got == 40 && back && memcmp(back, data + 1, 40) == 0);
	free(back);
	back = NULL;
	CHECK_EQ(store_put(st, "snapshots/empty", "", 0, STORE_EXCL), 0);
	CHECK(store_size(st, "snapshots/empty", &size) == 0 && size == 0);
	CHECK_EQ(store_get(st, "snapshots/empty", 10, &back, &got), 0);
	CHECK_EQ(got, 0);
	free(back);
	back = NULL;

	/* list: recursive, full names, only under the folder; a callback stops it */
	CHECK_EQ(store_put(st, "packs/cd/obj2", data, 10, 0), 0);
	CHECK_EQ(store_put(st, "packsX/obj3", data, 10, 0), 0);
	struct names ns = {0};
	CHECK_EQ(store_list(st, "packs", collect_cb, &ns), 0);
	CHECK_EQ(ns.n, 2);
	CHECK(has(&ns, "packs/ab/obj1") && has(&ns, "packs/cd/obj2"));
	names_free(&ns);
	CHECK_EQ(store_list(st, "nothing-here", collect_cb, &ns), 0);
	CHECK_EQ(ns.n, 0);
	int calls = 0;
	CHECK_EQ(store_list(st, "packs", stop_cb, &calls), 42);
	CHECK_EQ(calls, 1);

	/* a second repository beside it (another prefix, or directory) sees none of it */
	char address2[700];
	snprintf(address2, sizeof(address2), "%s-other", address);
	CHECK_EQ(env_store(&other, address2, 1), 0);
	if (other) {
		CHECK_EQ(store_list(other, "packs", collect_cb, &ns), 0);
		CHECK_EQ(ns.n, 0);
		CHECK_EQ(store_size(other, "packs/ab/obj1", &size), CAIRN_ENOTFOUND);
		CHECK_EQ(store_put(other, "packs/ab/obj1", data, 5, STORE_EXCL), 0);
		CHECK(store_size(st, "packs/ab/obj1", &size) == 0 && size == len);
		CHECK_EQ(store_delete(other, "packs/ab/obj1"), 0);
	}

	/* delete */
	CHECK_EQ(store_delete(st, "packs/ab/obj1"), 0);
	CHECK_EQ(store_delete(st, "packs/ab/obj1"), CAIRN_ENOTFOUND);
	CHECK_EQ(store_size(st, "packs/ab/obj1", &size), CAIRN_ENOTFOUND);

	/* exactly one of several racing creators wins a commit point */
	{
		enum { N = 6 };
		pthread_t th[N];
		struct racer r[N];
		for (int i = 0; i < N; i++) {
			r[i] = (struct racer){"snapshots/raced", 0, (uint8_t)i};
			CHECK(pthread_create(&th[i], NULL, race, &r[i]) == 0);
		}
		int won = -1, wins = 0, lost = 0;
		for (int i = 0; i < N; i++) {
			pthread_join(th[i], NULL);
			if (r[i].rc == 0) {
				wins++;
				won = i;
			} else if (r[i].rc == CAIRN_EEXISTS) {
				lost++;
			}
		}
		CHECK_EQ(wins, 1);
		CHECK_EQ(lost, N - 1);
		CHECK_EQ(store_get(st, "snapshots/raced", 10, &back, &got), 0);
		CHECK(got == 1 && back && won >= 0 && back[0] == (uint8_t)won);
		free(back);
		back = NULL;
	}

	/* streamed writes (a pack's size too): invisible until commit, whole
	 * after it; EXCL; abort leaves nothing */
	size_t sizes[] = {1 + (size_t)(t_rand() % 5000), (20u << 20) + (size_t)(t_rand() % 4096)};
	for (int k = 0; k < 2; k++) {
		size_t big = sizes[k];
		uint8_t *src = malloc(big);
		t_fill(src, big);
		store_writer *w = NULL;
		CHECK_EQ(store_write_begin(st, "packs/ef/streamed", &w), 0);
		for (size_t o = 0; o < big;) {
			size_t step = 1 + (size_t)(t_rand() % (3u << 20));
			if (step > big - o) step = big - o;
			CHECK_EQ(store_write_append(w, src + o, step), 0);
			o += step;
			CHECK_EQ(store_size(st, "packs/ef/streamed", &size), CAIRN_ENOTFOUND);
		}
		CHECK_EQ(store_write_commit(w, STORE_EXCL), 0);
		CHECK_EQ(store_get(st, "packs/ef/streamed", big, &back, &got), 0);
		CHECK(got == big && back && memcmp(back, src, big) == 0);
		free(back);
		back = NULL;
		/* EXCL on an existing name, small and large: the object stays as it was */
		CHECK_EQ(store_write_begin(st, "packs/ef/streamed", &w), 0);
		CHECK_EQ(store_write_append(w, src, k == 0 ? 10 : big), 0);
		CHECK_EQ(store_write_commit(w, STORE_EXCL), CAIRN_EEXISTS);
		CHECK(store_size(st, "packs/ef/streamed", &size) == 0 && size == big);
		/* without EXCL it replaces */
		CHECK_EQ(store_write_begin(st, "packs/ef/streamed", &w), 0);
		CHECK_EQ(store_write_append(w, src + 1, big - 1), 0);
		CHECK_EQ(store_write_commit(w, 0), 0);
		CHECK(store_size(st, "packs/ef/streamed", &size) == 0 && size == big - 1);
		CHECK_EQ(store_delete(st, "packs/ef/streamed"), 0);
		/* abort, after some or all of it was sent */
		CHECK_EQ(store_write_begin(st, "packs/ef/aborted", &w), 0);
		CHECK_EQ(store_write_append(w, src, big), 0);
		store_write_abort(w);
		CHECK_EQ(store_size(st, "packs/ef/aborted", &size), CAIRN_ENOTFOUND);
		/* a put larger than one RADOS op goes in pieces: still whole, still EXCL */
		if (k == 1) {
			size_t huge = (70u << 20) + (size_t)(t_rand() % 4096);
			uint8_t *h = malloc(huge);
			t_fill(h, huge);
			CHECK_EQ(store_put(st, "packs/ef/huge", h, huge, STORE_EXCL), 0);
			CHECK_EQ(store_put(st, "packs/ef/huge", h, huge, STORE_EXCL), CAIRN_EEXISTS);
			CHECK_EQ(store_get(st, "packs/ef/huge", huge, &back, &got), 0);
			CHECK(got == huge && back && memcmp(back, h, huge) == 0);
			free(back);
			back = NULL;
			CHECK_EQ(store_get_range(st, "packs/ef/huge", huge - 100, range, 100), 0);
			CHECK(memcmp(range, h + huge - 100, 100) == 0);
			CHECK_EQ(store_delete(st, "packs/ef/huge"), 0);
			free(h);
		}
		store_write_abort(NULL);
		free(src);
	}

	/* locks: exclusive between handles, bounded wait naming the lock, refresh,
	 * release never removes a lock someone else took over */
	store_lock *a = NULL, *b = NULL;
	store *st2 = NULL;
	CHECK_EQ(env_store(&st2, address, 0), 0);
	CHECK_EQ(store_lock_acquire(&a, st, "user-alice", 60000, 0), 0);
	CHECK_EQ(store_lock_acquire(&b, st2, "user-alice", 60000, 100), CAIRN_EBUSY);
	CHECK(strstr(cairn_error_last(), "user-alice") != NULL);
	CHECK_EQ(store_lock_acquire(&b, st, "user-alice", 60000, 0), CAIRN_EBUSY); /* same handle too */
	CHECK_EQ(store_lock_acquire(&b, st2, "user-bob", 60000, 0), 0);
	CHECK_EQ(store_lock_refresh(a), 0);
	store_lock_release(a);
	store_lock_release(b);
	store_lock_release(NULL);
	CHECK_EQ(store_lock_acquire(&b, st2, "user-alice", 60000, 0), 0); /* released: free again */
	store_lock_release(b);
	/* expiry: a lock not refreshed is taken over, and its old holder lost it.
	 * RADOS lock durations have a one second granularity: ttl 1000 ms. */
	CHECK_EQ(store_lock_acquire(&a, st, "user-alice", 1000, 0), 0);
	CHECK_EQ(store_lock_acquire(&b, st2, "user-alice", 60000, 200), CAIRN_EBUSY);
	CHECK_EQ(store_lock_acquire(&b, st2, "user-alice", 60000, 5000), 0);
	CHECK_EQ(store_lock_refresh(a), CAIRN_EBUSY);
	store_lock_release(a); /* must not remove b's lock */
	CHECK_EQ(store_lock_acquire(&a, st, "user-alice", 60000, 50), CAIRN_EBUSY);
	CHECK_EQ(store_lock_refresh(b), 0);
	store_lock_release(b);
	/* a holder process that died on this host is taken over at once */
	pid_t pid = fork();
	if (pid == 0) {
		store *cs;
		store_lock *dead;
		if (env_store(&cs, address, 0) < 0) _exit(2);
		_exit(store_lock_acquire(&dead, cs, "gc", 3600 * 1000, 0) == 0 ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(store_lock_acquire(&a, st, "gc", 60000, 0), 0);
	store_lock_release(a);

	/* faults injected over this backend (store_fault.h): the Nth op fails
	 * before reaching it and names the object; a failed streamed commit
	 * leaves no object; the calls around it work */
	{
		store *inner = NULL, *fs = NULL;
		CHECK_EQ(env_store(&inner, address, 0), 0);
		CHECK_EQ(store_fault_wrap(&fs, inner, "store.put:2:EIO,store.range:1:CORRUPT,store.commit:1:EIO"), 0);
		if (fs) {
			CHECK_EQ(store_put(fs, "packs/fa/one", data, 100, STORE_EXCL), 0);
			CHECK_EQ(store_put(fs, "packs/fa/two", data, 100, STORE_EXCL), CAIRN_EIO);
			CHECK(strstr(cairn_error_last(), "packs/fa/two") && strstr(cairn_error_last(), store_kind(st)));
			CHECK_EQ(store_size(st, "packs/fa/two", &size), CAIRN_ENOTFOUND);
			CHECK_EQ(store_get_range(fs, "packs/fa/one", 0, range, 10), CAIRN_ECORRUPT);
			CHECK_EQ(store_get_range(fs, "packs/fa/one", 0, range, 10), 0);
			CHECK(!memcmp(range, data, 10));
			store_writer *fw = NULL;
			CHECK_EQ(store_write_begin(fs, "packs/fa/three", &fw), 0);
			if (fw) {
				CHECK_EQ(store_write_append(fw, data, 1000), 0);
				CHECK_EQ(store_write_commit(fw, 0), CAIRN_EIO);
			}
			CHECK_EQ(store_size(st, "packs/fa/three", &size), CAIRN_ENOTFOUND);
			CHECK_EQ(store_delete(fs, "packs/fa/one"), 0);
			store_free(fs);
		}
	}

	/* leave nothing behind */
	if (other) {
		store_list(other, "locks", cleanup_cb, other);
		store_free(other);
	}
	const char *tops[] = {"packs", "packsX", "snapshots", "locks", "index", "tmp"};
	for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) store_list(st, tops[i], cleanup_cb, st);
	store_free(st2);
	store_free(st);
	free(data);
	if (is_dir) {
		char cmd[700];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		CHECK(system(cmd) == 0);
	}
	return t_done();
}
