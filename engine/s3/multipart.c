/* S3 (internal.h): streamed writes as multipart uploads, whose parts go out
 * while the object is still being built; unfinished uploads listed and
 * aborted for gc. */
#include "internal.h"

/* ---- multipart uploads ---------------------------------------------------------- */

typedef struct s3_writer {
	store_writer base;
	s3_store *st;
	char *name;
	uint8_t *cur; /* the part being filled */
	size_t cur_len;
	char upload_id[256];
	char (*etags)[128];
	int nparts; /* parts handed out */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int inflight;
	int failed; /* an error code of a part upload */
	char failed_msg[512];
} s3_writer;

typedef struct part_job {
	s3_writer *w;
	int number; /* from 1 */
	uint8_t *data;
	size_t len;
} part_job;

static void *part_upload(void *arg)
{
	part_job *j = arg;
	s3_writer *w = j->w;
	char query[400];
	snprintf(query, sizeof(query), "partNumber=%d&uploadId=%s", j->number, w->upload_id);
	s3_req q = {.method = "PUT", .name = w->name, .query = query, .body = j->data, .body_len = j->len};
	int rc = s3_do(w->st, &q);
	if (rc == 0 && (q.status != 200 || !q.etag[0])) rc = s3_fail(w->st, &q, "upload part");
	pthread_mutex_lock(&w->mu);
	if (rc == 0) {
		snprintf(w->etags[j->number - 1], sizeof(w->etags[0]), "%s", q.etag);
	} else if (!w->failed) {
		w->failed = rc;
		snprintf(w->failed_msg, sizeof(w->failed_msg), "part %d: %s", j->number, cairn_error_last());
	}
	w->inflight--;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	s3_req_free(&q);
	free(j->data);
	free(j);
	return NULL;
}

static int mp_start(s3_writer *w)
{
	char what[KEY_MAX + 300];
	s3_obj_label(w->st, w->name, what, sizeof(what));
	s3_req q = {.method = "POST", .name = w->name, .query = "uploads=", .hdr = {"Content-Type: application/octet-stream"}};
	int rc = s3_do(w->st, &q);
	if (rc == 0 && q.status != 200) rc = s3_fail(w->st, &q, "start multipart upload");
	if (rc == 0 && (!q.resp.data || !s3_xml_text((char *)q.resp.data, (char *)q.resp.data + q.resp.len, "UploadId",
	                                          w->upload_id, sizeof(w->upload_id)) ||
	                !w->upload_id[0]))
		rc = error_set(CAIRN_EIO, "%s: start multipart upload: no UploadId in the answer", what);
	/* upload ids go into queries: they must need no encoding */
	for (const char *c = w->upload_id; rc == 0 && *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      *c == '.' || *c == '_' || *c == '~')) {
			char enc[800];
			if (s3_url_encode(enc, sizeof(enc), w->upload_id, 0) < 0 || strlen(enc) >= sizeof(w->upload_id))
				rc = error_set(CAIRN_EIO, "%s: upload id too long", what);
			else
				memcpy(w->upload_id, enc, strlen(enc) + 1);
			break;
		}
	s3_req_free(&q);
	return rc;
}

/* Hand the filled part to a thread; at most PARTS_IN_FLIGHT at once. */
static int mp_send(s3_writer *w)
{
	int rc;
	if (!w->upload_id[0] && (rc = mp_start(w)) < 0) return rc;
	if (w->nparts >= MAX_PARTS)
		return error_set(CAIRN_EIO, "s3://%s/%s%s: more than %d parts", w->st->bucket, w->st->prefix, w->name, MAX_PARTS);
	part_job *j = calloc(1, sizeof(*j));
	if (!j) return ERR_OOM();
	pthread_mutex_lock(&w->mu);
	while (w->inflight >= PARTS_IN_FLIGHT) pthread_cond_wait(&w->cv, &w->mu);
	rc = w->failed;
	if (rc == 0) {
		if ((w->nparts & 63) == 0) {
			void *e = realloc(w->etags, (size_t)(w->nparts + 64) * sizeof(w->etags[0]));
			if (!e) rc = ERR_OOM();
			else w->etags = e;
		}
	}
	if (rc == 0) {
		*j = (part_job){w, ++w->nparts, w->cur, w->cur_len};
		w->etags[j->number - 1][0] = '\0';
		w->inflight++;
	}
	pthread_mutex_unlock(&w->mu);
	if (rc < 0) {
		free(j);
		return rc == w->failed ? error_set(rc, "%s", w->failed_msg) : rc;
	}
	w->cur = NULL;
	w->cur_len = 0;
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, part_upload, j) != 0) {
		pthread_attr_destroy(&at);
		part_upload(j); /* no thread to be had: do it here */
		return 0;
	}
	pthread_attr_destroy(&at);
	return 0;
}

static int mp_wait(s3_writer *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->inflight > 0) pthread_cond_wait(&w->cv, &w->mu);
	int rc = w->failed;
	pthread_mutex_unlock(&w->mu);
	if (rc < 0) rc = error_set(rc, "%s", w->failed_msg);
	return rc;
}

