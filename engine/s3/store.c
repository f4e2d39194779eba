/* S3 backend of the storage interface, on libcurl with its own SigV4 signer
 * (CURLOPT_AWS_SIGV4). Address "s3://BUCKET[/PREFIX]", path-style requests
 * to CAIRN_S3_ENDPOINT; region AWS_REGION; keys AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN when set).
 *
 * Objects are keys PREFIX/NAME. A put is one PUT (atomic on S3); create-only
 * sends If-None-Match: * (412 means it exists). Streamed writes are multipart
 * uploads whose parts go out while the object is still being built; nothing
 * is visible until CompleteMultipartUpload, and a failure aborts the upload.
 * Locks are objects "locks/NAME" holding "token host pid expiry_ms": created
 * with If-None-Match: *, refreshed and taken over with If-Match: ETAG, and
 * released by a conditional overwrite with expiry 0 (a DELETE cannot be
 * made conditional, and could remove a lock someone just took over).
 *
 * The request bodies are sent as UNSIGNED-PAYLOAD: libcurl 7.88 signs the
 * x-amz-content-sha256 header we give instead of hashing a streamed body. */
#include "internal.h"

static const store_ops s3_ops;

/* ---- open ------------------------------------------------------------------- */

static void s3_free(store *base)
{
	s3_store *st = (s3_store *)base;
	for (int i = 0; i < st->nidle; i++) curl_easy_cleanup(st->idle[i]);
	pthread_mutex_destroy(&st->lock);
	free(st->label);
	free(st->endpoint);
	free(st->bucket);
	free(st->prefix);
	free(st->sigv4);
	free(st->userpwd);
	free(st->token_hdr);
	free(st);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;
static void curl_start(void) { curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }

/* rest is "BUCKET[/PREFIX]" (after "s3://"). */
int store_s3_open(store **out, const char *rest, int create, const cairn_repo_open_options *o)
{
	int rc = 0;
	*out = NULL;
	(void)create; /* buckets are made by their owner: init only checks this one exists */
	pthread_once(&curl_once, curl_start);
	if (!curl_ok) return error_set(CAIRN_EIO, "s3://%s: libcurl failed to initialise", rest);

	const char *slash = strchr(rest, '/');
	size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (blen == 0 || blen > 255)
		return error_set(CAIRN_EUSAGE, "repository s3://%s: expected s3://BUCKET[/PREFIX]", rest);
	for (size_t i = 0; i < blen; i++) {
		char c = rest[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '-' || c == '_'))
			return error_set(CAIRN_EUSAGE, "repository s3://%s: bad character in bucket name", rest);
	}
	const char *pfx = slash ? slash + 1 : "";
	size_t plen = strlen(pfx);
	while (plen && pfx[plen - 1] == '/') plen--;
	if (plen > 512) return error_set(CAIRN_EUSAGE, "repository s3://%s: prefix too long", rest);
	for (size_t i = 0; i < plen; i++)
		if (pfx[i] == '/' && (i == 0 || pfx[i - 1] == '/'))
			return error_set(CAIRN_EUSAGE, "repository s3://%s: empty component in prefix", rest);

	const char *endpoint = o->s3.endpoint;
	const char *region = o->s3.region && *o->s3.region ? o->s3.region : "us-east-1";
	const char *ak = o->s3.access_key_id, *sk = o->s3.secret_access_key;
	const char *tok = o->s3.session_token;
	if (!ak || !*ak || !sk || !*sk)
		return error_set(CAIRN_EUSAGE, "repository s3://%s: no credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", rest);
	int64_t tries = o->s3.tries ? o->s3.tries : 5;
	int64_t mpmin = o->s3.multipart_min ? (int64_t)o->s3.multipart_min : 64ll << 20;
	int64_t stall = o->s3.stall_s ? o->s3.stall_s : 30;
	if (tries > 20 || mpmin < PART_LEN || mpmin > (int64_t)SINGLE_PUT_MAX || stall > 3600)
		return error_set(CAIRN_EUSAGE,
		                 "repository s3://%s: CAIRN_S3_TRIES must be 1..20, CAIRN_S3_STALL_S 1..3600 and CAIRN_S3_MULTIPART_MIN at least %u",
		                 rest, PART_LEN);

	s3_store *st = calloc(1, sizeof(*st));
	if (!st) return ERR_OOM();
	st->base.ops = &s3_ops;
	pthread_mutex_init(&st->lock, NULL);
	st->tries = (int)tries;
	st->stall_s = (long)stall;
	st->multipart_min = (uint64_t)mpmin;
	char *ep = NULL;
	if (endpoint && *endpoint) {
		ep = strdup(endpoint);
	} else if (asprintf(&ep, "https://s3.%s.amazonaws.com", region) < 0) {
		ep = NULL;
	}
	if (ep) {
		size_t el = strlen(ep);
		while (el && ep[el - 1] == '/') ep[--el] = '\0';
	}
	st->endpoint = ep;
	st->bucket = strndup(rest, blen);
	if (asprintf(&st->prefix, "%.*s%s", (int)plen, pfx, plen ? "/" : "") < 0) st->prefix = NULL;
	if (asprintf(&st->label, "s3://%s%s%.*s", st->bucket ? st->bucket : "", plen ? "/" : "", (int)plen, pfx) < 0)
		st->label = NULL;
	if (asprintf(&st->sigv4, "aws:amz:%s:s3", region) < 0) st->sigv4 = NULL;
	if (asprintf(&st->userpwd, "%s:%s", ak, sk) < 0) st->userpwd = NULL;
	if (tok && *tok && asprintf(&st->token_hdr, "x-amz-security-token: %s", tok) < 0) st->token_hdr = NULL;
	if (!st->endpoint || !st->bucket || !st->prefix || !st->label || !st->sigv4 || !st->userpwd ||
	    (tok && *tok && !st->token_hdr)) {
		rc = ERR_OOM();
		goto done;
	}
	/* the bucket must exist and let us in: one ListObjectsV2 of at most one key */
	s3_req q = {.method = "GET", .query = "list-type=2&max-keys=1"};
	if ((rc = s3_do(st, &q)) == 0 && q.status != 200) {
		rc = s3_fail(st, &q, "open");
		if (rc == CAIRN_ENOTFOUND)
			rc = error_set(CAIRN_ENOTFOUND, "repository %s: bucket %s does not exist at %s", st->label,
			               st->bucket, st->endpoint);
	}
	s3_req_free(&q);
done:
	if (rc < 0) {
		s3_free(&st->base);
		return rc;
	}
	*out = &st->base;
	return 0;
}

