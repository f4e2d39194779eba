/* A small streaming JSON writer: enough for the CLI's events and listings. */
#include "util.h"

#include <inttypes.h>
#include <string.h>

void json_start(struct json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->more[0] = 0;
}

/* Comma and key before a value. */
static void member(struct json *j, const char *key)
{
	if (j->more[j->depth])
		fputc(',', j->f);
	j->more[j->depth] = 1;
	if (key) {
		json_escape(j->f, key, strlen(key));
		fputc(':', j->f);
	}
}

void json_open(struct json *j, const char *key, char bracket)
{
	member(j, key);
	fputc(bracket, j->f);
	if (j->depth + 1 < (int)sizeof(j->more))
		j->depth++;
	j->more[j->depth] = 0;
}

void json_close(struct json *j, char bracket)
{
	if (j->depth > 0)
		j->depth--;
	fputc(bracket, j->f);
}

void json_strn(struct json *j, const char *key, const char *s, size_t len)
{
	member(j, key);
	json_escape(j->f, s, len);
}

void json_str(struct json *j, const char *key, const char *s)
{
	if (!s)
		json_null(j, key);
	else
		json_strn(j, key, s, strlen(s));
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	member(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void json_i64(struct json *j, const char *key, int64_t v)
{
	member(j, key);
	fprintf(j->f, "%" PRId64, v);
}

void json_bool(struct json *j, const char *key, int v)
{
	member(j, key);
	fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j, const char *key)
{
	member(j, key);
	fputs("null", j->f);
}

void json_line_end(struct json *j)
{
	fputc('\n', j->f);
	fflush(j->f);
}

void json_escape(FILE *f, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', f);
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" :
		                  c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
		size_t n = utf8_seq(s + i, len - i);
		if (esc) {
			fputs(esc, f);
			i++;
		} else if (c < 0x20 || c == 0x7f || n == 0) {
			/* controls, and bytes that are not UTF-8: the byte as a code point */
			fprintf(f, "\\u%04x", c);
			i++;
		} else {
			fwrite(s + i, 1, n, f);
			i += n;
		}
	}
	fputc('"', f);
}

void json_snapshot(struct json *j, const cairn_snapshot_info *s)
{
	char time[32];
	format_utc_time(time, ns_to_sec(s->time_ns));
	json_open(j, NULL, '{');
	json_str(j, "id", s->id);
	json_str(j, "user", s->user);
	json_str(j, "name", s->name);
	json_str(j, "time", time);
	json_i64(j, "time_ns", s->time_ns);
	json_str(j, "root", s->root_path);
	json_str(j, "hostname", s->hostname);
	json_str(j, "parent", *s->parent ? s->parent : NULL);
	json_str(j, "root_tree", s->root_tree);
	json_u64(j, "files", s->files);
	json_u64(j, "dirs", s->dirs);
	json_u64(j, "symlinks", s->symlinks);
	json_u64(j, "specials", s->specials);
	json_u64(j, "hardlinks", s->hardlinks);
	json_u64(j, "sockets_skipped", s->sockets_skipped);
	json_u64(j, "bytes", s->bytes);
	json_u64(j, "new_bytes", s->new_bytes);
	json_u64(j, "stored_bytes", s->stored_bytes);
	if (s->has_added_bytes)
		json_u64(j, "added_bytes", s->added_bytes);
	else
		json_null(j, "added_bytes");
	json_u64(j, "pause_ms", s->pause_ms);
	json_u64(j, "duration_ms", s->duration_ms);
	json_open(j, "labels", '{');
	for (size_t l = 0; l < s->nlabels; l++) json_str(j, s->label_keys[l], s->label_values[l]);
	json_close(j, '}');
	json_close(j, '}');
}
