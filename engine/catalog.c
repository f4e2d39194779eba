/* The snapshot catalog: listing manifests and resolving SPEC's SNAP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "repo.h"

struct cairn_snapshot_list {
	size_t n, cap;
	cairn_snapshot_info *items;
	snapshot_manifest *manifests;
	char (*ids)[OID_HEX_LEN + 1];
	cairn_repo *repo;
	const char *user;
	size_t damaged;      /* manifests that failed to load: skipped, counted */
	char damage[256];    /* the first one's message */
};

static int by_time(const void *a, const void *b)
{
	const cairn_snapshot_info *x = a, *y = b;
	if (x->time_ns != y->time_ns) return x->time_ns < y->time_ns ? -1 : 1;
	return strcmp(x->id, y->id);
}

static void fill_info(cairn_snapshot_info *info, const snapshot_manifest *m, const char *id)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->id, sizeof(info->id), "%s", id);
	if (!oid_is_zero(&m->parent)) oid_hex(info->parent, &m->parent);
	oid_hex(info->root_tree, &m->tree);
	info->user = m->user;
	info->name = m->name;
	info->root_path = m->root_path;
	info->hostname = m->hostname;
	info->time_ns = m->time_ns;
	info->files = m->files;
	info->dirs = m->dirs;
	info->symlinks = m->symlinks;
	info->specials = m->specials;
	info->hardlinks = m->hardlinks;
	info->sockets_skipped = m->sockets_skipped;
	info->bytes = m->bytes;
	info->new_bytes = m->new_bytes;
	info->stored_bytes = m->stored_bytes;
	info->pause_ms = m->pause_ms;
	info->duration_ms = m->duration_ms;
	info->nlabels = m->nlabels;
	info->label_keys = (const char *const *)m->label_keys;
	info->label_values = (const char *const *)m->label_values;
	info->has_added_bytes = m->has_added;
	info->added_bytes = m->added_bytes;
}

static int add_one(const char *name, void *payload)
{
	cairn_snapshot_list *l = payload;
	const char *id = strrchr(name, '/');
	id = id ? id + 1 : name;
	if (strlen(id) != OID_HEX_LEN) return 0; /* not a manifest name */
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		snapshot_manifest *m = realloc(l->manifests, cap * sizeof(*m));
		if (!m) return ERR_OOM();
		l->manifests = m;
		char (*ids)[OID_HEX_LEN + 1] = realloc(l->ids, cap * sizeof(*ids));
		if (!ids) return ERR_OOM();
		l->ids = ids;
		l->cap = cap;
	}
	snapshot_manifest *m = &l->manifests[l->n];
	int rc = repo_load_snapshot(l->repo, id, m);
	if (rc == CAIRN_ENOTFOUND) { /* forgotten since it was listed */
		error_clear();
		return 0;
	}
	if (rc == CAIRN_ECORRUPT) {
		/* one damaged manifest must not hide every other snapshot */
		if (l->damaged++ == 0) snprintf(l->damage, sizeof(l->damage), "%s", cairn_error_last());
		return 0;
	}
	if (rc < 0) return rc;
	if (l->user && strcmp(m->user, l->user) != 0) {
		snapshot_manifest_free(m);
		return 0;
	}
	memcpy(l->ids[l->n], id, OID_HEX_LEN + 1);
	l->n++;
	return 0;
}

CAIRN_EXTERN int cairn_snapshot_list_load(cairn_snapshot_list **out, cairn_repo *repo,
                                          const char *user)
{
	int rc;
	*out = NULL;
	cairn_snapshot_list *l = calloc(1, sizeof(*l));
	if (!l) return ERR_OOM();
	l->repo = repo;
	l->user = user;
	if ((rc = store_list(repo->st, "snapshots", add_one, l)) < 0) goto fail;
	if (l->n && !(l->items = calloc(l->n, sizeof(*l->items)))) {
		rc = ERR_OOM();
		goto fail;
	}
	for (size_t i = 0; i < l->n; i++) fill_info(&l->items[i], &l->manifests[i], l->ids[i]);
	if (l->n) qsort(l->items, l->n, sizeof(*l->items), by_time);
	l->user = NULL; /* borrowed from the caller only during the load */
	*out = l;
	return 0;
fail:
	cairn_snapshot_list_free(l);
	return rc;
}

CAIRN_EXTERN size_t cairn_snapshot_list_count(const cairn_snapshot_list *l) { return l ? l->n : 0; }

CAIRN_EXTERN const cairn_snapshot_info *cairn_snapshot_list_get(const cairn_snapshot_list *l, size_t i)
{
	return l && i < l->n ? &l->items[i] : NULL;
}

