/* Inodes records: random nested lists round trip exactly; sequential inode
 * numbers and bunched ctimes compress to a few bytes a file; damaged,
 * truncated, misnamed and forged records are refused with ECORRUPT and
 * never crash. Restore records (restored.h): kept per directory in the
 * state directory, read back exactly, dropped, pruned when old. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "format.h"
#include "hash.h"
#include "inodes.h"
#include "repo.h"
#include "restored.h"
#include "t.h"

static char base[256];

/* A directory of up to width files and subdirectories, depth levels deep. */
static void gen(inode_list *l, int depth, uint64_t *ino, int64_t *sec)
{
	int n = 1 + (int)(t_rand() % 12);
	for (int i = 0; i < n; i++) {
		if (depth > 0 && t_rand() % 4 == 0) {
			int64_t at = inodes_push(l, INODE_DIR, 0, 0, 0);
			CHECK(at >= 0);
			gen(l, depth - 1, ino, sec);
			l->v[at].value = l->n - (size_t)at - 1;
		} else {
			*ino += 1 + t_rand() % 3;
			if (t_rand() % 5 == 0) *sec += (int64_t)(t_rand() % 7) - 2; /* now and then earlier */
			CHECK(inodes_push(l, INODE_REG, *ino, *sec, (uint32_t)(t_rand() % 1000000000u)) >= 0);
		}
	}
}

static int same(const inode_list *a, const inode_list *b)
{
	if (a->n != b->n) return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].kind != b->v[i].kind || a->v[i].value != b->v[i].value ||
		    a->v[i].ctime_sec != b->v[i].ctime_sec || a->v[i].ctime_nsec != b->v[i].ctime_nsec)
			return 0;
	return 1;
}

static size_t count_records(const char *state)
{
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "ls %s/restored 2>/dev/null | wc -l", state);
	FILE *f = popen(cmd, "r");
	unsigned long n = 0;
	if (!f || fscanf(f, "%lu", &n) != 1) n = 9999;
	if (f) pclose(f);
	return n;
}

static void test_restore_records(void)
{
	char state[300], d1[300], d2[300], path[400];
	snprintf(state, sizeof(state), "%s/state/deeper", base);
	snprintf(d1, sizeof(d1), "%s/target1", base);
	snprintf(d2, sizeof(d2), "%s/target2", base);
	mkdir(d1, 0755);
	mkdir(d2, 0755);
	int fd1 = open(d1, O_RDONLY | O_DIRECTORY), fd2 = open(d2, O_RDONLY | O_DIRECTORY);
	CHECK(fd1 >= 0 && fd2 >= 0);
	oid snap, got_snap;
	for (int i = 0; i < OID_LEN; i++) snap.b[i] = (uint8_t)(i * 7 + 1);
	inode_list l = {0}, got;
	uint64_t ino = 77;
	int64_t sec = 1760000000;
	gen(&l, 4, &ino, &sec);

	CHECK_EQ(restored_get(state, fd1, &got_snap, &got), CAIRN_ENOTFOUND); /* no state directory yet */
	CHECK_EQ(restored_put(state, fd1, &snap, &l), 0);                      /* creates it, parents too */
	CHECK_EQ(restored_get(state, fd1, &got_snap, &got), 0);
	CHECK(same(&l, &got) && oid_cmp(&snap, &got_snap) == 0);
	inodes_free(&got);
	CHECK_EQ(restored_get(state, fd2, &got_snap, &got), CAIRN_ENOTFOUND); /* another directory's */
	CHECK_EQ(count_records(state), 1);

	/* a record older than the age limit goes when another is kept */
	struct stat sb;
	CHECK_EQ(fstat(fd1, &sb), 0);
	snprintf(path, sizeof(path), "%s/restored/%llx-%llx", state, (unsigned long long)sb.st_dev,
	         (unsigned long long)sb.st_ino);
	struct timespec old[2] = {{time(NULL) - (RESTORED_MAX_AGE_DAYS + 1) * 86400L, 0},
	                          {time(NULL) - (RESTORED_MAX_AGE_DAYS + 1) * 86400L, 0}};
	CHECK_EQ(utimensat(AT_FDCWD, path, old, 0), 0);
	CHECK_EQ(restored_put(state, fd2, &snap, &l), 0);
	CHECK_EQ(restored_get(state, fd1, &got_snap, &got), CAIRN_ENOTFOUND);
	CHECK_EQ(count_records(state), 1);

	/* a damaged one is ECORRUPT; drop removes it, and a second drop is fine */
	CHECK_EQ(fstat(fd2, &sb), 0);
	snprintf(path, sizeof(path), "%s/restored/%llx-%llx", state, (unsigned long long)sb.st_dev,
	         (unsigned long long)sb.st_ino);
	size_t len;
	uint8_t *b = t_slurp(path, &len);
	CHECK(b != NULL && len > 20);
	b[len / 2] ^= 0x10;
	t_spit(path, b, len);
	free(b);
	CHECK_EQ(restored_get(state, fd2, &got_snap, &got), CAIRN_ECORRUPT);
	restored_drop(state, fd2);
	restored_drop(state, fd2);
	CHECK_EQ(count_records(state), 0);

	/* a state directory that cannot be made: an error naming it, not a crash */
	snprintf(path, sizeof(path), "%s/a-file", base);
	t_spit(path, (const uint8_t *)"x", 1);
	snprintf(state, sizeof(state), "%s/a-file/state", base);
	CHECK_EQ(restored_put(state, fd1, &snap, &l), CAIRN_EIO);
	CHECK(strstr(cairn_error_last(), "a-file") != NULL);
	inodes_free(&l);
	close(fd1);
	close(fd2);
}

