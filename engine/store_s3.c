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
#include "store_backend.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"
#include "hash.h"

#define POOL_MAX 16                 /* idle curl handles kept (their connections stay open) */
#define PART_LEN (8u << 20)         /* multipart part size (S3: >= 5 MiB except the last) */
#define PARTS_IN_FLIGHT 4           /* parts of one writer uploading at once */
#define MAX_PARTS 10000             /* S3's limit */
#define SINGLE_PUT_MAX (5ull << 30) /* S3's limit for one PUT */
#define ERR_BODY_MAX 65536          /* error documents kept for the message */
#define LIST_BODY_MAX (16u << 20)   /* one ListObjectsV2 page */
#define KEY_MAX 1024                /* S3's key length limit */

typedef struct s3_store {
	store base;
	char *label;    /* "s3://BUCKET[/PREFIX]" for messages */
	char *endpoint; /* without a trailing '/' */
	char *bucket;
	char *prefix; /* "" or "PREFIX/" */
	char *sigv4;  /* "aws:amz:REGION:s3" */
	char *userpwd;
	char *token_hdr; /* "x-amz-security-token: ..." or NULL */
	int tries;       /* attempts per request */
	long stall_s;    /* a transfer under 1 KiB/s this long fails (and is retried) */
	uint64_t multipart_min; /* puts at least this large go multipart */
	pthread_mutex_t lock; /* guards idle and the segment cache */
	CURL *idle[POOL_MAX];
	int nidle;
} s3_store;


static const store_ops s3_ops;

/* ---- small helpers -------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

/* Percent-encode for a URL path or query value (AWS's rules: unreserved
 * characters stay, everything else is %XX with upper-case hex; keep_slash
 * for paths). -1 if it does not fit. */
static int url_encode(char *out, size_t cap, const char *s, int keep_slash)
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
static const char *xml_text(const char *from, const char *end, const char *tag, char *out, size_t cap)
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

/* ---- requests --------------------------------------------------------------- */

typedef struct s3_req {
	/* in */
	const char *method; /* GET PUT HEAD DELETE POST */
	const char *name;   /* object name in the repository; NULL: the bucket itself */
	const char *query;  /* canonical: parameters sorted, values encoded; or NULL */
	const void *body;   /* PUT/POST body */
	size_t body_len;
	const char *hdr[4]; /* extra headers */
	size_t max;         /* response body bound (0: ERR_BODY_MAX, unless exact) */
	int exact;          /* max is the bound even when 0 */
	uint8_t *dst;       /* ranged read: copy [dst_off, dst_off+dst_len) here */
	uint64_t dst_off;
	size_t dst_len;
	/* out */
	long status;
	buf resp;
	size_t dst_got;
	int overflow;    /* the body was larger than max */
	int resent;      /* a retry followed an attempt that may have reached the server */
	char etag[128];  /* without quotes */
	uint64_t clen;
	int has_clen;
	size_t sent;     /* upload position (read callback) */
	char curl_err[CURL_ERROR_SIZE];
	CURLcode cc;
} s3_req;

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
static void obj_label(const s3_store *st, const char *name, char *out, size_t cap)
{
	if (name) snprintf(out, cap, "s3://%s/%s%s", st->bucket, st->prefix, name);
	else snprintf(out, cap, "%s", st->label);
}

/* One request, retried with backoff on connection errors, timeouts and
 * 5xx. Returns 0 when a response came (q->status set; the caller judges
 * it) or CAIRN_EIO naming the object when the server could not be had. */
