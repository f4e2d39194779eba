/* The S3 backend (engine/s3/), internal: its store, a request, and what
 * each file owns (the backend's behaviour is described in store.c):
 *   store.c      opening a bucket, the store's objects, listings, locks, its ops table
 *   multipart.c  streamed writes as multipart uploads; unfinished uploads listed and aborted (gc)
 *   http.c       one signed request with retries, its errors, the handle pool, a single PUT,
 *                a listing page, URL and XML helpers
 * A file uses only those listed below it (no cycles, engine/LAYERS). */
#ifndef CAIRN_S3_INTERNAL_H
#define CAIRN_S3_INTERNAL_H

#define ERROR_CLASS "store_s3" /* one error class for the backend's files */

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

/* http.c */
uint64_t s3_now_ms(void);
void s3_sleep_ms(uint64_t ms);
/* Percent-encode for a URL path or query value; -1 if it does not fit. */
int s3_url_encode(char *out, size_t cap, const char *s, int keep_slash);
/* The text between <tag> and </tag> at or after from, entities decoded;
 * a pointer past the closing tag, or NULL. */
const char *s3_xml_text(const char *from, const char *end, const char *tag, char *out, size_t cap);
/* "s3://BUCKET/PREFIXNAME" (the store's label when name is NULL), for messages. */
void s3_obj_label(const s3_store *st, const char *name, char *out, size_t cap);
/* One request with retries: 0 when a response came (q->status), or CAIRN_EIO. */
int s3_do(s3_store *st, s3_req *q);
/* The error for a response that is not the one expected, naming the object. */
int s3_fail(s3_store *st, s3_req *q, const char *doing);
void s3_req_free(s3_req *q);
/* Does the response body contain s? */
int s3_resp_has(const s3_req *q, const char *s);
/* One PUT (create-only with STORE_EXCL, conditional with if_match); etag_out
 * (128 bytes) gets the new ETag when not NULL. */
int s3_single_put(s3_store *st, const char *name, const void *data, size_t len, unsigned flags,
                  const char *if_match, char *etag_out);
/* One page of a bucket listing into *q (root: the document's root element). */
int s3_list_page(s3_store *st, const char *query, const char *root, const char *what, s3_req *q);

/* multipart.c */
int s3_mp_put(s3_store *st, const char *name, const void *data, size_t len, unsigned flags);
int s3_write_begin(store *base, const char *name, store_writer **out);
int s3_write_append(store_writer *base, const void *data, size_t len);
int s3_write_commit(store_writer *base, unsigned flags);
void s3_write_abort(store_writer *base);
int s3_unfinished_list(store *base, store_unfinished_cb cb, void *payload);
int s3_unfinished_abort(store *base, const char *name, const char *id);

#endif