/* ---- objects ---------------------------------------------------------------- */

static int s3_put(store *base, const char *name, const void *data, size_t len, unsigned flags)
{
	s3_store *st = (s3_store *)base;
	if (len >= st->multipart_min) return s3_mp_put(st, name, data, len, flags);
	return s3_single_put(st, name, data, len, flags, NULL, NULL);
}

static int s3_get(store *base, const char *name, size_t max, uint8_t **out, size_t *len)
{
	s3_store *st = (s3_store *)base;
	char what[KEY_MAX + 300];
	*out = NULL;
	*len = 0;
	s3_obj_label(st, name, what, sizeof(what));
	s3_req q = {.method = "GET", .name = name, .max = max, .exact = 1};
	int rc = s3_do(st, &q);
	if (rc < 0) goto done;
	if (q.status == 404 && !s3_resp_has(&q, "NoSuchBucket")) {
		rc = error_set(CAIRN_ENOTFOUND, "%s: not found", what);
	} else if (q.status == 200 && q.overflow) {
		rc = error_set(CAIRN_ECORRUPT, "%s: too large (more than %zu bytes)", what, max);
	} else if (q.status == 200 && q.has_clen && q.clen != q.resp.len) {
		rc = error_set(CAIRN_EIO, "%s: got %zu of %llu bytes", what, q.resp.len, (unsigned long long)q.clen);
	} else if (q.status == 200) {
		if (q.resp.len == 0) { /* an empty object: still a buffer to free */
			if (!(*out = malloc(1))) rc = ERR_OOM();
		} else {
			*out = buf_take(&q.resp, len);
		}
	} else {
		rc = s3_fail(st, &q, "get");
	}
done:
	s3_req_free(&q);
	return rc;
}

