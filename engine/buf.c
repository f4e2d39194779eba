#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cairn.h"
#include "error.h"
#include "format.h"
#include "hash.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void prefault(void *p, size_t len)
{
	if (!len) return;
	long ps = sysconf(_SC_PAGESIZE);
	uintptr_t page = ps > 0 ? (uintptr_t)ps : 4096;
	uintptr_t start = (uintptr_t)p & ~(page - 1);
	uintptr_t end = ((uintptr_t)p + len + page - 1) & ~(page - 1);
	/* whole pages: the ones at either end hold p's first and last bytes */
	if (madvise((void *)start, end - start, MADV_POPULATE_WRITE) == 0) return;
	volatile uint8_t *b = p;
	for (size_t i = 0; i < len; i += (size_t)page) b[i] = b[i];
	b[len - 1] = b[len - 1];
}

void buf_init(buf *b) { memset(b, 0, sizeof(*b)); }

void buf_free(buf *b)
{
	free(b->data);
	buf_init(b);
}

int buf_reserve(buf *b, size_t extra)
{
	if (b->oom) return -1;
	if (b->len + extra <= b->cap) return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra) {
		if (cap > SIZE_MAX / 2) { b->oom = 1; return -1; }
		cap *= 2;
	}
	uint8_t *p = realloc(b->data, cap);
	if (!p) { b->oom = 1; return -1; }
	b->data = p;
	b->cap = cap;
	return 0;
}

void buf_put(buf *b, const void *p, size_t n)
{
	if (n == 0 || buf_reserve(b, n) < 0) return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void buf_u8(buf *b, uint8_t v) { buf_put(b, &v, 1); }
void buf_u16(buf *b, uint16_t v) { uint8_t t[2]; put_u16(t, v); buf_put(b, t, 2); }
void buf_u32(buf *b, uint32_t v) { uint8_t t[4]; put_u32(t, v); buf_put(b, t, 4); }
void buf_u64(buf *b, uint64_t v) { uint8_t t[8]; put_u64(t, v); buf_put(b, t, 8); }

void buf_header(buf *b, const char magic[8], uint32_t flags)
{
	buf_put(b, magic, 8);
	buf_u32(b, FORMAT_VERSION);
	buf_u32(b, flags);
}

void buf_check(buf *b)
{
	if (b->oom) return;
	buf_u64(b, hash_xxh3(b->data, b->len));
}

uint8_t *buf_take(buf *b, size_t *len)
{
	uint8_t *p = b->data;
	*len = b->len;
	buf_init(b);
	return p;
}

int buf_finish(buf *b, uint8_t **out, size_t *len)
{
	buf_check(b);
	if (b->oom) {
		buf_free(b);
		return ERR_OOM();
	}
	*out = buf_take(b, len);
	return 0;
}

void *vec_grow(void *v, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap) return v;
	size_t ncap = *cap ? *cap : 16;
	while (ncap < need) ncap *= 2;
	void *n = realloc(v, ncap * elem);
	if (n) *cap = ncap;
	return n;
}

int strv_push(char ***v, size_t *n, size_t *cap, const char *s)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		char **p = realloc(*v, c * sizeof(*p));
		if (!p) return ERR_OOM();
		*v = p;
		*cap = c;
	}
	if (!((*v)[*n] = strdup(s))) return ERR_OOM();
	(*n)++;
	return 0;
}

void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++) free(v[i]);
	free(v);
}

void cur_init(cursor *c, const void *p, size_t len)
{
	c->p = p;
	c->left = len;
	c->bad = 0;
}

int cur_bytes(cursor *c, const uint8_t **out, size_t n)
{
	if (c->bad || n > c->left) { c->bad = 1; *out = NULL; return -1; }
	*out = c->p;
	c->p += n;
	c->left -= n;
	return 0;
}

int cur_copy(cursor *c, void *out, size_t n)
{
	const uint8_t *p;
	if (cur_bytes(c, &p, n) < 0) { memset(out, 0, n); return -1; }
	memcpy(out, p, n);
	return 0;
}

uint8_t cur_u8(cursor *c) { const uint8_t *p; return cur_bytes(c, &p, 1) ? 0 : p[0]; }
uint16_t cur_u16(cursor *c) { const uint8_t *p; return cur_bytes(c, &p, 2) ? 0 : get_u16(p); }
uint32_t cur_u32(cursor *c) { const uint8_t *p; return cur_bytes(c, &p, 4) ? 0 : get_u32(p); }
uint64_t cur_u64(cursor *c) { const uint8_t *p; return cur_bytes(c, &p, 8) ? 0 : get_u64(p); }

int frame_check(const uint8_t *data, size_t len, const char magic[8], const char *what,
                const uint8_t **body, size_t *body_len)
{
	if (len < FORMAT_HEADER_LEN + FORMAT_CHECK_LEN)
		return error_set(CAIRN_ECORRUPT, "%s: truncated (%zu bytes)", what, len);
	if (memcmp(data, magic, 8) != 0)
		return error_set(CAIRN_ECORRUPT, "%s: bad magic", what);
	uint32_t version = get_u32(data + 8);
	if (version != FORMAT_VERSION)
		return error_set(CAIRN_ECORRUPT, "%s: unsupported format version %u", what, version);
	uint64_t want = get_u64(data + len - FORMAT_CHECK_LEN);
	if (hash_xxh3(data, len - FORMAT_CHECK_LEN) != want)
		return error_set(CAIRN_ECORRUPT, "%s: checksum mismatch", what);
	*body = data + FORMAT_HEADER_LEN;
	*body_len = len - FORMAT_HEADER_LEN - FORMAT_CHECK_LEN;
	return 0;
}
