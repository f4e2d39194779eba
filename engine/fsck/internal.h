/* The repository check (engine/fsck/), internal. fsck: structure (config,
 * index segments, packs, manifests, trees, every chunk's place), optionally
 * every blob's data, and per-user usage; with --repair the index is rebuilt
 * from the packs, damaged packs go to quarantine/ (their good blobs salvaged
 * first) and snapshots that stay damaged get a damaged/<id> marker. Nothing
 * is ever deleted but what is rebuilt or moved aside.
 *
 * The state a check shares between its files, and what each file owns
 * (fsck.h is the module's interface):
 *   fsck.c    cairn_fsck: a lenient open, the check, the repairs asked for and a check again
 *   repair.c  repairs: damaged packs quarantined (their good blobs copied out), the index rebuilt
 *             from the packs
 *   check.c   the whole check: every snapshot, unreferenced and leftover objects, markers, inodes
 *             records, quotas
 *   trees.c   a snapshot's trees and files checked, each tree once, damaged snapshots marked
 *   packs.c   the config, index segments and packs checked, blobs verified (on every core)
 *   report.c  the report: problems with what they affect, and its public accessors
 * A file uses only those listed below it (no cycles, engine/LAYERS). */
#ifndef CAIRN_FSCK_INTERNAL_H
#define CAIRN_FSCK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "fsck.h"
#include "index.h"
#include "pack.h"
#include "repo.h"
#include "tree.h"

#define AFFECTED_MAX 200   /* (snapshot, path) pairs listed per problem */
#define TREE_RESULT_MAX 1000
#define SEGMENT_MAX (1024u * 1024u * 1024u)
#define CONFIG_MAX 4096

typedef struct problem {
	cairn_fsck_problem pub;
	char *kind, *object, *message;
	char **ids, **names, **paths;
	size_t cap;
	chunk_index *seen; /* snapshot ids already listed with path "/" (dedup) */
} problem;

struct cairn_fsck_report {
	problem **p;
	size_t n, cap;
	cairn_fsck_stats stats;
};

typedef struct pack_state {
	char name[64];
	uint8_t id[PACK_ID_LEN];
	uint64_t size;
	int damaged;     /* does not parse */
	long problem;    /* its problem, when damaged */
	pack_blob *blobs;
	size_t nblobs;
	chunk_index *at; /* offset -> blob number (keyed by offset) */
	chunk_index *bad; /* --read-data: id -> problem number of a blob that fails */
	int used;        /* an index entry points here */
} pack_state;

/* A tree's findings: (path below the tree, problem) pairs. */
typedef struct finding {
	char *path;
	long problem;
} finding;

typedef struct tree_result {
	finding *f;
	size_t n, cap;
} tree_result;

typedef struct fsck_ctx {
	cairn_repo *r;
	cairn_fsck_report *rep;
	const cairn_fsck_options *o;
	int threads;
	long config_problem;
	/* index */
	char **segments;
	size_t nsegments, capsegments;
	int index_damaged;
	long index_problem;
	/* packs */
	pack_state *packs;
	size_t npacks, cappacks;
	chunk_index *packpos;
	atomic_size_t next_pack;
	pthread_mutex_t lock;
	/* blobs: id -> problem number + 1 in offset (0 = checked fine) */
	chunk_index *blob_status;
	chunk_index *referenced;
	/* trees */
	chunk_index *tree_memo; /* id -> results[offset] */
	tree_result *results;
	size_t nresults, capresults;
	/* snapshots */
	char **snaps;
	size_t nsnaps, capsnaps;
	chunk_index *damaged_snaps; /* ids (hex-decoded) with damage */
	char **damaged_reason;
	size_t ndamaged_reason;
	long missing_index_problem; /* shared by blobs missing from the index while a segment is bad */
} fsck_ctx;

static inline problem *P(fsck_ctx *c, long i) { return c->rep->p[i]; }

/* check.c: the whole check: every snapshot, unreferenced and leftover objects,
 * markers, inodes records, quotas */
void fsck_ctx_free(fsck_ctx *c);
int check_all(fsck_ctx *c);

/* packs.c: the config, index segments and packs checked, blobs verified (on
 * every core) */
void check_config(fsck_ctx *c);
int fsck_segment_visit(const char *name, void *payload);
int fsck_pack_visit(const char *name, void *payload);
int check_packs(fsck_ctx *c);
long blob_check(fsck_ctx *c, const oid *id, uint8_t type);

/* repair.c: repairs: damaged packs quarantined (their good blobs copied out),
 * the index rebuilt from the packs */
int quarantine_pack(fsck_ctx *c, cairn_fsck_report *out, const char *pname, const uint8_t *pid);
int rebuild_index(cairn_repo *r, cairn_fsck_report *out);

/* report.c: the report: problems with what they affect, and its public
 * accessors */
void problem_free(problem *p);
long report_add(cairn_fsck_report *r, cairn_fsck_severity sev, const char *kind,
                const char *object, const char *fmt, ...);
void report_affect(problem *p, const char *id, const char *name, const char *path);

/* trees.c: a snapshot's trees and files checked, each tree once, damaged
 * snapshots marked */
void mark_damaged(fsck_ctx *c, const char *id, const char *reason);
int fsck_snapshot_visit(const char *name, void *payload);
void check_snapshot(fsck_ctx *c, const char *id);

#endif
