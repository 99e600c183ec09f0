/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * C-level tests of libnss_mymachines.so.2 against test/fake_daemon.py.
 *
 *   test_nss LIBRARY SOCKET_DIR [TEST...]
 *   test_nss --list-fds      prints "FD TARGET" for each open descriptor (exec'd by the
 *                            close-on-exec test)
 *
 * The module is dlopen()ed and its entry points are called directly, the way glibc
 * calls them. TEST_THREADS / TEST_ITERATIONS size the thread test; TEST_SLOW=1 (under
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

static const char *sockdir;
static char self_path[4096]; /* this program, for the close-on-exec test */
static atomic_int failures;
static int checks;
static bool slow;

#define CHECK(cond, ...)                                                        \
        do {                                                                    \
                checks++;                                                       \
                if (!(cond)) {                                                  \
                        atomic_fetch_add(&failures, 1);                         \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
                        fprintf(stderr, __VA_ARGS__);                           \
                        fputc('\n', stderr);                                    \
                }                                                               \
        } while (0)

static void use_socket(const char *name) {
        char p[4096];
        if (name[0] == '/')
                snprintf(p, sizeof p, "%s", name);
        else
                snprintf(p, sizeof p, "%s/%s", sockdir, name);
        setenv("MYMACHINES_SOCKET", p, 1);
}

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *addr_str(int af, const void *a, char *buf) {
        return inet_ntop(af, a, buf, INET6_ADDRSTRLEN);
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

        use_socket("ok.sock");
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

        /* Canonical name from the reply; case-insensitive query. */
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

        /* A machine whose only address has a family we do not know. */
        r = call_gh4("oddfamily", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.herr == HOST_NOT_FOUND, "oddfamily: %d/%d", r.st, r.herr);

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

        use_socket("ok.sock");
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
        /* Link-local first in the reply: the rest keep their order. */
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

        use_socket("ok.sock");
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

static void test_records(void) {
        char buf[1024];
        struct passwd pw, *pwp = &pw;
        struct group gr;
        int err;
        enum nss_status st;

        use_socket("ok.sock");
        err = -1;
        errno = SENTINEL_ERRNO;
        st = pwnam("vu-web1-0", &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_SUCCESS && errno == SENTINEL_ERRNO, "pwnam: %d %d", st, err);
        if (st == NSS_STATUS_SUCCESS) {
                CHECK(strcmp(pwp->pw_name, "vu-web1-0") == 0 && strcmp(pwp->pw_passwd, "x") == 0 &&
                      pwp->pw_uid == 100000 && pwp->pw_gid == 65534 &&
                      strcmp(pwp->pw_gecos, "UID 0 of Container web1") == 0 && strcmp(pwp->pw_dir, "/") == 0 &&
                      strcmp(pwp->pw_shell, "/usr/sbin/nologin") == 0,
                      "passwd fields: %s:%s:%u:%u:%s:%s:%s", pw.pw_name, pw.pw_passwd, pw.pw_uid, pw.pw_gid,
                      pw.pw_gecos, pw.pw_dir, pw.pw_shell);
        }
        st = pwuid(101000, &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_SUCCESS && strcmp(pw.pw_name, "vu-web1-1000") == 0 && pw.pw_uid == 101000,
              "pwuid: %d", st);

        err = -1;
        errno = SENTINEL_ERRNO;
        st = pwnam("vu-nosuch-0", &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND && err == -1 && errno == SENTINEL_ERRNO, "pwnam miss: %d", st);
        st = pwuid(4242, &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "pwuid miss: %d", st);
        st = pwuid((uid_t) -1, &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "pwuid -1: %d", st);
        /* A record that is not the one asked for is nonsense. */
        st = pwnam("vu-mismatch", &pw, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_UNAVAIL && err == EBADMSG, "mismatch: %d %d", st, err);

        errno = SENTINEL_ERRNO;
        st = grnam("vg-web1-0", &gr, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_SUCCESS && errno == SENTINEL_ERRNO, "grnam: %d", st);
        if (st == NSS_STATUS_SUCCESS)
                CHECK(strcmp(gr.gr_name, "vg-web1-0") == 0 && strcmp(gr.gr_passwd, "x") == 0 &&
                      gr.gr_gid == 100000 && gr.gr_mem && gr.gr_mem[0] == NULL, "group fields");
        st = grgid(101000, &gr, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_SUCCESS && strcmp(gr.gr_name, "vg-web1-1000") == 0, "grgid: %d", st);
        st = grnam("vg-nosuch-0", &gr, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "grnam miss: %d", st);
        st = grgid(4242, &gr, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_NOTFOUND, "grgid miss: %d", st);
        st = grnam("vg-mismatch", &gr, buf, sizeof buf, &err);
        CHECK(st == NSS_STATUS_UNAVAIL && err == EBADMSG, "group mismatch: %d %d", st, err);
}

/* ---------------------------------------------------------------- buffer too small */

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
        use_socket("ok.sock");
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

        /* No daemon at all: NOTFOUND proves nothing was asked. */
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
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "64 chars are asked: %d", r.st);

        memset(longname, 'a', 257);
        longname[257] = 0;
        CHECK(pwnam(longname, &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "257-byte user");
        CHECK(grnam(longname, &gr, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "257-byte group");
        CHECK(pwnam("a:b", &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "user a:b");
        CHECK(pwnam("", &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "empty user");
        longname[256] = 0;
        CHECK(pwnam(longname, &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND, "256-byte user");
}

/* ---------------------------------------------------------------- passwd/group: never asked */

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

/* Only vu-/vg- names by the user-name rules, and IDs from 65536 on, can be records of
 * the daemon's: anything else is NOTFOUND without a question (so: even when the daemon is
 * down, and the next source in nsswitch.conf is asked). What could be a record stays
 * UNAVAIL when the daemon cannot be reached. */
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

        /* No daemon: NOTFOUND proves that nothing was asked; errno and *errnop untouched. */
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

        /* What could be a record is asked: UNAVAIL/ENOENT with no daemon. */
        for (int i = 0; maybe_user[i]; i++) {
                r = call_rec(PWNAM, maybe_user[i], 0);
                CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT && r.errno_after == SENTINEL_ERRNO,
                      "getpwnam '%s' is asked: %d %d", maybe_user[i], r.st, r.err);
        }
        r = call_rec(PWNAM, n31, 0);
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "31 characters are asked: %d %d", r.st, r.err);
        n31[1] = 'g';
        r = call_rec(GRNAM, n31, 0);
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "group, 31 characters: %d %d", r.st, r.err);
        r = call_rec(GRNAM, "vg-web1-0", 0);
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "getgrnam vg-web1-0 is asked: %d %d", r.st, r.err);
        for (size_t i = 0; i < sizeof maybe_id / sizeof maybe_id[0]; i++) {
                r = call_rec(PWUID, NULL, maybe_id[i]);
                CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "getpwuid %u is asked: %d %d",
                      maybe_id[i], r.st, r.err);
                r = call_rec(GRGID, NULL, maybe_id[i]);
                CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == ENOENT, "getgrgid %u is asked: %d %d",
                      maybe_id[i], r.st, r.err);
        }

        /* With the daemon there: 65535 would be refused by it (InvalidParameter, which is
         * UNAVAIL/EIO), but it is never asked. */
        use_socket("ok.sock");
        r = call_rec(PWUID, NULL, 65535);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1 && r.errno_after == SENTINEL_ERRNO,
              "getpwuid 65535: %d %d", r.st, r.err);
        r = call_rec(GRGID, NULL, 65535);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1, "getgrgid 65535: %d %d", r.st, r.err);
        r = call_rec(PWNAM, "alice", 0);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1, "getpwnam alice: %d %d", r.st, r.err);
        r = call_rec(PWUID, NULL, 100000);
        CHECK(r.st == NSS_STATUS_SUCCESS, "getpwuid 100000: %d %d", r.st, r.err);
        r = call_rec(GRGID, NULL, 101000);
        CHECK(r.st == NSS_STATUS_SUCCESS, "getgrgid 101000: %d %d", r.st, r.err);
        r = call_rec(PWUID, NULL, 65536);
        CHECK(r.st == NSS_STATUS_NOTFOUND && r.err == -1, "getpwuid 65536 (no such record): %d %d", r.st, r.err);
}

