/* The RADOS backend (engine/rados/), internal: librados' functions, the
 * store, and what each file owns (the backend's behaviour is described in
 * store.c):
 *   store.c    store_rados_open and the ops table
 *   locks.c    locks: cls_lock advisory locks with the holder's host and pid
 *   objects.c  objects: puts, reads, listings, deletes; streamed writes
 *   conn.c     librados loaded, the cluster connected and the pool opened, names and errors
 * A file uses only those listed below it (no cycles, engine/LAYERS). */
#ifndef CAIRN_RADOS_INTERNAL_H
#define CAIRN_RADOS_INTERNAL_H

#define ERROR_CLASS "store_rados" /* one error class for the backend's files */

#include "store_backend.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <rados/librados.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cairn.h"
#include "error.h"

/* librados is opened with dlopen when the first rados: repository is, not
 * linked: it drags in libceph-common (130 MiB of static data, 40 more
 * libraries), which every other command would pay for at start and exit.
 * The prototypes still come from librados.h, so calls are type-checked. */
#define LIBRADOS_FUNCTIONS(X) \
	X(rados_create) \
	X(rados_conf_read_file) \
	X(rados_conf_parse_env) \
	X(rados_conf_set) \
	X(rados_conf_get) \
	X(rados_connect) \
	X(rados_shutdown) \
	X(rados_ioctx_create) \
	X(rados_ioctx_destroy) \
	X(rados_create_write_op) \
	X(rados_release_write_op) \
	X(rados_write_op_create) \
	X(rados_write_op_write_full) \
	X(rados_write_op_write) \
	X(rados_write_op_operate) \
	X(rados_write_full) \
	X(rados_read) \
	X(rados_stat) \
	X(rados_remove) \
	X(rados_nobjects_list_open) \
	X(rados_nobjects_list_next) \
	X(rados_nobjects_list_close) \
	X(rados_lock_exclusive) \
	X(rados_unlock) \
	X(rados_list_lockers) \
	X(rados_break_lock) \
	X(rados_aio_create_completion) \
	X(rados_aio_write) \
	X(rados_aio_wait_for_complete) \
	X(rados_aio_get_return_value) \
	X(rados_aio_release)

struct rados_lib {
#define X(f) __typeof__(f) *f;
	LIBRADOS_FUNCTIONS(X)
#undef X
};
extern struct rados_lib rados_lib; /* conn.c; filled when the first store connects */

#define RADOS_OP_MAX (64u * 1024u * 1024u)   /* below osd_max_write_size (90 MiB) */
/* Packs of 4 MiB, not a directory's 32: RADOS is made for objects of a few
 * MiB (RGW, RBD and CephFS stripe at 4 MiB). Measured on one bluestore OSD
 * (351 MiB take, 209 MiB stored): the OSD spent 3.1 CPU s on 32 MiB
 * objects, 0.8 s on 16 MiB ones, 0.4 s on 8 or 4 MiB ones; the take went
 * from 3.9-4.4 s to 1.5-1.9 s. */
#define RADOS_PACK_TARGET (4u * 1024u * 1024u)
#define RADOS_READ_PIECE (32u * 1024u * 1024u)
#define PIECE_LEN (4u * 1024u * 1024u)        /* streamed writes: bytes per aio */
#define PIECES_IN_FLIGHT 4
#define DEFAULT_TIMEOUT "60"
#define LOCK_NAME "cairn"

typedef struct rados_store {
	store base;
	rados_t cluster;
	rados_ioctx_t io;
	char *addr;   /* "rados:POOL[/PREFIX]", for messages */
	char *prefix; /* "PREFIX/" or "" */
	size_t prefix_len;
} rados_store;

/* conn.c */
/* Connect to the cluster and open the pool of address ("POOL[/PREFIX]"). */
int rados_connect_store(rados_store **out, const char *address, const cairn_repo_open_options *o);
void rados_free_store(store *base);
/* The RADOS object id of name; *oid is malloc'd. */
int rados_oid_of(rados_store *st, const char *name, char **oid);
/* A librados error (negative errno) as a CAIRN_E* code naming the object. */
int rados_fail(rados_store *st, int err, const char *name, const char *op);

/* objects.c */
int rados_put(store *base, const char *name, const void *data, size_t len, unsigned flags);
int rados_get(store *base, const char *name, size_t max, uint8_t **out, size_t *len);
int rados_get_upto(store *base, const char *name, uint64_t off, void *out, size_t len, size_t *got);
int rados_get_range(store *base, const char *name, uint64_t off, void *out, size_t len);
int rados_size(store *base, const char *name, uint64_t *size);
int rados_list(store *base, const char *dir, int (*cb)(const char *name, void *payload), void *payload);
int rados_del(store *base, const char *name);
int rados_write_begin(store *base, const char *name, store_writer **out);
int rados_write_append(store_writer *base, const void *data, size_t len);
int rados_write_commit(store_writer *base, unsigned flags);
void rados_write_abort(store_writer *base);

/* locks.c */
int rados_lock_acquire(store_lock **out, store *base, const char *name, uint64_t ttl_ms, uint64_t wait_ms);
int rados_lock_refresh(store_lock *base);
void rados_lock_release(store_lock *base);

#endif
