/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * C-level tests of libnss_mymachines.so.2 against the tables of test/fake_daemon.py.
 *
 *   test_nss LIBRARY DIR [TEST...]   DIR is fake_daemon.py's: one directory per table case
 *   test_nss --list-fds              prints "FD TARGET" for each open descriptor (exec'd by the
 *                                    close-on-exec test)
 *
 * The module is dlopen()ed and its entry points are called directly, the way glibc calls them.
 * TEST_THREADS / TEST_ITERATIONS / TEST_REPLACEMENTS size the thread tests; TEST_SLOW=1 (under
 * valgrind) widens the timing bounds.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <nss.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static nss_gethostbyname4_r *gh4;
static nss_gethostbyname3_r *gh3;
static nss_gethostbyname2_r *gh2;
static nss_gethostbyname_r *gh1;
static nss_gethostbyaddr2_r *gha2;
static nss_gethostbyaddr_r *gha1;
static nss_getpwnam_r *pwnam;
static nss_getpwuid_r *pwuid;
static nss_getgrnam_r *grnam;
static nss_getgrgid_r *grgid;

static const char *dir;
static char self_path[4096]; /* this program, for the close-on-exec test */
static atomic_int failures;
static atomic_int checks;
static bool slow;

#define CHECK(cond, ...)                                                        \
        do {                                                                    \
                atomic_fetch_add(&checks, 1);                                   \
                if (!(cond)) {                                                  \
                        atomic_fetch_add(&failures, 1);                         \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
                        fprintf(stderr, __VA_ARGS__);                           \
                        fputc('\n', stderr);                                    \
                }                                                               \
        } while (0)

/* The module finds the table beside MYMACHINES_SOCKET. */
static void use_socket(const char *path) {
        setenv("MYMACHINES_SOCKET", path, 1);
}

/* A case of fake_daemon.py: DIR/CASE/nss-table. */
static void use_table(const char *name) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s/io.systemd.Machine", dir, name);
        use_socket(p);
}

static void table_file(const char *name, char *out, size_t size) {
        snprintf(out, size, "%s/%s/nss-table", dir, name);
}

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *addr_str(int af, const void *a, char *buf) {
        return inet_ntop(af, a, buf, INET6_ADDRSTRLEN);
}

/* A command to fake_daemon.py's control socket; waits for its answer. */
static bool control(const char *command) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[128];
        ssize_t n;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/control", dir);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0 ||
            dprintf(fd, "%s\n", command) < 0) {
                if (fd >= 0)
                        close(fd);
                return false;
        }
        n = read(fd, buf, sizeof buf - 1);
        ok = n > 4 && strncmp(buf, "done", 4) == 0;
        close(fd);
        return ok;
}

/* The PID of the process that holds DIR/proc's table. */
static pid_t holder(void) {
        char p[4096];
        FILE *f;
        int pid = -1;

        snprintf(p, sizeof p, "%s/proc/pid", dir);
        f = fopen(p, "r");
        if (f) {
                if (fscanf(f, "%d", &pid) != 1)
                        pid = -1;
                fclose(f);
        }
        return pid;
}

/* How many mappings of table files this process has. */
static int table_mappings(void) {
        FILE *f = fopen("/proc/self/maps", "r");
        char line[4096];
        int n = 0;

        if (!f)
                return -1;
        while (fgets(line, sizeof line, f))
                if (strstr(line, "/nss-table"))
                        n++;
        fclose(f);
        return n;
}

#define SENTINEL_ERRNO 4242

/* ---------------------------------------------------------------- gethostbyname4_r */

struct gh4_result {
        enum nss_status st;
        int err, herr, ttl, errno_after;
        struct gaih_addrtuple *pat;
};

static struct gh4_result call_gh4(const char *name, char *buf, size_t len) {
        struct gh4_result r = { .err = -1, .herr = -12345, .ttl = -1 };
        errno = SENTINEL_ERRNO;
        r.st = gh4(name, &r.pat, buf, len, &r.err, &r.herr, &r.ttl);
        r.errno_after = errno;
        return r;
}

static void test_gh4(void) {
        char buf[4096], s[INET6_ADDRSTRLEN];
        struct gh4_result r;
        struct gaih_addrtuple *t;
        static const char *want[] = { "10.0.0.1", "10.0.0.2", "fd00::1", "fe80::1" };
        static const int wantfam[] = { AF_INET, AF_INET, AF_INET6, AF_INET6 };
        static const unsigned wantscope[] = { 0, 0, 0, 7 };
        int i = 0;

        use_table("ok");
        r = call_gh4("web1", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS, "status %d err %d", r.st, r.err);
        CHECK(r.herr == NETDB_SUCCESS, "h_errno %d", r.herr);
        CHECK(r.ttl == 0, "ttl %d", r.ttl);
        CHECK(r.errno_after == SENTINEL_ERRNO, "errno changed to %d", r.errno_after);
        for (t = r.st == NSS_STATUS_SUCCESS ? r.pat : NULL; t; t = t->next, i++) {
                if (i >= 4)
                        break;
                CHECK(t->family == wantfam[i], "tuple %d family %d", i, t->family);
                CHECK(strcmp(addr_str(t->family, t->addr, s), want[i]) == 0, "tuple %d addr %s", i, s);
                CHECK(t->scopeid == wantscope[i], "tuple %d scope %u", i, t->scopeid);
                CHECK(strcmp(t->name, "web1") == 0, "tuple %d name %s", i, t->name);
                CHECK((char *) t >= buf && (char *) t < buf + sizeof buf, "tuple outside buffer");
        }
        CHECK(i == 4, "%d tuples", i);

        /* Canonical name from the table; case-insensitive query. */
        r = call_gh4("WEB1", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS && strcmp(r.pat->name, "web1") == 0, "WEB1: %d", r.st);

        /* *pat pointing at caller storage: the first tuple is copied there. */
        {
                struct gaih_addrtuple mine = {0}, *p = &mine;
                int err = 0, herr = 0;
                int32_t ttl = -1;
                enum nss_status st = gh4("v6only", &p, buf, sizeof buf, &err, &herr, &ttl);
                CHECK(st == NSS_STATUS_SUCCESS && p == &mine, "copy into *pat: %d", st);
                CHECK(mine.family == AF_INET6 && mine.next == NULL && strcmp(mine.name, "v6only") == 0,
                      "copied tuple");
                CHECK(strcmp(addr_str(AF_INET6, mine.addr, s), "fd00::2") == 0, "copied addr %s", s);
        }

        /* Not a machine: NOTFOUND, HOST_NOT_FOUND, errno untouched. */
        r = call_gh4("nosuchmachine", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.herr == HOST_NOT_FOUND, "miss: %d/%d", r.st, r.herr);
        CHECK(r.errno_after == SENTINEL_ERRNO && r.err == -1, "miss touched errno %d/%d", r.errno_after, r.err);

        /* A machine whose only address has a family we do not know; one with no address at all. */
        r = call_gh4("oddfamily", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.herr == HOST_NOT_FOUND, "oddfamily: %d/%d", r.st, r.herr);
        r = call_gh4("multi", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.herr == HOST_NOT_FOUND, "no address: %d/%d", r.st, r.herr);

        /* 200 addresses. */
        {
                char *big = malloc(16384);
                r = call_gh4("many", big, 16384);
                i = 0;
                for (t = r.st == NSS_STATUS_SUCCESS ? r.pat : NULL; t; t = t->next)
                        i++;
                CHECK(r.st == NSS_STATUS_SUCCESS && i == 200, "many: %d, %d tuples", r.st, i);
                free(big);
        }
}

/* ---------------------------------------------------------------- gethostbyname3/2/_r */

struct gh3_result {
        enum nss_status st;
        int err, herr, ttl, errno_after;
        struct hostent he;
        char *canon;
};

static struct gh3_result call_gh3(const char *name, int af, char *buf, size_t len) {
        struct gh3_result r = { .err = -1, .herr = -12345, .ttl = -1 };
        errno = SENTINEL_ERRNO;
        r.st = gh3(name, af, &r.he, buf, len, &r.err, &r.herr, &r.ttl, &r.canon);
        r.errno_after = errno;
        return r;
}

static int count_list(char **l) {
        int n = 0;
        while (l && l[n])
                n++;
        return n;
}

