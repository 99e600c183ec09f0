/* For bench/registry.ts: registrations per second through Varlink from C clients, as a container
 * manager with a C Varlink library (sd-varlink) would make them. The Node.js client costs about as
 * much per call as the daemon does, so it would measure itself.
 *
 *   varlink-register SOCKET PREFIX FIRST CLIENTS < PIDS
 *
 * Registers machine PREFIX<i> (class container) led by the i-th PID of standard input, for i from
 * FIRST on, with CLIENTS processes at once, each on its own connection and one call at a time.
 * Prints "COUNT SECONDS"; exits non-zero if any registration fails. */
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

static int client(const char *path, const char *prefix, const int *pids, int from, int to, int step) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
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

int main(int argc, char **argv) {
        if (argc != 5)
                return 2;
        const char *path = argv[1], *prefix = argv[2];
        int first = atoi(argv[3]), clients = atoi(argv[4]), n = 0, cap = 1024, failed = 0;
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
