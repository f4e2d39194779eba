/* The backends' side of the storage interface (store.h). A backend embeds
 * store, store_writer and store_lock as the first member of its own
 * structs and fills a store_ops table; store.c dispatches to it. */
#ifndef CAIRN_STORE_BACKEND_H
#define CAIRN_STORE_BACKEND_H

#include "store.h"

typedef struct store_ops {
	const char *kind;
	/* Bytes a pack grows to before it is committed; 0: PACK_TARGET_LEN. */
	size_t pack_target;
	void (*free)(store *st);
	int (*put)(store *st, const char *name, const void *data, size_t len, unsigned flags);
	int (*get)(store *st, const char *name, size_t max, uint8_t **out, size_t *len);
	int (*get_range)(store *st, const char *name, uint64_t off, void *out, size_t len);
	/* May be NULL. At most len bytes at off, *got how many (fewer only
	 * where the object ends); CAIRN_ECORRUPT naming it when it is missing.
	 * A backend with it gets the read caches (readcache.h): for a store
	 * where every read is a round trip. */
	int (*get_upto)(store *st, const char *name, uint64_t off, void *out, size_t len, size_t *got);
	/* May be NULL: store_uncache's hint. */
	void (*uncache)(store *st, const char *name, uint64_t off, size_t len);
	/* May be NULL: store_get_range_uncached past the local caches; 1 when
	 * they cannot be bypassed there (the caller then reads and uncaches). */
	int (*get_range_direct)(store *st, const char *name, uint64_t off, size_t len, struct buf *b,
	                        size_t *at);
	int (*size)(store *st, const char *name, uint64_t *size);
	int (*list)(store *st, const char *dir, int (*cb)(const char *name, void *payload),
	            void *payload);
	int (*del)(store *st, const char *name);
	/* Streamed writes; a backend may leave these NULL: store.c then buffers
	 * the object in memory and puts it whole at commit. */
	int (*write_begin)(store *st, const char *name, store_writer **out);
	int (*write_append)(store_writer *w, const void *data, size_t len);
	int (*write_commit)(store_writer *w, unsigned flags);
	void (*write_abort)(store_writer *w);
	int (*lock_acquire)(store_lock **out, store *st, const char *name, uint64_t ttl_ms,
	                    uint64_t wait_ms);
	int (*lock_refresh)(store_lock *l);
	void (*lock_release)(store_lock *l);
	/* May be NULL: nothing unfinished is ever left (store.h). */
	int (*unfinished_list)(store *st, store_unfinished_cb cb, void *payload);
	int (*unfinished_abort)(store *st, const char *name, const char *id);
} store_ops;

struct store {
	const store_ops *ops;
	struct block_cache *blocks;   /* store.c's read caches, when ops->get_upto */
	struct whole_cache *segments;
};

struct store_writer {
	store *st;
};

struct store_lock {
	store *st;
};

/* path is a directory; create makes it and the repository's folders. */
int store_dir_open(store **out, const char *path, int create);
/* address is "POOL[/PREFIX]" (after "rados:"); the pool must exist. */
int store_rados_open(store **out, const char *address, int create);
/* address is "BUCKET[/PREFIX]" (after "s3://"); the bucket must exist.
 * Endpoint, region and keys come from the environment (store_s3.c). */
int store_s3_open(store **out, const char *address, int create);

#endif
