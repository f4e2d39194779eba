/* The first take's own CPU floor (issue 21): read every regular file's data
 * (not its holes) under a root once (a hardlinked file once, as a take
 * reads it), and for each block of the repository's average chunk size
 * compute its SHA-256 and compress it with zstd at the configured level.
 * That is the least CPU any take that names chunks by SHA-256 and stores them
 * zstd-compressed must spend on the same bytes (no chunking, no packing, no
 * metadata); bench/run.sh divides it by the cores and compares the first take
 * with max(device floor, that).
 *
 * With --restore, the restore's floor instead (issue 21): each block is
 * compressed first, untimed, then decompressed and its SHA-256 computed, and
 * only those two are timed (this thread's CPU clock): the least CPU a restore
 * that verifies every chunk must spend on the same bytes.
 *
 * usage: cpu_floor ROOT [--level N] [--block SIZE] [--skip NAME]... [--restore]
 * prints: files bytes cpu_s (user + system seconds of this process; with
 * --restore, the CPU seconds of decompress + SHA-256 alone) */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

static int level = 3;
static size_t block = 512 * 1024;
static const char *skip[16];
static size_t nskip;
static size_t root_len;
static unsigned char *buf, *out, *back;
static size_t out_cap;
static ZSTD_CCtx *cctx;
static ZSTD_DCtx *dctx;
static int restore_floor;
static double restore_cpu;
static EVP_MD_CTX *md;
static unsigned long long files, bytes;

static int hash_and_compress(const unsigned char *p, size_t n)
{
	unsigned char digest[32];
	unsigned len;
	if (!EVP_DigestInit_ex(md, EVP_sha256(), NULL) || !EVP_DigestUpdate(md, p, n) ||
	    !EVP_DigestFinal_ex(md, digest, &len))
		return -1;
	size_t c = ZSTD_compressCCtx(cctx, out, out_cap, p, n, level);
	return ZSTD_isError(c) ? -1 : 0;
}

static double thread_cpu_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* --restore: the block compressed (not timed), then decompressed and hashed
 * as a restore verifies a chunk (timed). */
static int decompress_and_verify(const unsigned char *p, size_t n)
{
	size_t c = ZSTD_compressCCtx(cctx, out, out_cap, p, n, level);
	if (ZSTD_isError(c)) return -1;
	double t0 = thread_cpu_s();
	size_t d = ZSTD_decompressDCtx(dctx, back, block, out, c);
	unsigned char digest[32];
	unsigned len;
	if (ZSTD_isError(d) || d != n || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(md, back, d) || !EVP_DigestFinal_ex(md, digest, &len))
		return -1;
	restore_cpu += thread_cpu_s() - t0;
	return 0;
}

static int block_done(size_t have)
{
	return restore_floor ? decompress_and_verify(buf, have) : hash_and_compress(buf, have);
}

/* Whole blocks of the file's data, as a take's chunks would cover it: holes
 * (SEEK_HOLE) are neither read, chunked nor restored by cairn, so they are
 * no part of either floor. */
static int process(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) return errno == EACCES || errno == ELOOP ? 0 : -1;
	off_t pos = 0;
	size_t have = 0;
	for (;;) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO) break; /* only a hole is left */
		off_t hole = data < 0 ? -1 : lseek(fd, data, SEEK_HOLE);
		if (data < 0 || hole < 0) { close(fd); return -1; }
		for (pos = data; pos < hole;) {
			size_t want = block - have;
			if ((off_t)want > hole - pos) want = (size_t)(hole - pos);
			ssize_t r = pread(fd, buf + have, want, pos);
			if (r < 0 && errno == EINTR) continue;
			if (r < 0) { close(fd); return -1; }
			if (r == 0) break; /* the file shrank */
			have += (size_t)r;
			pos += r;
			bytes += (unsigned long long)r;
			if (have == block && block_done(have) < 0) { close(fd); return -1; }
			if (have == block) have = 0;
		}
		if (pos < hole) break;
	}
	if (have > 0 && block_done(have) < 0) { close(fd); return -1; }
	files++;
	close(fd);
	return 0;
}

/* Inodes with more than one link seen so far: a take reads a hardlinked
 * file once (its other names share its chunks), so the floor does too. */
static struct { dev_t dev; ino_t ino; } *linked;
static size_t nlinked, caplinked;

static int seen_before(const struct stat *st)
{
	if (st->st_nlink < 2) return 0;
	for (size_t i = 0; i < nlinked; i++)
		if (linked[i].dev == st->st_dev && linked[i].ino == st->st_ino) return 1;
	if (nlinked == caplinked) {
		size_t cap = caplinked ? caplinked * 2 : 64;
		void *v = realloc(linked, cap * sizeof(*linked));
		if (!v) return 0; /* read it again: only the floor is a little high */
		linked = v;
		caplinked = cap;
	}
	linked[nlinked].dev = st->st_dev;
	linked[nlinked++].ino = st->st_ino;
	return 0;
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_D && ftw->level == 1)
		for (size_t i = 0; i < nskip; i++)
			if (strcmp(path + root_len + 1, skip[i]) == 0) return FTW_SKIP_SUBTREE;
	if (type != FTW_F || !S_ISREG(st->st_mode) || seen_before(st)) return FTW_CONTINUE;
	if (process(path) < 0) {
		fprintf(stderr, "cpu_floor: %s: %s\n", path, strerror(errno ? errno : EIO));
		return FTW_STOP;
	}
	return FTW_CONTINUE;
}

int main(int argc, char **argv)
{
	const char *root = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--level") == 0 && i + 1 < argc) level = atoi(argv[++i]);
		else if (strcmp(argv[i], "--block") == 0 && i + 1 < argc) block = strtoull(argv[++i], NULL, 0);
		else if (strcmp(argv[i], "--skip") == 0 && i + 1 < argc && nskip < 16) skip[nskip++] = argv[++i];
		else if (strcmp(argv[i], "--restore") == 0) restore_floor = 1;
		else if (!root && argv[i][0] != '-') root = argv[i];
		else { fprintf(stderr, "usage: cpu_floor ROOT [--level N] [--block SIZE] [--skip NAME]... [--restore]\n"); return 2; }
	}
	if (!root || block == 0 || level < 1 || level > ZSTD_maxCLevel()) {
		fprintf(stderr, "usage: cpu_floor ROOT [--level N] [--block SIZE] [--skip NAME]... [--restore]\n");
		return 2;
	}
	root_len = strlen(root);
	while (root_len > 1 && root[root_len - 1] == '/') root_len--;
	out_cap = ZSTD_compressBound(block);
	buf = malloc(block);
	back = malloc(block);
	out = malloc(out_cap);
	cctx = ZSTD_createCCtx();
	dctx = ZSTD_createDCtx();
	md = EVP_MD_CTX_new();
	if (!buf || !back || !out || !cctx || !dctx || !md) { fprintf(stderr, "cpu_floor: out of memory\n"); return 1; }
	int rc = nftw(root, visit, 64, FTW_PHYS | FTW_MOUNT | FTW_ACTIONRETVAL);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		     ru.ru_stime.tv_usec / 1e6;
	printf("%llu %llu %.3f\n", files, bytes, restore_floor ? restore_cpu : cpu);
	free(linked);
	free(buf);
	free(back);
	ZSTD_freeDCtx(dctx);
	free(out);
	ZSTD_freeCCtx(cctx);
	EVP_MD_CTX_free(md);
	return rc == 0 ? 0 : 1;
}
