/* mymachines-enter: what mymachinesd does inside a container, where Node.js cannot go (setns needs a
 * single-threaded process, PTYs and controlling terminals need fork/setsid).
 *
 *   mymachines-enter pty   LEADER [peer]
 *   mymachines-enter shell LEADER CGROUP USER PTY PATH ARGV0 [ARG...]
 *   mymachines-enter login LEADER CGROUP PTY
 *   mymachines-enter bind  LEADER SOURCE DEST ro|rw mkdir|nomkdir
 *   mymachines-enter copy  LEADER to|from SOURCE DEST replace|noreplace SHIFT RANGE
 *   mymachines-enter bridge LEADER SOCKET NAME
 *
 * bridge connects to the Unix socket SOCKET inside the container (in its user and mount namespaces and
 * root, so that the server there sees its own root as the peer), answers ok, and relays between it and
 * the first connection from its parent (the daemon) to the abstract socket NAME: the daemon's way to the
 * container's system bus, as systemd-stdio-bridge is sd-bus's.
 * The answer goes to fd 3 (a Unix socket the daemon made): one message "ok TEXT" or
 * "error ERRNONAME MESSAGE", with the PTY master as SCM_RIGHTS for pty. Then fd 3 is closed.
 * shell and login stay to wait for the program and exit with its status (128+N for signal N).
 * The program gets the PTY as 0, 1, 2 and no other descriptor of ours. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <stddef.h>
#include <sys/un.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "copy.h"
#include "util.h"

#define REPLY_FD 3

static const char *const NAMESPACES[] = {"cgroup", "ipc", "uts", "net", "pid", "time", "mnt", "user"};
#define N_NS (sizeof NAMESPACES / sizeof NAMESPACES[0])
#define NS_USER 7 /* NAMESPACES[NS_USER] is "user" */

static void reply_fds(const int *fds, int nfds, const char *text, int n);

/* Puts nfds descriptors into msg as one SCM_RIGHTS message, in buf (aligned for a cmsghdr, with room
 * for CMSG_SPACE(nfds * sizeof(int))); nothing if nfds is 0. */
static void attach_fds(struct msghdr *msg, char *buf, const int *fds, int nfds) {
    if (nfds <= 0) return;
    size_t len = (size_t)nfds * sizeof(int);
    memset(buf, 0, CMSG_SPACE(len));
    msg->msg_control = buf;
    msg->msg_controllen = CMSG_SPACE(len);
    struct cmsghdr *c = CMSG_FIRSTHDR(msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), fds, len);
}

/* Sends the one answer (with an fd if fd >= 0) and closes the reply socket. */
static void reply(int fd, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof text) n = sizeof text - 1;
    reply_fds(&fd, fd >= 0 ? 1 : 0, text, n);
}

static void reply_fds(const int *fds, int nfds, const char *text, int n) {
    struct iovec iov = {.iov_base = (char *)text, .iov_len = (size_t)n};
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    attach_fds(&msg, control.buf, fds, nfds);
    while (sendmsg(REPLY_FD, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
    close(REPLY_FD);
}

static _Noreturn void fail(int err, const char *fmt, ...) {
    char text[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    reply(-1, "error %s %s: %s", errno_name(err), text, strerror(err));
    exit(1);
}

static _Noreturn void fail_plain(const char *kind, const char *fmt, ...) {
    char text[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    reply(-1, "error %s %s", kind, text);
    exit(1);
}

static pid_t parse_pid(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v <= 0 || v > INT_MAX) fail_plain("EINVAL", "not a PID: '%s'", s);
    return (pid_t)v;
}

/* IDs and ID ranges are 32 bits: a larger number is refused, not cut down to a different one. */
static uint32_t parse_u32(const char *s) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || !*s || v > UINT32_MAX) fail_plain("EINVAL", "not a 32-bit number: '%s'", s);
    return (uint32_t)v;
}

/* The leader's namespaces that differ from ours (fd -1 where they are the same) and its root. */
struct target {
    pid_t leader;
    int ns[N_NS];
    int root;
};

static void open_target(struct target *t, pid_t leader, int want_all) {
    char path[64];
    t->leader = leader;
    for (size_t i = 0; i < N_NS; i++) {
        t->ns[i] = -1;
        if (!want_all && strcmp(NAMESPACES[i], "mnt") != 0 && strcmp(NAMESPACES[i], "user") != 0) continue;
        snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)leader, NAMESPACES[i]);
        struct stat theirs, ours;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT && strcmp(NAMESPACES[i], "time") == 0) continue; /* no time namespaces */
            fail(errno, "cannot open %s", path);
        }
        snprintf(path, sizeof path, "/proc/self/ns/%s", NAMESPACES[i]);
        if (fstat(fd, &theirs) < 0 || stat(path, &ours) < 0) fail(errno, "cannot stat %s", path);
        if (theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev) {
            close(fd);
            continue;
        }
        t->ns[i] = fd;
    }
    snprintf(path, sizeof path, "/proc/%d/root", (int)leader);
    t->root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->root < 0) fail(errno, "cannot open %s", path);
}

