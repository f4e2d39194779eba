/* export and import through libarchive.
 *
 * Export walks a snapshot's trees depth-first in name order and writes one
 * tar entry per tree entry: "." for the root, hardlink members after the
 * first as hardlink entries, POSIX ACL xattrs as libarchive ACLs (so that
 * pax carries them as SCHILY.acl.*), the rest as SCHILY.xattr.*, and sparse
 * files with their data extents as the sparse map.
 *
 * Import builds the whole tree in memory first (with --base, starting from
 * the base snapshot's tree), applying entries in archive order; content goes
 * through the repository's chunker into the snapshot writer as it is read.
 * Only when the archive has been read to its end without a refusal are the
 * trees written, bottom-up, and the manifest committed. */
#include <archive.h>
#include <archive_entry.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "error.h"
#include "format.h"
#include "repo.h"
#include "tree.h"
#include "user.h"
#include "writer.h"

#define ACL_XATTR_ACCESS "system.posix_acl_access"
#define ACL_XATTR_DEFAULT "system.posix_acl_default"
#define ACL_XATTR_VERSION 2
/* Tags and permission bits of the kernel's POSIX ACL xattr format. */
#define PACL_USER_OBJ 0x01
#define PACL_USER 0x02
#define PACL_GROUP_OBJ 0x04
#define PACL_GROUP 0x08
#define PACL_MASK 0x10
#define PACL_OTHER 0x20
#define PACL_UNDEFINED_ID 0xffffffffu

#define ZERO_LEN (64u * 1024u)
#define ZMAP_LEN ((size_t)1 << 30) /* below libarchive's INT_MAX a write */
static const uint8_t zeros[ZERO_LEN];

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const struct {
	int pacl, ae;
} acl_tags[] = {
	{PACL_USER_OBJ, ARCHIVE_ENTRY_ACL_USER_OBJ}, {PACL_USER, ARCHIVE_ENTRY_ACL_USER},
	{PACL_GROUP_OBJ, ARCHIVE_ENTRY_ACL_GROUP_OBJ}, {PACL_GROUP, ARCHIVE_ENTRY_ACL_GROUP},
	{PACL_MASK, ARCHIVE_ENTRY_ACL_MASK}, {PACL_OTHER, ARCHIVE_ENTRY_ACL_OTHER},
};

/* ========================================================================== */
/* export                                                                      */
/* ========================================================================== */

typedef struct hl_path {
	uint32_t group;
	char *path;
} hl_path;

typedef struct xctx {
	cairn_repo *repo;
	const cairn_export_options *o;
	struct archive *a;
	struct archive_entry *ae;
	hl_path *hl;            /* first path of each hardlink group seen */
	size_t nhl, caphl;
	cairn_export_result res;
	int64_t last_ns;
	const uint8_t *zmap; /* ZMAP_LEN bytes of zeros, mapped at the first large hole */
} xctx;

static int ar_fail(struct archive *a, int code, const char *what)
{
	const char *m = archive_error_string(a);
	return error_set(code, "%s: %s", what, m ? m : "libarchive error");
}

static hl_path *hl_lookup(xctx *x, uint32_t group)
{
	for (size_t lo = 0, hi = x->nhl; lo < hi;) {
		size_t mid = (lo + hi) / 2;
		if (x->hl[mid].group == group) return &x->hl[mid];
		if (x->hl[mid].group < group) lo = mid + 1;
		else hi = mid;
	}
	return NULL;
}

static int hl_remember(xctx *x, uint32_t group, const char *path)
{
	if (x->nhl == x->caphl) {
		size_t cap = x->caphl ? x->caphl * 2 : 16;
		hl_path *n = realloc(x->hl, cap * sizeof(*n));
		if (!n) return ERR_OOM();
		x->hl = n;
		x->caphl = cap;
	}
	size_t at = x->nhl;
	while (at > 0 && x->hl[at - 1].group > group) at--;
	char *p = strdup(path);
	if (!p) return ERR_OOM();
	memmove(x->hl + at + 1, x->hl + at, (x->nhl - at) * sizeof(*x->hl));
	x->hl[at] = (hl_path){group, p};
	x->nhl++;
	return 0;
}

/* A POSIX ACL xattr as libarchive ACL entries of type; 0 if the value is
 * not a well-formed ACL (then it stays an xattr). */
static int acl_from_xattr(struct archive_entry *ae, int type, const uint8_t *v, uint32_t len)
{
	if (len < 4 || (len - 4) % 8 != 0 || get_u32(v) != ACL_XATTR_VERSION) return 0;
	for (uint32_t off = 4; off < len; off += 8) {
		int tag = get_u16(v + off), known = 0;
		for (size_t i = 0; i < sizeof(acl_tags) / sizeof(acl_tags[0]); i++)
			if (acl_tags[i].pacl == tag) known = 1;
		if (!known || (get_u16(v + off + 2) & ~7u)) return 0;
	}
	for (uint32_t off = 4; off < len; off += 8) {
		int tag = get_u16(v + off), perm = get_u16(v + off + 2) & 7, ae_tag = 0;
		uint32_t id = get_u32(v + off + 4);
		for (size_t i = 0; i < sizeof(acl_tags) / sizeof(acl_tags[0]); i++)
			if (acl_tags[i].pacl == tag) ae_tag = acl_tags[i].ae;
		int qual = tag == PACL_USER || tag == PACL_GROUP ? (int)id : -1;
		archive_entry_acl_add_entry(ae, type, perm, ae_tag, qual, NULL);
	}
	return 1;
}

