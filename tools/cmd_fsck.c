/* cairn fsck: check (and with --repair, repair) the repository. */
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *severity_name(cairn_fsck_severity s)
{
	return s == CAIRN_FSCK_DAMAGE ? "damage" : s == CAIRN_FSCK_INFO ? "info" : "repaired";
}

static void print_json(const cairn_fsck_report *rep, const cairn_fsck_stats *st)
{
	struct json j;
	json_start(&j, stdout);
	json_open(&j, NULL, '{');
	json_bool(&j, "ok", st->damaged == 0);
	json_u64(&j, "damaged", st->damaged);
	json_u64(&j, "damaged_snapshots", st->damaged_snapshots);
	json_u64(&j, "snapshots", st->snapshots);
	json_u64(&j, "trees", st->trees);
	json_u64(&j, "chunks", st->chunks);
	json_u64(&j, "packs", st->packs);
	json_u64(&j, "index_segments", st->index_segments);
	json_u64(&j, "bytes_checked", st->bytes_checked);
	json_u64(&j, "infos", st->infos);
	json_u64(&j, "repairs", st->repairs);
	json_u64(&j, "duration_ms", st->duration_ms);
	json_open(&j, "problems", '[');
	for (size_t i = 0; i < cairn_fsck_report_count(rep); i++) {
		const cairn_fsck_problem *p = cairn_fsck_report_get(rep, i);
		json_open(&j, NULL, '{');
		json_str(&j, "severity", severity_name(p->severity));
		json_str(&j, "kind", p->kind);
		json_str(&j, "object", p->object);
		json_str(&j, "message", p->message);
		json_open(&j, "affected", '[');
		for (size_t k = 0; k < p->naffected; k++) {
			json_open(&j, NULL, '{');
			json_str(&j, "snapshot", p->snapshot_ids[k]);
			json_str(&j, "name", p->snapshot_names[k]);
			json_str(&j, "path", p->paths[k]);
			json_close(&j, '}');
		}
		json_close(&j, ']');
		json_u64(&j, "more_affected", p->more_affected);
		json_close(&j, '}');
	}
	json_close(&j, ']');
	json_close(&j, '}');
	json_line_end(&j);
}

static void print_human(const cairn_fsck_report *rep, const cairn_fsck_stats *st, int quiet)
{
	for (size_t i = 0; i < cairn_fsck_report_count(rep); i++) {
		const cairn_fsck_problem *p = cairn_fsck_report_get(rep, i);
		if (quiet && p->severity == CAIRN_FSCK_INFO) continue;
		printf("%-8s %s: ", severity_name(p->severity), p->object);
		print_escaped(stdout, p->message, strlen(p->message));
		printf("\n");
		for (size_t k = 0; k < p->naffected; k++) {
			printf("         affects snapshot %.12s", p->snapshot_ids[k]);
			if (p->snapshot_names[k][0]) {
				printf(" (");
				print_escaped(stdout, p->snapshot_names[k], strlen(p->snapshot_names[k]));
				printf(")");
			}
			printf(" at ");
			print_escaped(stdout, p->paths[k], strlen(p->paths[k]));
			printf("\n");
		}
		if (p->more_affected) printf("         and %zu more\n", p->more_affected);
	}
	char bytes[32], took[32];
	format_size(bytes, st->bytes_checked);
	format_duration(took, st->duration_ms);
	printf("checked %" PRIu64 " snapshots, %" PRIu64 " trees, %" PRIu64 " chunks, %" PRIu64
	       " packs (%s), %" PRIu64 " index segments in %s\n",
	       st->snapshots, st->trees, st->chunks, st->packs, bytes, st->index_segments, took);
	if (st->repairs) printf("%" PRIu64 " repairs made\n", st->repairs);
	if (st->damaged)
		printf("DAMAGED: %" PRIu64 " problems, %" PRIu64 " snapshots affected\n", st->damaged,
		       st->damaged_snapshots);
	else
		printf("no damage found\n");
}

int cmd_fsck(struct cli *cli, int argc, char **argv)
{
	cairn_fsck_options o = CAIRN_FSCK_OPTIONS_INIT;
	int quiet = 0, wait_s = 10;
	const struct opt opts[] = {
		{ "--read-data", NULL, OPT_FLAG, &o.read_data, NULL,
		  "also decompress every chunk and check its SHA-256 (every core)", 0, 0, 0 },
		{ "--repair", NULL, OPT_FLAG, &o.repair, NULL,
		  "rebuild the index from the packs, quarantine damaged packs, mark damaged snapshots", 0, 0, 0 },
		{ "--wait", NULL, OPT_INT, &wait_s, "SECONDS", "wait at most this long for gc's lock (exit 5)", 0, 0, 86400 },
		OPT_THREADS(&o.threads),
		OPT_JSON(cli),
		{ "-q", "--quiet", OPT_FLAG, &quiet, NULL, "leave out the informational lines", 0, 0, 0 },
		OPT_END
	};
	cli_parse(cli, "", opts, argc, argv);
	const char *path = cli_repo_path(cli);
	if (!path) return cairn_error_exit_code(CAIRN_EUSAGE);
	o.lock_wait_ms = wait_s ? (uint64_t)wait_s * 1000 : 1;
	cairn_repo_open_options oo = CAIRN_REPO_OPEN_OPTIONS_INIT;
	int orc = cli_open_options(cli, &oo);
	if (orc) return orc;
	o.open = &oo;

	cairn_fsck_report *rep;
	int err = cairn_fsck(&rep, path, &o);
	if (err < 0) return cli_fail(cli, err);
	cairn_fsck_stats st = CAIRN_FSCK_STATS_INIT;
	cairn_fsck_report_stats(rep, &st);
	if (cli->json) print_json(rep, &st);
	else print_human(rep, &st, quiet);
	int rc = 0;
	if (st.damaged) {
		/* one line on stderr, as every failure: the details are on stdout */
		const char *first = "";
		for (size_t i = 0; i < cairn_fsck_report_count(rep); i++) {
			const cairn_fsck_problem *p = cairn_fsck_report_get(rep, i);
			if (p->severity == CAIRN_FSCK_DAMAGE) {
				first = p->object;
				break;
			}
		}
		fprintf(stderr, "cairn: fsck: %" PRIu64 " problems, %" PRIu64 " snapshots damaged (first: %s)\n",
		        st.damaged, st.damaged_snapshots, first);
		rc = cairn_error_exit_code(CAIRN_ECORRUPT);
	}
	cairn_fsck_report_free(rep);
	return rc;
}
