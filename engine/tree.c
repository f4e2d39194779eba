#include "tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"
#include "util.h"

/* Smallest encodings, used to bound counts by the bytes left before any
 * allocation: a tentry without name and payload, an xattr, an extent, a chunk. */
#define TENTRY_FIXED_LEN 71 /* name_len..nxattrs, without the name bytes */
#define XATTR_MIN_LEN 6
#define EXTENT_LEN 16
#define CHUNK_LEN (OID_LEN + 4)

#define NSEC_PER_SEC 1000000000u

/* Why name is unacceptable, or NULL if it is fine. */
static const char *name_fault(const char *name, size_t len)
{
	if (len == 0) return "empty name";
	if (len > MAX_NAME_LEN) return "name longer than 255 bytes";
	if (!name) return "name missing";
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return "name is \".\" or \"..\"";
	if (memchr(name, '/', len)) return "name contains '/'";
	if (memchr(name, '\0', len)) return "name contains NUL";
	return NULL;
}

int tree_name_ok(const char *name, size_t len) { return name_fault(name, len) == NULL; }

static uint32_t type_ifmt(uint8_t type)
{
	switch (type) {
	case TREE_REG: return S_IFREG;
	case TREE_DIR: return S_IFDIR;
	case TREE_SYMLINK: return S_IFLNK;
	case TREE_FIFO: return S_IFIFO;
	case TREE_CHR: return S_IFCHR;
	case TREE_BLK: return S_IFBLK;
	default: return 0;
	}
}

