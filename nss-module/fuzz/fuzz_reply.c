/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for everything the module does with the bytes of a reply:
 * the JSON reader, the Varlink envelope, the typed parsers of every method the module
 * calls, and the layout of the results in NSS buffers of several sizes (allocated at
 * exactly that size, so that AddressSanitizer sees any write past them).
 *
 *   clang -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_reply.c src/reply.c src/json.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ASSERT(x)                                                               \
        do {                                                                    \
                if (!(x)) {                                                     \
                        fprintf(stderr, "assertion failed: %s (%s:%d)\n", #x, __FILE__, __LINE__); \
                        abort();                                                \
                }                                                               \
        } while (0)

static const size_t sizes[] = { 0, 1, 9, 40, 100, 333, 4096, 65536 };

static void assert_in(const void *p, size_t n, const char *buf, size_t len) {
        ASSERT((const char *) p >= buf && (const char *) p + n <= buf + len);
}

static void assert_str_in(const char *s, const char *buf, size_t len) {
        assert_in(s, 1, buf, len);
        ASSERT(memchr(s, 0, (size_t) (buf + len - s)) != NULL);
}

/* Walks every value of a parsed document through the accessors. */
static void walk(json_val v, int depth) {
        char s[64];
        int64_t i;
        json_iter it;
        json_val k, e;
        int r;

        ASSERT(depth <= JSON_MAX_DEPTH + 1);
        switch (json_typeof(v)) {
        case JSON_OBJECT:
        case JSON_ARRAY:
                if (json_typeof(v) == JSON_OBJECT) {
                        r = json_object_get(v, "name", &e);
                        ASSERT(r == 0 || r == 1 || r == -EBADMSG);
                }
                ASSERT(json_iter_init(&it, v) == 0);
                while ((r = json_iter_next(&it, &k, &e)) > 0) {
                        if (json_typeof(v) == JSON_OBJECT) {
                                ASSERT(json_typeof(k) == JSON_STRING);
                                (void) json_string_decode(k, s, sizeof s, NULL);
                        }
                        walk(e, depth + 1);
                }
                ASSERT(r == 0); /* a validated document never breaks during iteration */
                break;
        case JSON_STRING:
                r = json_string_decode(v, s, sizeof s, NULL);
                ASSERT(r == 0 || r == -ERANGE || r == -EBADMSG);
                if (r == 0)
                        ASSERT(strlen(s) < sizeof s);
                break;
        case JSON_NUMBER:
                (void) json_get_int(v, INT64_MIN, INT64_MAX, &i);
                (void) json_get_int(v, 0, 255, &i);
                break;
        case JSON_TRUE:
        case JSON_FALSE:
        case JSON_NULL:
                break;
        default:
                ASSERT(!"invalid value in a validated document");
        }
}

static void fuzz_hostname(const char *msg, size_t len, int family) {
        /* As the entry points ask: hostent answers (family given) leave IPv6 link-local out. */
        struct host_result h = { .family = family, .no_link_local = family != AF_UNSPEC, .query = "fuzz" };
        int r = reply_handle(msg, len, parse_hostname_reply, &h);

        ASSERT(r == 0 || r == LOOKUP_NOTFOUND || r < 0);
        if (r == 0) {
                ASSERT(h.name && h.n > 0);
                for (size_t i = 0; i < h.n; i++) {
                        ASSERT(h.addrs[i].family == AF_INET || h.addrs[i].family == AF_INET6);
                        ASSERT(family == AF_UNSPEC || h.addrs[i].family == family);
                        if (h.addrs[i].scopeid)
                                ASSERT(h.addrs[i].family == AF_INET6 && ipv6_is_link_local(h.addrs[i].addr));
                        if (h.no_link_local)
                                ASSERT(!(h.addrs[i].family == AF_INET6 && ipv6_is_link_local(h.addrs[i].addr)));
                }
                for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                        char *buf = malloc(sizes[s] ? sizes[s] : 1);
                        if (family == AF_UNSPEC) {
                                struct gaih_addrtuple *pat = NULL, *t;
                                size_t n = 0;
                                r = fill_addrtuples(&h, &pat, buf, sizes[s]);
                                ASSERT(r == 0 || r == -ERANGE);
                                for (t = r == 0 ? pat : NULL; t; t = t->next, n++) {
                                        assert_in(t, sizeof *t, buf, sizes[s]);
                                        assert_str_in(t->name, buf, sizes[s]);
                                        ASSERT(strcmp(t->name, h.name) == 0);
                                }
                                ASSERT(r != 0 || n == h.n);
                        } else if (h.n > 0) {
                                struct hostent he;
                                char *canon = NULL;
                                r = fill_hostent_addrs(&h, family, &he, buf, sizes[s], &canon);
                                ASSERT(r == 0 || r == -ERANGE);
                                if (r == 0) {
                                        size_t n = 0;
                                        assert_str_in(he.h_name, buf, sizes[s]);
                                        ASSERT(canon == he.h_name);
                                        assert_in(he.h_aliases, sizeof(char *), buf, sizes[s]);
                                        ASSERT(he.h_aliases[0] == NULL);
                                        for (; he.h_addr_list[n]; n++)
                                                assert_in(he.h_addr_list[n], (size_t) he.h_length, buf, sizes[s]);
                                        ASSERT(n == h.n);
                                }
                        }
                        free(buf);
                }
        }
        host_result_free(&h);
}

