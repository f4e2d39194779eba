/* Hostile repositories: a tree object with a forbidden entry name ("..",
 * ".", "a/b", "", a NUL inside), correctly framed, checksummed and indexed
 * so that only the name rules can stop it, must make restore fail with
 * CAIRN_ECORRUPT and write nothing outside its target. And restore --force
 * into a target holding a symlink where the snapshot has a directory must
 * not follow it. A gc marks record of many candidates loads in linear time. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cairn.h"
#include "format.h"
#include "index.h"
#include "io.h"
#include "pack.h"
#include "repo.h"
#include "session.h"
#include "snapshot.h"
#include "t.h"
#include "tree.h"
#include "writer.h"

static char base[] = "/tmp/cairn-test-hostile-XXXXXX";

/* A tree object's start, framed by hand: one regular file named
 * name[0..len) of size bytes, up to its payload. */
static void raw_file_head(buf *b, const char *name, size_t len, uint64_t size)
{
	buf_init(b);
	buf_header(b, MAGIC_TREE, 0);
	buf_u32(b, 1);
	buf_u16(b, (uint16_t)len);
	buf_put(b, name, len);
	buf_u8(b, TREE_REG);
	buf_u32(b, S_IFREG | 0644);
	buf_u32(b, 0);
	buf_u32(b, 0);
	buf_u64(b, 1700000000);
	buf_u32(b, 0);
	buf_u64(b, 1700000000);
	buf_u32(b, 0);
	buf_u64(b, 1);  /* ino */
	buf_u64(b, size);
	buf_u32(b, 0);
	buf_u32(b, 0);
	buf_u32(b, 0);  /* hardlink */
	buf_u32(b, 0);  /* nxattrs */
}

/* A tree of one empty regular file named name[0..len), framed by hand. */
static uint8_t *raw_tree(const char *name, size_t len, size_t *out_len)
{
	buf b;
	raw_file_head(&b, name, len, 0);
	buf_u32(&b, 0);  /* nextents */
	buf_u32(&b, 0);  /* nchunks */
	buf_check(&b);
	return buf_take(&b, out_len);
}

/* Commit a snapshot whose content tree is the given bytes; returns its id. */
static int craft(cairn_repo *r, const uint8_t *inner, size_t inner_len, char id_out[65])
{
	oid inner_id, top_id;
	hash_sha256(&inner_id, inner, inner_len);
	tree_entry top;
	memset(&top, 0, sizeof(top));
	top.name = "root";
	top.name_len = 4;
	top.type = TREE_DIR;
	top.mode = S_IFDIR | 0755;
	top.subtree = inner_id;
	uint8_t *top_data, *pack_data, *seg, *man;
	size_t top_len, pack_len, seg_len, man_len, nblobs;
	CHECK(tree_encode(&top, 1, &top_data, &top_len) == 0);
	hash_sha256(&top_id, top_data, top_len);

	pack_writer *pw;
	const pack_blob *blobs;
	CHECK(pack_writer_new(&pw) == 0);
	CHECK(pack_writer_add(pw, &inner_id, BLOB_TREE, COMP_NONE, inner, (uint32_t)inner_len,
	                      (uint32_t)inner_len) == 0);
	CHECK(pack_writer_add(pw, &top_id, BLOB_TREE, COMP_NONE, top_data, (uint32_t)top_len,
	                      (uint32_t)top_len) == 0);
	CHECK(pack_writer_finish(pw, &pack_data, &pack_len, &blobs, &nblobs) == 0);
	uint8_t pack_id[PACK_ID_LEN];
	char pack_name[64];
	CHECK(io_random(pack_id, sizeof(pack_id)) == 0);
	repo_pack_name(pack_name, pack_id);
	CHECK(store_put(r->st, pack_name, pack_data, pack_len, STORE_EXCL) == 0);

	index_entry e[2];
	memset(e, 0, sizeof(e));
	for (size_t i = 0; i < 2 && i < nblobs; i++) {
		e[i].id = blobs[i].id;
		memcpy(e[i].pack, pack_id, PACK_ID_LEN);
		e[i].offset = blobs[i].offset;
		e[i].raw_len = blobs[i].raw_len;
		e[i].stored_len = blobs[i].stored_len;
		e[i].type = blobs[i].type;
		e[i].comp = blobs[i].comp;
	}
	CHECK(index_segment_encode(e, 2, &seg, &seg_len) == 0);
	char seg_name[64], hex[33];
	hex_encode(hex, pack_id, 16);
	snprintf(seg_name, sizeof(seg_name), "index/%s", hex);
	CHECK(store_put(r->st, seg_name, seg, seg_len, STORE_EXCL) == 0);

	snapshot_manifest m;
	memset(&m, 0, sizeof(m));
	m.tree = top_id;
	m.time_ns = 1;
	m.user = "mallory";
	m.name = "evil";
	m.root_path = "/";
	m.hostname = "h";
	CHECK(snapshot_encode(&m, &man, &man_len) == 0);
	oid sid;
	hash_sha256(&sid, man, man_len);
	oid_hex(id_out, &sid);
	char man_name[128];
	snprintf(man_name, sizeof(man_name), "snapshots/%s", id_out);
	CHECK(store_put(r->st, man_name, man, man_len, STORE_EXCL) == 0);
	pack_writer_free(pw);
	free(top_data);
	free(pack_data);
	free(seg);
	free(man);
	return 0;
}

