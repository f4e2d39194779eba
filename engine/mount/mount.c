/* The public side of cairn mount: start (inode table, cache, session,
 * hydration), wait, unmount; the access trace kept in the repository; and
 * cairn_umount, which finds a mount's server through mountinfo. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "format.h"
#include "options.h"
#include "mount/codec.h"
#include "mount/mount.h"

#define DEFAULT_THREADS 8
#define DEFAULT_FETCHERS 4
#define REMOTE_FETCHERS 16
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_READAHEAD 8
#define TRACE_MAX (16u << 20)
#define TRACE_GENERATIONS 8 /* a child without a trace of its own uses its parent's, and so on */

struct cairn_mount {
	cairn_repo *r;
	char id[65];
	cairn_mount_options o;
	node_table nodes;
	mcache *c;
	msession *s;
	char mountpoint[PATH_MAX];
};

/* ---- the access trace (format.h) ------------------------------------------ */

static void trace_name(char out[80], const char *snap_hex) { snprintf(out, 80, "traces/%s", snap_hex); }

typedef struct trace_walk {
	cairn_mount *m;
	uint32_t *v;
	size_t *n;
} trace_walk;

/* A trace's path as a node id, a component at a time; none when it is gone. */
static void trace_walk_path(void *arg, const char *path, size_t len)
{
	trace_walk *w = arg;
	uint32_t node = NODE_ROOT;
	size_t p = 0;
	while (node && p < len) {
		size_t q = p;
		while (q < len && path[q] != '/') q++;
		node = nodes_lookup(&w->m->nodes, node, path + p, q - p);
		p = q + 1;
	}
	if (node) w->v[(*w->n)++] = node;
}

/* The trace's files as node ids; *n = 0 when there is none. */
static int trace_load(cairn_mount *m, uint32_t **out, size_t *n)
{
	char hex[65], name[80];
	snprintf(hex, sizeof(hex), "%s", m->id);
	*out = NULL;
	*n = 0;
	for (int gen = 0; gen < TRACE_GENERATIONS; gen++) {
		uint8_t *data = NULL;
		size_t len;
		trace_name(name, hex);
		int rc = store_get(m->r->st, name, TRACE_MAX, &data, &len);
		if (rc == 0) {
			/* advisory: a bad trace is no trace */
			oid snap;
			uint32_t np;
			if (trace_decode(data, len, name, &snap, &np, NULL, NULL) == 0 &&
			    (*out = malloc(((size_t)np + 1) * sizeof(uint32_t)))) {
				trace_walk w = {m, *out, n};
				trace_decode(data, len, name, &snap, &np, trace_walk_path, &w);
			}
			error_clear();
			free(data);
			return 0;
		}
		if (rc != CAIRN_ENOTFOUND) {
			error_clear();
			return 0;
		}
		/* none: the parent's, when the snapshot has one */
		snapshot_manifest sm;
		if (repo_load_snapshot(m->r, hex, &sm) < 0) {
			error_clear();
			return 0;
		}
		int has_parent = !oid_is_zero(&sm.parent);
		if (has_parent) oid_hex(hex, &sm.parent);
		snapshot_manifest_free(&sm);
		if (!has_parent) return 0;
	}
	return 0;
}

static void trace_store(cairn_mount *m)
{
	uint32_t *ids = NULL;
	size_t n = mcache_trace(m->c, &ids), len, made = 0;
	char name[80], path[4096];
	char **paths = NULL;
	uint8_t *b = NULL;
	oid snap;
	if (n == 0 || !(paths = calloc(n, sizeof(*paths)))) goto done;
	for (; made < n; made++) {
		nodes_path(&m->nodes, ids[made], path, sizeof(path));
		if (!(paths[made] = strdup(path + 1))) goto done; /* relative to the root */
	}
	hex_decode(snap.b, OID_LEN, m->id);
	if (trace_encode(&snap, (const char *const *)paths, n, &b, &len) < 0) {
		error_clear();
		goto done;
	}
	trace_name(name, m->id);
	/* the first mount's trace is the startup order; later ones keep it */
	int rc = store_put(m->r->st, name, b, len, STORE_EXCL);
	if (rc < 0 && rc != CAIRN_EEXISTS)
		mount_log(m->o.event_cb, m->o.event_payload, "mount: access trace: %s", cairn_error_last());
	error_clear();
done:
	for (size_t i = 0; i < made; i++) free(paths[i]);
	free(paths);
	free(b);
	free(ids);
}

