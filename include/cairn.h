/*
 * cairn: content-addressed, deduplicating snapshot engine.
 *
 * Public C API. Conventions:
 *  - Opaque handles; output parameters first; every *_free accepts NULL.
 *  - Functions return 0 on success or a negative CAIRN_E* code; the message
 *    naming the failing object is then in cairn_error_last() (thread-local,
 *    valid until the next cairn call on the same thread).
 *  - Options structs carry a version field; initialise them with the
 *    matching CAIRN_*_OPTIONS_INIT macro.
 *  - Snapshot ids are 64 lowercase hex characters (SHA-256 of the manifest).
 *  - Options structs of an older version (a caller built against an older
 *    header) are accepted: the fields it lacks take their defaults (and a
 *    version's behaviour stays what it was: see cairn_take_options.flags).
 *    A version newer than the library's is CAIRN_EUSAGE, naming it.
 *  - Results the caller's memory receives (cairn_*_result, cairn_repo_stats,
 *    cairn_fsck_stats) begin with a version too: set it with the matching
 *    CAIRN_*_RESULT_INIT. The library fills only the fields that version
 *    has and never writes past them, so a newer library can add fields;
 *    version 0 or a newer version than the library's is CAIRN_EUSAGE, and
 *    nothing is done then. Structs the library hands out by pointer
 *    (cairn_snapshot_info, cairn_fsck_problem, cairn_entry, cairn_event, ...)
 *    may gain fields at their end: read them through the pointer, never
 *    allocate or copy them. cairn_usage, embedded in cairn_estimate_result
 *    and returned in arrays, never changes.
 *  - Callbacks: a cairn_event_cancel_cb (options of a newer version) may
 *    stop the operation by returning non-zero: it then fails with
 *    CAIRN_ECANCELED.
 *  - The library reads no environment variable: what it would take from
 *    there is an option (cairn_repo_open_ext).
 *
 * Threads:
 *  - A cairn_repo handle is used by one thread at a time: a take, restore,
 *    export or gc is one call, which spreads its own work over threads.
 *    For work in parallel, open a handle per thread (an open reads only
 *    the config and the index's fences). Many processes and handles may
 *    use one repository at once: every protocol is safe between them.
 *  - Lists, reports and results are immutable once returned and may be
 *    read from any thread until freed.
 *  - cairn_error_last() is per thread. Callbacks run on the calling thread.
 *  - A backend (include/cairn/sys/backend.h) is called from several
 *    threads at once.
 */
#ifndef CAIRN_H
#define CAIRN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CAIRN_BUILDING_LIBRARY) && defined(__GNUC__)
#define CAIRN_EXTERN __attribute__((visibility("default")))
#else
#define CAIRN_EXTERN
#endif

/* Error codes. -code is the CLI exit code for codes -1..-6 (SPEC.md). */
enum {
	CAIRN_OK = 0,
	CAIRN_EIO = -1,       /* I/O or internal failure */
	CAIRN_EUSAGE = -2,    /* bad argument or value */
	CAIRN_EQUOTA = -3,    /* quota exceeded; nothing committed */
	CAIRN_ECORRUPT = -4,  /* corrupt or missing repository object */
	CAIRN_EBUSY = -5,     /* lock not available in time */
	CAIRN_ENOTFOUND = -6, /* no such snapshot, path, user or repository */
	CAIRN_EEXISTS = -7,   /* object already exists (exit 1) */
	CAIRN_ENOMEM = -8,    /* out of memory (exit 1) */
	CAIRN_ECANCELED = -9  /* a callback returned non-zero: stopped (exit 1) */
};

/* Message of the last failure on this thread ("" if none). */
CAIRN_EXTERN const char *cairn_error_last(void);

/* The last failure on this thread: its code (a CAIRN_E*, 0 if none), its
 * class (the engine module that set it: "store_s3", "pack", "quota",
 * "freeze", "backend" for a caller's backend; "" if none) and its message
 * (as cairn_error_last). Valid until the next cairn call on this thread.
 * The code is that of the failure where it happened; a caller further up
 * may return another (a missing object read as damage is CAIRN_ECORRUPT). */
typedef struct cairn_error_info {
	int code;
	const char *klass;
	const char *message;
} cairn_error_info;
CAIRN_EXTERN const cairn_error_info *cairn_error_last_info(void);
/* Exit code (SPEC.md) for an error code: 0..6. */
CAIRN_EXTERN int cairn_error_exit_code(int error);
/* Short name of an error code for JSON events: "io", "usage", "corrupt", ... */
CAIRN_EXTERN const char *cairn_error_name(int error);

CAIRN_EXTERN const char *cairn_version(void);
CAIRN_EXTERN int cairn_format_version(void);

/* ---- repository ---------------------------------------------------------- */

typedef struct cairn_repo cairn_repo;

struct cairn_repo_open_options; /* below */

#define CAIRN_INIT_OPTIONS_VERSION 2
typedef struct cairn_init_options {
	unsigned version;
	uint32_t chunk_avg; /* average chunk size in bytes, power of two; 0 = default */
	int zstd_level;     /* 1..19; 0 = default */
	/* version 2: the storage's settings (remote backends' credentials), or NULL */
	const struct cairn_repo_open_options *open;
} cairn_init_options;
#define CAIRN_INIT_OPTIONS_INIT { CAIRN_INIT_OPTIONS_VERSION, 0, 0, NULL }
/* The chunk averages cairn_repo_init accepts (powers of two). */
#define CAIRN_CHUNK_AVG_MIN 1024u
#define CAIRN_CHUNK_AVG_MAX (4u * 1024u * 1024u)