static int write_data(xctx *x, const uint8_t *p, size_t n)
{
	while (n > 0) {
		la_ssize_t w = archive_write_data(x->a, p, n);
		if (w < 0) return ar_fail(x->a, CAIRN_EIO, "write");
		if (w == 0) return error_set(CAIRN_EIO, "write: archive accepts no more data");
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int write_zeros(xctx *x, uint64_t n)
{
	if (n > ZERO_LEN && !x->zmap) {
		/* pages never written read as zeros and cost no memory: a hole
		 * goes to libarchive (which skips the holes of the sparse map)
		 * in few calls, whatever its size (TREE_FILE_SIZE_MAX) */
		void *m = mmap(NULL, ZMAP_LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m != MAP_FAILED) x->zmap = m;
	}
	const uint8_t *z = x->zmap ? x->zmap : zeros;
	size_t zlen = x->zmap ? ZMAP_LEN : ZERO_LEN;
	while (n > 0) {
		size_t k = n < zlen ? (size_t)n : zlen;
		int rc = write_data(x, z, k);
		if (rc < 0) return rc;
		n -= k;
	}
	return 0;
}

/* The file's logical bytes, holes as zeros (the pax writer drops the bytes
 * of the holes it was given in the sparse map). Extents and chunk sizes are
 * checked against the entry before anything is read. */
static int write_content(xctx *x, const tree_entry *e)
{
	tree_extent dense = {0, e->size};
	const tree_extent *ext = e->nextents ? e->extents : &dense;
	uint32_t next = e->nextents ? e->nextents : (e->size ? 1 : 0);
	uint64_t end = 0, data = 0, csum = 0, pos = 0;
	int rc = 0;

	for (uint32_t i = 0; i < next; i++) {
		if (ext[i].length > e->size || ext[i].offset > e->size - ext[i].length || ext[i].offset < end)
			return error_set(CAIRN_ECORRUPT, "extent %u out of order or past the size", i);
		end = ext[i].offset + ext[i].length;
		data += ext[i].length;
	}
	for (uint32_t c = 0; c < e->nchunks; c++) csum += e->chunks[c].size;
	if (csum != data)
		return error_set(CAIRN_ECORRUPT, "chunks hold %llu bytes, extents %llu",
		                 (unsigned long long)csum, (unsigned long long)data);
	uint32_t xi = 0;
	uint64_t xoff = 0;
	for (uint32_t c = 0; c < e->nchunks && rc == 0; c++) {
		uint8_t *blob;
		size_t len;
		if ((rc = repo_read_blob(x->repo, &e->chunks[c].id, BLOB_DATA, &blob, &len)) < 0) break;
		if (len != e->chunks[c].size) {
			free(blob);
			return error_set(CAIRN_ECORRUPT, "chunk %u: %zu bytes, tree says %u", c, len,
			                 e->chunks[c].size);
		}
		const uint8_t *p = blob;
		while (len > 0 && rc == 0) {
			while (xi < next && xoff == ext[xi].length) {
				xi++;
				xoff = 0;
			}
			uint64_t at = ext[xi].offset + xoff, room = ext[xi].length - xoff;
			size_t n = len < room ? len : (size_t)room;
			if ((rc = write_zeros(x, at - pos)) == 0) rc = write_data(x, p, n);
			pos = at + n;
			p += n;
			len -= n;
			xoff += n;
		}
		free(blob);
		x->res.bytes += e->chunks[c].size;
	}
	if (rc == 0) rc = write_zeros(x, e->size - pos);
	return rc;
}

static void export_progress(xctx *x, int force)
{
	if (!x->o->event_cb) return;
	int64_t now = mono_ns();
	if (!force && now - x->last_ns < 100000000LL) return;
	x->last_ns = now;
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CAIRN_EVENT_PROGRESS;
	ev.files = x->res.files;
	ev.bytes = x->res.bytes;
	x->o->event_cb(&ev, x->o->event_payload);
}

static int export_entry(xctx *x, const tree_entry *e, const char *path)
{
	struct archive_entry *ae = x->ae;
	int pax = x->o->format == CAIRN_ARCHIVE_PAX, rc;
	hl_path *first = e->hardlink && e->type != TREE_DIR ? hl_lookup(x, e->hardlink) : NULL;

	archive_entry_clear(ae);
	archive_entry_copy_pathname(ae, path);
	archive_entry_set_mode(ae, (mode_t)e->mode);
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	archive_entry_set_mtime(ae, e->mtime_sec, e->mtime_nsec);
	if (first) {
		/* the content and metadata are the first member's */
		archive_entry_copy_hardlink(ae, first->path);
		archive_entry_set_size(ae, 0);
	} else {
		for (uint32_t i = 0; i < e->nxattrs; i++) {
			const tree_xattr *xa = &e->xattrs[i];
			int type = !strcmp(xa->name, ACL_XATTR_ACCESS)    ? ARCHIVE_ENTRY_ACL_TYPE_ACCESS
			           : !strcmp(xa->name, ACL_XATTR_DEFAULT) ? ARCHIVE_ENTRY_ACL_TYPE_DEFAULT
			                                                  : 0;
			/* an access ACL's owner, group and other entries set the
			 * entry's mode, as when libarchive reads a disk */
			if (type && pax && acl_from_xattr(ae, type, xa->value, xa->value_len)) continue;
			archive_entry_xattr_add_entry(ae, xa->name, xa->value, xa->value_len);
		}
		switch (e->type) {
		case TREE_REG:
			archive_entry_set_size(ae, (la_int64_t)e->size);
			if (pax && e->nextents) {
				for (uint32_t i = 0; i < e->nextents; i++)
					archive_entry_sparse_add_entry(ae, (la_int64_t)e->extents[i].offset,
					                               (la_int64_t)e->extents[i].length);
			}
			break;
		case TREE_SYMLINK:
			archive_entry_copy_symlink(ae, e->target);
			break;
		case TREE_CHR:
		case TREE_BLK:
			archive_entry_set_rdevmajor(ae, e->rdev_major);
			archive_entry_set_rdevminor(ae, e->rdev_minor);
			break;
		default:
			break;
		}
		if (e->hardlink && e->type != TREE_DIR && (rc = hl_remember(x, e->hardlink, path)) < 0)
			return rc;
	}
	int r = archive_write_header(x->a, ae);
	if (r == ARCHIVE_WARN) r = ARCHIVE_OK; /* e.g. a name not in the locale, stored as binary */
	if (r != ARCHIVE_OK)
		return ar_fail(x->a, r == ARCHIVE_FATAL ? CAIRN_EIO : CAIRN_EUSAGE,
		               x->o->format == CAIRN_ARCHIVE_USTAR ? "ustar cannot hold it"
		               : x->o->format == CAIRN_ARCHIVE_GNUTAR ? "gnutar cannot hold it"
		                                                      : "header");
	x->res.entries++;
	if (e->type == TREE_REG) x->res.files++;
	if (e->type == TREE_REG && !first && (rc = write_content(x, e)) < 0) return rc;
	export_progress(x, 0);
	return 0;
}

typedef struct xframe {
	tree t;
	size_t next, len; /* len: the path's length at this directory */
} xframe;

/* Every entry below tree id, depth first in name order; the directories
 * being written are on a heap stack, so any depth costs memory, not C
 * stack. */
static int export_tree(xctx *x, const oid *id, char **path, size_t *cap)
{
	size_t n = 0, stcap = 64;
	xframe *st = malloc(stcap * sizeof(*st));
	if (!st) return ERR_OOM();
	int rc = repo_load_tree(x->repo, id, &st[0].t);
	if (rc < 0) {
		error_prefix("/");
		free(st);
		return rc;
	}
	st[n].next = st[n].len = 0;
	n++;
	while (rc == 0 && n > 0) {
		xframe *f = &st[n - 1];
		if (f->next == f->t.n) {
			tree_free(&f->t);
			n--;
			continue;
		}
		const tree_entry *e = &f->t.entries[f->next++];
		size_t len = f->len, need = len + 1 + e->name_len + 1;
		if (need > *cap) {
			char *p = realloc(*path, need * 2);
			if (!p) {
				rc = ERR_OOM();
				break;
			}
			*path = p;
			*cap = need * 2;
		}
		size_t at = len;
		if (at) (*path)[at++] = '/';
		memcpy(*path + at, e->name, e->name_len);
		(*path)[at + e->name_len] = 0;
		if ((rc = export_entry(x, e, *path)) < 0) {
			error_prefix("/%s", *path);
			break;
		}
		if (e->type != TREE_DIR) continue;
		if (n == stcap) {
			xframe *ns = realloc(st, (stcap *= 2) * sizeof(*st));
			if (!ns) {
				rc = ERR_OOM();
				break;
			}
			st = ns;
		}
		if ((rc = repo_load_tree(x->repo, &e->subtree, &st[n].t)) < 0) {
			error_prefix("/%s", *path);
			break;
		}
		st[n].next = 0;
		st[n++].len = at + e->name_len;
	}
	while (n > 0) tree_free(&st[--n].t);
	free(st);
	return rc;
}

CAIRN_EXTERN int cairn_export(cairn_export_result *out, cairn_repo *repo, const char *snap_id,
                              int fd, const cairn_export_options *opts)
{
	static const cairn_export_options defaults = CAIRN_EXPORT_OPTIONS_INIT;
	xctx x;
	snapshot_manifest m;
	tree top = {0};
	char *path = NULL;
	size_t cap = 256;
	int64_t t0 = mono_ns();
	int rc;

	repo_session(repo); /* an export may outlast gc's grace period */
	memset(&x, 0, sizeof(x));
	memset(&m, 0, sizeof(m));
	if (out) memset(out, 0, sizeof(*out));
	if (!opts) opts = &defaults;
	if (opts->version != CAIRN_EXPORT_OPTIONS_VERSION)
		return error_set(CAIRN_EUSAGE, "export: unsupported options version %u", opts->version);
	x.repo = repo;
	x.o = opts;
	if ((rc = repo_load_snapshot(repo, snap_id, &m)) < 0) return rc;
	if ((rc = repo_load_tree(repo, &m.tree, &top)) < 0) {
		error_prefix("snapshot %.12s: top tree", snap_id);
		goto done;
	}
	if (top.n != 1 || top.entries[0].type != TREE_DIR) {
		rc = error_set(CAIRN_ECORRUPT, "snapshot %.12s: top tree must hold one directory", snap_id);
		goto done;
	}
	if (!(x.a = archive_write_new()) || !(x.ae = archive_entry_new()) || !(path = calloc(1, cap))) {
		rc = ERR_OOM();
		goto done;
	}
	int r;
	switch (opts->format) {
	case CAIRN_ARCHIVE_PAX: r = archive_write_set_format_pax(x.a); break;
	case CAIRN_ARCHIVE_GNUTAR: r = archive_write_set_format_gnutar(x.a); break;
	case CAIRN_ARCHIVE_USTAR: r = archive_write_set_format_ustar(x.a); break;
	default: rc = error_set(CAIRN_EUSAGE, "export: unknown format %d", (int)opts->format); goto done;
	}
	if (r != ARCHIVE_OK) {
		rc = ar_fail(x.a, CAIRN_EIO, "export: format");
		goto done;
	}
	switch (opts->compress) {
	case CAIRN_COMPRESS_NONE: r = ARCHIVE_OK; break;
	case CAIRN_COMPRESS_GZIP: r = archive_write_add_filter_gzip(x.a); break;
	case CAIRN_COMPRESS_ZSTD: r = archive_write_add_filter_zstd(x.a); break;
	default: rc = error_set(CAIRN_EUSAGE, "export: unknown compression %d", (int)opts->compress); goto done;
	}
	if (r != ARCHIVE_OK) {
		rc = ar_fail(x.a, CAIRN_EIO, "export: compression");
		goto done;
	}
	/* no padding after the last block: libarchive would fill it with zeros
	 * behind a compressed stream on stdout, which zstd readers refuse */
	archive_write_set_bytes_in_last_block(x.a, 1);
	if (archive_write_open_fd(x.a, fd) != ARCHIVE_OK) {
		rc = ar_fail(x.a, CAIRN_EIO, "export: output");
		goto done;
	}
	if ((rc = export_entry(&x, &top.entries[0], ".")) < 0) {
		error_prefix("/");
		goto done;
	}
	if ((rc = export_tree(&x, &top.entries[0].subtree, &path, &cap)) < 0) goto done;
	if (archive_write_close(x.a) != ARCHIVE_OK) {
		rc = ar_fail(x.a, CAIRN_EIO, "export: finishing the archive");
		goto done;
	}
	export_progress(&x, 1);
	x.res.duration_ms = (uint64_t)(mono_ns() - t0) / 1000000;
	if (out) *out = x.res;
done:
	if (rc < 0 && strncmp(cairn_error_last(), "export", 6) != 0 && strncmp(cairn_error_last(), "snapshot", 8) != 0)
		error_prefix("snapshot %.12s", snap_id);
	if (x.a) archive_write_free(x.a);
	if (x.zmap) munmap((void *)x.zmap, ZMAP_LEN);
	archive_entry_free(x.ae);
	for (size_t i = 0; i < x.nhl; i++) free(x.hl[i].path);
	free(x.hl);
	free(path);
	if (top.mem) tree_free(&top);
	snapshot_manifest_free(&m);
	return rc;
}

/* ========================================================================== */
/* import                                                                      */
/* ========================================================================== */

typedef struct ixattr {
	char *name;
	uint8_t *value;
	uint32_t len;
} ixattr;

/* What tar calls a file and a tree entry carries: shared by hardlinks. */
typedef struct inode {
	uint8_t type;
	uint32_t mode, uid, gid, rdev_major, rdev_minor;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t size;
	ixattr *xattrs;
	uint32_t nxattrs;
	char *target;
	uint32_t target_len;
	tree_extent *extents;
	uint32_t nextents;
	tree_chunk *chunks;
	uint32_t nchunks, capchunks;
	uint32_t links; /* names in the tree */
	uint32_t group; /* hardlink group, numbered when the trees are written */
	int counted;    /* visited by the final count */
	int base_data;  /* chunks came from the base: referenced, never put */
} inode;

typedef struct node {
	char *name;
	uint16_t name_len;
	int from_base; /* came from the base and was not touched by this archive */
	inode *ino;
	struct node **kids; /* directories: sorted by name */
	size_t nkids, capkids;
} node;

typedef struct ictx {
	cairn_repo *repo;
	const cairn_import_options *o;
	snap_writer *w;
	node *root;
	uint8_t *buf; /* the chunker's window */
	size_t have, cap;
	cairn_import_result res;
	uint64_t files, dirs, symlinks, specials, hardlinks, bytes;
	uint32_t groups;
	int64_t last_ns;
	const char *entry; /* archive path being applied, for messages */
} ictx;

static void inode_unref(inode *i)
{
	if (!i || --i->links > 0) return;
	for (uint32_t k = 0; k < i->nxattrs; k++) {
		free(i->xattrs[k].name);
		free(i->xattrs[k].value);
	}
	free(i->xattrs);
	free(i->target);
	free(i->extents);
	free(i->chunks);
	free(i);
}

/* Free n and everything below it, the nodes still to free on a heap stack
 * (imports of any depth); out of memory for it, what is left leaks. */
static void node_free(node *n)
{
	node **todo = NULL;
	size_t nt = 0, cap = 0;
	while (n) {
		if (n->nkids && nt + n->nkids > cap) {
			size_t want = (nt + n->nkids) * 2;
			node **v = realloc(todo, want * sizeof(*v));
			if (v) {
				todo = v;
				cap = want;
			} else {
				n->nkids = 0;
			}
		}
		for (size_t k = 0; k < n->nkids; k++) todo[nt++] = n->kids[k];
		free(n->kids);
		inode_unref(n->ino);
		free(n->name);
		free(n);
		n = nt ? todo[--nt] : NULL;
	}
	free(todo);
}

/* A node being walked and the next of its kids: the import walkers' heap
 * stack, so that trees of any depth cost memory, not C stack. */
typedef struct nframe {
	node *d;
	size_t k;
	tree t;              /* load_base: the base's tree of d */
	tree_entry *entries; /* write_trees: d's entries, xattrs, count of xattrs */
	tree_xattr *xa;
	size_t nx;
} nframe;

typedef struct nstack {
	nframe *f;
	size_t n, cap;
} nstack;

static nframe *nstack_push(nstack *st, node *d)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 64;
		nframe *f = realloc(st->f, cap * sizeof(*f));
		if (!f) return NULL;
		st->f = f;
		st->cap = cap;
	}
	nframe *f = &st->f[st->n++];
	memset(f, 0, sizeof(*f));
	f->d = d;
	return f;
}

