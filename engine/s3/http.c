/* S3 (internal.h): one signed request with retries, its errors, the curl
 * handle pool; a single PUT and a listing page; URL and XML helpers. */
#include "internal.h"

/* ---- small helpers -------------------------------------------------------- */

uint64_t s3_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void s3_sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

/* Percent-encode for a URL path or query value (AWS's rules: unreserved
 * characters stay, everything else is %XX with upper-case hex; keep_slash
 * for paths). -1 if it does not fit. */
int s3_url_encode(char *out, size_t cap, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		            c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
		if (n + (plain ? 1 : 3) >= cap) return -1;
		if (plain) {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = '\0';
	return 0;
}

/* The text between <tag> and </tag> at or after from, XML entities decoded
 * into out. Returns a pointer past the closing tag, or NULL when absent,
 * unterminated, too long for out, or holding an entity we do not know. */
const char *s3_xml_text(const char *from, const char *end, const char *tag, char *out, size_t cap)
{
	char open[64], close[64];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	const char *p = memmem(from, (size_t)(end - from), open, strlen(open));
	if (!p) return NULL;
	p += strlen(open);
	const char *q = memmem(p, (size_t)(end - p), close, strlen(close));
	if (!q) return NULL;
	size_t n = 0;
	while (p < q) {
		char c = *p++;
		if (c == '&') {
			static const struct { const char *e; char c; } ents[] = {
				{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
			size_t i;
			for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
				size_t el = strlen(ents[i].e);
				if ((size_t)(q - p) >= el && memcmp(p, ents[i].e, el) == 0) {
					c = ents[i].c;
					p += el;
					break;
				}
			}
			if (i == sizeof(ents) / sizeof(ents[0])) return NULL;
		}
		if (n + 1 >= cap) return NULL;
		out[n++] = c;
	}
	out[n] = '\0';
	return q + strlen(close);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	s3_req *q = arg;
	size_t len = size * n;
	char line[256];
	size_t l = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
	memcpy(line, p, l);
	line[l] = '\0';
	while (l && (line[l - 1] == '\r' || line[l - 1] == '\n')) line[--l] = '\0';
	if (strncmp(line, "HTTP/", 5) == 0) { /* a new response (after 100-continue, too) */
		q->etag[0] = '\0';
		q->has_clen = 0;
	} else if (strncasecmp(line, "etag:", 5) == 0) {
		const char *v = line + 5;
		while (*v == ' ' || *v == '"') v++;
		size_t n = strcspn(v, "\"");
		if (n >= sizeof(q->etag)) n = 0; /* not an ETag we could send back */
		memcpy(q->etag, v, n);
		q->etag[n] = '\0';
	} else if (strncasecmp(line, "content-length:", 15) == 0) {
		char *e;
		unsigned long long v = strtoull(line + 15, &e, 10);
		q->clen = v;
		q->has_clen = e != line + 15;
	}
	return len;
}

/* The write callback needs the response code; curl hands only the pointer
 * we give, so the handle travels beside the request. */
typedef struct req_ctx {
	s3_req *q;
	CURL *h;
	uint64_t pos; /* bytes of this response seen (ranged reads of a 200) */
} req_ctx;

static size_t on_body_ctx(char *p, size_t size, size_t n, void *arg)
{
	req_ctx *c = arg;
	s3_req *q = c->q;
	size_t len = size * n;
	long code = 0;
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
	if (q->dst && (code == 206 || code == 200)) {
		/* 206: the range itself; 200: the whole object, of which we keep the range */
		uint64_t start = code == 200 ? q->dst_off : 0;
		for (size_t i = 0; i < len;) {
			uint64_t at = c->pos;
			if (at < start) {
				uint64_t skip = start - at;
				size_t s = skip < len - i ? (size_t)skip : len - i;
				i += s;
				c->pos += s;
				continue;
			}
			uint64_t rel = at - start;
			if (rel >= q->dst_len) {
				q->overflow = 1;
				c->pos += len - i;
				break;
			}
			size_t k = len - i;
			if (k > q->dst_len - rel) k = (size_t)(q->dst_len - rel);
			memcpy(q->dst + rel, p + i, k);
			q->dst_got = (size_t)(rel + k);
			i += k;
			c->pos += k;
		}
		return len;
	}
	size_t max = q->max || q->exact ? q->max : ERR_BODY_MAX;
	if (code >= 300) max = ERR_BODY_MAX;
	if (q->resp.len + len > max) {
		q->overflow = 1;
		return code >= 300 ? len : 0; /* keep reading an error; stop an oversized object */
	}
	buf_put(&q->resp, p, len);
	return q->resp.oom ? 0 : len;
}

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
	s3_req *q = arg;
	size_t left = q->body_len - q->sent, k = size * n;
	if (k > left) k = left;
	memcpy(p, (const char *)q->body + q->sent, k);
	q->sent += k;
	return k;
}

static CURL *handle_get(s3_store *st)
{
	CURL *h = NULL;
	pthread_mutex_lock(&st->lock);
	if (st->nidle > 0) h = st->idle[--st->nidle];
	pthread_mutex_unlock(&st->lock);
	return h ? h : curl_easy_init();
}

static void handle_put(s3_store *st, CURL *h)
{
	pthread_mutex_lock(&st->lock);
	if (st->nidle < POOL_MAX) {
		st->idle[st->nidle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&st->lock);
	if (h) curl_easy_cleanup(h);
}

static int retryable_curl(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

/* The object's full address, for messages. */
void s3_obj_label(const s3_store *st, const char *name, char *out, size_t cap)
{
	if (name) snprintf(out, cap, "s3://%s/%s%s", st->bucket, st->prefix, name);
	else snprintf(out, cap, "%s", st->label);
}

/* One request, retried with backoff on connection errors, timeouts and
 * 5xx. Returns 0 when a response came (q->status set; the caller judges
 * it) or CAIRN_EIO naming the object when the server could not be had. */
int s3_do(s3_store *st, s3_req *q)
{
	char key[KEY_MAX + 1], path[3 * KEY_MAX + 1], url[4 * KEY_MAX + 512], what[KEY_MAX + 300];
	struct curl_slist *hl = NULL;
	int rc = 0;
	s3_obj_label(st, q->name, what, sizeof(what));
	if (q->name) {
		if ((size_t)snprintf(key, sizeof(key), "%s%s", st->prefix, q->name) >= sizeof(key) ||
		    s3_url_encode(path, sizeof(path), key, 1) < 0)
			return error_set(CAIRN_EUSAGE, "%s: name too long for S3", what);
		snprintf(url, sizeof(url), "%s/%s/%s%s%s", st->endpoint, st->bucket, path, q->query ? "?" : "",
		         q->query ? q->query : "");
	} else {
		snprintf(url, sizeof(url), "%s/%s%s%s", st->endpoint, st->bucket, q->query ? "?" : "",
		         q->query ? q->query : "");
	}
	hl = curl_slist_append(hl, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	if (st->token_hdr) hl = curl_slist_append(hl, st->token_hdr);
	for (int i = 0; i < 4 && q->hdr[i]; i++) hl = curl_slist_append(hl, q->hdr[i]);
	if (!hl) return ERR_OOM();

	CURL *h = handle_get(st);
	if (!h) {
		curl_slist_free_all(hl);
		return ERR_OOM();
	}
	for (int attempt = 1;; attempt++) {
		req_ctx ctx = {q, h, 0};
		buf_free(&q->resp);
		buf_init(&q->resp);
		q->status = 0;
		q->overflow = 0;
		q->dst_got = 0;
		q->sent = 0;
		q->etag[0] = '\0';
		q->has_clen = 0;
		q->curl_err[0] = '\0';
		curl_easy_reset(h);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, st->sigv4);
		curl_easy_setopt(h, CURLOPT_USERPWD, st->userpwd);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		/* no "Expect:" header to turn 100-continue off: libcurl 7.88 would sign
		 * the empty header it then does not send; a short wait instead */
		curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 200L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
		/* a stalled transfer fails instead of hanging: under 1 KiB/s for
		 * CAIRN_S3_STALL_S (30 s) */
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, st->stall_s);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, q->curl_err);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, q);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body_ctx);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
		if (strcmp(q->method, "HEAD") == 0) {
			curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		} else if (strcmp(q->method, "PUT") == 0) {
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(h, CURLOPT_READDATA, q);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_len);
		} else if (strcmp(q->method, "POST") == 0) {
			curl_easy_setopt(h, CURLOPT_POST, 1L);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body ? (const char *)q->body : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
		} else if (strcmp(q->method, "GET") != 0) {
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
		}
		q->cc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &q->status);
		if (q->resp.oom) {
			rc = ERR_OOM();
			break;
		}
		int again = q->cc != CURLE_OK ? retryable_curl(q->cc)
		                              : (q->status >= 500 || q->status == 429);
		if (q->cc == CURLE_WRITE_ERROR && q->overflow) again = 0; /* our bound, not the network */
		if (!again || attempt >= st->tries) break;
		/* a request that was sent may have taken effect: callers of
		 * conditional writes check for their own result on a 412 */
		if (q->cc != CURLE_COULDNT_CONNECT && q->cc != CURLE_COULDNT_RESOLVE_HOST) q->resent = 1;
		uint64_t backoff = 100ull << (attempt - 1);
		uint8_t r = 0;
		if (getrandom(&r, 1, GRND_NONBLOCK) != 1) r = 0;
		s3_sleep_ms(backoff + backoff * r / 512);
	}
	if (rc == 0 && q->cc != CURLE_OK && !(q->cc == CURLE_WRITE_ERROR && q->overflow)) {
		/* connected but no answer: radosgw waits like this when its Ceph
		 * cluster is full, so "cannot reach" would mislead */
		const char *why = q->curl_err[0] ? q->curl_err : curl_easy_strerror(q->cc);
		if (q->cc == CURLE_OPERATION_TIMEDOUT)
			rc = error_set(CAIRN_EIO,
			               "%s: %s stopped answering: %s (after %d tries; a store that is full or "
			               "overloaded can stall like this)",
			               what, st->endpoint, why, st->tries);
		else
			rc = error_set(CAIRN_EIO, "%s: cannot reach %s: %s (after %d tries)", what, st->endpoint, why,
			               st->tries);
		/* a handle that failed may hold a broken connection: do not pool it */
		curl_easy_cleanup(h);
		h = NULL;
	}
	if (h) handle_put(st, h);
	curl_slist_free_all(hl);
	return rc;
}

