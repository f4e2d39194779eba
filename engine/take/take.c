/* The take (take.h): the take itself: option checks, the capture (walk, with
 * large files handed to the readers as it finds them; reads; trees) and its
 * commit, cairn_take. */
#include "take.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn.h"
#include "error.h"
#include "freeze.h"
#include "options.h"
#include "overlay.h"
#include "restored.h"
#include "session.h"
#include "user.h"
#include "util.h"

/* The snapshot is committed: a failure here costs the next take a read of
 * every file, so it is a notice, not an error. */
static void write_inodes(take_ctx *c, const cairn_take_options *o, const char *sid_hex)
{
	if (inodes_write(c->repo, sid_hex, &c->inodes) == 0) return;
	char msg[1200];
	snprintf(msg, sizeof(msg), "snapshot %s saved without its inodes record (%s): the next take reads every file",
	         sid_hex, cairn_error_last());
	error_clear();
	take_notice(o, msg);
}

/* The size of cairn_take_options in each version (cairn.h). */
static const size_t take_options_sizes[] = {
	/* 1: up to base, its layout when version 2 came (before d64e4a4 it
	 * grew without a new version: upper and base; fe58842: cgroup to dry_run) */
	offsetof(cairn_take_options, no_precopy),
	offsetof(cairn_take_options, event_cancel_cb), /* 2: no_precopy */
	sizeof(cairn_take_options),                    /* 3: event_cancel_cb, flags */
};

int take_options_load(cairn_take_options *dst, const cairn_take_options *src, const char *what)
{
	const cairn_take_options defaults = CAIRN_TAKE_OPTIONS_INIT;
	*dst = defaults;
	if (!src) return error_set(CAIRN_EUSAGE, "%s: missing options", what);
	int rc = options_copy(dst, src, take_options_sizes, CAIRN_TAKE_OPTIONS_VERSION, what);
	if (rc < 0) return rc;
	if (src->version < 3) dst->flags = CAIRN_TAKE_GUARDIAN | CAIRN_TAKE_SIGNALS; /* what they always did */
	return event_cbs_check(dst->event_cb, dst->event_cancel_cb, what);
}

static int check_options(const cairn_take_options *o)
{
	if (!o->upper != !o->base) return error_set(CAIRN_EUSAGE, "take: --upper and --base go together");
	if (!o->upper && (!o->root || !*o->root)) return error_set(CAIRN_EUSAGE, "take: --root is required");
	if (!o->dry_run && (!o->name || !*o->name)) return error_set(CAIRN_EUSAGE, "take: --name is required");
	if (o->name && strlen(o->name) > MAX_STR_LEN) return error_set(CAIRN_EUSAGE, "take: name too long");
	if (o->user && user_name_check(o->user) < 0) return CAIRN_EUSAGE;
	for (size_t i = 0; i < o->nlabels; i++) {
		const char *eq = strchr(o->labels[i], '=');
		if (!eq || eq == o->labels[i] || strlen(o->labels[i]) > MAX_STR_LEN)
			return error_set(CAIRN_EUSAGE, "label %s: must be KEY=VALUE", o->labels[i]);
	}
	for (size_t i = 0; i < o->nexcludes; i++)
		if (o->excludes[i][0] != '/')
			return error_set(CAIRN_EUSAGE, "exclude %s: must be an absolute path inside the root",
			                 o->excludes[i]);
	return 0;
}

/* A progress event; 1 when the caller's callback asked to cancel. */
static int emit_progress(const cairn_take_options *o, take_ctx *c, uint64_t total_files,
                         uint64_t total_bytes)
{
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CAIRN_EVENT_PROGRESS;
	ev.files = c->files_done + c->reused;
	ev.bytes = c->bytes;
	ev.new_bytes = c->new_bytes;
	ev.stored_bytes = c->stored_bytes;
	ev.total_files = total_files;
	ev.total_bytes = total_bytes;
	ev.phase = c->precopy ? "precopy" : NULL;
	return event_emit(o->event_cb, o->event_cancel_cb, o->event_payload, &ev);
}