/* The path of the walk's position (names of the frames above k = 1),
 * before the current message. */
static void nstack_prefix(const nstack *st)
{
	for (size_t i = st->n; i-- > 1;) error_prefix("%s", st->f[i].d->name);
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c) return c;
	return alen < blen ? -1 : alen > blen;
}

/* Index of name among d's kids, or where it would go (*found = 0). Archives
 * usually come in name order, so the last slot is tried first. */
static size_t kid_pos(const node *d, const char *name, size_t len, int *found)
{
	size_t lo = 0, hi = d->nkids;
	*found = 0;
	if (hi > 0) {
		const node *last = d->kids[hi - 1];
		int c = name_cmp(last->name, last->name_len, name, len);
		if (c < 0) return hi;
		if (c == 0) {
			*found = 1;
			return hi - 1;
		}
	}
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = name_cmp(d->kids[mid]->name, d->kids[mid]->name_len, name, len);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}

static int kid_insert(node *d, size_t at, node *k)
{
	if (d->nkids == d->capkids) {
		size_t cap = d->capkids ? d->capkids * 2 : 8;
		node **n = realloc(d->kids, cap * sizeof(*n));
		if (!n) return ERR_OOM();
		d->kids = n;
		d->capkids = cap;
	}
	memmove(d->kids + at + 1, d->kids + at, (d->nkids - at) * sizeof(*d->kids));
	d->kids[at] = k;
	d->nkids++;
	return 0;
}

static void kid_remove(node *d, size_t at)
{
	node_free(d->kids[at]);
	memmove(d->kids + at, d->kids + at + 1, (d->nkids - at - 1) * sizeof(*d->kids));
	d->nkids--;
}

