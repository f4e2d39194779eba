/* Export and import (internal.h): cairn_import: the archive read to its end,
 * then the trees written bottom-up and the manifest committed. */
#include "internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "options.h"
#include "user.h"
#include "util.h"

/* Hardlink groups numbered from 1 in depth-first name order, as take numbers
 * them; the snapshot's counts; the base's chunks that stay are referenced,
 * so that they count for the user as a parent's do for a take. */
static int number_groups(ictx *c, node *root)
{
	nstack st = {NULL, 0, 0};
	int rc = nstack_push(&st, root) ? 0 : ERR_OOM();
	while (rc == 0 && st.n > 0) {
		nframe *f = &st.f[st.n - 1];
		if (f->k == f->d->nkids) {
			st.n--;
			continue;
		}
		node *n = f->d->kids[f->k++];
		inode *i = n->ino;
		switch (i->type) {
		case TREE_REG: c->files++; break;
		case TREE_DIR: c->dirs++; break;
		case TREE_SYMLINK: c->symlinks++; break;
		default: c->specials++; break;
		}
		if (i->type != TREE_DIR) {
			if (i->links > 1 && !i->group) i->group = ++c->groups;
			else if (i->links > 1) c->hardlinks++;
			if (!i->counted && i->type == TREE_REG) {
				for (uint32_t x = 0; x < i->nchunks; x++) c->bytes += i->chunks[x].size;
				/* the archive's chunks were stored (and counted) as read;
				 * the base's are referenced, found in the repository */
				int all = i->base_data ? 0 : writer_ref_chunks(c->w, i->chunks, i->nchunks);
				if (all < 0) rc = all;
				for (uint32_t x = 0; x < i->nchunks && all == 0 && rc == 0; x++)
					rc = writer_ref(c->w, &i->chunks[x].id, BLOB_DATA);
			}
			i->counted = 1;
		}
		if (i->type == TREE_DIR && !nstack_push(&st, n)) rc = ERR_OOM();
	}
	free(st.f);
	return rc;
}

static void fill_entry(tree_entry *e, const node *n, tree_xattr *xa)
{
	const inode *i = n->ino;
	memset(e, 0, sizeof(*e));
	e->name = n->name;
	e->name_len = n->name_len;
	e->type = i->type;
	e->mode = i->mode;
	e->uid = i->uid;
	e->gid = i->gid;
	e->mtime_sec = i->mtime_sec;
	e->mtime_nsec = i->mtime_nsec;
	e->rdev_major = i->rdev_major;
	e->rdev_minor = i->rdev_minor;
	e->hardlink = i->type != TREE_DIR && i->links > 1 ? i->group : 0;
	for (uint32_t k = 0; k < i->nxattrs; k++) {
		xa[k].name = i->xattrs[k].name;
		xa[k].name_len = (uint16_t)strlen(i->xattrs[k].name);
		xa[k].value = i->xattrs[k].value;
		xa[k].value_len = i->xattrs[k].len;
	}
	e->nxattrs = i->nxattrs;
	e->xattrs = xa;
	if (i->type == TREE_SYMLINK) {
		e->target = i->target;
		e->target_len = i->target_len;
		e->size = i->target_len;
	} else if (i->type == TREE_REG) {
		e->size = i->size;
		e->nextents = i->nextents;
		e->extents = i->extents;
		e->nchunks = i->nchunks;
		e->chunks = i->chunks;
	}
}

/* Start writing d's tree: its entries (subtree ids filled in as written). */
static int write_tree_begin(nstack *st, node *d)
{
	nframe *f = nstack_push(st, d);
	if (!f) return ERR_OOM();
	size_t nx = 0;
	for (size_t k = 0; k < d->nkids; k++) nx += d->kids[k]->ino->nxattrs;
	f->entries = calloc(d->nkids ? d->nkids : 1, sizeof(*f->entries));
	f->xa = calloc(nx ? nx : 1, sizeof(*f->xa));
	return f->entries && f->xa ? 0 : ERR_OOM();
}

