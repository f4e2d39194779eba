/* Fault injection as a wrapping backend (as SQLite's test VFS): any
 * backend, a directory, RADOS or S3, can be made to fail its Nth call of
 * an operation, so every protocol above the store is tested against every
 * backend's failures. The spec is cairn_repo_open_options.fault's "store."
 * part (cairn.h); its file ops are io.h's. */
#ifndef CAIRN_STORE_FAULT_H
#define CAIRN_STORE_FAULT_H

#include "store.h"

/* 1 when spec names a storage op (so the store needs wrapping). */
int store_fault_wanted(const char *spec);
/* A backend over inner (owned: freed with it, also on failure) that fails
 * as spec says. CAIRN_EUSAGE naming a malformed "store." token. */
int store_fault_wrap(store **out, store *inner, const char *spec);

#endif
