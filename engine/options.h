/* Options structs of any version a caller was built against (cairn.h):
 * each begins with its version, and a newer version only appends fields. A
 * caller's struct is copied over the defaults up to its own size, so the
 * fields it does not know keep their defaults. */
#ifndef CAIRN_OPTIONS_H
#define CAIRN_OPTIONS_H

#include <stddef.h>

/* dst holds the defaults (and the current version) on entry; src may be
 * NULL (defaults). sizes[v - 1] is the struct's size in version v, for v
 * in 1..nversions. CAIRN_EUSAGE naming what for version 0 or a newer
 * version than this library knows. */
int options_copy(void *dst, const void *src, const size_t *sizes, unsigned nversions, const char *what);

#endif
