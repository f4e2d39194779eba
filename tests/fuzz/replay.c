/* Corpus replay for the fuzz targets, without libFuzzer (as zstd's
 * tests/fuzz/regression_driver.c): every file named, or found in a directory
 * named, is fed once to LLVMFuzzerTestOneInput. Built with the normal
 * compiler in every build, so the corpora guard plain and sanitizer builds,
 * not only a libFuzzer one. A target reports a failure by crashing
 * (abort); this driver fails on an unreadable input. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static int replay_file(const char *path, size_t *count)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	uint8_t *data = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			uint8_t *n = realloc(data, cap);
			if (!n) {
				fprintf(stderr, "%s: out of memory\n", path);
				free(data);
				fclose(f);
				return -1;
			}
			data = n;
		}
		size_t got = fread(data + len, 1, cap - len, f);
		len += got;
		if (got == 0) break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		fprintf(stderr, "%s: read error\n", path);
		free(data);
		return -1;
	}
	/* An exact-size copy, so that ASan sees a read past the input's end. */
	uint8_t *exact = malloc(len ? len : 1);
	if (!exact) {
		free(data);
		return -1;
	}
	if (len) memcpy(exact, data, len);
	free(data);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	(*count)++;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	if (!d) {
		perror(dir);
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.') continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof(*names));
			if (!nn) { rc = -1; break; }
			names = nn;
		}
		if (!(names[n] = strdup(e->d_name))) { rc = -1; break; }
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name); /* the same order every run */
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (rc == 0 && replay_file(path, count) < 0) rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int rc = 0;
	for (int i = 1; i < argc; i++) {
		struct stat sb;
		if (stat(argv[i], &sb) < 0) {
			perror(argv[i]);
			rc = 1;
		} else if ((S_ISDIR(sb.st_mode) ? replay_dir(argv[i], &count) : replay_file(argv[i], &count)) < 0) {
			rc = 1;
		}
	}
	printf("%s: %zu inputs replayed\n", argv[0], count);
	if (count == 0) {
		fprintf(stderr, "%s: no inputs: nothing was checked\n", argv[0]);
		rc = 1;
	}
	return rc;
}