/* Entries in dir, "." and ".." aside; -1 when it cannot be read. */
static int entries_in(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
	closedir(d);
	return n;
}

static void hostile_names(void)
{
	static const struct {
		const char *name;
		size_t len;
	} bad[] = {{"..", 2}, {".", 1}, {"a/b", 3}, {"../escape", 9}, {"", 0}, {"a\0b", 3}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char repo[600], target[600], cmd[700];
		snprintf(repo, sizeof(repo), "%s/repo%zu", base, i);
		snprintf(target, sizeof(target), "%s/out%zu/target", base, i);
		snprintf(cmd, sizeof(cmd), "mkdir -p %s/out%zu", base, i);
		CHECK(system(cmd) == 0);
		CHECK(cairn_repo_init(repo, NULL) == 0);
		cairn_repo *r;
		CHECK(cairn_repo_open(&r, repo) == 0);
		size_t len;
		uint8_t *inner = raw_tree(bad[i].name, bad[i].len, &len);
		char id[65];
		craft(r, inner, len, id);
		free(inner);
		cairn_repo_free(r);

		CHECK(cairn_repo_open(&r, repo) == 0);
		int rc = cairn_restore(NULL, r, id, target, NULL);
		printf("name #%zu: restore -> %d (%s)\n", i, rc, cairn_error_last());
		CHECK_EQ(rc, CAIRN_ECORRUPT);
		char outdir[600];
		snprintf(outdir, sizeof(outdir), "%s/out%zu", base, i);
		/* at most the (empty) target itself */
		CHECK(entries_in(outdir) <= 1);
		if (entries_in(outdir) == 1) CHECK_EQ(entries_in(target), 0);
		cairn_repo_free(r);
	}
}

