/* Export and import (internal.h): one archive entry applied to the tree in
 * memory: its content through the chunker into the writer, its metadata (ACLs
 * into the kernel's xattr format), its place. */
#include "internal.h"

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "options.h"
#include "util.h"

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

int import_progress(ictx *c, int force)
{
	if (!c->o->event_cb && !c->o->event_cancel_cb) return 0;
	int64_t now = mono_ns();
	if (!force && now - c->last_ns < 100000000LL) return 0;
	c->last_ns = now;
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CAIRN_EVENT_PROGRESS;
	ev.files = c->res.entries;
	ev.bytes = c->res.bytes;
	ev.new_bytes = c->res.new_bytes;
	ev.stored_bytes = c->res.stored_bytes;
	return event_emit(c->o->event_cb, c->o->event_cancel_cb, c->o->event_payload, &ev);
}

int import_canceled(void)
{
	return error_set(CAIRN_ECANCELED, "import: canceled by the caller; nothing committed");
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
		if (import_progress(c, 0)) return import_canceled();
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

int apply_entry(ictx *c, struct archive *a, struct archive_entry *ae)
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
	if ((rc = import_parent_of(c, &cp, &d)) < 0) goto done;
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
		node *t = lk.n ? node_lookup(c, &lk) : NULL;
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
