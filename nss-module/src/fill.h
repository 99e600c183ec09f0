/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Laying answers out in the caller's buffer, as glibc's NSS interface wants them. Each returns 0,
 * TABLE_NOTFOUND (nothing to give: no address of the family asked), -ERANGE (the buffer is too
 * small; the caller is asked again with a bigger one), -EBADMSG (the table holds a name that is no
 * host name, or one out of bounds) or, from the hostent ones, -EINVAL (a family other than AF_INET
 * and AF_INET6, an address length that does not fit it, no names).
 */
#ifndef MYMACHINES_FILL_H
#define MYMACHINES_FILL_H

#include <grp.h>
#include <netdb.h>
#include <nss.h>
#include <pwd.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "table.h"

/* gethostbyname4_r: every address, an IPv6 link-local one with its scope. */
int fill_addrtuples(const struct table_host *h, struct gaih_addrtuple **pat, char *buffer, size_t buflen);

/* gethostbyname3_r and older: the addresses of family af but IPv6 link-local ones (a hostent cannot
 * carry a scope, without which they are no use). */
int fill_hostent_addrs(const struct table_host *h, int af, struct hostent *he, char *buffer, size_t buflen,
                       char **canonp);

/* gethostbyaddr2_r: the names (the first as h_name, the others as aliases) and the address asked. */
int fill_hostent_names(const struct table_names *n, const void *addr, socklen_t len, int af, struct hostent *he,
                       char *buffer, size_t buflen);

/* A vu- record: name, "x", uid, gid 65534, gecos, "/", /usr/sbin/nologin. */
int fill_passwd(const char *name, uint32_t uid, const char *gecos, struct passwd *pw, char *buffer, size_t buflen);
/* A vg- record: name, "x", gid, no members. */
int fill_group(const char *name, uint32_t gid, struct group *gr, char *buffer, size_t buflen);

bool ipv6_is_link_local(const unsigned char addr[16]);

#endif
