/* Options structs of any version a caller was built against (cairn.h):
 * each begins with its version, and a newer version only appends fields. A
 * caller's struct is copied over the defaults up to its own size, so the
 * fields it does not know keep their defaults. */
#ifndef CAIRN_OPTIONS_H
#define CAIRN_OPTIONS_H

#include <stddef.h>

#include "cairn.h"

/* The size of an options version whose last field is field: where it ends
 * (the old struct may be padded past that; nothing there is read). */
#define OPTIONS_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* dst holds the defaults (and the current version) on entry; src may be
 * NULL (defaults). sizes[v - 1] is the struct's size in version v, for v
 * in 1..nversions. CAIRN_EUSAGE naming what for version 0 or a newer
 * version than this library knows. */
int options_copy(void *dst, const void *src, const size_t *sizes, unsigned nversions, const char *what);

/* The caller's result struct out (NULL: none) must name a version in
 * 1..nversions: else CAIRN_EUSAGE naming what, before any work. */
int result_check(const void *out, unsigned nversions, const char *what);
/* Copy the fields of out's version from full (the current layout, filled
 * by the engine) into out, and nothing past them; out keeps its version.
 * sizes[v - 1] is the struct's size in version v. out NULL: nothing. */
void result_copy(void *out, const void *full, const size_t *sizes);

/* An options struct's callbacks: at most one of cb and cancel_cb. */
int event_cbs_check(cairn_event_cb cb, cairn_event_cancel_cb cancel_cb, const char *what);
/* Call whichever is set (none: nothing). 1 when cancel_cb asked to stop, else 0. */
int event_emit(cairn_event_cb cb, cairn_event_cancel_cb cancel_cb, void *payload, const cairn_event *ev);

#endif
