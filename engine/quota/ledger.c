/* Quotas (internal.h): a user's state: base records, the ledger replayed over
 * it, settling a crashed operation, compaction, the user lock. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"

void ustate_init(ustate *s, const char *user)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->user, sizeof(s->user), "%s", user);
	ut_init(&s->snaps);
}

void ustate_free(ustate *s)
{
	ub_free(&s->blobs);
	ut_free(&s->snaps);
	free(s->forgotten);
	memset(s, 0, sizeof(*s));
}

int write_base(cairn_repo *r, const ustate *s)
{
	uint8_t *data = NULL;
	size_t len, ns;
	uref *snaps = NULL;
	char name[160];
	int rc;
	if ((rc = ut_sorted(&s->snaps, &snaps, &ns)) < 0) goto done;
	if ((rc = quota_base_encode(s->user, s->seq, s->used, snaps, ns, s->blobs.v, s->blobs.n, &data, &len)) < 0)
		goto done;
	seq_name(name, sizeof(name), s->user, "base", s->seq);
	rc = store_put(r->st, name, data, len, 0);
done:
	free(data);
	free(snaps);
	return rc;
}

static int read_base(cairn_repo *r, uint64_t seq, ustate *s)
{
	char name[160];
	uint8_t *data = NULL;
	size_t len;
	base_rec b;
	seq_name(name, sizeof(name), s->user, "base", seq);
	int rc = store_get(r->st, name, RECORD_MAX, &data, &len);
	if (rc < 0) return rc;
	if ((rc = quota_base_decode(data, len, name, s->user, &b)) < 0) goto done;
	if (b.seq != seq) {
		rc = error_set(CAIRN_ECORRUPT, "%s: bad header", name);
		goto done;
	}
	/* sized once (the counts are bounded by the record's length): growing
	 * by doubling rehashed every id and faulted in each bigger table */
	if ((rc = ut_reserve(&s->snaps, b.nsnaps)) < 0) goto done;
	uref *blobs = malloc((b.nblobs ? b.nblobs : 1) * sizeof(*blobs));
	if (!blobs) {
		rc = ERR_OOM();
		goto done;
	}
	for (uint32_t i = 0; i < b.nblobs; i++) quota_base_blob(&b, i, &blobs[i]); /* ascending, counted (decoded) */
	ub_set(&s->blobs, blobs, b.nblobs);
	for (uint32_t i = 0; i < b.nsnaps; i++) {
		oid id;
		quota_base_snap(&b, i, &id);
		uslot *sl = ut_get(&s->snaps, &id);
		if (!sl) {
			rc = ERR_OOM();
			goto done;
		}
		sl->refs = 1;
	}
	s->seq = s->base_seq = seq;
	s->used = b.used;
	s->nsnaps = b.nsnaps;
done:
	free(data);
	return rc;
}

/* Apply an add (sign 1) or forget (-1) of snapshot snap with blobs v. */
int ustate_apply(ustate *s, int sign, const oid *snap, const uref *v, size_t n, const char *what)
{
	uslot *ss = ut_get(&s->snaps, snap);
	if (!ss) return ERR_OOM();
	if ((sign > 0) == (ss->refs > 0))
		return error_set(CAIRN_ECORRUPT, "%s: snapshot %s charged", what, sign > 0 ? "already" : "not");
	ss->refs = sign > 0;
	s->nsnaps += (uint64_t)(int64_t)sign;
	if (sign < 0) {
		oid *f = vec_grow(s->forgotten, &s->capforgotten, s->nforgotten + 1, sizeof(*f));
		if (!f) return ERR_OOM();
		s->forgotten = f;
		s->forgotten[s->nforgotten++] = *snap;
	}
	return ub_apply(&s->blobs, sign, v, n, &s->used, what);
}