/* Every tree below root, bottom-up (a tree's id needs its subtrees'). */
static int write_tree(ictx *c, node *root, oid *out)
{
	nstack st = {NULL, 0, 0};
	int rc = write_tree_begin(&st, root);
	while (rc == 0 && st.n > 0) {
		nframe *f = &st.f[st.n - 1];
		if (f->k < f->d->nkids) {
			node *n = f->d->kids[f->k];
			fill_entry(&f->entries[f->k++], n, f->xa + f->nx);
			f->nx += n->ino->nxattrs;
			if (n->ino->type == TREE_DIR) rc = write_tree_begin(&st, n);
			continue;
		}
		oid id;
		size_t added;
		if ((rc = writer_put_tree(c->w, f->entries, f->d->nkids, &id, &added)) < 0) {
			nstack_prefix(&st);
			break;
		}
		c->res.stored_bytes += added;
		free(f->entries);
		free(f->xa);
		if (--st.n > 0) st.f[st.n - 1].entries[st.f[st.n - 1].k - 1].subtree = id;
		else *out = id;
	}
	while (st.n > 0) {
		free(st.f[--st.n].entries);
		free(st.f[st.n].xa);
	}
	free(st.f);
	return rc;
}

static int commit(ictx *c, char id[OID_HEX_LEN + 1], int64_t t0)
{
	oid content, top_id;
	size_t added;
	int rc;
	char host[256] = "";

	/* the snapshot references what its tree holds: not what an entry
	 * the archive defined again (a directory replaced by a file) held */
	if ((rc = writer_restart_refs(c->w, 0)) < 0) return rc;
	if ((rc = number_groups(c, c->root)) < 0) return rc;
	c->dirs++; /* the root, as take counts it */
	if ((rc = write_tree(c, c->root, &content)) < 0) return rc;
	tree_xattr *xa = calloc(c->root->ino->nxattrs + 1, sizeof(*xa));
	if (!xa) return ERR_OOM();
	tree_entry top;
	node rootname = *c->root;
	rootname.name = "root";
	rootname.name_len = 4;
	fill_entry(&top, &rootname, xa);
	top.subtree = content;
	rc = writer_put_tree(c->w, &top, 1, &top_id, &added);
	free(xa);
	if (rc < 0) return rc;
	c->res.stored_bytes += added;

	snapshot_manifest m;
	memset(&m, 0, sizeof(m));
	m.tree = top_id;
	if (c->o->base) hex_decode(m.parent.b, OID_LEN, c->o->base);
	m.time_ns = now_ns();
	gethostname(host, sizeof(host) - 1);
	m.user = (char *)(c->o->user ? c->o->user : "default");
	m.name = (char *)c->o->name;
	m.root_path = (char *)(c->o->source ? c->o->source : "-");
	m.hostname = host;
	m.files = c->files;
	m.dirs = c->dirs;
	m.symlinks = c->symlinks;
	m.specials = c->specials;
	m.hardlinks = c->hardlinks;
	m.sockets_skipped = c->res.sockets_skipped;
	m.bytes = c->bytes;
	m.new_bytes = c->res.new_bytes;
	m.stored_bytes = c->res.stored_bytes;
	m.duration_ms = (uint64_t)(mono_ns() - t0) / 1000000;
	size_t nl = c->o->nlabels;
	char **keys = calloc(nl + 1, sizeof(char *)), **values = calloc(nl + 1, sizeof(char *));
	rc = keys && values ? 0 : ERR_OOM();
	for (size_t i = 0; i < nl && rc == 0; i++) {
		const char *eq = strchr(c->o->labels[i], '=');
		keys[i] = strndup(c->o->labels[i], (size_t)(eq - c->o->labels[i]));
		values[i] = strdup(eq + 1);
		if (!keys[i] || !values[i]) rc = ERR_OOM();
	}
	m.nlabels = nl;
	m.label_keys = keys;
	m.label_values = values;
	if (rc == 0) rc = writer_commit(c->w, &m, id);
	for (size_t i = 0; keys && values && i < nl; i++) {
		free(keys[i]);
		free(values[i]);
	}
	free(keys);
	free(values);
	c->res.duration_ms = m.duration_ms;
	return rc;
}