int s3_write_begin(store *base, const char *name, store_writer **out)
{
	s3_writer *w = calloc(1, sizeof(*w));
	if (!w || !(w->name = strdup(name))) {
		free(w);
		return ERR_OOM();
	}
	w->base.st = base;
	w->st = (s3_store *)base;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	*out = &w->base;
	return 0;
}

int s3_write_append(store_writer *base, const void *data, size_t len)
{
	s3_writer *w = (s3_writer *)base;
	const uint8_t *p = data;
	while (len > 0) {
		if (!w->cur && !(w->cur = malloc(PART_LEN))) return ERR_OOM();
		size_t k = PART_LEN - w->cur_len;
		if (k > len) k = len;
		memcpy(w->cur + w->cur_len, p, k);
		w->cur_len += k;
		p += k;
		len -= k;
		int rc;
		if (w->cur_len == PART_LEN && (rc = mp_send(w)) < 0) return rc;
	}
	return 0;
}

static void writer_free(s3_writer *w)
{
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->cur);
	free(w->etags);
	free(w->name);
	free(w);
}

static void mp_abort_upload(s3_writer *w)
{
	if (!w->upload_id[0]) return;
	char query[300];
	snprintf(query, sizeof(query), "uploadId=%s", w->upload_id);
	s3_req q = {.method = "DELETE", .name = w->name, .query = query};
	if (s3_do(w->st, &q) < 0) error_clear(); /* left for the bucket's lifecycle rule */
	s3_req_free(&q);
}

void s3_write_abort(store_writer *base)
{
	s3_writer *w = (s3_writer *)base;
	if (mp_wait(w) < 0) error_clear();
	mp_abort_upload(w);
	writer_free(w);
}

/* CompleteMultipartUpload cannot be made create-only on every server
 * (radosgw ignores If-None-Match there): create-only commits of multipart
 * objects take a per-object lock and check for the object under it (the
 * lock and the check through the ops table: they are store.c's, above). */
static int mp_complete(s3_writer *w, unsigned flags)
{
	s3_store *st = w->st;
	char what[KEY_MAX + 300], lname[KEY_MAX + 16], query[300];
	store_lock *lk = NULL;
	buf x;
	int rc = 0;
	buf_init(&x);
	s3_obj_label(st, w->name, what, sizeof(what));
	if (flags & STORE_EXCL) {
		uint64_t size;
		oid h;
		char hex[OID_HEX_LEN + 1];
		hash_sha256(&h, w->name, strlen(w->name));
		oid_hex(hex, &h);
		snprintf(lname, sizeof(lname), "create.%.32s", hex);
		if ((rc = st->base.ops->lock_acquire(&lk, &st->base, lname, 120000, 120000)) < 0) goto done;
		rc = st->base.ops->size(&st->base, w->name, &size);
		if (rc == 0) {
			rc = error_set(CAIRN_EEXISTS, "%s: already exists", what);
			goto done;
		}
		if (rc != CAIRN_ENOTFOUND) goto done;
		error_clear();
		rc = 0;
	}
	buf_put(&x, "<CompleteMultipartUpload>", 25);
	for (int i = 0; i < w->nparts; i++) {
		char part[256];
		int n = snprintf(part, sizeof(part), "<Part><PartNumber>%d</PartNumber><ETag>\"%s\"</ETag></Part>", i + 1,
		                 w->etags[i]);
		buf_put(&x, part, (size_t)n);
	}
	buf_put(&x, "</CompleteMultipartUpload>", 26);
	if (x.oom) {
		rc = ERR_OOM();
		goto done;
	}
	snprintf(query, sizeof(query), "uploadId=%s", w->upload_id);
	s3_req q = {.method = "POST", .name = w->name, .query = query, .body = x.data, .body_len = x.len,
	            .hdr = {"Content-Type: application/xml"}};
	rc = s3_do(st, &q);
	/* S3 may answer 200 and put an error in the body */
	int bad = q.resp.data && memmem(q.resp.data, q.resp.len, "<Error>", 7) != NULL;
	if (rc == 0 && q.status == 404 && q.resent) {
		uint64_t size; /* our first attempt completed it */
		if (st->base.ops->size(&st->base, w->name, &size) == 0) q.status = 200;
		else error_clear();
	}
	if (rc == 0 && (q.status != 200 || bad)) rc = s3_fail(st, &q, "complete multipart upload");
	s3_req_free(&q);
	if (rc == 0) w->upload_id[0] = '\0';
done:
	if (lk) st->base.ops->lock_release(lk);
	buf_free(&x);
	return rc;
}

int s3_write_commit(store_writer *base, unsigned flags)
{
	s3_writer *w = (s3_writer *)base;
	int rc;
	if (!w->upload_id[0] && w->nparts == 0) { /* fit in one part: one PUT */
		rc = s3_single_put(w->st, w->name, w->cur ? w->cur : (const uint8_t *)"", w->cur_len, flags, NULL, NULL);
		writer_free(w);
		return rc;
	}
	rc = 0;
	if (w->cur_len > 0) rc = mp_send(w);
	int wrc = mp_wait(w);
	if (rc == 0) rc = wrc;
	if (rc == 0) rc = mp_complete(w, flags);
	if (rc < 0) { /* nothing becomes visible */
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", cairn_error_last());
		mp_abort_upload(w);
		error_set(rc, "%s", msg);
	}
	writer_free(w);
	return rc;
}

