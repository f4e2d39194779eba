/* The walker (internal.h): walk_run: the breadth-first loop, statx as a plain
 * call or through io_uring, directories scanned and finished. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "cairn.h"
#include "error.h"
#include "util.h"

/* One statx finished (res is 0 or -errno). Takes ownership of r->node. */
/* Directory d has every entry completed: its kids in order, and its
 * prior's entries of no more use to the walk. */
/* Streaming: d, and each ancestor that it leaves complete (its entries all
 * done, its subdirectories complete), is counted, its fd closed and,
 * but for the root, handed to on_dir_done, whose 1 frees its kids. */
static void subtree_done(walker *w, dstate *d)
{
	while (d && d->finished && !d->pending) {
		walk_node *n = d->node, *p = n->parent;
		dstate *up = p ? p->user : NULL;
		d->finished = 0; /* once */
		count_kids(w->st, n);
		if (!p) break; /* the root's fd stays the walk's to the end */
		dir_close(w, d);
		n->user = NULL; /* the caller's from here on */
		d->node = NULL;
		if (w->on_dir_done(w->payload, n) == 1) {
			if (d->kids_arena) arena_drop(d->kids_arena);
			n->kids = NULL;
			n->nkids = 0;
		}
		d->kids_arena = NULL; /* else freed with the tree */
		up->pending--;
		d = up;
	}
}

static void dir_done(walker *w, dstate *d)
{
	dir_finish(d);
	if (d->prior && w->prior_done) w->prior_done(w->payload, d->prior);
	d->prior = NULL;
	if (w->on_dir_done) {
		d->finished = 1;
		subtree_done(w, d);
	}
}

static int complete(walker *w, req *r, int res)
{
	walk_node *n = r->node;
	dstate *d = r->dir;
	const struct statx *s = &r->stx;
	int rc = 0, t = 0, foreign;
	r->node = NULL;
	if (res < 0 && res != -ENOENT && r->via_ring) {
		/* io_uring may refuse what the plain call allows (an LSM, an
		 * old kernel's flags): the plain call decides */
		res = statx(d->fd, n->name, AT_SYMLINK_NOFOLLOW, STATX_WANT, &r->stx) < 0 ? -errno : 0;
	}
	if (res == -ENOENT) goto drop; /* vanished since getdents: the instance may be live */
	if (res < 0) {
		rc = walk_fail_errno(w, n, -res, "statx");
		goto drop;
	}
	fill_meta(n, s);
	t = walk_type_of(s->stx_mode);
	if (t < 0) {
		char *p;
		rc = error_set(CAIRN_EIO, "walk %s: %s: unknown file type (mode 0%o)", w->root,
		               msg_path(n, &p), (unsigned)s->stx_mode);
		free(p);
		goto drop;
	}
	if (t == 0) {
		w->st->sockets_skipped++;
		goto drop;
	}
	n->type = (uint8_t)t;
	/* Another filesystem: by mount id (a bind mount has the same device);
	 * by device only for directories when the kernel lacks STATX_MNT_ID,
	 * since overlayfs reports lower-layer devices for files. */
	if (w->have_mnt && (s->stx_mask & STATX_MNT_ID))
		foreign = s->stx_mnt_id != w->root_mnt;
	else
		foreign = t == TREE_DIR &&
		          (s->stx_dev_major != w->root_dev_major || s->stx_dev_minor != w->root_dev_minor);
	if (foreign && t != TREE_DIR) {
		/* a file mounted over a file (e.g. a runtime's resolv.conf): its
		 * content belongs to another filesystem; left out */
		w->st->mounts_skipped++;
		goto drop;
	}
	if (t == TREE_DIR && (foreign || (d->node->parent == NULL && !w->subtree && n->name_len == 9 &&
	                                  !memcmp(n->name, "datadrive", 9)))) {
		/* Kept as an empty directory; nothing beyond statx is asked of
		 * a foreign filesystem. */
		n->is_mount = 1;
		w->st->mounts_skipped++;
	}
	/* this entry in the prior walk; p: the same and unchanged since */
	const walk_node *prior = d->prior ? walk_find_kid(d->prior, n->name, n->name_len) : NULL;
	const walk_node *p = prior && prior->is_mount == n->is_mount &&
	                     walk_unchanged_since(n, prior, &w->prior_start) ? prior : NULL;
	if (t == TREE_SYMLINK) {
		rc = p ? copy_target(n, p) : read_target(w, n, d->fd, s->stx_size);
		if (rc) goto drop;
	}
	if (!n->is_mount) {
		xsrc x = {.fd = -1, .dirfd = d->fd, .name = n->name};
		rc = p ? copy_xattrs(n, p) : read_xattrs(w, n, &x);
		if (rc) goto drop;
	}
	d->node->kids[d->node->nkids++] = n;
	if (t == TREE_REG && w->on_file) w->on_file(w->payload, n, prior);
	if (t == TREE_DIR && !n->is_mount) {
		rc = push_dir(w, n, excl_find(d->ex, n->name, n->name_len),
		              prior && prior->type == TREE_DIR ? prior : NULL);
		if (rc) {
			d->node->nkids--;
			goto drop;
		}
		d->pending++;
	}
	n = NULL;
drop: /* a dropped node stays in the arena, unlinked */
	if (rc == 1) rc = 0; /* vanished during readlink/xattrs */
	d->outstanding--;
	if (d->scanned && !d->outstanding) dir_done(w, d);
	dir_unpin(w, d);
	w->free_reqs[w->nfree++] = (uint32_t)(r - w->reqs);
	return rc;
}