static int canceled(void)
{
	return error_set(CAIRN_ECANCELED, "take: canceled by the caller; nothing committed");
}

/* Upper mode without a parent: the unchanged part of the snapshot is the
 * base's, so its refs record gives the stored sizes of nearly every chunk
 * referenced (no index lookup for them). */
static int base_refs(take_ctx *c, const char *base)
{
	return load_parent(c, base, NULL);
}

/* Let the workers past the walk: todo is complete (or the take failed). */
static void walk_finished(take_ctx *c)
{
	pthread_mutex_lock(&c->jobs_lock);
	c->walk_done = 1;
	pthread_cond_broadcast(&c->jobs_cv);
	pthread_mutex_unlock(&c->jobs_lock);
}

/* The walk found regular file n (walk_options.on_file): a large one with
 * one link and no unchanged namesake in the parent is read at once, by a
 * worker, while the walk goes on (collect_nodes makes its state the
 * leader of its entry's). n NULL: the walk failed; stop reading its nodes. */
static void early_file(void *payload, walk_node *n, const walk_node *prior)
{
	take_ctx *c = payload;
	if (n && c->parent && prior && prior->type == TREE_REG && same_file(n, prior)) {
		keep_reusable(c, n, prior->user); /* the prior's files go once their directory is walked */
		return;
	}
	if (!n) {
		take_fail(c, CAIRN_EIO); /* the walk's error: read_file stops at its next chunk */
		walk_finished(c);
		pthread_mutex_lock(&c->jobs_lock);
		while (c->early_busy) pthread_cond_wait(&c->jobs_cv, &c->jobs_lock);
		pthread_mutex_unlock(&c->jobs_lock);
		return;
	}
	if (n->size <= SMALL_FILE_MAX || n->nlink != 1) return; /* small: batched after the walk */
	if (prior && same_file(n, prior)) return; /* reused */
	file_state *fs = calloc(1, sizeof(*fs));
	if (!fs) return; /* read after the walk instead */
	fs->node = n;
	const prior_file *pf = prior && prior->type == TREE_REG ? prior->user : NULL;
	if (pf) keep_prior_cuts(fs, n, pf->chunks, pf->nchunks, pf->nextents);
	pthread_mutex_lock(&c->jobs_lock);
	if (c->nearly == c->cap_early) {
		size_t cap = c->cap_early ? c->cap_early * 2 : 64;
		file_state **e = realloc(c->early, cap * sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&c->jobs_lock);
			free(fs);
			return;
		}
		c->early = e;
		c->cap_early = cap;
	}
	c->early[c->nearly++] = fs;
	n->user = fs;
	pthread_cond_signal(&c->jobs_cv);
	pthread_mutex_unlock(&c->jobs_lock);
}

/* One capture of root_path: walk (the workers reading large files as it
 * finds them), hardlink groups, reuse (from pre, a pre-copy of the same
 * root, which is freed then; else from the parent's tree, freed while the
 * workers read), then read what is left on every core, with progress
 * events. fz (may be NULL) is checked all along: a
 * frozen capture stops when the freeze is aborted (signal, --max-pause). */
