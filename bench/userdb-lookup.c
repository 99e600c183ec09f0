/* getpwnam_r timed in one process, as a program that names file owners would call it.
 *
 *   userdb-lookup NAME COUNT     COUNT lookups of NAME; prints "ok FAILED MEDIAN_NS P99_NS"
 *
 * A lookup fails when getpwnam_r finds no entry or the entry has another name. The first lookup loads the
 * modules and reads nsswitch.conf; it is left out of the figures. */
#define _GNU_SOURCE
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int lookup(const char *name) {
        struct passwd pw, *res = NULL;
        char buf[4096];
        return getpwnam_r(name, &pw, buf, sizeof buf, &res) == 0 && res && strcmp(res->pw_name, name) == 0;
}

static int cmp(const void *a, const void *b) {
        long long x = *(const long long *) a, y = *(const long long *) b;
        return (x > y) - (x < y);
}

int main(int argc, char **argv) {
        long count, failed = 0;
        long long *t;

        if (argc != 3 || (count = atol(argv[2])) <= 0) {
                fprintf(stderr, "usage: userdb-lookup NAME COUNT\n");
                return 2;
        }
        t = calloc(count, sizeof *t);
        if (!t)
                return 2;
        lookup(argv[1]);
        for (long i = 0; i < count; i++) {
                long long t0 = now_ns();
                failed += !lookup(argv[1]);
                t[i] = now_ns() - t0;
        }
        qsort(t, count, sizeof *t, cmp);
        printf("ok %ld %lld %lld\n", failed, t[count / 2], t[(count * 99) / 100]);
        free(t);
        return 0;
}
