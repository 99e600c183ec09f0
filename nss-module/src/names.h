/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Which names and IDs can be the daemon's at all (anything else is NOTFOUND at once, without a
 * look at the table), and which names read from the table may be given out.
 */
#ifndef MYMACHINES_NAMES_H
#define MYMACHINES_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest host name we look up, as machine names. */
#define HOST_NAME_MAX_QUERY 64
/* Synthesized user and group names: prefix "vu-"/"vg-", at most USER_NAME_MAX characters of
 * [A-Za-z_][A-Za-z0-9_-]* (systemd's strict rules, which the daemon follows); IDs from
 * FIRST_CONTAINER_ID on, never (uid_t) -1. */
#define USER_NAME_MAX 31
#define FIRST_CONTAINER_ID 65536

/* Machine name rules (machined's hostname_is_valid): labels of ASCII letters, digits and '-',
 * separated by single dots; no label starts or ends with '-'; no leading or trailing dot; 1..max
 * characters. `s` need not be NUL-terminated: len characters are checked. */
bool valid_hostname(const char *s, size_t len, size_t max);

bool valid_host_query(const char *name);
bool valid_user_query(const char *name);
bool valid_group_query(const char *name);
bool valid_id_query(uint32_t id);

/* Writes prefix<machine>-<id> to name; false if that is no name the daemon would synthesize
 * (valid_user_query's rules: a dot in the machine's name, too long), and then name is no answer. */
bool synthesized_name(char name[USER_NAME_MAX + 1], const char *prefix, const char *machine, size_t machine_len,
                      uint32_t id);

#endif
