/* cairn gc: reclaim space beside running takes and restores. */
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "0", "90", "90s", "15m", "2h", "1d" -> ms; -1 on garbage. */
static int64_t parse_duration(const char *s)
{
	char *end;
	if (!s || !*s || *s < '0' || *s > '9') return -1;
	unsigned long long v = strtoull(s, &end, 10);
	int64_t mul = 1000;
	if (*end == 's') mul = 1000, end++;
	else if (*end == 'm') mul = 60 * 1000, end++;
	else if (*end == 'h') mul = 3600 * 1000, end++;
	else if (*end == 'd') mul = 86400 * 1000, end++;
	if (*end || v > (unsigned long long)INT64_MAX / (uint64_t)mul / 2) return -1;
	return (int64_t)v * mul;
}

int cmd_gc(struct cli *cli, int argc, char **argv)
{
	cairn_gc_options o = CAIRN_GC_OPTIONS_INIT;
	const char *grace = NULL;
	int wait_s = 10, percent = 50, quiet = 0;
	const struct opt opts[] = {
		{ "--dry-run", NULL, OPT_FLAG, &o.dry_run, NULL, "report what would be reclaimed; change nothing", 0, 0, 0 },
		{ "--grace", NULL, OPT_STR, &grace, "DURATION",
		  "keep unreferenced data this long (e.g. 30m, 2h; default 1h; 0 only when nothing runs beside)", 0, 0, 0 },
		{ "--rewrite-percent", NULL, OPT_INT, &percent, "N", "rewrite a pack when N% of it is garbage (default 50)", 0, 1, 100 },
		{ "--wait", NULL, OPT_INT, &wait_s, "SECONDS", "wait at most this long for the gc lock (exit 5)", 0, 0, 86400 },
		OPT_JSON(cli),
		{ "-q", "--quiet", OPT_FLAG, &quiet, NULL, "no report", 0, 0, 0 },
		OPT_END
	};
	cli_parse(cli, "", opts, argc, argv);
	if (grace && (o.grace_ms = parse_duration(grace)) < 0)
		return cli_error(cli, CAIRN_EUSAGE, "--grace %s: not a duration (like 0, 90s, 30m, 2h)", grace);
	o.lock_wait_ms = wait_s ? (uint64_t)wait_s * 1000 : 1;
	o.rewrite_percent = (unsigned)percent;

	cairn_repo *repo;
	int rc = cli_open_repo(cli, &repo);
	if (rc != 0) return rc;
	cairn_gc_result r = CAIRN_GC_RESULT_INIT;
	int err = cairn_gc(&r, repo, &o);
	cairn_repo_free(repo);
	if (err < 0) return cli_fail(cli, err);
	if (cli->json) {
		struct json j;
		json_start(&j, stdout);
		json_open(&j, NULL, '{');
		json_bool(&j, "dry_run", r.dry_run);
		json_u64(&j, "snapshots", r.snapshots);
		json_u64(&j, "live_blobs", r.live_blobs);
		json_u64(&j, "dead_blobs", r.dead_blobs);
		json_u64(&j, "deleted_blobs", r.deleted_blobs);
		json_u64(&j, "pending_blobs", r.pending_blobs);
		json_u64(&j, "pending_bytes", r.pending_bytes);
		json_u64(&j, "packs_deleted", r.packs_deleted);
		json_u64(&j, "packs_rewritten", r.packs_rewritten);
		json_u64(&j, "packs_written", r.packs_written);
		json_u64(&j, "segments_deleted", r.segments_deleted);
		json_u64(&j, "segments_written", r.segments_written);
		json_u64(&j, "tmp_deleted", r.tmp_deleted);
		json_u64(&j, "uploads_aborted", r.uploads_aborted);
		json_u64(&j, "sessions_removed", r.sessions_removed);
		json_u64(&j, "markers_removed", r.markers_removed);
		json_u64(&j, "inodes_removed", r.inodes_removed);
		json_u64(&j, "bytes_deleted", r.bytes_deleted);
		json_u64(&j, "bytes_written", r.bytes_written);
		json_i64(&j, "bytes_reclaimed", r.bytes_reclaimed);
		json_u64(&j, "duration_ms", r.duration_ms);
		json_close(&j, '}');
		json_line_end(&j);
	} else if (!quiet) {
		char rec[32], pend[32], took[32];
		format_size(rec, r.bytes_reclaimed > 0 ? (uint64_t)r.bytes_reclaimed : 0);
		format_size(pend, r.pending_bytes);
		format_duration(took, r.duration_ms);
		printf("%s%s reclaimed in %s: %" PRIu64 " packs deleted, %" PRIu64 " rewritten, %" PRIu64
		       " blobs dropped, %" PRIu64 " tmp files, %" PRIu64 " unfinished uploads\n",
		       r.dry_run ? "dry run: would have " : "", rec, took, r.packs_deleted, r.packs_rewritten,
		       r.deleted_blobs, r.tmp_deleted, r.uploads_aborted);
		printf("kept %" PRIu64 " snapshots (%" PRIu64 " blobs); %" PRIu64
		       " unreferenced blobs (%s) wait for the grace period or running sessions\n",
		       r.snapshots, r.live_blobs, r.pending_blobs, pend);
	}
	return 0;
}
