/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "names.h"

#include <stdio.h>
#include <string.h>

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool valid_hostname(const char *s, size_t n, size_t max) {
        bool dot = true, hyphen = true; /* "at the start of a label" */

        if (!s || n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '.') {
                        if (dot || hyphen)
                                return false;
                        dot = true;
                        hyphen = false;
                } else if (c == '-') {
                        if (dot)
                                return false;
                        dot = false;
                        hyphen = true;
                } else if (is_alnum(c)) {
                        dot = hyphen = false;
                } else
                        return false;
        }
        return !dot && !hyphen;
}

bool valid_host_query(const char *name) {
        return name && valid_hostname(name, strnlen(name, HOST_NAME_MAX_QUERY + 1), HOST_NAME_MAX_QUERY);
}

static bool valid_synthesized_name(const char *s, const char *prefix) {
        size_t n, pl = strlen(prefix);

        if (!s)
                return false;
        n = strnlen(s, USER_NAME_MAX + 1);
        if (n > USER_NAME_MAX || n <= pl || strncmp(s, prefix, pl) != 0)
                return false;
        for (size_t i = pl; i < n; i++) /* the prefix starts with a letter, as it must */
                if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '-')
                        return false;
        return true;
}

bool valid_user_query(const char *name) {
        return valid_synthesized_name(name, "vu-");
}

bool valid_group_query(const char *name) {
        return valid_synthesized_name(name, "vg-");
}

/* Host IDs below 65536 are the host's own range; (uid_t) -1 is no ID at all. */
bool valid_id_query(uint32_t id) {
        return id >= FIRST_CONTAINER_ID && id != UINT32_MAX;
}

bool synthesized_name(char name[USER_NAME_MAX + 1], const char *prefix, const char *machine, size_t machine_len,
                      uint32_t id) {
        int n;

        if (machine_len > USER_NAME_MAX || !valid_hostname(machine, machine_len, HOST_NAME_MAX_QUERY))
                return false;
        n = snprintf(name, USER_NAME_MAX + 1, "%s%.*s-%u", prefix, (int) machine_len, machine, id);
        return n > 0 && (size_t) n <= USER_NAME_MAX && valid_synthesized_name(name, prefix);
}