static void test_gh3(void) {
        char buf[4096], s[INET6_ADDRSTRLEN];
        struct gh3_result r;
        struct hostent he;
        int err, herr;
        enum nss_status st;

        use_table("ok");
        r = call_gh3("web1", AF_INET, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS, "status %d err %d", r.st, r.err);
        if (r.st == NSS_STATUS_SUCCESS) {
                CHECK(strcmp(r.he.h_name, "web1") == 0 && r.canon == r.he.h_name, "name");
                CHECK(count_list(r.he.h_aliases) == 0, "aliases");
                CHECK(r.he.h_addrtype == AF_INET && r.he.h_length == 4, "type");
                CHECK(count_list(r.he.h_addr_list) == 2, "count %d", count_list(r.he.h_addr_list));
                CHECK(strcmp(addr_str(AF_INET, r.he.h_addr_list[0], s), "10.0.0.1") == 0, "a0 %s", s);
                CHECK(strcmp(addr_str(AF_INET, r.he.h_addr_list[1], s), "10.0.0.2") == 0, "a1 %s", s);
                CHECK(r.ttl == 0 && r.herr == NETDB_SUCCESS && r.errno_after == SENTINEL_ERRNO, "ttl/herr/errno");
        }

        /* A hostent cannot carry a scope: the link-local fe80::1 is left out. */
        r = call_gh3("Web1", AF_INET6, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS, "v6 status %d err %d", r.st, r.err);
        if (r.st == NSS_STATUS_SUCCESS) {
                CHECK(strcmp(r.he.h_name, "web1") == 0, "canonical %s", r.he.h_name);
                CHECK(r.he.h_addrtype == AF_INET6 && r.he.h_length == 16, "type");
                CHECK(count_list(r.he.h_addr_list) == 1, "count %d", count_list(r.he.h_addr_list));
                CHECK(strcmp(addr_str(AF_INET6, r.he.h_addr_list[0], s), "fd00::1") == 0, "a0 %s", s);
        }
        /* Link-local first in the table: the rest keep their order. */
        r = call_gh3("llfirst", AF_INET6, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS && count_list(r.he.h_addr_list) == 1 &&
              strcmp(addr_str(AF_INET6, r.he.h_addr_list[0], s), "fd00::6") == 0,
              "llfirst: %d %d", r.st, r.st == NSS_STATUS_SUCCESS ? count_list(r.he.h_addr_list) : -1);
        /* Nothing but a link-local address: as no address of the family at all. */
        r = call_gh3("llonly", AF_INET6, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.herr == HOST_NOT_FOUND && r.err == -1 &&
              r.errno_after == SENTINEL_ERRNO, "llonly/AAAA: %d %d %d %d", r.st, r.herr, r.err, r.errno_after);
        r = call_gh3("llonly", AF_INET, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS && count_list(r.he.h_addr_list) == 1, "llonly/A: %d", r.st);
        /* gethostbyname4_r keeps it, with its scope. */
        {
                struct gh4_result q = call_gh4("llonly", buf, sizeof buf);
                CHECK(q.st == NSS_STATUS_SUCCESS && q.pat->next && q.pat->next->family == AF_INET6 &&
                      q.pat->next->scopeid == 3 && q.pat->next->next == NULL, "llonly gh4: %d", q.st);
        }

        /* AF_UNSPEC means AF_INET. */
        r = call_gh3("web1", AF_UNSPEC, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS && r.he.h_addrtype == AF_INET, "unspec: %d", r.st);

        /* Other families: UNAVAIL, EAFNOSUPPORT. */
        r = call_gh3("web1", AF_PACKET, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == EAFNOSUPPORT && r.herr == NO_RECOVERY,
              "AF_PACKET: %d %d %d", r.st, r.err, r.herr);

        /* The machine has no address of that family. */
        r = call_gh3("v4only", AF_INET6, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.herr == HOST_NOT_FOUND && r.errno_after == SENTINEL_ERRNO,
              "v4only/AAAA: %d %d", r.st, r.herr);
        r = call_gh3("nosuchmachine", AF_INET, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.herr == HOST_NOT_FOUND && r.err == -1, "miss: %d", r.st);

        err = herr = 0;
        st = gh2("web1", AF_INET6, &he, buf, sizeof buf, &err, &herr);
        CHECK(st == NSS_STATUS_SUCCESS && he.h_addrtype == AF_INET6 && count_list(he.h_addr_list) == 1 &&
              strcmp(addr_str(AF_INET6, he.h_addr_list[0], s), "fd00::1") == 0, "gh2: %d", st);
        err = -1;
        st = gh2("llonly", AF_INET6, &he, buf, sizeof buf, &err, &herr);
        CHECK(st == NSS_STATUS_NOTFOUND && herr == HOST_NOT_FOUND && err == -1, "gh2 llonly: %d %d", st, herr);
        st = gh1("v4only", &he, buf, sizeof buf, &err, &herr);
        CHECK(st == NSS_STATUS_SUCCESS && he.h_addrtype == AF_INET && count_list(he.h_addr_list) == 1 &&
              strcmp(he.h_name, "v4only") == 0, "gh1: %d", st);
        st = gh1("v6only", &he, buf, sizeof buf, &err, &herr);
        CHECK(st == NSS_STATUS_NOTFOUND && herr == HOST_NOT_FOUND, "gh1 v6only: %d", st);
}

/* ---------------------------------------------------------------- gethostbyaddr */

static void test_reverse(void) {
        char buf[4096];
        struct hostent he;
        unsigned char a4[4], a6[16];
        int err, herr;
        int32_t ttl;
        enum nss_status st;

        use_table("ok");
        inet_pton(AF_INET, "10.0.0.2", a4);
        err = herr = 0;
        ttl = -1;
        errno = SENTINEL_ERRNO;
        st = gha2(a4, 4, AF_INET, &he, buf, sizeof buf, &err, &herr, &ttl);
        CHECK(st == NSS_STATUS_SUCCESS && errno == SENTINEL_ERRNO, "v4: %d", st);
        if (st == NSS_STATUS_SUCCESS) {
                CHECK(strcmp(he.h_name, "web1") == 0, "name %s", he.h_name);
                CHECK(count_list(he.h_aliases) == 0, "aliases");
                CHECK(he.h_addrtype == AF_INET && he.h_length == 4, "type");
                CHECK(count_list(he.h_addr_list) == 1 && memcmp(he.h_addr_list[0], a4, 4) == 0, "addr");
                CHECK(ttl == 0 && herr == NETDB_SUCCESS, "ttl herr");
        }

        inet_pton(AF_INET6, "fe80::1", a6);
        st = gha1(a6, 16, AF_INET6, &he, buf, sizeof buf, &err, &herr);
        CHECK(st == NSS_STATUS_SUCCESS && strcmp(he.h_name, "web1") == 0 && he.h_length == 16 &&
              memcmp(he.h_addr_list[0], a6, 16) == 0, "v6 link-local: %d", st);

        inet_pton(AF_INET, "10.9.9.9", a4);
        st = gha1(a4, 4, AF_INET, &he, buf, sizeof buf, &err, &herr);
        CHECK(st == NSS_STATUS_SUCCESS && strcmp(he.h_name, "multi") == 0 && count_list(he.h_aliases) == 2 &&
              strcmp(he.h_aliases[0], "alias1.example") == 0 && strcmp(he.h_aliases[1], "alias2") == 0,
              "aliases: %d", st);

        inet_pton(AF_INET, "192.0.2.1", a4);
        err = -1;
        errno = SENTINEL_ERRNO;
        st = gha1(a4, 4, AF_INET, &he, buf, sizeof buf, &err, &herr);
        CHECK(st == NSS_STATUS_NOTFOUND && herr == HOST_NOT_FOUND && err == -1 && errno == SENTINEL_ERRNO,
              "miss: %d", st);

        st = gha1(a4, 4, AF_PACKET, &he, buf, sizeof buf, &err, &herr);
        CHECK(st == NSS_STATUS_UNAVAIL && err == EAFNOSUPPORT, "family: %d %d", st, err);
        st = gha1(a4, 3, AF_INET, &he, buf, sizeof buf, &err, &herr);
        CHECK(st == NSS_STATUS_UNAVAIL && err == EINVAL, "length: %d %d", st, err);
}

/* ---------------------------------------------------------------- passwd / group */

static bool is_record(enum nss_status st, const struct passwd *pw, const char *name, uid_t uid, const char *gecos) {
        return st == NSS_STATUS_SUCCESS && strcmp(pw->pw_name, name) == 0 && strcmp(pw->pw_passwd, "x") == 0 &&
               pw->pw_uid == uid && pw->pw_gid == 65534 && strcmp(pw->pw_gecos, gecos) == 0 &&
               strcmp(pw->pw_dir, "/") == 0 && strcmp(pw->pw_shell, "/usr/sbin/nologin") == 0;
}

