/* Hostile repositories: a tree object with a forbidden entry name ("..",
 * ".", "a/b", "", a NUL inside), correctly framed, checksummed and indexed
 * so that only the name rules can stop it, must make restore fail with
 * CAIRN_ECORRUPT and write nothing outside its target. And restore --force
 * into a target holding a symlink where the snapshot has a directory must
 * not follow it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cairn.h"
#include "format.h"
#include "index.h"
#include "pack.h"
#include "repo.h"
#include "snapshot.h"
#include "t.h"
#include "tree.h"

static char base[] = "/tmp/cairn-test-hostile-XXXXXX";

/* A tree of one empty regular file named name[0..len), framed by hand. */
static uint8_t *raw_tree(const char *name, size_t len, size_t *out_len)
{
	buf b;
	buf_init(&b);
	buf_header(&b, MAGIC_TREE, 0);
	buf_u32(&b, 1);
	buf_u16(&b, (uint16_t)len);
	buf_put(&b, name, len);
	buf_u8(&b, TREE_REG);
	buf_u32(&b, S_IFREG | 0644);
	buf_u32(&b, 0);
	buf_u32(&b, 0);
	buf_u64(&b, 1700000000);
	buf_u32(&b, 0);
	buf_u64(&b, 1700000000);
	buf_u32(&b, 0);
	buf_u64(&b, 1);  /* ino */
	buf_u64(&b, 0);  /* size */
	buf_u32(&b, 0);
	buf_u32(&b, 0);
	buf_u32(&b, 0);  /* hardlink */
	buf_u32(&b, 0);  /* nxattrs */
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
	CHECK(repo_random(pack_id, sizeof(pack_id)) == 0);
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
	cairn_take_result tr;
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

int main(void)
{
	CHECK(mkdtemp(base) != NULL);
	hostile_names();
	force_over_symlink();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	CHECK(system(cmd) == 0);
	return t_done();
}
