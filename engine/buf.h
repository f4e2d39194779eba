/* Growable byte buffer for encoders, and a bounds-checked cursor for decoders. */
#ifndef CAIRN_BUF_H
#define CAIRN_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
	uint8_t *data;
	size_t len, cap;
	int oom; /* sticky: an append failed; callers check once at the end */
} buf;

void buf_init(buf *b);
void buf_free(buf *b);
int buf_reserve(buf *b, size_t extra); /* 0 or -1 (and sets oom) */
void buf_put(buf *b, const void *p, size_t n);
void buf_u8(buf *b, uint8_t v);
void buf_u16(buf *b, uint16_t v);
void buf_u32(buf *b, uint32_t v);
void buf_u64(buf *b, uint64_t v);
/* magic[8] version flags: the common file header */
void buf_header(buf *b, const char magic[8], uint32_t flags);
/* Append xxh3 of everything so far: the common file trailer. */
void buf_check(buf *b);
/* Hand the bytes to the caller (who frees them); b is reset. */
uint8_t *buf_take(buf *b, size_t *len);
/* A record's end: buf_check, then its bytes handed to the caller; 0, or
 * CAIRN_ENOMEM (b freed) when any append ran out of memory. */
int buf_finish(buf *b, uint8_t **out, size_t *len);

/* Fault in the pages of [p, p + len) for writing now, so that code which
 * must not wait (a frozen instance's take) does not take their faults later:
 * MADV_POPULATE_WRITE (Linux 5.14), else a store to each page. The bytes
 * are kept. */
void prefault(void *p, size_t len);

/* v (elements of elem bytes, *cap of them) grown to hold need at least,
 * doubling: the array, maybe moved, or NULL (v untouched) when out of memory. */
void *vec_grow(void *v, size_t *cap, size_t need, size_t elem);

/* A growable vector of malloc'd strings. */
int strv_push(char ***v, size_t *n, size_t *cap, const char *s);
void strv_free(char **v, size_t n);

/* Decoder cursor. Every get fails (returns -1, sets bad) past the end. */
typedef struct cursor {
	const uint8_t *p;
	size_t left;
	int bad;
} cursor;

void cur_init(cursor *c, const void *p, size_t len);
int cur_bytes(cursor *c, const uint8_t **out, size_t n); /* borrow n bytes */
int cur_copy(cursor *c, void *out, size_t n);
uint8_t cur_u8(cursor *c);
uint16_t cur_u16(cursor *c);
uint32_t cur_u32(cursor *c);
uint64_t cur_u64(cursor *c);

/* Check the common framing of a whole file: length, magic, version and the
 * trailing xxh3. On success body and body_len give the part between header and
 * check. Returns 0, or CAIRN_ECORRUPT with a message naming what (e.g.
 * "snapshot 3fa1...") and the fault. */
int frame_check(const uint8_t *data, size_t len, const char magic[8], const char *what,
                const uint8_t **body, size_t *body_len);

#endif