/* At most len bytes at off (a ranged GET): store.c's read caches fetch
 * their blocks so, and s3_get_range is this with the length checked. */
static int s3_get_upto(store *base, const char *name, uint64_t off, void *out, size_t len, size_t *got)
{
	s3_store *st = (s3_store *)base;
	char what[KEY_MAX + 300], range[80];
	*got = 0;
	if (len == 0) return 0;
	s3_obj_label(st, name, what, sizeof(what));
	snprintf(range, sizeof(range), "Range: bytes=%llu-%llu", (unsigned long long)off,
	         (unsigned long long)(off + len - 1));
	s3_req q = {.method = "GET", .name = name, .dst = out, .dst_off = off, .dst_len = len};
	q.hdr[0] = range;
	int rc = s3_do(st, &q);
	if (rc < 0) goto done;
	if (q.status == 404 && !s3_resp_has(&q, "NoSuchBucket"))
		rc = error_set(CAIRN_ECORRUPT, "%s: missing", what);
	else if (q.status == 416)
		rc = 0; /* the object ends before off */
	else if (q.status != 206 && q.status != 200)
		rc = s3_fail(st, &q, "ranged get");
	else
		*got = q.dst_got;
done:
	s3_req_free(&q);
	return rc;
}

static int s3_get_range(store *base, const char *name, uint64_t off, void *out, size_t len)
{
	size_t got;
	int rc = s3_get_upto(base, name, off, out, len, &got);
	if (rc == 0 && got < len) {
		char what[KEY_MAX + 300];
		s3_obj_label((s3_store *)base, name, what, sizeof(what));
		rc = error_set(CAIRN_ECORRUPT, "%s: short: %zu bytes at offset %llu are past its end", what, len,
		               (unsigned long long)off);
	}
	return rc;
}

static int s3_size(store *base, const char *name, uint64_t *size)
{
	s3_store *st = (s3_store *)base;
	char what[KEY_MAX + 300];
	s3_obj_label(st, name, what, sizeof(what));
	s3_req q = {.method = "HEAD", .name = name};
	int rc = s3_do(st, &q);
	if (rc == 0) {
		if (q.status == 404)
			rc = error_set(CAIRN_ENOTFOUND, "%s: not found", what);
		else if (q.status == 200 && q.has_clen)
			*size = q.clen;
		else if (q.status == 200)
			rc = error_set(CAIRN_EIO, "%s: HEAD without a Content-Length", what);
		else
			rc = s3_fail(st, &q, "head");
	}
	s3_req_free(&q);
	return rc;
}
static int s3_list(store *base, const char *dir, int (*cb)(const char *name, void *payload), void *payload)
{
	s3_store *st = (s3_store *)base;
	char full[KEY_MAX + 2], enc[3 * KEY_MAX + 8], token[KEY_MAX + 1] = "", tenc[3 * KEY_MAX + 8];
	char query[8 * KEY_MAX], key[KEY_MAX + 1];
	if ((size_t)snprintf(full, sizeof(full), "%s%s/", st->prefix, dir) >= sizeof(full) ||
	    s3_url_encode(enc, sizeof(enc), full, 0) < 0)
		return error_set(CAIRN_EUSAGE, "%s/%s: name too long for S3", st->label, dir);
	size_t plen = strlen(st->prefix);
	int rc = 0;
	for (int page = 0;; page++) {
		if (token[0]) {
			if (s3_url_encode(tenc, sizeof(tenc), token, 0) < 0)
				return error_set(CAIRN_EIO, "%s/%s: continuation token too long", st->label, dir);
			snprintf(query, sizeof(query), "continuation-token=%s&list-type=2&max-keys=1000&prefix=%s", tenc, enc);
		} else {
			snprintf(query, sizeof(query), "list-type=2&max-keys=1000&prefix=%s", enc);
		}
		s3_req q;
		char what[KEY_MAX + 300];
		snprintf(what, sizeof(what), "%s/%s", st->label, dir);
		if ((rc = s3_list_page(st, query, "ListBucketResult", what, &q)) < 0) return rc;
		const char *p = (const char *)q.resp.data, *end = p + q.resp.len;
		char trunc[8] = "false";
		s3_xml_text(p, end, "IsTruncated", trunc, sizeof(trunc));
		int more = strcmp(trunc, "true") == 0;
		token[0] = '\0';
		if (more && !s3_xml_text(p, end, "NextContinuationToken", token, sizeof(token))) {
			s3_req_free(&q);
			return error_set(CAIRN_EIO, "%s/%s: list: truncated page without a continuation token", st->label, dir);
		}
		const char *at = p;
		while (rc == 0 && (at = s3_xml_text(at, end, "Key", key, sizeof(key))) != NULL) {
			/* keys outside what we asked for would be a server bug: skip them */
			if (strncmp(key, full, strlen(full)) != 0 || strlen(key) <= strlen(full)) continue;
			rc = cb(key + plen, payload);
		}
		s3_req_free(&q);
		if (rc != 0 || !more) return rc;
		if (page > 10000000) return error_set(CAIRN_EIO, "%s/%s: list does not end", st->label, dir);
	}
}