/* For what needs the host's rights inside (mounting, owning files as any host ID): only the mount
 * namespace and root are entered, the user namespace would take those rights. */
static void leave_out_userns(struct target *t) {
    if (t->ns[NS_USER] >= 0) {
        close(t->ns[NS_USER]);
        t->ns[NS_USER] = -1;
    }
}

/* Enters the namespaces opened (the user namespace last: as root of the host we may enter all the
 * others first, and once inside the container's user namespace we have every capability there), then
 * the container's root. */
static void enter_target(struct target *t) {
    for (size_t i = 0; i < N_NS; i++) {
        if (t->ns[i] < 0) continue;
        if (setns(t->ns[i], 0) < 0) fail(errno, "cannot enter the %s namespace of process %d", NAMESPACES[i], (int)t->leader);
        close(t->ns[i]);
        t->ns[i] = -1;
    }
    if (fchdir(t->root) < 0 || chroot(".") < 0 || chdir("/") < 0) fail(errno, "cannot enter the root of process %d", (int)t->leader);
    close(t->root);
    t->root = -1;
}

static int open_pty(char *path, size_t len) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) fail(errno, "cannot allocate a pseudo-terminal");
    if (unlockpt(master) < 0) fail(errno, "cannot unlock the pseudo-terminal");
    if (ptsname_r(master, path, len) != 0) fail(errno, "cannot name the pseudo-terminal");
    return master;
}

/* With "peer", the terminal's other end too, opened inside (for a service manager to take as its
 * program's standard input and output). */
static int cmd_pty(char **argv, int n) {
    struct target t;
    open_target(&t, parse_pid(argv[0]), 0);
    enter_target(&t);
    char path[PATH_MAX];
    int fds[2] = {open_pty(path, sizeof path), -1};
    if (n > 1 && strcmp(argv[1], "peer") == 0) {
        fds[1] = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fds[1] < 0) fail(errno, "cannot open %s", path);
    }
    char text[PATH_MAX + 4];
    int len = snprintf(text, sizeof text, "ok %s", path);
    reply_fds(fds, fds[1] >= 0 ? 2 : 1, text, len);
    close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
    return 0;
}

/* What the program runs as, from the container's own /etc/passwd and /etc/group. */
struct user {
    uid_t uid;
    gid_t gid;
    char name[256];
    char home[PATH_MAX];
    char shell[PATH_MAX];
    gid_t groups[64];
    int ngroups;
};

