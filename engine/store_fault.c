/* The fault-injecting backend (store_fault.h). Calls are counted per
 * operation and per wrapper, from 1; the Nth call of an op named in the
 * spec fails without reaching the inner backend (SLOWms waits, then lets
 * it through; CRASH ends the process there, as a kill would). */
#include "store_fault.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "error.h"
#include "store_backend.h"

enum { SF_PUT, SF_GET, SF_RANGE, SF_SIZE, SF_LIST, SF_DEL, SF_COMMIT, SF_LOCK, SF_ADVISE, SF_NOPS };
static const char *const op_names[SF_NOPS] = {"put",  "get",    "range", "size",  "list",
                                              "del",  "commit", "lock",  "advise"};

#define MAX_STORE_FAULTS 8
#define FAULT_CRASH 1
#define FAULT_SLOW 2

typedef struct store_fault_rule {
	int op;
	long nth;
	int code;     /* CAIRN_E* to fail with, or 0 */
	int special;  /* FAULT_CRASH, FAULT_SLOW */
	long slow_ms;
	char label[16];
} store_fault_rule;

typedef struct fault_store {
	store base;
	store_ops ops;
	store *inner;
	store_fault_rule rules[MAX_STORE_FAULTS];
	int nrules;
	atomic_long counts[SF_NOPS];
} fault_store;

static int parse_rule(store_fault_rule *r, const char *tok)
{
	char op[16], err[16];
	long nth;
	if (sscanf(tok, "store.%15[a-z]:%ld:%15s", op, &nth, err) != 3 || nth < 1) return -1;
	r->op = -1;
	for (int i = 0; i < SF_NOPS; i++)
		if (strcmp(op, op_names[i]) == 0) r->op = i;
	if (r->op < 0) return -1;
	r->nth = nth;
	r->code = 0;
	r->special = 0;
	snprintf(r->label, sizeof(r->label), "%s", err);
	if (strcmp(err, "EIO") == 0 || strcmp(err, "ENOSPC") == 0 || strcmp(err, "SHORT") == 0) r->code = CAIRN_EIO;
	else if (strcmp(err, "CORRUPT") == 0) r->code = CAIRN_ECORRUPT;
	else if (strcmp(err, "NOTFOUND") == 0) r->code = CAIRN_ENOTFOUND;
	else if (strcmp(err, "BUSY") == 0) r->code = CAIRN_EBUSY;
	else if (strcmp(err, "CRASH") == 0) r->special = FAULT_CRASH;
	else if (strncmp(err, "SLOW", 4) == 0 && (r->slow_ms = atol(err + 4)) > 0) r->special = FAULT_SLOW;
	else return -1;
	return 0;
}

int store_fault_wanted(const char *spec) { return spec && strstr(spec, "store.") != NULL; }

/* 0 to go on to the inner backend, or the error to return. */
static int fault_check(fault_store *f, int op, const char *name)
{
	long n = atomic_fetch_add(&f->counts[op], 1) + 1;
	for (int i = 0; i < f->nrules; i++) {
		const store_fault_rule *r = &f->rules[i];
		if (r->op != op || r->nth != n) continue;
		if (r->special == FAULT_CRASH) _exit(99);
		if (r->special == FAULT_SLOW) {
			struct timespec ts = {r->slow_ms / 1000, (r->slow_ms % 1000) * 1000000};
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
			return 0;
		}
		return error_set(r->code, "%s: %s: store.%s: injected fault (%s, call %ld)", f->ops.kind, name,
		                 op_names[op], r->label, n);
	}
	return 0;
}

static fault_store *fs_of(store *st) { return (fault_store *)st; }

static void fs_free(store *st)
{
	store_free(fs_of(st)->inner);
	free(st);
}

static int fs_put(store *st, const char *name, const void *data, size_t len, unsigned flags)
{
	int rc = fault_check(fs_of(st), SF_PUT, name);
	return rc ? rc : store_put(fs_of(st)->inner, name, data, len, flags);
}

static int fs_get(store *st, const char *name, size_t max, uint8_t **out, size_t *len)
{
	int rc = fault_check(fs_of(st), SF_GET, name);
	return rc ? rc : store_get(fs_of(st)->inner, name, max, out, len);
}

static int fs_get_range(store *st, const char *name, uint64_t off, void *out, size_t len)
{
	int rc = fault_check(fs_of(st), SF_RANGE, name);
	return rc ? rc : store_get_range(fs_of(st)->inner, name, off, out, len);
}

static int fs_get_upto(store *st, const char *name, uint64_t off, void *out, size_t len, size_t *got)
{
	*got = 0;
	int rc = fault_check(fs_of(st), SF_RANGE, name);
	return rc ? rc : store_get_upto(fs_of(st)->inner, name, off, out, len, got);
}

static void fs_uncache(store *st, const char *name, uint64_t off, size_t len)
{
	store_uncache(fs_of(st)->inner, name, off, len);
}

/* A direct read counts as a read (store.range) and goes to the inner
 * backend's own; 1 (read through the cache instead) when it has none. */
