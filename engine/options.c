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