static FILE *open_db(const char *path) {
    /* O_NONBLOCK: a FIFO put there must not hang us; only regular files are read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 16 * 1024 * 1024) {
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) close(fd);
    return f;
}

/* Splits a colon-separated line into at most n fields; false unless there are n. */
static int split(char *line, char **f, int n) {
    line[strcspn(line, "\n")] = 0;
    for (int i = 0; i < n; i++) {
        f[i] = line;
        char *c = strchr(line, ':');
        if (i == n - 1) return 1;
        if (!c) return 0;
        *c = 0;
        line = c + 1;
    }
    return 1;
}

static int lookup_user(const char *who, struct user *u) {
    char *end;
    errno = 0;
    unsigned long num = strtoul(who, &end, 10);
    int numeric = *who && !*end && !errno && num < UINT_MAX;
    FILE *f = open_db("/etc/passwd");
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    while (f && getline(&line, &cap, f) > 0) {
        char *p[7];
        if (!split(line, p, 7)) continue;
        if (numeric ? strtoul(p[2], NULL, 10) != num : strcmp(p[0], who) != 0) continue;
        u->uid = (uid_t)strtoul(p[2], NULL, 10);
        u->gid = (gid_t)strtoul(p[3], NULL, 10);
        snprintf(u->name, sizeof u->name, "%s", p[0]);
        snprintf(u->home, sizeof u->home, "%s", *p[5] ? p[5] : "/");
        snprintf(u->shell, sizeof u->shell, "%s", *p[6] ? p[6] : "/bin/sh");
        found = 1;
        break;
    }
    if (f) fclose(f);
    if (!found && (strcmp(who, "root") == 0 || (numeric && num == 0))) {
        /* A root without /etc/passwd (an application container) still has root. */
        *u = (struct user){.uid = 0, .gid = 0};
        snprintf(u->name, sizeof u->name, "root");
        snprintf(u->home, sizeof u->home, "/");
        snprintf(u->shell, sizeof u->shell, "/bin/sh");
        found = 1;
    }
    if (!found) {
        free(line);
        return 0;
    }
    u->ngroups = 0;
    u->groups[u->ngroups++] = u->gid;
    f = open_db("/etc/group");
    while (f && getline(&line, &cap, f) > 0 && u->ngroups < 64) {
        char *g[4];
        if (!split(line, g, 4)) continue;
        for (char *m = strtok(g[3], ","); m; m = strtok(NULL, ",")) {
            gid_t gid = (gid_t)strtoul(g[2], NULL, 10);
            if (strcmp(m, u->name) == 0 && gid != u->gid) {
                u->groups[u->ngroups++] = gid;
                break;
            }
        }
    }
    if (f) fclose(f);
    free(line);
    return 1;
}

/* In the child: failures go to the parent through the pipe `err` (closed on exec). */
static _Noreturn void child_fail(int err_fd, int err, const char *what) {
    char text[600];
    int n = snprintf(text, sizeof text, "%s %s: %s", errno_name(err), what, strerror(err));
    if (n > 0 && write(err_fd, text, (size_t)n) < 0) {
    }
    _exit(127);
}

/* Sends sig to every process of session `sid`, as the host's /proc (procfd) shows them. */
static void signal_session(int procfd, pid_t sid, int sig) {
    /* A descriptor of its own for the DIR (closedir closes it), not inherited by anything we run. */
    int fd = fcntl(procfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    rewinddir(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "%ld/stat", pid);
        int sfd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
        if (sfd < 0) continue;
        ssize_t n = read(sfd, buf, sizeof buf - 1);
        close(sfd);
        if (n <= 0) continue;
        buf[n] = 0;
        /* pid (comm) state ppid pgrp session ...: comm may hold anything but the last ')'. */
        char *p = strrchr(buf, ')');
        int ppid, pgrp, session;
        char state;
        if (p && sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) == 4 && session == sid) kill((pid_t)pid, sig);
    }
    closedir(d);
}

/* Waits for the program; when its terminal hangs up (the caller closed the PTY's master), its session
 * gets SIGHUP, and SIGKILL what is left after 2 s or when the program ends, whichever is first:
 * nothing stays behind a closed session. tty is the PTY (ours, not a controlling terminal), closed. */