/* A message and code for a response we did not expect: names the object,
 * the HTTP status and S3's error code. */
int s3_fail(s3_store *st, s3_req *q, const char *doing)
{
	char what[KEY_MAX + 300], code[128] = "", msg[256] = "";
	s3_obj_label(st, q->name, what, sizeof(what));
	const char *b = (const char *)q->resp.data, *e = b + q->resp.len;
	if (b) {
		s3_xml_text(b, e, "Code", code, sizeof(code));
		s3_xml_text(b, e, "Message", msg, sizeof(msg));
	}
	if (q->status == 404 && strcmp(code, "NoSuchBucket") == 0)
		return error_set(CAIRN_ENOTFOUND, "%s: %s: bucket %s does not exist", what, doing, st->bucket);
	if (q->status == 403)
		return error_set(CAIRN_EIO, "%s: %s: access refused (%s%s%s); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION",
		                 what, doing, code[0] ? code : "HTTP 403", msg[0] ? ": " : "", msg);
	if (strcmp(code, "QuotaExceeded") == 0 || strcmp(code, "InsufficientCapacity") == 0 ||
	    q->status == 507)
		return error_set(CAIRN_EIO, "%s: %s: out of space (%s)", what, doing, code[0] ? code : "HTTP 507");
	return error_set(CAIRN_EIO, "%s: %s: HTTP %ld%s%s%s%s", what, doing, q->status, code[0] ? " " : "",
	                 code, msg[0] ? ": " : "", msg);
}

