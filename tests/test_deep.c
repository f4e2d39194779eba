/* Deep trees: a chain of DEPTH directories, committed through the snapshot
 * writer as any take would, must go through every tree walker (fsck with
 * its usage check, diff both ways and side by side, export, ls -R, gc,
 * restore with and without --force) on a small stack and with few file
 * descriptors: a walker that recurses on the C stack, or holds a
 * descriptor per level, fails here. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "t.h"
#include "tree.h"
#include "writer.h"

#define DEPTH 20000
#define SMALL_STACK (256u * 1024u) /* a walker recursing 20,000 levels needs megabytes */
#define FD_LIMIT 256

/* on tmpfs when there is one: ext4 takes ~20 s to remove the chain (rm -rf alike) */
static char base[64];
static char repo_path[600];

static tree_entry dir_entry(const char *name, const oid *subtree)
{
	tree_entry e;
	memset(&e, 0, sizeof(e));
	e.name = name;
	e.name_len = (uint16_t)strlen(name);
	e.type = TREE_DIR;
	e.mode = S_IFDIR | 0755;
	e.mtime_sec = 1700000000;
	e.subtree = *subtree;
	return e;
}

/* Commit a snapshot named name: DEPTH directories "d" in a chain, the last
 * holding a file "f" with content (NULL: the root holds a file "d" with
 * "flat\n" instead, where the others have the chain's top). */
static void commit_chain(cairn_repo *r, const char *name, const char *content, char id[65], oid *top_content)
{
	snap_writer *w;
	CHECK_EQ(writer_new(&w, r), 0);
	CHECK_EQ(writer_set_user(w, "alice", 0), 0);
	const char *data = content ? content : "flat\n";
	tree_chunk ch;
	size_t stored;
	CHECK_EQ(writer_put_chunk(w, (const uint8_t *)data, strlen(data), &ch.id, &stored), 0);
	ch.size = (uint32_t)strlen(data);
	tree_entry f;
	memset(&f, 0, sizeof(f));
	f.name = content ? "f" : "d";
	f.name_len = 1;
	f.type = TREE_REG;
	f.mode = S_IFREG | 0644;
	f.mtime_sec = 1700000000;
	f.size = ch.size;
	f.nchunks = 1;
	f.chunks = &ch;
	oid cur;
	CHECK_EQ(writer_put_tree(w, &f, 1, &cur, &stored), 0);
	for (int i = 0; content && i < DEPTH; i++) {
		tree_entry d = dir_entry("d", &cur);
		CHECK_EQ(writer_put_tree(w, &d, 1, &cur, &stored), 0);
	}
	if (top_content) *top_content = cur;
	tree_entry root = dir_entry("root", &cur);
	oid top;
	CHECK_EQ(writer_put_tree(w, &root, 1, &top, &stored), 0);
	snapshot_manifest m;
	memset(&m, 0, sizeof(m));
	m.tree = top;
	m.time_ns = 1;
	m.user = "alice";
	m.name = (char *)name;
	m.root_path = "/deep";
	m.hostname = "h";
	m.files = 1;
	m.dirs = content ? DEPTH + 1 : 1;
	m.bytes = ch.size;
	CHECK_EQ(writer_commit(w, &m, id), 0);
	writer_free(w);
}

/* A snapshot of user bob that references a's content (as an unchanged
 * directory of a take's parent is): the writer counts every blob below. */
static void reference_chain(cairn_repo *r, const oid *content)
{
	snap_writer *w;
	char id[65];
	size_t stored;
	oid top;
	CHECK_EQ(writer_new(&w, r), 0);
	CHECK_EQ(writer_set_user(w, "bob", 0), 0);
	int rc = writer_ref(w, content, BLOB_TREE);
	printf("writer_ref of the chain: %d (%s)\n", rc, rc ? cairn_error_last() : "");
	CHECK_EQ(rc, 0);
	tree_entry root = dir_entry("root", content);
	CHECK_EQ(writer_put_tree(w, &root, 1, &top, &stored), 0);
	snapshot_manifest m;
	memset(&m, 0, sizeof(m));
	m.tree = top;
	m.user = "bob";
	m.name = "again";
	m.root_path = "/deep";
	m.hostname = "h";
	CHECK_EQ(writer_commit(w, &m, id), 0);
	writer_free(w);
	cairn_usage u;
	CHECK_EQ(cairn_usage_get(&u, r, "bob"), 0);
	CHECK(u.used_bytes > DEPTH * 40); /* every tree of the chain counted */
}

