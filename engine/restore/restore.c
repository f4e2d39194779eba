/* Restore (internal.h): cairn_restore: the target opened, the passes run,
 * hardlinks (pass 3) and directory metadata (pass 4). */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cairn.h"
#include "error.h"
#include "options.h"
#include "damaged.h"
#include "io.h"
#include "restored.h"
#include "util.h"

static int link_members(rstate *st)
{
	dcursor from = {0}, to = {0};
	int rc = 0, ofd, nfd;
	for (size_t i = 0; i < st->nlinks && rc == 0; i++) {
		const hl_link *l = &st->links[i];
		const hl_first *first = hl_find(st, l->group);
		if ((rc = cursor_open(st, &from, first->dir, &ofd)) < 0) break;
		if ((rc = cursor_open(st, &to, l->dir, &nfd)) < 0) break;
		if (linkat(ofd, first->name, nfd, l->name, 0) < 0) {
			rc = restore_sys_fail(st, 0, l->dir, l->name, "link");
			break;
		}
		st->hardlinks++;
		if (l->type == TREE_REG)
			atomic_fetch_add(&st->files, 1);
		else if (l->type == TREE_SYMLINK)
			st->symlinks++;
		else
			st->specials++;
		restore_progress(st);
	}
	cursor_free(&from);
	cursor_free(&to);
	return rc;
}

/* Deepest first: a directory's index is always above its parent's (preorder),
 * so descending order finishes every directory after all it contains. */
static int dir_metadata(rstate *st)
{
	dcursor c = {0};
	int rc = 0, pfd;
	for (size_t k = st->ndirs; k-- > 0 && rc == 0;) {
		const rdir *d = &st->dirs[k];
		int fd;
		if (k == 0) {
			fd = fcntl(st->rootfd, F_DUPFD_CLOEXEC, 3);
		} else {
			if ((rc = cursor_open(st, &c, d->parent, &pfd)) < 0) break;
			fd = openat(pfd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0) {
			rc = restore_sys_fail(st, 0, (uint32_t)k, NULL, "open");
			break;
		}
		rc = restore_meta_fd(st, fd, d->mode, d->uid, d->gid, d->mtime_sec, d->mtime_nsec, d->nxattrs,
		             d->xattrs);
		close(fd);
		if (rc < 0) rc = restore_fail_at(st, 0, (uint32_t)k, NULL, rc);
		restore_progress(st);
	}
	cursor_free(&c);
	return rc;
}

/* The restore record, so that the first take of the target reads only what
 * changed since; that take reads every file without it: a notice, no failure. */
static void keep_record(rstate *st, const char *snap_id, const char *target)
{
	oid snap;
	if (hex_decode(snap.b, OID_LEN, snap_id) < 0 || restored_put(st->repo->settings.state_dir, st->rootfd, &snap, &st->items) == 0) return;
	if (st->opts->event_cb || st->opts->event_cancel_cb) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "restore record not kept (%s): the first take of %s reads every file",
		         cairn_error_last(), target);
		cairn_event ev = {.type = CAIRN_EVENT_NOTICE, .message = msg};
		event_emit(st->opts->event_cb, st->opts->event_cancel_cb, st->opts->event_payload, &ev); /* done: too late to cancel */
	}
	error_clear();
}

/* Open target (creating it if absent). *empty = 1 when it has no entries. */
static int open_target(const char *target, int *fd_out, int *empty)
{
	int fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*empty = 0;
	if (fd < 0 && errno == ENOENT) {
		/* private until its own mode is applied at the end */
		if (io_mkdir_parents(target, 0700) < 0)
			return error_errno(CAIRN_EIO, errno, "target %s: mkdir", target);
		fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0) {
		if (errno == ENOTDIR)
			return error_set(CAIRN_EUSAGE, "target %s exists and is not a directory", target);
		return error_errno(CAIRN_EIO, errno, "target %s: open", target);
	}
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	DIR *dp = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!dp) {
		int err = errno;
		if (dfd >= 0) close(dfd);
		close(fd);
		return error_errno(CAIRN_EIO, err, "target %s: read", target);
	}
	*empty = 1;
	struct dirent *de;
	while ((de = readdir(dp)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			*empty = 0;
			break;
		}
	closedir(dp);
	*fd_out = fd;
	return 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static size_t dir_budget(int threads)
{
	struct rlimit rl;
	size_t limit = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) limit = rl.rlim_cur;
	else if (rl.rlim_cur == RLIM_INFINITY) limit = 1u << 20;
	/* half for directories; the rest for workers, the store and the caller */
	size_t reserve = 64 + 2 * (size_t)threads;
	size_t n = limit > 2 * reserve ? (limit - reserve) / 2 : 16;
	n = n > 4096 ? 4096 : n < 16 ? 16 : n;
	/* the walk's chain and the directories queued ahead of the workers */
	size_t ahead = WALK_FDS + DIRS_AHEAD_PER_WORKER * (size_t)threads;
	return n < ahead ? n : ahead;
}

