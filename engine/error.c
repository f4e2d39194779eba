#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cairn.h"
#include "cairn/sys/backend.h"

static _Thread_local char message[1024];
static _Thread_local char klass[32];
static _Thread_local int last_code;

/* "../engine/store_s3.c" -> "store_s3" */
static void set_class(const char *file, int code)
{
	const char *base = strrchr(file, '/');
	base = base ? base + 1 : file;
	size_t n = strcspn(base, ".");
	if (n >= sizeof(klass)) n = sizeof(klass) - 1;
	memcpy(klass, base, n);
	klass[n] = 0;
	last_code = code;
}

__attribute__((format(printf, 3, 0)))
static int error_vset(const char *file, int code, const char *fmt, va_list ap)
{
	vsnprintf(message, sizeof(message), fmt, ap);
	set_class(file, code);
	return code;
}

int error_set_at(const char *file, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(file, code, fmt, ap);
	va_end(ap);
	return code;
}

CAIRN_EXTERN int cairn_error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset("backend", code, fmt, ap);
	va_end(ap);
	return code;
}

int error_errno_at(const char *file, int code, int err, const char *fmt, ...)
{
	set_class(file, code);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(message))
		snprintf(message + n, sizeof(message) - (size_t)n, ": %s", strerror(err));
	return code;
}

int error_from_errno(int err)
{
	switch (err) {
	case ENOENT: return CAIRN_ENOTFOUND;
	case ENOMEM: return CAIRN_ENOMEM;
	case EEXIST: return CAIRN_EEXISTS;
	default: return CAIRN_EIO;
	}
}

void error_clear(void)
{
	message[0] = 0;
	klass[0] = 0;
	last_code = 0;
}

void error_prefix(const char *fmt, ...)
{
	char old[sizeof(message)];
	memcpy(old, message, sizeof(old));
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n + 2 < sizeof(message)) {
		/* truncation of a long message is acceptable */
		size_t room = sizeof(message) - (size_t)n;
		memcpy(message + n, ": ", 2);
		size_t olen = strnlen(old, room - 3);
		memcpy(message + n + 2, old, olen);
		message[(size_t)n + 2 + olen] = 0;
	}
}

CAIRN_EXTERN const char *cairn_error_last(void) { return message; }

CAIRN_EXTERN const cairn_error_info *cairn_error_last_info(void)
{
	static _Thread_local cairn_error_info info;
	info.code = last_code;
	info.klass = klass;
	info.message = message;
	return &info;
}

CAIRN_EXTERN int cairn_error_exit_code(int error)
{
	if (error == 0) return 0;
	if (error <= -1 && error >= -6) return -error;
	return 1;
}

CAIRN_EXTERN const char *cairn_error_name(int error)
{
	switch (error) {
	case CAIRN_OK: return "ok";
	case CAIRN_EUSAGE: return "usage";
	case CAIRN_EQUOTA: return "quota_exceeded";
	case CAIRN_ECORRUPT: return "corrupt";
	case CAIRN_EBUSY: return "busy";
	case CAIRN_ENOTFOUND: return "not_found";
	case CAIRN_ECANCELED: return "canceled";
	default: return "io";
	}
}