/* ---- the mount ---------------------------------------------------------- */

CAIRN_EXTERN int cairn_mount_start(cairn_mount **out, cairn_repo *repo, const char *snap_id,
                                   const char *mountpoint, const cairn_mount_options *opts)
{
	int rc;
	char source[64];
	cairn_mount *m = NULL;
	uint32_t *order = NULL;
	size_t norder = 0;
	*out = NULL;
	static const size_t option_sizes[] = {sizeof(cairn_mount_options)};
	cairn_mount_options o = CAIRN_MOUNT_OPTIONS_INIT;
	if (!opts) return error_set(CAIRN_EUSAGE, "mount: missing options");
	if ((rc = options_copy(&o, opts, option_sizes, CAIRN_MOUNT_OPTIONS_VERSION, "mount")) < 0) return rc;
	opts = &o;
	if (!opts->cache_dir || !*opts->cache_dir) return error_set(CAIRN_EUSAGE, "mount: no cache directory given");
	if (!snap_id || strlen(snap_id) != OID_HEX_LEN) return error_set(CAIRN_EUSAGE, "mount: no snapshot id given");
	if (!mountpoint || !*mountpoint || strlen(mountpoint) >= PATH_MAX)
		return error_set(CAIRN_EUSAGE, "mount: bad mount point");
	if (!(m = calloc(1, sizeof(*m)))) return ERR_OOM();
	m->r = repo;
	m->o = *opts;
	snprintf(m->id, sizeof(m->id), "%s", snap_id);
	snprintf(m->mountpoint, sizeof(m->mountpoint), "%s", mountpoint);
	if (!m->o.threads) m->o.threads = DEFAULT_THREADS;
	if (!m->o.fetchers)
		m->o.fetchers = strcmp(store_kind(repo->st), "dir") ? REMOTE_FETCHERS : DEFAULT_FETCHERS;
	if (!m->o.fetch_timeout_ms) m->o.fetch_timeout_ms = DEFAULT_TIMEOUT_MS;
	if (!m->o.readahead) m->o.readahead = DEFAULT_READAHEAD;

	/* a descriptor per file being fetched or open in the page-cache mode */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	/* gc keeps what a live session may read: hold one while mounted */
	repo_session(repo);
	if ((rc = nodes_load(&m->nodes, repo, snap_id)) < 0) goto fail;
	mcache_options co = {m->o.cache_dir, m->o.fetchers, m->o.fetch_timeout_ms, m->o.readahead,
	                     m->o.event_cb, m->o.event_payload};
	if ((rc = mcache_new(&m->c, repo, &m->nodes, &co)) < 0) goto fail;
	snprintf(source, sizeof(source), "cairn:%.12s:%ld", snap_id, (long)getpid());
	msession_options so = {mountpoint, source, m->o.threads, m->o.no_passthrough, m->o.event_cb,
	                       m->o.event_payload};
	if ((rc = msession_start(&m->s, &m->nodes, m->c, &so)) < 0) goto fail;
	if (m->o.hydrate != CAIRN_HYDRATE_NONE) {
		trace_load(m, &order, &norder);
		rc = mcache_hydrate(m->c, order, norder, m->o.hydrate == CAIRN_HYDRATE_ALL,
		                    m->o.event_cb, m->o.event_payload);
		free(order);
		if (rc < 0) goto fail;
	}
	*out = m;
	return 0;
fail:
	cairn_mount_free(m);
	return rc;
}

