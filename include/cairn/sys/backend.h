/*
 * cairn: the storage backend interface, for those who bring their own store
 * (as libgit2's git_odb_backend). A repository is a set of named, immutable
 * objects ("config", "packs/ab/ab12...", "index/...", "snapshots/...",
 * "users/..."); the engine reaches them only through these operations, so
 * every protocol of the engine (commits, gc, quotas) is correct on any
 * backend that keeps this contract:
 *
 *  - put and a committed streamed write are atomic (a reader sees all of
 *    the object or none) and durable when they return;
 *  - with CAIRN_BACKEND_EXCL a put fails with CAIRN_EEXISTS when the object
 *    exists, and never overwrites it;
 *  - a missing object is CAIRN_ENOTFOUND from get and size, and
 *    CAIRN_ECORRUPT (naming it) from a ranged read;
 *  - list visits every object under a prefix, in any order;
 *  - locks are exclusive, named, and expire unless refreshed.
 *
 * Every function returns 0 or a negative CAIRN_E* code and sets the message
 * (the backend's own words, naming the object) through cairn_error_set().
 * Implement one by embedding cairn_backend as the first member of your own
 * struct, cairn_backend_writer and cairn_backend_lock likewise, and filling
 * a cairn_backend_ops table whose version is CAIRN_BACKEND_OPS_VERSION; hand
 * it to cairn_repo_open_ext() (cairn.h), which then owns it and calls free.
 * The table only grows at its end: a table of an older version (a backend
 * built against an older header) keeps working, and the library never
 * reads the members that version did not have.
 * A backend's functions may be called from several threads at once.
 */
#ifndef CAIRN_SYS_BACKEND_H
#define CAIRN_SYS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "../../cairn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cairn_backend cairn_backend;
typedef struct cairn_backend_writer cairn_backend_writer;
typedef struct cairn_backend_lock cairn_backend_lock;

#define CAIRN_BACKEND_EXCL 1     /* put: create only if absent */
#define CAIRN_BACKEND_UNCACHED 2 /* commit: nobody reads it back soon; local caches may drop it */
#define CAIRN_BACKEND_DIRECT_ALIGN 4096u /* get_range_direct's blocks */

/* An unfinished write a dead process left behind (S3 multipart uploads). */
typedef int (*cairn_backend_unfinished_cb)(const char *name, const char *id, int64_t began_ns,
                                           void *payload);

/* 1: up to unfinished_abort; 2: advise */
#define CAIRN_BACKEND_OPS_VERSION 2
typedef struct cairn_backend_ops {
	unsigned version;
	const char *kind;   /* "dir", "rados", "s3", or your own */
	size_t pack_target; /* bytes a pack grows to before it is committed; 0 = default */
	void (*free)(cairn_backend *b);
	int (*put)(cairn_backend *b, const char *name, const void *data, size_t len, unsigned flags);
	/* The whole object, at most max bytes (else CAIRN_ECORRUPT); *out malloc'd. */
	int (*get)(cairn_backend *b, const char *name, size_t max, uint8_t **out, size_t *len);
	/* Exactly len bytes at off. */
	int (*get_range)(cairn_backend *b, const char *name, uint64_t off, void *out, size_t len);
	/* May be NULL. At most len bytes at off, *got how many (fewer only where
	 * the object ends). A backend with it is one where every read is a round
	 * trip: the repository then keeps read caches in front of it. */
	int (*get_upto)(cairn_backend *b, const char *name, uint64_t off, void *out, size_t len,
	                size_t *got);
	/* May be NULL. A hint after a read: these bytes will not be read again
	 * soon; a backend with a local cache may drop them from it. */
	void (*uncache)(cairn_backend *b, const char *name, uint64_t off, size_t len);
	/* May be NULL. Read [off, off + len) past every local cache (O_DIRECT):
	 * out is CAIRN_BACKEND_DIRECT_ALIGN-aligned, has room for len + 2 *
	 * CAIRN_BACKEND_DIRECT_ALIGN bytes, and receives the aligned blocks
	 * around the range, so the bytes land at out + off % ALIGN. 1 when the
	 * local caches cannot be bypassed here (the engine then reads with
	 * get_range and calls uncache). */
	int (*get_range_direct)(cairn_backend *b, const char *name, uint64_t off, void *out, size_t len);
	int (*size)(cairn_backend *b, const char *name, uint64_t *size);
	/* cb gets the full name of every object under dir + "/"; non-zero stops. */
	int (*list)(cairn_backend *b, const char *dir, int (*cb)(const char *name, void *payload),
	            void *payload);
	int (*del)(cairn_backend *b, const char *name);
	/* Streamed writes of large objects (packs); may all be NULL, the engine
	 * then buffers the object and puts it whole. Nothing is visible before
	 * commit; commit and abort free the writer. */
	int (*write_begin)(cairn_backend *b, const char *name, cairn_backend_writer **out);
	int (*write_append)(cairn_backend_writer *w, const void *data, size_t len);
	int (*write_commit)(cairn_backend_writer *w, unsigned flags);
	void (*write_abort)(cairn_backend_writer *w);
	/* Locks: CAIRN_EBUSY (naming the holder) when not had within wait_ms; a
	 * lock past its expiry, or whose holder is gone, is taken over. refresh
	 * is CAIRN_EBUSY when the lock was lost; release never removes a lock
	 * someone else took over. */
	int (*lock_acquire)(cairn_backend_lock **out, cairn_backend *b, const char *name, uint64_t ttl_ms,
	                    uint64_t wait_ms);
	int (*lock_refresh)(cairn_backend_lock *l);
	void (*lock_release)(cairn_backend_lock *l);
	/* May be NULL: the backend never leaves unfinished writes. */
	int (*unfinished_list)(cairn_backend *b, cairn_backend_unfinished_cb cb, void *payload);
	int (*unfinished_abort)(cairn_backend *b, const char *name, const char *id);
	/* Version 2; may be NULL. A hint: [off, off + len) of the object will
	 * be read soon (a restore's next run of a pack, a mount's read-ahead).
	 * Start fetching it into a local cache without waiting for it (a
	 * directory: the page cache). An error is reported but never fails a
	 * read; the reads that follow must work whether or not it was done. */
	int (*advise)(cairn_backend *b, const char *name, uint64_t off, size_t len);
} cairn_backend_ops;

struct cairn_backend {
	const cairn_backend_ops *ops;
};

struct cairn_backend_writer {
	cairn_backend *st; /* the backend that began it */
};

struct cairn_backend_lock {
	cairn_backend *st; /* the backend that holds it */
};

/* For backends: set the message of the failure being returned (printf
 * format); returns code. */
CAIRN_EXTERN int cairn_error_set(int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

#ifdef __cplusplus
}
#endif
#endif
