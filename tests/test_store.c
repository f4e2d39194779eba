/* store + io: atomic durable writes, create-only, ranged reads, listing,
 * deletion, and the fault-injection hooks that crash tests rely on. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cairn.h"
#include "io.h"
#include "store.h"
#include "t.h"

static int count_cb(const char *name, void *payload)
{
	(void)name;
	(*(int *)payload)++;
	return 0;
}

static int tmp_count(const char *dir)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/tmp", dir);
	DIR *d = opendir(path);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) n += de->d_name[0] != '.';
	if (d) closedir(d);
	return n;
}

static int tmp_empty(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s/tmp)\"", dir);
	return system(cmd) == 0;
}

int main(void)
{
	char dir[] = "/tmp/cairn-test-store-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char sub[600];
	snprintf(sub, sizeof(sub), "%s/tmp", dir);
	CHECK(mkdir(sub, 0755) == 0);

	store *st;
	CHECK(store_open(&st, "/nonexistent/cairn", NULL) == CAIRN_ENOTFOUND);
	CHECK(store_open(&st, dir, NULL) == 0);

	t_seed();
	size_t len = 100000 + (size_t)(t_rand() % 100000);
	uint8_t *data = malloc(len), *back = NULL, range[100];
	t_fill(data, len);

	CHECK(store_put(st, "packs/ab/obj1", data, len, STORE_EXCL) == 0);
	CHECK(store_put(st, "packs/ab/obj1", data, 10, STORE_EXCL) == CAIRN_EEXISTS);
	size_t got;
	CHECK(store_get(st, "packs/ab/obj1", len, &back, &got) == 0);
	CHECK(got == len && back && memcmp(back, data, len) == 0);
	free(back);
	CHECK(store_get(st, "packs/ab/obj1", len - 1, &back, &got) == CAIRN_ECORRUPT);
	CHECK(store_get(st, "packs/ab/missing", len, &back, &got) == CAIRN_ENOTFOUND);

	CHECK(store_get_range(st, "packs/ab/obj1", 5000, range, sizeof(range)) == 0);
	CHECK(memcmp(range, data + 5000, sizeof(range)) == 0);
	CHECK(store_get_range(st, "packs/ab/obj1", len - 10, range, sizeof(range)) == CAIRN_ECORRUPT);
	CHECK(store_get_range(st, "packs/ab/none", 0, range, 1) == CAIRN_ECORRUPT);

	/* overwrite allowed without EXCL, replacing whole */
	CHECK(store_put(st, "snapshots/x", data, 50, 0) == 0);
	CHECK(store_put(st, "snapshots/x", data + 1, 40, 0) == 0);
	CHECK(store_get(st, "snapshots/x", 1000, &back, &got) == 0);
	CHECK(got == 40 && memcmp(back, data + 1, 40) == 0);
	free(back);

	int n = 0;
	CHECK(store_list(st, "packs", count_cb, &n) == 0);
	CHECK_EQ(n, 1);
	n = 0;
	CHECK(store_list(st, "nothing-here", count_cb, &n) == 0);
	CHECK_EQ(n, 0);
	uint64_t size;
	CHECK(store_size(st, "packs/ab/obj1", &size) == 0 && size == len);
	CHECK(store_delete(st, "packs/ab/obj1") == 0);
	CHECK(store_delete(st, "packs/ab/obj1") == CAIRN_ENOTFOUND);
	CHECK(tmp_empty(dir));

	/* injected faults: the write fails cleanly and leaves nothing behind */
	const char *faults[] = {"write:1:EIO", "write:1:SHORT", "fsync:1:ENOSPC", "rename:1:EIO"};
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		pid_t pid = fork();
		if (pid == 0) {
			io_fault_reset(faults[i]);
			int rc = store_put(st, "index/faulty", data, len, STORE_EXCL);
			_exit(rc == CAIRN_EIO && strstr(cairn_error_last(), "index/faulty") ? 0 : 1);
		}
		int status;
		waitpid(pid, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		back = NULL;
		CHECK(store_get(st, "index/faulty", len, &back, &got) == CAIRN_ENOTFOUND);
		free(back);
		CHECK(tmp_empty(dir));
	}
	/* a crash before the rename leaves only a tmp file, never a partial object */
	pid_t pid = fork();
	if (pid == 0) {
		io_fault_reset("rename:1:CRASH");
		store_put(st, "index/crashed", data, len, STORE_EXCL);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 99);
	back = NULL;
	CHECK(store_get(st, "index/crashed", len, &back, &got) == CAIRN_ENOTFOUND);
	free(back);
	CHECK(!tmp_empty(dir));

	/* streamed writes: invisible until commit, whole after it, never partial */
	{
		int leftovers = tmp_count(dir); /* the crash above left one */
		size_t big = (20u << 20) + (size_t)(t_rand() % 4096); /* crosses writeback steps */
		uint8_t *src = malloc(big);
		t_fill(src, big);
		store_writer *w = NULL;
		CHECK(store_write_begin(st, "packs/cd/streamed", &w) == 0);
		for (size_t off = 0; off < big;) {
			size_t step = 1 + (size_t)(t_rand() % (3u << 20));
			if (step > big - off) step = big - off;
			CHECK(store_write_append(w, src + off, step) == 0);
			off += step;
			CHECK(store_size(st, "packs/cd/streamed", &size) == CAIRN_ENOTFOUND);
		}
		CHECK(store_write_commit(w, STORE_EXCL) == 0);
		CHECK(store_get(st, "packs/cd/streamed", big, &back, &got) == 0);
		CHECK(got == big && memcmp(back, src, big) == 0);
		free(back);
		CHECK(store_write_begin(st, "packs/cd/streamed", &w) == 0);
		CHECK(store_write_append(w, src, 10) == 0);
		CHECK(store_write_commit(w, STORE_EXCL) == CAIRN_EEXISTS);
		CHECK(store_size(st, "packs/cd/streamed", &size) == 0 && size == big);
		CHECK(store_write_begin(st, "packs/cd/aborted", &w) == 0);
		CHECK(store_write_append(w, src, 1000) == 0);
		store_write_abort(w);
		store_write_abort(NULL);
		CHECK(store_size(st, "packs/cd/aborted", &size) == CAIRN_ENOTFOUND);
		CHECK_EQ(tmp_count(dir), leftovers);
		/* a failing write inside a stream fails its append, and abort cleans up */
		pid_t p = fork();
		if (p == 0) {
			io_fault_reset("write:2:ENOSPC");
			store_writer *fw = NULL;
			int ok = store_write_begin(st, "packs/cd/faulty", &fw) == 0 &&
			         store_write_append(fw, src, 100) == 0 &&
			         store_write_append(fw, src, 100) == CAIRN_EIO &&
			         strstr(cairn_error_last(), "packs/cd/faulty") != NULL;
			store_write_abort(fw);
			_exit(ok ? 0 : 1);
		}
		int st2;
		waitpid(p, &st2, 0);
		CHECK(WIFEXITED(st2) && WEXITSTATUS(st2) == 0);
		CHECK(store_size(st, "packs/cd/faulty", &size) == CAIRN_ENOTFOUND);
		CHECK_EQ(tmp_count(dir), leftovers);
		CHECK(store_delete(st, "packs/cd/streamed") == 0);
		free(src);
	}
	CHECK(strcmp(store_kind(st), "dir") == 0);

	/* locks: exclusive, bounded wait, takeover of expired and orphaned ones */
	char locks[600];
	snprintf(locks, sizeof(locks), "%s/locks", dir);
	CHECK(mkdir(locks, 0755) == 0);
	store_lock *a = NULL, *b = NULL;
	CHECK(store_lock_acquire(&a, st, "user-alice", 60000, 0) == 0);
	CHECK(store_lock_acquire(&b, st, "user-alice", 60000, 100) == CAIRN_EBUSY);
	CHECK(strstr(cairn_error_last(), "user-alice") != NULL);
	CHECK(store_lock_acquire(&b, st, "user-bob", 60000, 0) == 0);
	CHECK(store_lock_refresh(a) == 0);
	store_lock_release(a);
	store_lock_release(b);
	store_lock_release(NULL);
	CHECK(store_lock_acquire(&a, st, "user-alice", 1, 0) == 0); /* expires at once */
	usleep(5000);
	CHECK(store_lock_acquire(&b, st, "user-alice", 60000, 0) == 0);
	CHECK(store_lock_refresh(a) == CAIRN_EBUSY); /* a lost it */
	store_lock_release(a); /* must not remove b's lock */
	CHECK(store_lock_acquire(&a, st, "user-alice", 60000, 50) == CAIRN_EBUSY);
	store_lock_release(b);
	pid = fork();
	if (pid == 0) {
		store_lock *dead;
		_exit(store_lock_acquire(&dead, st, "gc", 3600 * 1000, 0) == 0 ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(store_lock_acquire(&a, st, "gc", 60000, 0) == 0); /* its holder is gone */
	store_lock_release(a);

	store_free(st);
	store_free(NULL);

	/* store_create makes the directory and the folders writes rely on */
	char created[700], sub2[800];
	snprintf(created, sizeof(created), "dir:%s/new-repo", dir);
	CHECK(store_create(&st, created, NULL) == 0);
	CHECK(store_put(st, "snapshots/y", data, 10, STORE_EXCL) == 0);
	snprintf(sub2, sizeof(sub2), "%s/new-repo/locks", dir);
	struct stat sb;
	CHECK(stat(sub2, &sb) == 0 && S_ISDIR(sb.st_mode));
	store_free(st);
	CHECK(store_open(&st, created, NULL) == 0);
	CHECK(store_size(st, "snapshots/y", &size) == 0 && size == 10);
	store_free(st);

	free(data);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return t_done();
}
