/* The chunk cache of a mount (files.c, cache.c, record.c, fetch.c,
 * hydrate.c). A regular file's content (its size, extents and chunk list)
 * is identified by the SHA-256 of those, so two files or two snapshots
 * with the same content share one cache file: files/XX/<cid>, a
 * sparse file of the file's size where each fetched chunk lands at its file
 * offsets (holes are never written). One log for the whole cache, records
 * (format.h, "mount cache log"), names the chunks of each content that are
 * complete: entries are appended only after the data they name is
 * durable, so a later mount trusts exactly what an earlier one finished.
 * One log, not a record beside each cache file: a small file costs one
 * inode created, not two. Readers do not wait for that: a syncer thread
 * makes the runs fetched in the last interval durable with one syncfs,
 * appends their entries in one write, and syncs again (an fdatasync per
 * chunk would cost more than the fetch).
 *
 * Readers never fetch themselves: they queue runs of missing chunks and wait
 * at most wait_ms for fetcher threads, so a store that stalls gives EIO, not
 * a hung reader. A chunk being fetched is marked so, and a second reader of
 * it waits for the same fetch. Queues by priority: readers, then their
 * read-ahead, then background hydration. A fetcher takes a queue's next
 * runs as one batch and reads it with repo_read_blobs, so that neighbours
 * in a pack (a file's chunks, a directory's small files, which a take
 * wrote one after the other) are one range read; a batch that fails is
 * fetched again a chunk at a time, so that an error names its own chunk.
 * A file's first read queues its directory's next small files as
 * read-ahead, and so does a first open in passthrough (no read of it
 * reaches the server), so that a reader of files fetched ahead keeps the
 * read-ahead going; such an open is also its file's place in the trace.
 *
 * A small file costs little more than its fetch: a file a reader or its
 * read-ahead fetched whole gets its passthrough backing registered by the
 * fetcher that completed it (at most BACKED_AHEAD_MAX of them not yet
 * opened), so that its open is answered without a syscall and its reads
 * never reach the server; opens ask for no FLUSH at close; a cache file
 * this mount creates is sized only when it ends in a hole. */
#ifndef CAIRN_MOUNT_CACHE_H
#define CAIRN_MOUNT_CACHE_H

#include <time.h>

#include "format.h"
#include "mount/codec.h"
#include "mount/mount.h"

enum { CH_MISSING, CH_FETCHING, CH_DONE, CH_FAILED };
enum { PRIO_READ, PRIO_AHEAD, PRIO_HYDRATE, NPRIO };

#define RUN_MAX_CHUNKS 32             /* one fetch batch: one record entry */
#define RUN_READ_CHUNKS 2             /* a reader's runs: small, so that fetchers share them */
#define RUN_MAX_BYTES (8u << 20)
#define AHEAD_FILES 32                /* a first read queues its directory's next small files: */
#define AHEAD_FILE_BYTES (4u << 20)   /*   at most this many, of this many bytes, */
#define AHEAD_FILE_MAX (1u << 20)     /*   each no larger than this */
#define AHEAD_MAX_CHUNKS 64           /* a sequential reader's read-ahead doubles up to this */
#define BATCH_RUNS 64                 /* a fetcher takes up to this many queued runs at once */
#define BATCH_BYTES (4u << 20)        /* ... or this many bytes */
#define SHARE_MIN_BYTES (1u << 20)    /* while others idle, its share of a queue, at least this */
#define BACKED_AHEAD_MAX 4096         /* backings registered at fetch, not yet opened */
#define ADVISE_BYTES (8u << 20)       /* a fetcher advises the store of the runs next in line, */
#define ADVISE_CHUNKS 128             /*   at most this many bytes and chunks */
#define PROGRESS_NS 1000000000LL
#define SYNC_INTERVAL_MS 500
#define FETCHER_EXIT_WAIT_S 3
#define MLOG_NAME "records"           /* the record log, in the cache's directory */