/* ---------------------------------------------------------------- unreachable, slow, garbage */

static void expect_unavail(const char *sock, const char *name, int want_err, double min_ms, double max_ms) {
        char buf[4096];
        struct gh4_result r;
        double t0, dt;

        use_socket(sock);
        t0 = now_ms();
        r = call_gh4(name, buf, sizeof buf);
        dt = now_ms() - t0;
        if (slow)
                max_ms += 1500;
        CHECK(r.st == NSS_STATUS_UNAVAIL && r.err == want_err && r.herr == NO_RECOVERY,
              "%s/%s: status %d err %d (%s) herr %d", sock, name, r.st, r.err, strerror(r.err), r.herr);
        CHECK(dt >= min_ms && dt <= max_ms, "%s/%s took %.1f ms, want %.0f..%.0f", sock, name, dt, min_ms, max_ms);
        printf("  %-14.30s %-20s -> UNAVAIL %-12s in %6.1f ms\n", sock, name, strerrorname_np(r.err), dt);
}

static void test_failures(void) {
        char buf[4096];
        struct gh4_result r;
        static const char *garbage[] = {
                "garbage-notjson", "garbage-truncated", "garbage-badutf8", "garbage-deep", "garbage-byte",
                "garbage-len", "garbage-float", "garbage-type", "garbage-noaddresses", "garbage-name",
                "garbage-ifindex", "garbage-array", "garbage-trailing", "garbage-continues",
                "garbage-dupkey", "garbage-nul", "garbage-errortype", NULL };
        char longpath[200];

        expect_unavail("/nonexistent/mymachines.sock", "web1", ENOENT, 0, 100);
        expect_unavail("stale.sock", "web1", ECONNREFUSED, 0, 100);
        memset(longpath, 'x', sizeof longpath - 1);
        longpath[0] = '/';
        longpath[sizeof longpath - 1] = 0;
        expect_unavail(longpath, "web1", ENAMETOOLONG, 0, 100);

        /* Never answering: the 500 ms bound. */
        expect_unavail("silent.sock", "web1", ETIMEDOUT, 490, 750);
        expect_unavail("noaccept.sock", "web1", ETIMEDOUT, 490, 750);
        expect_unavail("ok.sock", "silent", ETIMEDOUT, 490, 750);
        expect_unavail("ok.sock", "tooslow", ETIMEDOUT, 490, 750);
        /* A full listen queue is a busy daemon, not a refusal: retried until the deadline. */
        expect_unavail("full.sock", "web1", ETIMEDOUT, 490, 750);
        use_socket("ok.sock");
        r = call_gh4("slow", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS, "250 ms is within the bound: %d %d", r.st, r.err);

        /* Oversized: given up after 64 KiB, without waiting for the rest. */
        expect_unavail("ok.sock", "huge", EMSGSIZE, 0, 300);
        expect_unavail("ok.sock", "huge-nul", EMSGSIZE, 0, 300);

        for (int i = 0; garbage[i]; i++)
                expect_unavail("ok.sock", garbage[i], EBADMSG, 0, 300);
        expect_unavail("ok.sock", "othererror", EIO, 0, 300);
        expect_unavail("ok.sock", "eof", ECONNRESET, 0, 300);

        /* A peer that closes at once: an error, never SIGPIPE (which would kill us here). */
        {
                int reset = 0, other = 0;
                use_socket("slam.sock");
                for (int i = 0; i < 200; i++) {
                        r = call_gh4("web1", buf, sizeof buf);
                        if (r.st == NSS_STATUS_UNAVAIL && (r.err == ECONNRESET || r.err == EPIPE))
                                reset++;
                        else
                                other++;
                }
                CHECK(other == 0, "slam.sock: %d unexpected results", other);
                printf("  slam.sock: 200 x UNAVAIL (ECONNRESET/EPIPE), no SIGPIPE\n");
        }

        /* And the module recovers from all of it. */
        use_socket("ok.sock");
        r = call_gh4("web1", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS, "after failures: %d %d", r.st, r.err);
}