static void force_over_symlink(void)
{
	char src[600], repo[600], target[600], outside[600], path[700];
	snprintf(src, sizeof(src), "%s/src", base);
	snprintf(repo, sizeof(repo), "%s/repo-force", base);
	snprintf(target, sizeof(target), "%s/target-force", base);
	snprintf(outside, sizeof(outside), "%s/outside", base);
	CHECK(mkdir(src, 0755) == 0);
	snprintf(path, sizeof(path), "%s/sub", src);
	CHECK(mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/sub/f", src);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("data", f);
		fclose(f);
	}
	CHECK(cairn_repo_init(repo, NULL) == 0);
	cairn_repo *r;
	CHECK(cairn_repo_open(&r, repo) == 0);
	cairn_take_options to = CAIRN_TAKE_OPTIONS_INIT;
	to.root = src;
	to.name = "s";
	cairn_take_result tr = CAIRN_TAKE_RESULT_INIT;
	CHECK(cairn_take(&tr, r, &to) == 0);

	/* the target already holds sub -> outside and f -> outside/victim */
	CHECK(mkdir(outside, 0755) == 0);
	CHECK(mkdir(target, 0755) == 0);
	snprintf(path, sizeof(path), "%s/sub", target);
	CHECK(symlink(outside, path) == 0);
	cairn_restore_options ro = CAIRN_RESTORE_OPTIONS_INIT;
	CHECK_EQ(cairn_restore(NULL, r, tr.snapshot, target, &ro), CAIRN_EUSAGE); /* not empty */
	ro.force = 1;
	int rc = cairn_restore(NULL, r, tr.snapshot, target, &ro);
	printf("force over symlink: restore -> %d (%s)\n", rc, cairn_error_last());
	CHECK_EQ(rc, 0);
	CHECK_EQ(entries_in(outside), 0);
	struct stat st;
	snprintf(path, sizeof(path), "%s/sub", target);
	CHECK(lstat(path, &st) == 0 && S_ISDIR(st.st_mode));
	snprintf(path, sizeof(path), "%s/sub/f", target);
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 4);
	cairn_repo_free(r);
}

/* A tree of one sparse file "s" of size bytes whose only data is its last
 * byte, framed by hand (tree_encode refuses sizes past TREE_FILE_SIZE_MAX). */