static int fault(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fault(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -1;
}

static int check_xattrs(const tree_entry *e, char *why, size_t wn)
{
	if (e->nxattrs && !e->xattrs) return fault(why, wn, "xattrs missing");
	for (uint32_t i = 0; i < e->nxattrs; i++) {
		const tree_xattr *x = &e->xattrs[i];
		if (x->name_len == 0 || x->name_len > MAX_XATTR_NAME_LEN)
			return fault(why, wn, "xattr %u: name length %u", i, x->name_len);
		if (!x->name) return fault(why, wn, "xattr %u: name missing", i);
		if (memchr(x->name, '\0', x->name_len))
			return fault(why, wn, "xattr %u: name contains NUL", i);
		if (x->value_len > MAX_XATTR_VALUE_LEN)
			return fault(why, wn, "xattr %u: value length %u over %u", i, x->value_len,
			             MAX_XATTR_VALUE_LEN);
		if (x->value_len && !x->value) return fault(why, wn, "xattr %u: value missing", i);
		if (i > 0) {
			const tree_xattr *p = &e->xattrs[i - 1];
			int c = name_cmp(p->name, p->name_len, x->name, x->name_len);
			if (c == 0) return fault(why, wn, "xattr %u: duplicate name", i);
			if (c > 0) return fault(why, wn, "xattr %u: names not in ascending order", i);
		}
	}
	return 0;
}

static int check_reg(const tree_entry *e, char *why, size_t wn)
{
	if (e->target_len) return fault(why, wn, "symlink target on a regular file");
	if (e->size > TREE_FILE_SIZE_MAX)
		return fault(why, wn, "size %llu is more than a file system holds (%llu at most)",
		             (unsigned long long)e->size, (unsigned long long)TREE_FILE_SIZE_MAX);
	if (e->nextents && !e->extents) return fault(why, wn, "extents missing");
	if (e->nchunks && !e->chunks) return fault(why, wn, "chunks missing");
	uint64_t data = 0, end = 0;
	for (uint32_t i = 0; i < e->nextents; i++) {
		const tree_extent *x = &e->extents[i];
		/* the one empty extent allowed is [size, 0), alone: a file all hole */
		if (x->length == 0 && (e->nextents != 1 || x->offset != e->size))
			return fault(why, wn, "extent %u: empty", i);
		if (i > 0 && x->offset < end)
			return fault(why, wn, "extent %u: overlaps or out of order", i);
		if (x->offset > e->size || x->length > e->size - x->offset)
			return fault(why, wn, "extent %u: beyond size %llu", i,
			             (unsigned long long)e->size);
		end = x->offset + x->length;
		data += x->length; /* cannot wrap: extents are disjoint and inside size */
	}
	if (e->nextents == 0) data = e->size;
	uint64_t sum = 0; /* at most 2^32 chunks of 2^24 bytes: no wrap */
	for (uint32_t i = 0; i < e->nchunks; i++) {
		uint32_t s = e->chunks[i].size;
		if (s == 0 || s > MAX_CHUNK_LEN)
			return fault(why, wn, "chunk %u: size %u out of range", i, s);
		sum += s;
	}
	if (sum != data)
		return fault(why, wn, "chunk sizes sum to %llu, data is %llu bytes",
		             (unsigned long long)sum, (unsigned long long)data);
	return 0;
}

static int check_symlink(const tree_entry *e, char *why, size_t wn)
{
	if (e->nextents || e->nchunks) return fault(why, wn, "extents or chunks on a symlink");
	if (e->target_len == 0 || e->target_len > MAX_SYMLINK_LEN)
		return fault(why, wn, "symlink target length %u", e->target_len);
	if (!e->target) return fault(why, wn, "symlink target missing");
	if (memchr(e->target, '\0', e->target_len)) return fault(why, wn, "symlink target contains NUL");
	if (e->size != e->target_len)
		return fault(why, wn, "size %llu is not the target length %u",
		             (unsigned long long)e->size, e->target_len);
	return 0;
}

/* The one set of rules for an entry, shared by encode and decode so that
 * whatever one accepts the other does too. prev is the entry before, or NULL. */
static int check_entry(const tree_entry *e, const tree_entry *prev, char *why, size_t wn)
{
	const char *nf = name_fault(e->name, e->name_len);
	if (nf) return fault(why, wn, "%s", nf);
	if (prev) {
		int c = name_cmp(prev->name, prev->name_len, e->name, e->name_len);
		if (c == 0) return fault(why, wn, "duplicate name");
		if (c > 0) return fault(why, wn, "names not in ascending order");
	}
	uint32_t ifmt = type_ifmt(e->type);
	if (!ifmt) return fault(why, wn, "bad type %u", e->type);
	if ((e->mode & S_IFMT) != ifmt)
		return fault(why, wn, "mode 0%o does not match type %u", e->mode, e->type);
	if (e->mode & ~(uint32_t)(S_IFMT | 07777))
		return fault(why, wn, "mode 0%o has unknown bits", e->mode);
	if (e->mtime_nsec >= NSEC_PER_SEC || e->ctime_nsec >= NSEC_PER_SEC)
		return fault(why, wn, "nanoseconds out of range");
	if (check_xattrs(e, why, wn) < 0) return -1;
	switch (e->type) {
	case TREE_REG: return check_reg(e, why, wn);
	case TREE_SYMLINK: return check_symlink(e, why, wn);
	default:
		if (e->nextents || e->nchunks || e->target_len)
			return fault(why, wn, "payload fields set for type %u", e->type);
		if (e->size) return fault(why, wn, "size %llu on type %u (must be 0)",
		                          (unsigned long long)e->size, e->type);
		return 0;
	}
}

int tree_encode(const tree_entry *entries, size_t n, uint8_t **out, size_t *len)
{
	buf b;
	char why[160];
	buf_init(&b);
	*out = NULL;
	*len = 0;
	if (n > UINT32_MAX) return error_set(CAIRN_EUSAGE, "tree: %zu entries is too many", n);
	if (n && !entries) return error_set(CAIRN_EUSAGE, "tree: entries missing");
	for (size_t i = 0; i < n; i++)
		if (check_entry(&entries[i], i ? &entries[i - 1] : NULL, why, sizeof(why)) < 0)
			return error_set(CAIRN_EUSAGE, "tree: entry %zu: %s", i, why);

	buf_header(&b, MAGIC_TREE, 0);
	buf_u32(&b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		const tree_entry *e = &entries[i];
		buf_u16(&b, e->name_len);
		buf_put(&b, e->name, e->name_len);
		buf_u8(&b, e->type);
		buf_u32(&b, e->mode);
		buf_u32(&b, e->uid);
		buf_u32(&b, e->gid);
		buf_u64(&b, (uint64_t)e->mtime_sec);
		buf_u32(&b, e->mtime_nsec);
		buf_u64(&b, (uint64_t)e->ctime_sec);
		buf_u32(&b, e->ctime_nsec);
		buf_u64(&b, e->ino);
		buf_u64(&b, e->size);
		buf_u32(&b, e->rdev_major);
		buf_u32(&b, e->rdev_minor);
		buf_u32(&b, e->hardlink);
		buf_u32(&b, e->nxattrs);
		for (uint32_t j = 0; j < e->nxattrs; j++) {
			const tree_xattr *x = &e->xattrs[j];
			buf_u16(&b, x->name_len);
			buf_put(&b, x->name, x->name_len);
			buf_u32(&b, x->value_len);
			buf_put(&b, x->value, x->value_len);
		}
		switch (e->type) {
		case TREE_REG:
			buf_u32(&b, e->nextents);
			for (uint32_t j = 0; j < e->nextents; j++) {
				buf_u64(&b, e->extents[j].offset);
				buf_u64(&b, e->extents[j].length);
			}
			buf_u32(&b, e->nchunks);
			for (uint32_t j = 0; j < e->nchunks; j++) {
				buf_put(&b, e->chunks[j].id.b, OID_LEN);
				buf_u32(&b, e->chunks[j].size);
			}
			break;
		case TREE_DIR:
			buf_put(&b, e->subtree.b, OID_LEN);
			break;
		case TREE_SYMLINK:
			buf_u32(&b, e->target_len);
			buf_put(&b, e->target, e->target_len);
			break;
		}
		if (b.len > MAX_TREE_LEN) break; /* reported below */
	}
	buf_check(&b);
	if (b.oom) {
		buf_free(&b);
		return ERR_OOM();
	}
	if (b.len > MAX_TREE_LEN) {
		buf_free(&b);
		return error_set(CAIRN_EUSAGE, "tree: larger than %u bytes", MAX_TREE_LEN);
	}
	*out = buf_take(&b, len);
	return 0;
}

/* Decoding runs the same parser twice: first to bound and size everything,
 * then (with dst set) to copy into one allocation sized by the first pass. */
typedef struct totals {
	size_t nxattrs, nextents, nchunks, strbytes;
} totals;

typedef struct dest {
	tree_entry *entries;
	tree_xattr *xattrs;
	tree_extent *extents;
	tree_chunk *chunks;
	char *str;
} dest;

/* Copy n bytes and a NUL into the string area (pass two only). */
static const char *put_str(dest *d, totals *t, const uint8_t *p, size_t n)
{
	t->strbytes += n + 1;
	if (!d) return NULL;
	char *s = d->str;
	if (n) memcpy(s, p, n);
	s[n] = 0;
	d->str += n + 1;
	return s;
}

static int parse(const uint8_t *body, size_t body_len, const char *what, size_t *count,
                 totals *t, dest *d)
{
	cursor c;
	const uint8_t *p;
	cur_init(&c, body, body_len);
	memset(t, 0, sizeof(*t));
	uint32_t n = cur_u32(&c);
	if (c.bad) return error_set(CAIRN_ECORRUPT, "%s: truncated entry count", what);
	if (n > c.left / (TENTRY_FIXED_LEN + 1))
		return error_set(CAIRN_ECORRUPT, "%s: entry count %u exceeds the data", what, n);
	*count = n;
	for (uint32_t i = 0; i < n; i++) {
		tree_entry e;
		memset(&e, 0, sizeof(e));
		e.name_len = cur_u16(&c);
		if (cur_bytes(&c, &p, e.name_len) < 0) goto truncated;
		e.name = put_str(d, t, p, e.name_len);
		e.type = cur_u8(&c);
		e.mode = cur_u32(&c);
		e.uid = cur_u32(&c);
		e.gid = cur_u32(&c);
		e.mtime_sec = (int64_t)cur_u64(&c);
		e.mtime_nsec = cur_u32(&c);
		e.ctime_sec = (int64_t)cur_u64(&c);
		e.ctime_nsec = cur_u32(&c);
		e.ino = cur_u64(&c);
		e.size = cur_u64(&c);
		e.rdev_major = cur_u32(&c);
		e.rdev_minor = cur_u32(&c);
		e.hardlink = cur_u32(&c);
		e.nxattrs = cur_u32(&c);
		if (c.bad) goto truncated;
		/* the payload's shape depends on the type: an unknown one cannot be skipped */
		if (!type_ifmt(e.type))
			return error_set(CAIRN_ECORRUPT, "%s: entry %u: bad type %u", what, i, e.type);
		if (e.nxattrs > c.left / XATTR_MIN_LEN)
			return error_set(CAIRN_ECORRUPT, "%s: entry %u: xattr count %u exceeds the data",
			                 what, i, e.nxattrs);
		if (d && e.nxattrs) {
			e.xattrs = d->xattrs;
			d->xattrs += e.nxattrs;
		}
		t->nxattrs += e.nxattrs;
		for (uint32_t j = 0; j < e.nxattrs; j++) {
			tree_xattr x;
			x.name_len = cur_u16(&c);
			if (cur_bytes(&c, &p, x.name_len) < 0) goto truncated;
			x.name = put_str(d, t, p, x.name_len);
			x.value_len = cur_u32(&c);
			if (cur_bytes(&c, &p, x.value_len) < 0) goto truncated;
			/* values are bytes, not strings; the NUL after them is harmless */
			x.value = (const uint8_t *)put_str(d, t, p, x.value_len);
			if (d) ((tree_xattr *)e.xattrs)[j] = x;
		}
		switch (e.type) {
		case TREE_REG:
			e.nextents = cur_u32(&c);
			if (c.bad) goto truncated;
			if (e.nextents > c.left / EXTENT_LEN)
				return error_set(CAIRN_ECORRUPT, "%s: entry %u: extent count %u exceeds the data",
				                 what, i, e.nextents);
			if (d && e.nextents) {
				e.extents = d->extents;
				d->extents += e.nextents;
			}
			t->nextents += e.nextents;
			for (uint32_t j = 0; j < e.nextents; j++) {
				tree_extent x;
				x.offset = cur_u64(&c);
				x.length = cur_u64(&c);
				if (d) ((tree_extent *)e.extents)[j] = x;
			}
			e.nchunks = cur_u32(&c);
			if (c.bad) goto truncated;
			if (e.nchunks > c.left / CHUNK_LEN)
				return error_set(CAIRN_ECORRUPT, "%s: entry %u: chunk count %u exceeds the data",
				                 what, i, e.nchunks);
			if (d && e.nchunks) {
				e.chunks = d->chunks;
				d->chunks += e.nchunks;
			}
			t->nchunks += e.nchunks;
			for (uint32_t j = 0; j < e.nchunks; j++) {
				tree_chunk x;
				cur_copy(&c, x.id.b, OID_LEN);
				x.size = cur_u32(&c);
				if (d) ((tree_chunk *)e.chunks)[j] = x;
			}
			break;
		case TREE_DIR:
			cur_copy(&c, e.subtree.b, OID_LEN);
			break;
		case TREE_SYMLINK:
			e.target_len = cur_u32(&c);
			if (cur_bytes(&c, &p, e.target_len) < 0) goto truncated;
			e.target = put_str(d, t, p, e.target_len);
			break;
		}
		if (c.bad) goto truncated;
		if (d) d->entries[i] = e;
		continue;
	truncated:
		return error_set(CAIRN_ECORRUPT, "%s: entry %u: truncated", what, i);
	}
	if (c.left)
		return error_set(CAIRN_ECORRUPT, "%s: %zu trailing bytes after the entries", what, c.left);
	return 0;
}

/* a += n * size, failing on overflow */
static int add_array(size_t *a, size_t n, size_t size)
{
	if (n > (SIZE_MAX - *a) / size) return -1;
	*a += n * size;
	return 0;
}

int tree_decode(tree *out, const uint8_t *data, size_t len, const char *what)
{
	const uint8_t *body;
	size_t body_len, n = 0;
	totals t;
	char why[160];
	int rc;
	memset(out, 0, sizeof(*out));
	if (!what) what = "tree";
	if (len > (size_t)MAX_TREE_LEN + FORMAT_HEADER_LEN + FORMAT_CHECK_LEN)
		return error_set(CAIRN_ECORRUPT, "%s: %zu bytes is larger than any tree", what, len);
	if ((rc = frame_check(data, len, MAGIC_TREE, what, &body, &body_len)) < 0) return rc;
	uint32_t flags = get_u32(data + 12);
	if (flags)
		return error_set(CAIRN_ECORRUPT, "%s: unsupported feature flags 0x%x", what, flags);
	if ((rc = parse(body, body_len, what, &n, &t, NULL)) < 0) return rc;
	if (n == 0) return 0;

	/* one block: entries, xattrs, extents (8-aligned, their sizes multiples
	 * of 8), then chunks (4-aligned), then the strings */
	size_t size = 0;
	if (add_array(&size, n, sizeof(tree_entry)) < 0 ||
	    add_array(&size, t.nxattrs, sizeof(tree_xattr)) < 0 ||
	    add_array(&size, t.nextents, sizeof(tree_extent)) < 0 ||
	    add_array(&size, t.nchunks, sizeof(tree_chunk)) < 0 ||
	    add_array(&size, t.strbytes, 1) < 0)
		return ERR_OOM();
	uint8_t *mem = malloc(size);
	if (!mem) return ERR_OOM();
	dest d;
	d.entries = (tree_entry *)mem;
	d.xattrs = (tree_xattr *)(d.entries + n);
	d.extents = (tree_extent *)(d.xattrs + t.nxattrs);
	d.chunks = (tree_chunk *)(d.extents + t.nextents);
	d.str = (char *)(d.chunks + t.nchunks);
	totals t2;
	size_t n2;
	if ((rc = parse(body, body_len, what, &n2, &t2, &d)) < 0) goto done;
	for (size_t i = 0; i < n; i++) {
		if (check_entry(&d.entries[i], i ? &d.entries[i - 1] : NULL, why, sizeof(why)) < 0) {
			rc = error_set(CAIRN_ECORRUPT, "%s: entry %zu: %s", what, i, why);
			goto done;
		}
	}
	out->n = n;
	out->entries = (tree_entry *)mem;
	out->mem = mem;
	mem = NULL;
done:
	free(mem);
	return rc;
}

void tree_free(tree *t)
{
	if (!t) return;
	free(t->mem);
	memset(t, 0, sizeof(*t));
}

const tree_entry *tree_find(const tree *t, const char *name, size_t name_len)
{
	if (!t || !name) return NULL;
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const tree_entry *e = &t->entries[mid];
		int c = name_cmp(e->name, e->name_len, name, name_len);
		if (c == 0) return e;
		if (c < 0) lo = mid + 1;
		else hi = mid;
	}
	return NULL;
}