static int s3_do(s3_store *st, s3_req *q)
{
	char key[KEY_MAX + 1], path[3 * KEY_MAX + 1], url[4 * KEY_MAX + 512], what[KEY_MAX + 300];
	struct curl_slist *hl = NULL;
	int rc = 0;
	obj_label(st, q->name, what, sizeof(what));
	if (q->name) {
		if ((size_t)snprintf(key, sizeof(key), "%s%s", st->prefix, q->name) >= sizeof(key) ||
		    url_encode(path, sizeof(path), key, 1) < 0)
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
		sleep_ms(backoff + backoff * r / 512);
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
static int s3_fail(s3_store *st, s3_req *q, const char *doing)
{
	char what[KEY_MAX + 300], code[128] = "", msg[256] = "";
	obj_label(st, q->name, what, sizeof(what));
	const char *b = (const char *)q->resp.data, *e = b + q->resp.len;
	if (b) {
		xml_text(b, e, "Code", code, sizeof(code));
		xml_text(b, e, "Message", msg, sizeof(msg));
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

static void req_free(s3_req *q) { buf_free(&q->resp); }

/* Does the response body (not NUL-terminated) contain s? */
static int resp_has(const s3_req *q, const char *s)
{
	return q->resp.data && memmem(q->resp.data, q->resp.len, s, strlen(s)) != NULL;
}

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
	req_free(&q);
done:
	if (rc < 0) {
		s3_free(&st->base);
		return rc;
	}
	*out = &st->base;
	return 0;
}

/* ---- objects ---------------------------------------------------------------- */

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

static int single_put(s3_store *st, const char *name, const void *data, size_t len, unsigned flags,
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
		obj_label(st, name, what, sizeof(what));
		if (q.resent && !if_match && put_landed(st, name, data, len))
			rc = 0; /* our first attempt created it; its ETag is the MD5 we cannot see here */
		else
			rc = error_set(CAIRN_EEXISTS, "%s: %s", what, if_match ? "changed meanwhile" : "already exists");
	} else if (rc == 0) {
		rc = s3_fail(st, &q, "put");
	}
	req_free(&q);
	return rc;
}

static int mp_put(s3_store *st, const char *name, const void *data, size_t len, unsigned flags);

static int s3_put(store *base, const char *name, const void *data, size_t len, unsigned flags)
{
	s3_store *st = (s3_store *)base;
	if (len >= st->multipart_min) return mp_put(st, name, data, len, flags);
	return single_put(st, name, data, len, flags, NULL, NULL);
}

static int s3_get(store *base, const char *name, size_t max, uint8_t **out, size_t *len)
{
	s3_store *st = (s3_store *)base;
	char what[KEY_MAX + 300];
	*out = NULL;
	*len = 0;
	obj_label(st, name, what, sizeof(what));
	s3_req q = {.method = "GET", .name = name, .max = max, .exact = 1};
	int rc = s3_do(st, &q);
	if (rc < 0) goto done;
	if (q.status == 404 && !resp_has(&q, "NoSuchBucket")) {
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
	req_free(&q);
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
	obj_label(st, name, what, sizeof(what));
	snprintf(range, sizeof(range), "Range: bytes=%llu-%llu", (unsigned long long)off,
	         (unsigned long long)(off + len - 1));
	s3_req q = {.method = "GET", .name = name, .dst = out, .dst_off = off, .dst_len = len};
	q.hdr[0] = range;
	int rc = s3_do(st, &q);
	if (rc < 0) goto done;
	if (q.status == 404 && !resp_has(&q, "NoSuchBucket"))
		rc = error_set(CAIRN_ECORRUPT, "%s: missing", what);
	else if (q.status == 416)
		rc = 0; /* the object ends before off */
	else if (q.status != 206 && q.status != 200)
		rc = s3_fail(st, &q, "ranged get");
	else
		*got = q.dst_got;
done:
	req_free(&q);
	return rc;
}

static int s3_get_range(store *base, const char *name, uint64_t off, void *out, size_t len)
{
	size_t got;
	int rc = s3_get_upto(base, name, off, out, len, &got);
	if (rc == 0 && got < len) {
		char what[KEY_MAX + 300];
		obj_label((s3_store *)base, name, what, sizeof(what));
		rc = error_set(CAIRN_ECORRUPT, "%s: short: %zu bytes at offset %llu are past its end", what, len,
		               (unsigned long long)off);
	}
	return rc;
}

static int s3_size(store *base, const char *name, uint64_t *size)
{
	s3_store *st = (s3_store *)base;
	char what[KEY_MAX + 300];
	obj_label(st, name, what, sizeof(what));
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
	req_free(&q);
	return rc;
}

/* One page of a bucket listing (query on the bucket): *q gets the answer,
 * an XML document whose root element is root (e.g. "ListBucketResult");
 * what names the listing in messages. On failure *q is freed. */
static int list_page(s3_store *st, const char *query, const char *root, const char *what, s3_req *q)
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
	if (rc < 0) req_free(q);
	return rc;
}

static int s3_list(store *base, const char *dir, int (*cb)(const char *name, void *payload), void *payload)
{
	s3_store *st = (s3_store *)base;
	char full[KEY_MAX + 2], enc[3 * KEY_MAX + 8], token[KEY_MAX + 1] = "", tenc[3 * KEY_MAX + 8];
	char query[8 * KEY_MAX], key[KEY_MAX + 1];
	if ((size_t)snprintf(full, sizeof(full), "%s%s/", st->prefix, dir) >= sizeof(full) ||
	    url_encode(enc, sizeof(enc), full, 0) < 0)
		return error_set(CAIRN_EUSAGE, "%s/%s: name too long for S3", st->label, dir);
	size_t plen = strlen(st->prefix);
	int rc = 0;
	for (int page = 0;; page++) {
		if (token[0]) {
			if (url_encode(tenc, sizeof(tenc), token, 0) < 0)
				return error_set(CAIRN_EIO, "%s/%s: continuation token too long", st->label, dir);
			snprintf(query, sizeof(query), "continuation-token=%s&list-type=2&max-keys=1000&prefix=%s", tenc, enc);
		} else {
			snprintf(query, sizeof(query), "list-type=2&max-keys=1000&prefix=%s", enc);
		}
		s3_req q;
		char what[KEY_MAX + 300];
		snprintf(what, sizeof(what), "%s/%s", st->label, dir);
		if ((rc = list_page(st, query, "ListBucketResult", what, &q)) < 0) return rc;
		const char *p = (const char *)q.resp.data, *end = p + q.resp.len;
		char trunc[8] = "false";
		xml_text(p, end, "IsTruncated", trunc, sizeof(trunc));
		int more = strcmp(trunc, "true") == 0;
		token[0] = '\0';
		if (more && !xml_text(p, end, "NextContinuationToken", token, sizeof(token))) {
			req_free(&q);
			return error_set(CAIRN_EIO, "%s/%s: list: truncated page without a continuation token", st->label, dir);
		}
		const char *at = p;
		while (rc == 0 && (at = xml_text(at, end, "Key", key, sizeof(key))) != NULL) {
			/* keys outside what we asked for would be a server bug: skip them */
			if (strncmp(key, full, strlen(full)) != 0 || strlen(key) <= strlen(full)) continue;
			rc = cb(key + plen, payload);
		}
		req_free(&q);
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
	req_free(&q);
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
	obj_label(st, name, what, sizeof(what));
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
	req_free(&q);
	return rc;
}

static int lock_stale(const lock_info *li)
{
	if (li->expiry_ms < now_ms()) return 1;
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
	uint64_t deadline = now_ms() + wait_ms;
	lock_info li;
	for (;;) {
		int n = lock_body(l, now_ms() + ttl_ms, body, sizeof(body));
		rc = single_put(st, l->name, body, (size_t)n, STORE_EXCL, NULL, l->etag);
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
			n = lock_body(l, now_ms() + ttl_ms, body, sizeof(body));
			rc = single_put(st, l->name, body, (size_t)n, 0, li.etag, l->etag);
			if (rc == 0) {
				*out = &l->base;
				return 0;
			}
			if (rc != CAIRN_EEXISTS) break;
			error_clear();
			continue;
		}
		if (now_ms() >= deadline) {
			rc = error_set(CAIRN_EBUSY, "lock %s: held by process %ld on %s", name, li.pid, li.host);
			break;
		}
		uint8_t r = 0;
		if (getrandom(&r, 1, GRND_NONBLOCK) != 1) r = 0;
		sleep_ms(30 + r % 40);
	}
	free(l);
	return rc;
}

static int s3_lock_refresh(store_lock *base)
{
	s3_lock *l = (s3_lock *)base;
	char body[320];
	int n = lock_body(l, now_ms() + l->ttl_ms, body, sizeof(body));
	int rc = single_put(l->st, l->name, body, (size_t)n, 0, l->etag, l->etag);
	if (rc == CAIRN_EEXISTS) rc = error_set(CAIRN_EBUSY, "%s/%s: lost to another process", l->st->label, l->name);
	return rc;
}

static void s3_lock_release(store_lock *base)
{
	s3_lock *l = (s3_lock *)base;
	char body[320];
	/* expire it in place, only if it is still ours */
	int n = lock_body(l, 0, body, sizeof(body));
	if (single_put(l->st, l->name, body, (size_t)n, 0, l->etag, NULL) < 0) error_clear();
	free(l);
}

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
	req_free(&q);
	free(j->data);
	free(j);
	return NULL;
}

static int mp_start(s3_writer *w)
{
	char what[KEY_MAX + 300];
	obj_label(w->st, w->name, what, sizeof(what));
	s3_req q = {.method = "POST", .name = w->name, .query = "uploads=", .hdr = {"Content-Type: application/octet-stream"}};
	int rc = s3_do(w->st, &q);
	if (rc == 0 && q.status != 200) rc = s3_fail(w->st, &q, "start multipart upload");
	if (rc == 0 && (!q.resp.data || !xml_text((char *)q.resp.data, (char *)q.resp.data + q.resp.len, "UploadId",
	                                          w->upload_id, sizeof(w->upload_id)) ||
	                !w->upload_id[0]))
		rc = error_set(CAIRN_EIO, "%s: start multipart upload: no UploadId in the answer", what);
	/* upload ids go into queries: they must need no encoding */
	for (const char *c = w->upload_id; rc == 0 && *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      *c == '.' || *c == '_' || *c == '~')) {
			char enc[800];
			if (url_encode(enc, sizeof(enc), w->upload_id, 0) < 0 || strlen(enc) >= sizeof(w->upload_id))
				rc = error_set(CAIRN_EIO, "%s: upload id too long", what);
			else
				memcpy(w->upload_id, enc, strlen(enc) + 1);
			break;
		}
	req_free(&q);
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

static int s3_write_begin(store *base, const char *name, store_writer **out)
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

static int s3_write_append(store_writer *base, const void *data, size_t len)
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
	req_free(&q);
}