static void test_records(void) {
        char buf[1024];
        struct passwd pw;
        struct group gr;
        int err;
        enum nss_status st;

        use_table("ok");
        err = -1;
        errno = SENTINEL_ERRNO;
        st = pwnam("vu-web1-0", &pw, buf, sizeof buf, &err);
        CHECK(is_record(st, &pw, "vu-web1-0", 100000, "UID 0 of Container web1") && errno == SENTINEL_ERRNO,
              "pwnam: %d %d", st, err);
        st = pwuid(101000, &pw, buf, sizeof buf, &err);
        CHECK(is_record(st, &pw, "vu-web1-1000", 101000, "UID 1000 of Container web1"), "pwuid: %d", st);
        st = pwuid(165535, &pw, buf, sizeof buf, &err);
        CHECK(is_record(st, &pw, "vu-web1-65535", 165535, "UID 65535 of Container web1"), "last: %d", st);
        st = pwnam("vu-web1-65535", &pw, buf, sizeof buf, &err);
        CHECK(is_record(st, &pw, "vu-web1-65535", 165535, "UID 65535 of Container web1"), "last by name: %d", st);

        err = -1;
        errno = SENTINEL_ERRNO;
        st = pwnam("vu-nosuch-0", &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND && err == -1 && errno == SENTINEL_ERRNO, "pwnam miss: %d", st);
        for (uint32_t id = 165536; id < 165538; id++) {
                st = pwuid(id, &pw, buf, sizeof buf, &err);
                CHECK(st == NSS_STATUS_NOTFOUND, "one past the range %u: %d", id, st);
        }
        st = pwuid(99999, &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "one before the range: %d", st);
        static const char *never[] = { "vu-web1-65536", "vu-web1-00", "vu-web1-", "vu-WEB1-0", "vu-v4only-0",
                                       "vu-plain-0", "vu-plain-100000", "vu-foo.bar-0", "vu-web1-4294967296", NULL };
        for (int i = 0; never[i]; i++) {
                st = pwnam(never[i], &pw, buf, sizeof buf, &err);
                CHECK(st == NSS_STATUS_NOTFOUND, "%s: %d", never[i], st);
        }
        st = pwuid(500000, &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "foo.bar's UIDs have no records: %d", st);

        errno = SENTINEL_ERRNO;
        st = grnam("vg-web1-0", &gr, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_SUCCESS && errno == SENTINEL_ERRNO, "grnam: %d", st);
        if (st == NSS_STATUS_SUCCESS)
                CHECK(strcmp(gr.gr_name, "vg-web1-0") == 0 && strcmp(gr.gr_passwd, "x") == 0 &&
                      gr.gr_gid == 100000 && gr.gr_mem && gr.gr_mem[0] == NULL, "group fields");
        st = grgid(101000, &gr, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_SUCCESS && strcmp(gr.gr_name, "vg-web1-1000") == 0 && gr.gr_gid == 101000, "grgid: %d", st);
        st = grnam("vg-nosuch-0", &gr, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "grnam miss: %d", st);
        st = grgid(4242, &gr, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "grgid miss: %d", st);
}

/* Calls one entry point with a heap buffer of exactly len bytes (so that valgrind sees
 * any write past it), at offset `off` for misalignment. */
enum ep { EP_GH4, EP_GH3, EP_GH2, EP_GH1, EP_GHA2, EP_GHA1, EP_PWNAM, EP_PWUID, EP_GRNAM, EP_GRGID, EP_MAX };
static const char *ep_name[] = { "gh4", "gh3", "gh2", "gh1", "gha2", "gha1", "pwnam", "pwuid", "grnam", "grgid" };

static enum nss_status call_ep(enum ep e, size_t len, size_t off, int *err, int *herr) {
        char *mem = malloc(len + off + 1), *buf = mem + off;
        struct gaih_addrtuple *pat = NULL;
        struct hostent he;
        struct passwd pw;
        struct group gr;
        unsigned char a4[4];
        int32_t ttl;
        char *canon;
        enum nss_status st = NSS_STATUS_RETURN;

        inet_pton(AF_INET, "10.9.9.9", a4);
        *err = 0;
        *herr = 0;
        switch (e) {
        case EP_GH4: st = gh4("web1", &pat, buf, len, err, herr, &ttl); break;
        case EP_GH3: st = gh3("web1", AF_INET6, &he, buf, len, err, herr, &ttl, &canon); break;
        case EP_GH2: st = gh2("web1", AF_INET, &he, buf, len, err, herr); break;
        case EP_GH1: st = gh1("web1", &he, buf, len, err, herr); break;
        case EP_GHA2: st = gha2(a4, 4, AF_INET, &he, buf, len, err, herr, &ttl); break;
        case EP_GHA1: st = gha1(a4, 4, AF_INET, &he, buf, len, err, herr); break;
        case EP_PWNAM: st = pwnam("vu-web1-0", &pw, buf, len, err); break;
        case EP_PWUID: st = pwuid(100000, &pw, buf, len, err); break;
        case EP_GRNAM: st = grnam("vg-web1-0", &gr, buf, len, err); break;
        case EP_GRGID: st = grgid(100000, &gr, buf, len, err); break;
        default: break;
        }
        free(mem);
        return st;
}

static void test_erange(void) {
        use_table("ok");
        for (enum ep e = 0; e < EP_MAX; e++) {
                bool host = e <= EP_GHA1;
                for (size_t off = 0; off < 2; off++) {
                        size_t len;
                        enum nss_status st = NSS_STATUS_RETURN;
                        int err, herr;

                        /* Every size below the minimum gives TRYAGAIN/ERANGE; then success. */
                        for (len = 0; len < 1024; len++) {
                                st = call_ep(e, len, off, &err, &herr);
                                if (st != NSS_STATUS_TRYAGAIN)
                                        break;
                                if (err != ERANGE || (host && herr != NETDB_INTERNAL)) {
                                        CHECK(false, "%s len %zu: err %d herr %d", ep_name[e], len, err, herr);
                                        break;
                                }
                        }
                        CHECK(st == NSS_STATUS_SUCCESS && len > 0, "%s: status %d at %zu", ep_name[e], st, len);
                        if (off == 0)
                                printf("  %-6s smallest buffer %zu bytes\n", ep_name[e], len);
                }
        }
}

/* ---------------------------------------------------------------- invalid names */