static int capture(take_ctx *c, const cairn_take_options *o, const char *root_path,
                   parent_view *parent, take_ctx *pre, freezer *fz, walk_stats *ws)
{
	int rc;
	collect col = {0};
	pthread_t *threads = NULL;
	int nthreads = 0;
	const struct repo_settings *rs = &c->repo->settings;
	walk_options wo = {.excludes = o->excludes, .nexcludes = o->nexcludes, .no_uring = o->no_uring || rs->no_uring,
	                   .uring_always = rs->test_uring_always, .no_xattrat = rs->test_no_xattrat};
	if (pre) { /* unchanged entries keep the pre-copy's xattrs and targets: no syscalls */
		wo.prior = pre->root;
		wo.prior_start = pre->start;
	} else if (parent) { /* or the parent's xattrs, its directories loaded as the walk goes */
		prior_walk_options(c, parent, &wo, !o->upper);
	}

	/* Workers start before the walk: large files are read as it finds
	 * them (not while frozen after a pre-copy, where little is read, nor
	 * in upper mode, whose entries the overlay rules still change) */
	int want = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (want < 1) want = 1;
	if (!(threads = calloc((size_t)want, sizeof(*threads)))) {
		rc = ERR_OOM();
		goto done;
	}
	nthreads = want;
	c->bulk_read = !pre && !parent;
	c->workers_left = nthreads;
	c->readers = c->nworkers = nthreads;
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&threads[i], NULL, take_worker, c) != 0) {
			c->workers_left -= nthreads - i;
			pthread_mutex_lock(&c->jobs_lock);
			c->readers -= nthreads - i;
			pthread_cond_broadcast(&c->jobs_cv);
			pthread_mutex_unlock(&c->jobs_lock);
			take_fail(c, error_set(CAIRN_EIO, "take: cannot start worker threads"));
			nthreads = i;
			break;
		}
	if (!pre && !o->upper && !take_failed(c)) {
		wo.on_file = early_file;
		wo.payload = c;
		/* unchanged directories built as the walk completes them (not
		 * in a pause: a frozen capture's walk stays as short as it was) */
		c->stream = parent && !o->cgroup && !c->precopy;
		if (c->stream) wo.on_dir_done = stream_dir;
		/* a first take's directories read as the walk completes them,
		 * and built once read (same conditions) */
		c->stream_first = !parent && !o->cgroup && !c->precopy;
		c->stream_uring = !wo.no_uring;
		if (c->stream_first) wo.on_dir_done = stream_first_dir;
	}

	rc = pre ? frozen_walk(c, o, root_path, &wo, ws, pre->root) : walk_run(&c->root, root_path, &wo, ws);
	if (rc < 0) goto done;
	if ((rc = freeze_check(fz)) < 0) goto done;
	if (o->upper && (rc = overlay_prepare(c->root)) < 0) goto done;
	c->use_uring = ws->used_uring;
	if (ws->notice[0] && !c->precopy) take_notice(o, ws->notice);

	/* every regular file gets a state; hardlinked ones share their leader's */
	c->nstates = count_regular(c->root);
	c->states = calloc(c->nstates ? c->nstates : 1, sizeof(*c->states));
	if (!c->states) {
		rc = ERR_OOM();
		goto done;
	}
	col.states = c->states;
	size_t order = 0;
	collect_nodes(&col, c->root, &order);
	if ((rc = col.rc) < 0) goto done;
	if ((rc = assign_hardlinks(c, &col)) < 0) goto done;

	if (pre) {
		rc = reuse_from_precopy(c, c->root, pre->root, &pre->start);
		take_ctx_free(pre);
	} else if (parent && !o->upper) { /* the walk kept what it found unchanged */
		if ((rc = reuse_walked(c)) < 0) error_prefix("parent");
	} else if (parent) { /* upper mode: the overlay rules changed the walk since */
		if ((rc = reuse_from_parent(c, c->root, parent->prior)) < 0) error_prefix("parent");
	}
	if (rc < 0) goto done;
	size_t nread = 0; /* the list of files to read, no longer than they are (an incremental take: a few) */
	for (size_t i = 0; i < c->nstates; i++) nread += !c->states[i].leader && !c->states[i].reused;
	if (!(c->todo = calloc(nread ? nread : 1, sizeof(*c->todo)))) {
		rc = ERR_OOM();
		goto done;
	}
	for (size_t i = 0; i < c->nstates; i++) {
		file_state *fs = &c->states[i];
		if (fs->leader) continue;
		if (fs->reused) {
			c->reused++;
			for (uint32_t k = 0; k < fs->nchunks; k++) c->bytes += fs->chunks[k].size; /* referenced at reuse */
		} else {
			c->todo[c->ntodo++] = fs;
		}
	}

	walk_finished(c);
	/* Reused files have copies of their chunk lists: the parent is of no
	 * more use, and freeing it costs time (memory touched once more) that
	 * this thread has while the workers read. */
	if (parent) parent_view_free(parent);
	c->parent = NULL;
	/* progress 10 times a second, the freeze checked every 5 ms; woken
	 * at once by the last worker, since a frozen instance waits on us */
	for (int64_t last = 0; c->workers_left > 0;) {
		int64_t now = mono_ns();
		if (now - last >= 100 * 1000 * 1000) {
			if (emit_progress(o, c, ws->files, ws->bytes)) take_fail(c, canceled()); /* stops the workers */
			last = now;
		}
		int frc = freeze_check(fz);
		if (frc < 0) take_fail(c, frc); /* stops the workers */
		now += 5 * 1000 * 1000;
		struct timespec until = {(time_t)(now / 1000000000), (long)(now % 1000000000)};
		pthread_mutex_lock(&c->jobs_lock);
		if (c->workers_left > 0 && !c->done) pthread_cond_timedwait(&c->done_cv, &c->jobs_lock, &until);
		pthread_mutex_unlock(&c->jobs_lock);
		stream_drain(c); /* queued directories read since: their trees, their nodes gone */
	}
	for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
	nthreads = 0;
	stream_drain(c);
	if (c->jobs_all && !take_failed(c)) take_fail(c, error_set(CAIRN_EIO, "take: a directory read but not built"));
	if (c->uring_fallback[0] && !c->precopy) take_notice(o, c->uring_fallback);
	if ((rc = c->rc) < 0) error_set(rc, "%s", c->message);
