#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"

#define MAX_DEPTH 256
static char where[PATH_MAX + 64];

static int set_where(int err, const char *op, const char *name) {
    snprintf(where, sizeof where, "cannot %s %s", op, name);
    return -err;
}

static int endpoint_open(const char *path, struct endpoint *e) {
    if (path[0] != '/') return errno = EINVAL, -1;
    const char *slash = strrchr(path, '/');
    const char *base = slash + 1;
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strlen(base) >= sizeof e->name) return errno = EINVAL, -1;
    char dir[PATH_MAX];
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    if (len >= sizeof dir) return errno = ENAMETOOLONG, -1;
    memcpy(dir, path, len);
    dir[len] = 0;
    e->dir = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (e->dir < 0) return -1;
    snprintf(e->name, sizeof e->name, "%s", base);
    return 0;
}

int endpoint_open_source(const char *path, struct endpoint *e) {
    if (endpoint_open(path, e) < 0) return -1;
    struct stat st;
    if (fstatat(e->dir, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0) return close(e->dir), -1;
    return 0;
}

int endpoint_open_dest(const char *path, struct endpoint *e) {
    return endpoint_open(path, e);
}

static uint32_t map_id(uint32_t id, const struct id_map *m) {
    if (m->into) return id < m->range ? m->shift + id : m->shift; /* unmappable: the container's root */
    return id >= m->shift && id - m->shift < m->range ? id - m->shift : 65534; /* unmappable: nobody */
}

static int remove_tree(int dir, const char *name, int depth) {
    if (unlinkat(dir, name, 0) == 0 || errno == ENOENT) return 0;
    if (errno != EISDIR && errno != EPERM) return -errno;
    if (depth > MAX_DEPTH) return -ELOOP;
    int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    DIR *d = fdopendir(fd);
    if (!d) return close(fd), -errno;
    struct dirent *de;
    int first = 0; /* the first error below: it, not the ENOTEMPTY it leads to, says what went wrong */
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        int e = remove_tree(fd, de->d_name, depth + 1);
        if (e < 0 && first == 0) first = e;
    }
    closedir(d);
    if (unlinkat(dir, name, AT_REMOVEDIR) < 0) return first ? first : -errno;
    return 0;
}

static int copy_data(int in, int out) {
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (n == 0) return 0;
        if (n > 0) continue;
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS) return -errno;
        break;
    }
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) return 0;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return -errno;
            off += w;
        }
    }
}

/* Owner, mode and times of the new node fd (or of name in dir for a symlink). */
static int finish_node(int fd, int dir, const char *name, const struct stat *st, const struct id_map *m) {
    struct timespec times[2] = {st->st_atim, st->st_mtim};
    uid_t uid = map_id(st->st_uid, m);
    gid_t gid = map_id(st->st_gid, m);
    if (fd < 0) {
        if (fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) return -errno;
        return utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
    }
    /* chown first: it clears the set-ID bits that fchmod then puts back. */
    if (fchown(fd, uid, gid) < 0 || fchmod(fd, st->st_mode & 07777) < 0 || futimens(fd, times) < 0) return -errno;
    return 0;
}

/* Copies sname in sdir to dname in ddir; *made (if made is not NULL) becomes 1 once dname is made by
 * this call, so that only what was made here is removed on failure. */