CAIRN_EXTERN void cairn_snapshot_list_free(cairn_snapshot_list *l)
{
	if (!l) return;
	for (size_t i = 0; i < l->n; i++) snapshot_manifest_free(&l->manifests[i]);
	free(l->manifests);
	free(l->ids);
	free(l->items);
	free(l);
}

static int is_hex(const char *s)
{
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
	return 1;
}

/* Up to this many candidates are named in an ambiguity message (the
 * error message holds 1 KiB). */
#define NAMED_CANDIDATES 5

/* "ID (user U, name N), ..." of the candidates into out. */
static void name_candidates(char *out, size_t size, const cairn_snapshot_info *const *v, size_t n)
{
	size_t used = 0;
	out[0] = 0;
	for (size_t i = 0; i < n && i < NAMED_CANDIDATES && used < size; i++) {
		int w = snprintf(out + used, size - used, "%s%s (user %s, name %s)", i ? ", " : "",
		                 v[i]->id, v[i]->user, v[i]->name);
		if (w < 0) break;
		used += (size_t)w;
	}
	if (n > NAMED_CANDIDATES && used < size)
		snprintf(out + used, size - used, " and %zu more", n - NAMED_CANDIDATES);
}

/* SPEC's SNAP: every snapshot whose id starts with spec (spec 8 to 64 hex
 * digits) or whose name is spec is a candidate; exactly one must remain. A
 * full id or a name may not also match another snapshot's name or id: that
 * is what keeps a name chosen to look like someone else's id from ever
 * standing for it. */
CAIRN_EXTERN int cairn_snapshot_resolve_ext(char id_out[65], cairn_repo *repo, const char *spec,
                                            const char *user, unsigned flags)
{
	cairn_snapshot_list *all = NULL;
	const cairn_snapshot_info **cand = NULL;
	char named[NAMED_CANDIDATES * 200];
	int rc;
	if (!spec || !*spec) return error_set(CAIRN_EUSAGE, "empty snapshot name");
	size_t len = strlen(spec), n = 0, by_name = 0;
	int hex = len >= 8 && len <= OID_HEX_LEN && is_hex(spec);
	if (len == OID_HEX_LEN && hex) {
		/* loaded directly first, so that its own damage is reported */
		snapshot_manifest m;
		rc = repo_load_snapshot(repo, spec, &m);
		snapshot_manifest_free(&m);
		if (rc < 0 && rc != CAIRN_ENOTFOUND) return rc;
		error_clear();
	}
	if ((rc = cairn_snapshot_list_load(&all, repo, NULL)) < 0) return rc;
	if (!(cand = calloc(all->n ? all->n : 1, sizeof(*cand)))) {
		rc = ERR_OOM();
		goto done;
	}
	for (size_t i = 0; i < all->n; i++) {
		const cairn_snapshot_info *s = &all->items[i];
		int users = !user || strcmp(s->user, user) == 0;
		int name = users && strcmp(s->name, spec) == 0;
		int id = hex && strncmp(s->id, spec, len) == 0 && (users || !(flags & CAIRN_RESOLVE_USER_ONLY));
		if (name || id) cand[n++] = s;
		by_name += name;
	}
	if (n == 1 && (flags & CAIRN_RESOLVE_NO_PREFIX) && !by_name && len != OID_HEX_LEN) {
		rc = error_set(CAIRN_EUSAGE,
		               "snapshot %s: an id prefix (of %s, user %s, name %s); give the full id or the name",
		               spec, cand[0]->id, cand[0]->user, cand[0]->name);
	} else if (n == 1) {
		memcpy(id_out, cand[0]->id, OID_HEX_LEN + 1);
	} else if (n > 1) {
		name_candidates(named, sizeof(named), cand, n);
		rc = error_set(CAIRN_EUSAGE, "snapshot %s: ambiguous, it matches %zu snapshots: %s; give a full id%s",
		               spec, n, named, user ? "" : ", or --user to narrow names");
	} else if (all->damaged) {
		rc = error_set(CAIRN_ECORRUPT, "snapshot %s: not found, and %zu manifest(s) are damaged (%s)",
		               spec, all->damaged, all->damage);
	} else {
		int named_user = user && (!hex || (flags & CAIRN_RESOLVE_USER_ONLY));
		rc = error_set(CAIRN_ENOTFOUND, "snapshot %s: not found%s%s", spec,
		               named_user ? " for user " : "", named_user ? user : "");
	}
done:
	free(cand);
	cairn_snapshot_list_free(all);
	return rc;
}

CAIRN_EXTERN int cairn_snapshot_resolve(char id_out[65], cairn_repo *repo, const char *spec,
                                        const char *user)
{
	return cairn_snapshot_resolve_ext(id_out, repo, spec, user, 0);
}
