/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libnss_mymachines.so.2: hosts, passwd and group entries for the machines registered with
 * mymachinesd, answered from the lookup table that the daemon publishes (mapping.c, table.c).
 *
 * Statuses:
 *   SUCCESS   h_errno NETDB_SUCCESS, errno as it was.
 *   NOTFOUND  the table has no such name/address/ID (or we know without looking: a name or ID
 *             that can never be a machine's or a synthesized record's); h_errno HOST_NOT_FOUND,
 *             errno as it was.
 *   TRYAGAIN  the buffer is too small: errno ERANGE, h_errno NETDB_INTERNAL.
 *   UNAVAIL   no table, no running daemon behind it, a table that is not to be trusted or read, or a
 *             family that is not supported: errno says why, h_errno NO_RECOVERY.
 */
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <nss.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "answers.h"
#include "mapping.h"
#include "names.h"
#include "table.h"

#define EXPORT __attribute__((visibility("default")))

/* Declared with glibc's own types, so that the compiler checks the signatures. */
extern nss_gethostbyname4_r _nss_mymachines_gethostbyname4_r EXPORT;
extern nss_gethostbyname3_r _nss_mymachines_gethostbyname3_r EXPORT;
extern nss_gethostbyname2_r _nss_mymachines_gethostbyname2_r EXPORT;
extern nss_gethostbyname_r _nss_mymachines_gethostbyname_r EXPORT;
extern nss_gethostbyaddr2_r _nss_mymachines_gethostbyaddr2_r EXPORT;
extern nss_gethostbyaddr_r _nss_mymachines_gethostbyaddr_r EXPORT;
extern nss_getpwnam_r _nss_mymachines_getpwnam_r EXPORT;
extern nss_getpwuid_r _nss_mymachines_getpwuid_r EXPORT;
extern nss_getgrnam_r _nss_mymachines_getgrnam_r EXPORT;
extern nss_getgrgid_r _nss_mymachines_getgrgid_r EXPORT;

/* --- status helpers; errno is restored before *errnop is set, as errnop is usually &errno --- */

static enum nss_status host_status(int r, int saved_errno, int *errnop, int *h_errnop) {
        errno = saved_errno;
        if (r == 0) {
                *h_errnop = NETDB_SUCCESS;
                h_errno = 0;
                return NSS_STATUS_SUCCESS;
        }
        if (r == TABLE_NOTFOUND) {
                *h_errnop = HOST_NOT_FOUND;
                return NSS_STATUS_NOTFOUND;
        }
        if (r == -ERANGE) {
                *errnop = ERANGE;
                *h_errnop = NETDB_INTERNAL;
                return NSS_STATUS_TRYAGAIN;
        }
        *errnop = -r;
        *h_errnop = NO_RECOVERY;
        return NSS_STATUS_UNAVAIL;
}

static enum nss_status record_status(int r, int saved_errno, int *errnop) {
        errno = saved_errno;
        if (r == 0)
                return NSS_STATUS_SUCCESS;
        if (r == TABLE_NOTFOUND)
                return NSS_STATUS_NOTFOUND;
        if (r == -ERANGE) {
                *errnop = ERANGE;
                return NSS_STATUS_TRYAGAIN;
        }
        *errnop = -r;
        return NSS_STATUS_UNAVAIL;
}

/* --- hosts --- */

enum nss_status _nss_mymachines_gethostbyname4_r(
                const char *name,
                struct gaih_addrtuple **pat,
                char *buffer, size_t buflen,
                int *errnop, int *h_errnop,
                int32_t *ttlp) {

        int saved_errno = errno, r;
        struct host_query q = { .name = name, .pat = pat, .buffer = buffer, .buflen = buflen };

        if (!valid_host_query(name))
                return host_status(TABLE_NOTFOUND, saved_errno, errnop, h_errnop);
        r = with_table(answer_host, &q);
        if (r == 0 && ttlp)
                *ttlp = 0;
        return host_status(r, saved_errno, errnop, h_errnop);
}

