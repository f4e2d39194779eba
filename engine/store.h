/* The storage interface: named immutable objects. The engine reaches the
 * repository only through these calls and never knows which backend it
 * talks to (store_backend.h has the backends' side). Names are relative
 * paths like "packs/ab/ab12...". Every put and every committed write is
 * atomic (readers see all of the object or none) and durable on return. */
#ifndef CAIRN_STORE_H
#define CAIRN_STORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cairn_backend store; /* include/cairn/sys/backend.h */
struct buf;

#define STORE_EXCL 1 /* create only if absent (CAIRN_EEXISTS otherwise) */
/* For store_write_commit: nobody reads the object back soon, so once it is
 * durable a backend may drop it from the local caches (the directory's page
 * cache). A take's packs of file data: left cached, a large take fills
 * the host's memory with them, and each pack's fresh pages cost more than
 * pages just freed (docs/performance.md "Where the time goes", 0.2.8). */
#define STORE_UNCACHED 2

struct cairn_repo_open_options;

/* Open a repository's storage by its address: a directory path (or
 * "dir:PATH"), "rados:POOL[/PREFIX]" or "s3://BUCKET[/PREFIX]". The
 * storage must exist; CAIRN_ENOTFOUND when it does not. o (may be NULL)
 * gives the remote backends' settings (cairn.h); its other fields are the
 * repository's business. */
int store_open(store **out, const char *address, const struct cairn_repo_open_options *o);
/* For init: make the storage ready (a directory and its folders; remote
 * backends check that the pool or bucket exists) and open it. */
int store_create(store **out, const char *address, const struct cairn_repo_open_options *o);
void store_free(store *st);
/* "dir", "rados" or "s3". */
const char *store_kind(const store *st);
/* The size a pack of this storage grows to before it is committed. */
size_t store_pack_target(const store *st);

int store_put(store *st, const char *name, const void *data, size_t len, unsigned flags);
/* Whole object; CAIRN_ENOTFOUND if absent; *out malloc'd. max bounds the size. */
int store_get(store *st, const char *name, size_t max, uint8_t **out, size_t *len);
/* Whole object into b (b->len its size), reusing b's memory: for loops over
 * many large objects (fsck's packs), where fresh pages for each object cost
 * more than reading it (a page fault per 4 KiB). Size, then one ranged read. */
int store_get_into(store *st, const char *name, size_t max, struct buf *b);
/* Exactly len bytes at off (CAIRN_ECORRUPT if the object is shorter).
 * Thread-safe; keeps a small cache of open files. */
int store_get_range(store *st, const char *name, uint64_t off, void *out, size_t len);
/* A hint after a read: these bytes will not be read again soon. A directory
 * drops them from the page cache, so that the next read reuses the pages
 * instead of taking new ones from a full cache (restore's reads of packs,
 * docs/performance.md "Where the time goes"); other backends keep nothing
 * to drop. */
void store_uncache(store *st, const char *name, uint64_t off, size_t len);
/* Exactly len bytes at off, read once and left out of the local caches: a
 * directory reads whole 4 KiB blocks around them with O_DIRECT (no page
 * cache at all), else it is store_get_range then store_uncache. The bytes
 * are at b->data + *at (b's memory reused, its len untouched). */
int store_get_range_uncached(store *st, const char *name, uint64_t off, size_t len, struct buf *b,
                             size_t *at);
/* One store_get_range_uncached kept in flight beside the caller's work
 * (restore's large runs: the next one is read while this one is
 * decompressed and written). Zeroed before use. */
typedef struct store_ahead {
	store *st;
	struct buf *b;
	char name[96];
	uint64_t off;
	size_t len, at;
	int rc, running;
	char msg[1024]; /* the thread's error, handed to the caller's (error.c keeps as much) */
	pthread_t thread;
} store_ahead;
/* Start reading [off, off + len) of name into b in a thread of its own.
 * Only where reads go direct (get_range_direct): nothing else reads ahead
 * here (remote stores have readahead.c, cached reads the page cache's).
 * 1 when started; 0 when not (another read in flight, no direct reads, no
 * thread): the caller reads it itself when it needs it. */