void s3_req_free(s3_req *q) { buf_free(&q->resp); }

/* Does the response body (not NUL-terminated) contain s? */
int s3_resp_has(const s3_req *q, const char *s)
{
	return q->resp.data && memmem(q->resp.data, q->resp.len, s, strlen(s)) != NULL;
}

/* ---- requests that several operations make -------------------------------- */

/* After a retried create-only PUT got 412: did our own first attempt land? */
static int put_landed(s3_store *st, const char *name, const void *data, size_t len)
{
	uint8_t *back = NULL;
	size_t blen = 0;
	int same = 0;
	if (st->base.ops->get(&st->base, name, len, &back, &blen) == 0)
		same = blen == len && (len == 0 || memcmp(back, data, len) == 0);
	free(back);
	error_clear();
	return same;
}

int s3_single_put(s3_store *st, const char *name, const void *data, size_t len, unsigned flags,
                      const char *if_match, char *etag_out)
{
	char im[200];
	s3_req q = {.method = "PUT", .name = name, .body = data, .body_len = len};
	int n = 0;
	if (flags & STORE_EXCL) q.hdr[n++] = "If-None-Match: *";
	if (if_match) {
		snprintf(im, sizeof(im), "If-Match: %s", if_match);
		q.hdr[n++] = im;
	}
	int rc = s3_do(st, &q);
	if (rc == 0 && q.status == 200) {
		if (etag_out) snprintf(etag_out, 128, "%s", q.etag);
	} else if (rc == 0 && q.status == 412) {
		char what[KEY_MAX + 300];
		s3_obj_label(st, name, what, sizeof(what));
		if (q.resent && !if_match && put_landed(st, name, data, len))
			rc = 0; /* our first attempt created it; its ETag is the MD5 we cannot see here */
		else
			rc = error_set(CAIRN_EEXISTS, "%s: %s", what, if_match ? "changed meanwhile" : "already exists");
	} else if (rc == 0) {
		rc = s3_fail(st, &q, "put");
	}
	s3_req_free(&q);
	return rc;
}

/* One page of a bucket listing (query on the bucket): *q gets the answer,
 * an XML document whose root element is root (e.g. "ListBucketResult");
 * what names the listing in messages. On failure *q is freed. */
int s3_list_page(s3_store *st, const char *query, const char *root, const char *what, s3_req *q)
{
	*q = (s3_req){.method = "GET", .query = query, .max = LIST_BODY_MAX};
	int rc = s3_do(st, q);
	if (rc < 0) return rc;
	char open[64];
	snprintf(open, sizeof(open), "<%s", root);
	if (q->status != 200 || q->overflow || !q->resp.data)
		rc = q->status == 200 ? error_set(CAIRN_EIO, "%s: list: page too large or empty", what)
		                      : s3_fail(st, q, "list");
	else if (!memmem(q->resp.data, q->resp.len, open, strlen(open)))
		rc = error_set(CAIRN_EIO, "%s: list: the answer is not a %s", what, root);
	if (rc < 0) s3_req_free(q);
	return rc;
}