static int s3_delete(store *base, const char *name)
{
	s3_store *st = (s3_store *)base;
	uint64_t size;
	/* S3 answers 204 for absent keys too; callers need to know (forget) */
	int rc = s3_size(base, name, &size);
	if (rc < 0) return rc;
	s3_req q = {.method = "DELETE", .name = name};
	if ((rc = s3_do(st, &q)) == 0 && q.status != 204 && q.status != 200 && q.status != 404)
		rc = s3_fail(st, &q, "delete");
	s3_req_free(&q);
	return rc;
}

/* ---- locks -------------------------------------------------------------------- */

typedef struct s3_lock {
	store_lock base;
	s3_store *st;
	char name[200];
	char token[33];
	char etag[128];
	uint64_t ttl_ms;
} s3_lock;

typedef struct lock_info {
	char token[33], host[128];
	long pid;
	uint64_t expiry_ms;
	char etag[128];
} lock_info;

static int lock_body(const s3_lock *l, uint64_t expiry, char *body, size_t cap)
{
	char host[128] = "";
	gethostname(host, sizeof(host) - 1);
	for (char *c = host; *c; c++)
		if (*c == ' ') *c = '_';
	return snprintf(body, cap, "%s %s %ld %llu\n", l->token, host, (long)getpid(), (unsigned long long)expiry);
}

/* 0, CAIRN_ENOTFOUND, or an error. A garbled lock reads as expired. */
static int lock_read(s3_store *st, const char *name, lock_info *li)
{
	char what[KEY_MAX + 300];
	memset(li, 0, sizeof(*li));
	s3_obj_label(st, name, what, sizeof(what));
	s3_req q = {.method = "GET", .name = name, .max = 4096};
	int rc = s3_do(st, &q);
	if (rc == 0 && q.status == 404) rc = error_set(CAIRN_ENOTFOUND, "%s: not found", what);
	else if (rc == 0 && q.status != 200) rc = s3_fail(st, &q, "read lock");
	if (rc == 0) {
		char text[512];
		unsigned long long exp = 0;
		snprintf(text, sizeof(text), "%.*s", (int)(q.resp.len < sizeof(text) ? q.resp.len : sizeof(text) - 1),
		         q.resp.data ? (char *)q.resp.data : "");
		if (sscanf(text, "%32s %127s %ld %llu", li->token, li->host, &li->pid, &exp) != 4) exp = 0;
		li->expiry_ms = exp;
		snprintf(li->etag, sizeof(li->etag), "%s", q.etag);
	}
	s3_req_free(&q);
	return rc;
}

static int lock_stale(const lock_info *li)
{
	if (li->expiry_ms < s3_now_ms()) return 1;
	char host[128] = "";
	gethostname(host, sizeof(host) - 1);
	return strcmp(host, li->host) == 0 && li->pid > 0 && kill((pid_t)li->pid, 0) < 0 && errno == ESRCH;
}

