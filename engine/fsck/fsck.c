/* The check (internal.h): cairn_fsck: a lenient open, the check, the repairs
 * asked for and a check again. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "damaged.h"
#include "error.h"
#include "gc.h"
#include "options.h"
#include "quota.h"
#include "util.h"

static int open_lenient(cairn_repo **out, const char *path, const cairn_repo_open_options *open)
{
	int rc;
	uint64_t size;
	*out = NULL;
	cairn_repo *r = calloc(1, sizeof(*r));
	if (!r) return ERR_OOM();
	pthread_mutex_init(&r->lock, NULL);
	r->settings.state_dir = strdup(open && open->state_dir ? open->state_dir : CAIRN_DEFAULT_STATE_DIR);
	if (!(r->path = strdup(path)) || !r->settings.state_dir) {
		cairn_repo_free(r);
		return ERR_OOM();
	}
	if ((rc = repo_store_open(&r->st, path, open)) < 0) {
		cairn_repo_free(r);
		return rc;
	}
	if (store_size(r->st, "config", &size) < 0 && store_size(r->st, "snapshots", &size) < 0) {
		cairn_repo_free(r);
		return error_set(CAIRN_ENOTFOUND, "%s: not a cairn repository (no config)", path);
	}
	if ((rc = index_new(&r->index)) < 0) {
		cairn_repo_free(r);
		return rc;
	}
	gc_session_begin(r); /* before any index segment is read */
	*out = r;
	return 0;
}

static int run_check(cairn_fsck_report *rep, const char *path, const cairn_fsck_options *o,
                     int threads, fsck_ctx *c, cairn_repo **rout)
{
	int rc = open_lenient(rout, path, o->open);
	if (rc < 0) return rc;
	memset(c, 0, sizeof(*c));
	c->r = *rout;
	c->rep = rep;
	c->o = o;
	c->threads = threads;
	return check_all(c);
}

static void count(cairn_fsck_report *rep, fsck_ctx *c)
{
	rep->stats.damaged = rep->stats.infos = 0;
	for (size_t i = 0; i < rep->n; i++) {
		if (rep->p[i]->pub.severity == CAIRN_FSCK_DAMAGE) rep->stats.damaged++;
		if (rep->p[i]->pub.severity == CAIRN_FSCK_INFO) rep->stats.infos++;
	}
	rep->stats.damaged_snapshots = c->damaged_snaps ? index_count(c->damaged_snaps) : 0;
}

CAIRN_EXTERN int cairn_fsck(cairn_fsck_report **out, const char *path, const cairn_fsck_options *opts)
{
	int rc;
	cairn_fsck_options o = CAIRN_FSCK_OPTIONS_INIT;
	cairn_fsck_report *rep = NULL, *final = NULL;
	cairn_repo *r = NULL;
	store_lock *lock = NULL;
	fsck_ctx c;
	int64_t t0 = mono_ns();
	memset(&c, 0, sizeof(c));
	*out = NULL;
	static const size_t sizes[] = {offsetof(cairn_fsck_options, open), sizeof(cairn_fsck_options)};
	if ((rc = options_copy(&o, opts, sizes, 2, "fsck")) < 0) return rc;
	if (o.open && o.open->backend) /* it opens the store twice: once for the lock */
		return error_set(CAIRN_EUSAGE, "fsck: give the repository by its address: a caller's backend is not supported here");
	int threads = o.threads > 0 ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads < 1) threads = 1;
	if (!(rep = calloc(1, sizeof(*rep)))) return ERR_OOM();

	{
		store *st;
		if ((rc = repo_store_open(&st, path, o.open)) < 0) goto done;
		/* gc must not rewrite the index or delete packs while we look */
		rc = store_lock_acquire(&lock, st, "gc", GC_LOCK_TTL_MS,
		                        o.lock_wait_ms ? o.lock_wait_ms : GC_DEFAULT_WAIT_MS);
		if (rc < 0) {
			store_free(st);
			goto done;
		}
		rc = run_check(rep, path, &o, threads, &c, &r);
		if (rc == 0) count(rep, &c);
		if (rc < 0 || !o.repair || rep->stats.damaged == 0) {
			store_lock_release(lock);
			lock = NULL;
			store_free(st);
			goto done;
		}

		/* repair: salvage + quarantine damaged packs, rebuild the index, check
		 * again, and mark what is still damaged */
		if (!(final = calloc(1, sizeof(*final)))) {
			rc = ERR_OOM();
		}
		for (size_t i = 0; rc == 0 && i < c.npacks; i++)
			if (c.packs[i].damaged || c.packs[i].bad)
				rc = quarantine_pack(&c, final, c.packs[i].name, c.packs[i].id);
		if (rc == 0) rc = rebuild_index(r, final);
		fsck_ctx_free(&c);
		cairn_repo_free(r);
		r = NULL;
		if (rc == 0) {
			cairn_fsck_report_free(rep);
			rep = final;
			final = NULL;
			rc = run_check(rep, path, &o, threads, &c, &r);
		}
		if (rc == 0) {
			for (size_t i = 0; i < rep->n; i++) {
				problem *p = rep->p[i];
				if (p->pub.severity != CAIRN_FSCK_DAMAGE || strcmp(p->kind, "usage") != 0) continue;
				const char *u = strncmp(p->object, "users/", 6) == 0 ? p->object + 6 : NULL;
				if (u && quota_rebuild(r, u) == 0) {
					p->pub.severity = CAIRN_FSCK_REPAIRED;
					rep->stats.repairs++;
				}
			}
			for (size_t i = 0; i < c.nsnaps; i++) {
				uint8_t key[OID_LEN];
				const index_entry *e;
				if (hex_decode(key, OID_LEN, c.snaps[i]) < 0 || !(e = index_key_get(c.damaged_snaps, key, OID_LEN)))
					continue;
				if (damaged_check(r, c.snaps[i]) < 0) continue; /* marked already */
				error_clear();
				char obj[96];
				snprintf(obj, sizeof(obj), "damaged/%s", c.snaps[i]);
				if ((rc = damaged_mark(r, c.snaps[i], c.damaged_reason[e->offset])) < 0) break;
				rep->stats.repairs++;
				report_add(rep, CAIRN_FSCK_REPAIRED, "repair", obj,
				           "snapshot %s marked damaged: restore refuses it (it is kept)", c.snaps[i]);
			}
			count(rep, &c);
		}
		store_lock_release(lock);
		lock = NULL;
		store_free(st);
	}
done:
	fsck_ctx_free(&c);
	cairn_repo_free(r);
	cairn_fsck_report_free(final);
	if (rc < 0) {
		cairn_fsck_report_free(rep);
		return rc;
	}
	rep->stats.duration_ms = (uint64_t)(mono_ns() - t0) / 1000000;
	*out = rep;
	return 0;
}