static uint8_t *raw_sparse_tree(uint64_t size, const oid *chunk, size_t *out_len)
{
	buf b;
	raw_file_head(&b, "s", 1, size);
	buf_u32(&b, 1);    /* nextents */
	buf_u64(&b, size - 1);
	buf_u64(&b, 1);
	buf_u32(&b, 1);    /* nchunks */
	buf_put(&b, chunk->b, OID_LEN);
	buf_u32(&b, 1);
	buf_check(&b);
	return buf_take(&b, out_len);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A regular file larger than any file system holds is damage for every
 * reader (export used to spin for ever writing its hole); the largest
 * size allowed exports its one byte at once. */
static void huge_sparse(void)
{
	char repo[600], target[600], id[65];
	snprintf(repo, sizeof(repo), "%s/repo-huge", base);
	snprintf(target, sizeof(target), "%s/target-huge", base);
	CHECK(cairn_repo_init(repo, NULL) == 0);
	cairn_repo *r;
	CHECK(cairn_repo_open(&r, repo) == 0);
	oid chunk;
	hash_sha256(&chunk, (const uint8_t *)"x", 1);
	size_t len;
	uint8_t *inner = raw_sparse_tree(UINT64_C(1) << 62, &chunk, &len);
	craft(r, inner, len, id);
	free(inner);
	cairn_repo_free(r); /* open again: the index is read at open */
	CHECK(cairn_repo_open(&r, repo) == 0);
	int devnull = open("/dev/null", O_WRONLY);
	alarm(60); /* the old export never ends */
	int rc = cairn_export(NULL, r, id, devnull, NULL);
	printf("export of a 2^62-byte file: %d (%s)\n", rc, cairn_error_last());
	CHECK_EQ(rc, CAIRN_ECORRUPT);
	CHECK(strstr(cairn_error_last(), "more than a file system holds") != NULL);
	CHECK_EQ(cairn_error_exit_code(rc), 4);
	CHECK_EQ(cairn_restore(NULL, r, id, target, NULL), CAIRN_ECORRUPT);
	CHECK_EQ(cairn_cat(r, id, "s", devnull), CAIRN_ECORRUPT);

	/* TREE_FILE_SIZE_MAX itself, committed as a take would */
	snap_writer *w;
	CHECK_EQ(writer_new(&w, r), 0);
	tree_chunk ch = {.size = 1};
	size_t stored;
	CHECK_EQ(writer_put_chunk(w, (const uint8_t *)"x", 1, &ch.id, &stored), 0);
	tree_extent ext = {TREE_FILE_SIZE_MAX - 1, 1};
	tree_entry f;
	memset(&f, 0, sizeof(f));
	f.name = "s";
	f.name_len = 1;
	f.type = TREE_REG;
	f.mode = S_IFREG | 0644;
	f.size = TREE_FILE_SIZE_MAX;
	f.nextents = 1;
	f.extents = &ext;
	f.nchunks = 1;
	f.chunks = &ch;
	oid inner_id, top_id;
	CHECK_EQ(writer_put_tree(w, &f, 1, &inner_id, &stored), 0);
	tree_entry root;
	memset(&root, 0, sizeof(root));
	root.name = "root";
	root.name_len = 4;
	root.type = TREE_DIR;
	root.mode = S_IFDIR | 0755;
	root.subtree = inner_id;
	CHECK_EQ(writer_put_tree(w, &root, 1, &top_id, &stored), 0);
	snapshot_manifest m;
	memset(&m, 0, sizeof(m));
	m.tree = top_id;
	m.user = "mallory";
	m.name = "huge";
	m.root_path = "/";
	m.hostname = "h";
	CHECK_EQ(writer_commit(w, &m, id), 0);
	writer_free(w);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cairn_export_result er = CAIRN_EXPORT_RESULT_INIT;
	rc = cairn_export(&er, r, id, devnull, NULL);
	double took = seconds_since(&t0);
	printf("export of a %llu-byte sparse file: %d (%s), %.2f s\n", (unsigned long long)TREE_FILE_SIZE_MAX,
	       rc, rc ? cairn_error_last() : "", took);
	CHECK_EQ(rc, 0);
	CHECK_EQ(er.bytes, 1);
	CHECK(took < 30);
	alarm(0);
	close(devnull);
	cairn_repo_free(r);
}

/* gc marks with 100000 candidates (and one name twice) decode in linear
 * time: each was searched for in the list before (5e9 comparisons here). */
static void many_candidates(void)
{
	enum { N = 100000 };
	buf b;
	char name[32];
	buf_init(&b);
	buf_header(&b, MAGIC_GCMARKS, 0);
	buf_u64(&b, 1);
	buf_u32(&b, 0);
	buf_u32(&b, N + 1);
	for (int i = 0; i <= N; i++) {
		snprintf(name, sizeof(name), "tmp/c%06d", i == N ? 0 : i);
		buf_u8(&b, CAND_TMP);
		buf_u16(&b, (uint16_t)strlen(name));
		buf_put(&b, name, strlen(name));
		buf_u64(&b, (uint64_t)(i + 10));
	}
	buf_check(&b);
	size_t len;
	uint8_t *data = buf_take(&b, &len);
	marks ms;
	CHECK_EQ(marks_init(&ms), 0);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(marks_decode(&ms, data, len, "marks", NULL), 0);
	double took = seconds_since(&t0);
	printf("gc marks of %d candidates decoded in %.3f s\n", N + 1, took);
	CHECK(took < 5);
	cand *c = cand_find(&ms, "tmp/c000000");
	CHECK(ms.nc == N && c && c->seen_ns == N + 10); /* merged, the later time kept */
	/* a dropped candidate's name added again is a new one, and the one found */
	c->drop = 1;
	CHECK(cand_find(&ms, "tmp/c000000") == NULL);
	CHECK_EQ(cand_add(&ms, "tmp/c000000", 7, CAND_TMP), 0);
	c = cand_find(&ms, "tmp/c000000");
	CHECK(ms.nc == N + 1 && c && c->seen_ns == 7 && !c->drop);
	CHECK_EQ(cand_add(&ms, "tmp/c000000", 9, CAND_TMP), 0);
	CHECK(ms.nc == N + 1 && c->seen_ns == 9);
	marks_free(&ms);
	free(data);
}

int main(void)
{
	CHECK(mkdtemp(base) != NULL);
	hostile_names();
	force_over_symlink();
	huge_sparse();
	many_candidates();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	CHECK(system(cmd) == 0);
	return t_done();
}