/* A pax archive of one file, DEPTH directories "d" down, content "gamma\n". */
static void deep_tar(const char *path)
{
	size_t len = (size_t)DEPTH * 2 + 2;
	char *name = malloc(len);
	for (int i = 0; i < DEPTH; i++) memcpy(name + 2 * i, "d/", 2);
	memcpy(name + 2 * DEPTH, "f", 2);
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	CHECK_EQ(archive_write_set_format_pax(a), ARCHIVE_OK);
	CHECK_EQ(archive_write_open_filename(a, path), ARCHIVE_OK);
	archive_entry_copy_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, 6);
	archive_entry_set_mtime(e, 1700000000, 0);
	CHECK_EQ(archive_write_header(a, e), ARCHIVE_OK);
	CHECK_EQ(archive_write_data(a, "gamma\n", 6), 6);
	CHECK_EQ(archive_write_close(a), ARCHIVE_OK);
	archive_entry_free(e);
	archive_write_free(a);
	free(name);
}

static int count_cb(const char *dir, const cairn_entry *e, void *payload)
{
	(void)dir;
	(void)e;
	(*(size_t *)payload)++;
	return 0;
}

/* The content of the file at the bottom of a restored chain, or "" */
static void bottom_file(const char *target, char *out, size_t cap)
{
	out[0] = 0;
	int fd = open(target, O_RDONLY | O_DIRECTORY);
	for (int i = 0; fd >= 0 && i < DEPTH; i++) {
		int sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		close(fd);
		fd = sub;
	}
	if (fd < 0) return;
	int ff = openat(fd, "f", O_RDONLY);
	close(fd);
	if (ff < 0) return;
	ssize_t n = read(ff, out, cap - 1);
	out[n > 0 ? n : 0] = 0;
	close(ff);
}

static size_t fsck_damage(void)
{
	cairn_fsck_report *rep = NULL;
	cairn_fsck_stats fs = CAIRN_FSCK_STATS_INIT;
	int rc = cairn_fsck(&rep, repo_path, NULL);
	CHECK_EQ(rc, 0);
	if (rc < 0) printf("fsck: %s\n", cairn_error_last());
	if (!rep) return (size_t)-1;
	cairn_fsck_report_stats(rep, &fs);
	for (size_t i = 0; i < cairn_fsck_report_count(rep); i++) {
		const cairn_fsck_problem *p = cairn_fsck_report_get(rep, i);
		if (p->severity == CAIRN_FSCK_DAMAGE) printf("fsck: %s %s: %s\n", p->kind, p->object, p->message);
	}
	cairn_fsck_report_free(rep);
	return fs.damaged;
}

