/* For bench/registry.ts: Varlink calls to mymachinesd from C, as a container manager with a C Varlink
 * library (sd-varlink) makes them. The Node.js client costs about as much per call as the daemon does
 * (and parsing 10,000 List replies costs it more than the daemon's sending them), so it would measure
 * itself.
 *
 *   varlink-client register SOCKET PREFIX FIRST CLIENTS < PIDS
 *       registers machine PREFIX<i> (class container) led by the i-th PID of standard input, for i from
 *       FIRST on, with CLIENTS processes at once, each on its own connection and one call at a time;
 *       prints "COUNT SECONDS"; exits non-zero if any registration fails
 *   varlink-client list SOCKET RUNS
 *       List (with more) RUNS times on one connection; prints "MACHINES MEDIAN_MS", or fails (exit 1)
 *       while the socket does not answer
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One call and its reply; 0 when the reply is not an error. */
static int call(int fd, const char *req, size_t len) {
        char buf[4096];
        size_t got = 0;
        if (write(fd, req, len) != (ssize_t) len)
                return -1;
        for (;;) {
                ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
                if (n <= 0)
                        return -1;
                got += (size_t) n;
                if (buf[got - 1] == 0)
                        break;
                if (got == sizeof buf - 1)
                        return -1;
        }
        return strstr(buf, "\"error\"") ? -1 : 0;
}

static int connect_to(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        if (fd >= 0 && connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0)
                return fd;
        if (fd >= 0)
                close(fd);
        return -1;
}

static int client(const char *path, const char *prefix, const int *pids, int from, int to, int step) {
        int fd = connect_to(path);
        if (fd < 0)
                return 1;
        for (int i = from; i < to; i += step) {
                char req[256];
                int len = snprintf(req, sizeof req,
                                   "{\"method\":\"io.systemd.Machine.Register\",\"parameters\":"
                                   "{\"name\":\"%s%d\",\"class\":\"container\",\"leader\":%d}}",
                                   prefix, i, pids[i]);
                if (call(fd, req, (size_t) len + 1) < 0) {
                        fprintf(stderr, "registering %s%d failed\n", prefix, i);
                        return 1;
                }
        }
        return 0;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

/* List with more: the number of replies, or -1. */
static long list(int fd) {
        static const char req[] = "{\"method\":\"io.systemd.Machine.List\",\"parameters\":{},\"more\":true}";
        static char buf[1 << 20];
        size_t have = 0;
        long n = 0;
        if (write(fd, req, sizeof req) != (ssize_t) sizeof req)
                return -1;
        for (;;) {
                ssize_t r = read(fd, buf + have, sizeof buf - have);
                if (r <= 0)
                        return -1;
                have += (size_t) r;
                size_t start = 0;
                for (size_t i = 0; i < have; i++) {
                        if (buf[i] != 0)
                                continue;
                        n++;
                        /* The last reply is the one without "continues". */
                        if (!memmem(buf + start, i - start, "\"continues\":true", 16))
                                return n;
                        start = i + 1;
                }
                memmove(buf, buf + start, have - start);
                have -= start;
                if (have == sizeof buf)
                        return -1;
        }
}

static int run_list(const char *path, int runs) {
        int fd = connect_to(path);
        double *t = calloc((size_t) runs, sizeof(double));
        long n = 0;
        if (fd < 0 || !t || runs < 1)
                return 1;
        for (int i = 0; i < runs; i++) {
                double t0 = now();
                n = list(fd);
                if (n < 0)
                        return 1;
                t[i] = (now() - t0) * 1000;
        }
        qsort(t, (size_t) runs, sizeof(double), cmp);
        printf("%ld %.3f\n", n, t[runs / 2]);
        return 0;
}

int main(int argc, char **argv) {
        if (argc == 4 && strcmp(argv[1], "list") == 0)
                return run_list(argv[2], atoi(argv[3]));
        if (argc != 6 || strcmp(argv[1], "register") != 0)
                return 2;
        const char *path = argv[2], *prefix = argv[3];
        int first = atoi(argv[4]), clients = atoi(argv[5]), n = 0, cap = 1024, failed = 0;
        int *pids = malloc(sizeof(int) * (size_t) cap);
        while (pids && scanf("%d", &pids[n]) == 1)
                if (++n == cap)
                        pids = realloc(pids, sizeof(int) * (size_t) (cap *= 2));
        if (!pids || first > n || clients < 1)
                return 2;
        double t0 = now();
        for (int k = 0; k < clients; k++) {
                pid_t p = fork();
                if (p < 0)
                        return 1;
                if (p == 0)
                        _exit(client(path, prefix, pids, first + k, n, clients));
        }
        for (int status; wait(&status) > 0;)
                failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
        printf("%d %.6f\n", n - first, now() - t0);
        return failed;
}