static node *node_new(const char *name, size_t len, inode *ino)
{
	node *n = calloc(1, sizeof(*n));
	if (!n || !(n->name = malloc(len + 1))) {
		free(n);
		return NULL;
	}
	memcpy(n->name, name, len);
	n->name[len] = 0;
	n->name_len = (uint16_t)len;
	n->ino = ino;
	return n;
}

/* ---- the base snapshot, loaded whole -------------------------------------- */

typedef struct group_map {
	uint32_t *keys;
	inode **vals;
	size_t cap, n;
} group_map;

static inode **group_slot(group_map *g, uint32_t key)
{
	if (g->n * 2 >= g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		uint32_t *keys = calloc(cap, sizeof(*keys));
		inode **vals = calloc(cap, sizeof(*vals));
		if (!keys || !vals) {
			free(keys);
			free(vals);
			return NULL;
		}
		for (size_t i = 0; i < g->cap; i++) {
			if (!g->keys[i]) continue;
			size_t h = (g->keys[i] * 2654435761u) & (cap - 1);
			while (keys[h]) h = (h + 1) & (cap - 1);
			keys[h] = g->keys[i];
			vals[h] = g->vals[i];
		}
		free(g->keys);
		free(g->vals);
		g->keys = keys;
		g->vals = vals;
		g->cap = cap;
	}
	size_t h = (key * 2654435761u) & (g->cap - 1);
	while (g->keys[h] && g->keys[h] != key) h = (h + 1) & (g->cap - 1);
	if (!g->keys[h]) {
		g->keys[h] = key;
		g->n++;
	}
	return &g->vals[h];
}

static inode *inode_from_entry(const tree_entry *e)
{
	inode *i = calloc(1, sizeof(*i));
	if (!i) return NULL;
	i->type = e->type;
	i->mode = e->mode;
	i->uid = e->uid;
	i->gid = e->gid;
	i->mtime_sec = e->mtime_sec;
	i->mtime_nsec = e->mtime_nsec;
	i->size = e->type == TREE_REG ? e->size : 0;
	i->rdev_major = e->rdev_major;
	i->rdev_minor = e->rdev_minor;
	i->links = 1;
	i->base_data = e->type == TREE_REG;
	int bad = 0;
	if (e->nxattrs && !(i->xattrs = calloc(e->nxattrs, sizeof(*i->xattrs)))) bad = 1;
	for (uint32_t k = 0; !bad && k < e->nxattrs; k++) {
		ixattr *x = &i->xattrs[i->nxattrs++];
		x->name = strndup(e->xattrs[k].name, e->xattrs[k].name_len);
		x->value = malloc(e->xattrs[k].value_len ? e->xattrs[k].value_len : 1);
		x->len = e->xattrs[k].value_len;
		if (!x->name || !x->value) bad = 1;
		else memcpy(x->value, e->xattrs[k].value, x->len);
	}
	if (!bad && e->type == TREE_SYMLINK) {
		if (!(i->target = strndup(e->target, e->target_len))) bad = 1;
		i->target_len = e->target_len;
	}
	if (!bad && e->type == TREE_REG && e->nextents) {
		if (!(i->extents = malloc(e->nextents * sizeof(tree_extent)))) bad = 1;
		else memcpy(i->extents, e->extents, e->nextents * sizeof(tree_extent));
		i->nextents = e->nextents;
	}
	if (!bad && e->type == TREE_REG && e->nchunks) {
		if (!(i->chunks = malloc(e->nchunks * sizeof(tree_chunk)))) bad = 1;
		else memcpy(i->chunks, e->chunks, e->nchunks * sizeof(tree_chunk));
		i->nchunks = i->capchunks = e->nchunks;
	}
	if (bad) {
		inode_unref(i);
		return NULL;
	}
	return i;
}

/* d's kids, and everything below, from the base's tree id. */
static int load_base_dir(ictx *c, node *d, const oid *id, group_map *g)
{
	nstack st = {NULL, 0, 0};
	nframe *f = nstack_push(&st, d);
	int rc = f ? repo_load_tree(c->repo, id, &f->t) : ERR_OOM();
	if (rc < 0) st.n = 0;
	while (rc == 0 && st.n > 0) {
		f = &st.f[st.n - 1];
		d = f->d;
		if (f->k == 0 && f->t.n && !d->kids) {
			if (!(d->kids = calloc(f->t.n, sizeof(*d->kids)))) {
				rc = ERR_OOM();
				break;
			}
			d->capkids = f->t.n;
		}
		if (f->k == f->t.n) {
			tree_free(&f->t);
			st.n--;
			continue;
		}
		const tree_entry *e = &f->t.entries[f->k++];
		inode *ino = NULL, **slot = NULL;
		if (e->hardlink && e->type != TREE_DIR) {
			if (!(slot = group_slot(g, e->hardlink))) {
				rc = ERR_OOM();
				break;
			}
			if ((ino = *slot)) ino->links++;
		}
		if (!ino && !(ino = inode_from_entry(e))) {
			rc = ERR_OOM();
			break;
		}
		if (slot) *slot = ino;
		node *n = node_new(e->name, e->name_len, ino);
		if (!n) {
			inode_unref(ino);
			rc = ERR_OOM();
			break;
		}
		n->from_base = 1;
		d->kids[d->nkids++] = n;
		if (e->type != TREE_DIR) continue;
		oid sub = e->subtree; /* the push may move f's tree */
		if (!(f = nstack_push(&st, n))) {
			rc = ERR_OOM();
			break;
		}
		if ((rc = repo_load_tree(c->repo, &sub, &f->t)) < 0) {
			nstack_prefix(&st);
			st.n--;
		}
	}
	while (st.n > 0) tree_free(&st.f[--st.n].t);
	free(st.f);
	return rc;
}

static int load_base(ictx *c, const char *base_id)
{
	snapshot_manifest m;
	tree top = {0};
	group_map g = {0};
	int rc = repo_load_snapshot(c->repo, base_id, &m);
	if (rc < 0) return rc;
	if ((rc = repo_load_tree(c->repo, &m.tree, &top)) < 0) goto done;
	if (top.n != 1 || top.entries[0].type != TREE_DIR) {
		rc = error_set(CAIRN_ECORRUPT, "top tree must hold one directory");
		goto done;
	}
	inode *ri = inode_from_entry(&top.entries[0]);
	if (!ri || !(c->root = node_new("", 0, ri))) {
		inode_unref(ri);
		rc = ERR_OOM();
		goto done;
	}
	c->root->from_base = 1;
	rc = load_base_dir(c, c->root, &top.entries[0].subtree, &g);
done:
	if (rc < 0) error_prefix("base %.12s", base_id);
	free(g.keys);
	free(g.vals);
	if (top.mem) tree_free(&top);
	snapshot_manifest_free(&m);
	return rc;
}

/* ---- paths ----------------------------------------------------------------- */

typedef struct comps {
	const char **p;
	size_t *len;
	size_t n;
} comps;

static void comps_free(comps *cp)
{
	free(cp->p);
	free(cp->len);
	memset(cp, 0, sizeof(*cp));
}

/* Split an archive path into components: "." and empty ones dropped; an
 * absolute path or a ".." component refused. */
static int split_path(const char *path, comps *cp, const char *what)
{
	size_t max = 1;
	memset(cp, 0, sizeof(*cp));
	if (!path) return error_set(CAIRN_ECORRUPT, "%s without a path", what);
	if (path[0] == '/') return error_set(CAIRN_EUSAGE, "%s %s: absolute path refused", what, path);
	for (const char *s = path; *s; s++)
		if (*s == '/') max++;
	if (!(cp->p = calloc(max, sizeof(*cp->p))) || !(cp->len = calloc(max, sizeof(*cp->len)))) {
		comps_free(cp);
		return ERR_OOM();
	}
	for (const char *s = path; *s;) {
		size_t n = strcspn(s, "/");
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			comps_free(cp);
			return error_set(CAIRN_EUSAGE, "%s %s: \"..\" component refused", what, path);
		}
		if (n > 0 && !(n == 1 && s[0] == '.')) {
			if (!tree_name_ok(s, n)) {
				comps_free(cp);
				return error_set(CAIRN_EUSAGE, "%s %s: a component is longer than %d bytes", what,
				                 path, MAX_NAME_LEN);
			}
			cp->p[cp->n] = s;
			cp->len[cp->n++] = n;
		}
		s += n;
		while (*s == '/') s++;
	}
	return 0;
}

