/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the table reader (src/table.c) and the answers laid out from it
 * (src/answers.c, src/fill.c): the input is a table file, as the module would map it. Every kind
 * of lookup runs over it, for fixed names, addresses and IDs and for some taken from the input,
 * into buffers of several sizes. AddressSanitizer catches any read outside the input (copied into
 * a buffer of exactly its size) or the answer buffers.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "answers.h"
#include "table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void lookups(const struct table_view *v, const uint8_t *data, size_t size) {
        static const char *const hosts[] = { "web1", "WEB1", "v4only", "v6only", "llonly", "many", "gone1", "new1", "x0" };
        static const char *const users[] = { "vu-web1-0", "vu-web1-65535", "vu-c1-5", "vu-big-999999", "vu-foo.bar-0" };
        static const char *const groups[] = { "vg-web1-0", "vg-c2-0" };
        static const size_t sizes[] = { 0, 7, 64, 200, 4096 };
        uint32_t ids[] = { 65536, 100000, 101000, 165535, 220005, 4294900005u, 0 };
        uint8_t a4[4] = { 10, 0, 0, 1 }, a6[16] = { 0xfd, 0, [15] = 1 };
        char *buf = malloc(4096);

        if (!buf)
                return;
        if (size >= 4)
                memcpy(&ids[6], data + size - 4, 4);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
                        struct gaih_addrtuple *pat = NULL;
                        struct hostent he;
                        char *canon;
                        struct host_query q4 = { .name = hosts[i], .pat = &pat, .buffer = buf, .buflen = sizes[s] };
                        struct host_query q = { .name = hosts[i], .he = &he, .buffer = buf, .buflen = sizes[s], .canonp = &canon };

                        answer_host(v, &q4);
                        q.af = AF_INET;
                        answer_host(v, &q);
                        q.af = AF_INET6;
                        answer_host(v, &q);
                }
                for (int k = 0; k < 2; k++) {
                        struct hostent he;
                        struct address_query q4 = { .addr = a4, .len = 4, .af = AF_INET, .he = &he, .buffer = buf, .buflen = sizes[s] };
                        struct address_query q6 = { .addr = a6, .len = 16, .af = AF_INET6, .he = &he, .buffer = buf, .buflen = sizes[s] };
                        answer_address(v, &q4);
                        answer_address(v, &q6);
                        /* Then addresses the input holds, wherever they are. */
                        if (size >= 20) {
                                memcpy(a4, data + size / 3, 4);
                                memcpy(a6, data + size / 2 - 10, 16);
                        }
                }
                for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
                        struct passwd pw;
                        struct group gr;
                        struct record_query u = { .kind = 0, .id = ids[i], .pw = &pw, .buffer = buf, .buflen = sizes[s] };
                        struct record_query g = { .kind = 1, .id = ids[i], .gr = &gr, .buffer = buf, .buflen = sizes[s] };
                        answer_record(v, &u);
                        answer_record(v, &g);
                }
                for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
                        struct passwd pw;
                        struct record_query u = { .kind = 0, .name = users[i], .pw = &pw, .buffer = buf, .buflen = sizes[s] };
                        answer_record(v, &u);
                }
                for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
                        struct group gr;
                        struct record_query g = { .kind = 1, .name = groups[i], .gr = &gr, .buffer = buf, .buflen = sizes[s] };
                        answer_record(v, &g);
                }
        }
        free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct table_view v;
        /* 8-aligned, as a mapping is (the header's words are read atomically), and exactly size bytes. */
        uint8_t *copy = aligned_alloc(8, (size + 7) & ~(size_t) 7);

        if (!copy)
                return 0;
        memcpy(copy, data, size);
        if (table_check_header(copy, size) == 0) {
                (void) table_superseded(copy);
                if (table_get_view(copy, size, &v) == 0)
                        lookups(&v, data, size);
        }
        free(copy);
        return 0;
}
