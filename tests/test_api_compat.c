/* The public API as a caller built against an older header calls it: option
 * structs of every older version (tests/compat/cairn_old.h, frozen layouts)
 * really work (init, take, an incremental take, restore, export, import, fsck,
 * gc); results are filled up to the caller's version and not past it; a
 * version newer than the library's is refused with CAIRN_EUSAGE naming it.
 * Built against include/ only and linked with the shared library. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "compat/cairn_old.h"
#include "api_t.h"

/* Today's header only appends: each old layout is a prefix of the current one. */
_Static_assert(sizeof(old_take_options_v1) == offsetof(cairn_take_options, no_precopy), "take options 1");
_Static_assert(sizeof(old_take_options_v2) == offsetof(cairn_take_options, event_cancel_cb), "take options 2");
_Static_assert(sizeof(old_init_options_v1) == offsetof(cairn_init_options, zstd_level) + sizeof(int), "init options 1");
_Static_assert(sizeof(old_restore_options_v1) == offsetof(cairn_restore_options, event_cancel_cb), "restore options 1");
_Static_assert(sizeof(old_export_options_v1) == offsetof(cairn_export_options, event_cancel_cb), "export options 1");
_Static_assert(sizeof(old_import_options_v1) == offsetof(cairn_import_options, event_cancel_cb), "import options 1");
_Static_assert(sizeof(old_fsck_options_v1) == offsetof(cairn_fsck_options, open), "fsck options 1");
_Static_assert(sizeof(old_gc_options_v1) == sizeof(cairn_gc_options), "gc options 1");
_Static_assert(sizeof(old_take_result_v1) == offsetof(cairn_take_result, freeze_ms), "take result 1");

static char tmp[256];

static void write_file(const char *rel, const char *content)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	api_write_file(path, content);
}

static int file_equals(const char *path, const char *content)
{
	char buf[256] = "";
	FILE *f = fopen(path, "r");
	if (!f) return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strcmp(buf, content) == 0;
}

static unsigned events;
static void count_event(const cairn_event *ev, void *payload)
{
	(void)ev;
	(*(unsigned *)payload)++;
}

static int never_cancel(const cairn_event *ev, void *payload)
{
	(void)ev;
	(void)payload;
	return 0;
}

/* fsck with version-1 options (read_data): no damage found. */
static void check_fsck_clean(const char *repo_path)
{
	old_fsck_options_v1 fo = {1, 1, 0, 0, 0};
	api_check_fsck_clean(repo_path, (const cairn_fsck_options *)&fo, 1);
}

/* A newer version than the library knows: CAIRN_EUSAGE naming it. */
static void check_refused(int rc, const char *needle)
{
	CHECK_EQ(rc, CAIRN_EUSAGE);
	if (!strstr(cairn_error_last(), needle)) {
		fprintf(stderr, "message \"%s\" lacks \"%s\"\n", cairn_error_last(), needle);
		CHECK(0);
	}
}

