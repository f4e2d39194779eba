/* The CLI's shared helpers (util.h): tables in aligned columns. */
#include "util.h"

#include <stdlib.h>
#include <string.h>

int table_add(struct table *t, const char *const *row)
{
	if (t->ncols > TABLE_MAX_COLS)
		return -1;
	char **cells = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*cells));
	if (!cells)
		return -1;
	t->cells = cells;
	char **r = cells + t->nrows * t->ncols;
	for (size_t c = 0; c < t->ncols; c++) {
		r[c] = escape_dup(row[c], strlen(row[c]));
		if (!r[c]) {
			while (c-- > 0)
				free(r[c]);
			return -1;
		}
	}
	t->nrows++;
	return 0;
}

void table_print(const struct table *t, FILE *f)
{
	size_t width[TABLE_MAX_COLS];
	if (t->ncols > TABLE_MAX_COLS)
		return;
	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = 0;
		for (size_t r = 0; r < t->nrows; r++) {
			size_t w = display_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			size_t pad = width[c] - display_width(cell);
			int last = c + 1 == t->ncols;
			if (t->right && t->right[c])
				fprintf(f, "%*s%s", (int)pad, "", cell);
			else
				fprintf(f, "%s%*s", cell, last ? 0 : (int)pad, "");
			fputs(last ? "\n" : "  ", f);
		}
	}
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}