done:
	if (nthreads) { /* failed before the workers' end: stop and join them */
		take_fail(c, rc);
		walk_finished(c);
		for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
	}
	free(threads);
	free(col.hl);
	return rc;
}

/* cairn_take with options of the current version and a result of it. */
static int take_run(cairn_take_result *out, cairn_repo *repo, const cairn_take_options *o)
{
	int rc;
	take_ctx c, pre;
	char base[OID_HEX_LEN + 1] = ""; /* upper mode: the base snapshot's id */
	int have_pre = 0;
	uint64_t precopy_ms = 0;
	walk_stats ws;
	char parent[OID_HEX_LEN + 1] = "", kin[OID_HEX_LEN + 1] = "", root_path[PATH_MAX], host[256] = "";
	int64_t t0 = mono_ns();
	const char *user;
	freezer *fz = NULL; /* --cgroup: frozen from before the (frozen) walk until after the commit */
	parent_view pv = {0};

	memset(&ws, 0, sizeof(ws));
	take_ctx_init(&c, repo, -1, NULL);
	take_ctx_init(&pre, repo, -1, NULL);
	if (out) memset(out, 0, sizeof(*out));
	if ((rc = check_options(o)) < 0) goto done;
	if (!o->dry_run) repo_session(repo); /* before the marks and the index are read */
	/* The guardian is a fork: started while this process is small, since
	 * every page it shares is copied (a fault each) when written again */
	if (o->cgroup && (rc = freeze_open(&fz, o, repo->settings.state_dir)) < 0) goto done;
	user = o->user ? o->user : "default";

	if ((rc = live_root_path(o->upper ? o->upper : o->root, root_path)) < 0) goto done;
	if ((rc = find_parent(repo, o, user, root_path, parent, kin)) < 0) goto done;
	/* once, and before any freeze: resolving reads every manifest */
	if (o->upper && (rc = cairn_snapshot_resolve(base, repo, o->base, o->user)) < 0) goto done;
	c.rootfd = open(root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.rootfd < 0) {
		rc = error_errno(errno == ENOTDIR ? CAIRN_EUSAGE : CAIRN_EIO, errno, "root %s", root_path);
		goto done;
	}

	if ((rc = writer_new(&c.writer, repo)) < 0) goto done;
	if ((rc = writer_set_user(c.writer, user, o->dry_run)) < 0) goto done; /* quota from here on */
	int have_record = 0, have_parent = 0;
	if (!o->parent && !o->no_parent && !o->upper && (have_record = use_restore_record(&c, o, &pv)) == 1) {
		have_parent = 1; /* a restore's record says more of this tree than any earlier take of its path */
	} else if (parent[0]) {
		if ((rc = load_parent(&c, parent, &pv)) < 0) goto done;
		have_parent = 1;
	} else if (o->upper) {
		if ((rc = base_refs(&c, base)) < 0) goto done;
	} else if (kin[0] && load_parent(&c, kin, NULL) < 0) {
		error_clear(); /* only a shortcut (forgotten meanwhile?) */
	}
	if (have_parent && (rc = load_prior(&c, &pv, root_path)) < 0) goto done;
	/* a frozen capture without a pre-copy compares with the parent: its
	 * trees decoded before the pause, not in it */
	if (have_parent && o->cgroup && (o->no_precopy || o->dry_run) && (rc = load_prior_whole(&c, &pv)) < 0) goto done;
	/* a take that cannot commit fails before any work, and before any pause */
	if (!o->dry_run && (rc = gc_session_check(repo)) < 0) goto done;
	if (o->cgroup && !o->no_precopy && !o->dry_run) {
		/* copy while the instance runs; then the frozen capture reads only what changed */
		int64_t p0 = mono_ns();
		pre.rootfd = c.rootfd;
		pre.writer = c.writer;
		pre.precopy = 1;
		clock_gettime(CLOCK_REALTIME_COARSE, &pre.start);
		walk_stats pws;
		memset(&pws, 0, sizeof(pws));
		rc = capture(&pre, o, root_path, have_parent ? &pv : NULL, NULL, fz, &pws);
		parent_view_free(&pv); /* the frozen capture compares with the pre-copy */
		have_parent = 0;
		/* room for its trees (and what changes meanwhile) */
		if (rc == 0) rc = writer_restart_refs(c.writer, pws.dirs + 1024);
		/* its last file data synced while the frozen capture walks, not in the commit */
		if (rc == 0) rc = writer_seal_pack(c.writer);
		if (rc < 0) goto done;
		have_pre = 1;
		c.new_bytes = pre.new_bytes; /* what it stored is this take's */
		c.stored_bytes = pre.stored_bytes;
		precopy_ms = (uint64_t)(mono_ns() - p0) / 1000000;
	}

	if (o->cgroup && (rc = freeze_now(fz, o)) < 0) goto done;
	rc = capture(&c, o, root_path, have_parent ? &pv : NULL, have_pre ? &pre : NULL, fz, &ws);
	if (rc < 0) goto done;

	oid top_id;
	if ((rc = o->upper ? build_overlay_top(&c, base, &ws, &top_id) : build_top(&c, &top_id)) < 0) goto done;
	if (emit_progress(o, &c, ws.files, ws.bytes)) {
		rc = canceled();
		goto done;
	}
	take_ctx_free_walk(&c); /* the trees hold what the snapshot needs of it */

	snapshot_manifest m;
	memset(&m, 0, sizeof(m));
	m.tree = top_id;
	if (parent[0]) hex_decode(m.parent.b, OID_LEN, parent);
	m.time_ns = now_ns();
	gethostname(host, sizeof(host) - 1);
	m.user = (char *)user;
	m.name = (char *)o->name;
	m.root_path = root_path;
	m.hostname = host;
	m.files = ws.files;
	m.dirs = ws.dirs;
	m.symlinks = ws.symlinks;
	m.specials = ws.specials;
	m.hardlinks = c.hardlink_extra;
	m.sockets_skipped = ws.sockets_skipped;
	m.bytes = c.bytes;
	m.new_bytes = c.new_bytes;
	m.stored_bytes = c.stored_bytes;
	if ((rc = freeze_commit_begin(fz)) < 0) goto done;
	m.pause_ms = freeze_pause_ms(fz); /* up to the commit; the result's runs to the thaw */
	m.duration_ms = (uint64_t)(mono_ns() - t0) / 1000000;
	char **keys = calloc(o->nlabels + 1, sizeof(char *)), **values = calloc(o->nlabels + 1, sizeof(char *));
	if (!keys || !values) {
		free(keys);
		free(values);
		rc = ERR_OOM();
		goto done;
	}
	for (size_t i = 0; i < o->nlabels; i++) {
		const char *eq = strchr(o->labels[i], '=');
		keys[i] = strndup(o->labels[i], (size_t)(eq - o->labels[i]));
		values[i] = strdup(eq + 1);
	}
	m.nlabels = o->nlabels;
	m.label_keys = keys;
	m.label_values = values;
	char sid_hex[OID_HEX_LEN + 1] = "";
	rc = o->dry_run ? 0 : writer_commit(c.writer, &m, sid_hex);
	for (size_t i = 0; i < o->nlabels; i++) {
		free(keys[i]);
		free(values[i]);
	}
	free(keys);
	free(values);
	if (rc < 0) goto done;
	if (!o->dry_run) { /* committed: a cancel comes too late */
		cairn_event ev = {.type = CAIRN_EVENT_STATE, .state = "saved", .snapshot = sid_hex};
		event_emit(o->event_cb, o->event_cancel_cb, o->event_payload, &ev);
	}
	if ((rc = freeze_end(fz, o, sid_hex)) < 0) goto done;
	if (!o->dry_run && !o->upper) write_inodes(&c, o, sid_hex); /* after the thaw: not in the pause */
	if (!o->dry_run && have_record) restored_drop(c.repo->settings.state_dir, c.rootfd); /* this snapshot is the next take's parent */

	if (out) {
		memcpy(out->snapshot, sid_hex, sizeof(out->snapshot));
		out->files = ws.files;
		out->dirs = ws.dirs;
		out->bytes = c.bytes;
		out->new_bytes = c.new_bytes;
		out->stored_bytes = c.stored_bytes;
		out->reused_files = c.reused;
		out->prior_cut_chunks = c.prior_cuts + pre.prior_cuts;
		out->sockets_skipped = ws.sockets_skipped;
		out->mounts_skipped = ws.mounts_skipped;
		out->excluded = ws.excluded;
		out->pause_ms = freeze_pause_ms(fz);
		out->duration_ms = (uint64_t)(mono_ns() - t0) / 1000000; /* through the thaw */
		out->used_uring = ws.used_uring && !c.uring_fallback[0];
		out->charged_bytes = writer_charged(c.writer);
		out->precopy_ms = precopy_ms;
		out->freeze_ms = freeze_frozen_ms(fz);
	}
done:
	freeze_free(fz); /* first: a failed take thaws at once */
	parent_view_free(&pv);
	take_ctx_free(&pre);
	take_ctx_free(&c);
	writer_free(c.writer);
	if (c.rootfd >= 0) close(c.rootfd);
	pthread_mutex_destroy(&c.lock);
	pthread_mutex_destroy(&pre.lock);
	pthread_mutex_destroy(&c.jobs_lock);
	pthread_mutex_destroy(&pre.jobs_lock);
	pthread_cond_destroy(&c.jobs_cv);
	pthread_cond_destroy(&pre.jobs_cv);
	pthread_cond_destroy(&c.done_cv);
	pthread_cond_destroy(&pre.done_cv);
	return rc;
}

CAIRN_EXTERN int cairn_take(cairn_take_result *out, cairn_repo *repo, const cairn_take_options *opts)
{
	static const size_t result_sizes[] = {
		offsetof(cairn_take_result, freeze_ms), /* 1: up to prior_cut_chunks */
		sizeof(cairn_take_result),              /* 2: freeze_ms */
	};
	cairn_take_options o;
	cairn_take_result r = CAIRN_TAKE_RESULT_INIT;
	int rc = result_check(out, CAIRN_TAKE_RESULT_VERSION, "take");
	if (rc == 0) rc = take_options_load(&o, opts, "take");
	if (rc < 0) return rc;
	rc = take_run(&r, repo, &o);
	result_copy(out, &r, result_sizes);
	return rc;
}
