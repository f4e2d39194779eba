/* Quotas (internal.h): the blobs of a snapshot being written and the commit
 * protocol (quota_tracker_*, quota_commit_*). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "error.h"
#include "user.h"

struct quota_tracker {
	cairn_repo *repo;
	pthread_mutex_t lock;
	/* The blobs of the snapshot: those among the parent's refs at the
	 * same size as bits over parent.v (parent_used: a bit a ref, where a
	 * table took 60-120 bytes an id; an incremental take references mostly
	 * those), the others in set (id -> stored size, refs 1). An id is in
	 * one of the two, where it was first added. */
	utable set;
	uint8_t *parent_used;
	size_t nparent_used;
	int bound, enforce;
	ustate st;       /* the user's state: at bind, reloaded under the lock at commit */
	uint64_t need;   /* stored size of the set's blobs the user is not charged for */
	store_lock *ulock;
	int charged;
	ulog entry;
	uref *refs;      /* the charged refs, sorted */
	size_t nrefs;
	refs_set parent; /* the parent snapshot's refs: known stored sizes, the delta's base */
	char parent_user[72];
	uref *prior;     /* blobs added before quota_tracker_restart, sorted: known too */
	size_t nprior;
	ref_dir parent_dir, prior_dir; /* lookups in parent.v and prior */
	/* While the walk runs, the parent's refs are most often the user's
	 * blobs at the same sizes: they are then bits over st.blobs (parent_in,
	 * a bit a user's blob), parent.v is freed, and parent_used is over
	 * st.blobs too; back to an array of their own (parent_unshare) before
	 * st is replaced. */
	uint8_t *parent_in;
};

int quota_tracker_new(quota_tracker **out, cairn_repo *r)
{
	quota_tracker *t = calloc(1, sizeof(*t));
	*out = NULL;
	if (!t) return ERR_OOM();
	t->repo = r;
	pthread_mutex_init(&t->lock, NULL);
	ut_init(&t->set);
	ustate_init(&t->st, "");
	*out = t;
	return 0;
}