static inode *dir_inode(void)
{
	inode *i = calloc(1, sizeof(*i));
	if (!i) return NULL;
	i->type = TREE_DIR;
	i->mode = S_IFDIR | 0755;
	i->links = 1;
	return i;
}

/* The directory holding the last component, created (0755, root, time 0)
 * where the archive did not list it. A non-directory on the way is refused:
 * that is how a symlink would be written through. */
static int parent_of(ictx *c, const comps *cp, node **out)
{
	node *d = c->root;
	for (size_t k = 0; k + 1 < cp->n; k++) {
		int found;
		size_t at = kid_pos(d, cp->p[k], cp->len[k], &found);
		if (!found) {
			inode *ino = dir_inode();
			node *n = ino ? node_new(cp->p[k], cp->len[k], ino) : NULL;
			if (!n) {
				inode_unref(ino);
				return ERR_OOM();
			}
			if (kid_insert(d, at, n) < 0) {
				node_free(n);
				return ERR_OOM();
			}
		}
		d = d->kids[at];
		if (d->ino->type != TREE_DIR)
			return error_set(CAIRN_EUSAGE, "entry %s: %.*s is not a directory (%s); refused",
			                 c->entry, (int)(cp->p[k] + cp->len[k] - cp->p[0]), cp->p[0],
			                 d->ino->type == TREE_SYMLINK ? "a symlink" : "a file");
	}
	*out = d;
	return 0;
}

/* The node at a path, without creating anything; NULL if absent. */
static node *lookup(ictx *c, const comps *cp)
{
	node *d = c->root;
	for (size_t k = 0; k < cp->n; k++) {
		int found;
		if (d->ino->type != TREE_DIR) return NULL;
		size_t at = kid_pos(d, cp->p[k], cp->len[k], &found);
		if (!found) return NULL;
		d = d->kids[at];
	}
	return d;
}

/* ---- content ----------------------------------------------------------------- */

static int add_chunk(ictx *c, inode *ino, const uint8_t *data, size_t len)
{
	oid id;
	size_t added;
	int rc = writer_put_chunk(c->w, data, len, &id, &added);
	if (rc < 0) return rc;
	if (ino->nchunks == ino->capchunks) {
		uint32_t cap = ino->capchunks ? ino->capchunks * 2 : 4;
		tree_chunk *ch = realloc(ino->chunks, cap * sizeof(*ch));
		if (!ch) return ERR_OOM();
		ino->chunks = ch;
		ino->capchunks = cap;
	}
	ino->chunks[ino->nchunks].id = id;
	ino->chunks[ino->nchunks].size = (uint32_t)len;
	ino->nchunks++;
	c->res.bytes += len;
	if (added) {
		c->res.new_bytes += len;
		c->res.stored_bytes += added;
	}
	return 0;
}

/* Cut what the window holds: while at least chunk_max bytes remain, or all
 * of it at the end of the file (the cuts take makes of the same bytes). */
static int drain(ictx *c, inode *ino, int final)
{
	const chunker_params *cp = &c->repo->chunker;
	size_t pos = 0;
	int rc = 0;
	while (rc == 0 && c->have > pos && (final || c->have - pos >= cp->max)) {
		size_t cut = chunker_cut(cp, c->buf + pos, c->have - pos);
		rc = add_chunk(c, ino, c->buf + pos, cut);
		pos += cut;
	}
	memmove(c->buf, c->buf + pos, c->have - pos);
	c->have -= pos;
	return rc;
}

static int add_extent(inode *ino, uint64_t off, uint64_t len, uint32_t *cap)
{
	if (ino->nextents && ino->extents[ino->nextents - 1].offset + ino->extents[ino->nextents - 1].length == off) {
		ino->extents[ino->nextents - 1].length += len;
		return 0;
	}
	if (ino->nextents == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 4;
		tree_extent *e = realloc(ino->extents, ncap * sizeof(*e));
		if (!e) return ERR_OOM();
		ino->extents = e;
		*cap = ncap;
	}
	ino->extents[ino->nextents++] = (tree_extent){off, len};
	return 0;
}

static void import_progress(ictx *c, int force)
{
	if (!c->o->event_cb) return;
	int64_t now = mono_ns();
	if (!force && now - c->last_ns < 100000000LL) return;
	c->last_ns = now;
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CAIRN_EVENT_PROGRESS;
	ev.files = c->res.entries;
	ev.bytes = c->res.bytes;
	ev.new_bytes = c->res.new_bytes;
	ev.stored_bytes = c->res.stored_bytes;
	c->o->event_cb(&ev, c->o->event_payload);
}

/* Read the entry's data blocks: their offsets give the sparse map. */
static int read_content(ictx *c, struct archive *a, inode *ino)
{
	const void *blk;
	size_t size;
	la_int64_t off;
	uint64_t end = 0;
	uint32_t cap = 0;
	int r, rc = 0;
	c->have = 0;
	while ((r = archive_read_data_block(a, &blk, &size, &off)) == ARCHIVE_OK) {
		if (size == 0) continue;
		if (off < 0 || (uint64_t)off < end || size > ino->size || (uint64_t)off > ino->size - size)
			return error_set(CAIRN_ECORRUPT, "entry %s: data block at %lld outside the file's %llu bytes",
			                 c->entry, (long long)off, (unsigned long long)ino->size);
		if ((rc = add_extent(ino, (uint64_t)off, size, &cap)) < 0) return rc;
		end = (uint64_t)off + size;
		const uint8_t *p = blk;
		while (size > 0) {
			size_t k = c->cap - c->have < size ? c->cap - c->have : size;
			memcpy(c->buf + c->have, p, k);
			c->have += k;
			p += k;
			size -= k;
			if (c->have == c->cap && (rc = drain(c, ino, 0)) < 0) return rc;
		}
		import_progress(c, 0);
	}
	if (r != ARCHIVE_EOF) {
		const char *m = archive_error_string(a);
		return error_set(CAIRN_ECORRUPT, "entry %s: %s", c->entry, m ? m : "cannot read the data");
	}
	if ((rc = drain(c, ino, 1)) < 0) return rc;
	/* dense (one extent over everything) is stored as take stores it */
	if (ino->nextents == 1 && ino->extents[0].offset == 0 && ino->extents[0].length == ino->size) {
		free(ino->extents);
		ino->extents = NULL;
		ino->nextents = 0;
	} else if (ino->nextents == 0 && ino->size > 0) {
		if (!(ino->extents = malloc(sizeof(*ino->extents)))) return ERR_OOM();
		ino->extents[0] = (tree_extent){ino->size, 0}; /* all hole */
		ino->nextents = 1;
	}
	return 0;
}

/* ---- metadata ------------------------------------------------------------------ */

static int xattr_cmp(const void *a, const void *b)
{
	const ixattr *x = a, *y = b;
	return name_cmp(x->name, strlen(x->name), y->name, strlen(y->name));
}

static int put_xattr(inode *ino, uint32_t *cap, const char *name, const void *value, size_t len)
{
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen > MAX_XATTR_NAME_LEN || len > MAX_XATTR_VALUE_LEN)
		return error_set(CAIRN_EUSAGE, "xattr %.64s: name or value too long", name);
	for (uint32_t k = 0; k < ino->nxattrs; k++)
		if (!strcmp(ino->xattrs[k].name, name)) {
			/* a repeated name: the last value wins */
			uint8_t *v = malloc(len ? len : 1);
			if (!v) return ERR_OOM();
			memcpy(v, value, len);
			free(ino->xattrs[k].value);
			ino->xattrs[k].value = v;
			ino->xattrs[k].len = (uint32_t)len;
			return 0;
		}
	if (ino->nxattrs == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 4;
		ixattr *x = realloc(ino->xattrs, ncap * sizeof(*x));
		if (!x) return ERR_OOM();
		ino->xattrs = x;
		*cap = ncap;
	}
	ixattr *x = &ino->xattrs[ino->nxattrs];
	x->name = strdup(name);
	x->value = malloc(len ? len : 1);
	x->len = (uint32_t)len;
	if (!x->name || !x->value) {
		free(x->name);
		free(x->value);
		return ERR_OOM();
	}
	memcpy(x->value, value, len);
	ino->nxattrs++;
	return 0;
}

