/* Error reporting: a thread-local message set once, where the failure happens. */
#ifndef CAIRN_ERROR_H
#define CAIRN_ERROR_H

/* The error's class (cairn_error_last_info) is the engine file that set it,
 * or the module a file belongs to when it defines ERROR_CLASS before
 * including this header (a module split into files keeps one class). */
#ifdef ERROR_CLASS
#define ERROR_WHERE ERROR_CLASS
#else
#define ERROR_WHERE __FILE__
#endif
/* Set the message and return code (a negative CAIRN_E*). */
#define error_set(...) error_set_at(ERROR_WHERE, __VA_ARGS__)
/* Same, appending ": strerror(err)". */
#define error_errno(...) error_errno_at(ERROR_WHERE, __VA_ARGS__)
int error_set_at(const char *file, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int error_errno_at(const char *file, int code, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Map an errno from a repository operation to a code: ENOENT->ENOTFOUND,
 * ENOMEM->ENOMEM, EEXIST->EEXISTS, everything else EIO. */
int error_from_errno(int err);
void error_clear(void);
/* Prefix the current message with "prefix: " (adds context on the way up). */
void error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define ERR_OOM() error_set(CAIRN_ENOMEM, "out of memory at %s:%d", __FILE__, __LINE__)

#endif