int s3_mp_put(s3_store *st, const char *name, const void *data, size_t len, unsigned flags)
{
	store_writer *w = NULL;
	int rc = s3_write_begin(&st->base, name, &w);
	if (rc < 0) return rc;
	if ((rc = s3_write_append(w, data, len)) < 0) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", cairn_error_last());
		s3_write_abort(w);
		return error_set(rc, "%s", msg);
	}
	return s3_write_commit(w, flags);
}

/* ---- unfinished multipart uploads (gc) --------------------------------------- */

/* "2026-11-27T21:00:00.000Z" as ns since the epoch; -1 if it is not that. */
static int64_t iso8601_ns(const char *s)
{
	struct tm tm;
	int ms = 0, n = 0;
	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
	           &tm.tm_min, &tm.tm_sec, &n) != 6)
		return -1;
	if (s[n] == '.') sscanf(s + n + 1, "%3d", &ms);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	return t < 0 ? -1 : (int64_t)t * 1000000000 + (int64_t)ms * 1000000;
}

int s3_unfinished_list(store *base, store_unfinished_cb cb, void *payload)
{
	s3_store *st = (s3_store *)base;
	char penc[3 * KEY_MAX + 8], kmark[KEY_MAX + 1] = "", umark[512] = "";
	char kenc[3 * KEY_MAX + 8], uenc[3 * 512 + 8], query[9 * KEY_MAX], key[KEY_MAX + 1], id[512], began[64];
	if (s3_url_encode(penc, sizeof(penc), st->prefix, 0) < 0)
		return error_set(CAIRN_EUSAGE, "%s: prefix too long for S3", st->label);
	size_t plen = strlen(st->prefix);
	int rc = 0;
	for (int page = 0;; page++) {
		if (kmark[0]) { /* canonical order: key-marker, prefix, upload-id-marker, uploads */
			if (s3_url_encode(kenc, sizeof(kenc), kmark, 0) < 0 || s3_url_encode(uenc, sizeof(uenc), umark, 0) < 0)
				return error_set(CAIRN_EIO, "%s: list uploads: marker too long", st->label);
			snprintf(query, sizeof(query), "key-marker=%s&prefix=%s&upload-id-marker=%s&uploads=", kenc, penc, uenc);
		} else {
			snprintf(query, sizeof(query), "prefix=%s&uploads=", penc);
		}
		s3_req q;
		if ((rc = s3_list_page(st, query, "ListMultipartUploadsResult", st->label, &q)) < 0) return rc;
		const char *p = (const char *)q.resp.data, *end = p + q.resp.len;
		char trunc[8] = "false";
		s3_xml_text(p, end, "IsTruncated", trunc, sizeof(trunc));
		int more = strcmp(trunc, "true") == 0;
		if (more && (!s3_xml_text(p, end, "NextKeyMarker", kmark, sizeof(kmark)) ||
		             !s3_xml_text(p, end, "NextUploadIdMarker", umark, sizeof(umark)))) {
			s3_req_free(&q);
			return error_set(CAIRN_EIO, "%s: list uploads: truncated page without markers", st->label);
		}
		for (const char *at = p; rc == 0 && (at = memmem(at, (size_t)(end - at), "<Upload>", 8)) != NULL;) {
			const char *stop = memmem(at, (size_t)(end - at), "</Upload>", 9);
			if (!stop) break;
			if (s3_xml_text(at, stop, "Key", key, sizeof(key)) && s3_xml_text(at, stop, "UploadId", id, sizeof(id)) &&
			    s3_xml_text(at, stop, "Initiated", began, sizeof(began)) && strncmp(key, st->prefix, plen) == 0 &&
			    strlen(key) > plen) {
				int64_t t = iso8601_ns(began);
				if (t >= 0) rc = cb(key + plen, id, t, payload);
			}
			at = stop + 9;
		}
		s3_req_free(&q);
		if (rc != 0 || !more) return rc;
		if (page > 1000000) return error_set(CAIRN_EIO, "%s: list uploads does not end", st->label);
	}
}

int s3_unfinished_abort(store *base, const char *name, const char *id)
{
	s3_store *st = (s3_store *)base;
	char uenc[3 * 512 + 8], query[3 * 512 + 24];
	if (s3_url_encode(uenc, sizeof(uenc), id, 0) < 0)
		return error_set(CAIRN_EUSAGE, "%s/%s: upload id too long", st->label, name);
	snprintf(query, sizeof(query), "uploadId=%s", uenc);
	s3_req q = {.method = "DELETE", .name = name, .query = query};
	int rc = s3_do(st, &q);
	if (rc == 0 && q.status != 204 && q.status != 200 && q.status != 404) rc = s3_fail(st, &q, "abort upload");
	s3_req_free(&q);
	return rc;
}
