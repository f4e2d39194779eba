/* Callbacks that cancel (cairn_event_cancel_cb): a take canceled at its
 * Nth event commits nothing, leaves the user's usage as it was and the
 * repository clean (fsck), and fails with CAIRN_ECANCELED (exit 1); a
 * return after "saved" is too late and ignored; a canceled restore stops
 * and a forced restore then completes the target; a canceled export and
 * import stop the same way. Public API only. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "api_t.h"

static char tmp[256];

typedef struct counter {
	unsigned seen;      /* events so far */
	unsigned cancel_at; /* return non-zero at this event (1-based); 0 = never */
	int at_complete;    /* ... or at the first PROGRESS with every file done */
	const char *at_state; /* ... or at this STATE */
	unsigned canceled;  /* the event that returned non-zero */
} counter;

/* Counts STATE and PROGRESS events (a NOTICE never cancels: cairn.h). */
static int cancel_at(const cairn_event *ev, void *payload)
{
	counter *c = payload;
	if (ev->type == CAIRN_EVENT_NOTICE) return 0;
	c->seen++;
	int stop = (c->cancel_at && c->seen == c->cancel_at) ||
	           (c->at_complete && ev->type == CAIRN_EVENT_PROGRESS && ev->total_files &&
	            ev->files == ev->total_files) ||
	           (c->at_state && ev->type == CAIRN_EVENT_STATE && !strcmp(ev->state, c->at_state));
	if (stop && !c->canceled) c->canceled = c->seen;
	return stop;
}

/* n bytes of seeded, incompressible data. */
static void write_random(const char *path, size_t n)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = t_rand();
		fwrite(&v, 1, n - i < 8 ? n - i : 8, f);
	}
	fclose(f);
}

static int take(cairn_repo *repo, const char *root, const char *name, counter *c)
{
	cairn_take_options o = CAIRN_TAKE_OPTIONS_INIT;
	o.root = root;
	o.name = name;
	o.user = "alice";
	o.no_uring = 1;
	o.event_cancel_cb = cancel_at;
	o.event_payload = c;
	cairn_take_result r = CAIRN_TAKE_RESULT_INIT;
	return cairn_take(&r, repo, &o);
}

