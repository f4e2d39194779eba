/* Quotas (internal.h): recomputation from the manifests and trees:
 * quota_verify (fsck) and quota_rebuild (fsck --repair). */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "user.h"

static int blob_size(cairn_repo *r, const oid *id, uint8_t type, uint32_t *size, const char *what)
{
	char hex[OID_HEX_LEN + 1];
	index_entry e;
	int found = repo_index_lookup(r, id, &e);
	if (found < 0) return found;
	uint32_t sz = found ? e.stored_len : 0;
	uint8_t ty = found ? e.type : 0;
	oid_hex(hex, id);
	if (!found || ty != type)
		return error_set(CAIRN_ECORRUPT, "%s: %s %s is not in the index", what,
		                 type == BLOB_TREE ? "tree" : "chunk", hex);
	*size = sz;
	return 0;
}

/* Every blob reachable from tree id into set (id -> stored size). The trees
 * still to read wait on a heap stack: any depth costs memory, not C stack. */
static int walk_tree(cairn_repo *r, const oid *id, utable *set, const char *what)
{
	size_t n = 0, cap = 64;
	oid *todo = malloc(cap * sizeof(*todo));
	if (!todo) return ERR_OOM();
	todo[n++] = *id;
	int rc = 0;
	while (rc == 0 && n > 0) {
		oid cur = todo[--n];
		uint32_t size = 0; /* set by blob_size; the compiler cannot tell */
		if (ut_find(set, &cur)) continue;
		if ((rc = blob_size(r, &cur, BLOB_TREE, &size, what)) < 0) break;
		uslot *s = ut_get(set, &cur);
		if (!s) {
			rc = ERR_OOM();
			break;
		}
		s->size = size;
		s->refs = 1;
		tree t;
		if ((rc = repo_load_tree(r, &cur, &t)) < 0) break;
		for (size_t i = 0; i < t.n && rc == 0; i++) {
			const tree_entry *e = &t.entries[i];
			if (e->type == TREE_DIR) {
				oid *nt = vec_grow(todo, &cap, n + 1, sizeof(*todo));
				if (nt) nt[n++] = e->subtree;
				else rc = ERR_OOM();
				todo = nt ? nt : todo;
				continue;
			}
			for (uint32_t k = 0; k < e->nchunks && rc == 0; k++) {
				if (ut_find(set, &e->chunks[k].id)) continue;
				if ((rc = blob_size(r, &e->chunks[k].id, BLOB_DATA, &size, what)) < 0) break;
				if (!(s = ut_get(set, &e->chunks[k].id))) rc = ERR_OOM();
				else *s = (uslot){e->chunks[k].id, size, 1, 1};
			}
		}
		tree_free(&t);
	}
	free(todo);
	return rc;
}

typedef struct expected {
	ustate st;           /* what the records should say */
	size_t nsnaps;
	char (*ids)[OID_HEX_LEN + 1];
	uref **refs;         /* per snapshot, sorted; NULL when it could not be computed */
	size_t *nrefs;
	int unknown;         /* some snapshot could not be walked */
} expected;

static void expected_free(expected *x)
{
	for (size_t i = 0; i < x->nsnaps; i++) free(x->refs[i]);
	free(x->refs);
	free(x->nrefs);
	free(x->ids);
	ustate_free(&x->st);
}

/* Recompute user's state from the manifests in list. */
static int expect_user(cairn_repo *r, const char *user, const cairn_snapshot_list *list,
                       expected *x, quota_report_cb cb, void *payload, int *problems)
{
	size_t count = cairn_snapshot_list_count(list);
	memset(x, 0, sizeof(*x));
	ustate_init(&x->st, user);
	x->ids = calloc(count ? count : 1, sizeof(*x->ids));
	x->refs = calloc(count ? count : 1, sizeof(*x->refs));
	x->nrefs = calloc(count ? count : 1, sizeof(*x->nrefs));
	if (!x->ids || !x->refs || !x->nrefs) return ERR_OOM();
	for (size_t i = 0; i < count; i++) {
		const cairn_snapshot_info *si = cairn_snapshot_list_get(list, i);
		if (strcmp(si->user, user) != 0) continue;
		size_t k = x->nsnaps++;
		memcpy(x->ids[k], si->id, sizeof(x->ids[k]));
		utable set;
		oid top;
		char what[128];
		ut_init(&set);
		hex_decode(top.b, OID_LEN, si->root_tree);
		snprintf(what, sizeof(what), "snapshot %s", si->id);
		int rc = walk_tree(r, &top, &set, what);
		if (rc == 0) rc = ut_sorted(&set, &x->refs[k], &x->nrefs[k]);
		ut_free(&set);
		if (rc == CAIRN_ENOMEM) return rc;
		if (rc < 0) {
			char msg[512];
			snprintf(msg, sizeof(msg), "cannot recompute usage: %s", cairn_error_last());
			cb(user, msg, payload);
			(*problems)++;
			x->unknown = 1;
			continue;
		}
		oid sid;
		hex_decode(sid.b, OID_LEN, si->id);
		if ((rc = ustate_apply(&x->st, 1, &sid, x->refs[k], x->nrefs[k], what)) < 0) return rc;
	}
	return 0;
}