static int wait_program(pid_t child, int tty, int procfd) {
    /* Without a pidfd (an old kernel, or valgrind), the child is polled for every 100 ms. */
    int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    int status = 0;
    int hung_ms = -1; /* time since the hangup, once there was one */
    for (;;) {
        /* WNOWAIT: the program stays a zombie until it is reaped below, and with it its session ID,
         * which no new session can take before the sweep after a hangup has found its members. */
        siginfo_t si = {0};
        int w = waitid(P_PID, (id_t)child, &si, WEXITED | WNOHANG | WNOWAIT);
        if (w == 0 && si.si_pid == child) break;
        if (w < 0 && errno != EINTR) break; /* the reaping below says what it is */
        struct pollfd p[2] = {{.fd = pidfd, .events = POLLIN}, {.fd = hung_ms >= 0 ? -1 : tty, .events = 0}};
        int r = poll(p, 2, pidfd < 0 || hung_ms >= 0 ? 100 : -1);
        if (r < 0 && errno != EINTR) r = 0;
        if (hung_ms >= 0 && (hung_ms += 100) >= 2000) break;
        if (hung_ms < 0 && r > 0 && (p[1].revents & (POLLHUP | POLLERR | POLLNVAL))) {
            hung_ms = 0;
            signal_session(procfd, child, SIGHUP);
            signal_session(procfd, child, SIGCONT);
        }
    }
    /* Also when the program ended in time: members of its session that ignore SIGHUP are left. */
    if (hung_ms >= 0) signal_session(procfd, child, SIGKILL);
    pid_t w;
    while ((w = waitpid(child, &status, 0)) < 0 && errno == EINTR) {
    }
    if (w < 0) status = 1 << 8;
    close(tty);
    if (pidfd >= 0) close(pidfd);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static int spawn_on_pty(const char *leader_s, const char *cgroup, const char *who, const char *pty, const char *path, char **args) {
    struct target t;
    /* The host's /proc, kept across entering: the session's processes are found there at hangup. */
    int procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (procfd < 0) fail(errno, "cannot open /proc");
    open_target(&t, parse_pid(leader_s), 1);
    if (*cgroup) {
        /* Into the machine's cgroup before its cgroup namespace: the path is the host's. */
        char procs[PATH_MAX];
        snprintf(procs, sizeof procs, "%s/cgroup.procs", cgroup);
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0\n", 2) != 2) fail(errno, "cannot join the cgroup %s", cgroup);
        close(fd);
    }
    enter_target(&t);
    if (!path) {
        /* Which getty the container has is only known inside. */
        static const char *const GETTYS[] = {"/sbin/agetty", "/usr/sbin/agetty", "/sbin/getty", "/usr/sbin/getty", "/bin/getty", "/usr/bin/getty"};
        for (size_t i = 0; i < sizeof GETTYS / sizeof GETTYS[0] && !path; i++)
            if (access(GETTYS[i], X_OK) == 0) path = GETTYS[i];
        if (!path) fail_plain("NoIPC", "the machine has no getty (agetty or getty in /sbin, /usr/sbin, /bin, /usr/bin)");
        args[0] = (char *)path;
    }
    struct user u;
    if (!lookup_user(who, &u)) fail_plain("NoSuchUser", "no user '%s' in the machine", who);
    char login_argv0[PATH_MAX + 2];
    if (!*path) {
        /* No program: the user's login shell, as login(1) starts it ("-sh"). */
        path = u.shell;
        const char *base = strrchr(u.shell, '/');
        snprintf(login_argv0, sizeof login_argv0, "-%s", base ? base + 1 : u.shell);
        args[0] = login_argv0;
    }
    /* Our own descriptor of the terminal, for its hangup: without it a closed session would not be
     * ended, so a terminal we cannot open is an error now, while there is nothing to undo. */
    int hup_tty = open(pty, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (hup_tty < 0) fail(errno, "cannot open %s", pty);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) fail(errno, "pipe");
    /* Forked after setns(pid): the child is in the container's PID namespace. */
    pid_t child = fork();
    if (child < 0) fail(errno, "fork");
    if (child == 0) {
        close(pipefd[0]);
        signal(SIGPIPE, SIG_DFL);
        if (setsid() < 0) child_fail(pipefd[1], errno, "setsid");
        int tty = open(pty, O_RDWR | O_CLOEXEC);
        if (tty < 0) child_fail(pipefd[1], errno, "cannot open the terminal");
        if (ioctl(tty, TIOCSCTTY, 0) < 0) child_fail(pipefd[1], errno, "cannot make the terminal the controlling one");
        if (dup2(tty, 0) < 0 || dup2(tty, 1) < 0 || dup2(tty, 2) < 0) child_fail(pipefd[1], errno, "dup2");
        /* Nothing of ours beyond 0-2 reaches the program, however high its number; the error pipe
         * goes at exec. */
        unsigned int keep = (unsigned int)pipefd[1];
        if ((keep > 3 && close_range(3, keep - 1, 0) < 0) || close_range(keep + 1, ~0U, 0) < 0) child_fail(pipefd[1], errno, "close_range");
        if (setgroups((size_t)u.ngroups, u.groups) < 0) child_fail(pipefd[1], errno, "setgroups");
        if (setgid(u.gid) < 0) child_fail(pipefd[1], errno, "setgid");
        if (setuid(u.uid) < 0) child_fail(pipefd[1], errno, "setuid");
        if (chdir(u.home) < 0 && chdir("/") < 0) child_fail(pipefd[1], errno, "chdir");
        setenv("HOME", u.home, 0);
        setenv("USER", u.name, 0);
        setenv("LOGNAME", u.name, 0);
        setenv("SHELL", u.shell, 0);
        setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 0);
        execv(path, args);
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "cannot execute %s", path);
        child_fail(pipefd[1], errno, what);
    }
    close(pipefd[1]);
    char err[700];
    ssize_t n;
    while ((n = read(pipefd[0], err, sizeof err - 1)) < 0 && errno == EINTR) {
    }
    int read_err = errno;
    close(pipefd[0]);
    int status;
    if (n < 0) {
        /* Whether the program started is unknown: it is not left running unreported. */
        signal_session(procfd, child, SIGKILL);
        kill(child, SIGKILL);
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        fail(read_err, "cannot read whether %s started", path);
    }
    if (n > 0) {
        err[n] = 0;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        reply(-1, "error %s", err);
        return 1;
    }
    reply(-1, "ok %d", (int)child);
    /* The daemon reads our exit status: the program's. */
    close(0);
    close(1);
    int code = wait_program(child, hup_tty, procfd);
    close(procfd);
    return code;
}

