/* Snapshot manifests (format.h): the commit point of a take. */
#ifndef CAIRN_SNAPSHOT_H
#define CAIRN_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

typedef struct snapshot_manifest {
	oid tree, parent;   /* parent all zero = none */
	uint32_t flags;
	int64_t time_ns;
	char *user, *name, *root_path, *hostname;
	uint64_t files, dirs, symlinks, specials, hardlinks, sockets_skipped;
	uint64_t bytes, new_bytes, stored_bytes, pause_ms, duration_ms;
	size_t nlabels;
	char **label_keys, **label_values;
	int has_added;        /* added_bytes present (format.h SNAPSHOT_HAS_ADDED) */
	uint64_t added_bytes; /* what the commit added to the user's usage */
} snapshot_manifest;

int snapshot_encode(const snapshot_manifest *m, uint8_t **out, size_t *len);
int snapshot_decode(snapshot_manifest *m, const uint8_t *data, size_t len, const char *what);
void snapshot_manifest_free(snapshot_manifest *m);

#endif