int store_ahead_start(store_ahead *a, store *st, const char *name, uint64_t off, size_t len,
                      struct buf *b);
/* Wait for the read in flight. When it was name's [off, off + len): 1 and
 * *at (its bytes at b->data + *at, as store_get_range_uncached), or its
 * error (set again in this thread); else 0 (nothing in flight, or another
 * range, dropped). */
int store_ahead_finish(store_ahead *a, const char *name, uint64_t off, size_t len, size_t *at);
/* A hint before reads: [off, off + len) will be read soon; a directory
 * starts reading it into the page cache (POSIX_FADV_WILLNEED) and returns
 * without waiting. Backends without the op (an older ops table, RADOS, S3
 * for now) do nothing. Never fails: a backend's error is dropped. */
void store_advise(store *st, const char *name, uint64_t off, size_t len);
/* At most len bytes at off, *got how many: fewer only where the object
 * ends (on a backend without such reads, exactly len or an error). */
int store_get_upto(store *st, const char *name, uint64_t off, void *out, size_t len, size_t *got);
/* 1 when every read of this backend is a round trip (RADOS, S3): the
 * repository then puts read caches in front of it (readcache.h). */
int store_round_trips(const store *st);
/* 1 when it reads past every local cache (get_range_direct: O_DIRECT). */
int store_reads_direct(const store *st);
/* Size of an object; CAIRN_ENOTFOUND if absent. */
int store_size(store *st, const char *name, uint64_t *size);
/* Call cb for every object whose name starts with dir + "/" (recursively),
 * with the full name. Order is unspecified. A non-zero cb return stops. */
int store_list(store *st, const char *dir, int (*cb)(const char *name, void *payload),
               void *payload);
int store_delete(store *st, const char *name);

/* Writes that a dead process left unfinished and that take space though no
 * listing shows them (S3 multipart uploads): cb gets each one's object
 * name, the backend's id for it and when it began (ns since the epoch).
 * Backends that leave none (a directory's tmp/ files are listed as
 * objects; RADOS writes are whole ops) call cb never. */
typedef int (*store_unfinished_cb)(const char *name, const char *id, int64_t began_ns, void *payload);

int store_unfinished_list(store *st, store_unfinished_cb cb, void *payload);
/* Abort one of them: its parts go; a write still running then fails. */
int store_unfinished_abort(store *st, const char *name, const char *id);

/* A streamed put of one object, for objects built piece by piece (packs):
 * backends start writing before the end (writeback, multipart upload), and
 * nothing is visible until commit. commit and abort free the writer; abort
 * accepts NULL. flags as for store_put. */
typedef struct cairn_backend_writer store_writer;
int store_write_begin(store *st, const char *name, store_writer **out);
int store_write_append(store_writer *w, const void *data, size_t len);
int store_write_commit(store_writer *w, unsigned flags);
void store_write_abort(store_writer *w);

/* Locks: named, exclusive, with an expiry. A holder refreshes before its
 * ttl runs out; a lock past its expiry, or held by a process on this host
 * that no longer exists, is taken over. Waiting is bounded: CAIRN_EBUSY
 * (naming the holder) when the lock was not had within wait_ms. */
typedef struct cairn_backend_lock store_lock;
int store_lock_acquire(store_lock **out, store *st, const char *name, uint64_t ttl_ms,
                       uint64_t wait_ms);
/* Push the expiry ttl_ms into the future; CAIRN_EBUSY if the lock was lost. */
int store_lock_refresh(store_lock *l);
/* Release (accepts NULL); never removes a lock someone else took over. */
void store_lock_release(store_lock *l);

#endif