static void stop_flusher(rstate *st, pthread_t *flusher, int *flushing)
{
	if (!*flushing) return;
	pthread_mutex_lock(&st->mu);
	st->flush_end = 1;
	pthread_cond_signal(&st->cv_flush);
	pthread_mutex_unlock(&st->mu);
	pthread_join(*flusher, NULL);
	*flushing = 0;
}

static int restore_run(cairn_restore_result *out, cairn_repo *repo, const char *snap_id, const char *target,
                       const cairn_restore_options *opts)
{
	snapshot_manifest m;
	tree top;
	rstate st;
	pthread_t *tids = NULL, flusher;
	int nthreads = 0, started = 0, flushing = 0, rc, empty;
	int64_t t0 = mono_ns();
	pthread_condattr_t ca;

	repo_session(repo); /* a restore may outlast gc's grace period */
	memset(&m, 0, sizeof(m));
	memset(&top, 0, sizeof(top));
	memset(&st, 0, sizeof(st));
	st.rootfd = -1;
	if (out) memset(out, 0, sizeof(*out));
	if (opts->threads < 0) return error_set(CAIRN_EUSAGE, "restore: threads must be >= 0");
	if (!target || !*target) return error_set(CAIRN_EUSAGE, "restore: no target given");
	if (!snap_id) return error_set(CAIRN_EUSAGE, "restore: no snapshot given");

	if ((rc = damaged_check(repo, snap_id)) < 0) return rc; /* fsck --repair marked it */
	if ((rc = repo_load_snapshot(repo, snap_id, &m)) < 0) return rc;
	if ((rc = load_top(repo, &m, snap_id, &top)) < 0) goto done_early;
	const tree_entry *root = &top.entries[0];

	nthreads = opts->threads;
	if (nthreads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		nthreads = n > 0 ? (int)n : 1;
		/* a worker waits: for reads from a remote store, for its pack
		 * reads and O_DIRECT writes from a directory; more workers
		 * than cores keep the cores busy */
		nthreads *= strcmp(store_kind(repo->st), "dir") != 0 ? REMOTE_WORKERS_PER_CPU : LOCAL_WORKERS_PER_CPU;
	}
	if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;

	raise_nofile();
	if ((rc = open_target(target, &st.rootfd, &empty)) < 0) goto done_early;
	if (!empty && !opts->force) {
		rc = error_set(CAIRN_EUSAGE, "target %s is not empty; use --force", target);
		goto done_early;
	}
	repo_index_cache(repo, INDEX_CACHE_BYTES);
	/* every directory's tree in a few large reads, not one round trip each */
	repo_prefetch_trees(repo, &root->subtree, REPO_TREES_AHEAD, NULL, NULL);

	st.repo = repo;
	st.opts = opts;
	st.lenient = geteuid() != 0;
	st.euid = geteuid();
	st.egid = getegid();
	st.max_dirs = dir_budget(nthreads);
	st.max_large = nthreads > 1 ? nthreads / 2 : 1;
	st.total_files = m.files;
	st.total_bytes = m.bytes;
	st.last_progress = mono_ns();
	restore_write_init(&st.wmode, 1);
	atomic_init(&st.stop, 0);
	atomic_init(&st.files, 0);
	atomic_init(&st.bytes, 0);
	pthread_mutex_init(&st.mu, NULL);
	pthread_mutex_init(&st.dirs_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st.cv_work, &ca);
	pthread_cond_init(&st.cv_space, &ca);
	pthread_cond_init(&st.cv_flush, &ca);
	pthread_condattr_destroy(&ca);

	/* dirs[0] is the target itself */
	st.dirs = calloc(256, sizeof(rdir));
	st.q = malloc(QUEUE_CAP * sizeof(fjob));
	tids = calloc((size_t)nthreads, sizeof(*tids));
	if (!st.dirs || !st.q || !tids || !(st.dirs[0].name = strdup(""))) {
		rc = ERR_OOM();
		goto done;
	}
	st.dirs_cap = 256;
	if (m.files + m.dirs < (1u << 26)) { /* a hint: the walk grows it past a manifest's counts */
		st.items.cap = (size_t)(m.files + m.dirs);
		if (st.items.cap && !(st.items.v = malloc(st.items.cap * sizeof(*st.items.v)))) {
			rc = ERR_OOM();
			goto done;
		}
	}
	st.ndirs = 1;
	/* the target takes the captured directory's own metadata, last of all */
	st.dirs[0].mode = root->mode;
	st.dirs[0].uid = root->uid;
	st.dirs[0].gid = root->gid;
	st.dirs[0].mtime_sec = root->mtime_sec;
	st.dirs[0].mtime_nsec = root->mtime_nsec;
	st.dirs[0].nxattrs = root->nxattrs;
	if ((rc = restore_copy_xattrs(root, &st.dirs[0].xattrs)) < 0) goto done;

	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&tids[i], NULL, restore_worker, &st) != 0) break;
		started++;
	}
	if (started == 0) {
		rc = error_set(CAIRN_EIO, "restore: cannot start worker threads");
		goto done;
	}
	flushing = pthread_create(&flusher, NULL, restore_flusher, &st) == 0; /* else all at the end */

	/* pass 1, with pass 2 running alongside in the workers */
	rc = walk_trees(&st, &root->subtree, empty);
	if (rc < 0) restore_record_error(&st, rc);

	pthread_mutex_lock(&st.mu);
	st.closed = 1;
	pthread_cond_broadcast(&st.cv_work);
	while (st.qlen + st.inflight > 0) {
		restore_wait_a_bit(&st, &st.cv_space);
		pthread_mutex_unlock(&st.mu);
		restore_progress(&st);
		pthread_mutex_lock(&st.mu);
	}
	pthread_mutex_unlock(&st.mu);
	for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
	started = 0;
	stop_flusher(&st, &flusher, &flushing);
	if (st.err) {
		rc = error_set(st.err, "%s", st.errmsg);
		goto done;
	}

	if ((rc = link_members(&st)) < 0) goto done;
	if ((rc = dir_metadata(&st)) < 0) goto done;
	if (st.err) { /* canceled at a progress event of these passes */
		rc = error_set(st.err, "%s", st.errmsg);
		goto done;
	}
	/* done means durable: an instance started from this tree survives a
	 * host crash right after (one syncfs, not an fsync per file) */
	if (syncfs(st.rootfd) < 0) {
		rc = error_errno(CAIRN_EIO, errno, "restore %s: syncfs", target);
		goto done;
	}
	keep_record(&st, snap_id, target);

	if (out) {
		out->files = atomic_load(&st.files);
		out->dirs = st.dirs_done;
		out->symlinks = st.symlinks;
		out->specials = st.specials;
		out->hardlinks = st.hardlinks;
		out->bytes = atomic_load(&st.bytes);
		out->duration_ms = (uint64_t)((mono_ns() - t0) / 1000000);
	}
