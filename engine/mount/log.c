/* The mount's log lines (mount.h): below the fetchers, the session loop and
 * the server, which all report through it. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mount/mount.h"

void mount_log(cairn_event_cb cb, void *payload, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	if (!cb) return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cairn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CAIRN_EVENT_NOTICE;
	ev.message = msg;
	cb(&ev, payload);
}
