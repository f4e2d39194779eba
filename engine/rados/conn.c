/* RADOS (internal.h): librados loaded on first use, the cluster connected
 * and the pool opened; object names and errors. */
#include "internal.h"

struct rados_lib rados_lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static char lib_error[256];

static void lib_load(void)
{
	void *h = dlopen("librados.so.2", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(lib_error, sizeof(lib_error), "%s", dlerror());
		return;
	}
#define X(f)                                                                                   \
	if (!(*(void **)&rados_lib.f = dlsym(h, #f))) {                                                 \
		snprintf(lib_error, sizeof(lib_error), "librados.so.2 has no %s", #f);              \
		rados_lib.rados_create = NULL;                                                           \
		return;                                                                            \
	}
	LIBRADOS_FUNCTIONS(X)
#undef X
}

/* The RADOS object id of name; *oid is malloc'd. */
int rados_oid_of(rados_store *st, const char *name, char **oid)
{
	if (asprintf(oid, "%s%s", st->prefix, name) < 0) {
		*oid = NULL;
		return ERR_OOM();
	}
	return 0;
}

/* A librados error (negative errno) as a CAIRN_E* code with a message
 * naming the backend and the object. */
int rados_fail(rados_store *st, int err, const char *name, const char *op)
{
	int e = err < 0 ? -err : err;
	const char *hint = "";
	int code = CAIRN_EIO;
	switch (e) {
	case ENOENT: code = CAIRN_ENOTFOUND; break;
	case EEXIST: code = CAIRN_EEXISTS; break;
	case ENOMEM: code = CAIRN_ENOMEM; break;
	case EBUSY: code = CAIRN_EBUSY; break;
	case ETIMEDOUT: hint = " (cluster or OSD unreachable? CAIRN_RADOS_TIMEOUT bounds the wait)"; break;
	case ENOSPC:
	case EDQUOT: hint = " (cluster or pool out of space)"; break;
	case EACCES:
	case EPERM: hint = " (the client's caps do not allow it)"; break;
	default: break;
	}
	return error_set(code, "%s: %s: %s: %s%s", st->addr, name, op, strerror(e), hint);
}

void rados_free_store(store *base)
{
	rados_store *st = (rados_store *)base;
	if (st->io) rados_lib.rados_ioctx_destroy(st->io);
	if (st->cluster) rados_lib.rados_shutdown(st->cluster);
	free(st->addr);
	free(st->prefix);
	free(st);
}

/* Set a timeout option unless the configuration file set it already
 * (librados' defaults: 0 = wait forever, or 300 s to connect). */
static void set_timeout(rados_t c, const char *opt, const char *dflt, const char *env)
{
	char cur[64] = "";
	if (env && *env) {
		rados_lib.rados_conf_set(c, opt, env);
		return;
	}
	if (rados_lib.rados_conf_get(c, opt, cur, sizeof(cur)) == 0 && (atof(cur) == 0 || atof(cur) == 300))
		rados_lib.rados_conf_set(c, opt, dflt);
}

/* Connect to the cluster and open the pool of address ("POOL[/PREFIX]"). */
int rados_connect_store(rados_store **out, const char *address, const cairn_repo_open_options *o)
{
	*out = NULL;
	int rc = 0;
	const char *slash = strchr(address, '/');
	size_t pool_len = slash ? (size_t)(slash - address) : strlen(address);
	if (pool_len == 0)
		return error_set(CAIRN_EUSAGE, "repository rados:%s: no pool (rados:POOL[/PREFIX])", address);
	rados_store *st = calloc(1, sizeof(*st));
	if (!st) return ERR_OOM();
	char *pool = strndup(address, pool_len);
	/* the prefix without leading or trailing slashes, then one '/' */
	const char *p = slash ? slash : "";
	while (*p == '/') p++;
	size_t plen = strlen(p);
	while (plen > 0 && p[plen - 1] == '/') plen--;
	if (plen == 0) st->prefix = strdup("");
	else if (asprintf(&st->prefix, "%.*s/", (int)plen, p) < 0) st->prefix = NULL;
	if (asprintf(&st->addr, "rados:%s", address) < 0) st->addr = NULL;
	if (!pool || !st->prefix || !st->addr) {
		rc = ERR_OOM();
		goto done;
	}
	st->prefix_len = strlen(st->prefix);

	pthread_once(&lib_once, lib_load);
	if (!rados_lib.rados_create) {
		rc = error_set(CAIRN_EIO, "%s: librados cannot be loaded (apt-get install librados2): %s", st->addr,
		               lib_error);
		goto done;
	}
	int err = rados_lib.rados_create(&st->cluster, o->rados.client_id);
	if (err < 0) {
		st->cluster = NULL;
		rc = error_set(CAIRN_EIO, "%s: rados_create: %s", st->addr, strerror(-err));
		goto done;
	}
	const char *conf = o->rados.conf;
	if ((err = rados_lib.rados_conf_read_file(st->cluster, conf && *conf ? conf : NULL)) < 0) {
		rc = error_set(CAIRN_EIO, "%s: ceph configuration %s: %s (give the configuration: CEPH_CONF or --ceph-conf)",
		               st->addr, conf && *conf ? conf : "(default search path)", strerror(-err));
		goto done;
	}
	const char *t = o->rados.timeout_s;
	set_timeout(st->cluster, "client_mount_timeout", "30", t);
	set_timeout(st->cluster, "rados_mon_op_timeout", DEFAULT_TIMEOUT, t);
	set_timeout(st->cluster, "rados_osd_op_timeout", DEFAULT_TIMEOUT, t);
	if ((err = rados_lib.rados_connect(st->cluster)) < 0) {
		const char *why = -err == EACCES || -err == EPERM ? " (authentication refused: check the keyring)"
		                  : -err == ETIMEDOUT          ? " (no monitor answered: cluster unreachable?)"
		                                               : "";
		rc = error_set(CAIRN_EIO, "%s: connecting to the cluster: %s%s", st->addr, strerror(-err), why);
		goto done;
	}
	if ((err = rados_lib.rados_ioctx_create(st->cluster, pool, &st->io)) < 0) {
		st->io = NULL;
		if (err == -ENOENT) rc = error_set(CAIRN_ENOTFOUND, "%s: no pool %s in the cluster", st->addr, pool);
		else rc = error_set(CAIRN_EIO, "%s: opening pool %s: %s", st->addr, pool, strerror(-err));
		goto done;
	}
done:
	free(pool);
	if (rc < 0) {
		rados_free_store(&st->base);
		return rc;
	}
	*out = st;
	return 0;
}