typedef struct pacl_entry {
	uint16_t tag, perm;
	uint32_t id;
} pacl_entry;

static int pacl_cmp(const void *a, const void *b)
{
	const pacl_entry *x = a, *y = b;
	if (x->tag != y->tag) return x->tag < y->tag ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int acl_qualifier(int tag, int qual, const char *name, uint32_t *id)
{
	if (qual >= 0) {
		*id = (uint32_t)qual;
		return 0;
	}
	if (name) {
		char *end;
		unsigned long v = strtoul(name, &end, 10);
		if (*name && !*end && v <= 0xfffffffful) {
			*id = (uint32_t)v;
			return 0;
		}
		if (tag == ARCHIVE_ENTRY_ACL_USER) {
			struct passwd *pw = getpwnam(name);
			if (pw) {
				*id = pw->pw_uid;
				return 0;
			}
		} else {
			struct group *gr = getgrnam(name);
			if (gr) {
				*id = gr->gr_gid;
				return 0;
			}
		}
	}
	return -1;
}

/* libarchive's ACLs of one type as the kernel's xattr. For an access ACL
 * with a mask, the mode's group bits are the mask, as on a disk. */
static int acl_to_xattr(ictx *c, struct archive_entry *ae, int type, inode *ino, uint32_t *xcap)
{
	int count = archive_entry_acl_reset(ae, type), etype, perm, tag, qual, rc = 0;
	const char *name;
	if (count <= 0) return 0;
	pacl_entry *v = calloc((size_t)count + 4, sizeof(*v));
	size_t n = 0;
	if (!v) return ERR_OOM();
	while (n < (size_t)count + 4 &&
	       archive_entry_acl_next(ae, type, &etype, &perm, &tag, &qual, &name) == ARCHIVE_OK) {
		pacl_entry *e = &v[n];
		e->perm = (uint16_t)(perm & 7);
		e->id = PACL_UNDEFINED_ID;
		e->tag = 0;
		for (size_t i = 0; i < sizeof(acl_tags) / sizeof(acl_tags[0]); i++)
			if (acl_tags[i].ae == tag) e->tag = (uint16_t)acl_tags[i].pacl;
		if (!e->tag) continue; /* NFSv4 and unknown tags have no POSIX form */
		if ((tag == ARCHIVE_ENTRY_ACL_USER || tag == ARCHIVE_ENTRY_ACL_GROUP) &&
		    acl_qualifier(tag, qual, name, &e->id) < 0) {
			rc = error_set(CAIRN_EUSAGE, "entry %s: ACL names unknown %s %s", c->entry,
			               tag == ARCHIVE_ENTRY_ACL_USER ? "user" : "group", name ? name : "?");
			goto done;
		}
		if (type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS && e->tag == PACL_MASK)
			ino->mode = (ino->mode & ~070u) | ((uint32_t)e->perm << 3);
		n++;
	}
	if (n == 0) goto done;
	qsort(v, n, sizeof(*v), pacl_cmp);
	uint8_t *x = malloc(4 + 8 * n);
	if (!x) {
		rc = ERR_OOM();
		goto done;
	}
	put_u32(x, ACL_XATTR_VERSION);
	for (size_t i = 0; i < n; i++) {
		put_u16(x + 4 + 8 * i, v[i].tag);
		put_u16(x + 6 + 8 * i, v[i].perm);
		put_u32(x + 8 + 8 * i, v[i].id);
	}
	rc = put_xattr(ino, xcap,
	               type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS ? ACL_XATTR_ACCESS : ACL_XATTR_DEFAULT, x,
	               4 + 8 * n);
	free(x);
done:
	free(v);
	return rc;
}

static int meta_from_archive(ictx *c, struct archive_entry *ae, inode *ino)
{
	uint32_t xcap = ino->nxattrs;
	const char *name;
	const void *value;
	size_t len;
	int rc = 0;
	ino->mode = (ino->mode & S_IFMT) | ((uint32_t)archive_entry_perm(ae) & 07777);
	la_int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
	if (uid < 0 || uid > 0xffffffffLL || gid < 0 || gid > 0xffffffffLL)
		return error_set(CAIRN_EUSAGE, "entry %s: owner %lld:%lld out of range", c->entry,
		                 (long long)uid, (long long)gid);
	ino->uid = (uint32_t)uid;
	ino->gid = (uint32_t)gid;
	ino->mtime_sec = archive_entry_mtime(ae);
	long ns = archive_entry_mtime_nsec(ae);
	ino->mtime_nsec = ns >= 0 && ns < 1000000000L ? (uint32_t)ns : 0;
	/* a replaced directory keeps nothing of its old xattrs */
	for (uint32_t k = 0; k < ino->nxattrs; k++) {
		free(ino->xattrs[k].name);
		free(ino->xattrs[k].value);
	}
	ino->nxattrs = 0;
	archive_entry_xattr_reset(ae);
	while (rc == 0 && archive_entry_xattr_next(ae, &name, &value, &len) == ARCHIVE_OK)
		if (name) rc = put_xattr(ino, &xcap, name, value, len);
	if (rc == 0) rc = acl_to_xattr(c, ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, ino, &xcap);
	if (rc == 0 && ino->type == TREE_DIR)
		rc = acl_to_xattr(c, ae, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT, ino, &xcap);
	if (rc == 0 && ino->nxattrs > 1) qsort(ino->xattrs, ino->nxattrs, sizeof(*ino->xattrs), xattr_cmp);
	if (rc < 0 && strncmp(cairn_error_last(), "entry ", 6) != 0) error_prefix("entry %s", c->entry);
	return rc;
}

/* ---- applying one archive entry ---------------------------------------------- */

/* Put ino at the last component of cp in d, replacing what is there (a
 * directory over a directory only updates the metadata: tar and layers merge). */
static int place(node *d, const comps *cp, inode *ino)
{
	int found;
	const char *nm = cp->p[cp->n - 1];
	size_t len = cp->len[cp->n - 1];
	size_t at = kid_pos(d, nm, len, &found);
	if (found) {
		node *old = d->kids[at];
		old->from_base = 0;
		if (old->ino->type == TREE_DIR && ino->type == TREE_DIR) {
			inode *prev = old->ino;
			old->ino = ino;
			inode_unref(prev);
			return 0;
		}
		kid_remove(d, at);
	}
	node *n = node_new(nm, len, ino);
	if (!n) {
		inode_unref(ino);
		return ERR_OOM();
	}
	if (kid_insert(d, at, n) < 0) {
		node_free(n);
		return ERR_OOM();
	}
	return 0;
}

static int whiteout(ictx *c, node *d, const char *nm, size_t len)
{
	c->res.whiteouts++;
	if (len == 8 + 4 && !memcmp(nm, ".wh..wh..opq", 12)) {
		/* opaque: the base's children go, this layer's stay */
		for (size_t k = d->nkids; k-- > 0;)
			if (d->kids[k]->from_base) kid_remove(d, k);
		return 0;
	}
	const char *victim = nm + 4;
	size_t vlen = len - 4;
	if (!tree_name_ok(victim, vlen))
		return error_set(CAIRN_EUSAGE, "entry %s: whiteout of an invalid name", c->entry);
	int found;
	size_t at = kid_pos(d, victim, vlen, &found);
	if (found && d->kids[at]->from_base) kid_remove(d, at);
	return 0;
}

static int apply_entry(ictx *c, struct archive *a, struct archive_entry *ae)
{
	comps cp, lk = {0};
	node *d = NULL;
	inode *ino = NULL;
	int rc = split_path(c->entry, &cp, "entry");
	if (rc < 0) return rc;
	mode_t ftype = archive_entry_filetype(ae);
	const char *link = archive_entry_hardlink(ae);

	if (cp.n == 0) {
		/* the root itself */
		if (link || ftype != AE_IFDIR) {
			rc = error_set(CAIRN_EUSAGE, "entry %s: the root must be a directory", c->entry);
			goto done;
		}
		rc = meta_from_archive(c, ae, c->root->ino);
		c->root->from_base = 0;
		goto done;
	}
	if ((rc = parent_of(c, &cp, &d)) < 0) goto done;
	const char *nm = cp.p[cp.n - 1];
	size_t nlen = cp.len[cp.n - 1];
	if (c->o->base && nlen >= 4 && !memcmp(nm, ".wh.", 4)) {
		rc = whiteout(c, d, nm, nlen);
		goto done;
	}
	if (link) {
		if ((rc = split_path(link, &lk, "hardlink target")) < 0) {
			error_prefix("entry %s", c->entry);
			goto done;
		}
		node *t = lk.n ? lookup(c, &lk) : NULL;
		if (!t) {
			rc = error_set(CAIRN_EUSAGE, "entry %s: hardlink to %s, which is not in the tree before it",
			               c->entry, link);
			goto done;
		}
		if (t->ino->type == TREE_DIR) {
			rc = error_set(CAIRN_EUSAGE, "entry %s: hardlink to directory %s refused", c->entry, link);
			goto done;
		}
		if (t->ino->links == UINT32_MAX) {
			rc = error_set(CAIRN_EUSAGE, "entry %s: too many links", c->entry);
			goto done;
		}
		int found;
		size_t at = kid_pos(d, nm, nlen, &found);
		if (found && d->kids[at]->ino == t->ino) goto done; /* a link to itself */
		ino = t->ino;
		ino->links++;
		rc = place(d, &cp, ino); /* place drops the reference on failure */
		ino = NULL;
		goto done;
	}
	if (!(ino = calloc(1, sizeof(*ino)))) {
		rc = ERR_OOM();
		goto done;
	}
	ino->links = 1;
	switch (ftype) {
	case AE_IFREG: ino->type = TREE_REG; ino->mode = S_IFREG; break;
	case AE_IFDIR: ino->type = TREE_DIR; ino->mode = S_IFDIR; break;
	case AE_IFLNK: ino->type = TREE_SYMLINK; ino->mode = S_IFLNK; break;
	case AE_IFIFO: ino->type = TREE_FIFO; ino->mode = S_IFIFO; break;
	case AE_IFCHR: ino->type = TREE_CHR; ino->mode = S_IFCHR; break;
	case AE_IFBLK: ino->type = TREE_BLK; ino->mode = S_IFBLK; break;
	case AE_IFSOCK:
		c->res.sockets_skipped++;
		inode_unref(ino);
		ino = NULL;
		goto done;
	default:
		rc = error_set(CAIRN_EUSAGE, "entry %s: unsupported type %o", c->entry, (unsigned)ftype);
		goto done;
	}
	if ((rc = meta_from_archive(c, ae, ino)) < 0) goto done;
	if (ino->type == TREE_SYMLINK) {
		const char *t = archive_entry_symlink(ae);
		size_t tl = t ? strlen(t) : 0;
		if (tl == 0 || tl > MAX_SYMLINK_LEN) {
			rc = error_set(CAIRN_EUSAGE, "entry %s: symlink target empty or longer than %d bytes",
			               c->entry, MAX_SYMLINK_LEN);
			goto done;
		}
		if (!(ino->target = strdup(t))) {
			rc = ERR_OOM();
			goto done;
		}
		ino->target_len = (uint32_t)tl;
	} else if (ino->type == TREE_CHR || ino->type == TREE_BLK) {
		ino->rdev_major = (uint32_t)archive_entry_rdevmajor(ae);
		ino->rdev_minor = (uint32_t)archive_entry_rdevminor(ae);
	} else if (ino->type == TREE_REG) {
		la_int64_t size = archive_entry_size(ae);
		if (size < 0) {
			rc = error_set(CAIRN_ECORRUPT, "entry %s: negative size", c->entry);
			goto done;
		}
		ino->size = (uint64_t)size;
		if ((rc = read_content(c, a, ino)) < 0) goto done;
	}
	rc = place(d, &cp, ino);
	ino = NULL;
done:
	if (ino && rc < 0) inode_unref(ino);
	comps_free(&cp);
	comps_free(&lk);
	return rc;
}

/* ---- writing the trees ------------------------------------------------------- */

/* Hardlink groups numbered from 1 in depth-first name order, as take numbers
 * them; the snapshot's counts; the base's chunks that stay are referenced,
 * so that they count for the user as a parent's do for a take. */
static int number_groups(ictx *c, node *root)
{
	nstack st = {NULL, 0, 0};
	int rc = nstack_push(&st, root) ? 0 : ERR_OOM();
	while (rc == 0 && st.n > 0) {
		nframe *f = &st.f[st.n - 1];
		if (f->k == f->d->nkids) {
			st.n--;
			continue;
		}
		node *n = f->d->kids[f->k++];
		inode *i = n->ino;
		switch (i->type) {
		case TREE_REG: c->files++; break;
		case TREE_DIR: c->dirs++; break;
		case TREE_SYMLINK: c->symlinks++; break;
		default: c->specials++; break;
		}
		if (i->type != TREE_DIR) {
			if (i->links > 1 && !i->group) i->group = ++c->groups;
			else if (i->links > 1) c->hardlinks++;
			if (!i->counted && i->type == TREE_REG) {
				for (uint32_t x = 0; x < i->nchunks; x++) c->bytes += i->chunks[x].size;
				/* the archive's chunks were stored (and counted) as read;
				 * the base's are referenced, found in the repository */
				int all = i->base_data ? 0 : writer_ref_chunks(c->w, i->chunks, i->nchunks);
				if (all < 0) rc = all;
				for (uint32_t x = 0; x < i->nchunks && all == 0 && rc == 0; x++)
					rc = writer_ref(c->w, &i->chunks[x].id, BLOB_DATA);
			}
			i->counted = 1;
		}
		if (i->type == TREE_DIR && !nstack_push(&st, n)) rc = ERR_OOM();
	}
	free(st.f);
	return rc;
}

static void fill_entry(tree_entry *e, const node *n, tree_xattr *xa)
{
	const inode *i = n->ino;
	memset(e, 0, sizeof(*e));
	e->name = n->name;
	e->name_len = n->name_len;
	e->type = i->type;
	e->mode = i->mode;
	e->uid = i->uid;
	e->gid = i->gid;
	e->mtime_sec = i->mtime_sec;
	e->mtime_nsec = i->mtime_nsec;
	e->rdev_major = i->rdev_major;
	e->rdev_minor = i->rdev_minor;
	e->hardlink = i->type != TREE_DIR && i->links > 1 ? i->group : 0;
	for (uint32_t k = 0; k < i->nxattrs; k++) {
		xa[k].name = i->xattrs[k].name;
		xa[k].name_len = (uint16_t)strlen(i->xattrs[k].name);
		xa[k].value = i->xattrs[k].value;
		xa[k].value_len = i->xattrs[k].len;
	}
	e->nxattrs = i->nxattrs;
	e->xattrs = xa;
	if (i->type == TREE_SYMLINK) {
		e->target = i->target;
		e->target_len = i->target_len;
		e->size = i->target_len;
	} else if (i->type == TREE_REG) {
		e->size = i->size;
		e->nextents = i->nextents;
		e->extents = i->extents;
		e->nchunks = i->nchunks;
		e->chunks = i->chunks;
	}
}

/* Start writing d's tree: its entries (subtree ids filled in as written). */
static int write_tree_begin(nstack *st, node *d)
{
	nframe *f = nstack_push(st, d);
	if (!f) return ERR_OOM();
	size_t nx = 0;
	for (size_t k = 0; k < d->nkids; k++) nx += d->kids[k]->ino->nxattrs;
	f->entries = calloc(d->nkids ? d->nkids : 1, sizeof(*f->entries));
	f->xa = calloc(nx ? nx : 1, sizeof(*f->xa));
	return f->entries && f->xa ? 0 : ERR_OOM();
}

/* Every tree below root, bottom-up (a tree's id needs its subtrees'). */
static int write_tree(ictx *c, node *root, oid *out)
{
	nstack st = {NULL, 0, 0};
	int rc = write_tree_begin(&st, root);
	while (rc == 0 && st.n > 0) {
		nframe *f = &st.f[st.n - 1];
		if (f->k < f->d->nkids) {
			node *n = f->d->kids[f->k];
			fill_entry(&f->entries[f->k++], n, f->xa + f->nx);
			f->nx += n->ino->nxattrs;
			if (n->ino->type == TREE_DIR) rc = write_tree_begin(&st, n);
			continue;
		}
		oid id;
		size_t added;
		if ((rc = writer_put_tree(c->w, f->entries, f->d->nkids, &id, &added)) < 0) {
			nstack_prefix(&st);
			break;
		}
		c->res.stored_bytes += added;
		free(f->entries);
		free(f->xa);
		if (--st.n > 0) st.f[st.n - 1].entries[st.f[st.n - 1].k - 1].subtree = id;
		else *out = id;
	}
	while (st.n > 0) {
		free(st.f[--st.n].entries);
		free(st.f[st.n].xa);
	}
	free(st.f);
	return rc;
}

static int commit(ictx *c, char id[OID_HEX_LEN + 1], int64_t t0)
{
	oid content, top_id;
	size_t added;
	int rc;
	char host[256] = "";

	/* the snapshot references what its tree holds: not what an entry
	 * the archive defined again (a directory replaced by a file) held */
	if ((rc = writer_restart_refs(c->w, 0)) < 0) return rc;
	if ((rc = number_groups(c, c->root)) < 0) return rc;
	c->dirs++; /* the root, as take counts it */
	if ((rc = write_tree(c, c->root, &content)) < 0) return rc;
	tree_xattr *xa = calloc(c->root->ino->nxattrs + 1, sizeof(*xa));
	if (!xa) return ERR_OOM();
	tree_entry top;
	node rootname = *c->root;
	rootname.name = "root";
	rootname.name_len = 4;
	fill_entry(&top, &rootname, xa);
	top.subtree = content;
	rc = writer_put_tree(c->w, &top, 1, &top_id, &added);
	free(xa);
	if (rc < 0) return rc;
	c->res.stored_bytes += added;

	snapshot_manifest m;
	memset(&m, 0, sizeof(m));
	m.tree = top_id;
	if (c->o->base) hex_decode(m.parent.b, OID_LEN, c->o->base);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	m.time_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	gethostname(host, sizeof(host) - 1);
	m.user = (char *)(c->o->user ? c->o->user : "default");
	m.name = (char *)c->o->name;
	m.root_path = (char *)(c->o->source ? c->o->source : "-");
	m.hostname = host;
	m.files = c->files;
	m.dirs = c->dirs;
	m.symlinks = c->symlinks;
	m.specials = c->specials;
	m.hardlinks = c->hardlinks;
	m.sockets_skipped = c->res.sockets_skipped;
	m.bytes = c->bytes;
	m.new_bytes = c->res.new_bytes;
	m.stored_bytes = c->res.stored_bytes;
	m.duration_ms = (uint64_t)(mono_ns() - t0) / 1000000;
	size_t nl = c->o->nlabels;
	char **keys = calloc(nl + 1, sizeof(char *)), **values = calloc(nl + 1, sizeof(char *));
	rc = keys && values ? 0 : ERR_OOM();
	for (size_t i = 0; i < nl && rc == 0; i++) {
		const char *eq = strchr(c->o->labels[i], '=');
		keys[i] = strndup(c->o->labels[i], (size_t)(eq - c->o->labels[i]));
		values[i] = strdup(eq + 1);
		if (!keys[i] || !values[i]) rc = ERR_OOM();
	}
	m.nlabels = nl;
	m.label_keys = keys;
	m.label_values = values;
	if (rc == 0) rc = writer_commit(c->w, &m, id);
	for (size_t i = 0; keys && values && i < nl; i++) {
		free(keys[i]);
		free(values[i]);
	}
	free(keys);
	free(values);
	c->res.duration_ms = m.duration_ms;
	return rc;
}

static int check_import_options(const cairn_import_options *o)
{
	if (!o || o->version != CAIRN_IMPORT_OPTIONS_VERSION)
		return error_set(CAIRN_EUSAGE, "import: missing or unsupported options");
	if (!o->name || !*o->name) return error_set(CAIRN_EUSAGE, "import: --name is required");
	if (strlen(o->name) > MAX_STR_LEN) return error_set(CAIRN_EUSAGE, "import: name too long");
	if (o->source && strlen(o->source) > MAX_STR_LEN)
		return error_set(CAIRN_EUSAGE, "import: source name too long");
	if (o->user && user_name_check(o->user) < 0) return CAIRN_EUSAGE;
	if (o->base && (strlen(o->base) != OID_HEX_LEN))
		return error_set(CAIRN_EUSAGE, "import: base must be a full snapshot id");
	for (size_t i = 0; i < o->nlabels; i++) {
		const char *eq = strchr(o->labels[i], '=');
		if (!eq || eq == o->labels[i] || strlen(o->labels[i]) > MAX_STR_LEN)
			return error_set(CAIRN_EUSAGE, "label %s: must be KEY=VALUE", o->labels[i]);
	}
	return 0;
}

CAIRN_EXTERN int cairn_import(cairn_import_result *out, cairn_repo *repo, int fd,
                              const cairn_import_options *o)
{
	ictx c;
	struct archive *a = NULL;
	struct archive_entry *ae;
	int64_t t0 = mono_ns();
	int rc, r;

	memset(&c, 0, sizeof(c));
	if (out) memset(out, 0, sizeof(*out));
	if ((rc = check_import_options(o)) < 0) return rc;
	repo_session(repo); /* before the marks and the index are read */
	c.repo = repo;
	c.o = o;
	c.cap = (size_t)repo->chunker.max * 2 + 1024 * 1024;
	if (!(c.buf = malloc(c.cap))) {
		rc = ERR_OOM();
		goto done;
	}
	if ((rc = writer_new(&c.w, repo)) < 0) goto done;
	/* quota from here on, as for a take */
	if ((rc = writer_set_user(c.w, o->user ? o->user : "default", 0)) < 0) goto done;
	if (o->base) {
		if ((rc = load_base(&c, o->base)) < 0) goto done;
	} else {
		inode *ri = dir_inode();
		if (!ri || !(c.root = node_new("", 0, ri))) {
			inode_unref(ri);
			rc = ERR_OOM();
			goto done;
		}
	}

	if (!(a = archive_read_new())) {
		rc = ERR_OOM();
		goto done;
	}
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_xz(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_fd(a, fd, 256 * 1024) != ARCHIVE_OK) {
		rc = ar_fail(a, CAIRN_ECORRUPT, "archive: not a readable tar archive");
		goto done;
	}
	while ((r = archive_read_next_header(a, &ae)) != ARCHIVE_EOF) {
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			const char *m = archive_error_string(a);
			rc = error_set(CAIRN_ECORRUPT, "archive: after %llu entries: %s",
			               (unsigned long long)c.res.entries, m ? m : "unreadable archive");
			goto done;
		}
		c.entry = archive_entry_pathname(ae);
		if (!c.entry) {
			rc = error_set(CAIRN_ECORRUPT, "archive: entry %llu has no path",
			               (unsigned long long)c.res.entries + 1);
			goto done;
		}
		c.res.entries++;
		if ((rc = apply_entry(&c, a, ae)) < 0) goto done;
		import_progress(&c, 0);
	}
	if ((rc = commit(&c, c.res.snapshot, t0)) < 0) goto done;
	import_progress(&c, 1);
	c.res.files = c.files;
	c.res.dirs = c.dirs;
	if (out) *out = c.res;
done:
	if (a) archive_read_free(a);
	writer_free(c.w);
	node_free(c.root);
	free(c.buf);
	return rc;
}
