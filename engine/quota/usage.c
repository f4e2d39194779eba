/* Quotas (internal.h): reading a user's figures and the list of users,
 * cairn_usage_*. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "user.h"

int quota_usage_get(cairn_repo *r, const char *user, quota_usage *out)
{
	int rc = user_name_check(user);
	memset(out, 0, sizeof(*out));
	if (rc < 0) return rc;
	snprintf(out->user, sizeof(out->user), "%s", user);
	if ((rc = read_quota(r, user, &out->has_quota, &out->quota)) < 0) return rc;
	for (int i = 0; i < LOAD_TRIES; i++) {
		seqs q;
		ulog e;
		if ((rc = list_seqs(r, user, "log", &q)) < 0) return rc;
		if (q.n == 0) {
			free(q.v);
			return 0;
		}
		uint64_t top = q.v[q.n - 1];
		free(q.v);
		rc = read_log(r, user, top, &e);
		if (rc == CAIRN_ENOTFOUND) continue; /* rolled back meanwhile */
		if (rc < 0) return rc;
		int settled = 1;
		if (e.op == OP_ADD && (settled = quota_manifest_exists(r, &e.snap)) < 0) return settled;
		out->used = settled ? e.used_after : e.used_before;
		out->snapshots = settled ? e.snaps_after : e.snaps_before;
		return 0;
	}
	return error_set(CAIRN_EBUSY, "user %s: the ledger kept changing while read", user);
}

/* 1 when rest (what follows "users/U/") names one of U's records
 * (format.h): anything else under users/ is no user's, e.g. what a name
 * such as "." wrote before such names were refused. */
static int is_user_record(const char *rest)
{
	static const struct { const char *kind; size_t hex; } kinds[] = {
		{"refs/", OID_HEX_LEN}, {"log/", 16}, {"base/", 16}};
	if (!strcmp(rest, "quota")) return 1;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		size_t n = strlen(kinds[k].kind);
		if (strncmp(rest, kinds[k].kind, n) != 0) continue;
		const char *h = rest + n;
		if (strlen(h) != kinds[k].hex) return 0;
		for (; *h; h++)
			if (!((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f'))) return 0;
		return 1;
	}
	return 0;
}

static int add_user_name(const char *name, void *payload)
{
	names *l = payload;
	const char *u = name + strlen("users/"), *slash = strchr(u, '/');
	if (!slash || slash == u || (size_t)(slash - u) > USER_NAME_MAX || !is_user_record(slash + 1)) return 0;
	for (size_t i = 0; i < l->n; i++) /* listing is grouped by user: the last one repeats */
		if (strlen(l->v[l->n - 1 - i]) == (size_t)(slash - u) && !strncmp(l->v[l->n - 1 - i], u, (size_t)(slash - u)))
			return 0;
	char **v = vec_grow(l->v, &l->cap, l->n + 1, sizeof(*v));
	if (!v) return ERR_OOM();
	l->v = v;
	char *s = strndup(u, (size_t)(slash - u));
	if (!s) return ERR_OOM();
	if (!user_name_valid(s)) {
		free(s);
		return 0;
	}
	l->v[l->n++] = s;
	return 0;
}

int quota_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int quota_users(cairn_repo *r, char ***out, size_t *n)
{
	names l = {0};
	*out = NULL;
	*n = 0;
	int rc = store_list(r->st, "users", add_user_name, &l);
	if (rc < 0) {
		quota_users_free(l.v, l.n);
		return rc;
	}
	if (l.n) qsort(l.v, l.n, sizeof(*l.v), quota_str_cmp);
	*out = l.v;
	*n = l.n;
	return 0;
}

void quota_users_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++) free(v[i]);
	free(v);
}

static void to_public(cairn_usage *out, const quota_usage *u)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->user, sizeof(out->user), "%s", u->user);
	out->used_bytes = u->used;
	out->snapshots = u->snapshots;
	out->has_quota = u->has_quota;
	out->quota_bytes = u->quota;
}

CAIRN_EXTERN int cairn_usage_get(cairn_usage *out, cairn_repo *repo, const char *user)
{
	quota_usage u;
	int rc = quota_usage_get(repo, user, &u);
	if (rc == 0) to_public(out, &u);
	return rc;
}

CAIRN_EXTERN int cairn_usage_list(cairn_usage **out, size_t *count, cairn_repo *repo)
{
	char **users;
	size_t n;
	*out = NULL;
	*count = 0;
	int rc = quota_users(repo, &users, &n);
	if (rc < 0) return rc;
	cairn_usage *v = calloc(n ? n : 1, sizeof(*v));
	if (!v) rc = ERR_OOM();
	for (size_t i = 0; i < n && rc == 0; i++) rc = cairn_usage_get(&v[i], repo, users[i]);
	quota_users_free(users, n);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*out = v;
	*count = n;
	return 0;
}

CAIRN_EXTERN void cairn_usage_list_free(cairn_usage *list) { free(list); }
