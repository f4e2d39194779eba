/* Inodes records: see inodes.h; the layout is in format.h. */
#include "inodes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "buf.h"
#include "error.h"
#include "format.h"
#include "hash.h"
#include "pack.h"

#define INODES_MAX_ITEMS (1u << 28)
#define ITEM_BYTES 21 /* kind u8, value u64, ctime_sec i64, ctime_nsec u32 */
#define INODES_ZSTD_LEVEL 3

int64_t inodes_push(inode_list *l, uint8_t kind, uint64_t value, int64_t ctime_sec, uint32_t ctime_nsec)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		inode_item *v = realloc(l->v, cap * sizeof(*v));
		if (!v) return ERR_OOM();
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = (inode_item){value, ctime_sec, ctime_nsec, kind};
	return (int64_t)l->n++;
}

void inodes_free(inode_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static void name_of(char *out, size_t n, const char *snap_hex)
{
	snprintf(out, n, "inodes/%s", snap_hex);
}

/* Columns, each value a difference from the previous file's where that
 * makes it small (inode numbers of a directory run in sequence, ctimes
 * bunch): zstd then shrinks ~21 bytes a file to a few. */
int inodes_encode(const oid *snap, const inode_list *l, uint8_t **data, size_t *len)
{
	size_t n = l->n;
	uint8_t *raw = malloc(n * ITEM_BYTES + 1), *stored = NULL, comp;
	size_t stored_len;
	if (!raw) return ERR_OOM();
	uint8_t *kind = raw, *val = raw + n, *sec = raw + 9 * n, *nsec = raw + 17 * n;
	uint64_t prev_ino = 0, prev_sec = 0;
	for (size_t i = 0; i < n; i++) {
		const inode_item *it = &l->v[i];
		uint64_t v = it->value, s = 0;
		if (it->kind == INODE_REG) {
			v = it->value - prev_ino;
			s = (uint64_t)it->ctime_sec - prev_sec;
			prev_ino = it->value;
			prev_sec = (uint64_t)it->ctime_sec;
		}
		kind[i] = it->kind;
		put_u64(val + 8 * i, v);
		put_u64(sec + 8 * i, s);
		put_u32(nsec + 4 * i, it->kind == INODE_REG ? it->ctime_nsec : 0);
	}
	int rc = pack_compress(raw, n * ITEM_BYTES, INODES_ZSTD_LEVEL, &comp, &stored, &stored_len);
	if (rc < 0) {
		free(raw);
		return rc;
	}
	buf b;
	buf_init(&b);
	buf_header(&b, MAGIC_INODES, 0);
	buf_put(&b, snap->b, OID_LEN);
	buf_u32(&b, (uint32_t)n);
	buf_u8(&b, comp);
	buf_u32(&b, (uint32_t)stored_len);
	buf_put(&b, stored ? stored : raw, stored_len);
	free(stored);
	free(raw);
	return buf_finish(&b, data, len);
}

int inodes_write(cairn_repo *r, const char *snap_hex, const inode_list *l)
{
	char name[OID_HEX_LEN + 16];
	oid snap;
	uint8_t *data;
	size_t len;
	if (hex_decode(snap.b, OID_LEN, snap_hex) < 0) return error_set(CAIRN_EUSAGE, "%s: not a snapshot id", snap_hex);
	int rc = inodes_encode(&snap, l, &data, &len);
	if (rc < 0) return rc;
	name_of(name, sizeof(name), snap_hex);
	rc = store_put(r->st, name, data, len, 0);
	free(data);
	return rc;
}

size_t inodes_max_len(void) { return (size_t)INODES_MAX_ITEMS * ITEM_BYTES; }

int inodes_decode(const char *name, const uint8_t *data, size_t len, oid *snap, inode_list *out)
{
	uint8_t *raw = NULL;
	const uint8_t *body, *stored;
	size_t blen;
	cursor cur;
	memset(out, 0, sizeof(*out));
	int rc = frame_check(data, len, MAGIC_INODES, name, &body, &blen);
	if (rc < 0) return rc;
	cur_init(&cur, body, blen);
	cur_copy(&cur, snap->b, OID_LEN);
	uint32_t n = cur_u32(&cur);
	uint8_t comp = cur_u8(&cur);
	uint32_t stored_len = cur_u32(&cur);
	size_t raw_len = (size_t)n * ITEM_BYTES;
	if (cur.bad || n > INODES_MAX_ITEMS || cur_bytes(&cur, &stored, stored_len) < 0 ||
	    cur.left != 0 || (comp != COMP_NONE && comp != COMP_ZSTD) || (comp == COMP_NONE && stored_len != raw_len)) {
		rc = error_set(CAIRN_ECORRUPT, "%s: malformed", name);
		goto done;
	}
	if (comp == COMP_ZSTD) {
		/* the frame says its size: no allocation for a count it does not back */
		unsigned long long fsize = ZSTD_getFrameContentSize(stored, stored_len);
		if (fsize != raw_len) {
			rc = error_set(CAIRN_ECORRUPT, "%s: does not decompress to %u items", name, n);
			goto done;
		}
		if (!(raw = malloc(raw_len + 1))) {
			rc = ERR_OOM();
			goto done;
		}
		size_t got_len = ZSTD_decompress(raw, raw_len, stored, stored_len);
		if (ZSTD_isError(got_len) || got_len != raw_len) {
			rc = error_set(CAIRN_ECORRUPT, "%s: does not decompress to %u items", name, n);
			goto done;
		}
		stored = raw;
	}
	if (!(out->v = malloc((n ? n : 1) * sizeof(*out->v)))) {
		rc = ERR_OOM();
		goto done;
	}
	out->n = out->cap = n;
	const uint8_t *kind = stored, *val = stored + n, *sec = stored + 9 * (size_t)n, *nsec = stored + 17 * (size_t)n;
	uint64_t prev_ino = 0, prev_sec = 0;
	for (size_t i = 0; i < n; i++) {
		inode_item *it = &out->v[i];
		it->kind = kind[i];
		it->value = get_u64(val + 8 * i);
		it->ctime_sec = 0;
		it->ctime_nsec = get_u32(nsec + 4 * i);
		if (it->kind == INODE_REG) {
			it->value += prev_ino;
			prev_ino = it->value;
			prev_sec += get_u64(sec + 8 * i);
			it->ctime_sec = (int64_t)prev_sec;
		} else if (it->kind != INODE_DIR || it->value > n - i - 1) {
			rc = error_set(CAIRN_ECORRUPT, "%s: item %zu is malformed", name, i);
			goto done;
		}
	}
done:
	if (rc < 0) inodes_free(out);
	free(raw);
	return rc;
}

int inodes_read(cairn_repo *r, const char *snap_hex, inode_list *out)
{
	char name[OID_HEX_LEN + 16];
	uint8_t *data = NULL;
	size_t len;
	oid snap, got;
	memset(out, 0, sizeof(*out));
	name_of(name, sizeof(name), snap_hex);
	if (hex_decode(snap.b, OID_LEN, snap_hex) < 0) return error_set(CAIRN_EUSAGE, "%s: not a snapshot id", name);
	int rc = store_get(r->st, name, inodes_max_len(), &data, &len);
	if (rc < 0) return rc;
	rc = inodes_decode(name, data, len, &got, out);
	if (rc == 0 && oid_cmp(&got, &snap) != 0) {
		inodes_free(out);
		rc = error_set(CAIRN_ECORRUPT, "%s: malformed (it names another snapshot)", name);
	}
	free(data);
	return rc;
}

int inodes_delete(cairn_repo *r, const char *snap_hex)
{
	char name[OID_HEX_LEN + 16];
	name_of(name, sizeof(name), snap_hex);
	int rc = store_delete(r->st, name);
	if (rc == CAIRN_ENOTFOUND) {
		error_clear();
		rc = 0;
	}
	return rc;
}