/* Create a repository at path (created if absent; must be empty).
 * CAIRN_EEXISTS if a repository is already there. opts may be NULL. */
CAIRN_EXTERN int cairn_repo_init(const char *path, const cairn_init_options *opts);
/* Open a repository. CAIRN_ENOTFOUND if path does not exist,
 * CAIRN_ENOTFOUND if it is not a repository, CAIRN_ECORRUPT if its config is bad.
 * The same as cairn_repo_open_ext with every option at its default. */
CAIRN_EXTERN int cairn_repo_open(cairn_repo **out, const char *path);

struct cairn_backend; /* include/cairn/sys/backend.h */

/* Everything the engine would otherwise take from its surroundings: the
 * library reads no environment variable (the CLI maps its environment to
 * these, README "Environment"). Zero or NULL is the default throughout. */
#define CAIRN_DEFAULT_STATE_DIR "/var/lib/cairn"
#define CAIRN_REPO_OPEN_OPTIONS_VERSION 1
typedef struct cairn_repo_open_options {
	unsigned version;
	/* A storage backend of the caller's (include/cairn/sys/backend.h); the
	 * path then only names the repository in messages. The repository owns
	 * it from the call on, also when the open fails. */
	struct cairn_backend *backend;
	const char *state_dir;  /* this host's own records (restores, freezes); NULL = CAIRN_DEFAULT_STATE_DIR */
	int no_uring;           /* 1: plain system calls instead of io_uring */
	int no_prior_cuts;      /* 1: changed files are cut by the chunker alone (for comparisons) */
	/* Tests: "op:N:ERR[,...]" makes the Nth op fail with ERR. File ops
	 * (write, fsync, rename, read, stat; process-wide) and storage ops of
	 * any backend ("store.put", "store.get", "store.range", "store.size",
	 * "store.list", "store.del", "store.commit", "store.lock"); ERR is EIO,
	 * ENOSPC, SHORT, CRASH, or for store ops also CORRUPT, NOTFOUND, BUSY
	 * and SLOWms (wait ms, then do it). */
	const char *fault;
	struct {
		const char *client_id; /* NULL = admin */
		const char *conf;      /* ceph.conf; NULL = librados's search */
		const char *timeout_s; /* op timeouts; NULL = 60 s and 30 s to connect */
	} rados;
	struct {
		const char *endpoint;  /* http(s)://host[:port]; NULL = https://s3.REGION.amazonaws.com */
		const char *region;    /* NULL = us-east-1 */
		const char *access_key_id, *secret_access_key, *session_token;
		unsigned tries;          /* attempts per request, 1..20; 0 = 5 */
		unsigned stall_s;        /* a transfer under 1 KiB/s this long fails; 0 = 30 */
		uint64_t multipart_min;  /* objects this large go in parts; 0 = 64 MiB */
	} s3;
	/* Tests: every statx through io_uring; xattrs by /proc paths. */
	int test_uring_always, test_no_xattrat;
} cairn_repo_open_options;
#define CAIRN_REPO_OPEN_OPTIONS_INIT \
	{ CAIRN_REPO_OPEN_OPTIONS_VERSION, NULL, NULL, 0, 0, NULL, { NULL, NULL, NULL }, { NULL, NULL, NULL, NULL, NULL, 0, 0, 0 }, 0, 0 }

/* Open a repository with options (opts may be NULL: the defaults). */
CAIRN_EXTERN int cairn_repo_open_ext(cairn_repo **out, const char *path,
                                     const cairn_repo_open_options *opts);
CAIRN_EXTERN void cairn_repo_free(cairn_repo *repo);

/* ---- events -------------------------------------------------------------- */

typedef enum cairn_event_type {
	CAIRN_EVENT_STATE = 1,    /* state names: suspending, paused, saved, resumed, released */
	CAIRN_EVENT_PROGRESS = 2, /* files/bytes/new_bytes/stored_bytes so far */
	CAIRN_EVENT_NOTICE = 3    /* a one-line human notice in message (e.g. io_uring fallback) */
} cairn_event_type;

typedef struct cairn_event {
	cairn_event_type type;
	const char *state;    /* CAIRN_EVENT_STATE */
	const char *snapshot; /* "saved": the snapshot id */
	const char *message;  /* CAIRN_EVENT_NOTICE */
	uint64_t ms;          /* "paused": time to freeze */
	uint64_t files, bytes, new_bytes, stored_bytes;
	uint64_t total_files, total_bytes; /* 0 when not known */
	const char *phase;    /* PROGRESS of take: "precopy" before the freeze, else NULL */
} cairn_event;

/* Called from the thread that called cairn_take/cairn_restore. */
typedef void (*cairn_event_cb)(const cairn_event *event, void *payload);
/* The same, able to cancel: a non-zero return stops the operation, which
 * fails with CAIRN_ECANCELED (what it leaves behind: see each call). Given
 * in an options field of its own (event_cancel_cb), beside event_cb: set
 * one of them (both is CAIRN_EUSAGE); they share event_payload. */
typedef int (*cairn_event_cancel_cb)(const cairn_event *event, void *payload);

/* ---- snapshots ----------------------------------------------------------- */

