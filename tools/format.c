/* The CLI's shared helpers (util.h): sizes parsed and printed, durations,
 * times, escaped bytes. */
#include "util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	unsigned shift = 0;
	if (*s) {
		const char *units = "KMGT";
		const char *u = strchr(units, toupper((unsigned char)*s));
		if (!u)
			return -1;
		shift = 10 * (unsigned)(u - units + 1);
		s++;
		if (!strcasecmp(s, "iB"))
			s += 2;
		if (*s || v > (UINT64_MAX >> shift))
			return -1;
	}
	*out = v << shift;
	return 0;
}

void format_size(char out[32], uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	if (bytes < 1024) {
		snprintf(out, 32, "%llu B", (unsigned long long)bytes);
		return;
	}
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 6) {
		v /= 1024;
		u++;
	}
	if (v >= 1023.95 && u < 6) { /* would print as "1024.0" */
		v /= 1024;
		u++;
	}
	snprintf(out, 32, "%.1f %s", v, units[u]);
}

void format_duration(char out[32], uint64_t ms)
{
	unsigned long long s = ms / 1000;
	if (ms < 1000)
		snprintf(out, 32, "%llu ms", (unsigned long long)ms);
	else if (ms < 59950)
		snprintf(out, 32, "%.1f s", (double)ms / 1000);
	else if (s < 3600)
		snprintf(out, 32, "%llum%02llus", s / 60, s % 60);
	else
		snprintf(out, 32, "%lluh%02llum", s / 3600, s / 60 % 60);
}

int64_t ns_to_sec(int64_t time_ns)
{
	return time_ns / 1000000000 - (time_ns % 1000000000 < 0);
}

static void format_time(char out[32], int64_t sec, int utc)
{
	time_t t = (time_t)sec;
	struct tm tm;
	if (!(utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)) ||
	    !strftime(out, 32, utc ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, 32, "?");
}

void format_local_time(char out[32], int64_t sec) { format_time(out, sec, 0); }
void format_utc_time(char out[32], int64_t sec) { format_time(out, sec, 1); }

size_t utf8_seq(const unsigned char *s, size_t len)
{
	if (s[0] < 0x80)
		return 1;
	size_t n;
	uint32_t cp, min;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2, cp = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, cp = s[0] & 0x0f, min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4, cp = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void print_escaped(FILE *f, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(s + i, len - i);
		/* C0 and C1 controls and DEL can drive a terminal: never print them raw */
		int control = s[i] < 0x20 || s[i] == 0x7f || (n == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0);
		if (s[i] == '\\') {
			fputs("\\\\", f);
			i++;
		} else if (n == 0 || control) {
			for (size_t k = 0; k < (n ? n : 1); k++)
				fprintf(f, "\\x%02x", s[i + k]);
			i += n ? n : 1;
		} else {
			fwrite(s + i, 1, n, f);
			i += n;
		}
	}
}

char *escape_dup(const char *s, size_t len)
{
	char *out = NULL;
	size_t size;
	FILE *f = open_memstream(&out, &size);
	if (!f)
		return NULL;
	print_escaped(f, s, len);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

size_t display_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}