/* ---------------------------------------------------------------- connection reuse */

/* "whoami" answers with the canonical name c<connection>-p<pid of the connecting process>-n<total>. */
static bool whoami(int *conn, int *pid) {
        char buf[1024];
        struct gh4_result r = call_gh4("whoami", buf, sizeof buf);
        if (r.st != NSS_STATUS_SUCCESS)
                return false;
        return sscanf(r.pat->name, "c%d-p%d", conn, pid) == 2;
}

static void test_reuse(void) {
        char buf[1024];
        struct gh4_result r;
        int c1, p1, c2, p2, c3, p3;

        use_socket("ok.sock");
        CHECK(whoami(&c1, &p1) && whoami(&c2, &p2), "whoami");
        CHECK(c1 == c2 && p1 == getpid(), "one cached connection: c%d c%d p%d", c1, c2, p1);

        /* The daemon closes the idle connection: the next lookup notices and reconnects. */
        r = call_gh4("dropafter", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS, "dropafter %d", r.st);
        usleep(20000);
        CHECK(whoami(&c3, &p3) && c3 != c2, "reconnected after idle close: c%d c%d", c2, c3);

        /* The daemon drops the connection on the request itself: one retry, fresh. */
        r = call_gh4("closefirst", buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS && strcmp(r.pat->name, "closefirst") == 0,
              "retried on a fresh connection: %d %d", r.st, r.err);

        /* Another socket path: not the cached connection. */
        expect_unavail("stale.sock", "web1", ECONNREFUSED, 0, 100);
        use_socket("ok.sock");
        CHECK(whoami(&c1, &p1), "back to ok.sock");
}