static void *walkers(void *arg)
{
	(void)arg;
	cairn_repo *r;
	char a[65], b[65], flat[65], target[700], got[64];
	CHECK_EQ(cairn_repo_open(&r, repo_path), 0);
	oid a_content;
	commit_chain(r, "a", "alpha\n", a, &a_content);
	commit_chain(r, "b", "beta\n", b, NULL);
	commit_chain(r, "flat", NULL, flat, NULL);
	reference_chain(r, &a_content);

	CHECK_EQ(fsck_damage(), 0);

	cairn_diff_result dr = CAIRN_DIFF_RESULT_INIT;
	CHECK_EQ(cairn_diff(&dr, r, a, b, NULL, NULL), 0);
	printf("diff a b: %llu changed (%s)\n", (unsigned long long)dr.changed, cairn_error_last());
	CHECK_EQ(dr.changed, 1);
	CHECK_EQ(cairn_diff(&dr, r, flat, a, NULL, NULL), 0);
	CHECK_EQ(dr.added, DEPTH); /* d/.../d (DEPTH - 1 below d) and f */
	CHECK_EQ(dr.changed, 1);   /* d: a file, then a directory */
	CHECK_EQ(cairn_diff(&dr, r, a, flat, NULL, NULL), 0);
	CHECK_EQ(dr.removed, DEPTH);

	size_t listed = 0;
	CHECK_EQ(cairn_ls(r, a, "", 1, count_cb, &listed), 0);
	CHECK_EQ(listed, DEPTH + 1);

	/* to /dev/null: the pax headers of 20,000 paths up to 40 KB long are 400 MB */
	int fd = open("/dev/null", O_WRONLY);
	cairn_export_result er = CAIRN_EXPORT_RESULT_INIT;
	int rc = cairn_export(&er, r, a, fd, NULL);
	printf("export: %d (%s)\n", rc, rc ? cairn_error_last() : "");
	CHECK_EQ(rc, 0);
	CHECK_EQ(er.entries, DEPTH + 2);
	close(fd);

	/* import over base a: the base's trees are loaded, the archive's
	 * file replaces a's, every tree written again */
	char tar[700];
	snprintf(tar, sizeof(tar), "%s/deep.tar", base);
	deep_tar(tar);
	cairn_import_options io = CAIRN_IMPORT_OPTIONS_INIT;
	cairn_import_result ir = CAIRN_IMPORT_RESULT_INIT;
	io.name = "imported";
	io.user = "alice";
	io.base = a;
	fd = open(tar, O_RDONLY);
	rc = cairn_import(&ir, r, fd, &io);
	close(fd);
	printf("import over the chain: %d (%s)\n", rc, rc ? cairn_error_last() : "");
	CHECK_EQ(rc, 0);
	if (rc == 0) {
		CHECK_EQ(cairn_diff(&dr, r, a, ir.snapshot, NULL, NULL), 0);
		CHECK_EQ(dr.changed, 1);
		CHECK_EQ(dr.added + dr.removed, 0);
	}

	snprintf(target, sizeof(target), "%s/target", base);
	rc = cairn_restore(NULL, r, a, target, NULL);
	printf("restore: %d (%s)\n", rc, rc ? cairn_error_last() : "");
	CHECK_EQ(rc, 0);
	bottom_file(target, got, sizeof(got));
	CHECK(strcmp(got, "alpha\n") == 0);
	cairn_restore_options ro = CAIRN_RESTORE_OPTIONS_INIT;
	ro.force = 1;
	CHECK_EQ(cairn_restore(NULL, r, b, target, &ro), 0); /* every directory reused */
	bottom_file(target, got, sizeof(got));
	CHECK(strcmp(got, "beta\n") == 0);
	rc = cairn_restore(NULL, r, flat, target, &ro); /* the chain removed for a file */
	printf("restore --force over the chain: %d (%s)\n", rc, rc ? cairn_error_last() : "");
	CHECK_EQ(rc, 0);
	struct stat sb;
	snprintf(target, sizeof(target), "%s/target/d", base);
	CHECK(lstat(target, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 5);

	CHECK_EQ(cairn_forget(r, b, NULL), 0);
	cairn_gc_options go = CAIRN_GC_OPTIONS_INIT;
	go.grace_ms = 0;
	cairn_gc_result gr = CAIRN_GC_RESULT_INIT;
	rc = cairn_gc(&gr, r, &go);
	printf("gc: %d (%s), %llu live blobs\n", rc, rc ? cairn_error_last() : "",
	       (unsigned long long)gr.live_blobs);
	CHECK_EQ(rc, 0);
	CHECK_EQ(fsck_damage(), 0);
	cairn_repo_free(r);
	return NULL;
}

int main(void)
{
	snprintf(base, sizeof(base), "%s/cairn-test-deep-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	CHECK(mkdtemp(base) != NULL);
	snprintf(repo_path, sizeof(repo_path), "%s/repo", base);
	CHECK_EQ(cairn_repo_init(repo_path, NULL), 0);
	/* soft and hard: restore raises its soft limit to the hard one */
	struct rlimit rl = {FD_LIMIT, FD_LIMIT};
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);

	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	CHECK_EQ(pthread_attr_setstacksize(&attr, SMALL_STACK), 0);
	CHECK_EQ(pthread_create(&t, &attr, walkers, NULL), 0);
	pthread_join(t, NULL);
	pthread_attr_destroy(&attr);

	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	CHECK(system(cmd) == 0);
	return t_done();
}
