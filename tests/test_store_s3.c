/* What only the S3 backend has, against a real S3 server (radosgw in CI):
 * errors naming the backend (unreachable, keys refused, bucket missing),
 * bounded retries, listings longer than one page, a stale lock taken over
 * by exactly one of several processes, and aborted multipart uploads that
 * leave no upload behind. test_store_any.c checks the common contract.
 * Skips (77) unless CAIRN_TEST_BACKEND=s3 with CAIRN_TEST_BUCKET,
 * CAIRN_S3_ENDPOINT and the keys set. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "store.h"
#include "store_env.h"
#include "t.h"

static char address[600];

static uint64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Open with one variable of the environment changed for the call. */
static int open_with(const char *var, const char *value, const char *addr)
{
	char *old = getenv(var) ? strdup(getenv(var)) : NULL;
	setenv(var, value, 1);
	store *st = NULL;
	int rc = env_store(&st, addr, 0);
	store_free(st);
	if (old) setenv(var, old, 1);
	else unsetenv(var);
	free(old);
	return rc;
}

struct filler {
	store *st;
	int from, to, rc;
};

static void *fill(void *arg)
{
	struct filler *f = arg;
	for (int i = f->from; i < f->to && f->rc == 0; i++) {
		char name[64];
		snprintf(name, sizeof(name), "index/seg-%05d", i);
		f->rc = store_put(f->st, name, name, strlen(name), STORE_EXCL);
	}
	return NULL;
}

struct seen {
	unsigned char *hit;
	int n, bad, dup;
};

static int seen_cb(const char *name, void *payload)
{
	struct seen *s = payload;
	int i;
	if (sscanf(name, "index/seg-%05d", &i) != 1 || i < 0 || i >= s->n) {
		s->bad++;
		return 0;
	}
	if (s->hit[i]++) s->dup++;
	return 0;
}

static int del_cb(const char *name, void *payload)
{
	store_delete(payload, name);
	return 0;
}

/* Incomplete multipart uploads under our prefix, through the curl CLI. */
static int uploads_left(const char *prefix)
{
	char cmd[1500];
	snprintf(cmd, sizeof(cmd),
	         "curl -sf --aws-sigv4 aws:amz:%s:s3 --user \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\" "
	         "-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \"$CAIRN_S3_ENDPOINT/%s?prefix=%s%%2F&uploads=\" "
	         "| grep -o '<Upload>' | wc -l",
	         getenv("AWS_REGION") ? getenv("AWS_REGION") : "us-east-1", getenv("CAIRN_TEST_BUCKET"), prefix);
	FILE *p = popen(cmd, "r");
	int n = -1;
	if (p) {
		if (fscanf(p, "%d", &n) != 1) n = -1;
		pclose(p);
	}
	return n;
}

