#include "damaged.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"
#include "format.h"
#include "store.h"
#include "util.h"

int damaged_encode(int64_t time_ns, const char *reason, uint8_t **out, size_t *len)
{
	buf b;
	size_t rl = strlen(reason);
	if (rl > MAX_STR_LEN) rl = MAX_STR_LEN;
	buf_init(&b);
	buf_header(&b, MAGIC_DAMAGED, 0);
	buf_u64(&b, (uint64_t)time_ns);
	buf_u16(&b, (uint16_t)rl);
	buf_put(&b, reason, rl);
	return buf_finish(&b, out, len);
}

int damaged_decode(const uint8_t *data, size_t len, const char *what, int64_t *time_ns,
                   const char **reason, size_t *reason_len)
{
	const uint8_t *body, *r;
	size_t body_len;
	int rc = frame_check(data, len, MAGIC_DAMAGED, what, &body, &body_len);
	if (rc < 0) return rc;
	cursor cur;
	cur_init(&cur, body, body_len);
	*time_ns = (int64_t)cur_u64(&cur);
	uint16_t rl = cur_u16(&cur);
	if (cur_bytes(&cur, &r, rl) < 0 || cur.bad || cur.left != 0)
		return error_set(CAIRN_ECORRUPT, "%s: bad damaged marker", what);
	*reason = (const char *)r;
	*reason_len = rl;
	return 0;
}

int damaged_mark(cairn_repo *r, const char *snap_hex, const char *reason)
{
	char name[128];
	uint8_t *data;
	size_t len;
	int rc = damaged_encode(now_ns(), reason, &data, &len);
	if (rc < 0) return rc;
	snprintf(name, sizeof(name), "damaged/%s", snap_hex);
	rc = store_put(r->st, name, data, len, 0);
	free(data);
	return rc;
}

int damaged_check(cairn_repo *r, const char *snap_hex)
{
	char name[128];
	uint8_t *data;
	size_t len, rl = 0;
	int64_t when;
	const char *reason = "";
	snprintf(name, sizeof(name), "damaged/%s", snap_hex);
	int rc = store_get(r->st, name, DAMAGED_MAX, &data, &len);
	if (rc == CAIRN_ENOTFOUND) return 0;
	if (rc < 0) return rc;
	/* a marker is damage whatever its state: an unreadable one still says so */
	if (damaged_decode(data, len, name, &when, &reason, &rl) < 0) {
		reason = "";
		rl = 0;
	}
	rc = error_set(CAIRN_ECORRUPT, "snapshot %s: marked damaged by fsck --repair: %.*s", snap_hex, (int)rl,
	               reason);
	free(data);
	return rc;
}
