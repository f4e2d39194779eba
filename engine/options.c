#include "options.h"

#include <string.h>

#include "cairn.h"
#include "error.h"

int options_copy(void *dst, const void *src, const size_t *sizes, unsigned nversions, const char *what)
{
	if (!src) return 0;
	unsigned version;
	memcpy(&version, src, sizeof(version));
	if (version < 1 || version > nversions)
		return error_set(CAIRN_EUSAGE, "%s: options version %u: this library knows versions 1 to %u", what,
		                 version, nversions);
	unsigned current;
	memcpy(&current, dst, sizeof(current));
	memcpy(dst, src, sizes[version - 1]);
	memcpy(dst, &current, sizeof(current)); /* the copy is of the current layout */
	return 0;
}

int result_check(const void *out, unsigned nversions, const char *what)
{
	if (!out) return 0;
	unsigned version;
	memcpy(&version, out, sizeof(version));
	if (version < 1 || version > nversions)
		return error_set(CAIRN_EUSAGE,
		                 "%s: result version %u: this library knows versions 1 to %u (initialise it with its _INIT)",
		                 what, version, nversions);
	return 0;
}

void result_copy(void *out, const void *full, const size_t *sizes)
{
	if (!out) return;
	unsigned version;
	memcpy(&version, out, sizeof(version));
	/* the version's fields begin after the version word */
	memcpy((char *)out + sizeof(version), (const char *)full + sizeof(version), sizes[version - 1] - sizeof(version));
}

int event_cbs_check(cairn_event_cb cb, cairn_event_cancel_cb cancel_cb, const char *what)
{
	if (cb && cancel_cb) return error_set(CAIRN_EUSAGE, "%s: event_cb and event_cancel_cb both set: give one", what);
	return 0;
}

int event_emit(cairn_event_cb cb, cairn_event_cancel_cb cancel_cb, void *payload, const cairn_event *ev)
{
	if (cancel_cb) return cancel_cb(ev, payload) != 0;
	if (cb) cb(ev, payload);
	return 0;
}