int main(void)
{
	const char *backend = getenv("CAIRN_TEST_BACKEND"), *bucket = getenv("CAIRN_TEST_BUCKET");
	if (!backend || strcmp(backend, "s3") != 0 || !bucket || !getenv("CAIRN_S3_ENDPOINT")) {
		printf("SKIP: set CAIRN_TEST_BACKEND=s3, CAIRN_TEST_BUCKET, CAIRN_S3_ENDPOINT and keys\n");
		return 77;
	}
	uint64_t seed = t_seed();
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "s3unit-%llx", (unsigned long long)(seed ^ (uint64_t)getpid()));
	snprintf(address, sizeof(address), "s3://%s/%s", bucket, prefix);
	printf("store address: %s\n", address);

	/* errors name the backend and say what is wrong; retries are bounded */
	setenv("CAIRN_S3_TRIES", "3", 1);
	uint64_t t0 = ms_now();
	CHECK_EQ(open_with("CAIRN_S3_ENDPOINT", "http://127.0.0.1:9", address), CAIRN_EIO);
	CHECK(strstr(cairn_error_last(), "s3://") && strstr(cairn_error_last(), "cannot reach"));
	CHECK(strstr(cairn_error_last(), "after 3 tries") != NULL);
	CHECK(ms_now() - t0 < 5000); /* 3 tries: two backoffs of 0.1 and 0.2 s (+jitter) */

	/* a server that accepts the connection and never answers: the stall
	 * bound ends each try, and the message says so rather than "cannot reach" */
	int silent = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t salen = sizeof(sa);
	CHECK(silent >= 0 && bind(silent, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(silent, 8) == 0 &&
	      getsockname(silent, (struct sockaddr *)&sa, &salen) == 0);
	char silent_ep[64];
	snprintf(silent_ep, sizeof(silent_ep), "http://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	setenv("CAIRN_S3_TRIES", "2", 1);
	setenv("CAIRN_S3_STALL_S", "1", 1);
	t0 = ms_now();
	CHECK_EQ(open_with("CAIRN_S3_ENDPOINT", silent_ep, address), CAIRN_EIO);
	printf("stalled server: %s (%llu ms)\n", cairn_error_last(), (unsigned long long)(ms_now() - t0));
	CHECK(strstr(cairn_error_last(), "stopped answering") && strstr(cairn_error_last(), "after 2 tries"));
	CHECK(ms_now() - t0 < 8000); /* two tries of ~1 s each, and a backoff */
	unsetenv("CAIRN_S3_STALL_S");
	close(silent);
	unsetenv("CAIRN_S3_TRIES");
	CHECK_EQ(open_with("AWS_SECRET_ACCESS_KEY", "not-the-secret", address), CAIRN_EIO);
	CHECK(strstr(cairn_error_last(), "access refused") != NULL);
	CHECK_EQ(open_with("CAIRN_S3_TRIES", "0", address), CAIRN_EUSAGE);
	store *st = NULL;
	char nob[700];
	snprintf(nob, sizeof(nob), "s3://no-such-bucket-%llx/x", (unsigned long long)seed);
	CHECK_EQ(env_store(&st, nob, 0), CAIRN_ENOTFOUND);
	CHECK(strstr(cairn_error_last(), "no-such-bucket") && strstr(cairn_error_last(), "does not exist"));
	CHECK_EQ(env_store(&st, "s3://", 0), CAIRN_EUSAGE);
	CHECK_EQ(env_store(&st, "s3://bad/bucket//x", 0), CAIRN_EUSAGE);
	CHECK_EQ(env_store(&st, "s3://b%d", 0), CAIRN_EUSAGE);

	CHECK_EQ(env_store(&st, address, 1), 0);
	if (!st) return t_done();

	/* a listing longer than one page (1000 keys) */
	enum { NOBJ = 1000 + 137, NTH = 8 };
	pthread_t th[NTH];
	struct filler f[NTH];
	for (int i = 0; i < NTH; i++) {
		f[i] = (struct filler){st, NOBJ * i / NTH, NOBJ * (i + 1) / NTH, 0};
		CHECK(pthread_create(&th[i], NULL, fill, &f[i]) == 0);
	}
	for (int i = 0; i < NTH; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(f[i].rc, 0);
	}
	struct seen s = {calloc(NOBJ, 1), NOBJ, 0, 0};
	CHECK_EQ(store_list(st, "index", seen_cb, &s), 0);
	int all = 1;
	for (int i = 0; i < NOBJ; i++) all &= s.hit[i] == 1;
	CHECK(all);
	CHECK_EQ(s.bad, 0);
	CHECK_EQ(s.dup, 0);
	free(s.hit);
	CHECK_EQ(store_list(st, "index", del_cb, st), 0);

	/* a stale lock: of several processes, exactly one takes it over */
	store_lock *stale = NULL, *mine = NULL;
	CHECK_EQ(store_lock_acquire(&stale, st, "gc", 1, 0), 0);
	usleep(20 * 1000);
	enum { NPROC = 6 };
	pid_t pids[NPROC];
	int res[2], hold[2];
	CHECK(pipe(res) == 0 && pipe(hold) == 0);
	for (int i = 0; i < NPROC; i++) {
		if ((pids[i] = fork()) == 0) {
			/* report, then stay alive (holding what we won) until told */
			store *cs;
			store_lock *l;
			char r = '3', c;
			close(res[0]);
			close(hold[1]);
			if (env_store(&cs, address, 0) == 0) {
				int rc = store_lock_acquire(&l, cs, "gc", 60000, 0);
				r = rc == 0 ? '0' : rc == CAIRN_EBUSY ? '1' : '3';
			}
			if (write(res[1], &r, 1) != 1) _exit(4);
			if (read(hold[0], &c, 1) < 0) _exit(4);
			_exit(0);
		}
	}
	close(res[1]);
	close(hold[0]);
	int won = 0, busy = 0;
	for (int i = 0; i < NPROC; i++) {
		char r = 0;
		if (read(res[0], &r, 1) != 1) break;
		won += r == '0';
		busy += r == '1';
	}
	close(hold[1]);
	close(res[0]);
	for (int i = 0; i < NPROC; i++) waitpid(pids[i], NULL, 0);
	CHECK_EQ(won, 1);
	CHECK_EQ(busy, NPROC - 1);
	CHECK_EQ(store_lock_refresh(stale), CAIRN_EBUSY);
	store_lock_release(stale);
	/* the winner exited: its lock is stale by pid on this host */
	CHECK_EQ(store_lock_acquire(&mine, st, "gc", 60000, 0), 0);
	store_lock_release(mine);

	/* aborted and failed multipart uploads leave no upload behind */
	size_t big = (17u << 20) + (size_t)(t_rand() % 1000);
	uint8_t *data = malloc(big);
	t_fill(data, big);
	store_writer *w;
	CHECK_EQ(store_write_begin(st, "packs/aa/aborted", &w), 0);
	CHECK_EQ(store_write_append(w, data, big), 0);
	CHECK(uploads_left(prefix) >= 1); /* parts went out before the end */
	store_write_abort(w);
	CHECK_EQ(uploads_left(prefix), 0);
	CHECK_EQ(store_put(st, "packs/aa/excl", data, 100, 0), 0);
	CHECK_EQ(store_write_begin(st, "packs/aa/excl", &w), 0);
	CHECK_EQ(store_write_append(w, data, big), 0);
	CHECK_EQ(store_write_commit(w, STORE_EXCL), CAIRN_EEXISTS);
	CHECK_EQ(uploads_left(prefix), 0);
	uint64_t size;
	CHECK(store_size(st, "packs/aa/excl", &size) == 0 && size == 100);
	free(data);

	const char *tops[] = {"packs", "index", "locks"};
	for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) store_list(st, tops[i], del_cb, st);
	store_free(st);
	return t_done();
}