typedef struct cairn_snapshot_info {
	char id[65];
	char parent[65];    /* "" when none */
	char root_tree[65];
	const char *user;
	const char *name;
	const char *root_path; /* the directory that was captured */
	const char *hostname;
	int64_t time_ns;       /* commit time, ns since the epoch */
	uint64_t files, dirs, symlinks, specials, hardlinks, sockets_skipped;
	uint64_t bytes;        /* logical file bytes */
	/* Repository-level figures, for admins: they depend on what every user
	 * stored before (a user must not be shown them, see added_bytes). */
	uint64_t new_bytes;    /* bytes of chunks new to the repository */
	uint64_t stored_bytes; /* stored size of those new chunks and trees */
	uint64_t pause_ms, duration_ms;
	size_t nlabels;
	const char *const *label_keys;
	const char *const *label_values;
	/* What the snapshot added to its user's usage when it was committed
	 * (the quota charge: blobs new to the user, whoever else stores them).
	 * has_added_bytes = 0 for snapshots of versions that did not record it. */
	int has_added_bytes;
	uint64_t added_bytes;
} cairn_snapshot_info;

typedef struct cairn_snapshot_list cairn_snapshot_list;

/* All snapshots (of user, when user is not NULL), oldest first. */
CAIRN_EXTERN int cairn_snapshot_list_load(cairn_snapshot_list **out, cairn_repo *repo,
                                          const char *user);
CAIRN_EXTERN size_t cairn_snapshot_list_count(const cairn_snapshot_list *list);
/* Valid until the list is freed. */
CAIRN_EXTERN const cairn_snapshot_info *cairn_snapshot_list_get(const cairn_snapshot_list *list,
                                                                size_t i);
CAIRN_EXTERN void cairn_snapshot_list_free(cairn_snapshot_list *list);

/* Resolve SPEC's SNAP to a full id. The candidates are every snapshot whose
 * id starts with spec (when spec is 8 to 64 lowercase hex digits) and every
 * snapshot named spec (only user's, when user is not NULL; ids match
 * whoever owns the snapshot unless CAIRN_RESOLVE_USER_ONLY). Exactly one
 * candidate: its id. Several, counting names and id prefixes together:
 * CAIRN_EUSAGE, the message naming each (id, user, name). None:
 * CAIRN_ENOTFOUND (CAIRN_ECORRUPT when damaged manifests were skipped; a
 * full id's own damage is reported as such). */
CAIRN_EXTERN int cairn_snapshot_resolve(char id_out[65], cairn_repo *repo, const char *spec,
                                        const char *user);
/* Flags of cairn_snapshot_resolve_ext. */
#define CAIRN_RESOLVE_NO_PREFIX 1 /* the one candidate must match by its full id or its name,
                                   * never by an id prefix alone (destructive commands: forget) */
#define CAIRN_RESOLVE_USER_ONLY 2 /* with user: only user's snapshots are candidates, by id too */
/* cairn_snapshot_resolve with flags (CAIRN_RESOLVE_*, or'd; 0 = the same). */
CAIRN_EXTERN int cairn_snapshot_resolve_ext(char id_out[65], cairn_repo *repo, const char *spec,
                                            const char *user, unsigned flags);

/* ---- take ---------------------------------------------------------------- */

#define CAIRN_TAKE_OPTIONS_VERSION 3
typedef struct cairn_take_options {
	unsigned version;
	const char *root;        /* directory to capture (required) */
	const char *name;        /* snapshot name (required) */
	const char *user;        /* owner; NULL = "default" */
	const char *parent;      /* SNAP to take incrementally from; NULL = latest of user+root */
	int no_parent;           /* 1: never reuse a parent */
	const char *const *excludes; /* absolute paths inside root ("/var/cache") */
	size_t nexcludes;
	const char *const *labels;   /* "KEY=VALUE" */
	size_t nlabels;
	int threads;             /* 0 = number of CPUs */
	int no_uring;            /* 1: plain syscalls (also CAIRN_NO_URING=1) */
	cairn_event_cb event_cb;
	void *event_payload;
	/* Live instance: freeze this cgroup directory (v2 cgroup.freeze or the
	 * v1 freezer) from before the walk until after the commit. On failure
	 * the group is thawed before cairn_take returns (no "resumed" event
	 * then). What guards the frozen group against the caller's own death
	 * or signals is asked for in flags (CAIRN_TAKE_GUARDIAN,
	 * CAIRN_TAKE_SIGNALS). */
	const char *cgroup;
	int release;             /* 1: kill the group's processes after the commit instead of thawing */
	uint64_t max_pause_ms;   /* > 0: abort and thaw when still paused after this long */
	/* 1: estimate (cairn_estimate): walk, read, chunk, hash and compress, but
	 * store and commit nothing, and do not enforce the quota; name may be
	 * NULL; the result's charged_bytes is what the take would add. */
	int dry_run;
	/* Overlay upper-layer capture (both or neither): walk only upper, an
	 * overlayfs upper directory, and commit the snapshot base (SNAP) with
	 * it applied: whiteouts, opaque dirs, merged dirs (docs/operations.md). root may
	 * then be NULL. */
	const char *upper;
	const char *base;
	/* With cgroup, the content is first copied while the instance runs
	 * (progress events with phase "precopy"), then the frozen capture
	 * reads only what changed since: the pause costs a walk, not the data.
	 * 1: no pre-copy, everything is read while frozen. */
	int no_precopy;
	/* version 3: events that may cancel, instead of event_cb. A non-zero
	 * return to a STATE or PROGRESS event before "saved" cancels the take
	 * as any failure ends it: nothing is committed, the quota is not
	 * charged (data already stored is left to gc), a frozen group is
	 * thawed (no "resumed" event), the workers are joined; CAIRN_ECANCELED.
	 * Returns to NOTICE events and to events from "saved" on are ignored
	 * (the snapshot is committed then). */
	cairn_event_cancel_cb event_cancel_cb;
	/* version 3: CAIRN_TAKE_* flags, or'd. Options of versions 1 and 2 get
	 * CAIRN_TAKE_GUARDIAN | CAIRN_TAKE_SIGNALS, their behaviour. */
	unsigned flags;
} cairn_take_options;
#define CAIRN_TAKE_OPTIONS_INIT { CAIRN_TAKE_OPTIONS_VERSION, NULL, NULL, NULL, NULL, 0, NULL, 0, NULL, 0, 0, 0, NULL, NULL, NULL, 0, 0, 0, NULL, NULL, 0, NULL, 0 }
/* With cgroup: fork a guardian process before the freeze, which thaws the
 * group when the caller dies while it is frozen (even by SIGKILL) and when
 * max_pause_ms passes. It leaves the caller's cgroup and session (into
 * cairn-guardian at the top of the hierarchy) and is reaped before
 * cairn_take returns. Without it, a caller that dies while frozen leaves
 * the group frozen until cairn_recover (which the freeze record, kept in
 * every case, makes possible): run it at start-up and after a crash. */
