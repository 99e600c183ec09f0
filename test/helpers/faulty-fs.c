/* A FUSE file system that passes everything through to a backing directory, except that the operations
 * named in a control file fail with the errno it names: the faults of a real disk that a test cannot
 * otherwise make here (EIO of failing hardware, EDQUOT of a quota, EACCES of a security module, which
 * root's capabilities do not bypass). The kernel has no device mapper or quota support on these machines.
 *
 *   faulty-fs BACKING CONTROL MOUNTPOINT
 *
 * CONTROL holds "ERRNO OP,OP,..." (e.g. "122 write"), read at every operation that changes something;
 * an empty or missing file injects nothing. OPs: create, write, rename, unlink, mkdir, symlink, setattr.
 * Runs in the foreground, single-threaded, until unmounted. */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int backing = -1;
static const char *control;

/* The path relative to the backing directory ("/" is "."). */
static const char *rel(const char *path) {
	return path[1] ? path + 1 : ".";
}

/* The errno to fail `op` with, or 0. */
static int injected(const char *op) {
	char buf[256] = "";
	FILE *f = fopen(control, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	int err = 0;
	char ops[200] = "";
	if (sscanf(buf, "%d %199s", &err, ops) != 2 || err <= 0)
		return 0;
	for (char *save = NULL, *t = strtok_r(ops, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (strcmp(t, op) == 0)
			return err;
	return 0;
}

#define INJECT(op)                          \
	do {                                \
		int e_ = injected(op);      \
		if (e_)                     \
			return -e_;         \
	} while (0)

static int res(int r) {
	return r < 0 ? -errno : 0;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
	if (fi)
		return res(fstat((int)fi->fh, st));
	return res(fstatat(backing, rel(path), st, AT_SYMLINK_NOFOLLOW));
}

static int fs_readlink(const char *path, char *buf, size_t size) {
	ssize_t n = readlinkat(backing, rel(path), buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags) {
	(void)off, (void)fi, (void)flags;
	int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	for (struct dirent *e; (e = readdir(d));)
		if (fill(buf, e->d_name, NULL, 0, 0))
			break;
	closedir(d);
	return 0;
}

static int fs_mkdir(const char *path, mode_t mode) {
	INJECT("mkdir");
	return res(mkdirat(backing, rel(path), mode));
}

static int fs_unlink(const char *path) {
	INJECT("unlink");
	return res(unlinkat(backing, rel(path), 0));
}

static int fs_rmdir(const char *path) {
	INJECT("unlink");
	return res(unlinkat(backing, rel(path), AT_REMOVEDIR));
}

static int fs_symlink(const char *target, const char *path) {
	INJECT("symlink");
	return res(symlinkat(target, backing, rel(path)));
}

static int fs_rename(const char *from, const char *to, unsigned int flags) {
	INJECT("rename");
	return res(renameat2(backing, rel(from), backing, rel(to), flags));
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
	INJECT("setattr");
	return res(fi ? fchmod((int)fi->fh, mode) : fchmodat(backing, rel(path), mode, 0));
}

static int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi) {
	INJECT("setattr");
	return res(fi ? fchown((int)fi->fh, uid, gid) : fchownat(backing, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW));
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
	INJECT("setattr");
	if (fi)
		return res(ftruncate((int)fi->fh, size));
	int fd = openat(backing, rel(path), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	int r = res(ftruncate(fd, size));
	close(fd);
	return r;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
	INJECT("setattr");
	return res(fi ? futimens((int)fi->fh, tv) : utimensat(backing, rel(path), tv, AT_SYMLINK_NOFOLLOW));
}

static int fs_open(const char *path, struct fuse_file_info *fi) {
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		INJECT("write");
	int fd = openat(backing, rel(path), (fi->flags & ~O_CREAT) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
	INJECT("create");
	int fd = openat(backing, rel(path), fi->flags | O_CREAT | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
	(void)path;
	ssize_t n = pread((int)fi->fh, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
	(void)path;
	INJECT("write");
	ssize_t n = pwrite((int)fi->fh, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int fs_statfs(const char *path, struct statvfs *st) {
	(void)path;
	return res(fstatvfs(backing, st));
}

static int fs_release(const char *path, struct fuse_file_info *fi) {
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
	(void)path;
	INJECT("write");
	return res(datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh));
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
	(void)conn;
	/* Every answer comes from the backing directory now: no caching of names or attributes, which
	 * would hide what a failed operation left. */
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->use_ino = 1;
	return NULL;
}

static const struct fuse_operations ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.readdir = fs_readdir,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.truncate = fs_truncate,
	.utimens = fs_utimens,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.statfs = fs_statfs,
	.release = fs_release,
	.fsync = fs_fsync,
};

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: faulty-fs BACKING CONTROL MOUNTPOINT\n");
		return 2;
	}
	backing = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (backing < 0) {
		perror(argv[1]);
		return 1;
	}
	control = argv[2];
	char *fargv[] = {argv[0], "-f", "-s", "-o", "fsname=mymachines-faulty,subtype=faulty", argv[3], NULL};
	return fuse_main(6, fargv, &ops, NULL);
}
