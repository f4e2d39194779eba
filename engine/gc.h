/* Garbage collection: the collector (cairn_gc). The sessions and marks that
 * protect readers and writers from it are session.h's (repository layer).
 * The protocol is in README.md ("Garbage collection"), the records in
 * format.h (session, gc marks). It uses only the store interface. */
#ifndef CAIRN_GC_H
#define CAIRN_GC_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "session.h"

#define GC_DEFAULT_GRACE_MS (60u * 60u * 1000u)
#define GC_MAX_SKEW_MS (60u * 1000u)         /* clock skew allowed between hosts, at most grace */
#define GC_DEFAULT_WAIT_MS (10u * 1000u)

#endif