#define CAIRN_TAKE_GUARDIAN 0x1u
/* With cgroup: install handlers of SIGINT, SIGTERM and SIGHUP (process-wide;
 * one such take per process at a time) from before the pre-copy until the
 * end: a signal thaws at once and the take fails with nothing committed;
 * from the commit point on the signals are blocked in the calling thread
 * until cairn_take returns. A signal the caller ignores stays ignored; the
 * old handlers are restored before cairn_take returns. Without it, no
 * signal disposition or mask is touched: the caller's handlers run, and a
 * default action that kills the process leaves the group frozen unless a
 * guardian thaws it. */
#define CAIRN_TAKE_SIGNALS 0x2u

#define CAIRN_TAKE_RESULT_VERSION 2
typedef struct cairn_take_result {
	unsigned version;
	char snapshot[65];
	uint64_t files, dirs, bytes;
	uint64_t new_bytes, stored_bytes; /* repository-level, for admins (see cairn_snapshot_info) */
	uint64_t reused_files;   /* files not read by the (frozen) capture: from the parent or the pre-copy */
	uint64_t sockets_skipped, mounts_skipped, excluded;
	uint64_t pause_ms, duration_ms;
	int used_uring;          /* 1 when the walk ran on io_uring */
	uint64_t charged_bytes;  /* what the snapshot added to its user's usage (dry run: would add):
	                          * the user's own figure, `added_bytes` in the CLI's JSON */
	uint64_t precopy_ms;     /* time copying content before the freeze (0: no pre-copy) */
	uint64_t prior_cut_chunks; /* chunks of changed files cut where the parent's were, without the chunker */
	/* version 2 */
	uint64_t freeze_ms;      /* with cgroup: time from the freeze request until frozen ("paused" ms) */
} cairn_take_result;
#define CAIRN_TAKE_RESULT_INIT { CAIRN_TAKE_RESULT_VERSION, "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* Capture opts->root as snapshot opts->name. out may be NULL. */
CAIRN_EXTERN int cairn_take(cairn_take_result *out, cairn_repo *repo,
                            const cairn_take_options *opts);

/* ---- recover -------------------------------------------------------------- */

/* A take with a cgroup keeps a freeze record in the host's state directory
 * (cairn_repo_open_options.state_dir; freezes/) from just before the
 * freeze until the thaw. cairn_recover goes through the records: the group
 * of a take that died (with its guardian) and left it frozen is thawed. */
typedef struct cairn_recovered {
	const char *cgroup;  /* the group ("" for a damaged record) */
	const char *record;  /* the record's path */
	long pid;            /* the take's process */
	/* "thawed": the take died and left the group frozen; thawed, record removed.
	 * "kept": the take still runs (or ran in another pid namespace); left alone.
	 * "cleared": record removed, nothing thawed (not frozen, gone, from an
	 *            earlier boot, frozen since by a running take, or damaged).
	 * "failed": the thaw or the removal failed; the record stays. */
	const char *action;
	const char *detail;  /* why, in words */
} cairn_recovered;
typedef void (*cairn_recover_cb)(const cairn_recovered *r, void *payload);

/* Handle every freeze record in state_dir (NULL = CAIRN_DEFAULT_STATE_DIR;
 * cb, optional, hears each). 0, or the last
 * error (the state directory unreadable, a failed thaw); no state
 * directory is 0. */
CAIRN_EXTERN int cairn_recover(const char *state_dir, cairn_recover_cb cb, void *payload);

/* ---- restore ------------------------------------------------------------- */

#define CAIRN_RESTORE_OPTIONS_VERSION 2
typedef struct cairn_restore_options {
	unsigned version;
	int force;     /* 1: restore into a non-empty target, replacing entries */
	int threads;   /* 0 = number of CPUs (twice that from RADOS or S3) */
	cairn_event_cb event_cb;
	void *event_payload;
	/* version 2: progress that may cancel, instead of event_cb: the
	 * restore stops at once and fails with CAIRN_ECANCELED, leaving what
	 * it wrote (as any failed restore: entries, some of them incomplete,
	 * directories not yet given their modes and times): restore again
	 * with force, or remove the target. */
	cairn_event_cancel_cb event_cancel_cb;
} cairn_restore_options;
#define CAIRN_RESTORE_OPTIONS_INIT { CAIRN_RESTORE_OPTIONS_VERSION, 0, 0, NULL, NULL, NULL }

#define CAIRN_RESTORE_RESULT_VERSION 1
typedef struct cairn_restore_result {
	unsigned version;
	uint64_t files, dirs, symlinks, specials, hardlinks, bytes;
	uint64_t duration_ms;
} cairn_restore_result;
#define CAIRN_RESTORE_RESULT_INIT { CAIRN_RESTORE_RESULT_VERSION, 0, 0, 0, 0, 0, 0, 0 }