static void test_invalid_names(void) {
        char buf[1024], longname[300];
        struct gh4_result r;
        struct passwd pw;
        struct group gr;
        int err;
        static const char *bad[] = { "", "bad_name", "-web1", "web1-", "web1.", ".web1", "a..b", "a b",
                                     "web1\n", "wéb1", "a\"b", "a\\b", "web1.-x", NULL };

        /* No table at all: NOTFOUND proves nothing was looked at. */
        use_socket("/nonexistent/mymachines.sock");
        for (int i = 0; bad[i]; i++) {
                r = call_gh4(bad[i], buf, sizeof buf);
                CHECK(r.st == NSS_STATUS_NOTFOUND && r.herr == HOST_NOT_FOUND && r.errno_after == SENTINEL_ERRNO,
                      "'%s': %d", bad[i], r.st);
        }
        memset(longname, 'a', 65);
        longname[65] = 0;
        r = call_gh4(longname, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_NOTFOUND, "65 chars: %d", r.st);
        longname[64] = 0;
        r = call_gh4(longname, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "64 chars are looked up: %d", r.st);

        memset(longname, 'a', 257);
        longname[257] = 0;
        CHECK(pwnam(longname, &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "257-byte user");
        CHECK(grnam(longname, &gr, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "257-byte group");
        CHECK(pwnam("a:b", &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "user a:b");
        CHECK(pwnam("", &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "empty user");
}

/* ---------------------------------------------------------------- passwd/group: never looked up */

struct rec_call {
        enum nss_status st;
        int err, errno_after;
};

enum rec_ep { PWNAM, GRNAM, PWUID, GRGID };

static struct rec_call call_rec(enum rec_ep what, const char *name, uint32_t id) {
        char buf[1024];
        struct passwd pw;
        struct group gr;
        struct rec_call r = { .err = -1 };

        errno = SENTINEL_ERRNO;
        switch (what) {
        case PWNAM: r.st = pwnam(name, &pw, buf, sizeof buf, &r.err); break;
        case GRNAM: r.st = grnam(name, &gr, buf, sizeof buf, &r.err); break;
        case PWUID: r.st = pwuid(id, &pw, buf, sizeof buf, &r.err); break;
        case GRGID: r.st = grgid(id, &gr, buf, sizeof buf, &r.err); break;
        }
        r.errno_after = errno;
        return r;
}

/* Only vu-/vg- names by the user-name rules, and IDs from 65536 on, can be records of the
 * daemon's: anything else is NOTFOUND without a look at the table (so: even when there is none,
 * and the next source in nsswitch.conf is asked). What could be a record is UNAVAIL then. */
static void test_record_queries(void) {
        char n31[32], n32[33];
        static const char *never_user[] = { "alice", "root", "nobody", "vg-web1-0", "VU-web1-0", "vu-",
                                            "vu-web1.x-0", "vu-a b-0", "vu-w\xc3\xa9" "b-0", "vu-web1-0\n",
                                            "xvu-web1-0", "vu-web1:0", NULL };
        static const char *never_group[] = { "root", "users", "vu-web1-0", "VG-web1-0", "vg-", "vg-web1.x-0",
                                             "vg-a b-0", NULL };
        static const char *maybe_user[] = { "vu-web1-0", "vu-_x", "vu--", "vu-a_b-C-9", NULL };
        static const uint32_t never_id[] = { 0, 1, 1000, 65534, 65535, UINT32_MAX };
        static const uint32_t maybe_id[] = { 65536, 100000, UINT32_MAX - 1 };
        struct rec_call r;

        memcpy(n31, "vu-", 3);
        memset(n31 + 3, 'a', sizeof n31 - 4);
        n31[31] = 0;
        memcpy(n32, "vu-", 3);
        memset(n32 + 3, 'a', sizeof n32 - 4);
        n32[32] = 0;

        use_socket("/nonexistent/mymachines.sock");
        for (int i = 0; never_user[i]; i++) {
                r = call_rec(PWNAM, never_user[i], 0);
                CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1 && r.errno_after == SENTINEL_ERRNO,
                      "getpwnam '%s': %d %d %d", never_user[i], r.st, r.err, r.errno_after);
        }
        for (int i = 0; never_group[i]; i++) {
                r = call_rec(GRNAM, never_group[i], 0);
                CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1 && r.errno_after == SENTINEL_ERRNO,
                      "getgrnam '%s': %d %d %d", never_group[i], r.st, r.err, r.errno_after);
        }
        r = call_rec(PWNAM, n32, 0);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1, "32 characters: %d", r.st);
        n32[1] = 'g';
        r = call_rec(GRNAM, n32, 0);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1, "group, 32 characters: %d", r.st);
        for (size_t i = 0; i < sizeof never_id / sizeof never_id[0]; i++) {
                r = call_rec(PWUID, NULL, never_id[i]);
                CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1 && r.errno_after == SENTINEL_ERRNO,
                      "getpwuid %u: %d %d %d", never_id[i], r.st, r.err, r.errno_after);
                r = call_rec(GRGID, NULL, never_id[i]);
                CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1 && r.errno_after == SENTINEL_ERRNO,
                      "getgrgid %u: %d %d %d", never_id[i], r.st, r.err, r.errno_after);
        }

        for (int i = 0; maybe_user[i]; i++) {
                r = call_rec(PWNAM, maybe_user[i], 0);
                CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT && r.errno_after == SENTINEL_ERRNO,
                      "getpwnam '%s' is looked up: %d %d", maybe_user[i], r.st, r.err);
        }
        r = call_rec(PWNAM, n31, 0);
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "31 characters are looked up: %d %d", r.st, r.err);
        n31[1] = 'g';
        r = call_rec(GRNAM, n31, 0);
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "group, 31 characters: %d %d", r.st, r.err);
        r = call_rec(GRNAM, "vg-web1-0", 0);
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "getgrnam vg-web1-0 is looked up: %d %d", r.st, r.err);
        for (size_t i = 0; i < sizeof maybe_id / sizeof maybe_id[0]; i++) {
                r = call_rec(PWUID, NULL, maybe_id[i]);
                CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "getpwuid %u is looked up: %d %d",
                      maybe_id[i], r.st, r.err);
                r = call_rec(GRGID, NULL, maybe_id[i]);
                CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "getgrgid %u is looked up: %d %d",
                      maybe_id[i], r.st, r.err);
        }

        use_table("ok");
        r = call_rec(PWUID, NULL, 65535);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1 && r.errno_after == SENTINEL_ERRNO,
              "getpwuid 65535: %d %d", r.st, r.err);
        r = call_rec(PWNAM, "alice", 0);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1, "getpwnam alice: %d %d", r.st, r.err);
        r = call_rec(PWUID, NULL, 100000);
        CHECK(r.st == NSS_STATUS_SUCCESS, "getpwuid 100000: %d %d", r.st, r.err);
        r = call_rec(GRGID, NULL, 101000);
        CHECK(r.st == NSS_STATUS_SUCCESS, "getgrgid 101000: %d %d", r.st, r.err);
        r = call_rec(PWUID, NULL, 65536);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1, "getpwuid 65536 (no such record): %d %d", r.st, r.err);
}

/* ---------------------------------------------------------------- tables not to use */

struct table_case {
        const char *name;
        int err; /* of a lookup through it: UNAVAIL with this errno; 0: SUCCESS for web1 */
};

/* Every case of fake_daemon.py whose table must not be used, and why. */
static const struct table_case table_cases[] = {
        { "empty", ENOENT },               /* no table: no daemon */
        { "dead", ECONNREFUSED },          /* no running daemon holds it */
        { "notroot", EPERM },              /* a table root did not write */
        { "writable", EPERM },             /* ... or one others may change */
        { "groupw", EPERM },
        { "symlink", EPERM },              /* never followed */
        { "fifo", EPERM },                 /* only regular files (and opening it does not block) */
        { "dir", EPERM },
        { "badmagic", EBADMSG },
        { "badversion", EPROTONOSUPPORT }, /* a version we do not know: never a misread */
        { "truncated", EBADMSG },
        { "c-basesize", EBADMSG },
        { "c-machines", EBADMSG },
        { "c-buckets", EBADMSG },
        { "c-strings", EBADMSG },
        { "c-name", EBADMSG },
        { "c-delta-far", EBADMSG },
        { "c-delta-torn", EBADMSG },
        { "c-delta-cycle", EBADMSG },
        { "c-delta-deep", EBADMSG },
        { NULL, 0 },
};

static void expect_unavail(const char *table, int want_err) {
        char buf[4096];
        struct gh4_result r;
        double t0, dt;

        use_table(table);
        t0 = now_ms();
        r = call_gh4("web1", buf, sizeof buf);
        dt = now_ms() - t0;
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == want_err && r.herr == NO_RECOVERY && r.errno_after == SENTINEL_ERRNO,
              "%s: status %d err %d (%s) herr %d", table, r.st, r.err, strerror(r.err), r.herr);
        CHECK(dt < (slow ? 500 : 20), "%s took %.1f ms", table, dt);
        printf("  %-14s -> UNAVAIL %-16s in %6.3f ms\n", table, strerrorname_np(r.err), dt);
}