static int check_import_options(const cairn_import_options *o)
{
	int rc = event_cbs_check(o->event_cb, o->event_cancel_cb, "import");
	if (rc < 0) return rc;
	if (!o->name || !*o->name) return error_set(CAIRN_EUSAGE, "import: --name is required");
	if (strlen(o->name) > MAX_STR_LEN) return error_set(CAIRN_EUSAGE, "import: name too long");
	if (o->source && strlen(o->source) > MAX_STR_LEN)
		return error_set(CAIRN_EUSAGE, "import: source name too long");
	if (o->user && user_name_check(o->user) < 0) return CAIRN_EUSAGE;
	if (o->base && (strlen(o->base) != OID_HEX_LEN))
		return error_set(CAIRN_EUSAGE, "import: base must be a full snapshot id");
	for (size_t i = 0; i < o->nlabels; i++) {
		const char *eq = strchr(o->labels[i], '=');
		if (!eq || eq == o->labels[i] || strlen(o->labels[i]) > MAX_STR_LEN)
			return error_set(CAIRN_EUSAGE, "label %s: must be KEY=VALUE", o->labels[i]);
	}
	return 0;
}

static int import_run(cairn_import_result *out, cairn_repo *repo, int fd, const cairn_import_options *o)
{
	ictx c;
	struct archive *a = NULL;
	struct archive_entry *ae;
	int64_t t0 = mono_ns();
	int rc, r;

	memset(&c, 0, sizeof(c));
	if (out) memset(out, 0, sizeof(*out));
	if ((rc = check_import_options(o)) < 0) return rc;
	repo_session(repo); /* before the marks and the index are read */
	c.repo = repo;
	c.o = o;
	c.cap = (size_t)repo->chunker.max * 2 + 1024 * 1024;
	if (!(c.buf = malloc(c.cap))) {
		rc = ERR_OOM();
		goto done;
	}
	if ((rc = writer_new(&c.w, repo)) < 0) goto done;
	/* quota from here on, as for a take */
	if ((rc = writer_set_user(c.w, o->user ? o->user : "default", 0)) < 0) goto done;
	if (o->base) {
		if ((rc = load_base(&c, o->base)) < 0) goto done;
	} else {
		inode *ri = dir_inode();
		if (!ri || !(c.root = node_new("", 0, ri))) {
			inode_unref(ri);
			rc = ERR_OOM();
			goto done;
		}
	}

	if (!(a = archive_read_new())) {
		rc = ERR_OOM();
		goto done;
	}
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_xz(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_fd(a, fd, 256 * 1024) != ARCHIVE_OK) {
		rc = ar_fail(a, CAIRN_ECORRUPT, "archive: not a readable tar archive");
		goto done;
	}
	while ((r = archive_read_next_header(a, &ae)) != ARCHIVE_EOF) {
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			const char *m = archive_error_string(a);
			rc = error_set(CAIRN_ECORRUPT, "archive: after %llu entries: %s",
			               (unsigned long long)c.res.entries, m ? m : "unreadable archive");
			goto done;
		}
		c.entry = archive_entry_pathname(ae);
		if (!c.entry) {
			rc = error_set(CAIRN_ECORRUPT, "archive: entry %llu has no path",
			               (unsigned long long)c.res.entries + 1);
			goto done;
		}
		c.res.entries++;
		if ((rc = apply_entry(&c, a, ae)) < 0) goto done;
		if (import_progress(&c, 0)) {
			rc = import_canceled();
			goto done;
		}
	}
	if ((rc = commit(&c, c.res.snapshot, t0)) < 0) goto done;
	import_progress(&c, 1); /* committed: too late to cancel */
	c.res.files = c.files;
	c.res.dirs = c.dirs;
	if (out) *out = c.res;
done:
	if (a) archive_read_free(a);
	writer_free(c.w);
	node_free(c.root);
	free(c.buf);
	return rc;
}

CAIRN_EXTERN int cairn_import(cairn_import_result *out, cairn_repo *repo, int fd,
                              const cairn_import_options *opts)
{
	static const size_t option_sizes[] = {
		offsetof(cairn_import_options, event_cancel_cb), /* 1 */
		sizeof(cairn_import_options),                    /* 2: event_cancel_cb */
	};
	static const size_t result_sizes[] = {sizeof(cairn_import_result)};
	cairn_import_options o = CAIRN_IMPORT_OPTIONS_INIT;
	cairn_import_result r = CAIRN_IMPORT_RESULT_INIT;
	int rc = result_check(out, CAIRN_IMPORT_RESULT_VERSION, "import");
	if (rc == 0 && !opts) rc = error_set(CAIRN_EUSAGE, "import: missing options");
	if (rc == 0) rc = options_copy(&o, opts, option_sizes, CAIRN_IMPORT_OPTIONS_VERSION, "import");
	if (rc < 0) return rc;
	rc = import_run(&r, repo, fd, &o);
	result_copy(out, &r, result_sizes);
	return rc;
}
