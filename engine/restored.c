/* Restore records: see restored.h. */
#include "restored.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "io.h"

#define RECORDS_DIR "restored"


/* "<dev>-<ino>" of the directory rootfd. */
static int record_name(int rootfd, char *out, size_t n)
{
	struct stat sb;
	if (fstat(rootfd, &sb) < 0) return error_errno(CAIRN_EIO, errno, "restore record: stat of the target");
	snprintf(out, n, "%llx-%llx", (unsigned long long)sb.st_dev, (unsigned long long)sb.st_ino);
	return 0;
}

/* The records directory in the state directory (created if need be). */
static int open_records(const char *state_dir, int create)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/" RECORDS_DIR, state_dir) >= (int)sizeof(path))
		return error_set(CAIRN_EUSAGE, "state directory %s: path too long", state_dir);
	if (create && io_mkdir_parents(path, 0700) < 0) return error_errno(CAIRN_EIO, errno, "state directory %s", path);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* one this user cannot read holds no record of theirs (a restore by
	 * them could not have written one): no notice on every take */
	int none = errno == ENOENT || (!create && (errno == EACCES || errno == EPERM || errno == ENOTDIR));
	if (fd < 0) return error_errno(none ? CAIRN_ENOTFOUND : CAIRN_EIO, errno, "%s", path);
	return fd;
}

/* Records nobody took for a long time: their directories are likely gone. */
static void prune(int recfd)
{
	int fd = dup(recfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0) close(fd);
		return;
	}
	time_t cutoff = time(NULL) - (time_t)RESTORED_MAX_AGE_DAYS * 86400;
	struct dirent *de;
	struct stat sb;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && fstatat(fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(sb.st_mode) && sb.st_mtime < cutoff)
			unlinkat(fd, de->d_name, 0);
	closedir(d);
}

int restored_put(const char *state_dir, int rootfd, const oid *snap, const inode_list *l)
{
	char name[128];
	uint8_t *data;
	size_t len;
	int rc = record_name(rootfd, name, sizeof(name));
	if (rc < 0) return rc;
	if ((rc = inodes_encode(snap, l, &data, &len)) < 0) return rc;
	int recfd = open_records(state_dir, 1);
	if (recfd < 0) {
		free(data);
		return recfd;
	}
	prune(recfd);
	rc = io_write_atomic(recfd, ".", name, data, len, 0, "restore record");
	if (rc < 0) error_prefix("%s/" RECORDS_DIR, state_dir);
	close(recfd);
	free(data);
	return rc;
}

int restored_get(const char *state_dir, int rootfd, oid *snap, inode_list *out)
{
	char name[128];
	uint8_t *data;
	size_t len;
	memset(out, 0, sizeof(*out));
	int rc = record_name(rootfd, name, sizeof(name));
	if (rc < 0) return rc;
	int recfd = open_records(state_dir, 0);
	if (recfd < 0) return recfd;
	rc = io_read_all(recfd, name, inodes_max_len(), &data, &len, "restore record");
	close(recfd);
	if (rc < 0) return rc;
	char what[4096 + 160];
	snprintf(what, sizeof(what), "restore record %s/" RECORDS_DIR "/%s", state_dir, name);
	rc = inodes_decode(what, data, len, snap, out);
	free(data);
	return rc;
}

void restored_drop(const char *state_dir, int rootfd)
{
	char name[128];
	if (record_name(rootfd, name, sizeof(name)) < 0) {
		error_clear();
		return;
	}
	int recfd = open_records(state_dir, 0);
	if (recfd < 0) {
		error_clear();
		return;
	}
	if (unlinkat(recfd, name, 0) == 0) io_fsync_dir(recfd, "restore records");
	error_clear();
	close(recfd);
}