void tree_entry_public(cairn_entry *ce, const tree_entry *e)
{
	static const cairn_entry_type types[] = {
		[TREE_REG] = CAIRN_ENTRY_FILE, [TREE_DIR] = CAIRN_ENTRY_DIR,
		[TREE_SYMLINK] = CAIRN_ENTRY_SYMLINK, [TREE_FIFO] = CAIRN_ENTRY_FIFO,
		[TREE_CHR] = CAIRN_ENTRY_CHR, [TREE_BLK] = CAIRN_ENTRY_BLK};
	memset(ce, 0, sizeof(*ce));
	ce->name = e->name;
	ce->name_len = e->name_len;
	ce->type = e->type < sizeof(types) / sizeof(types[0]) ? types[e->type] : CAIRN_ENTRY_FILE;
	ce->mode = e->mode;
	ce->uid = e->uid;
	ce->gid = e->gid;
	ce->mtime_sec = e->mtime_sec;
	ce->mtime_nsec = e->mtime_nsec;
	ce->size = e->size;
	ce->rdev_major = e->rdev_major;
	ce->rdev_minor = e->rdev_minor;
	ce->link_target = e->type == TREE_SYMLINK ? e->target : NULL;
	ce->hardlink_group = e->hardlink;
	ce->nxattrs = e->nxattrs;
}