/* Recreate snapshot snap_id (a full id) in target, which must be absent or
 * empty unless opts->force. CAIRN_ECORRUPT on any bad object or chunk. */
CAIRN_EXTERN int cairn_restore(cairn_restore_result *out, cairn_repo *repo, const char *snap_id,
                               const char *target, const cairn_restore_options *opts);

/* ---- browsing ------------------------------------------------------------ */

typedef enum cairn_entry_type {
	CAIRN_ENTRY_FILE = 1,
	CAIRN_ENTRY_DIR = 2,
	CAIRN_ENTRY_SYMLINK = 3,
	CAIRN_ENTRY_FIFO = 4,
	CAIRN_ENTRY_CHR = 5,
	CAIRN_ENTRY_BLK = 6
} cairn_entry_type;

typedef struct cairn_entry {
	const char *name;   /* not NUL-safe: use name_len; NUL-terminated for convenience */
	size_t name_len;
	cairn_entry_type type;
	uint32_t mode;      /* full st_mode */
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t size;
	uint32_t rdev_major, rdev_minor;
	const char *link_target; /* symlinks */
	uint32_t hardlink_group; /* 0 = none */
	uint32_t nxattrs;
} cairn_entry;

/* dir is the directory holding the entry, relative to the snapshot root
 * ("" for the root's children); the entry's own name is entry->name. */
typedef int (*cairn_ls_cb)(const char *dir, const cairn_entry *entry, void *payload);

/* List the directory at path ("/" or "" = root) of snapshot snap_id; with
 * recursive, every entry below it. A non-zero return from cb stops the walk
 * and is returned. CAIRN_ENOTFOUND when path does not exist. */
CAIRN_EXTERN int cairn_ls(cairn_repo *repo, const char *snap_id, const char *path, int recursive,
                          cairn_ls_cb cb, void *payload);

/* Write the content of the regular file at path to fd, verifying every chunk. */
CAIRN_EXTERN int cairn_cat(cairn_repo *repo, const char *snap_id, const char *path, int fd);

/* ---- diff and stats (engine/diff.c, engine/stats.c) ----------------------- */

typedef enum cairn_diff_kind {
	CAIRN_DIFF_ADDED = 1,
	CAIRN_DIFF_REMOVED = 2,
	CAIRN_DIFF_CHANGED = 3
} cairn_diff_kind;

/* What differs in a CAIRN_DIFF_CHANGED entry (bits of cairn_diff_item.changes).
 * Inode numbers, ctimes, hardlink group numbers and subtree ids are never
 * compared: they say nothing about the content of the snapshot. */
#define CAIRN_CHANGED_TYPE 0x001
#define CAIRN_CHANGED_MODE 0x002
#define CAIRN_CHANGED_OWNER 0x004
#define CAIRN_CHANGED_SIZE 0x008
#define CAIRN_CHANGED_MTIME 0x010
#define CAIRN_CHANGED_CONTENT 0x020 /* chunk list or hole layout */
#define CAIRN_CHANGED_XATTRS 0x040
#define CAIRN_CHANGED_TARGET 0x080
#define CAIRN_CHANGED_RDEV 0x100

typedef struct cairn_diff_item {
	cairn_diff_kind kind;
	const char *path;              /* relative to the snapshot root, "" = the root itself */
	size_t path_len;
	unsigned changes;              /* CAIRN_CHANGED_* (CAIRN_DIFF_CHANGED only) */
	const cairn_entry *old_entry;  /* NULL when added */
	const cairn_entry *new_entry;  /* NULL when removed */
} cairn_diff_item;

/* A non-zero return stops the diff and is returned. */
typedef int (*cairn_diff_cb)(const cairn_diff_item *item, void *payload);

#define CAIRN_DIFF_RESULT_VERSION 1
typedef struct cairn_diff_result {
	unsigned version;
	uint64_t added, removed, changed;
	uint64_t trees_read; /* tree objects loaded: only subtrees whose ids differ are read */
} cairn_diff_result;
#define CAIRN_DIFF_RESULT_INIT { CAIRN_DIFF_RESULT_VERSION, 0, 0, 0, 0 }

/* Compare snapshot old_id with new_id (full ids), depth-first in name order.
 * Below an added or removed directory every entry is reported too. A type
 * change is reported as changed; the children of a directory that became
 * something else are reported removed (and added, the other way round). */
CAIRN_EXTERN int cairn_diff(cairn_diff_result *out, cairn_repo *repo, const char *old_id,
                            const char *new_id, cairn_diff_cb cb, void *payload);

#define CAIRN_REPO_STATS_VERSION 1
typedef struct cairn_repo_stats {
	unsigned version;
	uint64_t snapshots;
	uint64_t logical_bytes; /* sum of every snapshot's file bytes */
	uint64_t stored_bytes;  /* sum of the stored size of every blob in the index */
	uint64_t chunks;        /* data blobs in the index */
	uint64_t trees;         /* tree blobs in the index */
	uint64_t packs;
	double dedup_ratio;     /* logical_bytes / stored_bytes; 0 when nothing is stored */
} cairn_repo_stats;
#define CAIRN_REPO_STATS_INIT { CAIRN_REPO_STATS_VERSION, 0, 0, 0, 0, 0, 0, 0 }

CAIRN_EXTERN int cairn_stats(cairn_repo_stats *out, cairn_repo *repo);

/* ---- export and import (engine/archive/) --------------------------------- */