/* ---------------------------------------------------------------- fork */

static void test_fork(void) {
        int c1, p1, c2, p2, status;
        pid_t pid;

        use_socket("ok.sock");
        CHECK(whoami(&c1, &p1) && p1 == getpid(), "parent before fork");
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
                int cc, cp, bad = 0;
                char buf[1024];
                /* The child opens its own connection and can use it repeatedly. */
                for (int i = 0; i < 20; i++) {
                        if (!whoami(&cc, &cp) || cp != getpid() || cc == c1)
                                bad++;
                        if (call_gh4("web1", buf, sizeof buf).st != NSS_STATUS_SUCCESS)
                                bad++;
                }
                _exit(bad ? 1 : 0);
        }
        CHECK(pid > 0, "fork");
        /* The parent goes on with its cached connection at the same time. */
        for (int i = 0; i < 20; i++)
                CHECK(whoami(&c2, &p2) && c2 == c1 && p2 == getpid(), "parent after fork: c%d c%d", c1, c2);
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child lookups: status %d", status);

        /* A child made by a raw clone, without fork handlers, must not use the cache either. */
        pid = (pid_t) syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) {
                int cc, cp;
                _exit(whoami(&cc, &cp) && cp == getpid() && cc != c1 ? 0 : 1);
        }
        CHECK(pid > 0, "clone");
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "raw clone child: status %d", status);
        CHECK(whoami(&c2, &p2) && c2 == c1, "parent still cached after clone: c%d c%d", c1, c2);
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

static bool fd_listed(const struct fdinfo *l, int n, int fd, const char *target) {
        for (int i = 0; i < n; i++)
                if (l[i].fd == fd && strcmp(l[i].target, target) == 0)
                        return true;
        return false;
}

/* Makes the module open a new cached connection to ok.sock and finds it: the one socket
 * descriptor that appeared. Gives the descriptor (-1 if not exactly one), its target and
 * the fake daemon's connection number. */
