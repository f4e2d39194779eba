/* Ceph RADOS backend of the storage interface (librados). An address
 * "POOL[/PREFIX]" names a pool and an object-name prefix, so that one pool
 * holds several repositories: object "packs/ab/ab12..." of prefix "r1" is
 * the RADOS object "r1/packs/ab/ab12...".
 *
 * - put is one write op (create-exclusive when STORE_EXCL, then write_full):
 *   RADOS applies an op to one object atomically, so readers see all of the
 *   object or none, and two hosts racing for a commit point get one winner.
 * - A streamed write is kept in memory and committed as one such op, so
 *   nothing of it is visible before commit (fsck and gc never meet half a
 *   pack); several takes' workers commit packs at once, each its own op.
 * - Only an object larger than one op allows (RADOS_OP_MAX; packs are
 *   about 4 MiB, RADOS_PACK_TARGET) is written in pieces, several in
 *   flight (aio), under its final name, since RADOS has no rename: the
 *   first piece is an exclusive create, abort removes what was written,
 *   and such an object is visible while it grows. Only pack names, fresh
 *   random ids that nothing references before the index segment naming
 *   them is committed, are ever that large; an orphan is an unindexed
 *   pack that gc reclaims.
 * - Locks are RADOS advisory exclusive locks (cls_lock) on "locks/NAME" with
 *   a duration, so a lock of a host that died expires; the holder's host and
 *   pid are kept in the lock object so a dead process on this host is
 *   broken at once and EBUSY names the holder.
 * - list walks the pool's object list (librados pages it) and keeps the
 *   names under PREFIX/DIR/.
 * The cluster's configuration file, the client id (default admin) and a
 * timeout in seconds come from the open options (cairn.h; the CLI maps
 * CEPH_CONF or --ceph-conf, CEPH_CLIENT_ID and CAIRN_RADOS_TIMEOUT to
 * them); the timeout bounds connecting and every operation, so that an
 * unreachable cluster or a stopped OSD fails a command instead of hanging. */
#include "internal.h"

static const store_ops rados_ops;

int store_rados_open(store **out, const char *address, int create, const cairn_repo_open_options *o)
{
	(void)create; /* pools are made by the cluster's admin, never by cairn */
	rados_store *st;
	*out = NULL;
	int rc = rados_connect_store(&st, address, o);
	if (rc < 0) return rc;
	st->base.ops = &rados_ops;
	*out = &st->base;
	return 0;
}

static const store_ops rados_ops = {
	.version = CAIRN_BACKEND_OPS_VERSION,
	.kind = "rados",
	.pack_target = RADOS_PACK_TARGET,
	.free = rados_free_store,
	.put = rados_put,
	.get = rados_get,
	.get_range = rados_get_range,
	.get_upto = rados_get_upto,
	.size = rados_size,
	.list = rados_list,
	.del = rados_del,
	.write_begin = rados_write_begin,
	.write_append = rados_write_append,
	.write_commit = rados_write_commit,
	.write_abort = rados_write_abort,
	.lock_acquire = rados_lock_acquire,
	.lock_refresh = rados_lock_refresh,
	.lock_release = rados_lock_release,
};