static int issue(walker *w, dstate *d, walk_node *n)
{
	req *r = &w->reqs[w->free_reqs[--w->nfree]];
	r->node = n;
	r->dir = d;
	r->via_ring = w->ring_left > 0;
	d->outstanding++;
	dir_pin(w, d);
	if (!w->ring_left) {
		/* A plain statx first: an io_uring statx always goes to a kernel
		 * worker thread, which on a cached tree costs more than the call
		 * (the walk of the benchmark's instance: 211 ms against 150). The
		 * ring is for a cold tree, where statx waits on the disk. */
		int64_t t0 = w->use_ring ? mono_ns() : 0;
		int res = statx(d->fd, n->name, AT_SYMLINK_NOFOLLOW, STATX_WANT, &r->stx) < 0 ? -errno : 0;
		w->nplain++;
		if (w->use_ring && mono_ns() - t0 > SLOW_STATX_NS) {
			/* a probe after a window, or the second slow one in a short run */
			if (w->ring_window || (w->last_slow && w->nplain - w->last_slow <= SLOW_PAIR_SPAN)) {
				w->ring_window = w->ring_window ? w->ring_window * 2 : RING_WINDOW_MIN;
				if (w->ring_window > RING_WINDOW_MAX) w->ring_window = RING_WINDOW_MAX;
				w->ring_left = w->ring_window;
			}
			w->last_slow = w->nplain;
		} else {
			w->ring_window = 0;
		}
		return complete(w, r, res);
	}
	if (w->ring_left != SIZE_MAX) w->ring_left--;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	if (!sqe) {
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	if (!sqe) { /* cannot happen after a submit; undo and fail */
		r->node = NULL;
		d->outstanding--;
		dir_unpin(w, d);
		w->nfree++;
		return error_set(CAIRN_EIO, "walk %s: io_uring: no submission slot", w->root);
	}
	io_uring_prep_statx(sqe, d->fd, n->name, AT_SYMLINK_NOFOLLOW, STATX_WANT, &r->stx);
	io_uring_sqe_set_data(sqe, r);
	w->inflight++;
	w->st->ring_statx++;
	return 0;
}

/* Read directory d whole and queue its entries. Returns 0 (d->ents set, or
 * d vanished) or an error. */
/* d vanished before it could be read: drop it from its parent. */
static void drop_dir(walker *w, dstate *d)
{
	walk_node *n = d->node, *p = n->parent;
	for (size_t i = 0; i < p->nkids; i++)
		if (p->kids[i] == n) {
			memmove(p->kids + i, p->kids + i + 1, (p->nkids - i - 1) * sizeof(*p->kids));
			p->nkids--;
			break;
		}
	d->node = NULL; /* n stays in the arena, unlinked */
	dstate *up = p->user;
	up->pending--;
	if (w->on_dir_done) subtree_done(w, up); /* n was what it waited for */
}

static int scan(walker *w, dstate *d)
{
	int rc = dir_acquire(w, d);
	if (rc == 1) {
		drop_dir(w, d);
		return 0;
	}
	if (rc) return rc;
	size_t cap = 0;
	int vanished = 0;
	for (;;) {
		long got = syscall(SYS_getdents64, d->fd, w->dents, DENTS_BUF);
		if (got < 0 && errno == ENOENT) {
			/* removed while open: as if it had vanished before */
			vanished = 1;
			goto done;
		}
		if (got < 0) {
			rc = walk_fail_errno(w, d->node, errno, "getdents64");
			goto done;
		}
		if (got == 0) break;
		/* streaming: the kids in an arena of their own, its first block
		 * about the size of their nodes (~8x their records) */
		if (w->on_dir_done && !d->kids_arena && !(d->kids_arena = arena_new_kids(w->arena, (size_t)got * 8))) {
			rc = ERR_OOM();
			goto done;
		}
		for (long off = 0; off < got;) {
			/* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name */
			uint16_t reclen;
			memcpy(&reclen, w->dents + off + 16, 2);
			if (reclen < 20 || reclen > got - off) {
				rc = walk_fail_errno(w, d->node, EIO, "getdents64: bad record");
				goto done;
			}
			const char *name = (const char *)w->dents + off + 19;
			size_t len = strnlen(name, (size_t)reclen - 19);
			off += reclen;
			if (len == (size_t)reclen - 19) {
				rc = walk_fail_errno(w, d->node, EIO, "getdents64: unterminated name");
				goto done;
			}
			if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
				continue;
			if (len > MAX_NAME_LEN) {
				rc = walk_fail_errno(w, d->node, ENAMETOOLONG, "getdents64");
				goto done;
			}
			const excl *ex = excl_find(d->ex, name, len);
			if (ex && ex->terminal) {
				w->st->excluded++;
				continue;
			}
			if (d->nents == cap) {
				size_t nc = cap ? cap * 2 : 64;
				walk_node **ne = realloc(d->ents, nc * sizeof(*ne));
				if (!ne) {
					rc = ERR_OOM();
					goto done;
				}
				d->ents = ne;
				cap = nc;
			}
			walk_node *n = d->kids_arena ? node_new_in(d->kids_arena, name, len, d->node)
			                             : walk_node_new(name, len, d->node);
			if (!n) {
				rc = ERR_OOM();
				goto done;
			}
			d->ents[d->nents++] = n;
		}
	}
	if (d->nents) {
		d->node->kids = arena_alloc(d->kids_arena ? d->kids_arena : d->node->arena, d->nents * sizeof(*d->node->kids));
		if (!d->node->kids) {
			rc = ERR_OOM();
			goto done;
		}
	}
	/* its prior's entries, before the first is compared with them */
	if (d->prior && w->prior_dir && (rc = w->prior_dir(w->payload, d->prior)) < 0) goto done;
	/* pin held until every entry is issued (see finish_issue) */
	w->cur = d;
	return 0;
done:
	free(d->ents); /* its nodes stay in the arena, unlinked */
	d->ents = NULL;
	d->nents = 0;
	dir_unpin(w, d);
	if (vanished && !d->node->parent)
		rc = error_set(CAIRN_EIO, "walk %s: the root was removed during the walk", w->root);
	else if (vanished)
		drop_dir(w, d);
	return rc;
}

static void finish_issue(walker *w, dstate *d)
{
	free(d->ents);
	d->ents = NULL;
	d->nents = d->next = 0;
	d->scanned = 1;
	if (!d->outstanding) dir_done(w, d);
	dir_unpin(w, d);
	w->cur = NULL;
}

static int reap(walker *w, int wait)
{
	int rc = 0;
	if (wait) {
		int r = io_uring_submit_and_wait(&w->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			return error_errno(CAIRN_EIO, -r, "walk %s: io_uring_submit_and_wait", w->root);
	}
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(&w->ring, &cqe) == 0) {
		req *r = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&w->ring, cqe);
		w->inflight--;
		int c = complete(w, r, res);
		if (c && !rc) rc = c;
	}
	return rc;
}