static void test_bad_tables(void) {
        char buf[4096], path[4096];
        struct passwd pw;
        struct hostent he;
        unsigned char a4[4];
        int err, herr;
        enum nss_status st;

        for (int i = 0; table_cases[i].name; i++)
                expect_unavail(table_cases[i].name, table_cases[i].err);

        /* Broken records are found when a lookup reaches them, and only then. */
        use_table("c-revref");
        inet_pton(AF_INET, "10.0.0.1", a4);
        st = gha1(a4, 4, AF_INET, &he, buf, sizeof buf, &err, &herr);
        CHECK(st == NSS_STATUS_UNAVAIL && err == EBADMSG, "names out of bounds: %d %d", st, err);
        use_table("c-revname");
        st = gha1(a4, 4, AF_INET, &he, buf, sizeof buf, &err, &herr);
        CHECK(st == NSS_STATUS_UNAVAIL && err == EBADMSG, "a name that is no host name: %d %d", st, err);
        CHECK(call_gh4("v4only", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "the rest of that table answers");
        use_table("c-segment");
        st = pwuid(100000, &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_UNAVAIL && err == EBADMSG, "a segment of no machine: %d %d", st, err);

        /* A table made unreadable for others is still the daemon's (the module runs as anyone). */
        table_file("ok", path, sizeof path);
        CHECK(chmod(path, 0600) == 0, "chmod");
        use_table("ok");
        CHECK(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "0600");
        chmod(path, 0644);

        /* And the module recovers from all of it. */
        CHECK(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "after the bad tables");
}

/* Records the module must not believe, however well-formed the table (issue 10, item 8). */
static void test_hostile(void) {
        char buf[1024];
        struct passwd pw;
        struct group gr;
        int err;
        enum nss_status st;

        use_table("hostile");
        st = pwnam("vu-web1-0", &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "vu-web1-0 as UID 0: %d", st);
        st = pwnam("vu-web1-1000", &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "vu-web1-1000 as UID 1000: %d", st);
        st = grnam("vg-web1-0", &gr, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "vg-web1-0 as GID 0: %d", st);
        for (uint32_t id = 0; id < 65536; id += 4099) {
                st = pwuid(id, &pw, buf, sizeof buf, &err);
                CHECK(st == NSS_STATUS_NOTFOUND, "UID %u: %d", id, st);
        }
        st = pwuid(300000, &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_UNAVAIL && err == EBADMSG, "a VM's range: %d %d", st, err);
        st = pwnam("vu-vm1-0", &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "a VM's name: %d", st);
        st = pwnam("vu-big-999999", &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "an ID past 2^32: %d", st);
        /* What the ID direction gives is a record with nothing but fixed fields. */
        st = pwuid(4294900005u, &pw, buf, sizeof buf, &err);
        CHECK(is_record(st, &pw, "vu-big-5", 4294900005u, "UID 5 of Container big"), "big: %d", st);
}

/* A base with two delta sections over it: the newest section that knows a name decides. */
static void test_layers(void) {
        char buf[1024], s[INET6_ADDRSTRLEN];
        struct gh4_result r;
        struct hostent he;
        struct passwd pw;
        unsigned char a[4];
        int err, herr;
        enum nss_status st;
        static const struct { const char *addr; const char *name; } rev[] = {
                { "10.4.0.1", NULL }, { "10.4.0.2", NULL }, { "10.4.0.3", "keep1" }, { "10.4.0.4", NULL },
                { "10.4.0.5", "WEB1" }, { "10.4.0.9", "b" },
        };

        use_table("layered");
        r = call_gh4("web1", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS && strcmp(r.pat->name, "WEB1") == 0 && !r.pat->next &&
              strcmp(addr_str(AF_INET, r.pat->addr, s), "10.4.0.5") == 0, "web1 from L0: %d", r.st);
        CHECK(call_gh4("gone1", buf, sizeof buf).st == NSS_STATUS_NOTFOUND, "removed in L1");
        CHECK(call_gh4("new1", buf, sizeof buf).st == NSS_STATUS_NOTFOUND, "added in L1, removed in L0");
        CHECK(call_gh4("keep1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "unchanged since the base");
        for (size_t i = 0; i < sizeof rev / sizeof rev[0]; i++) {
                inet_pton(AF_INET, rev[i].addr, a);
                st = gha1(a, 4, AF_INET, &he, buf, sizeof buf, &err, &herr);
                if (rev[i].name)
                        CHECK(st == NSS_STATUS_SUCCESS && strcmp(he.h_name, rev[i].name) == 0 && !he.h_aliases[0],
                              "%s: %d", rev[i].addr, st);
                else
                        CHECK(st == NSS_STATUS_NOTFOUND, "%s: %d", rev[i].addr, st);
        }
        /* c1's range moved in L1; c2 is gone in L0. */
        CHECK(pwuid(200000, &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "c1's old range");
        st = pwuid(220005, &pw, buf, sizeof buf, &err);
        CHECK(is_record(st, &pw, "vu-c1-5", 220005, "UID 5 of Container c1"), "c1's new range: %d", st);
        st = pwnam("vu-c1-5", &pw, buf, sizeof buf, &err);
        CHECK(is_record(st, &pw, "vu-c1-5", 220005, "UID 5 of Container c1"), "c1 by name: %d", st);
        CHECK(pwuid(210000, &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "c2's range");
        CHECK(pwnam("vu-c2-0", &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "c2 by name");
}

/* ---------------------------------------------------------------- a daemon that stops, dies, restarts */

static void test_liveness(void) {
        char buf[4096], s[INET6_ADDRSTRLEN];
        struct gh4_result r;
        pid_t pid, pid2;
        double t0, worst = 0;
        bool seen77 = false;

        CHECK(control("restart"), "restart");
        pid = holder();
        CHECK(pid > 0, "holder pid");
        use_table("proc");
        CHECK(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "proc: before");

        /* Stopped: its table answers, without waiting for it. */
        kill(pid, SIGSTOP);
        for (int i = 0; i < 200; i++) {
                t0 = now_ms();
                r = call_gh4(i % 2 ? "web1" : "nosuchmachine", buf, sizeof buf);
                if (now_ms() - t0 > worst)
                        worst = now_ms() - t0;
                CHECK(r.st == (i % 2 ? NSS_STATUS_SUCCESS : NSS_STATUS_NOTFOUND), "stopped daemon, lookup %d: %d", i, r.st);
        }
        kill(pid, SIGCONT);
        CHECK(worst < (slow ? 200 : 5), "a lookup with the daemon stopped took %.3f ms", worst);
        printf("  daemon stopped: 200 lookups, the slowest %.3f ms\n", worst);

        /* Killed: UNAVAIL at once, its table left behind or not. */
        kill(pid, SIGKILL);
        for (int i = 0; i < 100 && kill(pid, 0) == 0; i++) {
                char stat_path[64], st[512];
                FILE *f;
                snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", pid);
                f = fopen(stat_path, "r");
                if (!f || !fgets(st, sizeof st, f) || strstr(st, ") Z ")) { /* a zombie holds no lock */
                        if (f)
                                fclose(f);
                        break;
                }
                fclose(f);
                usleep(1000);
        }
        t0 = now_ms();
        r = call_gh4("web1", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ECONNREFUSED, "killed daemon: %d %d", r.st, r.err);
        CHECK(now_ms() - t0 < (slow ? 200 : 5), "took %.3f ms", now_ms() - t0);
        printf("  daemon killed: UNAVAIL %s in %.3f ms\n", strerrorname_np(r.err), now_ms() - t0);

        /* Restarted: its new table is used. */
        CHECK(control("restart"), "restart");
        pid2 = holder();
        CHECK(pid2 > 0 && pid2 != pid, "new holder %d", pid2);
        r = call_gh4("web1", buf, sizeof buf);
        for (struct gaih_addrtuple *t = r.st == NSS_STATUS_SUCCESS ? r.pat : NULL; t; t = t->next)
                if (t->family == AF_INET && strcmp(addr_str(AF_INET, t->addr, s), "10.0.0.77") == 0)
                        seen77 = true;
        CHECK(r.st == NSS_STATUS_SUCCESS && seen77, "the restarted daemon's table: %d", r.st);
}

/* ---------------------------------------------------------------- replacement, threads, fork */

/* web1 of generation k has 10.k.0.1, 10.k.0.2, fd00::k: an answer mixed from two tables shows. */
static int consistent(const struct gaih_addrtuple *t) {
        int k1, k2, z, n = 0;
        unsigned k3;
        char s[INET6_ADDRSTRLEN];

        if (!t || t->family != AF_INET || sscanf(addr_str(AF_INET, t->addr, s), "10.%d.0.%d", &k1, &z) != 2 || z != 1)
                return 0;
        t = t->next;
        if (!t || t->family != AF_INET || sscanf(addr_str(AF_INET, t->addr, s), "10.%d.0.%d", &k2, &z) != 2 || z != 2)
                return 0;
        t = t->next;
        if (!t || t->family != AF_INET6 || sscanf(addr_str(AF_INET6, t->addr, s), "fd00::%x", &k3) != 1 || t->next)
                return 0;
        n = k1 == k2 && (unsigned) k1 == k3 ? k1 : 0;
        return n;
}

static atomic_bool stop_threads;

struct replace_stats {
        long lookups, torn, failed;
};

static void *lookup_thread(void *arg) {
        struct replace_stats *st = arg;
        char buf[2048];

        while (!atomic_load(&stop_threads)) {
                struct gh4_result r = call_gh4("web1", buf, sizeof buf);
                st->lookups++;
                if (r.st != NSS_STATUS_SUCCESS) {
                        if (st->failed++ < 3)
                                fprintf(stderr, "  lookup during replacement: status %d, %s\n", r.st, strerrorname_np(r.err));
                } else if (!consistent(r.pat))
                        st->torn++;
                if (slow)
                        usleep(200); /* under valgrind: leave the replacing process some CPU */
        }
        return NULL;
}

/* Stops the lookup threads, joins them, and gives the sum of what they saw. */
static struct replace_stats join_lookup_threads(pthread_t *t, const struct replace_stats *st, int n) {
        struct replace_stats sum = { 0 };

        atomic_store(&stop_threads, true);
        for (int i = 0; i < n; i++) {
                pthread_join(t[i], NULL);
                sum.lookups += st[i].lookups;
                sum.torn += st[i].torn;
                sum.failed += st[i].failed;
        }
        return sum;
}

static int env_int(const char *name, int dflt) {
        const char *v = getenv(name);
        return v ? atoi(v) : dflt;
}

/* Threads looking up while the table is replaced (new files, and deltas in place). */
static void test_replacement(void) {
        int n = env_int("TEST_THREADS", 16), reps = env_int("TEST_REPLACEMENTS", 1000), maps;
        pthread_t t[64];
        struct replace_stats st[64] = { 0 };
        char cmd[64];
        double t0 = now_ms();

        if (n > 64)
                n = 64;
        use_table("swap");
        atomic_store(&stop_threads, false);
        for (int i = 0; i < n; i++)
                CHECK(pthread_create(&t[i], NULL, lookup_thread, &st[i]) == 0, "pthread_create");
        snprintf(cmd, sizeof cmd, "replace %d file", reps);
        CHECK(control(cmd), "%s", cmd);
        snprintf(cmd, sizeof cmd, "replace %d delta", reps);
        CHECK(control(cmd), "%s", cmd);
        struct replace_stats sum = join_lookup_threads(t, st, n);
        CHECK(sum.torn == 0 && sum.failed == 0, "%ld torn answers, %ld failed lookups of %ld", sum.torn, sum.failed, sum.lookups);
        maps = table_mappings();
        CHECK(maps >= 1 && maps <= 2, "%d table mappings left", maps);
        printf("  %d threads, %ld lookups while the table was replaced %d times and extended %d times in %.0f ms: "
               "%ld torn, %ld failed, %d table(s) mapped\n", n, sum.lookups, reps, reps, now_ms() - t0, sum.torn, sum.failed, maps);
}

static void *replacer(void *arg) {
        (void) arg;
        control("replace 300 file");
        return NULL;
}

/* Children forked while the table is being replaced go on looking up, from their own copy. */
static void test_fork(void) {
        char buf[2048];
        pthread_t r;
        int bad = 0, status;

        use_table("swap");
        CHECK(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "before fork");
        pthread_create(&r, NULL, replacer, NULL);
        for (int i = 0; i < 30; i++) {
                pid_t pid;
                fflush(NULL);
                pid = fork();
                if (pid == 0) {
                        int b = 0;
                        for (int j = 0; j < 50; j++) {
                                struct gh4_result q = call_gh4("web1", buf, sizeof buf);
                                b += q.st != NSS_STATUS_SUCCESS || !consistent(q.pat);
                        }
                        _exit(b ? 1 : 0);
                }
                for (int j = 0; j < 5; j++) {
                        struct gh4_result q = call_gh4("web1", buf, sizeof buf);
                        bad += q.st != NSS_STATUS_SUCCESS || !consistent(q.pat);
                }
                bad += !(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        pthread_join(r, NULL);
        /* A child made by a raw clone, without fork handlers, too. */
        {
                pid_t pid = (pid_t) syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
                if (pid == 0)
                        _exit(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS ? 0 : 1);
                bad += !(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        CHECK(bad == 0, "%d failed lookups or children", bad);
        CHECK(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "parent after fork");
}

static atomic_bool replacing;

static void *replacer_then_done(void *arg) {
        (void) arg;
        control("replace 1000 file");
        atomic_store(&replacing, false);
        return NULL;
}

/* Forks while other threads swap new tables in (each lookup that finds the table superseded installs
 * the one it mapped): the fork waits for a swap under way, so that the child gets no half-made slot,
 * and the child's lookups, which swap in turn and unmap what the parent had, neither crash, nor fail,
 * nor close a descriptor of the program's. */
static void test_fork_during_swaps(void) {
        int n = env_int("TEST_THREADS", 16) / 2, max_forks = slow ? 40 : 200, forks = 0, bad = 0, status, marker;
        pthread_t t[32], r;
        struct replace_stats st[32] = { 0 };
        struct stat mst;
        char buf[2048];
        double t0 = now_ms();

        if (n < 2)
                n = 2;
        if (n > 32)
                n = 32;
        use_table("swap");
        CHECK(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "before fork");
        marker = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHECK(marker >= 0 && fstat(marker, &mst) == 0, "/dev/null");
        atomic_store(&stop_threads, false);
        atomic_store(&replacing, true);
        for (int i = 0; i < n; i++)
                CHECK(pthread_create(&t[i], NULL, lookup_thread, &st[i]) == 0, "pthread_create");
        CHECK(pthread_create(&r, NULL, replacer_then_done, NULL) == 0, "pthread_create");
        /* A fork handler that waited for good would fail the test here instead of hanging it. */
        alarm(slow ? 600 : 120);
        while (atomic_load(&replacing) && forks < max_forks) {
                pid_t pid;

                fflush(NULL);
                pid = fork();
                if (pid == 0) {
                        struct stat cst;
                        int b = 0;

                        for (int j = 0; j < 20; j++) {
                                struct gh4_result q = call_gh4("web1", buf, sizeof buf);
                                b += q.st != NSS_STATUS_SUCCESS || !consistent(q.pat);
                        }
                        b += fstat(marker, &cst) < 0 || cst.st_dev != mst.st_dev || cst.st_ino != mst.st_ino;
                        _exit(b ? 1 : 0);
                }
                forks++;
                bad += !(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        alarm(0);
        pthread_join(r, NULL);
        struct replace_stats sum = join_lookup_threads(t, st, n);
        close(marker);
        CHECK(forks > 0 && bad == 0, "%d of %d children failed", bad, forks);
        CHECK(sum.torn == 0 && sum.failed == 0, "%ld torn answers, %ld failed lookups of %ld", sum.torn, sum.failed, sum.lookups);
        CHECK(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "parent after fork");
        printf("  %d forks while %d threads swapped tables in (%ld lookups) in %.0f ms: %d children failed\n", forks, n,
               sum.lookups, now_ms() - t0, bad);
}

/* ---------------------------------------------------------------- descriptors */

struct fdinfo {
        int fd;
        char target[128];
};

/* The open descriptors of this process and what they are ("socket:[123]", a path...). */
static int list_fds(struct fdinfo *out, int max) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        if (!d)
                return -1;
        while (n < max && (e = readdir(d))) {
                char p[64];
                ssize_t l;
                int fd;

                if (e->d_name[0] == '.')
                        continue;
                fd = atoi(e->d_name);
                if (fd == dirfd(d))
                        continue;
                snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
                l = readlink(p, out[n].target, sizeof out[n].target - 1);
                if (l < 0)
                        continue;
                out[n].target[l] = 0;
                out[n].fd = fd;
                n++;
        }
        closedir(d);
        return n;
}

/* Puts a socketpair of the program's own on descriptor number fd (closed). sp[0] == fd. */
static bool socketpair_at(int fd, int sp[2]) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return false;
        if (sp[1] == fd) {
                int t = sp[0];
                sp[0] = sp[1];
                sp[1] = t;
        }
        if (sp[0] != fd) {
                if (dup3(sp[0], fd, O_CLOEXEC) < 0)
                        return false;
                close(sp[0]);
                sp[0] = fd;
        }
        return true;
}

static bool same_file(int fd, const struct stat *want) {
        struct stat st;
        return fstat(fd, &st) == 0 && st.st_dev == want->st_dev && st.st_ino == want->st_ino;
}

/* The descriptor of the module's table of case `name` (after a lookup there); -1 if not exactly one. */
static int module_table_fd(const char *name) {
        static struct fdinfo l[1024];
        char buf[2048], path[4096], real[4096];
        int n, fd = -1, found = 0;

        use_table(name);
        call_gh4("web1", buf, sizeof buf);
        table_file(name, path, sizeof path);
        if (!realpath(path, real))
                return -1;
        n = list_fds(l, 1024);
        for (int i = 0; i < n; i++)
                if (strcmp(l[i].target, real) == 0) {
                        fd = l[i].fd;
                        found++;
                }
        if (found != 1)
                for (int i = 0; i < n; i++)
                        fprintf(stderr, "  fd %d -> %s\n", l[i].fd, l[i].target);
        return found == 1 ? fd : -1;
}

/* The program closes the module's table descriptor behind its back (close loops, closefrom,
 * close_range) and gets the number again for a file of its own: the module must neither close it
 * nor take it for the table, and it finds its table again. */
static void test_stale_fd(void) {
        char buf[2048], b, path[4096];
        int fd, sp[2], status, lockfd;
        struct stat st;
        pid_t pid;

        /* 1. A socketpair on the number. */
        fd = module_table_fd("ok");
        CHECK(fd >= 0, "the module's table descriptor not found");
        if (fd < 0)
                return;
        close(fd);
        CHECK(socketpair_at(fd, sp), "socketpair on fd %d", fd);
        fstat(fd, &st);
        for (int i = 0; i < 3; i++)
                CHECK(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "lookup with a socketpair on %d", fd);
        CHECK(fcntl(fd, F_GETFD) >= 0 && same_file(fd, &st), "the module closed the program's descriptor %d", fd);
        errno = 0;
        CHECK(recv(sp[1], &b, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "the module wrote into the socketpair: %d", errno);
        CHECK(send(sp[1], "x", 1, MSG_NOSIGNAL) == 1 && recv(fd, &b, 1, MSG_DONTWAIT) == 1 && b == 'x',
              "the program's socketpair does not work any more");
        close(sp[0]);
        close(sp[1]);

        /* 2. Another table file, held by a running daemon, on the number (the same lock, another
         * file): still not ours; and /dev/null. */
        fd = module_table_fd("ok");
        CHECK(fd >= 0, "the module's table descriptor not found");
        if (fd < 0)
                return;
        close(fd);
        table_file("swap", path, sizeof path);
        lockfd = open(path, O_RDONLY | O_CLOEXEC);
        if (lockfd != fd) {
                dup3(lockfd, fd, O_CLOEXEC);
                close(lockfd);
        }
        fstat(fd, &st);
        use_table("ok");
        CHECK(call_gh4("v4only", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "another table file on %d", fd);
        CHECK(fcntl(fd, F_GETFD) >= 0 && same_file(fd, &st), "the module closed the other table on %d", fd);
        close(fd);

        fd = module_table_fd("ok");
        CHECK(fd >= 0, "the module's table descriptor not found");
        if (fd < 0)
                return;
        close(fd);
        {
                int nf = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (nf != fd) {
                        dup3(nf, fd, O_CLOEXEC);
                        close(nf);
                }
        }
        fstat(fd, &st);
        CHECK(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "lookup with /dev/null on %d", fd);
        CHECK(fcntl(fd, F_GETFD) >= 0 && same_file(fd, &st), "the module closed /dev/null on %d", fd);
        close(fd);

        /* 3. Nothing on the number. */
        fd = module_table_fd("ok");
        close(fd);
        CHECK(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "lookup after the descriptor was closed");

        /* 4. The same, then fork(): neither the child nor its lookups close the program's copy. */
        fd = module_table_fd("ok");
        CHECK(fd >= 0, "the module's table descriptor not found");
        if (fd < 0)
                return;
        close(fd);
        CHECK(socketpair_at(fd, sp), "socketpair on fd %d", fd);
        fstat(fd, &st);
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
                int ok = fcntl(fd, F_GETFD) >= 0 && same_file(fd, &st);
                ok = ok && call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS && fcntl(fd, F_GETFD) >= 0 &&
                     same_file(fd, &st);
                _exit(ok ? 0 : 1);
        }
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child after fork: the program's descriptor %d closed or a lookup failed (status %d)", fd, status);
        CHECK(fcntl(fd, F_GETFD) >= 0 && same_file(fd, &st), "parent: descriptor %d", fd);
        close(sp[0]);
        close(sp[1]);
        CHECK(call_gh4("web1", buf, sizeof buf).st == NSS_STATUS_SUCCESS, "after all that");
}

/* The module's descriptors are close-on-exec: a program that looks up and then execs (posix_spawn:
 * no fork handlers run) leaks none of them. */
static void test_cloexec(void) {
        char out[16384], path[4096], real[4096];
        int fd, pfd[2], status;
        size_t have = 0;
        ssize_t n;
        pid_t pid;
        posix_spawn_file_actions_t fa;
        char *argv[] = { self_path, (char *) "--list-fds", NULL };
        extern char **environ;

        fd = module_table_fd("ok");
        CHECK(fd >= 0, "the module's table descriptor not found");
        if (fd < 0)
                return;
        table_file("ok", path, sizeof path);
        if (!realpath(path, real))
                return;
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "fd %d has no FD_CLOEXEC", fd);

        CHECK(pipe2(pfd, O_CLOEXEC) == 0, "pipe");
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
        CHECK(posix_spawn(&pid, self_path, &fa, NULL, argv, environ) == 0, "posix_spawn %s", self_path);
        posix_spawn_file_actions_destroy(&fa);
        close(pfd[1]);
        while (have < sizeof out - 1 && (n = read(pfd[0], out + have, sizeof out - 1 - have)) > 0)
                have += (size_t) n;
        out[have] = 0;
        close(pfd[0]);
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "--list-fds: status %d", status);
        CHECK(strstr(out, "\n0 ") || strncmp(out, "0 ", 2) == 0, "--list-fds printed nothing useful: %s", out);
        CHECK(strstr(out, "nss-table") == NULL, "the module's table leaked into the exec'd program:\n%s", out);
        printf("  fd %d (%s) is FD_CLOEXEC and absent after exec\n", fd, real);
}

/* ---------------------------------------------------------------- signals */

static volatile sig_atomic_t sigpipe_seen;
static void on_sigpipe(int sig) {
        (void) sig;
        sigpipe_seen++;
}
static void on_usr1(int sig) {
        (void) sig;
}

struct sigstate {
        sigset_t mask, pending;
        struct sigaction act[_NSIG];
        int act_r[_NSIG];
};

static void get_sigstate(struct sigstate *s) {
        memset(s, 0, sizeof *s);
        pthread_sigmask(SIG_SETMASK, NULL, &s->mask);
        sigpending(&s->pending);
        for (int i = 1; i < _NSIG; i++)
                s->act_r[i] = sigaction(i, NULL, &s->act[i]);
}

/* Compares two states; names the first difference. */
static bool same_sigstate(const struct sigstate *a, const struct sigstate *b, char *why, size_t whylen) {
        for (int i = 1; i < _NSIG; i++) {
                if (sigismember(&a->mask, i) != sigismember(&b->mask, i)) {
                        snprintf(why, whylen, "signal %d (%s) %s the mask", i, strsignal(i),
                                 sigismember(&b->mask, i) ? "added to" : "removed from");
                        return false;
                }
                if (sigismember(&a->pending, i) != sigismember(&b->pending, i)) {
                        snprintf(why, whylen, "signal %d (%s) pending", i, strsignal(i));
                        return false;
                }
                if (a->act_r[i] != b->act_r[i] || (a->act_r[i] == 0 &&
                    (a->act[i].sa_handler != b->act[i].sa_handler || a->act[i].sa_flags != b->act[i].sa_flags))) {
                        snprintf(why, whylen, "handler of signal %d (%s) changed", i, strsignal(i));
                        return false;
                }
                for (int j = 1; a->act_r[i] == 0 && j < _NSIG; j++)
                        if (sigismember(&a->act[i].sa_mask, j) != sigismember(&b->act[i].sa_mask, j)) {
                                snprintf(why, whylen, "sa_mask of signal %d changed", i);
                                return false;
                        }
        }
        return true;
}

/* Lookups of every kind, failures included, leave the calling thread's signal mask and
 * every signal's disposition as they were, and raise no signal (SIGPIPE). */
static void test_signals(void) {
        struct sigaction sa = {0}, old_pipe, old_usr1, old_alrm;
        sigset_t old_mask, m;
        struct sigstate before, after;
        char buf[4096], why[256];
        struct passwd pw;
        int err;

        sa.sa_handler = on_sigpipe;
        sigaction(SIGPIPE, &sa, &old_pipe);
        sa.sa_handler = on_usr1;
        sa.sa_flags = SA_RESTART;
        sigaddset(&sa.sa_mask, SIGTERM);
        sigaction(SIGUSR1, &sa, &old_usr1);
        sa = (struct sigaction) { .sa_handler = SIG_IGN };
        sigaction(SIGALRM, &sa, &old_alrm);
        pthread_sigmask(SIG_SETMASK, NULL, &old_mask);

        for (int round = 0; round < 2; round++) {
                /* round 0: SIGUSR2 and SIGHUP blocked; round 1: also SIGPIPE blocked, SIGUSR2 not */
                sigemptyset(&m);
                sigaddset(&m, SIGHUP);
                sigaddset(&m, round ? SIGPIPE : SIGUSR2);
                pthread_sigmask(SIG_SETMASK, &m, NULL);
                sigpipe_seen = 0;
                get_sigstate(&before);

                use_table("ok");
                call_gh4("web1", buf, sizeof buf);
                call_gh4("nosuchmachine", buf, sizeof buf);
                call_gh3("web1", AF_INET6, buf, sizeof buf);
                pwnam("vu-web1-0", &pw, buf, sizeof buf, &err);
                pwnam("alice", &pw, buf, sizeof buf, &err);
                for (int i = 0; table_cases[i].name; i++) {
                        use_table(table_cases[i].name);
                        call_gh4("web1", buf, sizeof buf);
                        pwnam("vu-web1-0", &pw, buf, sizeof buf, &err);
                }
                use_table("swap"); /* a table replaced meanwhile */
                for (int i = 0; i < 50; i++)
                        call_gh4("web1", buf, sizeof buf);
                control("replace 20 file");
                call_gh4("web1", buf, sizeof buf);
                use_socket("/nonexistent/mymachines.sock");
                call_gh4("web1", buf, sizeof buf);

                get_sigstate(&after);
                CHECK(same_sigstate(&before, &after, why, sizeof why), "round %d: %s", round, why);
                CHECK(sigpipe_seen == 0, "round %d: SIGPIPE delivered %d times", round, (int) sigpipe_seen);
        }

        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
        sigaction(SIGPIPE, &old_pipe, NULL);
        sigaction(SIGUSR1, &old_usr1, NULL);
        sigaction(SIGALRM, &old_alrm, NULL);
        use_table("ok");
}

/* ---------------------------------------------------------------- threads */

static int iterations = 1000;

static void *thread_main(void *arg) {
        long id = (long) arg;
        char buf[2048];
        struct hostent he;
        struct passwd pw;
        int err, herr, bad = 0;
        int32_t ttl;

        for (int i = 0; i < iterations; i++) {
                struct gaih_addrtuple *pat = NULL;
                enum nss_status st;
                switch ((i + id) % 4) {
                case 0:
                        st = gh4("web1", &pat, buf, sizeof buf, &err, &herr, &ttl);
                        if (st != NSS_STATUS_SUCCESS || pat->next->next->next->scopeid != 7)
                                bad++;
                        break;
                case 1:
                        st = gh3("v4only", AF_INET, &he, buf, sizeof buf, &err, &herr, &ttl, NULL);
                        if (st != NSS_STATUS_SUCCESS || strcmp(he.h_name, "v4only") != 0)
                                bad++;
                        break;
                case 2:
                        st = pwnam("vu-web1-1000", &pw, buf, sizeof buf, &err);
                        if (st != NSS_STATUS_SUCCESS || pw.pw_uid != 101000)
                                bad++;
                        break;
                default:
                        st = gh4("nosuchmachine", &pat, buf, sizeof buf, &err, &herr, &ttl);
                        if (st != NSS_STATUS_NOTFOUND)
                                bad++;
                        break;
                }
                if (bad == 1 && i < 5)
                        fprintf(stderr, "thread %ld lookup %d: status %d err %d\n", id, i, st, err);
        }
        return (void *) (long) bad;
}

/* Threads that start at once against a table no thread has mapped yet. */
static void test_threads(void) {
        int n = env_int("TEST_THREADS", 16);
        pthread_t t[64];
        long bad = 0;
        double t0 = now_ms();

        if (n > 64)
                n = 64;
        iterations = env_int("TEST_ITERATIONS", 1000);
        use_table("dead");
        call_gh4("web1", (char[64]){0}, 64); /* nothing current: the threads race to map "ok" */
        use_table("ok");
        for (long i = 0; i < n; i++)
                CHECK(pthread_create(&t[i], NULL, thread_main, (void *) i) == 0, "pthread_create");
        for (int i = 0; i < n; i++) {
                void *r;
                pthread_join(t[i], &r);
                bad += (long) r;
        }
        CHECK(bad == 0, "%ld failed lookups in threads", bad);
        printf("  %d threads x %d lookups in %.0f ms, %d table(s) mapped\n", n, iterations, now_ms() - t0,
               table_mappings());
}

/* ---------------------------------------------------------------- main */

#define LOAD(var, sym)                                                  \
        do {                                                            \
                var = dlsym(h, "_nss_mymachines_" sym);                 \
                if (!var) {                                             \
                        fprintf(stderr, "missing symbol %s\n", sym);    \
                        return 2;                                       \
                }                                                       \
        } while (0)

int main(int argc, char **argv) {
        void *h;
        static const struct { const char *name; void (*fn)(void); } tests[] = {
                { "gethostbyname4_r", test_gh4 },
                { "gethostbyname3_r/2_r/_r", test_gh3 },
                { "gethostbyaddr2_r/_r", test_reverse },
                { "passwd and group", test_records },
                { "passwd and group: what is never looked up", test_record_queries },
                { "buffer too small", test_erange },
                { "invalid names are not looked up", test_invalid_names },
                { "tables not to use: missing, dead, untrusted, malformed", test_bad_tables },
                { "records the module must not believe", test_hostile },
                { "delta sections over the base", test_layers },
                { "a daemon that stops, dies and restarts", test_liveness },
                { "threads while the table is replaced", test_replacement },
                { "fork while the table is replaced", test_fork },
                { "fork while threads swap tables in", test_fork_during_swaps },
                { "table descriptor closed behind the module's back", test_stale_fd },
                { "close-on-exec", test_cloexec },
                { "signal mask and handlers", test_signals },
                { "threads", test_threads },
        };

        if (argc == 2 && strcmp(argv[1], "--list-fds") == 0) {
                static struct fdinfo l[1024];
                int n = list_fds(l, 1024);
                for (int i = 0; i < n; i++)
                        printf("%d %s\n", l[i].fd, l[i].target);
                return n > 0 ? 0 : 1;
        }
        if (argc < 3) {
                fprintf(stderr, "usage: %s LIBRARY DIR [TEST...]\n", argv[0]);
                return 2;
        }
        dir = argv[2];
        if (!realpath(argv[0], self_path) && !realpath("/proc/self/exe", self_path)) {
                fprintf(stderr, "cannot find myself\n");
                return 2;
        }
        slow = getenv("TEST_SLOW") != NULL;
        h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                fprintf(stderr, "dlopen: %s\n", dlerror());
                return 2;
        }
        LOAD(gh4, "gethostbyname4_r");
        LOAD(gh3, "gethostbyname3_r");
        LOAD(gh2, "gethostbyname2_r");
        LOAD(gh1, "gethostbyname_r");
        LOAD(gha2, "gethostbyaddr2_r");
        LOAD(gha1, "gethostbyaddr_r");
        LOAD(pwnam, "getpwnam_r");
        LOAD(pwuid, "getpwuid_r");
        LOAD(grnam, "getgrnam_r");
        LOAD(grgid, "getgrgid_r");

        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
                bool selected = argc == 3;
                for (int a = 3; a < argc; a++)
                        if (strstr(tests[i].name, argv[a]))
                                selected = true;
                if (!selected)
                        continue;
                int before = failures;
                printf("# %s\n", tests[i].name);
                fflush(stdout);
                tests[i].fn();
                printf("%s - %s\n", failures == before ? "ok" : "not ok", tests[i].name);
                fflush(stdout);
        }
        dlclose(h);
        /* Unloaded: no table mapped any more, and the module's fork handler left with it. */
        CHECK(table_mappings() == 0, "%d table mappings after dlclose", table_mappings());
        {
                int status;
                pid_t pid = fork();
                if (pid == 0)
                        _exit(0);
                CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
                      WEXITSTATUS(status) == 0, "fork after dlclose");
        }
        printf("%d checks, %d failures\n", (int) checks, (int) failures);
        return failures ? 1 : 0;
}
