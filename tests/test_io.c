/* Process identities (io_proc_start, io_proc_alive): a pid with the wrong
 * start time (a reused pid) and a zombie are not alive. Temporary files
 * named after their writer (io_tmp_owner_alive): ours are alive, a forged
 * start time, another host and an unnamed file are not. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "cairn.h"
#include "io.h"
#include "t.h"

static void test_proc(void)
{
	uint64_t start = 0, child_start = 0;
	CHECK_EQ(io_proc_start(getpid(), &start), 0);
	CHECK(start > 0);
	CHECK_EQ(io_proc_alive(getpid(), start), 1);
	CHECK_EQ(io_proc_alive(getpid(), start + 1), 0); /* the same pid, another process */
	CHECK_EQ(io_proc_alive(0, start), 0);

	pid_t pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	CHECK(pid > 0);
	CHECK_EQ(io_proc_start(pid, &child_start), 0);
	CHECK_EQ(io_proc_alive(pid, child_start), 1);
	kill(pid, SIGKILL);
	siginfo_t si;
	CHECK_EQ(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0); /* dead, not reaped: a zombie */
	CHECK_EQ(io_proc_alive(pid, child_start), 0);
	CHECK_EQ(io_proc_start(pid, &child_start), -ESRCH);
	waitpid(pid, NULL, 0);
	CHECK_EQ(io_proc_alive(pid, child_start), 0);
}

static void test_tmp_owner(void)
{
	char dir[64], name[300], forged[300];
	snprintf(dir, sizeof(dir), "/tmp/test_io.%d", (int)getpid());
	CHECK_EQ(mkdir(dir, 0755), 0);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0);
	CHECK_EQ(mkdirat(dfd, "tmp", 0755), 0);
	io_atomic a;
	CHECK_EQ(io_atomic_begin(&a, dfd, "tmp", "obj", NULL), 0);
	snprintf(name, sizeof(name), "%s", a.tmp);
	CHECK_EQ(io_tmp_owner_alive(name), 1);
	CHECK_EQ(io_tmp_owner_alive(strrchr(name, '/') + 1), 1);

	/* the same name with another start time: a reused pid */
	long pid;
	unsigned long long start;
	int at = 0;
	CHECK_EQ(sscanf(name, "tmp/%*24[0-9a-f].%ld-%llu@%n", &pid, &start, &at), 2);
	snprintf(forged, sizeof(forged), "tmp/000000000000000000000000.%ld-%llu@%s", pid, start + 1, name + at);
	CHECK_EQ(io_tmp_owner_alive(forged), 0);
	snprintf(forged, sizeof(forged), "tmp/000000000000000000000000.%ld-%llu@elsewhere-%s", pid, start, name + at);
	CHECK_EQ(io_tmp_owner_alive(forged), 0); /* another host: the sessions decide */
	CHECK_EQ(io_tmp_owner_alive("tmp/0123456789abcdef.tmp"), 0);
	CHECK_EQ(io_tmp_owner_alive("tmp/garbage"), 0);
	CHECK_EQ(io_atomic_append(&a, "x", 1), 0);
	CHECK_EQ(io_atomic_commit(&a, 0), 0);
	CHECK_EQ(unlinkat(dfd, "obj", 0), 0);
	CHECK_EQ(unlinkat(dfd, "tmp", AT_REMOVEDIR), 0);
	close(dfd);
	CHECK_EQ(rmdir(dir), 0);
}

int main(void)
{
	test_proc();
	test_tmp_owner();
	return t_done();
}