done:
	if (started) {
		/* only reached on early failures, before any work was queued */
		pthread_mutex_lock(&st.mu);
		st.closed = 1;
		atomic_store(&st.stop, 1);
		pthread_cond_broadcast(&st.cv_work);
		pthread_mutex_unlock(&st.mu);
		for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
	}
	stop_flusher(&st, &flusher, &flushing);
	for (size_t i = 0; i < st.ndirs; i++) {
		free(st.dirs[i].name);
		free(st.dirs[i].xattrs);
	}
	if (st.ndirs == 0 && st.dirs) free(st.dirs[0].name); /* failed before ndirs was set */
	free(st.dirs);
	for (size_t i = 0; i < st.hl_cap; i++) free(st.hl[i].name);
	free(st.hl);
	for (size_t i = 0; i < st.nlinks; i++) free(st.links[i].name);
	free(st.links);
	inodes_free(&st.items);
	free(st.q);
	free(tids);
	pthread_cond_destroy(&st.cv_work);
	pthread_cond_destroy(&st.cv_space);
	pthread_cond_destroy(&st.cv_flush);
	pthread_mutex_destroy(&st.mu);
	pthread_mutex_destroy(&st.dirs_mu);
done_early:
	repo_prefetch_drop(repo);
	if (st.rootfd >= 0) close(st.rootfd);
	tree_free(&top);
	snapshot_manifest_free(&m);
	return rc;
}

CAIRN_EXTERN int cairn_restore(cairn_restore_result *out, cairn_repo *repo, const char *snap_id,
                               const char *target, const cairn_restore_options *opts)
{
	static const size_t option_sizes[] = {
		offsetof(cairn_restore_options, event_cancel_cb), /* 1 */
		sizeof(cairn_restore_options),                    /* 2: event_cancel_cb */
	};
	static const size_t result_sizes[] = {sizeof(cairn_restore_result)};
	cairn_restore_options o = CAIRN_RESTORE_OPTIONS_INIT;
	cairn_restore_result r = CAIRN_RESTORE_RESULT_INIT;
	int rc = result_check(out, CAIRN_RESTORE_RESULT_VERSION, "restore");
	if (rc == 0) rc = options_copy(&o, opts, option_sizes, CAIRN_RESTORE_OPTIONS_VERSION, "restore");
	if (rc == 0) rc = event_cbs_check(o.event_cb, o.event_cancel_cb, "restore");
	if (rc < 0) return rc;
	rc = restore_run(&r, repo, snap_id, target, &o);
	result_copy(out, &r, result_sizes);
	return rc;
}
