/* Restore (internal.h): cairn_ls and cairn_cat: a path resolved in a
 * snapshot's trees, listed or its content written out. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "io.h"

static const uint8_t zeros[ZERO_LEN];

/* Where a path leads: t is the tree of the directory holding the entry (or of
 * the root when e is NULL), dir its path relative to the root ("" or "a/b"). */
typedef struct resolved {
	snapshot_manifest m;
	tree t;
	const tree_entry *e;
	char *dir;
} resolved;

static void resolved_free(resolved *r)
{
	snapshot_manifest_free(&r->m);
	tree_free(&r->t);
	free(r->dir);
	memset(r, 0, sizeof(*r));
}

static int resolve(resolved *res, cairn_repo *repo, const char *snap_id, const char *path)
{
	int rc;
	char sid[13];
	size_t dlen = 0;
	memset(res, 0, sizeof(*res));
	if (!snap_id) return error_set(CAIRN_EUSAGE, "no snapshot given");
	if (!path) path = "";
	/* reject "." and ".." before touching the repository */
	for (const char *p = path; *p;) {
		while (*p == '/') p++;
		size_t n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return error_set(CAIRN_EUSAGE, "path %s: \".\" and \"..\" are not allowed", path);
		p += n;
	}
	if (!(res->dir = malloc(strlen(path) + 1))) return ERR_OOM();
	res->dir[0] = 0;
	if ((rc = repo_load_snapshot(repo, snap_id, &res->m)) < 0) goto fail;
	tree top;
	if ((rc = load_top(repo, &res->m, snap_id, &top)) < 0) goto fail;
	rc = repo_load_tree(repo, &top.entries[0].subtree, &res->t);
	tree_free(&top);
	if (rc < 0) {
		error_prefix("snapshot %s: root", restore_short_id(sid, snap_id));
		goto fail;
	}
	const char *p = path;
	for (;;) {
		while (*p == '/') p++;
		if (!*p) break;
		size_t n = strcspn(p, "/");
		if (res->e) {
			/* descend into the entry found by the previous component */
			tree sub;
			if (res->e->type != TREE_DIR) {
				rc = error_set(CAIRN_ENOTFOUND, "path %s not found in snapshot %s", path,
				               restore_short_id(sid, snap_id));
				goto fail;
			}
			if ((rc = repo_load_tree(repo, &res->e->subtree, &sub)) < 0) {
				error_prefix("%s", path);
				goto fail;
			}
			if (dlen) res->dir[dlen++] = '/';
			memcpy(res->dir + dlen, res->e->name, res->e->name_len);
			dlen += res->e->name_len;
			res->dir[dlen] = 0;
			tree_free(&res->t);
			res->t = sub;
			res->e = NULL;
		}
		if (!tree_name_ok(p, n) || !(res->e = tree_find(&res->t, p, n))) {
			rc = error_set(CAIRN_ENOTFOUND, "path %s not found in snapshot %s", path,
			               restore_short_id(sid, snap_id));
			goto fail;
		}
		p += n;
	}
	return 0;
fail:
	resolved_free(res);
	return rc;
}

typedef struct lframe {
	tree t;
	size_t next, pathlen;
} lframe;

/* List tree t (the directory at dir) with cb, depth-first in name order when
 * recursive. Takes ownership of t. */