static int copy_node(int sdir, const char *sname, int ddir, const char *dname, const struct id_map *m, int depth, int *made) {
    struct stat st;
    if (depth > MAX_DEPTH) return set_where(ELOOP, "copy (too deep)", sname);
    if (fstatat(sdir, sname, &st, AT_SYMLINK_NOFOLLOW) < 0) return set_where(errno, "stat", sname);
    int r = 0;
    if (S_ISDIR(st.st_mode)) {
        int in = openat(sdir, sname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0) return set_where(errno, "open", sname);
        if (mkdirat(ddir, dname, 0700) < 0) return r = set_where(errno, "make directory", dname), close(in), r;
        if (made) *made = 1;
        int out = openat(ddir, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (out < 0) return r = set_where(errno, "open", dname), close(in), r;
        DIR *d = fdopendir(in);
        if (!d) return r = set_where(errno, "read", sname), close(in), close(out), r;
        struct dirent *de;
        errno = 0;
        while (r == 0 && (de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            r = copy_node(dirfd(d), de->d_name, out, de->d_name, m, depth + 1, NULL);
            errno = 0;
        }
        if (r == 0 && errno) r = set_where(errno, "read", sname);
        closedir(d);
        if (r == 0) r = finish_node(out, -1, NULL, &st, m);
        if (r < 0 && !*where) set_where(-r, "set the owner of", dname);
        close(out);
        return r;
    }
    if (S_ISREG(st.st_mode)) {
        /* The name may be something else by now (the container's side changes under us): O_NONBLOCK so
         * that a FIFO does not stall us, and what was opened must be the file that was stat'ed, not a
         * device to read from as host root. */
        int in = openat(sdir, sname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (in < 0) return set_where(errno, "open", sname);
        struct stat opened;
        if (fstat(in, &opened) < 0) return r = set_where(errno, "stat", sname), close(in), r;
        if (!S_ISREG(opened.st_mode) || opened.st_dev != st.st_dev || opened.st_ino != st.st_ino)
            return r = set_where(EAGAIN, "copy (it changed while being copied)", sname), close(in), r;
        int fl = fcntl(in, F_GETFL);
        if (fl < 0 || fcntl(in, F_SETFL, fl & ~O_NONBLOCK) < 0) return r = set_where(errno, "open", sname), close(in), r;
        int out = openat(ddir, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0) return r = set_where(errno, "create", dname), close(in), r;
        if (made) *made = 1;
        r = copy_data(in, out);
        if (r < 0) set_where(-r, "write", dname);
        else if ((r = finish_node(out, -1, NULL, &st, m)) < 0) set_where(-r, "set the owner of", dname);
        close(in);
        if (close(out) < 0 && r == 0) r = set_where(errno, "write", dname);
        return r;
    }
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(sdir, sname, target, sizeof target - 1);
        if (n < 0) return set_where(errno, "read link", sname);
        target[n] = 0;
        if (symlinkat(target, ddir, dname) < 0) return set_where(errno, "make link", dname);
        if (made) *made = 1;
        return (r = finish_node(-1, ddir, dname, &st, m)) < 0 ? set_where(-r, "set the owner of", dname) : 0;
    }
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        if (mknodat(ddir, dname, st.st_mode & ~07777, st.st_rdev) < 0) return set_where(errno, "make node", dname);
        if (made) *made = 1;
        if (fchownat(ddir, dname, map_id(st.st_uid, m), map_id(st.st_gid, m), AT_SYMLINK_NOFOLLOW) < 0 || fchmodat(ddir, dname, st.st_mode & 07777, 0) < 0)
            return set_where(errno, "set the owner of", dname);
        return 0;
    }
    return 0; /* sockets are not copied, as cp does not */
}

int copy_into(const struct endpoint *src, const struct endpoint *dst, const struct id_map *map, int replace, const char **what) {
    where[0] = 0;
    *what = where;
    /* A name the container cannot guess and put something under first; should it be taken all the
     * same, making it fails (EEXIST) and what is there is not ours to remove. */
    uint64_t rnd;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) return set_where(errno, "make a temporary name for", dst->name);
    char tmp[64];
    snprintf(tmp, sizeof tmp, ".#mymachines-copy-%016llx", (unsigned long long)rnd);
    struct stat st;
    if (!replace && fstatat(dst->dir, dst->name, &st, AT_SYMLINK_NOFOLLOW) == 0) return set_where(EEXIST, "copy onto", dst->name);
    int made = 0;
    int r = copy_node(src->dir, src->name, dst->dir, tmp, map, 0, &made);
    if (r == 0) {
        if (replace && renameat2(dst->dir, tmp, dst->dir, dst->name, RENAME_EXCHANGE) == 0) {
            /* The new one is in place; the old one, now under the temporary name, must go too. */
            made = 0;
            int rr = remove_tree(dst->dir, tmp, 0);
            if (rr < 0) r = set_where(-rr, "remove the replaced", dst->name);
        } else if (replace && errno != ENOENT) {
            /* Only a destination that is not there yet (ENOENT) is made by the rename below. */
            r = set_where(errno, "replace", dst->name);
        } else if (renameat2(dst->dir, tmp, dst->dir, dst->name, RENAME_NOREPLACE) < 0) {
            r = set_where(errno, "rename into", dst->name);
        }
    }
    if (r < 0 && made) remove_tree(dst->dir, tmp, 0);
    return r;
}
