/* Frozen copies of the public option and result structs as older headers
 * declared them (include/cairn.h, git history): what a caller built against
 * those headers passes. Never edit a layout here; add the next one instead.
 *
 *   take options 1      up to base, as when version 2 came (b33f683~1;
 *                       version 1 had grown before without a new version:
 *                       fe58842 cgroup..dry_run, d64e4a4 upper and base)
 *   take options 2      + no_precopy (0.2.x, 0.3.0)
 *   init options 1      chunk_avg, zstd_level (before 0.3.0)
 *   restore, export, import options 1 (0.3.0 and before)
 *   fsck options 1      up to lock_wait_ms (before 0.3.0)
 *   gc options 1
 *   take result 1       the first versioned layout: up to prior_cut_chunks
 */
#ifndef CAIRN_TEST_COMPAT_OLD_H
#define CAIRN_TEST_COMPAT_OLD_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h" /* the types that never changed: cairn_event_cb, the archive enums */

typedef struct old_take_options_v1 {
	unsigned version;
	const char *root;
	const char *name;
	const char *user;
	const char *parent;
	int no_parent;
	const char *const *excludes;
	size_t nexcludes;
	const char *const *labels;
	size_t nlabels;
	int threads;
	int no_uring;
	cairn_event_cb event_cb;
	void *event_payload;
	const char *cgroup;
	int release;
	uint64_t max_pause_ms;
	int dry_run;
	const char *upper;
	const char *base;
} old_take_options_v1;

/* Version 1's fields, then no_precopy: the same layout as the header's
 * (version 1's size is a multiple of its alignment, so no padding differs). */
typedef struct old_take_options_v2 {
	old_take_options_v1 v1;
	int no_precopy;
} old_take_options_v2;

typedef struct old_init_options_v1 {
	unsigned version;
	uint32_t chunk_avg;
	int zstd_level;
} old_init_options_v1;

typedef struct old_restore_options_v1 {
	unsigned version;
	int force;
	int threads;
	cairn_event_cb event_cb;
	void *event_payload;
} old_restore_options_v1;

typedef struct old_export_options_v1 {
	unsigned version;
	cairn_archive_format format;
	cairn_archive_compress compress;
	cairn_event_cb event_cb;
	void *event_payload;
} old_export_options_v1;

typedef struct old_import_options_v1 {
	unsigned version;
	const char *name;
	const char *user;
	const char *base;
	const char *source;
	const char *const *labels;
	size_t nlabels;
	cairn_event_cb event_cb;
	void *event_payload;
} old_import_options_v1;

typedef struct old_fsck_options_v1 {
	unsigned version;
	int read_data;
	int repair;
	int threads;
	uint64_t lock_wait_ms;
} old_fsck_options_v1;

typedef struct old_gc_options_v1 {
	unsigned version;
	int dry_run;
	int64_t grace_ms;
	uint64_t lock_wait_ms;
	unsigned rewrite_percent;
} old_gc_options_v1;

typedef struct old_take_result_v1 {
	unsigned version;
	char snapshot[65];
	uint64_t files, dirs, bytes;
	uint64_t new_bytes, stored_bytes;
	uint64_t reused_files;
	uint64_t sockets_skipped, mounts_skipped, excluded;
	uint64_t pause_ms, duration_ms;
	int used_uring;
	uint64_t charged_bytes;
	uint64_t precopy_ms;
	uint64_t prior_cut_chunks;
} old_take_result_v1;

#endif
