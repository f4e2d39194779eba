#include "snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"
#include "format.h"

#define STR_MIN_LEN 2 /* len:u16 */

/* A NULL string encodes as empty; decode always gives non-NULL strings. */
static int put_str(buf *b, const char *s, const char *field)
{
	size_t n = s ? strlen(s) : 0;
	if (n > MAX_STR_LEN)
		return error_set(CAIRN_EUSAGE, "snapshot: %s: %zu bytes is longer than %u", field, n,
		                 MAX_STR_LEN);
	buf_u16(b, (uint16_t)n);
	buf_put(b, s, n);
	return 0;
}

int snapshot_encode(const snapshot_manifest *m, uint8_t **out, size_t *len)
{
	buf b;
	char field[48];
	int rc = 0;
	buf_init(&b);
	*out = NULL;
	*len = 0;
	if (m->nlabels > UINT32_MAX)
		return error_set(CAIRN_EUSAGE, "snapshot: %zu labels is too many", m->nlabels);
	if (m->nlabels && (!m->label_keys || !m->label_values))
		return error_set(CAIRN_EUSAGE, "snapshot: labels missing");

	buf_header(&b, MAGIC_SNAPSHOT, m->has_added ? SNAPSHOT_HAS_ADDED : 0);
	buf_put(&b, m->tree.b, OID_LEN);
	buf_put(&b, m->parent.b, OID_LEN);
	buf_u32(&b, m->flags);
	buf_u64(&b, (uint64_t)m->time_ns);
	if ((rc = put_str(&b, m->user, "user")) < 0 || (rc = put_str(&b, m->name, "name")) < 0 ||
	    (rc = put_str(&b, m->root_path, "root_path")) < 0 ||
	    (rc = put_str(&b, m->hostname, "hostname")) < 0)
		goto done;
	const uint64_t counters[] = {m->files, m->dirs, m->symlinks, m->specials,
	                             m->hardlinks, m->sockets_skipped, m->bytes, m->new_bytes,
	                             m->stored_bytes, m->pause_ms, m->duration_ms};
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) buf_u64(&b, counters[i]);
	buf_u32(&b, (uint32_t)m->nlabels);
	for (size_t i = 0; i < m->nlabels; i++) {
		snprintf(field, sizeof(field), "label %zu key", i);
		if ((rc = put_str(&b, m->label_keys[i], field)) < 0) goto done;
		snprintf(field, sizeof(field), "label %zu value", i);
		if ((rc = put_str(&b, m->label_values[i], field)) < 0) goto done;
	}
	if (m->has_added) buf_u64(&b, m->added_bytes);
	buf_check(&b);
	if (b.oom) {
		rc = ERR_OOM();
		goto done;
	}
	*out = buf_take(&b, len);
done:
	buf_free(&b);
	return rc;
}

/* Read a str into a fresh NUL-terminated copy. */
static int get_str(cursor *c, char **out, const char *what, const char *field)
{
	const uint8_t *p;
	uint16_t n = cur_u16(c);
	if (cur_bytes(c, &p, n) < 0)
		return error_set(CAIRN_ECORRUPT, "%s: %s: truncated", what, field);
	if (n > MAX_STR_LEN)
		return error_set(CAIRN_ECORRUPT, "%s: %s: %u bytes is longer than %u", what, field, n,
		                 MAX_STR_LEN);
	if (memchr(p, '\0', n)) return error_set(CAIRN_ECORRUPT, "%s: %s: contains NUL", what, field);
	char *s = malloc((size_t)n + 1);
	if (!s) return ERR_OOM();
	memcpy(s, p, n);
	s[n] = 0;
	*out = s;
	return 0;
}

int snapshot_decode(snapshot_manifest *m, const uint8_t *data, size_t len, const char *what)
{
	const uint8_t *body;
	size_t body_len;
	cursor c;
	char field[48];
	int rc;
	memset(m, 0, sizeof(*m));
	if (!what) what = "snapshot";
	if ((rc = frame_check(data, len, MAGIC_SNAPSHOT, what, &body, &body_len)) < 0) return rc;
	uint32_t hflags = get_u32(data + 12);
	if (hflags & ~(uint32_t)SNAPSHOT_HAS_ADDED)
		return error_set(CAIRN_ECORRUPT, "%s: unsupported feature flags 0x%x", what, hflags);
	cur_init(&c, body, body_len);
	cur_copy(&c, m->tree.b, OID_LEN);
	cur_copy(&c, m->parent.b, OID_LEN);
	m->flags = cur_u32(&c);
	m->time_ns = (int64_t)cur_u64(&c);
	if (c.bad) {
		rc = error_set(CAIRN_ECORRUPT, "%s: truncated", what);
		goto done;
	}
	if ((rc = get_str(&c, &m->user, what, "user")) < 0 ||
	    (rc = get_str(&c, &m->name, what, "name")) < 0 ||
	    (rc = get_str(&c, &m->root_path, what, "root_path")) < 0 ||
	    (rc = get_str(&c, &m->hostname, what, "hostname")) < 0)
		goto done;
	uint64_t *counters[] = {&m->files, &m->dirs, &m->symlinks, &m->specials,
	                        &m->hardlinks, &m->sockets_skipped, &m->bytes, &m->new_bytes,
	                        &m->stored_bytes, &m->pause_ms, &m->duration_ms};
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) *counters[i] = cur_u64(&c);
	uint32_t nlabels = cur_u32(&c);
	if (c.bad) {
		rc = error_set(CAIRN_ECORRUPT, "%s: truncated", what);
		goto done;
	}
	if (nlabels > c.left / (2 * STR_MIN_LEN)) {
		rc = error_set(CAIRN_ECORRUPT, "%s: label count %u exceeds the data", what, nlabels);
		goto done;
	}
	if (nlabels) {
		m->label_keys = calloc(nlabels, sizeof(char *));
		m->label_values = calloc(nlabels, sizeof(char *));
		if (!m->label_keys || !m->label_values) {
			rc = ERR_OOM();
			goto done;
		}
		/* counted as they fill, so a failure part way frees exactly what exists */
		for (uint32_t i = 0; i < nlabels; i++) {
			m->nlabels = i + 1;
			snprintf(field, sizeof(field), "label %u key", i);
			if ((rc = get_str(&c, &m->label_keys[i], what, field)) < 0) goto done;
			snprintf(field, sizeof(field), "label %u value", i);
			if ((rc = get_str(&c, &m->label_values[i], what, field)) < 0) goto done;
		}
	}
	if (hflags & SNAPSHOT_HAS_ADDED) {
		m->has_added = 1;
		m->added_bytes = cur_u64(&c);
		if (c.bad) {
			rc = error_set(CAIRN_ECORRUPT, "%s: added_bytes: truncated", what);
			goto done;
		}
	}
	if (c.left) rc = error_set(CAIRN_ECORRUPT, "%s: %zu trailing bytes", what, c.left);
done:
	if (rc < 0) snapshot_manifest_free(m);
	return rc;
}

void snapshot_manifest_free(snapshot_manifest *m)
{
	if (!m) return;
	free(m->user);
	free(m->name);
	free(m->root_path);
	free(m->hostname);
	for (size_t i = 0; i < m->nlabels; i++) {
		if (m->label_keys) free(m->label_keys[i]);
		if (m->label_values) free(m->label_values[i]);
	}
	free(m->label_keys);
	free(m->label_values);
	memset(m, 0, sizeof(*m));
}