CAIRN_EXTERN int cairn_mount_wait(cairn_mount *m)
{
	msession_wait(m->s);
	if (!m->o.no_trace) trace_store(m);
	return 0;
}

CAIRN_EXTERN void cairn_mount_unmount(cairn_mount *m)
{
	if (m) umount2(m->mountpoint, MNT_DETACH);
}

CAIRN_EXTERN void cairn_mount_free(cairn_mount *m)
{
	if (!m) return;
	mcache_stop(m->c);
	msession_free(m->s);
	if (mcache_free(m->c)) return; /* a stalled fetch still reads the nodes */
	nodes_free(&m->nodes);
	free(m);
}

/* ---- cairn umount ---------------------------------------------------------- */

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *d = s;
	while (*s) {
		if (s[0] == '\\' && isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2]) &&
		    isdigit((unsigned char)s[3])) {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = 0;
}

/* The cairn mount at path: its server's pid and its device's minor. */
static int find_mount(const char *path, long *pid, unsigned *minor)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	int found = 0;
	if (!f) return error_errno(CAIRN_EIO, errno, "/proc/self/mountinfo");
	while (fgets(line, sizeof(line), f)) {
		char mp[4096], fstype[64], source[512];
		unsigned ma, mi;
		char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*u %*u %u:%u %*s %4095s", &ma, &mi, mp) != 3 ||
		    sscanf(dash + 3, "%63s %511s", fstype, source) != 2)
			continue;
		unescape(mp);
		if (strcmp(mp, path) != 0 || strcmp(fstype, "fuse.cairn") != 0) continue;
		const char *p = strrchr(source, ':');
		*pid = p ? strtol(p + 1, NULL, 10) : 0;
		*minor = mi;
		found = 1; /* the last one listed is the one on top */
	}
	fclose(f);
	return found ? 0 : error_set(CAIRN_ENOTFOUND, "%s: not a cairn mount", path);
}

static int alive(long pid)
{
	char p[64], st[512];
	if (pid <= 0 || kill((pid_t)pid, 0) < 0) return 0;
	snprintf(p, sizeof(p), "/proc/%ld/stat", pid);
	FILE *f = fopen(p, "re");
	if (!f) return 0;
	size_t n = fread(st, 1, sizeof(st) - 1, f);
	fclose(f);
	st[n] = 0;
	const char *close_paren = strrchr(st, ')');
	return !(close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z'); /* a zombie has ended */
}

CAIRN_EXTERN int cairn_umount(const char *mountpoint, uint64_t wait_ms)
{
	char path[PATH_MAX];
	long pid = 0;
	unsigned minor = 0;
	int rc;
	if (!realpath(mountpoint, path)) {
		/* a dead server's mount point cannot be resolved through: take it as given */
		if (errno != ENOTCONN) return error_errno(CAIRN_ENOTFOUND, errno, "%s", mountpoint);
		snprintf(path, sizeof(path), "%s", mountpoint);
	}
	if ((rc = find_mount(path, &pid, &minor)) < 0) return rc;
	if (umount2(path, 0) < 0) {
		if (errno != EBUSY) return error_errno(CAIRN_EIO, errno, "umount %s", path);
		/* in use: detach it, and end the connection so that nothing waits on it */
		if (umount2(path, MNT_DETACH) < 0) return error_errno(CAIRN_EIO, errno, "umount %s", path);
		char abort_path[96];
		snprintf(abort_path, sizeof(abort_path), "/sys/fs/fuse/connections/%u/abort", minor);
		FILE *f = fopen(abort_path, "we");
		if (f) {
			fputs("1", f);
			fclose(f);
		}
	}
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (alive(pid)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		uint64_t ms = (uint64_t)(now.tv_sec - t0.tv_sec) * 1000 +
		              (uint64_t)((now.tv_nsec - t0.tv_nsec) / 1000000);
		if (ms >= wait_ms) {
			kill((pid_t)pid, SIGKILL);
			break;
		}
		usleep(10000);
	}
	return 0;
}