enum nss_status _nss_mymachines_gethostbyname3_r(
                const char *name,
                int af,
                struct hostent *result,
                char *buffer, size_t buflen,
                int *errnop, int *h_errnop,
                int32_t *ttlp,
                char **canonp) {

        int saved_errno = errno, r;
        struct host_query q = { .name = name, .he = result, .buffer = buffer, .buflen = buflen, .canonp = canonp };

        if (af == AF_UNSPEC)
                af = AF_INET;
        if (af != AF_INET && af != AF_INET6)
                return host_status(-EAFNOSUPPORT, saved_errno, errnop, h_errnop);
        if (!valid_host_query(name))
                return host_status(TABLE_NOTFOUND, saved_errno, errnop, h_errnop);
        /* A hostent has no room for a scope, without which a link-local address is no use
         * (connect() fails with EINVAL): those are given by gethostbyname4_r only. */
        q.af = af;
        r = with_table(answer_host, &q);
        if (r == 0 && ttlp)
                *ttlp = 0;
        return host_status(r, saved_errno, errnop, h_errnop);
}

enum nss_status _nss_mymachines_gethostbyname2_r(
                const char *name,
                int af,
                struct hostent *host,
                char *buffer, size_t buflen,
                int *errnop, int *h_errnop) {

        return _nss_mymachines_gethostbyname3_r(name, af, host, buffer, buflen,
                                                errnop, h_errnop, NULL, NULL);
}

enum nss_status _nss_mymachines_gethostbyname_r(
                const char *name,
                struct hostent *host,
                char *buffer, size_t buflen,
                int *errnop, int *h_errnop) {

        /* RES_USE_INET6 is deprecated and ignored by glibc's own lookups: IPv4 only. */
        return _nss_mymachines_gethostbyname3_r(name, AF_INET, host, buffer, buflen,
                                                errnop, h_errnop, NULL, NULL);
}

enum nss_status _nss_mymachines_gethostbyaddr2_r(
                const void *addr, socklen_t len,
                int af,
                struct hostent *result,
                char *buffer, size_t buflen,
                int *errnop, int *h_errnop,
                int32_t *ttlp) {

        int saved_errno = errno, r;
        struct address_query q = { .addr = addr, .len = len, .af = af, .he = result, .buffer = buffer, .buflen = buflen };

        if (af != AF_INET && af != AF_INET6)
                return host_status(-EAFNOSUPPORT, saved_errno, errnop, h_errnop);
        if (!addr || len != (af == AF_INET ? 4 : 16))
                return host_status(-EINVAL, saved_errno, errnop, h_errnop);
        r = with_table(answer_address, &q);
        if (r == 0 && ttlp)
                *ttlp = 0;
        return host_status(r, saved_errno, errnop, h_errnop);
}

enum nss_status _nss_mymachines_gethostbyaddr_r(
                const void *addr, socklen_t len,
                int af,
                struct hostent *host,
                char *buffer, size_t buflen,
                int *errnop, int *h_errnop) {

        return _nss_mymachines_gethostbyaddr2_r(addr, len, af, host, buffer, buflen,
                                                errnop, h_errnop, NULL);
}

/* --- passwd and group --- */

static enum nss_status lookup_record(struct record_query *q, int *errnop) {
        int saved_errno = errno;
        bool asked = q->name ? (q->kind ? valid_group_query(q->name) : valid_user_query(q->name)) : valid_id_query(q->id);

        if (!asked)
                return record_status(TABLE_NOTFOUND, saved_errno, errnop);
        return record_status(with_table(answer_record, q), saved_errno, errnop);
}

enum nss_status _nss_mymachines_getpwnam_r(
                const char *name,
                struct passwd *pwd,
                char *buffer, size_t buflen,
                int *errnop) {

        struct record_query q = { .kind = 0, .name = name, .pw = pwd, .buffer = buffer, .buflen = buflen };
        return lookup_record(&q, errnop);
}

enum nss_status _nss_mymachines_getpwuid_r(
                uid_t uid,
                struct passwd *pwd,
                char *buffer, size_t buflen,
                int *errnop) {

        struct record_query q = { .kind = 0, .id = uid, .pw = pwd, .buffer = buffer, .buflen = buflen };
        return lookup_record(&q, errnop);
}

enum nss_status _nss_mymachines_getgrnam_r(
                const char *name,
                struct group *gr,
                char *buffer, size_t buflen,
                int *errnop) {

        struct record_query q = { .kind = 1, .name = name, .gr = gr, .buffer = buffer, .buflen = buflen };
        return lookup_record(&q, errnop);
}

enum nss_status _nss_mymachines_getgrgid_r(
                gid_t gid,
                struct group *gr,
                char *buffer, size_t buflen,
                int *errnop) {

        struct record_query q = { .kind = 1, .id = gid, .gr = gr, .buffer = buffer, .buflen = buflen };
        return lookup_record(&q, errnop);
}