static void s3_write_abort(store_writer *base)
{
	s3_writer *w = (s3_writer *)base;
	if (mp_wait(w) < 0) error_clear();
	mp_abort_upload(w);
	writer_free(w);
}

/* CompleteMultipartUpload cannot be made create-only on every server
 * (radosgw ignores If-None-Match there): create-only commits of multipart
 * objects take a per-object lock and check for the object under it. */
static int mp_complete(s3_writer *w, unsigned flags)
{
	s3_store *st = w->st;
	char what[KEY_MAX + 300], lname[KEY_MAX + 16], query[300];
	store_lock *lk = NULL;
	buf x;
	int rc = 0;
	buf_init(&x);
	obj_label(st, w->name, what, sizeof(what));
	if (flags & STORE_EXCL) {
		uint64_t size;
		oid h;
		char hex[OID_HEX_LEN + 1];
		hash_sha256(&h, w->name, strlen(w->name));
		oid_hex(hex, &h);
		snprintf(lname, sizeof(lname), "create.%.32s", hex);
		if ((rc = s3_lock_acquire(&lk, &st->base, lname, 120000, 120000)) < 0) goto done;
		rc = s3_size(&st->base, w->name, &size);
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
		if (s3_size(&st->base, w->name, &size) == 0) q.status = 200;
		else error_clear();
	}
	if (rc == 0 && (q.status != 200 || bad)) rc = s3_fail(st, &q, "complete multipart upload");
	req_free(&q);
	if (rc == 0) w->upload_id[0] = '\0';
done:
	if (lk) s3_lock_release(lk);
	buf_free(&x);
	return rc;
}

