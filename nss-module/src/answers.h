/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * From a table view to the filled NSS structures: one lookup of each kind, no I/O (mapping.c runs
 * them over the current table; the fuzz target over any bytes). Each returns 0, TABLE_NOTFOUND,
 * -ERANGE (buffer too small) or another negative errno.
 */
#ifndef MYMACHINES_ANSWERS_H
#define MYMACHINES_ANSWERS_H

#include <grp.h>
#include <netdb.h>
#include <nss.h>
#include <pwd.h>
#include <stdint.h>
#include <sys/socket.h>

#include "table.h"

/* By name: gethostbyname4_r when pat is set, else a hostent of family af (AF_INET, AF_INET6). */
struct host_query {
        const char *name;
        int af; /* gethostbyname3_r: AF_INET or AF_INET6 */
        struct gaih_addrtuple **pat; /* gethostbyname4_r */
        struct hostent *he;
        char *buffer;
        size_t buflen;
        char **canonp;
};
int answer_host(const struct table_view *v, void *host_query);

/* By address: a hostent with the names. */
struct address_query {
        const void *addr;
        socklen_t len;
        int af;
        struct hostent *he;
        char *buffer;
        size_t buflen;
};
int answer_address(const struct table_view *v, void *address_query);

/* The records are the daemon's (userdb), derived here from the ID ranges in the table: every field
 * but the name and the ID is fixed, and the ID is one of a running container's own, at or above
 * 65536, whatever the table says. */
struct record_query {
        int kind; /* 0 user, 1 group */
        const char *name; /* by name, else by id */
        uint32_t id;
        struct passwd *pw;
        struct group *gr;
        char *buffer;
        size_t buflen;
};
int answer_record(const struct table_view *v, void *record_query);

#endif
