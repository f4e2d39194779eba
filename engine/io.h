/* Durable local file I/O: the one place repository bytes reach the disk.
 * Every write is tmp + fsync + rename (or link, for create-only) + directory
 * fsync. Fault injection for tests (io_fault_configure; the CLI passes
 * CAIRN_FAULT): a spec "op:N:ERR[,op:N:ERR...]"
 * makes the Nth call (1-based, counted per process) of op fail with ERR,
 * where op is write|fsync|rename|read|stat (stat: the directory store's
 * object size) or direct (restore's request for O_DIRECT on a file:
 * EINVAL there is a file system that refuses it) and ERR is
 * EIO|ENOSPC|EINVAL|SHORT (a short write that then fails with ENOSPC) or
 * CRASH (the process _exit(99)s there, before the operation, as if
 * killed). */
#ifndef CAIRN_IO_H
#define CAIRN_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write buf to dirfd/name atomically and durably, through a temporary file
 * in dirfd/tmpdir. With excl, fail with CAIRN_EEXISTS if name exists (no
 * overwrite ever happens). Parent directories of name are created (and made
 * durable) as needed. what names the object in messages. */
int io_write_atomic(int dirfd, const char *tmpdir, const char *name, const void *buf, size_t len,
                    int excl, const char *what);

/* The same, streamed: begin creates the temporary file, append adds bytes
 * (starting writeback as it goes), commit makes it durable and puts it in
 * place (abort on failure), abort removes it. what may be NULL: the name
 * then names the object in messages. */
typedef struct io_atomic {
	int dirfd, fd;
	char tmp[256];
	char *name;
	const char *what;
	uint64_t written, synced;
	int uncached; /* drop the file's pages once it is durable (STORE_UNCACHED) */
} io_atomic;
int io_atomic_begin(io_atomic *a, int dirfd, const char *tmpdir, const char *name,
                    const char *what);
int io_atomic_append(io_atomic *a, const void *data, size_t len);
int io_atomic_commit(io_atomic *a, int excl);
void io_atomic_abort(io_atomic *a);

/* Read a whole file (at most max bytes, else CAIRN_ECORRUPT). CAIRN_ENOTFOUND
 * if it does not exist. *out is malloc'd. */
int io_read_all(int dirfd, const char *name, size_t max, uint8_t **out, size_t *len,
                const char *what);

/* pread exactly len bytes; a short read is CAIRN_ECORRUPT ("truncated"). */
int io_pread_full(int fd, void *buf, size_t len, uint64_t off, const char *what);

/* write exactly len bytes to fd (not for repository files: for restore). */
int io_write_full(int fd, const void *buf, size_t len, const char *what);

/* mkdir -p: path with mode, missing parents 0755; -1 with errno on failure. */
int io_mkdir_parents(const char *path, mode_t mode);

/* fsync a directory. */
int io_fsync_dir(int dirfd, const char *what);

/* The start time of process pid (field 22 of /proc/PID/stat, clock ticks
 * since boot): with the pid, it names one process for good (a pid is
 * reused, the pair is not). 0, or -errno (-ENOENT: no such process,
 * -ESRCH: a zombie). */
int io_proc_start(pid_t pid, uint64_t *start);
/* Is the process (pid, start) alive? 1 yes, 0 no (gone, or its pid reused). */
int io_proc_alive(pid_t pid, uint64_t start);

/* A temporary file's name says who writes it (io_atomic_begin):
 * "<24 hex>.<pid>-<start>@<host>.tmp". 1 when that process runs on this
 * host: gc must leave the file alone, whatever its age, session or none.
 * 0 otherwise (gone, another host's, or an unnamed older file). */
int io_tmp_owner_alive(const char *name);

/* Fill buf with random bytes (getrandom): ids, secrets, session names. */
int io_random(void *buf, size_t len);

/* Fault injection point (see above); returns 0 or a negative errno to fail with. */
int io_fault(const char *op);
/* Configure the process's file faults (cairn_repo_open_options.fault; its
 * "store." tokens are store_fault.h's and ignored here). The same spec
 * again keeps the counts, so a command that opens twice fails once. */
void io_fault_configure(const char *spec);
/* The same, always starting the counts afresh (unit tests). */
void io_fault_reset(const char *spec);

#endif