typedef enum cairn_archive_format {
	CAIRN_ARCHIVE_PAX = 0,    /* xattrs, ACLs, sparse files, ns times */
	CAIRN_ARCHIVE_GNUTAR = 1, /* content, modes, owners, links, devices; second times */
	CAIRN_ARCHIVE_USTAR = 2   /* the same within ustar's limits (names, sizes, ids) */
} cairn_archive_format;

typedef enum cairn_archive_compress {
	CAIRN_COMPRESS_NONE = 0,
	CAIRN_COMPRESS_GZIP = 1,
	CAIRN_COMPRESS_ZSTD = 2
} cairn_archive_compress;

#define CAIRN_EXPORT_OPTIONS_VERSION 2
typedef struct cairn_export_options {
	unsigned version;
	cairn_archive_format format;
	cairn_archive_compress compress;
	cairn_event_cb event_cb;  /* progress: files, bytes */
	void *event_payload;
	/* version 2: progress that may cancel, instead of event_cb: the export
	 * stops and fails with CAIRN_ECANCELED; what went to fd is a truncated
	 * archive (no end-of-archive blocks): discard it. */
	cairn_event_cancel_cb event_cancel_cb;
} cairn_export_options;
#define CAIRN_EXPORT_OPTIONS_INIT { CAIRN_EXPORT_OPTIONS_VERSION, CAIRN_ARCHIVE_PAX, CAIRN_COMPRESS_NONE, NULL, NULL, NULL }

#define CAIRN_EXPORT_RESULT_VERSION 1
typedef struct cairn_export_result {
	unsigned version;
	uint64_t entries, files, bytes; /* bytes: file content written (holes excluded) */
	uint64_t duration_ms;
} cairn_export_result;
#define CAIRN_EXPORT_RESULT_INIT { CAIRN_EXPORT_RESULT_VERSION, 0, 0, 0, 0 }

/* Write snapshot snap_id (a full id) as a tar archive to fd, every chunk
 * verified. Entries: "." for the root, then "name", "dir/name", ...
 * depth-first in name order. opts may be NULL (pax, uncompressed). */
CAIRN_EXTERN int cairn_export(cairn_export_result *out, cairn_repo *repo, const char *snap_id,
                              int fd, const cairn_export_options *opts);

#define CAIRN_IMPORT_OPTIONS_VERSION 2
typedef struct cairn_import_options {
	unsigned version;
	const char *name;        /* snapshot name (required) */
	const char *user;        /* owner; NULL = "default" */
	const char *base;        /* full id of the snapshot this archive is a layer over, or NULL */
	const char *source;      /* recorded as the snapshot's root path ("archive:FILE"); NULL = "-" */
	const char *const *labels; /* "KEY=VALUE" */
	size_t nlabels;
	cairn_event_cb event_cb; /* progress: files, bytes, new_bytes, stored_bytes */
	void *event_payload;
	/* version 2: progress that may cancel, instead of event_cb: the import
	 * stops and fails with CAIRN_ECANCELED, nothing committed (data already
	 * stored waits for gc, as after any failed import). */
	cairn_event_cancel_cb event_cancel_cb;
} cairn_import_options;
#define CAIRN_IMPORT_OPTIONS_INIT { CAIRN_IMPORT_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL }

#define CAIRN_IMPORT_RESULT_VERSION 1
typedef struct cairn_import_result {
	unsigned version;
	char snapshot[65];
	uint64_t entries;        /* archive entries read */
	uint64_t files, dirs, bytes, new_bytes, stored_bytes;
	uint64_t whiteouts;      /* .wh. entries applied (with base only) */
	uint64_t sockets_skipped;
	uint64_t duration_ms;
} cairn_import_result;
#define CAIRN_IMPORT_RESULT_INIT { CAIRN_IMPORT_RESULT_VERSION, "", 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* Read a tar archive (plain, gzip or zstd: detected from the data) from fd
 * and commit it as a snapshot. With base, the archive is an OCI/Docker
 * layer over the base snapshot's tree: ".wh.NAME" removes NAME and
 * ".wh..wh..opq" drops the base's children of its directory. An absolute
 * path, a ".." component, a path through a non-directory, or a hardlink to
 * an entry not (yet) in the tree is CAIRN_EUSAGE; a truncated or garbage
 * archive CAIRN_ECORRUPT; either way nothing is committed. */
CAIRN_EXTERN int cairn_import(cairn_import_result *out, cairn_repo *repo, int fd,
                              const cairn_import_options *opts);

/* ---- fsck ---------------------------------------------------------------- */

#define CAIRN_FSCK_OPTIONS_VERSION 2
typedef struct cairn_fsck_options {
	unsigned version;
	int read_data;        /* 1: decompress every blob and check its SHA-256 */
	int repair;           /* 1: rebuild the index, quarantine damaged packs, mark damaged snapshots */
	int threads;          /* 0 = number of CPUs */
	uint64_t lock_wait_ms; /* waiting for the "gc" lock; 0 = default (10 s) */
	/* version 2: how to open the repository (cairn_repo_open_ext), or NULL */
	const cairn_repo_open_options *open;
} cairn_fsck_options;
#define CAIRN_FSCK_OPTIONS_INIT { CAIRN_FSCK_OPTIONS_VERSION, 0, 0, 0, 0, NULL }

typedef enum cairn_fsck_severity {
	CAIRN_FSCK_DAMAGE = 1,  /* something a snapshot needs is missing or wrong */
	CAIRN_FSCK_INFO = 2,    /* harmless: leftovers and unreferenced data that gc reclaims */
	CAIRN_FSCK_REPAIRED = 3 /* an action --repair took */
} cairn_fsck_severity;

