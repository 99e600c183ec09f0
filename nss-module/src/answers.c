/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "answers.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fill.h"
#include "names.h"

int answer_host(const struct table_view *v, void *userdata) {
        struct host_query *q = userdata;
        struct table_host h;
        int r = table_find_host(v, q->name, &h);

        if (r != 0)
                return r;
        if (q->pat)
                return fill_addrtuples(&h, q->pat, q->buffer, q->buflen);
        return fill_hostent_addrs(&h, q->af, q->he, q->buffer, q->buflen, q->canonp);
}

int answer_address(const struct table_view *v, void *userdata) {
        struct address_query *q = userdata;
        struct table_names n;
        int r = table_find_address(v, q->af, q->addr, &n);

        if (r != 0)
                return r;
        return fill_hostent_names(&n, q->addr, q->len, q->af, q->he, q->buffer, q->buflen);
}

/* vu-<machine>-<id>: the machine's name and the ID (canonical decimal, as the daemon writes it). */
static bool parse_record_name(const char *name, const char **machine, size_t *len, uint32_t *id) {
        const char *rest = name + 3, *dash = strrchr(rest, '-'), *digits;
        uint64_t v = 0;

        if (!dash || dash == rest)
                return false;
        digits = dash + 1;
        if (*digits == 0 || strlen(digits) > 10 || (digits[0] == '0' && digits[1] != 0))
                return false;
        for (const char *d = digits; *d; d++) {
                if (*d < '0' || *d > '9')
                        return false;
                v = v * 10 + (uint64_t) (*d - '0');
        }
        if (v > UINT32_MAX)
                return false;
        *machine = rest;
        *len = (size_t) (dash - rest);
        *id = (uint32_t) v;
        return true;
}

int answer_record(const struct table_view *v, void *userdata) {
        struct record_query *q = userdata;
        const char *prefix = q->kind ? "vg-" : "vu-";
        struct table_id hit;
        uint32_t id = q->id;
        char name[USER_NAME_MAX + 1], gecos[128];
        int r;

        if (q->name) {
                const char *machine;
                size_t len;
                uint32_t inner;

                if (!parse_record_name(q->name, &machine, &len, &inner))
                        return TABLE_NOTFOUND;
                r = table_map_inner(v, q->kind, machine, len, inner, &id);
                if (r != 0)
                        return r;
                if (!valid_id_query(id))
                        return TABLE_NOTFOUND;
                /* Only what the other direction gives back: an ID that this machine owns. */
                r = table_find_id(v, q->kind, id, &hit);
                if (r != 0)
                        return r;
                if (hit.machine_len != len || memcmp(hit.machine, machine, len) != 0 || hit.inner != inner)
                        return TABLE_NOTFOUND;
        } else {
                r = table_find_id(v, q->kind, id, &hit);
                if (r != 0)
                        return r;
        }
        /* Names the daemon would not synthesize (a dot in the machine's name, too long) are none. */
        if (!synthesized_name(name, prefix, hit.machine, hit.machine_len, hit.inner))
                return TABLE_NOTFOUND;
        if (q->kind)
                return fill_group(name, id, q->gr, q->buffer, q->buflen);
        snprintf(gecos, sizeof gecos, "UID %u of Container %.*s", hit.inner, (int) hit.machine_len, hit.machine);
        return fill_passwd(name, id, gecos, q->pw, q->buffer, q->buflen);
}