void quota_tracker_free(quota_tracker *t)
{
	if (!t) return;
	quota_commit_end(t, 0);
	ut_free(&t->set);
	free(t->parent_used);
	free(t->parent_in);
	ustate_free(&t->st);
	free(t->refs);
	refs_set_free(&t->parent);
	free(t->prior);
	ref_dir_free(&t->parent_dir);
	ref_dir_free(&t->prior_dir);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static int bit(const uint8_t *bits, size_t i) { return bits[i >> 3] >> (i & 7) & 1; }
static int parent_bit(const quota_tracker *t, size_t i) { return bit(t->parent_used, i); }

/* The parent's refs as places 0..parent_n: those with parent_member set. */
static size_t parent_n(const quota_tracker *t) { return t->parent_in ? t->st.blobs.n : t->parent.n; }
static const uref *parent_ref(const quota_tracker *t, size_t i)
{
	return t->parent_in ? &t->st.blobs.v[i] : &t->parent.v[i];
}
static int parent_member(const quota_tracker *t, size_t i) { return !t->parent_in || bit(t->parent_in, i); }
static const ref_dir *parent_dir(const quota_tracker *t)
{
	return t->parent_in ? &t->st.blobs.dir : &t->parent_dir;
}

/* The place of a ref of the parent's (any, used or not) with id, or -1. */
static ptrdiff_t parent_index(const quota_tracker *t, const oid *id)
{
	ptrdiff_t i = ref_dir_index(parent_dir(t), id);
	return i >= 0 && parent_member(t, (size_t)i) ? i : -1;
}

/* The parent's refs in st.blobs, when every one of them is there at the
 * same size: got.v is then freed (got keeps what the refs delta needs). */
static int parent_share(quota_tracker *t, refs_set *got)
{
	const ublobs *b = &t->st.blobs;
	if (!t->bound || got->n == 0 || got->n > b->n) return 0;
	uint8_t *in = calloc(b->n / 8 + 1, 1);
	if (!in) return ERR_OOM();
	size_t j = 0;
	for (size_t i = 0; i < got->n; i++) {
		while (j < b->n && oid_cmp(&b->v[j].id, &got->v[i].id) < 0) j++;
		if (j == b->n || oid_cmp(&b->v[j].id, &got->v[i].id) != 0 || b->v[j].size != got->v[i].size) {
			free(in);
			return 0; /* not all there: an array of their own */
		}
		in[j >> 3] |= (uint8_t)(1u << (j & 7));
	}
	free(got->v);
	got->v = NULL;
	got->n = 0;
	t->parent_in = in;
	return 1;
}

/* Back to an array of the parent's own, its used bits over it. */
static int parent_unshare(quota_tracker *t)
{
	if (!t->parent_in) return 0;
	size_t n = 0, k = 0;
	for (size_t i = 0; i < t->st.blobs.n; i++) n += bit(t->parent_in, i);
	uref *v = malloc((n ? n : 1) * sizeof(*v));
	uint8_t *used = t->parent_used ? calloc(n / 8 + 1, 1) : NULL;
	if (!v || (t->parent_used && !used)) {
		free(v);
		free(used);
		return ERR_OOM();
	}
	for (size_t i = 0; i < t->st.blobs.n; i++) {
		if (!bit(t->parent_in, i)) continue;
		if (used && bit(t->parent_used, i)) used[k >> 3] |= (uint8_t)(1u << (k & 7));
		v[k++] = t->st.blobs.v[i];
		v[k - 1].refs = 1;
	}
	free(t->parent_in);
	t->parent_in = NULL;
	free(t->parent_used);
	t->parent_used = used;
	t->parent.v = v;
	t->parent.n = n;
	ref_dir_build(&t->parent_dir, v, n);
	return 0;
}

static uint64_t recompute_need(quota_tracker *t)
{
	uint64_t need = 0;
	for (size_t i = 0; i < t->set.cap; i++)
		if (t->set.s[i].used && !ub_charged(&t->st.blobs, &t->set.s[i].id)) need += t->set.s[i].size;
	for (size_t i = 0; t->nparent_used && i < parent_n(t); i++)
		if (parent_bit(t, i) && !ub_charged(&t->st.blobs, &parent_ref(t, i)->id)) need += parent_ref(t, i)->size;
	return need;
}

/* The place of id among the parent's refs when the snapshot has it there, else -1. */
static ptrdiff_t parent_has(const quota_tracker *t, const oid *id)
{
	ptrdiff_t i = t->nparent_used ? parent_index(t, id) : -1;
	return i >= 0 && parent_bit(t, (size_t)i) ? i : -1;
}

/* The snapshot's blobs, sorted: the set's and the parent's bits merged. */
static int take_sorted(quota_tracker *t, uref **out, size_t *n)
{
	uref *v, *m;
	size_t k;
	int rc = ut_sorted(&t->set, &v, &k);
	if (rc < 0 || !t->nparent_used) {
		*out = v;
		*n = k;
		return rc;
	}
	if (!(m = malloc((k + t->nparent_used) * sizeof(*m)))) {
		free(v);
		*out = NULL;
		*n = 0;
		return ERR_OOM();
	}
	size_t o = 0, j = 0;
	for (size_t i = 0; i < parent_n(t); i++) {
		if (!parent_bit(t, i)) continue;
		const uref *pr = parent_ref(t, i);
		while (j < k && oid_cmp(&v[j].id, &pr->id) < 0) m[o++] = v[j++];
		m[o++] = (uref){pr->id, pr->size, 1};
	}
	while (j < k) m[o++] = v[j++];
	free(v);
	*out = m;
	*n = o;
	return 0;
}

/* Back to the set alone (the parent's refs replaced, or freed). */
static int parent_bits_drop(quota_tracker *t)
{
	for (size_t i = 0; t->nparent_used && i < parent_n(t); i++) {
		if (!parent_bit(t, i)) continue;
		uslot *s = ut_get(&t->set, &parent_ref(t, i)->id);
		if (!s) return ERR_OOM();
		s->refs = 1;
		s->size = parent_ref(t, i)->size;
	}
	free(t->parent_used);
	t->parent_used = NULL;
	t->nparent_used = 0;
	return 0;
}

static int over_quota(const ustate *s, uint64_t need)
{
	return s->has_quota && need > 0 && s->used + need > s->quota;
}

static int quota_error(const ustate *s, uint64_t need, const char *at_least)
{
	return error_set(CAIRN_EQUOTA,
	                 "user %s: quota exceeded: the take needs %s%llu bytes, the user uses %llu of a quota of %llu bytes",
	                 s->user, at_least, (unsigned long long)need, (unsigned long long)s->used,
	                 (unsigned long long)s->quota);
}

int quota_tracker_bind(quota_tracker *t, const char *user, int enforce)
{
	int rc = user_name_check(user);
	if (rc < 0) return rc;
	ustate s;
	if ((rc = ustate_load(t->repo, user, LOAD_READ, &s)) < 0) return rc;
	pthread_mutex_lock(&t->lock);
	if ((rc = parent_unshare(t)) < 0) { /* st goes */
		pthread_mutex_unlock(&t->lock);
		ustate_free(&s);
		return rc;
	}
	ustate_free(&t->st);
	t->st = s;
	t->bound = 1;
	t->enforce = enforce;
	t->need = recompute_need(t);
	if (enforce && over_quota(&t->st, t->need)) rc = quota_error(&t->st, t->need, "at least ");
	pthread_mutex_unlock(&t->lock);
	return rc;
}

size_t quota_tracker_table_ids(quota_tracker *t)
{
	pthread_mutex_lock(&t->lock);
	size_t n = t->set.n;
	pthread_mutex_unlock(&t->lock);
	return n;
}

int quota_tracker_seen(quota_tracker *t, const oid *id)
{
	pthread_mutex_lock(&t->lock);
	int seen = ut_find(&t->set, id) != NULL || parent_has(t, id) >= 0;
	pthread_mutex_unlock(&t->lock);
	return seen;
}

/* quota_tracker_add, t->lock held. */
static int add_locked(quota_tracker *t, const oid *id, uint32_t stored)
{
	int rc = 1;
	uslot *s = ut_find(&t->set, id);
	ptrdiff_t p = s || !t->parent_used ? -1 : parent_index(t, id);
	if (s && s->refs) {
		rc = 0;
	} else if (p >= 0 && parent_bit(t, (size_t)p)) {
		rc = 0;
	} else if (p >= 0 && parent_ref(t, (size_t)p)->size == stored) { /* a bit, not a slot */
		t->parent_used[p >> 3] |= (uint8_t)(1u << (p & 7));
		t->nparent_used++;
	} else if (!(s = ut_get(&t->set, id))) {
		rc = ERR_OOM();
	} else {
		s->refs = 1;
		s->size = stored;
	}
	if (rc == 1 && t->bound && !ub_charged(&t->st.blobs, id)) t->need += stored;
	/* as soon as it is known: every later put fails too */
	if (rc >= 0 && t->bound && t->enforce && over_quota(&t->st, t->need))
		rc = quota_error(&t->st, t->need, "at least ");
	return rc;
}

int quota_tracker_add(quota_tracker *t, const oid *id, uint32_t stored)
{
	pthread_mutex_lock(&t->lock);
	int rc = add_locked(t, id, stored);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int quota_tracker_add_each(quota_tracker *t, const void *ids, size_t stride, const uint32_t *stored, size_t n)
{
	int rc = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < n && rc >= 0; i++) rc = add_locked(t, (const oid *)((const char *)ids + i * stride), stored[i]);
	pthread_mutex_unlock(&t->lock);
	return rc < 0 ? rc : 0;
}

void quota_tracker_parent(quota_tracker *t, const char *user, const char *snap_hex)
{
	oid snap;
	refs_set got;
	/* only a shortcut: without the record every blob is looked up, and the
	 * take's refs are written whole */
	if (user_name_check(user) < 0 || hex_decode(snap.b, OID_LEN, snap_hex) < 0 ||
	    read_refs_set(t->repo, user, &snap, NULL, &got) < 0) {
		error_clear();
		return;
	}
	pthread_mutex_lock(&t->lock);
	size_t nrefs = got.n;
	if (parent_bits_drop(t) < 0) { /* only a shortcut, as above */
		pthread_mutex_unlock(&t->lock);
		refs_set_free(&got);
		error_clear();
		return;
	}
	free(t->parent_in);
	t->parent_in = NULL;
	refs_set_free(&t->parent);
	if (parent_share(t, &got) < 0) error_clear(); /* then an array of its own */
	t->parent = got;
	uint8_t *bits = calloc(parent_n(t) / 8 + 1, 1);
	if (!bits) { /* only a shortcut, as above */
		free(t->parent_in);
		t->parent_in = NULL;
		refs_set_free(&t->parent);
		pthread_mutex_unlock(&t->lock);
		error_clear();
		return;
	}
	prefault(bits, parent_n(t) / 8 + 1); /* not where the frozen capture sets them */
	t->parent_used = bits;
	if (t->parent_in)
		ref_dir_free(&t->parent_dir);
	else
		ref_dir_build(&t->parent_dir, t->parent.v, t->parent.n);
	snprintf(t->parent_user, sizeof(t->parent_user), "%s", user);
	/* the take references about as many; its new blobs go to the set */
	if (ut_reserve(&t->set, nrefs / 16) < 0) error_clear();
	pthread_mutex_unlock(&t->lock);
}

int quota_tracker_restart(quota_tracker *t, size_t more)
{
	pthread_mutex_lock(&t->lock);
	uref *v;
	size_t n, in_set = t->set.n;
	int rc = take_sorted(t, &v, &n);
	if (rc == 0) {
		free(t->prior);
		t->prior = v;
		t->nprior = n;
		ref_dir_build(&t->prior_dir, v, n);
		ut_free(&t->set);
		ut_init(&t->set);
		if (t->parent_used) memset(t->parent_used, 0, parent_n(t) / 8 + 1);
		t->nparent_used = 0;
		t->need = 0;
		/* the frozen capture references about what the pre-copy did,
		 * and the trees: growing the table would cost the pause */
		if (ut_reserve(&t->set, in_set + more) < 0) error_clear();
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int quota_tracker_known(quota_tracker *t, const oid *id, uint32_t *stored)
{
	/* read-only while workers run (restart comes between captures): no lock */
	ptrdiff_t i = parent_index(t, id);
	if (i >= 0) *stored = parent_ref(t, (size_t)i)->size;
	return i >= 0 || ref_dir_find(&t->prior_dir, id, stored);
}

uint64_t quota_tracker_added(quota_tracker *t)
{
	pthread_mutex_lock(&t->lock);
	uint64_t n = t->charged ? t->entry.used_after - t->entry.used_before : t->need;
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* 1 when user's records hold nothing newer than t->st (no base or ledger
 * entry after it): ustate_load_once then resumes t->st with the same blobs. */
static int state_current(quota_tracker *t, const char *user)
{
	seqs bases = {0}, logs = {0};
	int current = list_seqs(t->repo, user, "base", &bases) == 0 && list_seqs(t->repo, user, "log", &logs) == 0 &&
	              strcmp(t->st.user, user) == 0 && (!bases.n || bases.v[bases.n - 1] <= t->st.seq) &&
	              (!logs.n || logs.v[logs.n - 1] <= t->st.seq);
	free(bases.v);
	free(logs.v);
	error_clear(); /* not current: the reload says what is wrong, if anything */
	return current;
}

int quota_commit_begin(quota_tracker *t, const char *user)
{
	int rc = user_name_check(user);
	if (rc < 0) return rc;
	if (t->bound && strcmp(t->st.user, user) != 0)
		return error_set(CAIRN_EUSAGE, "snapshot of user %s: tracked for user %s", user, t->st.user);
	if ((rc = quota_user_lock(t->repo, user, &t->ulock)) < 0) return rc;
	/* st is reloaded: the parent's refs stay bits over it only when the
	 * reload resumes it as it is (nothing written since it was bound) */
	const uref *v0 = t->st.blobs.v;
	size_t n0 = t->st.blobs.n;
	pthread_mutex_lock(&t->lock);
	rc = t->parent_in && !state_current(t, user) ? parent_unshare(t) : 0;
	pthread_mutex_unlock(&t->lock);
	if (rc < 0) goto fail;
	ustate s;
	/* the state bound to is current but for the entries written since:
	 * read only those (cost in proportion to what changed) */
	rc = t->bound ? ustate_load_once(t->repo, user, LOAD_REPAIR, &s, &t->st) : -1;
	if (t->parent_in && (rc < 0 || s.blobs.v != v0 || s.blobs.n != n0)) {
		/* the bits were over st, which is gone: the charge cannot be known */
		if (rc == 0) ustate_free(&s);
		if (rc == 0) rc = error_set(CAIRN_EIO, "quota: user %s: the state changed under the lock", user);
		free(t->parent_in);
		t->parent_in = NULL;
		refs_set_free(&t->parent);
		free(t->parent_used);
		t->parent_used = NULL;
		t->nparent_used = 0;
		goto fail;
	}
	if (rc < 0) {
		error_clear(); /* the full load says what is wrong, if anything */
		if ((rc = ustate_load(t->repo, user, LOAD_REPAIR, &s)) < 0) goto fail;
	}
	pthread_mutex_lock(&t->lock);
	ustate_free(&t->st);
	t->st = s;
	t->bound = 1;
	t->need = recompute_need(t);
	if (over_quota(&t->st, t->need)) rc = quota_error(&t->st, t->need, "");
	pthread_mutex_unlock(&t->lock);
	if (rc == 0) return 0;
fail:
	store_lock_release(t->ulock);
	t->ulock = NULL;
	return rc;
}

/* The parent's next ref from place *i on (NULL past the last); *i moves past it. */
static const uref *parent_next(const quota_tracker *t, size_t *i)
{
	while (*i < parent_n(t) && !parent_member(t, *i)) ++*i;
	return *i < parent_n(t) ? parent_ref(t, (*i)++) : NULL;
}

/* What differs between the parent's refs and the take's (b, sorted):
 * removed (the parent's not in b at the same size) and added (b's not in
 * the parent's), or only their counts where those are NULL. */
static void refs_delta(const quota_tracker *t, const uref *b, size_t nb, uref *removed, size_t *nremoved,
                       uref *added, size_t *nadded)
{
	size_t nr = 0, nd = 0, i = 0, j = 0;
	const uref *a = parent_next(t, &i);
	while (a || j < nb) {
		int c = !a ? 1 : j == nb ? -1 : oid_cmp(&a->id, &b[j].id);
		if (c == 0 && a->size == b[j].size) {
			a = parent_next(t, &i), j++;
			continue;
		}
		if (c <= 0 && removed) removed[nr] = (uref){a->id, a->size, 1};
		if (c <= 0) nr++, a = parent_next(t, &i); /* a changed size: out, then in */
		if (c >= 0 && added) added[nd] = b[j];
		if (c >= 0) nd++, j++;
	}
	*nremoved = nr;
	*nadded = nd;
}

/* The take's refs as a delta on its parent's when the parent is charged to
 * the same user (its record then stays until no delta needs it: compact)
 * and the change is at most half the set; else whole. */
static int write_take_refs(quota_tracker *t, const oid *snap)
{
	const refs_set *p = &t->parent;
	uref *removed = NULL, *added = NULL;
	size_t nr = 0, na = 0;
	int rc;
	if (!p->have || p->depth >= REFS_DEPTH_MAX || strcmp(t->parent_user, t->st.user) != 0 ||
	    !ut_charged(&t->st.snaps, &p->snap))
		return write_refs(t->repo, t->st.user, snap, NULL, NULL, 0, t->refs, t->nrefs);
	refs_delta(t, t->refs, t->nrefs, NULL, &nr, NULL, &na); /* counted first: */
	if ((nr + na) * 2 > t->nrefs) /* a delta is a few refs, where room for whole sets took 80 bytes a ref */
		return write_refs(t->repo, t->st.user, snap, NULL, NULL, 0, t->refs, t->nrefs);
	if (!(removed = malloc((nr + 1) * sizeof(*removed))) || !(added = malloc((na + 1) * sizeof(*added)))) {
		rc = ERR_OOM();
		goto done;
	}
	refs_delta(t, t->refs, t->nrefs, removed, &nr, added, &na);
	rc = write_refs(t->repo, t->st.user, snap, p, removed, nr, added, na);
done:
	free(removed);
	free(added);
	return rc;
}

int quota_commit_charge(quota_tracker *t, const char *snap_hex)
{
	oid snap;
	int rc;
	if (!t->ulock) return error_set(CAIRN_EIO, "quota: charge without the user's lock");
	if (hex_decode(snap.b, OID_LEN, snap_hex) < 0)
		return error_set(CAIRN_EUSAGE, "snapshot id %s: not a full hex id", snap_hex);
	if ((rc = store_lock_refresh(t->ulock)) < 0) return rc;
	free(t->refs);
	if ((rc = take_sorted(t, &t->refs, &t->nrefs)) < 0) return rc;
	if ((rc = write_take_refs(t, &snap)) < 0) return rc;
	t->entry = (ulog){t->st.seq + 1, OP_ADD, snap, t->st.used, t->st.used + t->need, t->st.nsnaps,
	                  t->st.nsnaps + 1};
	if ((rc = write_log(t->repo, t->st.user, &t->entry)) < 0) {
		char name[200];
		refs_name(name, sizeof(name), t->st.user, &snap);
		quota_delete_quiet(t->repo, name);
		return rc;
	}
	t->charged = 1;
	return 0;
}

void quota_commit_end(quota_tracker *t, int committed)
{
	if (!t->ulock) return;
	char name[200];
	if (t->charged && !committed) {
		/* the manifest is not there: take the charge back (a crash here is
		 * settled by the next locked load the same way) */
		seq_name(name, sizeof(name), t->st.user, "log", t->entry.seq);
		quota_delete_quiet(t->repo, name);
		refs_name(name, sizeof(name), t->st.user, &t->entry.snap);
		quota_delete_quiet(t->repo, name);
		t->charged = 0;
	} else if (t->charged) {
		/* committed: the set lives on as the sorted refs; its table
		 * would double the commit's peak while the user's grows */
		ut_free(&t->set);
		ut_init(&t->set);
		free(t->parent_used);
		t->parent_used = NULL;
		t->nparent_used = 0;
		free(t->parent_in); /* st changes next */
		t->parent_in = NULL;
		if (ustate_apply(&t->st, 1, &t->entry.snap, t->refs, t->nrefs, "commit") == 0) {
			t->st.seq = t->entry.seq;
			ustate_compact(t->repo, &t->st, 0);
		}
		error_clear();
		/* the tracker is done but for what it charged (t->entry): its
		 * tables go now, not with the writer after the index is extended */
		ustate_free(&t->st);
		ustate_init(&t->st, "");
		free(t->refs);
		t->refs = NULL;
		t->nrefs = 0;
		refs_set_free(&t->parent);
		ref_dir_free(&t->parent_dir);
		free(t->prior);
		t->prior = NULL;
		t->nprior = 0;
		ref_dir_free(&t->prior_dir);
	}
	store_lock_release(t->ulock);
	t->ulock = NULL;
}