static void fuzz_address(const char *msg, size_t len) {
        struct names_result nr = {0};
        static const unsigned char a6[16] = { 0xfe, 0x80, [15] = 1 };
        int r = reply_handle(msg, len, parse_address_reply, &nr);

        if (r == 0) {
                ASSERT(nr.n > 0);
                for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                        char *buf = malloc(sizes[s] ? sizes[s] : 1);
                        struct hostent he;
                        r = fill_hostent_names(&nr, a6, 16, AF_INET6, &he, buf, sizes[s]);
                        ASSERT(r == 0 || r == -ERANGE);
                        if (r == 0) {
                                size_t n = 0;
                                assert_str_in(he.h_name, buf, sizes[s]);
                                ASSERT(strcmp(he.h_name, nr.names[0]) == 0);
                                for (; he.h_aliases[n]; n++)
                                        assert_str_in(he.h_aliases[n], buf, sizes[s]);
                                ASSERT(n + 1 == nr.n);
                                assert_in(he.h_addr_list[0], 16, buf, sizes[s]);
                                ASSERT(he.h_addr_list[1] == NULL);
                        }
                        free(buf);
                }
        }
        names_result_free(&nr);
}

static void fuzz_records(const char *msg, size_t len) {
        struct user_result u = {0};
        struct group_result g = {0};
        int r;

        r = reply_handle(msg, len, parse_user_reply, &u);
        if (r == 0)
                for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                        char *buf = malloc(sizes[s] ? sizes[s] : 1);
                        struct passwd pw;
                        r = fill_passwd(&u, &pw, buf, sizes[s]);
                        ASSERT(r == 0 || r == -ERANGE);
                        if (r == 0) {
                                assert_str_in(pw.pw_name, buf, sizes[s]);
                                assert_str_in(pw.pw_passwd, buf, sizes[s]);
                                assert_str_in(pw.pw_gecos, buf, sizes[s]);
                                assert_str_in(pw.pw_dir, buf, sizes[s]);
                                assert_str_in(pw.pw_shell, buf, sizes[s]);
                                ASSERT(!strchr(pw.pw_gecos, ':') && !strchr(pw.pw_dir, ':') && !strchr(pw.pw_shell, ':'));
                        }
                        free(buf);
                }
        user_result_free(&u);

        /* the same reply, checked against a name and an ID that were asked for */
        u = (struct user_result) { .want_name = "vu-web1-0" };
        (void) reply_handle(msg, len, parse_user_reply, &u);
        user_result_free(&u);
        u = (struct user_result) { .want_uid = true, .uid_in = 100000 };
        (void) reply_handle(msg, len, parse_user_reply, &u);
        user_result_free(&u);

        r = reply_handle(msg, len, parse_group_reply, &g);
        if (r == 0)
                for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                        char *buf = malloc(sizes[s] ? sizes[s] : 1);
                        struct group gr;
                        r = fill_group(&g, &gr, buf, sizes[s]);
                        ASSERT(r == 0 || r == -ERANGE);
                        if (r == 0) {
                                assert_str_in(gr.gr_name, buf, sizes[s]);
                                assert_in(gr.gr_mem, sizeof(char *), buf, sizes[s]);
                                ASSERT(gr.gr_mem[0] == NULL);
                        }
                        free(buf);
                }
        group_result_free(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* The transport never hands over more than REPLY_MAX bytes. Copy the input so
         * that reads past its end are caught. */
        char *msg;
        json_val root;

        if (size > REPLY_MAX)
                return 0;
        msg = malloc(size ? size : 1);
        memcpy(msg, data, size);

        if (json_parse(msg, size, &root) == 0)
                walk(root, 0);

        fuzz_hostname(msg, size, AF_UNSPEC);
        fuzz_hostname(msg, size, AF_INET);
        fuzz_hostname(msg, size, AF_INET6);
        fuzz_address(msg, size);
        fuzz_records(msg, size);

        free(msg);
        return 0;
}
