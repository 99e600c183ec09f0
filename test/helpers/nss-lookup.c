/* Host name lookups through glibc's getaddrinfo, as a program would do them: for the NSS tests
 * (threads, fork) and the benchmark (per-lookup times, lookups per second).
 *
 *   nss-lookup once NAME                one lookup; prints "found NS" or "failed NS" (the time includes
 *                                       loading the modules and reading nsswitch.conf)
 *   nss-lookup warm NAME COUNT          one lookup untimed (modules loaded, configuration read), then
 *                                       COUNT timed ones; prints "found|failed|mixed MIN_NS MAX_NS"
 *   nss-lookup exec NAME CMD [ARG...]   one lookup, prints "found" or "failed", then execs CMD (which
 *                                       may list the descriptors it inherited)
 *   nss-lookup time NAME COUNT          COUNT lookups; prints "ok FAILED MEDIAN_NS P99_NS"
 *   nss-lookup rate NAME MILLISECONDS   lookups until the time is up; prints "COUNT FAILED"
 *   nss-lookup threads NAME ADDR THREADS COUNT
 *                                       THREADS threads x COUNT lookups at once, each must give ADDR;
 *                                       prints "ok TOTAL" and exits 0, else "FAILED n" and exits 1
 *   nss-lookup fork NAME ADDR           lookups in the parent before fork(), then in the child and in
 *                                       the parent at the same time; prints one line each, exits 0 if
 *                                       all gave ADDR
 *   nss-lookup serve                    reads a NAME a line, looks it up at once and prints "found" or
 *                                       "failed" (one process that keeps its modules and table mapped)
 *
 * A lookup succeeds when getaddrinfo(NAME, AF_UNSPEC, SOCK_STREAM) returns 0 and, where ADDR is given,
 * ADDR among its results. A NAME of the form addr=ADDRESS is a reverse lookup instead (getnameinfo
 * with NI_NAMEREQD, through gethostbyaddr_r), which succeeds when it gives a name (ADDR: that name). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *name;
static const char *want;
static long count;

static long long now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A reverse lookup of the address after "addr=": 1 when it gave a name (`want`, if set). */
static int reverse(const char *text) {
        struct sockaddr_storage ss = {0};
        struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
        char host[NI_MAXHOST];
        socklen_t len;

        if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
                len = sizeof *sin;
        } else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
                sin6->sin6_family = AF_INET6;
                len = sizeof *sin6;
        } else
                return 0;
        if (getnameinfo((struct sockaddr *) &ss, len, host, sizeof host, NULL, 0, NI_NAMEREQD) != 0)
                return 0;
        return want == NULL || strcmp(host, want) == 0;
}

/* 1 when the lookup succeeded (and gave `want`, if set). */
static int lookup(void) {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
        int found = want == NULL;
        if (strncmp(name, "addr=", 5) == 0)
                return reverse(name + 5);
        if (getaddrinfo(name, NULL, &hints, &res) != 0)
                return 0;
        for (ai = res; ai && !found; ai = ai->ai_next) {
                char text[INET6_ADDRSTRLEN];
                const void *a = ai->ai_family == AF_INET
                        ? (const void *) &((struct sockaddr_in *) ai->ai_addr)->sin_addr
                        : (const void *) &((struct sockaddr_in6 *) ai->ai_addr)->sin6_addr;
                found = inet_ntop(ai->ai_family, a, text, sizeof text) && strcmp(text, want) == 0;
        }
        freeaddrinfo(res);
        return found;
}

static int cmp(const void *a, const void *b) {
        long long x = *(const long long *) a, y = *(const long long *) b;
        return (x > y) - (x < y);
}

/* count lookups after an untimed one (which loads the modules and reads the configuration, outside
 * the figures); their times, sorted, go to t. Returns how many succeeded. */
static long timed(long long *t) {
        long found = 0;
        lookup();
        for (long i = 0; i < count; i++) {
                long long t0 = now_ns();
                found += lookup();
                t[i] = now_ns() - t0;
        }
        qsort(t, count, sizeof *t, cmp);
        return found;
}