static int module_socket(char target[128], int *conn) {
        static struct fdinfo before[256], after[256];
        int nb, na, fd = -1, found = 0, pid;

        use_socket("stale.sock"); /* another path: the cached connection is closed */
        expect_unavail("stale.sock", "web1", ECONNREFUSED, 0, 100);
        nb = list_fds(before, 256);
        use_socket("ok.sock");
        if (!whoami(conn, &pid))
                return -1;
        na = list_fds(after, 256);
        for (int i = 0; i < na; i++)
                if (strncmp(after[i].target, "socket:", 7) == 0 &&
                    !fd_listed(before, nb, after[i].fd, after[i].target)) {
                        fd = after[i].fd;
                        memcpy(target, after[i].target, 128);
                        found++;
                }
        return found == 1 ? fd : -1;
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

/* The program closes the module's cached descriptor behind its back (close loops,
 * closefrom, close_range) and gets the number again for a file of its own: the module
 * must neither use nor close it. */
static void test_stale_fd(void) {
        char target[128], b;
        int fd, sp[2], c1, c2, p2, status;
        struct stat st;
        pid_t pid;

        /* 1. A socketpair on the number. */
        fd = module_socket(target, &c1);
        CHECK(fd >= 0, "the module's socket not found");
        if (fd < 0)
                return;
        close(fd);
        CHECK(socketpair_at(fd, sp), "socketpair on fd %d", fd);
        fstat(fd, &st);
        CHECK(whoami(&c2, &p2) && c2 != c1, "lookup on a new connection: c%d c%d", c1, c2);
        CHECK(fcntl(fd, F_GETFD) >= 0, "the module closed the program's descriptor %d", fd);
        CHECK(same_file(fd, &st), "descriptor %d is no longer the program's socketpair", fd);
        errno = 0;
        CHECK(recv(sp[1], &b, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN,
              "the module wrote into (or closed) the program's socketpair: errno %d", errno);
        CHECK(send(sp[1], "x", 1, MSG_NOSIGNAL) == 1 && recv(fd, &b, 1, MSG_DONTWAIT) == 1 && b == 'x',
              "the program's socketpair does not work any more");
        CHECK(whoami(&c1, &p2) && c1 == c2, "the new connection is cached: c%d c%d", c2, c1);
        close(sp[0]);
        close(sp[1]);

        /* 2. Something that is not a socket on the number. */
        fd = module_socket(target, &c1);
        CHECK(fd >= 0, "the module's socket not found");
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
        CHECK(whoami(&c2, &p2) && c2 != c1, "lookup with /dev/null on the old number: c%d c%d", c1, c2);
        CHECK(fcntl(fd, F_GETFD) >= 0 && same_file(fd, &st), "the module closed /dev/null on %d", fd);
        close(fd);

        /* 3. Nothing on the number. */
        fd = module_socket(target, &c1);
        close(fd);
        CHECK(whoami(&c2, &p2) && c2 != c1, "lookup after the descriptor was closed: c%d c%d", c1, c2);

        /* 4. The same, then fork(): the child's fork handler must not close the child's copy. */
        fd = module_socket(target, &c1);
        CHECK(fd >= 0, "the module's socket not found");
        if (fd < 0)
                return;
        close(fd);
        CHECK(socketpair_at(fd, sp), "socketpair on fd %d", fd);
        fstat(fd, &st);
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
                int ok = fcntl(fd, F_GETFD) >= 0 && same_file(fd, &st);
                int cc, cp;
                ok = ok && whoami(&cc, &cp) && cp == getpid() && fcntl(fd, F_GETFD) >= 0;
                _exit(ok ? 0 : 1);
        }
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child after fork: the program's descriptor %d closed or a lookup failed (status %d)", fd, status);
        CHECK(fcntl(fd, F_GETFD) >= 0 && same_file(fd, &st), "parent: descriptor %d", fd);
        close(sp[0]);
        close(sp[1]);

        /* 5. A child made without fork handlers (raw clone) inherits the parent's cached
         * connection; when it forks, its child must only forget it (it was not the
         * forking process's own), not close it. */
        fd = module_socket(target, &c1);
        CHECK(fd >= 0, "the module's socket not found");
        if (fd < 0)
                return;
        fflush(NULL);
        pid = (pid_t) syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) {
                pid_t g = fork();
                int gs;
                if (g == 0)
                        _exit(fcntl(fd, F_GETFD) >= 0 ? 0 : 1);
                _exit(g > 0 && waitpid(g, &gs, 0) == g && WIFEXITED(gs) ? WEXITSTATUS(gs) : 2);
        }
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "grandchild through a raw clone: fork handler closed a descriptor of the parent's (status %d)",
              status);
        CHECK(whoami(&c2, &p2) && c2 == c1, "parent keeps its connection: c%d c%d", c1, c2);
}