static int cmd_shell(char **argv, int argc) {
    if (argc < 6) fail_plain("EINVAL", "shell: too few arguments");
    return spawn_on_pty(argv[0], argv[1], argv[2], argv[3], argv[4], argv + 5);
}

/* The container's getty (util-linux agetty or busybox getty; both take this syntax) on the PTY. */
static int cmd_login(char **argv) {
    const char *pty = argv[2];
    if (strncmp(pty, "/dev/", 5) != 0) fail_plain("EINVAL", "not a terminal path: '%s'", pty);
    char *args[] = {NULL, "-L", "115200", (char *)pty + 5, "vt220", NULL};
    return spawn_on_pty(argv[0], argv[1], "root", pty, NULL, args);
}

static int cmd_bind(char **argv) {
    struct target t;
    open_target(&t, parse_pid(argv[0]), 0);
    const char *source = argv[1], *dest = argv[2];
    /* A relative source would be looked up in our working directory, a relative dest in the container's. */
    if (source[0] != '/') fail_plain("EINVAL", "not an absolute path: '%s'", source);
    if (dest[0] != '/') fail_plain("EINVAL", "not an absolute path: '%s'", dest);
    int ro = strcmp(argv[3], "ro") == 0, mk = strcmp(argv[4], "mkdir") == 0;
    /* A detached copy of the host's tree, made outside, moved into the container's mount table. */
    int tree = (int)open_tree(AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (tree < 0) fail(errno, "cannot bind %s", source);
    struct stat st;
    if (fstat(tree, &st) < 0) fail(errno, "cannot stat %s", source);
    if (ro) {
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
        if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) fail(errno, "cannot make %s read-only", source);
    }
    /* Only the mount namespace and root: the user namespace would take our right to mount there. */
    leave_out_userns(&t);
    enter_target(&t);
    if (mk) {
        if (mkdir_parents(dest) < 0) fail(errno, "cannot make the parents of %s", dest);
        if (S_ISDIR(st.st_mode)) {
            if (mkdir(dest, 0755) < 0 && errno != EEXIST) fail(errno, "cannot make %s", dest);
        } else {
            /* Made without opening it: what the container has there (a FIFO, a device) is not opened by
             * us, only looked at. A file bind-mounts on a regular file. */
            if (mknod(dest, S_IFREG | 0644, 0) < 0) {
                if (errno != EEXIST) fail(errno, "cannot make %s", dest);
                struct stat there;
                if (lstat(dest, &there) < 0) fail(errno, "cannot stat %s", dest);
                if (!S_ISREG(there.st_mode)) fail(S_ISDIR(there.st_mode) ? EISDIR : EEXIST, "cannot make %s (not a regular file)", dest);
            }
        }
    }
    if (move_mount(tree, "", AT_FDCWD, dest, MOVE_MOUNT_F_EMPTY_PATH) < 0) fail(errno, "cannot mount on %s in the machine", dest);
    close(tree);
    reply(-1, "ok");
    return 0;
}

static int cmd_copy(char **argv) {
    struct target t;
    open_target(&t, parse_pid(argv[0]), 0);
    int to = strcmp(argv[1], "to") == 0;
    const char *source = argv[2], *dest = argv[3];
    int replace = strcmp(argv[4], "replace") == 0;
    struct id_map map = {.shift = parse_u32(argv[5]), .range = parse_u32(argv[6]), .into = to};
    leave_out_userns(&t);
    /* The host's end is opened before entering: paths on it stay the host's. */
    struct endpoint host;
    if (to ? endpoint_open_source(source, &host) < 0 : endpoint_open_dest(dest, &host) < 0) fail(errno, "cannot open %s on the host", to ? source : dest);
    enter_target(&t);
    struct endpoint inside;
    if (to ? endpoint_open_dest(dest, &inside) < 0 : endpoint_open_source(source, &inside) < 0) fail(errno, "cannot open %s in the machine", to ? dest : source);
    const char *what = NULL;
    int r = to ? copy_into(&host, &inside, &map, replace, &what) : copy_into(&inside, &host, &map, replace, &what);
    if (r < 0) fail(-r, "%s", what ? what : "copy failed");
    reply(-1, "ok");
    return 0;
}