typedef struct cairn_fsck_problem {
	cairn_fsck_severity severity;
	const char *kind;    /* "config", "index", "pack", "snapshot", "tree", "chunk", "tmp", "usage", "repair" */
	const char *object;  /* the object's name ("packs/ab/ab12...", "chunk 3fa1...") */
	const char *message; /* what is wrong, one line */
	size_t naffected;    /* affected (snapshot, path) pairs listed below */
	const char *const *snapshot_ids;   /* naffected full ids */
	const char *const *snapshot_names; /* naffected names ("" when the manifest is unreadable) */
	const char *const *paths;          /* naffected paths in the snapshot ("/" = all of it) */
	size_t more_affected; /* pairs beyond the listed ones (the list is capped) */
} cairn_fsck_problem;

#define CAIRN_FSCK_STATS_VERSION 1
typedef struct cairn_fsck_stats {
	unsigned version;
	uint64_t snapshots, trees, chunks, packs, index_segments, bytes_checked;
	uint64_t damaged;          /* problems of severity DAMAGE (after repair: those left) */
	uint64_t damaged_snapshots; /* distinct snapshots affected by damage */
	uint64_t infos, repairs;
	uint64_t duration_ms;
} cairn_fsck_stats;
#define CAIRN_FSCK_STATS_INIT { CAIRN_FSCK_STATS_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

typedef struct cairn_fsck_report cairn_fsck_report;

/* Check the repository at repo_path (opened here, leniently, so that a
 * damaged config or index segment is reported rather than refused). Holds
 * the "gc" lock throughout (CAIRN_EBUSY after lock_wait_ms). Returns 0 when
 * the check ran, whatever it found: the report says; CAIRN_ENOTFOUND when
 * there is no repository. With repair, the report's damage is what remains
 * after repairing (a snapshot whose data is lost stays damaged: marked, never
 * deleted). */
CAIRN_EXTERN int cairn_fsck(cairn_fsck_report **out, const char *repo_path,
                            const cairn_fsck_options *opts);
CAIRN_EXTERN size_t cairn_fsck_report_count(const cairn_fsck_report *report);
/* Valid until the report is freed. */
CAIRN_EXTERN const cairn_fsck_problem *cairn_fsck_report_get(const cairn_fsck_report *report,
                                                             size_t i);
/* out->version must be set (CAIRN_FSCK_STATS_INIT); else out is left alone. */
CAIRN_EXTERN void cairn_fsck_report_stats(const cairn_fsck_report *report, cairn_fsck_stats *out);
CAIRN_EXTERN void cairn_fsck_report_free(cairn_fsck_report *report);

/* ---- gc ------------------------------------------------------------------ */

#define CAIRN_GC_OPTIONS_VERSION 1
typedef struct cairn_gc_options {
	unsigned version;
	int dry_run;           /* 1: decide and report, write and delete nothing */
	int64_t grace_ms;      /* < 0 = default (1 hour); 0 is for tests (see docs/operations.md) */
	uint64_t lock_wait_ms; /* waiting for the "gc" lock; 0 = default (10 s) */
	unsigned rewrite_percent; /* rewrite a pack when at least this % of it is garbage; 0 = 50 */
} cairn_gc_options;
#define CAIRN_GC_OPTIONS_INIT { CAIRN_GC_OPTIONS_VERSION, 0, -1, 0, 0 }

#define CAIRN_GC_RESULT_VERSION 1
typedef struct cairn_gc_result {
	unsigned version;
	int dry_run;
	uint64_t snapshots;        /* snapshots whose data was kept */
	uint64_t live_blobs, dead_blobs; /* indexed blobs referenced / not referenced */
	uint64_t pending_blobs, pending_bytes; /* dead, marked, waiting for the grace period or a session */
	uint64_t deleted_blobs;    /* dropped from the index (their bytes go with their packs) */
	uint64_t packs_deleted, packs_rewritten, packs_written;
	uint64_t segments_deleted, segments_written;
	uint64_t tmp_deleted, sessions_removed, markers_removed;
	uint64_t uploads_aborted;  /* unfinished writes of dead takes (S3 multipart uploads) */
	uint64_t bytes_deleted, bytes_written;
	int64_t bytes_reclaimed;   /* bytes_deleted - bytes_written */
	uint64_t duration_ms;
	uint64_t inodes_removed;   /* inodes records of forgotten snapshots */
} cairn_gc_result;
#define CAIRN_GC_RESULT_INIT { CAIRN_GC_RESULT_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* Reclaim space (docs/operations.md "Garbage collection"): safe beside running takes and
 * restores. Holds the "gc" lock (CAIRN_EBUSY after lock_wait_ms).
 * CAIRN_ECORRUPT when a snapshot cannot be read completely (run fsck):
 * nothing is deleted then. */
CAIRN_EXTERN int cairn_gc(cairn_gc_result *out, cairn_repo *repo, const cairn_gc_options *opts);

/* ---- users, usage and quotas (engine/quota/) ----------------------------- */

/* A user's accounting (docs/operations.md "Users, usage and quotas"). It
 * has no version and never changes (it is embedded and returned in arrays).
 * used_bytes is the
 * stored size of each distinct chunk and tree that the user's snapshots
 * reference, each counted once for the user whatever other users store. */
typedef struct cairn_usage {
	char user[65];
	uint64_t used_bytes;
	uint64_t snapshots;
	int has_quota;        /* 0: no quota (JSON null) */
	uint64_t quota_bytes;
} cairn_usage;

/* One user's figures, in constant time. A user without any record has zero
 * usage and no quota. CAIRN_EUSAGE for an invalid user name. */
CAIRN_EXTERN int cairn_usage_get(cairn_usage *out, cairn_repo *repo, const char *user);
/* Every user with snapshots or a quota, sorted by name; *out malloc'd, free
 * with cairn_usage_list_free. */
