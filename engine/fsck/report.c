/* The check (internal.h): the report: problems with what they affect, and its
 * public accessors. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

void problem_free(problem *p)
{
	if (!p) return;
	for (size_t i = 0; i < p->pub.naffected; i++) {
		free(p->ids[i]);
		free(p->names[i]);
		free(p->paths[i]);
	}
	free(p->ids);
	free(p->names);
	free(p->paths);
	free(p->kind);
	free(p->object);
	free(p->message);
	free(p);
}

CAIRN_EXTERN void cairn_fsck_report_free(cairn_fsck_report *r)
{
	if (!r) return;
	for (size_t i = 0; i < r->n; i++) problem_free(r->p[i]);
	free(r->p);
	free(r);
}

CAIRN_EXTERN size_t cairn_fsck_report_count(const cairn_fsck_report *r) { return r ? r->n : 0; }

CAIRN_EXTERN const cairn_fsck_problem *cairn_fsck_report_get(const cairn_fsck_report *r, size_t i)
{
	return r && i < r->n ? &r->p[i]->pub : NULL;
}

CAIRN_EXTERN void cairn_fsck_report_stats(const cairn_fsck_report *r, cairn_fsck_stats *out)
{
	static const size_t result_sizes[] = {sizeof(cairn_fsck_stats)};
	cairn_fsck_stats s = CAIRN_FSCK_STATS_INIT;
	if (result_check(out, CAIRN_FSCK_STATS_VERSION, "fsck report") < 0) return;
	if (r) s = r->stats;
	result_copy(out, &s, result_sizes);
}

/* Add a problem; returns its number, or -1 when out of memory. */
long report_add(cairn_fsck_report *r, cairn_fsck_severity sev, const char *kind,
                const char *object, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	problem *p = calloc(1, sizeof(*p));
	if (!p) return -1;
	p->kind = strdup(kind);
	p->object = strdup(object);
	p->message = strdup(msg);
	if (!p->kind || !p->object || !p->message || (r->n == r->cap && !(r->cap = r->cap ? r->cap * 2 : 16, 1))) {
		problem_free(p);
		return -1;
	}
	problem **np = realloc(r->p, r->cap * sizeof(*np));
	if (!np) {
		problem_free(p);
		return -1;
	}
	r->p = np;
	p->pub.severity = sev;
	p->pub.kind = p->kind;
	p->pub.object = p->object;
	p->pub.message = p->message;
	r->p[r->n] = p;
	return (long)r->n++;
}

void report_affect(problem *p, const char *id, const char *name, const char *path)
{
	for (size_t i = 0; i < p->pub.naffected; i++)
		if (strcmp(p->ids[i], id) == 0 && (strcmp(p->paths[i], path) == 0 || strcmp(p->paths[i], "/") == 0))
			return;
	if (p->pub.naffected >= AFFECTED_MAX) {
		p->pub.more_affected++;
		return;
	}
	if (p->pub.naffected == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4;
		char **a = realloc(p->ids, cap * sizeof(char *));
		if (a) p->ids = a;
		char **b = realloc(p->names, cap * sizeof(char *));
		if (b) p->names = b;
		char **c = realloc(p->paths, cap * sizeof(char *));
		if (c) p->paths = c;
		if (!a || !b || !c) return;
		p->cap = cap;
	}
	size_t i = p->pub.naffected;
	p->ids[i] = strdup(id);
	p->names[i] = strdup(name ? name : "");
	p->paths[i] = strdup(path);
	if (!p->ids[i] || !p->names[i] || !p->paths[i]) {
		free(p->ids[i]);
		free(p->names[i]);
		free(p->paths[i]);
		return;
	}
	p->pub.naffected++;
	p->pub.snapshot_ids = (const char *const *)p->ids;
	p->pub.snapshot_names = (const char *const *)p->names;
	p->pub.paths = (const char *const *)p->paths;
}
