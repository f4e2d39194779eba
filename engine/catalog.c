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

CAIRN_EXTERN int cairn_snapshot_resolve(char id_out[65], cairn_repo *repo, const char *spec,
                                        const char *user)
{
	cairn_snapshot_list *l;
	if (!spec || !*spec) return error_set(CAIRN_EUSAGE, "empty snapshot name");
	if (strlen(spec) == OID_HEX_LEN && is_hex(spec)) {
		/* a full id: load it directly so that its own damage is reported */
		snapshot_manifest m;
		int rc = repo_load_snapshot(repo, spec, &m);
		if (rc == 0 && user && strcmp(m.user, user) != 0)
			rc = error_set(CAIRN_ENOTFOUND, "snapshot %s: not found for user %s", spec, user);
		snapshot_manifest_free(&m);
		if (rc == 0) memcpy(id_out, spec, OID_HEX_LEN + 1);
		return rc;
	}
	int rc = cairn_snapshot_list_load(&l, repo, user);
	if (rc < 0) return rc;
	size_t len = strlen(spec), by_id = 0, by_name = 0;
	const cairn_snapshot_info *id_match = NULL, *name_match = NULL;
	for (size_t i = 0; i < l->n; i++) {
		const cairn_snapshot_info *s = &l->items[i];
		if (len >= 8 && len <= OID_HEX_LEN && is_hex(spec) && strncmp(s->id, spec, len) == 0) {
			by_id++;
			id_match = s;
		}
		if (strcmp(s->name, spec) == 0) {
			by_name++;
			name_match = s;
		}
	}
	/* an id prefix wins over a name: ids are what scripts pass */
	if (by_id == 1) {
		memcpy(id_out, id_match->id, OID_HEX_LEN + 1);
	} else if (by_id > 1) {
		rc = error_set(CAIRN_EUSAGE, "snapshot %s: id prefix matches %zu snapshots", spec, by_id);
	} else if (by_name == 1) {
		memcpy(id_out, name_match->id, OID_HEX_LEN + 1);
	} else if (by_name > 1) {
		rc = error_set(CAIRN_EUSAGE,
		               "snapshot %s: name matches %zu snapshots; give an id%s", spec, by_name,
		               user ? "" : " or --user");
	} else if (l->damaged) {
		rc = error_set(CAIRN_ECORRUPT, "snapshot %s: not found, and %zu manifest(s) are damaged (%s)",
		               spec, l->damaged, l->damage);
	} else {
		rc = error_set(CAIRN_ENOTFOUND, "snapshot %s: not found%s%s", spec, user ? " for user " : "",
		               user ? user : "");
	}
	cairn_snapshot_list_free(l);
	return rc;
}