static void reportf(quota_report_cb cb, void *payload, const char *user, int *problems,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void reportf(quota_report_cb cb, void *payload, const char *user, int *problems,
                    const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cb(user, msg, payload);
	(*problems)++;
}

static int refs_equal(const uref *a, size_t na, const uref *b, size_t nb)
{
	if (na != nb) return 0;
	for (size_t i = 0; i < na; i++)
		if (oid_cmp(&a[i].id, &b[i].id) != 0 || a[i].size != b[i].size) return 0;
	return 1;
}

static int verify_user(cairn_repo *r, const char *user, const cairn_snapshot_list *list,
                       quota_report_cb cb, void *payload, int *problems)
{
	expected x;
	ustate got;
	store_lock *l = NULL;
	quota_usage fast;
	int rc;
	ustate_init(&got, user);
	if ((rc = quota_user_lock(r, user, &l)) < 0) {
		reportf(cb, payload, user, problems, "not checked: %s", cairn_error_last());
		ustate_free(&got);
		return 0;
	}
	if ((rc = expect_user(r, user, list, &x, cb, payload, problems)) < 0) goto done;
	ustate_free(&got);
	if ((rc = ustate_load(r, user, LOAD_READ, &got)) < 0) {
		if (rc == CAIRN_ENOMEM) goto done;
		reportf(cb, payload, user, problems, "usage records are damaged: %s", cairn_error_last());
		rc = 0;
		goto done;
	}
	/* the charged snapshots are exactly the manifests */
	for (size_t i = 0; i < x.nsnaps; i++) {
		oid sid;
		hex_decode(sid.b, OID_LEN, x.ids[i]);
		if (!ut_charged(&got.snaps, &sid)) {
			reportf(cb, payload, user, problems, "snapshot %s is not charged to the user", x.ids[i]);
			continue;
		}
		if (!x.refs[i]) continue;
		uref *v = NULL;
		size_t nv = 0;
		if ((rc = read_refs(r, user, &sid, &v, &nv)) < 0) {
			reportf(cb, payload, user, problems, "snapshot %s: %s", x.ids[i], cairn_error_last());
			rc = 0;
		} else if (!refs_equal(v, nv, x.refs[i], x.nrefs[i])) {
			reportf(cb, payload, user, problems,
			        "users/%s/refs/%s: lists %zu blobs, the snapshot references %zu (or sizes differ)",
			        user, x.ids[i], nv, x.nrefs[i]);
		}
		free(v);
	}
	for (size_t i = 0; i < got.snaps.cap; i++) {
		if (!got.snaps.s[i].used || !got.snaps.s[i].refs) continue;
		if (!ut_charged(&x.st.snaps, &got.snaps.s[i].id)) {
			char hex[OID_HEX_LEN + 1];
			oid_hex(hex, &got.snaps.s[i].id);
			reportf(cb, payload, user, problems, "charged for snapshot %s, which has no manifest", hex);
		}
	}
	if (x.unknown) goto done; /* the totals cannot be compared */
	if (got.used != x.st.used || got.nsnaps != x.st.nsnaps)
		reportf(cb, payload, user, problems,
		        "records give usage %llu bytes in %llu snapshots; recomputed %llu bytes in %llu",
		        (unsigned long long)got.used, (unsigned long long)got.nsnaps,
		        (unsigned long long)x.st.used, (unsigned long long)x.st.nsnaps);
	size_t bad = 0;
	for (size_t i = 0; i < x.st.blobs.n; i++) {
		const uref *want = &x.st.blobs.v[i];
		const uref *have = ub_find(&got.blobs, &want->id);
		if (!have || have->refs != want->refs || have->size != want->size) bad++;
	}
	for (size_t i = 0; i < got.blobs.n; i++)
		if (!ub_charged(&x.st.blobs, &got.blobs.v[i].id)) bad++;
	if (bad) reportf(cb, payload, user, problems, "%zu blob reference counts differ from the recomputation", bad);
	if ((rc = quota_usage_get(r, user, &fast)) < 0) {
		reportf(cb, payload, user, problems, "usage figure unreadable: %s", cairn_error_last());
		rc = 0;
	} else if (fast.used != x.st.used || fast.snapshots != x.st.nsnaps) {
		reportf(cb, payload, user, problems,
		        "usage shows %llu bytes in %llu snapshots; recomputed %llu bytes in %llu",
		        (unsigned long long)fast.used, (unsigned long long)fast.snapshots,
		        (unsigned long long)x.st.used, (unsigned long long)x.st.nsnaps);
	}
done:
	expected_free(&x);
	ustate_free(&got);
	store_lock_release(l);
	return rc;
}

/* Users with records or with snapshots, sorted, distinct. */
static int all_users(cairn_repo *r, const cairn_snapshot_list *list, char ***out, size_t *n)
{
	char **v;
	size_t k;
	int rc = quota_users(r, &v, &k);
	if (rc < 0) return rc;
	for (size_t i = 0; i < cairn_snapshot_list_count(list); i++) {
		const char *u = cairn_snapshot_list_get(list, i)->user;
		int have = 0;
		for (size_t j = 0; j < k && !have; j++) have = !strcmp(v[j], u);
		if (have || !user_name_valid(u)) continue;
		char **nv = realloc(v, (k + 1) * sizeof(*nv));
		if (!nv || !(nv[k] = strdup(u))) {
			quota_users_free(nv ? nv : v, k);
			return ERR_OOM();
		}
		v = nv;
		k++;
	}
	if (k) qsort(v, k, sizeof(*v), quota_str_cmp);
	*out = v;
	*n = k;
	return 0;
}

int quota_verify(cairn_repo *r, quota_report_cb cb, void *payload)
{
	cairn_snapshot_list *list;
	char **users = NULL;
	size_t n = 0;
	int problems = 0;
	int rc = cairn_snapshot_list_load(&list, r, NULL);
	if (rc < 0) return rc;
	if ((rc = all_users(r, list, &users, &n)) < 0) goto done;
	for (size_t i = 0; i < n && rc == 0; i++) rc = verify_user(r, users[i], list, cb, payload, &problems);
done:
	quota_users_free(users, n);
	cairn_snapshot_list_free(list);
	return rc < 0 ? rc : problems;
}

static void ignore_report(const char *user, const char *problem, void *payload)
{
	(void)user;
	(void)problem;
	(void)payload;
}

static int collect_name(const char *name, void *payload)
{
	names *l = payload;
	return strv_push(&l->v, &l->n, &l->cap, name);
}

int quota_rebuild(cairn_repo *r, const char *user)
{
	cairn_snapshot_list *list = NULL;
	store_lock *l = NULL;
	expected x;
	seqs logs = {0}, bases = {0};
	int problems = 0, rc = user_name_check(user);
	char name[200];
	memset(&x, 0, sizeof(x));
	ustate_init(&x.st, user);
	if (rc < 0) goto done;
	if ((rc = quota_user_lock(r, user, &l)) < 0) goto done;
	if ((rc = cairn_snapshot_list_load(&list, r, user)) < 0) goto done;
	ustate_free(&x.st);
	if ((rc = expect_user(r, user, list, &x, ignore_report, NULL, &problems)) < 0) goto done;
	if (x.unknown) {
		rc = error_set(CAIRN_ECORRUPT, "user %s: a snapshot cannot be read; usage not rebuilt", user);
		goto done;
	}
	for (size_t i = 0; i < x.nsnaps; i++) {
		oid sid;
		hex_decode(sid.b, OID_LEN, x.ids[i]);
		if ((rc = write_refs(r, user, &sid, NULL, NULL, 0, x.refs[i], x.nrefs[i])) < 0) goto done;
	}
	if ((rc = list_seqs(r, user, "log", &logs)) < 0) goto done;
	if ((rc = list_seqs(r, user, "base", &bases)) < 0) goto done;
	uint64_t top = 0;
	if (logs.n) top = logs.v[logs.n - 1];
	if (bases.n && bases.v[bases.n - 1] > top) top = bases.v[bases.n - 1];
	x.st.seq = top + 1;
	/* the base first: a checkpoint entry without it reads as damage */
	if ((rc = write_base(r, &x.st)) < 0) goto done;
	ulog e = {x.st.seq, OP_CHECKPOINT, {{0}}, x.st.used, x.st.used, x.st.nsnaps, x.st.nsnaps};
	if ((rc = write_log(r, user, &e)) < 0) goto done;
	x.st.base_seq = x.st.seq;
	ustate_compact(r, &x.st, 1);
	/* refs of snapshots no longer charged */
	names refs = {0};
	obj_name(name, sizeof(name), user, "refs", NULL);
	if (store_list(r->st, name, collect_name, &refs) == 0) {
		for (size_t i = 0; i < refs.n; i++) {
			const char *leaf = strrchr(refs.v[i], '/');
			oid sid;
			if (leaf && hex_decode(sid.b, OID_LEN, leaf + 1) == 0 && !ut_charged(&x.st.snaps, &sid))
				quota_delete_quiet(r, refs.v[i]);
		}
	}
	error_clear();
	quota_users_free(refs.v, refs.n);
done:
	free(logs.v);
	free(bases.v);
	expected_free(&x);
	cairn_snapshot_list_free(list);
	store_lock_release(l);
	return rc;
}
