/* The backends' side of the storage interface (store.h). A backend embeds
 * store, store_writer and store_lock as the first member of its own
 * structs and fills a store_ops table; store.c dispatches to it. Wrapping
 * backends (readcache.h, store_fault.h) hold another backend and are
 * backends themselves. */
#ifndef CAIRN_STORE_BACKEND_H
#define CAIRN_STORE_BACKEND_H

#include "cairn/sys/backend.h"
#include "store.h"

/* The operations are the public backend interface's (include/cairn/sys/
 * backend.h), so that a caller's own backend and ours are one kind. */
typedef cairn_backend_ops store_ops;

/* path is a directory; create makes it and the repository's folders. */
int store_dir_open(store **out, const char *path, int create);
/* address is "POOL[/PREFIX]" (after "rados:"); the pool must exist.
 * o->rados: the client, the cluster's configuration, the timeouts. */
int store_rados_open(store **out, const char *address, int create, const cairn_repo_open_options *o);
/* address is "BUCKET[/PREFIX]" (after "s3://"); the bucket must exist.
 * o->s3: endpoint, region, keys and the request policy. */
int store_s3_open(store **out, const char *address, int create, const cairn_repo_open_options *o);

#endif
