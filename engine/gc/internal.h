/* The garbage collector (engine/gc/), internal. The protocol is README.md's
 * "Garbage collection"; the records are in format.h. Only the store
 * interface is used: objects, listing (any order), delete, and the "gc"
 * lock.
 *
 * The scan its run works from, and what each file owns (gc.h is the
 * module's interface; the sessions and marks it honours are session.h's):
 *   gc.c    cairn_gc: the mark phase, the sweep (packs rewritten, segments and objects deleted)
 *           and the marks stored between runs
 *   scan.c  a scan of the repository: sessions, index segments, packs, temporary files and markers
 *           listed, and the blobs the snapshots reference
 * A file uses only those listed below it (no cycles, engine/LAYERS). */
#ifndef CAIRN_GC_INTERNAL_H
#define CAIRN_GC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "gc.h"
#include "index.h"
#include "repo.h"
#include "session.h"

#define MS 1000000LL
#define SESSION_MAX 4096
#define SEGMENT_MAX (1024u * 1024u * 1024u)
#define SEGMENT_ENTRIES (4u * 1024u * 1024u)
#define LOAD_RETRIES 20

typedef struct segment {
	char *name;
	index_entry *e;
	size_t n;
	uint64_t size;
} segment;

typedef struct pack_info {
	char name[64];
	uint8_t id[PACK_ID_LEN];
	uint64_t size;
	uint64_t live_bytes, drop_bytes, kept_bytes;
	size_t nlive, ndrop, nkept;
	int indexed, rewrite, unindex;
} pack_info;

typedef struct scan {
	/* sessions other than ours that are alive; the earliest start */
	int64_t min_start;
	size_t nlive_sessions;
	char **dead_sessions;
	size_t ndead;
	/* index */
	segment *seg;
	size_t nseg;
	chunk_index *canon;   /* id -> canonical entry */
	/* packs (sorted by id) */
	pack_info *packs;
	size_t npacks, cappacks;
	chunk_index *packpos; /* pack id (first 16 bytes of id) -> packs[offset] */
	/* snapshots */
	chunk_index *live;    /* ids referenced by a snapshot */
	size_t nsnapshots;
	char **snap_ids;      /* for markers */
	size_t nsnap_ids, capsnap_ids;
	/* tmp files; damage markers and inodes records (a snapshot's side objects) */
	char **tmp;
	uint64_t *tmp_size;
	size_t ntmp, captmp;
	char **markers;
	size_t nmarkers, capmarkers;
	int64_t done_ns; /* clock after every listing */
} scan;

/* scan.c: a scan of the repository: sessions, index segments, packs, temporary
 * files and markers listed, and the blobs the snapshots reference */
void scan_free(scan *s);
int scan_sessions(cairn_repo *r, scan *s);
int scan_run(cairn_repo *r, scan *s);

#endif