CAIRN_EXTERN int cairn_usage_list(cairn_usage **out, size_t *count, cairn_repo *repo);
CAIRN_EXTERN void cairn_usage_list_free(cairn_usage *list);

/* Set (has_quota = 1) or remove (0) user's quota of bytes. A take that would
 * bring the user's usage past it fails with CAIRN_EQUOTA and commits nothing. */
CAIRN_EXTERN int cairn_quota_set(cairn_repo *repo, const char *user, int has_quota, uint64_t bytes);

/* 1 when user is a valid USER (SPEC.md): 1 to 64 characters of
 * [A-Za-z0-9._-], not starting with '.' (so never "." or ".."); else 0
 * (NULL too). Every call taking a user refuses others with CAIRN_EUSAGE. */
CAIRN_EXTERN int cairn_user_name_valid(const char *user);

#define CAIRN_ESTIMATE_RESULT_VERSION 1
typedef struct cairn_estimate_result {
	unsigned version;
	uint64_t added_bytes;  /* what a take would add to the user's usage */
	uint64_t files, bytes, new_bytes, stored_bytes; /* as the take would report them */
	cairn_usage usage;     /* the user's figures now */
	int fits;              /* the take would pass the user's quota */
} cairn_estimate_result;
#define CAIRN_ESTIMATE_RESULT_INIT { CAIRN_ESTIMATE_RESULT_VERSION, 0, 0, 0, 0, 0, { "", 0, 0, 0, 0 }, 0 }

/* What cairn_take with opts would add to opts->user's usage, writing
 * nothing (a dry run of the take pipeline; opts->name may be NULL). Equal to
 * what the take then adds when nothing changes in between. */
CAIRN_EXTERN int cairn_estimate(cairn_estimate_result *out, cairn_repo *repo,
                                const cairn_take_options *opts);

/* Delete snapshot snap_id (a full id); its user's usage drops at once (by
 * *released_bytes, which may be NULL); the space returns at the next gc. */
CAIRN_EXTERN int cairn_forget(cairn_repo *repo, const char *snap_id, uint64_t *released_bytes);


/* ---- mount (engine/mount/) ------------------------------------------------ */

typedef enum cairn_hydrate {
	CAIRN_HYDRATE_NONE = 0,  /* data arrives only as it is read */
	CAIRN_HYDRATE_TRACE = 1, /* then the files of the access trace, in its order */
	CAIRN_HYDRATE_ALL = 2    /* then the trace's files and after them every other file */
} cairn_hydrate;

#define CAIRN_MOUNT_OPTIONS_VERSION 1
typedef struct cairn_mount_options {
	unsigned version;
	const char *cache_dir;     /* local cache of file data (required; created if absent) */
	cairn_hydrate hydrate;
	unsigned threads;          /* request threads; 0 = 8 */
	unsigned fetchers;         /* threads fetching chunks; 0 = 4 (16 from RADOS or S3) */
	uint64_t fetch_timeout_ms; /* a read waits at most this long for a chunk, then EIO; 0 = 30 s */
	unsigned readahead;        /* chunks fetched ahead of a read; 0 = 8 */
	int no_passthrough;        /* 1: never open files in FUSE passthrough mode */
	int no_trace;              /* 1: do not record the access trace */
	/* NOTICE: one line per failure (naming the object); PROGRESS (bytes,
	 * total_bytes, ms) and STATE "hydrated" (bytes, ms) of the background
	 * hydration. Called from the server's threads, one at a time or not:
	 * the callback serializes itself. (No cancelling callback: stop a
	 * mount with cairn_mount_unmount.) */
	cairn_event_cb event_cb;
	void *event_payload;
} cairn_mount_options;
#define CAIRN_MOUNT_OPTIONS_INIT { CAIRN_MOUNT_OPTIONS_VERSION, NULL, CAIRN_HYDRATE_NONE, 0, 0, 0, 0, 0, 0, NULL, NULL }

typedef struct cairn_mount cairn_mount;

/* Serve snapshot snap_id (a full id) read-only at mountpoint (a directory),
 * as a FUSE filesystem "fuse.cairn" whose source names the snapshot and this
 * process ("cairn:<id12>:<pid>"). Returns once the mount answers; the
 * server runs in threads of this process until the mount goes (cairn_umount,
 * cairn_mount_unmount). Needs root. The repo handle must outlive the mount;
 * it holds a gc session for as long. CAIRN_ENOTFOUND: no such snapshot or
 * mount point. */
CAIRN_EXTERN int cairn_mount_start(cairn_mount **out, cairn_repo *repo, const char *snap_id,
                                   const char *mountpoint, const cairn_mount_options *opts);
/* Block until the kernel ends the mount (unmounted, or its connection
 * aborted); then store the access trace when the snapshot has none yet. */
CAIRN_EXTERN int cairn_mount_wait(cairn_mount *m);
/* Detach the mount (MNT_DETACH); async-signal-safe, for signal handlers. */
CAIRN_EXTERN void cairn_mount_unmount(cairn_mount *m);
/* Stop and free (unmounting first when still mounted). Accepts NULL. */
CAIRN_EXTERN void cairn_mount_free(cairn_mount *m);
/* Unmount a cairn mount at mountpoint and end its server (waiting up to
 * wait_ms, then killing it); also cleans up after a server that died.
 * A mount still in use is detached and its connection aborted, so its
 * readers get errors. CAIRN_ENOTFOUND when no cairn mount is there. */
CAIRN_EXTERN int cairn_umount(const char *mountpoint, uint64_t wait_ms);

#ifdef __cplusplus
}
#endif
#endif
