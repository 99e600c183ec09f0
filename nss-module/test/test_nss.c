/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * C-level tests of libnss_mymachines.so.2 against test/fake_daemon.py.
 *
 *   test_nss LIBRARY SOCKET_DIR
 *
 * The module is dlopen()ed and its entry points are called directly, the way glibc
 * calls them. TEST_THREADS / TEST_ITERATIONS size the thread test; TEST_SLOW=1 (under
 * valgrind) widens the timing bounds.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
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

        r = call_gh3("Web1", AF_INET6, buf, sizeof buf);
        CHECK(r.st == NSS_STATUS_SUCCESS, "v6 status %d err %d", r.st, r.err);
        if (r.st == NSS_STATUS_SUCCESS) {
                CHECK(strcmp(r.he.h_name, "web1") == 0, "canonical %s", r.he.h_name);
                CHECK(r.he.h_addrtype == AF_INET6 && r.he.h_length == 16, "type");
                CHECK(count_list(r.he.h_addr_list) == 2, "count");
                CHECK(strcmp(addr_str(AF_INET6, r.he.h_addr_list[0], s), "fd00::1") == 0, "a0 %s", s);
                CHECK(strcmp(addr_str(AF_INET6, r.he.h_addr_list[1], s), "fe80::1") == 0, "a1 %s", s);
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
        CHECK(st == NSS_STATUS_SUCCESS && he.h_addrtype == AF_INET6 && count_list(he.h_addr_list) == 2,
              "gh2: %d", st);
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
        CHECK(pwnam(longname, &pw, buf, sizeof buf, &err) == NSS_STATUS_UNAVAIL, "256-byte user is asked");
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
                { "buffer too small", test_erange },
                { "invalid names are not asked", test_invalid_names },
                { "unreachable, slow, oversized, garbage", test_failures },
                { "connection reuse and retry", test_reuse },
                { "fork", test_fork },
                { "threads", test_threads },
        };

        if (argc < 3) {
                fprintf(stderr, "usage: %s LIBRARY SOCKET_DIR [TEST...]\n", argv[0]);
                return 2;
        }
        sockdir = argv[2];
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