static int list_tree(cairn_repo *repo, tree *t, const char *dir, int recursive, cairn_ls_cb cb,
                     void *payload)
{
	int rc = 0;
	lframe *st = NULL;
	size_t n = 0, cap = 0, plen = strlen(dir), pcap = plen + 512;
	char *path = malloc(pcap);
	if (!path) {
		tree_free(t);
		return ERR_OOM();
	}
	memcpy(path, dir, plen + 1);
	if (!(st = malloc(sizeof(*st) * (cap = 16)))) {
		tree_free(t);
		rc = ERR_OOM();
		goto done;
	}
	st[n++] = (lframe){*t, 0, plen};
	memset(t, 0, sizeof(*t));
	while (n > 0) {
		lframe *f = &st[n - 1];
		if (f->next == f->t.n) {
			tree_free(&f->t);
			n--;
			continue;
		}
		const tree_entry *e = &f->t.entries[f->next++];
		cairn_entry ce;
		path[f->pathlen] = 0;
		tree_entry_public(&ce, e);
		if ((rc = cb(path, &ce, payload)) != 0) goto done;
		if (!recursive || e->type != TREE_DIR) continue;

		size_t need = f->pathlen + 1 + e->name_len + 1;
		if (need > pcap) {
			char *np = realloc(path, pcap = need * 2);
			if (!np) {
				rc = ERR_OOM();
				goto done;
			}
			path = np;
		}
		if (n == cap) {
			lframe *ns = realloc(st, sizeof(*st) * (cap *= 2));
			if (!ns) {
				rc = ERR_OOM();
				goto done;
			}
			st = ns;
			f = &st[n - 1];
		}
		size_t at = f->pathlen;
		if (at) path[at++] = '/';
		memcpy(path + at, e->name, e->name_len);
		at += e->name_len;
		path[at] = 0;
		tree sub;
		if ((rc = repo_load_tree(repo, &e->subtree, &sub)) < 0) {
			error_prefix("/%s", path);
			goto done;
		}
		st[n++] = (lframe){sub, 0, at};
	}
done:
	while (n > 0) tree_free(&st[--n].t);
	free(st);
	free(path);
	return rc;
}

CAIRN_EXTERN int cairn_ls(cairn_repo *repo, const char *snap_id, const char *path, int recursive,
                          cairn_ls_cb cb, void *payload)
{
	resolved res;
	if (!cb) return error_set(CAIRN_EUSAGE, "ls: no callback given");
	int rc = resolve(&res, repo, snap_id, path);
	if (rc < 0) return rc;
	if (res.e && res.e->type != TREE_DIR) {
		/* a file: that one entry */
		cairn_entry ce;
		tree_entry_public(&ce, res.e);
		rc = cb(res.dir, &ce, payload);
		goto done;
	}
	if (res.e) {
		tree sub;
		size_t dlen = strlen(res.dir);
		char *dir = malloc(dlen + 1 + res.e->name_len + 1);
		if (!dir) {
			rc = ERR_OOM();
			goto done;
		}
		if (dlen) {
			memcpy(dir, res.dir, dlen);
			dir[dlen++] = '/';
		}
		memcpy(dir + dlen, res.e->name, res.e->name_len + 1);
		if ((rc = repo_load_tree(repo, &res.e->subtree, &sub)) < 0) {
			error_prefix("/%s", dir);
			free(dir);
			goto done;
		}
		rc = list_tree(repo, &sub, dir, recursive, cb, payload);
		free(dir);
		goto done;
	}
	rc = list_tree(repo, &res.t, "", recursive, cb, payload);
done:
	resolved_free(&res);
	return rc;
}

typedef struct cat_out {
	int fd;
	uint64_t pos;
} cat_out;

static int write_zeros(int fd, uint64_t n)
{
	while (n > 0) {
		size_t k = n < ZERO_LEN ? (size_t)n : ZERO_LEN;
		int rc = io_write_full(fd, zeros, k, "output");
		if (rc < 0) return rc;
		n -= k;
	}
	return 0;
}

static int cat_emit(void *ctx, uint64_t off, const uint8_t *p, size_t n)
{
	cat_out *o = ctx;
	int rc = write_zeros(o->fd, off - o->pos);
	if (rc == 0) rc = io_write_full(o->fd, p, n, "output");
	o->pos = off + n;
	return rc;
}

CAIRN_EXTERN int cairn_cat(cairn_repo *repo, const char *snap_id, const char *path, int fd)
{
	resolved res;
	const char *shown = path && *path ? path : "/";
	repo_session(repo); /* it streams for as long as its reader lets it */
	int rc = resolve(&res, repo, snap_id, path);
	if (rc < 0) return rc;
	if (!res.e || res.e->type == TREE_DIR) {
		rc = error_set(CAIRN_EUSAGE, "%s is a directory", shown);
		goto done;
	}
	if (res.e->type != TREE_REG) {
		rc = error_set(CAIRN_EUSAGE, "%s is not a regular file", shown);
		goto done;
	}
	cat_out o = {fd, 0};
	if ((rc = content_walk(repo, res.e, cat_emit, NULL, &o, NULL, NULL)) == 0)
		rc = write_zeros(fd, res.e->size - o.pos);
	if (rc < 0) error_prefix("%s", shown);
done:
	resolved_free(&res);
	return rc;
}