static int add_seq(const char *name, void *payload)
{
	seqs *q = payload;
	const char *leaf = strrchr(name, '/');
	leaf = leaf ? leaf + 1 : name;
	uint8_t raw[8];
	if (strlen(leaf) != 16 || hex_decode(raw, 8, leaf) < 0) return 0; /* not ours */
	uint64_t *v = vec_grow(q->v, &q->cap, q->n + 1, sizeof(*v));
	if (!v) return ERR_OOM();
	q->v = v;
	q->v[q->n++] = strtoull(leaf, NULL, 16);
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int list_seqs(cairn_repo *r, const char *user, const char *kind, seqs *q)
{
	char dir[160];
	memset(q, 0, sizeof(*q));
	obj_name(dir, sizeof(dir), user, kind, NULL);
	int rc = store_list(r->st, dir, add_seq, q);
	if (rc == 0 && q->n) qsort(q->v, q->n, sizeof(*q->v), u64_cmp);
	return rc;
}

int quota_manifest_exists(cairn_repo *r, const oid *snap)
{
	char name[OID_HEX_LEN + 16], hex[OID_HEX_LEN + 1];
	uint64_t size;
	oid_hex(hex, snap);
	snprintf(name, sizeof(name), "snapshots/%s", hex);
	int rc = store_size(r->st, name, &size);
	if (rc == CAIRN_ENOTFOUND) error_clear();
	return rc == 0 ? 1 : rc == CAIRN_ENOTFOUND ? 0 : rc;
}

/* Finish a forget: its manifest goes. */
static int finish_forget(cairn_repo *r, const oid *snap)
{
	char hex[OID_HEX_LEN + 1], mname[OID_HEX_LEN + 16];
	oid_hex(hex, snap);
	snprintf(mname, sizeof(mname), "snapshots/%s", hex);
	int rc = store_delete(r->st, mname);
	if (rc == CAIRN_ENOTFOUND) {
		error_clear();
		rc = 0;
	}
	return rc;
}

/* prior (may be NULL): a state of user loaded earlier, taken over (and
 * emptied) when no base was written since, so only newer entries are read. */
int ustate_load_once(cairn_repo *r, const char *user, enum load_mode mode, ustate *s, ustate *prior)
{
	seqs bases = {0}, logs = {0};
	refs_set prev = {0}; /* the refs read last: the base of the next delta, usually */
	char name[200];
	int rc, resumed = 0;
	ustate_init(s, user);
	if ((rc = list_seqs(r, user, "base", &bases)) < 0) goto done;
	if ((rc = list_seqs(r, user, "log", &logs)) < 0) goto done;
	if (prior && strcmp(prior->user, user) == 0 && (!bases.n || bases.v[bases.n - 1] <= prior->seq)) {
		ustate_free(s);
		*s = *prior;
		ustate_init(prior, user);
		resumed = 1;
	}
	if ((rc = read_quota(r, user, &s->has_quota, &s->quota)) < 0) goto done;
	if (!resumed && bases.n && (rc = read_base(r, bases.v[bases.n - 1], s)) < 0) goto done;
	size_t first = 0;
	while (first < logs.n && logs.v[first] <= s->seq) first++;
	if (resumed && mode == LOAD_REPAIR && first == logs.n && logs.n && logs.v[logs.n - 1] == s->seq) {
		/* the last entry was applied earlier without the lock: a forget's
		 * roll-forward (its manifest goes) is still due */
		ulog e;
		if ((rc = read_log(r, user, s->seq, &e)) < 0) goto done;
		if (e.op == OP_FORGET && (rc = finish_forget(r, &e.snap)) < 0) goto done;
	}
	for (size_t i = first; i < logs.n; i++) {
		ulog e;
		int last = i + 1 == logs.n;
		seq_name(name, sizeof(name), user, "log", logs.v[i]);
		if (logs.v[i] != s->seq + 1) {
			rc = error_set(CAIRN_ECORRUPT, "users/%s/log: entry %llu is missing", user,
			               (unsigned long long)(s->seq + 1));
			goto done;
		}
		if ((rc = read_log(r, user, logs.v[i], &e)) < 0) goto done;
		if (e.op == OP_CHECKPOINT) {
			rc = error_set(CAIRN_ECORRUPT, "%s: a checkpoint without its base", name);
			goto done;
		}
		if (last && e.op == OP_ADD) {
			int has = quota_manifest_exists(r, &e.snap);
			if (has < 0) {
				rc = has;
				goto done;
			}
			if (!has) { /* a take that did not reach its commit point */
				if (mode == LOAD_REPAIR) {
					if ((rc = store_delete(r->st, name)) < 0) goto done;
					refs_name(name, sizeof(name), user, &e.snap);
					if (store_delete(r->st, name) < 0) error_clear();
				}
				break;
			}
		}
		if (e.used_before != s->used || e.snaps_before != s->nsnaps) {
			rc = error_set(CAIRN_ECORRUPT,
			               "%s: says usage was %llu bytes in %llu snapshots; the records before it give %llu in %llu",
			               name, (unsigned long long)e.used_before, (unsigned long long)e.snaps_before,
			               (unsigned long long)s->used, (unsigned long long)s->nsnaps);
			goto done;
		}
		refs_set got;
		if ((rc = read_refs_set(r, user, &e.snap, &prev, &got)) < 0) {
			if (rc == CAIRN_ENOTFOUND && mode == LOAD_REPAIR) rc = CAIRN_ECORRUPT;
			goto done;
		}
		refs_set_free(&prev);
		prev = got;
		if ((rc = ustate_apply(s, e.op == OP_ADD ? 1 : -1, &e.snap, prev.v, prev.n, name)) < 0) goto done;
		if (e.used_after != s->used || e.snaps_after != s->nsnaps) {
			rc = error_set(CAIRN_ECORRUPT,
			               "%s: says usage is %llu bytes in %llu snapshots; its refs give %llu in %llu",
			               name, (unsigned long long)e.used_after, (unsigned long long)e.snaps_after,
			               (unsigned long long)s->used, (unsigned long long)s->nsnaps);
			goto done;
		}
		s->seq = e.seq;
		if (last && e.op == OP_FORGET && mode == LOAD_REPAIR && (rc = finish_forget(r, &e.snap)) < 0) goto done;
	}
done:
	refs_set_free(&prev);
	free(bases.v);
	free(logs.v);
	if (rc < 0) {
		ustate_free(s);
		ustate_init(s, user);
	}
	return rc;
}

/* Without the lock, a compaction may delete what was listed: try again. */
int ustate_load(cairn_repo *r, const char *user, enum load_mode mode, ustate *s)
{
	int rc;
	for (int i = 0;; i++) {
		rc = ustate_load_once(r, user, mode, s, NULL);
		if (rc != CAIRN_ENOTFOUND || mode == LOAD_REPAIR || i + 1 == LOAD_TRIES) break;
		ustate_free(s);
	}
	if (rc == CAIRN_ENOTFOUND) {
		error_prefix("user %s", user);
		rc = CAIRN_ECORRUPT;
	}
	return rc;
}

void quota_delete_quiet(cairn_repo *r, const char *name)
{
	if (store_delete(r->st, name) < 0) error_clear();
}

static int is_forgotten(const ustate *s, const oid *snap)
{
	for (size_t i = 0; i < s->nforgotten; i++)
		if (oid_cmp(&s->forgotten[i], snap) == 0) return 1;
	return 0;
}

/* Rewrite whole every charged snapshot's refs that is a delta on a
 * forgotten one, so that the forgotten records can go. */
static int settle_dependents(cairn_repo *r, const ustate *s)
{
	char name[200];
	uint8_t head[FORMAT_HEADER_LEN];
	oid base;
	int rc = 0;
	for (size_t i = 0; i < s->snaps.cap && rc == 0; i++) {
		const uslot *sl = &s->snaps.s[i];
		if (!sl->used || !sl->refs) continue;
		refs_name(name, sizeof(name), s->user, &sl->id);
		if ((rc = store_get_range(r->st, name, 0, head, sizeof(head))) < 0) break;
		if (!(get_u32(head + 12) & REFS_DELTA)) continue;
		uint64_t at = FORMAT_HEADER_LEN + 2 + strlen(s->user) + OID_LEN;
		if ((rc = store_get_range(r->st, name, at, base.b, OID_LEN)) < 0 || !is_forgotten(s, &base)) continue;
		refs_set whole;
		if ((rc = read_refs_set(r, s->user, &sl->id, NULL, &whole)) < 0) break;
		rc = write_refs(r, s->user, &sl->id, NULL, NULL, 0, whole.v, whole.n);
		refs_set_free(&whole);
	}
	return rc;
}

/* Every COMPACT_EVERY entries: a base at the last entry; entries and bases
 * before it and the refs of forgotten snapshots go (after the deltas on
 * them are rewritten whole). The last entry stays: `usage` reads it.
 * Failures leave more to read, nothing wrong. */
void ustate_compact(cairn_repo *r, ustate *s, int force)
{
	char name[200];
	seqs q;
	if (!force && s->seq - s->base_seq < COMPACT_EVERY) return;
	if (write_base(r, s) < 0) {
		error_clear();
		return;
	}
	s->base_seq = s->seq;
	if (s->nforgotten && settle_dependents(r, s) < 0)
		error_clear(); /* kept, unreferenced: quota_rebuild removes them */
	else
		for (size_t i = 0; i < s->nforgotten; i++) {
			refs_name(name, sizeof(name), s->user, &s->forgotten[i]);
			quota_delete_quiet(r, name);
		}
	s->nforgotten = 0;
	const char *kinds[] = {"log", "base"};
	for (int k = 0; k < 2; k++) {
		if (list_seqs(r, s->user, kinds[k], &q) < 0) {
			error_clear();
			continue;
		}
		for (size_t i = 0; i < q.n; i++)
			if (q.v[i] < s->seq) {
				seq_name(name, sizeof(name), s->user, kinds[k], q.v[i]);
				quota_delete_quiet(r, name);
			}
		free(q.v);
	}
}

int quota_user_lock(cairn_repo *r, const char *user, store_lock **out)
{
	char name[80];
	snprintf(name, sizeof(name), "user-%s", user);
	return store_lock_acquire(out, r->st, name, LOCK_TTL_MS, LOCK_WAIT_MS);
}