int main(void)
{
	t_seed();
	snprintf(base, sizeof(base), "/tmp/test_inodes.%d", (int)getpid());
	mkdir(base, 0755);
	char repo[300], path[600];
	snprintf(repo, sizeof(repo), "%s/repo", base);
	cairn_init_options io = CAIRN_INIT_OPTIONS_INIT;
	CHECK_EQ(cairn_repo_init(repo, &io), 0);
	cairn_repo *r;
	CHECK_EQ(cairn_repo_open(&r, repo), 0);
	const char *snap = "5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e";
	snprintf(path, sizeof(path), "%s/inodes/%s", repo, snap);

	/* round trips, from empty to tens of thousands of items */
	for (int round = 0; round < 20; round++) {
		inode_list l = {0}, got;
		uint64_t ino = t_rand() % 100000000u;
		int64_t sec = 1700000000 + (int64_t)(t_rand() % 100000000u);
		if (round) gen(&l, round % 6, &ino, &sec);
		if (round == 19) /* a big one: ~40k files */
			while (l.n < 40000) gen(&l, 5, &ino, &sec);
		CHECK_EQ(inodes_write(r, snap, &l), 0);
		CHECK_EQ(inodes_read(r, snap, &got), 0);
		CHECK(same(&l, &got));
		if (round == 19) {
			struct stat st;
			CHECK_EQ(stat(path, &st), 0);
			printf("  %zu items in %lld bytes\n", l.n, (long long)st.st_size);
			CHECK((size_t)st.st_size < l.n * 8); /* 21 bytes an item raw */
		}
		inodes_free(&got);
		inodes_free(&l);
	}

	/* a small valid record to damage */
	inode_list l = {0}, got;
	uint64_t ino = 5000;
	int64_t sec = 1750000000;
	gen(&l, 3, &ino, &sec);
	CHECK_EQ(inodes_write(r, snap, &l), 0);
	size_t len = 0;
	uint8_t *orig = t_slurp(path, &len);
	CHECK(orig != NULL && len > FORMAT_HEADER_LEN + 8);

	/* under another snapshot's name */
	char other[65];
	memcpy(other, snap, 65);
	other[0] = '6';
	char opath[600];
	snprintf(opath, sizeof(opath), "%s/inodes/%s", repo, other);
	t_spit(opath, orig, len);
	CHECK_EQ(inodes_read(r, other, &got), CAIRN_ECORRUPT);

	/* a directory claiming more items than follow, with a valid checksum */
	{
		inode_list bad = {0};
		CHECK(inodes_push(&bad, INODE_REG, 1, 1, 1) >= 0);
		CHECK(inodes_push(&bad, INODE_DIR, 5, 0, 0) >= 0);
		CHECK(inodes_push(&bad, INODE_REG, 2, 1, 1) >= 0);
		CHECK_EQ(inodes_write(r, snap, &bad), 0);
		CHECK_EQ(inodes_read(r, snap, &got), CAIRN_ECORRUPT);
		bad.v[1].kind = 7; /* an unknown kind */
		bad.v[1].value = 1;
		CHECK_EQ(inodes_write(r, snap, &bad), 0);
		CHECK_EQ(inodes_read(r, snap, &got), CAIRN_ECORRUPT);
		inodes_free(&bad);
	}

	/* flipped and truncated bytes, half of them with the checksum fixed */
	for (int round = 0; round < 300; round++) {
		uint8_t *b = malloc(len);
		memcpy(b, orig, len);
		size_t n = len;
		if (round % 3 == 0) n = (size_t)(t_rand() % len);
		else b[t_rand() % len] ^= (uint8_t)(1 + t_rand() % 255);
		if (round % 2 && n >= 8) put_u64(b + n - 8, hash_xxh3(b, n - 8));
		t_spit(path, b, n);
		int rc = inodes_read(r, snap, &got);
		CHECK(rc == 0 || rc == CAIRN_ECORRUPT);
		if (rc == 0) { /* only a flip the checksum was fixed past can get here */
			for (size_t i = 0; i < got.n; i++)
				CHECK(got.v[i].kind == INODE_REG || (got.v[i].kind == INODE_DIR && got.v[i].value < got.n - i));
			inodes_free(&got);
		}
		free(b);
	}
	t_spit(path, orig, len);
	CHECK_EQ(inodes_read(r, snap, &got), 0);
	CHECK(same(&l, &got));
	inodes_free(&got);
	CHECK_EQ(inodes_delete(r, snap), 0);
	CHECK_EQ(inodes_read(r, snap, &got), CAIRN_ENOTFOUND);
	CHECK_EQ(inodes_delete(r, snap), 0); /* gone already: fine */
	free(orig);
	inodes_free(&l);

	cairn_repo_free(r);
	test_restore_records();
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", base);
	return t_done();
}