int main(void)
{
	char repo_path[300], root[300], target[300], target2[300], archive[300];
	api_tmpdir(tmp, sizeof(tmp), "compat");
	snprintf(repo_path, sizeof(repo_path), "%s/repo", tmp);
	snprintf(root, sizeof(root), "%s/root", tmp);
	snprintf(target, sizeof(target), "%s/restored", tmp);
	snprintf(target2, sizeof(target2), "%s/imported", tmp);
	snprintf(archive, sizeof(archive), "%s/snap.tar", tmp);
	mkdir(root, 0755);
	write_file("root/a.txt", "alpha\n");
	write_file("root/b.txt", "bravo bravo\n");

	/* init with version-1 options (no open pointer) */
	/* on the heap, exactly its size: under ASan a read past it (of the
	 * version-2 open pointer, 4 bytes on) is an error */
	old_init_options_v1 *io = malloc(sizeof(*io));
	*io = (old_init_options_v1){1, 4096, 3};
	CHECK_EQ(cairn_repo_init(repo_path, (const cairn_init_options *)io), 0);
	free(io);
	cairn_repo *repo = NULL;
	CHECK_EQ(cairn_repo_open(&repo, repo_path), 0);
	if (!repo) return t_done();

	/* take with version-1 options, into a version-1 result with a canary after it */
	struct {
		old_take_result_v1 r;
		unsigned char canary[64];
	} res1;
	memset(&res1, 0, sizeof(res1));
	res1.r.version = 1;
	memset(res1.canary, 0xA5, sizeof(res1.canary));
	old_take_options_v1 t1;
	memset(&t1, 0, sizeof(t1));
	t1.version = 1;
	t1.root = root;
	t1.name = "v1";
	t1.user = "alice";
	t1.no_uring = 1;
	t1.event_cb = count_event;
	t1.event_payload = &events;
	int rc = cairn_take((cairn_take_result *)&res1.r, repo, (const cairn_take_options *)&t1);
	CHECK_EQ(rc, 0);
	if (rc) fprintf(stderr, "take v1: %s\n", cairn_error_last());
	CHECK_EQ(strlen(res1.r.snapshot), 64);
	CHECK_EQ(res1.r.files, 2);
	CHECK_EQ(res1.r.bytes, 6 + 12);
	CHECK(events > 0); /* the old void callback was called */
	CHECK_EQ(res1.r.version, 1);
	int canary_ok = 1;
	for (size_t i = 0; i < sizeof(res1.canary); i++) canary_ok &= res1.canary[i] == 0xA5;
	CHECK(canary_ok); /* freeze_ms (version 2) was not written past the caller's struct */
	char first[65];
	memcpy(first, res1.r.snapshot, sizeof(first));

	/* an incremental take with version-2 options: the parent's files reused */
	write_file("root/c.txt", "charlie\n");
	old_take_options_v2 t2;
	memset(&t2, 0, sizeof(t2));
	t2.v1.version = 2;
	t2.v1.root = root;
	t2.v1.name = "v2";
	t2.v1.user = "alice";
	t2.v1.no_uring = 1;
	t2.no_precopy = 1;
	cairn_take_result res2 = CAIRN_TAKE_RESULT_INIT;
	CHECK_EQ(cairn_take(&res2, repo, (const cairn_take_options *)&t2), 0);
	CHECK_EQ(res2.files, 3);
	CHECK_EQ(res2.reused_files, 2);

	/* restore with version-1 options */
	old_restore_options_v1 ro = {1, 0, 1, count_event, &events};
	cairn_restore_result rr = CAIRN_RESTORE_RESULT_INIT;
	CHECK_EQ(cairn_restore(&rr, repo, res2.snapshot, target, (const cairn_restore_options *)&ro), 0);
	CHECK_EQ(rr.files, 3);
	char path[512];
	snprintf(path, sizeof(path), "%s/a.txt", target);
	CHECK(file_equals(path, "alpha\n"));
	snprintf(path, sizeof(path), "%s/c.txt", target);
	CHECK(file_equals(path, "charlie\n"));

	/* export and import with version-1 options: the same tree back */
	old_export_options_v1 eo = {1, CAIRN_ARCHIVE_PAX, CAIRN_COMPRESS_NONE, NULL, NULL};
	int fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cairn_export_result er = CAIRN_EXPORT_RESULT_INIT;
	CHECK_EQ(cairn_export(&er, repo, res2.snapshot, fd, (const cairn_export_options *)&eo), 0);
	close(fd);
	CHECK_EQ(er.files, 3);
	old_import_options_v1 imo = {1, "imported", "bob", NULL, NULL, NULL, 0, NULL, NULL};
	fd = open(archive, O_RDONLY | O_CLOEXEC);
	cairn_import_result ir = CAIRN_IMPORT_RESULT_INIT;
	CHECK_EQ(cairn_import(&ir, repo, fd, (const cairn_import_options *)&imo), 0);
	close(fd);
	CHECK_EQ(ir.files, 3);
	cairn_restore_result rr2 = CAIRN_RESTORE_RESULT_INIT;
	CHECK_EQ(cairn_restore(&rr2, repo, ir.snapshot, target2, (const cairn_restore_options *)&ro), 0);
	snprintf(path, sizeof(path), "%s/b.txt", target2);
	CHECK(file_equals(path, "bravo bravo\n"));

	/* gc with version-1 options keeps everything referenced */
	old_gc_options_v1 go = {1, 0, 0, 0, 0};
	cairn_gc_result gr = CAIRN_GC_RESULT_INIT;
	CHECK_EQ(cairn_gc(&gr, repo, (const cairn_gc_options *)&go), 0);
	CHECK_EQ(gr.snapshots, 3);
	check_fsck_clean(repo_path);

	/* versions newer than the library's: refused, naming the version, nothing done */
	cairn_take_options tn = CAIRN_TAKE_OPTIONS_INIT;
	tn.root = root;
	tn.name = "never";
	tn.version = CAIRN_TAKE_OPTIONS_VERSION + 1;
	cairn_take_result rn = CAIRN_TAKE_RESULT_INIT;
	char needle[64];
	snprintf(needle, sizeof(needle), "options version %u", CAIRN_TAKE_OPTIONS_VERSION + 1);
	check_refused(cairn_take(&rn, repo, &tn), needle);
	CHECK_EQ(cairn_error_exit_code(CAIRN_EUSAGE), 2);
	tn.version = 0;
	check_refused(cairn_take(&rn, repo, &tn), "options version 0");
	tn.version = CAIRN_TAKE_OPTIONS_VERSION;
	rn.version = CAIRN_TAKE_RESULT_VERSION + 1;
	snprintf(needle, sizeof(needle), "result version %u", CAIRN_TAKE_RESULT_VERSION + 1);
	check_refused(cairn_take(&rn, repo, &tn), needle);
	rn.version = 0; /* a result struct never initialised */
	check_refused(cairn_take(&rn, repo, &tn), "result version 0");
	cairn_restore_options rn_o = CAIRN_RESTORE_OPTIONS_INIT;
	rn_o.version = CAIRN_RESTORE_OPTIONS_VERSION + 1;
	snprintf(needle, sizeof(needle), "options version %u", CAIRN_RESTORE_OPTIONS_VERSION + 1);
	check_refused(cairn_restore(NULL, repo, res2.snapshot, target, &rn_o), needle);
	cairn_gc_options gn = CAIRN_GC_OPTIONS_INIT;
	gn.version = CAIRN_GC_OPTIONS_VERSION + 1;
	check_refused(cairn_gc(NULL, repo, &gn), "options version");
	cairn_repo_stats sn = CAIRN_REPO_STATS_INIT;
	sn.version = CAIRN_REPO_STATS_VERSION + 1;
	check_refused(cairn_stats(&sn, repo), "result version");
	/* both callbacks at once */
	tn.event_cb = count_event;
	tn.event_cancel_cb = never_cancel;
	rn.version = CAIRN_TAKE_RESULT_VERSION;
	check_refused(cairn_take(&rn, repo, &tn), "both set");
	CHECK_EQ(api_snapshot_count(repo), 3); /* none of the refused takes committed */

	cairn_repo_free(repo);
	api_rmtree(tmp);
	return t_done();
}