static int s3_lock_acquire(store_lock **out, store *base, const char *name, uint64_t ttl_ms, uint64_t wait_ms)
{
	s3_store *st = (s3_store *)base;
	uint8_t rnd[16];
	char body[320];
	int rc;
	*out = NULL;
	s3_lock *l = calloc(1, sizeof(*l));
	if (!l) return ERR_OOM();
	l->base.st = base;
	l->st = st;
	l->ttl_ms = ttl_ms;
	snprintf(l->name, sizeof(l->name), "locks/%s", name);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		free(l);
		return error_errno(CAIRN_EIO, errno, "lock %s: getrandom", name);
	}
	hex_encode(l->token, rnd, sizeof(rnd));
	uint64_t deadline = s3_now_ms() + wait_ms;
	lock_info li;
	for (;;) {
		int n = lock_body(l, s3_now_ms() + ttl_ms, body, sizeof(body));
		rc = s3_single_put(st, l->name, body, (size_t)n, STORE_EXCL, NULL, l->etag);
		if (rc == 0) {
			if (!l->etag[0]) { /* a retried create that had landed: learn its ETag */
				if ((rc = lock_read(st, l->name, &li)) < 0) break;
				snprintf(l->etag, sizeof(l->etag), "%s", li.etag);
			}
			*out = &l->base;
			return 0;
		}
		if (rc != CAIRN_EEXISTS) break;
		rc = lock_read(st, l->name, &li);
		if (rc == CAIRN_ENOTFOUND) continue; /* gone meanwhile */
		if (rc < 0) break;
		if (lock_stale(&li) && li.etag[0]) {
			/* take over only the very lock we judged stale */
			n = lock_body(l, s3_now_ms() + ttl_ms, body, sizeof(body));
			rc = s3_single_put(st, l->name, body, (size_t)n, 0, li.etag, l->etag);
			if (rc == 0) {
				*out = &l->base;
				return 0;
			}
			if (rc != CAIRN_EEXISTS) break;
			error_clear();
			continue;
		}
		if (s3_now_ms() >= deadline) {
			rc = error_set(CAIRN_EBUSY, "lock %s: held by process %ld on %s", name, li.pid, li.host);
			break;
		}
		uint8_t r = 0;
		if (getrandom(&r, 1, GRND_NONBLOCK) != 1) r = 0;
		s3_sleep_ms(30 + r % 40);
	}
	free(l);
	return rc;
}

static int s3_lock_refresh(store_lock *base)
{
	s3_lock *l = (s3_lock *)base;
	char body[320];
	int n = lock_body(l, s3_now_ms() + l->ttl_ms, body, sizeof(body));
	int rc = s3_single_put(l->st, l->name, body, (size_t)n, 0, l->etag, l->etag);
	if (rc == CAIRN_EEXISTS) rc = error_set(CAIRN_EBUSY, "%s/%s: lost to another process", l->st->label, l->name);
	return rc;
}

static void s3_lock_release(store_lock *base)
{
	s3_lock *l = (s3_lock *)base;
	char body[320];
	/* expire it in place, only if it is still ours */
	int n = lock_body(l, 0, body, sizeof(body));
	if (s3_single_put(l->st, l->name, body, (size_t)n, 0, l->etag, NULL) < 0) error_clear();
	free(l);
}

static const store_ops s3_ops = {
	.version = CAIRN_BACKEND_OPS_VERSION,
	.kind = "s3",
	.free = s3_free,
	.put = s3_put,
	.get = s3_get,
	.get_range = s3_get_range,
	.get_upto = s3_get_upto,
	.size = s3_size,
	.list = s3_list,
	.del = s3_delete,
	.write_begin = s3_write_begin,
	.write_append = s3_write_append,
	.write_commit = s3_write_commit,
	.write_abort = s3_write_abort,
	.lock_acquire = s3_lock_acquire,
	.lock_refresh = s3_lock_refresh,
	.lock_release = s3_lock_release,
	.unfinished_list = s3_unfinished_list,
	.unfinished_abort = s3_unfinished_abort,
};