static int s3_write_commit(store_writer *base, unsigned flags)
{
	s3_writer *w = (s3_writer *)base;
	int rc;
	if (!w->upload_id[0] && w->nparts == 0) { /* fit in one part: one PUT */
		rc = single_put(w->st, w->name, w->cur ? w->cur : (const uint8_t *)"", w->cur_len, flags, NULL, NULL);
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

static int mp_put(s3_store *st, const char *name, const void *data, size_t len, unsigned flags)
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

static int s3_unfinished_list(store *base, store_unfinished_cb cb, void *payload)
{
	s3_store *st = (s3_store *)base;
	char penc[3 * KEY_MAX + 8], kmark[KEY_MAX + 1] = "", umark[512] = "";
	char kenc[3 * KEY_MAX + 8], uenc[3 * 512 + 8], query[9 * KEY_MAX], key[KEY_MAX + 1], id[512], began[64];
	if (url_encode(penc, sizeof(penc), st->prefix, 0) < 0)
		return error_set(CAIRN_EUSAGE, "%s: prefix too long for S3", st->label);
	size_t plen = strlen(st->prefix);
	int rc = 0;
	for (int page = 0;; page++) {
		if (kmark[0]) { /* canonical order: key-marker, prefix, upload-id-marker, uploads */
			if (url_encode(kenc, sizeof(kenc), kmark, 0) < 0 || url_encode(uenc, sizeof(uenc), umark, 0) < 0)
				return error_set(CAIRN_EIO, "%s: list uploads: marker too long", st->label);
			snprintf(query, sizeof(query), "key-marker=%s&prefix=%s&upload-id-marker=%s&uploads=", kenc, penc, uenc);
		} else {
			snprintf(query, sizeof(query), "prefix=%s&uploads=", penc);
		}
		s3_req q;
		if ((rc = list_page(st, query, "ListMultipartUploadsResult", st->label, &q)) < 0) return rc;
		const char *p = (const char *)q.resp.data, *end = p + q.resp.len;
		char trunc[8] = "false";
		xml_text(p, end, "IsTruncated", trunc, sizeof(trunc));
		int more = strcmp(trunc, "true") == 0;
		if (more && (!xml_text(p, end, "NextKeyMarker", kmark, sizeof(kmark)) ||
		             !xml_text(p, end, "NextUploadIdMarker", umark, sizeof(umark)))) {
			req_free(&q);
			return error_set(CAIRN_EIO, "%s: list uploads: truncated page without markers", st->label);
		}
		for (const char *at = p; rc == 0 && (at = memmem(at, (size_t)(end - at), "<Upload>", 8)) != NULL;) {
			const char *stop = memmem(at, (size_t)(end - at), "</Upload>", 9);
			if (!stop) break;
			if (xml_text(at, stop, "Key", key, sizeof(key)) && xml_text(at, stop, "UploadId", id, sizeof(id)) &&
			    xml_text(at, stop, "Initiated", began, sizeof(began)) && strncmp(key, st->prefix, plen) == 0 &&
			    strlen(key) > plen) {
				int64_t t = iso8601_ns(began);
				if (t >= 0) rc = cb(key + plen, id, t, payload);
			}
			at = stop + 9;
		}
		req_free(&q);
		if (rc != 0 || !more) return rc;
		if (page > 1000000) return error_set(CAIRN_EIO, "%s: list uploads does not end", st->label);
	}
}

static int s3_unfinished_abort(store *base, const char *name, const char *id)
{
	s3_store *st = (s3_store *)base;
	char uenc[3 * 512 + 8], query[3 * 512 + 24];
	if (url_encode(uenc, sizeof(uenc), id, 0) < 0)
		return error_set(CAIRN_EUSAGE, "%s/%s: upload id too long", st->label, name);
	snprintf(query, sizeof(query), "uploadId=%s", uenc);
	s3_req q = {.method = "DELETE", .name = name, .query = query};
	int rc = s3_do(st, &q);
	if (rc == 0 && q.status != 204 && q.status != 200 && q.status != 404) rc = s3_fail(st, &q, "abort upload");
	req_free(&q);
	return rc;
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
