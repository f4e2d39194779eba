/* Error reporting: a thread-local message set once, where the failure happens. */
#ifndef CAIRN_ERROR_H
#define CAIRN_ERROR_H

/* Set the message and return code (a negative CAIRN_E*). */
int error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, appending ": strerror(err)". */
int error_errno(int code, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Map an errno from a repository operation to a code: ENOENT->ENOTFOUND,
 * ENOMEM->ENOMEM, EEXIST->EEXISTS, everything else EIO. */
int error_from_errno(int err);
void error_clear(void);
/* Prefix the current message with "prefix: " (adds context on the way up). */
void error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define ERR_OOM() error_set(CAIRN_ENOMEM, "out of memory at %s:%d", __FILE__, __LINE__)

#endif
