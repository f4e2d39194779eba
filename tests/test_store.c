/* store + io: atomic durable writes, create-only, ranged reads, listing,
 * deletion, and the fault-injection hooks that crash tests rely on. */
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
	CHECK(store_open(&st, "/nonexistent/cairn") == CAIRN_ENOTFOUND);
	CHECK(store_open(&st, dir) == 0);

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
			setenv("CAIRN_FAULT", faults[i], 1);
			io_fault_reload();
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
		setenv("CAIRN_FAULT", "rename:1:CRASH", 1);
		io_fault_reload();
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
	free(data);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return t_done();
}