struct mfile {
	oid cid;
	char name[2 + 1 + OID_HEX_LEN + 1]; /* "XX/<cid hex>" under files/ */
	const tree_entry *e;
	uint32_t node;          /* the node that made it, for log lines */
	uint64_t *cstart;       /* nchunks + 1: data offset where chunk c starts */
	uint64_t *xstart;       /* nextents: data offset where extent x starts */
	uint8_t *state;         /* CH_* per chunk */
	uint8_t *logged;        /* a failure of the chunk was logged */
	uint32_t ndone;
	int fd;                 /* -1 when closed (only once complete) */
	int32_t backing_id;
	int backed_ahead;       /* backing registered when fetched, not yet opened */
	int cached_opens, pass_opens;
	int traced;
	int ahead_queued;       /* its directory's next files were queued at its first open or read */
	uint32_t seq_end, ahead; /* the last read's end chunk; its read-ahead window in chunks */
};

typedef struct fetch_item {
	mfile *f;
	uint32_t c0, n;
} fetch_item;

typedef struct fifo {
	fetch_item *v;
	size_t head, len, cap;
	uint64_t bytes;         /* the data bytes of its runs */
	size_t advised;         /* runs at the head whose reads were advised (fetch.c) */
} fifo;

struct mcache {
	cairn_repo *r;
	node_table *nodes;
	mcache_options o;
	int dirfd;
	pthread_mutex_t mu;
	pthread_cond_t done_cv, work_cv, room_cv;
	mfile **files;
	size_t nfiles, fcap;
	chunk_index *by_cid;
	uint8_t made[256];      /* files/XX made (by the first byte of the content id) */
	int logfd;              /* the record log (O_APPEND), -1 when not open */
	int log_broken;         /* an append failed: this mount records no more */
	mlog_entry *logged;     /* the log's good entries when the mount started, by content */
	size_t nlogged;
	fifo q[NPRIO];
	pthread_t *fetchers;
	unsigned nfetchers, running, live;
	int stop, no_backing;
	int devfd;              /* /dev/fuse when passthrough was negotiated, else -1 */
	unsigned backed_ahead;  /* files with backed_ahead set */
	uint64_t backed, backed_opened; /* files backed by their fetch; of them opened, for the log */
	uint32_t *trace;
	size_t ntrace, tcap;
	uint64_t bytes_local;   /* data bytes of distinct contents complete in the cache */
	uint64_t fetched, fetched_bytes, fetches; /* chunks placed, their bytes, fetches that placed them */
	/* runs complete in the file, not yet durable nor recorded (the syncer's) */
	fetch_item *pending;
	size_t npending, pcap;
	pthread_t syncer;
	pthread_cond_t sync_cv;
	int syncing, sync_stop;
	/* hydration */
	pthread_t hydrator;
	int hydrating, hydrate_all;
	uint32_t *order;
	size_t norder;
	cairn_event_cb hcb;
	void *hpayload;
};


#define logf_(c, ...) mount_log((c)->o.log, (c)->o.log_payload, __VA_ARGS__)

/* clock's now plus ms, for timed waits */
static inline struct timespec deadline(clockid_t clock, uint64_t ms)
{
	struct timespec dl;
	clock_gettime(clock, &dl);
	dl.tv_sec += (time_t)(ms / 1000);
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	return dl;
}

static inline tree_extent extent_at(const mfile *f, uint32_t x)
{
	if (f->e->nextents) return f->e->extents[x];
	return (tree_extent){0, f->e->size};
}
static inline uint32_t nextents(const mfile *f) { return f->e->nextents ? f->e->nextents : 1; }

/* f's cache file, opened (and sized) on first use. Under c->mu (files.c). */
int mcache_file_fd(mcache *c, mfile *f);
/* Register f's cache file (f->fd, or opened now) as a passthrough backing
 * on c->devfd: 0, or -1 when passthrough is off or refused (files.c). Under
 * c->mu. */
int mcache_backing_open(mcache *c, mfile *f);
/* A content's state, freed at the end (files.c). */
void mcache_file_free(mfile *f);
/* Open the cache's record log and keep what it names (record.c). */
int mcache_log_open(mcache *c);
/* Mark the chunks of f the log names done. Under c->mu (record.c). */
void mcache_rec_apply(mcache *c, mfile *f);
/* The thread that makes fetched runs durable, then records them (record.c). */
void *mcache_syncer(void *arg);
/* A fetcher thread (fetch.c). */
void *mcache_fetcher(void *arg);
/* Queue f's chunks [c0, c1) that are missing (failed ones too when retry),
 * in runs, marked as being fetched. Under c->mu (fetch.c). */
int mcache_queue_missing(mcache *c, mfile *f, uint32_t c0, uint32_t c1, int prio, int retry);

#endif