static int run_loop(walker *w)
{
	int rc = 0;
	for (;;) {
		while (!rc && w->nfree) {
			dstate *d = w->cur;
			if (d && d->next < d->nents) {
				walk_node *n = d->ents[d->next];
				d->ents[d->next++] = NULL;
				rc = issue(w, d, n);
				continue;
			}
			if (d) finish_issue(w, d);
			if (w->head == w->ndirs) break;
			/* Directories with statx in flight hold their fds; a new one
			 * (and a reopen chain: two at a time) must fit in the budget,
			 * else wait for completions to release some. */
			if (w->inflight && w->open_fds - w->idle_fds + 2 >= w->fd_budget) break;
			rc = scan(w, w->dirs[w->head++]);
		}
		if (rc) break;
		if (!w->inflight) {
			if (!w->cur && w->head == w->ndirs) break;
			rc = error_set(CAIRN_EIO, "walk %s: internal error: walk stalled", w->root);
			break;
		}
		rc = reap(w, 1);
	}
	/* In-flight statx write into reqs and read names: drain before
	 * anything is freed. */
	while (w->use_ring && w->inflight) {
		int r = io_uring_submit_and_wait(&w->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			w->reqs = NULL; /* leaked on purpose: the kernel may still write there */
			w->stuck = 1;   /* and read names in the tree's arena */
			break;
		}
		int c = reap(w, 0);
		if (c && !rc) rc = c;
	}
	return rc;
}

