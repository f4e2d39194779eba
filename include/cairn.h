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
	CAIRN_ENOMEM = -8     /* out of memory (exit 1) */
};

/* Message of the last failure on this thread ("" if none). */
CAIRN_EXTERN const char *cairn_error_last(void);
/* Exit code (SPEC.md) for an error code: 0..6. */
CAIRN_EXTERN int cairn_error_exit_code(int error);
/* Short name of an error code for JSON events: "io", "usage", "corrupt", ... */
CAIRN_EXTERN const char *cairn_error_name(int error);

CAIRN_EXTERN const char *cairn_version(void);
CAIRN_EXTERN int cairn_format_version(void);

/* ---- repository ---------------------------------------------------------- */

typedef struct cairn_repo cairn_repo;

#define CAIRN_INIT_OPTIONS_VERSION 1
typedef struct cairn_init_options {
	unsigned version;
	uint32_t chunk_avg; /* average chunk size in bytes, power of two; 0 = default */
	int zstd_level;     /* 1..19; 0 = default */
} cairn_init_options;
#define CAIRN_INIT_OPTIONS_INIT { CAIRN_INIT_OPTIONS_VERSION, 0, 0 }

/* Create a repository at path (created if absent; must be empty).
 * CAIRN_EEXISTS if a repository is already there. opts may be NULL. */
CAIRN_EXTERN int cairn_repo_init(const char *path, const cairn_init_options *opts);
/* Open a repository. CAIRN_ENOTFOUND if path does not exist,
 * CAIRN_ENOTFOUND if it is not a repository, CAIRN_ECORRUPT if its config is bad. */
CAIRN_EXTERN int cairn_repo_open(cairn_repo **out, const char *path);
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
} cairn_event;

/* Called from the thread that called cairn_take/cairn_restore. */
typedef void (*cairn_event_cb)(const cairn_event *event, void *payload);

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
	uint64_t new_bytes;    /* bytes of chunks new to the repository */
	uint64_t stored_bytes; /* stored size of those new chunks and trees */
	uint64_t pause_ms, duration_ms;
	size_t nlabels;
	const char *const *label_keys;
	const char *const *label_values;
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

/* Resolve SPEC's SNAP: a unique id prefix of >= 8 hex characters, or a name
 * unique among the snapshots (of user, when not NULL). Writes the full id.
 * CAIRN_ENOTFOUND when nothing matches, CAIRN_EUSAGE when several do. */
CAIRN_EXTERN int cairn_snapshot_resolve(char id_out[65], cairn_repo *repo, const char *spec,
                                        const char *user);

/* ---- take ---------------------------------------------------------------- */

#define CAIRN_TAKE_OPTIONS_VERSION 1
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
} cairn_take_options;
#define CAIRN_TAKE_OPTIONS_INIT { CAIRN_TAKE_OPTIONS_VERSION, NULL, NULL, NULL, NULL, 0, NULL, 0, NULL, 0, 0, 0, NULL, NULL }

typedef struct cairn_take_result {
	char snapshot[65];
	uint64_t files, dirs, bytes, new_bytes, stored_bytes;
	uint64_t reused_files;   /* files whose chunk lists came from the parent unread */
	uint64_t sockets_skipped, mounts_skipped, excluded;
	uint64_t pause_ms, duration_ms;
	int used_uring;          /* 1 when the walk ran on io_uring */
} cairn_take_result;

CAIRN_EXTERN int cairn_take(cairn_take_result *out, cairn_repo *repo,
                            const cairn_take_options *opts);

/* ---- restore ------------------------------------------------------------- */

#define CAIRN_RESTORE_OPTIONS_VERSION 1
typedef struct cairn_restore_options {
	unsigned version;
	int force;     /* 1: restore into a non-empty target, replacing entries */
	int threads;   /* 0 = number of CPUs */
	cairn_event_cb event_cb;
	void *event_payload;
} cairn_restore_options;
#define CAIRN_RESTORE_OPTIONS_INIT { CAIRN_RESTORE_OPTIONS_VERSION, 0, 0, NULL, NULL }

typedef struct cairn_restore_result {
	uint64_t files, dirs, symlinks, specials, hardlinks, bytes;
	uint64_t duration_ms;
} cairn_restore_result;

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

#ifdef __cplusplus
}
#endif
#endif
