/* RADOS (internal.h): locks, cls_lock advisory exclusive locks on
 * "locks/NAME" with a duration; the holder's host and pid in the object. */
#include "internal.h"

/* ---- locks ------------------------------------------------------------------ */

typedef struct rados_lock {
	store_lock base;
	rados_store *st;
	char name[160];   /* "locks/NAME" */
	char *oid;
	char cookie[33];
	uint64_t ttl_ms;
} rados_lock;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int lock_op(rados_lock *l, int renew)
{
	struct timeval d = {(time_t)(l->ttl_ms / 1000), (suseconds_t)(l->ttl_ms % 1000) * 1000};
	char host[128] = "", desc[200];
	gethostname(host, sizeof(host) - 1);
	snprintf(desc, sizeof(desc), "%s %ld", host, (long)getpid());
	return rados_lib.rados_lock_exclusive(l->st->io, l->oid, LOCK_NAME, l->cookie, desc, &d,
	                            renew ? LIBRADOS_LOCK_FLAG_MUST_RENEW : 0);
}

/* Record our host and pid in the lock object (for EBUSY and for taking
 * over a dead local holder); the lock itself is the cls_lock. */
static void lock_note(rados_lock *l)
{
	char host[128] = "", body[200];
	gethostname(host, sizeof(host) - 1);
	int n = snprintf(body, sizeof(body), "%s %s %ld\n", l->cookie, host, (long)getpid());
	rados_lib.rados_write_full(l->st->io, l->oid, body, (size_t)n);
}

typedef struct holder {
	char client[512], cookie[512], host[128];
	long pid;
	int known; /* cookie matches the note: host and pid are the holder's */
} holder;

/* Who holds the lock: 1 when someone does, 0 when nobody, < 0 on error. */
static int lock_holder(rados_lock *l, holder *h)
{
	char tag[64], clients[512], cookies[512], addrs[512];
	size_t tag_len = sizeof(tag), cl = sizeof(clients), ck = sizeof(cookies), ad = sizeof(addrs);
	int excl = 0;
	memset(h, 0, sizeof(*h));
	ssize_t n = rados_lib.rados_list_lockers(l->st->io, l->oid, LOCK_NAME, &excl, tag, &tag_len, clients, &cl,
	                               cookies, &ck, addrs, &ad);
	if (n == -ENOENT) return 0;
	if (n < 0) return rados_fail(l->st, (int)n, l->name, "list lockers");
	if (n == 0) return 0;
	snprintf(h->client, sizeof(h->client), "%s", clients);
	snprintf(h->cookie, sizeof(h->cookie), "%s", cookies);
	char note[300] = "", ck2[64] = "";
	int r = rados_lib.rados_read(l->st->io, l->oid, note, sizeof(note) - 1, 0);
	if (r > 0) {
		note[r] = 0;
		if (sscanf(note, "%63s %127s %ld", ck2, h->host, &h->pid) == 3 && strcmp(ck2, h->cookie) == 0)
			h->known = 1;
	}
	return 1;
}

static int holder_dead_here(const holder *h)
{
	char host[128] = "";
	gethostname(host, sizeof(host) - 1);
	return h->known && strcmp(host, h->host) == 0 && h->pid > 0 && kill((pid_t)h->pid, 0) < 0 &&
	       errno == ESRCH;
}

int rados_lock_acquire(store_lock **out, store *base, const char *name, uint64_t ttl_ms,
                              uint64_t wait_ms)
{
	rados_store *st = (rados_store *)base;
	uint8_t rnd[16];
	int rc;
	*out = NULL;
	rados_lock *l = calloc(1, sizeof(*l));
	if (!l) return ERR_OOM();
	l->base.st = base;
	l->st = st;
	l->ttl_ms = ttl_ms < 1000 ? 1000 : ttl_ms;
	snprintf(l->name, sizeof(l->name), "locks/%s", name);
	if ((rc = rados_oid_of(st, l->name, &l->oid)) < 0) goto fail;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		rc = error_errno(CAIRN_EIO, errno, "lock %s: getrandom", name);
		goto fail;
	}
	for (int i = 0; i < 16; i++) snprintf(l->cookie + 2 * i, 3, "%02x", rnd[i]);

	uint64_t deadline = now_ms() + wait_ms;
	for (;;) {
		int err = lock_op(l, 0);
		if (err == 0) {
			lock_note(l);
			*out = &l->base;
			return 0;
		}
		if (err != -EBUSY && err != -EEXIST) {
			rc = rados_fail(st, err, l->name, "lock");
			goto fail;
		}
		holder h;
		rc = lock_holder(l, &h);
		if (rc < 0) goto fail;
		if (rc == 1 && holder_dead_here(&h)) {
			/* only that holder's lock is broken (client and cookie name it) */
			rados_lib.rados_break_lock(st->io, l->oid, LOCK_NAME, h.client, h.cookie);
			continue;
		}
		if (now_ms() >= deadline) {
			if (h.known)
				rc = error_set(CAIRN_EBUSY, "lock %s: held by process %ld on %s (%s)", name, h.pid,
				               h.host, st->addr);
			else
				rc = error_set(CAIRN_EBUSY, "lock %s: held by %s (%s)", name,
				               rc == 1 ? h.client : "another client", st->addr);
			goto fail;
		}
		struct timespec ts = {0, 25 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
fail:
	free(l->oid);
	free(l);
	return rc;
}

int rados_lock_refresh(store_lock *base)
{
	rados_lock *l = (rados_lock *)base;
	/* MUST_RENEW: only while our lock stands; expired (cls_lock drops expired
	 * lockers) or taken over means lost */
	int err = lock_op(l, 1);
	if (err == -EBUSY || err == -EEXIST || err == -ENOENT)
		return error_set(CAIRN_EBUSY, "%s: %s: lost to another process", l->st->addr, l->name);
	if (err < 0) return rados_fail(l->st, err, l->name, "refresh lock");
	return 0;
}

void rados_lock_release(store_lock *base)
{
	rados_lock *l = (rados_lock *)base;
	/* cls_lock unlocks only our own (client, cookie): never another's lock */
	rados_lib.rados_unlock(l->st->io, l->oid, LOCK_NAME, l->cookie);
	free(l->oid);
	free(l);
}
