/* Helpers of the public-API tests (test_api_*.c), which use only cairn.h:
 * a scratch directory, files, and what a repository holds. */
#ifndef CAIRN_API_T_H
#define CAIRN_API_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "t.h"

/* A fresh directory under $TMPDIR (default /var/tmp) named after tag, in out. */
static inline void api_tmpdir(char *out, size_t cap, const char *tag)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	snprintf(out, cap, "%s/cairn-api-%s-XXXXXX", base, tag);
	if (!mkdtemp(out)) {
		perror("mkdtemp");
		exit(1);
	}
}

static inline void api_rmtree(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static inline void api_write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	fputs(content, f);
	fclose(f);
}

static inline size_t api_snapshot_count(cairn_repo *repo)
{
	cairn_snapshot_list *l = NULL;
	if (cairn_snapshot_list_load(&l, repo, NULL) < 0) return (size_t)-1;
	size_t n = cairn_snapshot_list_count(l);
	cairn_snapshot_list_free(l);
	return n;
}

static inline uint64_t api_used_bytes(cairn_repo *repo, const char *user)
{
	cairn_usage u;
	return cairn_usage_get(&u, repo, user) < 0 ? (uint64_t)-1 : u.used_bytes;
}

/* fsck with opts (of any version) finds no damage in at least min_snapshots. */
static inline void api_check_fsck_clean(const char *repo_path, const cairn_fsck_options *opts,
                                        uint64_t min_snapshots)
{
	cairn_fsck_report *rep = NULL;
	CHECK_EQ(cairn_fsck(&rep, repo_path, opts), 0);
	if (!rep) return;
	cairn_fsck_stats st = CAIRN_FSCK_STATS_INIT;
	cairn_fsck_report_stats(rep, &st);
	CHECK_EQ(st.damaged, 0);
	CHECK(st.snapshots >= min_snapshots);
	cairn_fsck_report_free(rep);
}

#endif