static int run_time(void) {
        long long *t = calloc(count, sizeof *t);
        if (!t)
                return 2;
        long found = timed(t);
        printf("ok %ld %lld %lld\n", count - found, t[count / 2], t[(count * 99) / 100]);
        free(t);
        return 0;
}

static int run_warm(void) {
        long long *t = calloc(count, sizeof *t);
        if (!t)
                return 2;
        long found = timed(t);
        printf("%s %lld %lld\n", found == count ? "found" : found == 0 ? "failed" : "mixed", t[0], t[count - 1]);
        free(t);
        return 0;
}

static int run_rate(void) {
        long n = 0, failed = 0;
        long long end = now_ns() + count * 1000000LL;
        while (now_ns() < end) {
                failed += !lookup();
                n++;
        }
        printf("%ld %ld\n", n, failed);
        return 0;
}

static void *worker(void *arg) {
        long failed = 0;
        (void) arg;
        for (long i = 0; i < count; i++)
                failed += !lookup();
        return (void *) failed;
}

static int run_threads(int threads) {
        pthread_t tid[256];
        long failed = 0;
        if (threads < 1 || threads > 256)
                return 2;
        for (int i = 0; i < threads; i++)
                if (pthread_create(&tid[i], NULL, worker, NULL) != 0)
                        return 2;
        for (int i = 0; i < threads; i++) {
                void *r;
                pthread_join(tid[i], &r);
                failed += (long) r;
        }
        if (failed) {
                printf("FAILED %ld\n", failed);
                return 1;
        }
        printf("ok %ld\n", threads * count);
        return 0;
}

static int run_fork(void) {
        int ok = lookup(), status;
        pid_t child;
        printf("parent before fork: %s\n", ok ? "ok" : "FAILED");
        fflush(stdout);
        child = fork();
        if (child < 0)
                return 2;
        if (child == 0) {
                int c = lookup() && lookup();
                printf("child: %s\n", c ? "ok" : "FAILED");
                fflush(stdout);
                _exit(c ? 0 : 1);
        }
        ok = lookup() && lookup() && ok;
        if (waitpid(child, &status, 0) != child)
                return 2;
        printf("parent after fork: %s\n", ok ? "ok" : "FAILED");
        return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int run_serve(void) {
        char line[1024];
        while (fgets(line, sizeof line, stdin)) {
                line[strcspn(line, "\n")] = 0;
                name = line;
                printf("%s\n", lookup() ? "found" : "failed");
                fflush(stdout);
        }
        return 0;
}

int main(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "serve") == 0)
                return run_serve();
        if (argc >= 3 && strcmp(argv[1], "once") == 0) {
                long long t0 = now_ns();
                int found;
                name = argv[2];
                found = lookup();
                printf("%s %lld\n", found ? "found" : "failed", now_ns() - t0);
                return 0;
        }
        if (argc >= 4 && strcmp(argv[1], "warm") == 0) {
                name = argv[2];
                count = atol(argv[3]);
                return count > 0 ? run_warm() : 2;
        }
        if (argc >= 4 && strcmp(argv[1], "exec") == 0) {
                name = argv[2];
                printf("%s\n", lookup() ? "found" : "failed");
                fflush(stdout);
                execvp(argv[3], argv + 3);
                perror(argv[3]);
                return 127;
        }
        if (argc >= 4 && strcmp(argv[1], "time") == 0) {
                name = argv[2];
                count = atol(argv[3]);
                return count > 0 ? run_time() : 2;
        }
        if (argc >= 4 && strcmp(argv[1], "rate") == 0) {
                name = argv[2];
                count = atol(argv[3]);
                return run_rate();
        }
        if (argc >= 6 && strcmp(argv[1], "threads") == 0) {
                name = argv[2];
                want = argv[3];
                count = atol(argv[5]);
                return run_threads(atoi(argv[4]));
        }
        if (argc >= 4 && strcmp(argv[1], "fork") == 0) {
                name = argv[2];
                want = argv[3];
                return run_fork();
        }
        fprintf(stderr, "usage: see the comment at the top of nss-lookup.c\n");
        return 2;
}