/* The module's sockets are close-on-exec: a program that does a lookup and then execs
 * (posix_spawn: no fork handlers run) leaks none of them. */
static void test_cloexec(void) {
        char target[128], out[16384];
        int fd, conn, pfd[2], status;
        size_t have = 0;
        ssize_t n;
        pid_t pid;
        posix_spawn_file_actions_t fa;
        char *argv[] = { self_path, (char *) "--list-fds", NULL };
        extern char **environ;

        fd = module_socket(target, &conn);
        CHECK(fd >= 0, "the module's socket not found");
        if (fd < 0)
                return;
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "fd %d (%s) has no FD_CLOEXEC", fd, target);

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
        CHECK(strstr(out, target) == NULL, "the module's socket %s leaked into the exec'd program:\n%s", target, out);
        printf("  fd %d (%s) is FD_CLOEXEC and absent after exec\n", fd, target);
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

                use_socket("ok.sock");
                call_gh4("web1", buf, sizeof buf);
                call_gh4("nosuchmachine", buf, sizeof buf);
                call_gh3("web1", AF_INET6, buf, sizeof buf);
                pwnam("vu-web1-0", &pw, buf, sizeof buf, &err);
                pwnam("alice", &pw, buf, sizeof buf, &err);
                call_gh4("garbage-notjson", buf, sizeof buf);
                call_gh4("eof", buf, sizeof buf);
                call_gh4("tooslow", buf, sizeof buf);  /* timed out: 500 ms */
                use_socket("slam.sock");              /* EPIPE / ECONNRESET */
                for (int i = 0; i < 50; i++)
                        call_gh4("web1", buf, sizeof buf);
                use_socket("stale.sock");
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
        use_socket("ok.sock");
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

static void test_threads(void) {
        int n = 16;
        pthread_t t[64];
        long bad = 0;
        double t0 = now_ms();

        if (getenv("TEST_THREADS"))
                n = atoi(getenv("TEST_THREADS"));
        if (n > 64)
                n = 64;
        if (getenv("TEST_ITERATIONS"))
                iterations = atoi(getenv("TEST_ITERATIONS"));
        use_socket("ok.sock");
        for (long i = 0; i < n; i++)
                CHECK(pthread_create(&t[i], NULL, thread_main, (void *) i) == 0, "pthread_create");
        for (int i = 0; i < n; i++) {
                void *r;
                pthread_join(t[i], &r);
                bad += (long) r;
        }
        CHECK(bad == 0, "%ld failed lookups in threads", bad);
        printf("  %d threads x %d lookups in %.0f ms\n", n, iterations, now_ms() - t0);
        {
                char buf[1024];
                int total;
                struct gh4_result r = call_gh4("whoami", buf, sizeof buf);
                if (r.st == NSS_STATUS_SUCCESS && sscanf(r.pat->name, "c%*d-p%*d-n%d", &total) == 1)
                        printf("  the fake daemon has accepted %d connections so far, in all runs "
                               "(threads that find the cached one busy open their own)\n", total);
        }
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
                { "passwd and group: what is never asked", test_record_queries },
                { "buffer too small", test_erange },
                { "invalid names are not asked", test_invalid_names },
                { "unreachable, slow, oversized, garbage", test_failures },
                { "connection reuse and retry", test_reuse },
                { "fork", test_fork },
                { "cached descriptor closed behind the module's back", test_stale_fd },
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
                fprintf(stderr, "usage: %s LIBRARY SOCKET_DIR [TEST...]\n", argv[0]);
                return 2;
        }
        sockdir = argv[2];
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

        /* The module's fork handler left with it: forking now must not call into it. */
        {
                int status;
                pid_t pid = fork();
                if (pid == 0)
                        _exit(0);
                CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
                      WEXITSTATUS(status) == 0, "fork after dlclose");
        }
        printf("%d checks, %d failures\n", checks, (int) failures);
        return failures ? 1 : 0;
}