static int fs_get_range_direct(store *st, const char *name, uint64_t off, void *out, size_t len)
{
	store *inner = fs_of(st)->inner;
	if (!inner->ops->get_range_direct) return 1;
	int rc = fault_check(fs_of(st), SF_RANGE, name);
	return rc ? rc : inner->ops->get_range_direct(inner, name, off, out, len);
}

static int fs_advise(store *st, const char *name, uint64_t off, size_t len)
{
	int rc = fault_check(fs_of(st), SF_ADVISE, name);
	if (rc) return rc;
	store_advise(fs_of(st)->inner, name, off, len);
	return 0;
}

static int fs_size(store *st, const char *name, uint64_t *size)
{
	int rc = fault_check(fs_of(st), SF_SIZE, name);
	return rc ? rc : store_size(fs_of(st)->inner, name, size);
}

static int fs_list(store *st, const char *dir, int (*cb)(const char *name, void *payload), void *payload)
{
	int rc = fault_check(fs_of(st), SF_LIST, dir);
	return rc ? rc : store_list(fs_of(st)->inner, dir, cb, payload);
}

static int fs_del(store *st, const char *name)
{
	int rc = fault_check(fs_of(st), SF_DEL, name);
	return rc ? rc : store_delete(fs_of(st)->inner, name);
}

/* Streamed writes are wrapped too, so that a commit can fail. */
typedef struct fault_writer {
	store_writer base;
	store_writer *inner;
	char name[256];
} fault_writer;

static int fs_write_begin(store *st, const char *name, store_writer **out)
{
	*out = NULL;
	fault_writer *w = calloc(1, sizeof(*w));
	if (!w) return ERR_OOM();
	int rc = store_write_begin(fs_of(st)->inner, name, &w->inner);
	if (rc < 0) {
		free(w);
		return rc;
	}
	w->base.st = st;
	snprintf(w->name, sizeof(w->name), "%s", name);
	*out = &w->base;
	return 0;
}

static int fs_write_append(store_writer *base, const void *data, size_t len)
{
	return store_write_append(((fault_writer *)base)->inner, data, len);
}

static int fs_write_commit(store_writer *base, unsigned flags)
{
	fault_writer *w = (fault_writer *)base;
	int rc = fault_check(fs_of(base->st), SF_COMMIT, w->name);
	if (rc) store_write_abort(w->inner);
	else rc = store_write_commit(w->inner, flags);
	free(w);
	return rc;
}

static void fs_write_abort(store_writer *base)
{
	fault_writer *w = (fault_writer *)base;
	store_write_abort(w->inner);
	free(w);
}

static int fs_lock_acquire(store_lock **out, store *st, const char *name, uint64_t ttl_ms, uint64_t wait_ms)
{
	*out = NULL;
	int rc = fault_check(fs_of(st), SF_LOCK, name);
	return rc ? rc : store_lock_acquire(out, fs_of(st)->inner, name, ttl_ms, wait_ms);
}

static int fs_unfinished_list(store *st, store_unfinished_cb cb, void *payload)
{
	return store_unfinished_list(fs_of(st)->inner, cb, payload);
}

static int fs_unfinished_abort(store *st, const char *name, const char *id)
{
	return store_unfinished_abort(fs_of(st)->inner, name, id);
}

static const store_ops fault_ops = {
	.version = CAIRN_BACKEND_OPS_VERSION,
	.free = fs_free,
	.put = fs_put,
	.get = fs_get,
	.get_range = fs_get_range,
	.uncache = fs_uncache,
	.get_range_direct = fs_get_range_direct,
	.size = fs_size,
	.list = fs_list,
	.del = fs_del,
	.write_begin = fs_write_begin,
	.write_append = fs_write_append,
	.write_commit = fs_write_commit,
	.write_abort = fs_write_abort,
	.lock_acquire = fs_lock_acquire,
	.unfinished_list = fs_unfinished_list,
	.unfinished_abort = fs_unfinished_abort,
	.advise = fs_advise,
};

int store_fault_wrap(store **out, store *inner, const char *spec)
{
	*out = NULL;
	int rc = 0;
	char *copy = NULL, *save = NULL;
	fault_store *f = calloc(1, sizeof(*f));
	if (!f || !(copy = strdup(spec))) {
		rc = ERR_OOM();
		goto done;
	}
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strncmp(tok, "store.", 6) != 0) continue; /* a file op: io.h's */
		if (f->nrules == MAX_STORE_FAULTS || parse_rule(&f->rules[f->nrules], tok) < 0) {
			rc = error_set(CAIRN_EUSAGE, "fault spec '%s': expected store.OP:N:ERR (at most %d), OP one of "
			               "put get range size list del commit lock advise", tok, MAX_STORE_FAULTS);
			goto done;
		}
		f->nrules++;
	}
	f->ops = fault_ops;
	f->ops.kind = inner->ops->kind;
	f->ops.pack_target = store_pack_target(inner);
	if (store_round_trips(inner)) f->ops.get_upto = fs_get_upto;
	f->base.ops = &f->ops;
	f->inner = inner;
	*out = &f->base;
	inner = NULL;
	f = NULL;
done:
	free(copy);
	free(f);
	store_free(inner);
	return rc;
}
