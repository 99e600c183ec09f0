#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

const char *errno_name(int err) {
    const char *n = strerrorname_np(err);
    return n ? n : "EIO";
}

int mkdir_parents(const char *path) {
    char p[PATH_MAX];
    /* Absolute only: the parents of a relative path depend on the working directory (and the loop
     * below starts after the leading '/'). */
    if (path[0] != '/') return errno = EINVAL, -1;
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) return errno = ENAMETOOLONG, -1;
    for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        if (mkdir(p, 0755) < 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    return 0;
}