/* Copies what is readable on `from` to `to`, with the descriptors it carries (D-Bus passes them);
 * 0 at the end of input, -1 on an error. */
static int relay(int from, int to) {
    char buf[65536];
    union {
        char buf[CMSG_SPACE(32 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    ssize_t n = recvmsg(from, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return errno == EINTR || errno == EAGAIN ? 1 : -1;
    if (n == 0) return 0;
    int fds[32];
    int nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < k && nfds < 32; i++) memcpy(&fds[nfds++], CMSG_DATA(c) + (size_t)i * sizeof(int), sizeof(int));
    }
    /* More descriptors than fit: the kernel dropped some, and a message passed on without them would
     * be a different message. The bridge ends rather than relaying it. */
    if (msg.msg_flags & MSG_CTRUNC) {
        for (int i = 0; i < nfds; i++) close(fds[i]);
        return -1;
    }
    int r = 1;
    for (ssize_t off = 0; off < n;) {
        struct iovec out = {.iov_base = buf + off, .iov_len = (size_t)(n - off)};
        union {
            char buf[CMSG_SPACE(32 * sizeof(int))];
            struct cmsghdr align;
        } oc;
        struct msghdr m = {.msg_iov = &out, .msg_iovlen = 1};
        if (off == 0) attach_fds(&m, oc.buf, fds, nfds);
        ssize_t w = sendmsg(to, &m, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            r = -1;
            break;
        }
        off += w;
    }
    for (int i = 0; i < nfds; i++) close(fds[i]);
    return r;
}

/* Relays between a and b until either ends. */
static void relay_both(int a, int b) {
    struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (p[0].revents && relay(a, b) <= 0) return;
        if (p[1].revents && relay(b, a) <= 0) return;
    }
}

static int cmd_bridge(char **argv) {
    /* Listening in the host's network namespace (abstract names are per network namespace), before
     * entering: only the daemon that started us may connect, once. */
    struct sockaddr_un host = {.sun_family = AF_UNIX};
    size_t nlen = strlen(argv[2]);
    if (nlen == 0 || nlen + 1 >= sizeof host.sun_path) fail_plain("EINVAL", "bad bridge name");
    memcpy(host.sun_path + 1, argv[2], nlen);
    socklen_t hlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nlen);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&host, hlen) < 0 || listen(l, 4) < 0) fail(errno, "cannot listen for the daemon");
    struct target t;
    open_target(&t, parse_pid(argv[0]), 0);
    enter_target(&t);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof sa.sun_path) fail_plain("EINVAL", "socket path too long");
    memcpy(sa.sun_path, argv[1], strlen(argv[1]) + 1);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) fail(errno, "cannot connect to %s in the machine", argv[1]);
    reply(-1, "ok");
    for (;;) {
        struct pollfd p = {.fd = l, .events = POLLIN};
        int r = poll(&p, 1, 10000);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 1; /* nobody came */
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        struct ucred cred;
        socklen_t clen = sizeof cred;
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || cred.pid != getppid()) {
            close(c);
            continue;
        }
        close(l);
        relay_both(c, s);
        close(c);
        close(s);
        return 0;
    }
}

int main(int argc, char **argv) {

    /* The reply socket must be there: without it nobody hears us. */
    struct stat st;
    if (fstat(REPLY_FD, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "mymachines-enter: fd 3 must be the reply socket (this program is run by mymachinesd)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3) fail_plain("EINVAL", "usage: mymachines-enter pty|shell|login|bind|copy|bridge LEADER ...");
    const char *cmd = argv[1];
    char **rest = argv + 2;
    int n = argc - 2;
    if (strcmp(cmd, "pty") == 0 && (n == 1 || n == 2)) return cmd_pty(rest, n);
    if (strcmp(cmd, "shell") == 0) return cmd_shell(rest, n);
    if (strcmp(cmd, "login") == 0 && n == 3) return cmd_login(rest);
    if (strcmp(cmd, "bind") == 0 && n == 5) return cmd_bind(rest);
    if (strcmp(cmd, "copy") == 0 && n == 7) return cmd_copy(rest);
    if (strcmp(cmd, "bridge") == 0 && n == 3) return cmd_bridge(rest);
    fail_plain("EINVAL", "unknown command or wrong number of arguments: %s", cmd);
}