static int ring_setup(walker *w, char *why, size_t whylen)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = MAX_INFLIGHT;
	int r = io_uring_queue_init_params(RING_SQ, &w->ring, &p);
	if (r == -EINVAL) r = io_uring_queue_init(RING_SQ, &w->ring, 0);
	if (r < 0) {
		snprintf(why, whylen, "io_uring unavailable (%s); using plain syscalls", strerror(-r));
		return -1;
	}
	struct io_uring_probe *probe = io_uring_get_probe_ring(&w->ring);
	int ok = probe && io_uring_opcode_supported(probe, IORING_OP_STATX);
	if (probe) io_uring_free_probe(probe);
	if (!ok) {
		io_uring_queue_exit(&w->ring);
		snprintf(why, whylen, "io_uring has no statx on this kernel; using plain syscalls");
		return -1;
	}
	w->max_inflight = w->ring.cq.ring_entries < MAX_INFLIGHT ? w->ring.cq.ring_entries : MAX_INFLIGHT;
	return 0;
}

static int open_root(walker *w, walk_node **rootp)
{
	int fd = open(w->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (w->subtree ? O_NOFOLLOW : 0));
	if (fd < 0) {
		int err = errno;
		if (err == ENOENT) return error_errno(CAIRN_ENOTFOUND, err, "walk %s", w->root);
		if (err == ENOTDIR || (err == ELOOP && w->subtree))
			return error_set(CAIRN_EUSAGE, "walk %s: not a directory", w->root);
		return error_errno(CAIRN_EIO, err, "walk %s: open", w->root);
	}
	w->rootfd = fd;
	struct statx s;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_WANT, &s) < 0)
		return error_errno(CAIRN_EIO, errno, "walk %s: statx", w->root);
	w->have_mnt = !!(s.stx_mask & STATX_MNT_ID);
	w->root_mnt = s.stx_mnt_id;
	w->st->root_mnt = w->have_mnt ? s.stx_mnt_id : 0;
	w->root_dev_major = s.stx_dev_major;
	w->root_dev_minor = s.stx_dev_minor;
	walk_node *n = walk_node_new("", 0, NULL);
	if (!n) return ERR_OOM();
	*rootp = n;
	w->arena = n->arena;
	fill_meta(n, &s);
	n->type = TREE_DIR;
	xattrat_probe(w, fd);
	if (!w->xattrat && access("/proc/self/fd", X_OK) < 0)
		return error_errno(CAIRN_EIO, errno, "walk %s: /proc/self/fd is needed for xattrs", w->root);
	xsrc x = {.fd = fd, .dirfd = -1, .name = ""};
	int rc = read_xattrs(w, n, &x);
	if (rc == 1) rc = error_set(CAIRN_EIO, "walk %s: root vanished", w->root);
	if (rc) return rc;
	rc = push_dir(w, n, w->ex_root, w->prior);
	if (rc) return rc;
	dstate *d = n->user;
	d->fd = fd;
	w->rootfd = -1; /* owned by d now */
	w->open_fds = 1;
	d->pins = 1;    /* never evicted: every reopen chain ends here */
	return 0;
}