int main(void)
{
	char repo_path[300], root[300], target[300], path[400], archive[300];
	cairn_fsck_options fo = CAIRN_FSCK_OPTIONS_INIT;
	fo.read_data = 1;
	t_seed();
	api_tmpdir(tmp, sizeof(tmp), "cancel");
	snprintf(repo_path, sizeof(repo_path), "%s/repo", tmp);
	snprintf(root, sizeof(root), "%s/root", tmp);
	snprintf(target, sizeof(target), "%s/restored", tmp);
	snprintf(archive, sizeof(archive), "%s/snap.tar", tmp);
	mkdir(root, 0755);
	for (int i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "%s/f%d", root, i);
		write_random(path, 1 << 20);
	}
	CHECK_EQ(cairn_repo_init(repo_path, NULL), 0);
	cairn_repo *repo = NULL;
	CHECK_EQ(cairn_repo_open(&repo, repo_path), 0);
	if (!repo) return t_done();

	counter c = {0};
	CHECK_EQ(take(repo, root, "first", &c), 0);
	CHECK(c.seen >= 3); /* progress at the start and the end, "saved" */
	uint64_t used = api_used_bytes(repo, "alice");
	CHECK(used > 0);

	/* new data, then takes canceled at their first event (the capture under
	 * way) and at the progress event that has every file (the last before
	 * the commit) */
	snprintf(path, sizeof(path), "%s/new", root);
	write_random(path, 4 << 20);
	for (int mode = 0; mode < 2; mode++) {
		counter k = {0};
		k.cancel_at = mode == 0 ? 1 : 0;
		k.at_complete = mode == 1;
		int rc = take(repo, root, "canceled", &k);
		CHECK_EQ(rc, CAIRN_ECANCELED);
		CHECK(k.canceled > 0);
		CHECK_EQ(k.seen, k.canceled); /* no event after the cancel */
		if (!strstr(cairn_error_last(), "canceled")) {
			fprintf(stderr, "cancel mode %d: message: %s\n", mode, cairn_error_last());
			CHECK(0);
		}
		CHECK_EQ(api_snapshot_count(repo), 1);
		CHECK_EQ(api_used_bytes(repo, "alice"), used);
	}
	CHECK_EQ(cairn_error_exit_code(CAIRN_ECANCELED), 1);
	CHECK(strcmp(cairn_error_name(CAIRN_ECANCELED), "canceled") == 0);
	api_check_fsck_clean(repo_path, &fo, 1);

	/* a non-zero return to "saved" (the last event) comes too late:
	 * committed (with more data, for a restore that lasts) */
	snprintf(path, sizeof(path), "%s/big", root);
	write_random(path, 64 << 20);
	counter late = {0};
	late.at_state = "saved";
	CHECK_EQ(take(repo, root, "late", &late), 0);
	CHECK(late.canceled > 0);
	CHECK_EQ(api_snapshot_count(repo), 2);
	char id[65];
	CHECK_EQ(cairn_snapshot_resolve(id, repo, "late", NULL), 0);
	cairn_repo_free(repo);

	/* restore of 76 MiB on one thread: long enough for a progress event (at
	 * most one per 100 ms); canceled there, then completed with force */
	CHECK_EQ(cairn_repo_open(&repo, repo_path), 0);
	if (!repo) return t_done();
	cairn_restore_options ro = CAIRN_RESTORE_OPTIONS_INIT;
	counter rk = {0};
	rk.cancel_at = 1;
	ro.event_cancel_cb = cancel_at;
	ro.event_payload = &rk;
	ro.threads = 1;
	cairn_restore_result rr = CAIRN_RESTORE_RESULT_INIT;
	CHECK_EQ(cairn_restore(&rr, repo, id, target, &ro), CAIRN_ECANCELED);
	CHECK_EQ(rk.seen, 1);
	ro.force = 1;
	rk.cancel_at = 0;
	CHECK_EQ(cairn_restore(&rr, repo, id, target, &ro), 0);
	CHECK_EQ(rr.files, 10);

	/* export: canceled at its first progress event (one per entry at most every 100 ms) */
	cairn_export_options eo = CAIRN_EXPORT_OPTIONS_INIT;
	counter ek = {0};
	ek.cancel_at = 1;
	eo.event_cancel_cb = cancel_at;
	eo.event_payload = &ek;
	int fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cairn_export_result er = CAIRN_EXPORT_RESULT_INIT;
	CHECK_EQ(cairn_export(&er, repo, id, fd, &eo), CAIRN_ECANCELED);
	close(fd);
	/* a whole archive for the import */
	ek.cancel_at = 0;
	fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK_EQ(cairn_export(&er, repo, id, fd, &eo), 0);
	close(fd);

	/* import: canceled at its first event, nothing committed */
	cairn_import_options imo = CAIRN_IMPORT_OPTIONS_INIT;
	counter ik = {0};
	ik.cancel_at = 1;
	imo.name = "imported";
	imo.user = "bob";
	imo.event_cancel_cb = cancel_at;
	imo.event_payload = &ik;
	fd = open(archive, O_RDONLY | O_CLOEXEC);
	cairn_import_result ir = CAIRN_IMPORT_RESULT_INIT;
	CHECK_EQ(cairn_import(&ir, repo, fd, &imo), CAIRN_ECANCELED);
	close(fd);
	CHECK_EQ(ik.seen, 1);
	CHECK_EQ(api_snapshot_count(repo), 2);
	CHECK_EQ(api_used_bytes(repo, "bob"), 0);
	cairn_repo_free(repo);
	api_check_fsck_clean(repo_path, &fo, 1);

	api_rmtree(tmp);
	return t_done();
}
