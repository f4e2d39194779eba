/* Quotas (internal.h): forgetting a snapshot (its usage released at once) and
 * setting a user's quota. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "cairn.h"
#include "error.h"
#include "inodes.h"
#include "user.h"

int quota_set(cairn_repo *r, const char *user, int has_quota, uint64_t limit)
{
	store_lock *l;
	char name[160];
	int rc = user_name_check(user);
	if (rc < 0) return rc;
	if ((rc = quota_user_lock(r, user, &l)) < 0) return rc;
	obj_name(name, sizeof(name), user, "quota", NULL);
	if (has_quota) {
		uint8_t *data = NULL;
		size_t len;
		if ((rc = quota_limit_encode(user, limit, &data, &len)) == 0) {
			rc = store_put(r->st, name, data, len, 0);
			free(data);
		}
	} else if ((rc = store_delete(r->st, name)) == CAIRN_ENOTFOUND) {
		error_clear();
		rc = 0;
	}
	store_lock_release(l);
	return rc;
}

int quota_forget(cairn_repo *r, const char *snap_hex, uint64_t *released)
{
	snapshot_manifest m;
	store_lock *l = NULL;
	ustate s;
	uref *v = NULL;
	size_t nv = 0;
	oid snap;
	char mname[OID_HEX_LEN + 16];
	int rc;
	if (released) *released = 0;
	if ((rc = repo_load_snapshot(r, snap_hex, &m)) < 0) return rc;
	hex_decode(snap.b, OID_LEN, snap_hex);
	snprintf(mname, sizeof(mname), "snapshots/%s", snap_hex);
	ustate_init(&s, m.user);
	if ((rc = user_name_check(m.user)) < 0) goto done;
	if ((rc = quota_user_lock(r, m.user, &l)) < 0) goto done;
	ustate_free(&s);
	if ((rc = ustate_load(r, m.user, LOAD_REPAIR, &s)) < 0) goto done;
	if (!ut_charged(&s.snaps, &snap)) {
		/* never charged (made before accounting, or repaired away) */
		rc = store_delete(r->st, mname);
		if (rc == CAIRN_ENOTFOUND) rc = error_set(CAIRN_ENOTFOUND, "snapshot %s: not found", snap_hex);
		goto done;
	}
	if ((rc = read_refs(r, m.user, &snap, &v, &nv)) < 0) {
		if (rc == CAIRN_ENOTFOUND) rc = CAIRN_ECORRUPT;
		goto done;
	}
	ulog e = {s.seq + 1, OP_FORGET, snap, s.used, 0, s.nsnaps, 0};
	if ((rc = ustate_apply(&s, -1, &snap, v, nv, mname)) < 0) goto done;
	e.used_after = s.used;
	e.snaps_after = s.nsnaps;
	/* the entry first: a crash before the delete is finished by the next load */
	if ((rc = write_log(r, m.user, &e)) < 0) goto done;
	s.seq = e.seq;
	if ((rc = store_delete(r->st, mname)) == CAIRN_ENOTFOUND) {
		error_clear();
		rc = 0;
	}
	if (rc < 0) goto done;
	if (released) *released = e.used_before - e.used_after;
	ustate_compact(r, &s, 0);
done:
	store_lock_release(l);
	free(v);
	ustate_free(&s);
	snapshot_manifest_free(&m);
	return rc;
}

CAIRN_EXTERN int cairn_quota_set(cairn_repo *repo, const char *user, int has_quota, uint64_t bytes)
{
	repo_session(repo);
	return quota_set(repo, user, has_quota, bytes);
}

CAIRN_EXTERN int cairn_forget(cairn_repo *repo, const char *snap_id, uint64_t *released_bytes)
{
	repo_session(repo);
	int rc = quota_forget(repo, snap_id, released_bytes);
	/* after the manifest: a crash between leaves the record to gc */
	if (rc == 0 && inodes_delete(repo, snap_id) < 0) error_clear();
	return rc;
}