static void count(walker *w)
{
	w->st->dirs++; /* the root */
	if (w->on_dir_done) return; /* counted as each directory completed */
	for (size_t i = 0; i < w->ndirs; i++)
		if (w->dirs[i]->node) count_kids(w->st, w->dirs[i]->node);
}

int walk_run(walk_node **out, const char *root, const walk_options *opts, walk_stats *stats)
{
	walker w;
	walk_stats dummy;
	walk_node *rootn = NULL;
	int rc = 0;
	memset(&w, 0, sizeof(w));
	w.root = root;
	w.rootfd = -1;
	if (opts && opts->prior) {
		w.prior = opts->prior;
		w.prior_start = opts->prior_start;
	}
	if (opts) {
		w.on_file = opts->on_file;
		w.prior_dir = opts->prior_dir;
		w.prior_done = opts->prior_done;
		w.on_dir_done = opts->on_dir_done;
		w.payload = opts->payload;
		w.subtree = opts->subtree;
		w.no_xattrat = opts->no_xattrat;
	}
	if (!stats) stats = &dummy;
	memset(stats, 0, sizeof(*stats));
	w.st = stats;
	*out = NULL;

	w.ex_root = calloc(1, sizeof(*w.ex_root));
	if (!w.ex_root) {
		rc = ERR_OOM();
		goto done;
	}
	for (size_t i = 0; opts && i < opts->nexcludes; i++) {
		rc = excl_add(w.ex_root, opts->excludes[i]);
		if (rc) goto done;
	}

	struct rlimit rl;
	rlim_t soft = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
	if (soft == RLIM_INFINITY || soft > 4096) soft = 4096;
	w.fd_budget = soft / 4 < 16 ? 16 : (size_t)soft / 4;

	w.dents = malloc(DENTS_BUF);
	w.xlist = malloc(XATTR_LIST_BUF);
	w.xval = malloc(XATTR_VALUE_BUF);
	if (!w.dents || !w.xlist || !w.xval) {
		rc = ERR_OOM();
		goto done;
	}

	if (opts && opts->no_uring)
		snprintf(stats->notice, sizeof(stats->notice), "io_uring disabled by option; using plain syscalls");
	else if (ring_setup(&w, stats->notice, sizeof(stats->notice)) == 0) {
		w.use_ring = 1;
		stats->notice[0] = 0;
	}
	stats->used_uring = w.use_ring;
	if (w.use_ring && opts && opts->uring_always) w.ring_left = SIZE_MAX;
	if (!w.use_ring) w.max_inflight = 1;

	w.reqs = calloc(w.max_inflight, sizeof(*w.reqs));
	w.free_reqs = malloc(w.max_inflight * sizeof(*w.free_reqs));
	if (!w.reqs || !w.free_reqs) {
		rc = ERR_OOM();
		goto done;
	}
	for (size_t i = 0; i < w.max_inflight; i++) w.free_reqs[i] = (uint32_t)(w.max_inflight - 1 - i);
	w.nfree = w.max_inflight;

	rc = open_root(&w, &rootn);
	if (rc) goto done;
	rc = run_loop(&w);
	if (rc) goto done;
	count(&w);
done:
	if (w.cur) free(w.cur->ents); /* entries not issued: in the arena, unlinked */
	for (size_t i = 0; i < w.ndirs; i++) {
		dstate *d = w.dirs[i];
		if (d->fd >= 0) close(d->fd);
		if (d->node) d->node->user = NULL;
		free(d);
	}
	free(w.dirs);
	if (w.rootfd >= 0) close(w.rootfd);
	if (w.use_ring) io_uring_queue_exit(&w.ring);
	free(w.reqs);
	free(w.free_reqs);
	free(w.dents);
	free(w.xlist);
	free(w.xval);
	excl_free(w.ex_root);
	if (rc) {
		if (w.on_file) w.on_file(w.payload, NULL, NULL); /* done with the nodes */
		if (!w.stuck) walk_free(rootn);
		rootn = NULL;
		if (stats == &dummy) memset(stats, 0, sizeof(*stats));
	}
	*out = rootn;
	return rc;
}
