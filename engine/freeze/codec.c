/* The freeze record as bytes and back (freeze/codec.h). */
#define ERROR_CLASS "freeze"
#include "freeze/codec.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"
#include "format.h"

static void put_str(buf *b, const char *s)
{
	size_t n = strlen(s);
	buf_u16(b, (uint16_t)n);
	buf_put(b, s, n);
}

static int get_str(cursor *c, char *out, size_t cap)
{
	const uint8_t *p;
	uint16_t n = cur_u16(c);
	if (c->bad || n >= cap || cur_bytes(c, &p, n) < 0 || memchr(p, 0, n)) return -1;
	memcpy(out, p, n);
	out[n] = 0;
	return 0;
}

int freeze_record_encode(const freeze_rec *r, uint8_t **out, size_t *len)
{
	buf b;
	buf_init(&b);
	buf_header(&b, MAGIC_FREEZE, 0);
	buf_u32(&b, r->pid);
	buf_u64(&b, r->start);
	buf_u32(&b, r->guardian);
	buf_u64(&b, r->guardian_start);
	buf_u8(&b, r->v2);
	buf_u64(&b, r->pidns);
	buf_u64(&b, (uint64_t)r->time_ns);
	put_str(&b, r->boot);
	put_str(&b, r->cgroup);
	return buf_finish(&b, out, len);
}

int freeze_record_decode(freeze_rec *r, const uint8_t *data, size_t len, const char *what)
{
	const uint8_t *body;
	size_t body_len;
	memset(r, 0, sizeof(*r));
	int rc = frame_check(data, len, MAGIC_FREEZE, what, &body, &body_len);
	if (rc < 0) return rc;
	cursor c;
	cur_init(&c, body, body_len);
	r->pid = cur_u32(&c);
	r->start = cur_u64(&c);
	r->guardian = cur_u32(&c);
	r->guardian_start = cur_u64(&c);
	r->v2 = cur_u8(&c);
	r->pidns = cur_u64(&c);
	r->time_ns = (int64_t)cur_u64(&c);
	if (get_str(&c, r->boot, sizeof(r->boot)) < 0 || get_str(&c, r->cgroup, sizeof(r->cgroup)) < 0 || c.bad ||
	    c.left != 0 || r->cgroup[0] != '/')
		return error_set(CAIRN_ECORRUPT, "%s: bad length or cgroup", what);
	return 0;
}
