/* Export and import (internal.h): cairn_export: a snapshot's trees walked
 * depth-first in name order, one tar entry each (ACL xattrs as libarchive's
 * ACLs). */
#include "internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cairn.h"
#include "options.h"
#include "util.h"

#define ZERO_LEN (64u * 1024u)
#define ZMAP_LEN ((size_t)1 << 30) /* below libarchive's INT_MAX a write */
static const uint8_t zeros[ZERO_LEN];

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

/* 1 when the caller's callback asked to cancel. */
static int export_progress(xctx *x, int force)
{
	if (!x->o->event_cb && !x->o->event_cancel_cb) return 0;
	int64_t now = mono_ns();
	if (!force && now - x->last_ns < 100000000LL) return 0;
	x->last_ns = now;
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CAIRN_EVENT_PROGRESS;
	ev.files = x->res.files;
	ev.bytes = x->res.bytes;
	return event_emit(x->o->event_cb, x->o->event_cancel_cb, x->o->event_payload, &ev);
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
	if (export_progress(x, 0)) return error_set(CAIRN_ECANCELED, "export: canceled by the caller");
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

static int export_run(cairn_export_result *out, cairn_repo *repo, const char *snap_id, int fd,
                      const cairn_export_options *opts)
{
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
	export_progress(&x, 1); /* written: too late to cancel */
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

CAIRN_EXTERN int cairn_export(cairn_export_result *out, cairn_repo *repo, const char *snap_id,
                              int fd, const cairn_export_options *opts)
{
	static const size_t option_sizes[] = {
		offsetof(cairn_export_options, event_cancel_cb), /* 1 */
		sizeof(cairn_export_options),                    /* 2: event_cancel_cb */
	};
	static const size_t result_sizes[] = {sizeof(cairn_export_result)};
	cairn_export_options o = CAIRN_EXPORT_OPTIONS_INIT;
	cairn_export_result r = CAIRN_EXPORT_RESULT_INIT;
	int rc = result_check(out, CAIRN_EXPORT_RESULT_VERSION, "export");
	if (rc == 0) rc = options_copy(&o, opts, option_sizes, CAIRN_EXPORT_OPTIONS_VERSION, "export");
	if (rc == 0) rc = event_cbs_check(o.event_cb, o.event_cancel_cb, "export");
	if (rc < 0) return rc;
	rc = export_run(&r, repo, snap_id, fd, &o);
	result_copy(out, &r, result_sizes);
	return rc;
}
