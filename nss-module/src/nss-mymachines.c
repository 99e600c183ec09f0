/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libnss_mymachines.so.2: hosts, passwd and group entries for the machines registered
 * with mymachinesd, asked over its Varlink socket (io.systemd.Resolve and
 * io.systemd.UserDatabase).
 *
 * Statuses:
 *   SUCCESS   h_errno NETDB_SUCCESS, errno as it was.
 *   NOTFOUND  the daemon says the name/address/ID is no machine's (or we know without
 *             asking: a name or ID that can never be a machine's or a synthesized
 *             record's); h_errno HOST_NOT_FOUND, errno as it was.
 *   TRYAGAIN  the buffer is too small: errno ERANGE, h_errno NETDB_INTERNAL.
 *   UNAVAIL   the daemon cannot be reached or answered nonsense, or the family is not
 *             supported: errno says why, h_errno NO_RECOVERY.
 */
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <nss.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "json.h"
#include "reply.h"
#include "varlink.h"

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

#define SERVICE "io.systemd.Machine"
#define REQUEST_MAX (NAME_MAX_QUERY * 6 + 256)

/* --- status helpers; errno is restored before *errnop is set, as errnop is usually &errno --- */

static enum nss_status host_status(int r, int saved_errno, int *errnop, int *h_errnop) {
        errno = saved_errno;
        if (r == 0) {
                *h_errnop = NETDB_SUCCESS;
                h_errno = 0;
                return NSS_STATUS_SUCCESS;
        }
        if (r == LOOKUP_NOTFOUND) {
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
        if (r == LOOKUP_NOTFOUND)
                return NSS_STATUS_NOTFOUND;
        if (r == -ERANGE) {
                *errnop = ERANGE;
                return NSS_STATUS_TRYAGAIN;
        }
        *errnop = -r;
        return NSS_STATUS_UNAVAIL;
}

/* Errors from the lookup itself never mean "buffer too small"; keep that code for the
 * buffer alone. */
static int lookup_error(int r) {
        return r == -ERANGE ? -EBADMSG : r;
}

/* --- requests --- */

static int resolve_hostname(const char *name, int family, bool no_link_local, struct host_result *h) {
        char req[REQUEST_MAX], q[NAME_MAX_QUERY * 6 + 3];
        int n;

        if (json_write_string(q, sizeof q, name) < 0)
                return LOOKUP_NOTFOUND;
        if (family == AF_UNSPEC)
                n = snprintf(req, sizeof req,
                             "{\"method\":\"io.systemd.Resolve.ResolveHostname\","
                             "\"parameters\":{\"name\":%s}}", q);
        else
                n = snprintf(req, sizeof req,
                             "{\"method\":\"io.systemd.Resolve.ResolveHostname\","
                             "\"parameters\":{\"name\":%s,\"family\":%d}}", q, family);
        if (n < 0 || (size_t) n >= sizeof req)
                return -EINVAL;
        h->family = family;
        h->no_link_local = no_link_local;
        h->query = name;
        return lookup_error(varlink_call(req, (size_t) n, parse_hostname_reply, h));
}

static int resolve_address(const unsigned char *a, size_t len, int af, struct names_result *nr) {
        char req[REQUEST_MAX];
        size_t n;
        int k;

        k = snprintf(req, sizeof req,
                     "{\"method\":\"io.systemd.Resolve.ResolveAddress\","
                     "\"parameters\":{\"family\":%d,\"address\":[", af);
        if (k < 0)
                return -EINVAL;
        n = (size_t) k;
        for (size_t i = 0; i < len; i++) {
                k = snprintf(req + n, sizeof req - n, "%s%u", i ? "," : "", (unsigned) a[i]);
                if (k < 0 || (size_t) k >= sizeof req - n)
                        return -EINVAL;
                n += (size_t) k;
        }
        k = snprintf(req + n, sizeof req - n, "]}}");
        if (k < 0 || (size_t) k >= sizeof req - n)
                return -EINVAL;
        n += (size_t) k;
        return lookup_error(varlink_call(req, n, parse_address_reply, nr));
}

/* method: GetUserRecord or GetGroupRecord; key: userName/groupName or uid/gid. */
static int get_record(const char *method, const char *key, const char *name, long long id,
                      reply_cb cb, void *result) {
        char req[REQUEST_MAX], q[NAME_MAX_QUERY * 6 + 3];
        int n;

        if (name) {
                if (json_write_string(q, sizeof q, name) < 0)
                        return LOOKUP_NOTFOUND;
                n = snprintf(req, sizeof req,
                             "{\"method\":\"io.systemd.UserDatabase.%s\","
                             "\"parameters\":{\"%s\":%s,\"service\":\"" SERVICE "\"}}",
                             method, key, q);
        } else
                n = snprintf(req, sizeof req,
                             "{\"method\":\"io.systemd.UserDatabase.%s\","
                             "\"parameters\":{\"%s\":%lld,\"service\":\"" SERVICE "\"}}",
                             method, key, id);
        if (n < 0 || (size_t) n >= sizeof req)
                return -EINVAL;
        return lookup_error(varlink_call(req, (size_t) n, cb, result));
}

/* --- hosts --- */

enum nss_status _nss_mymachines_gethostbyname4_r(
                const char *name,
                struct gaih_addrtuple **pat,
                char *buffer, size_t buflen,
                int *errnop, int *h_errnop,
                int32_t *ttlp) {

        int saved_errno = errno, r;
        struct host_result h = {0};

        if (!valid_host_query(name))
                return host_status(LOOKUP_NOTFOUND, saved_errno, errnop, h_errnop);

        r = resolve_hostname(name, AF_UNSPEC, false, &h);
        if (r == 0) {
                r = fill_addrtuples(&h, pat, buffer, buflen);
                if (r == 0 && ttlp)
                        *ttlp = 0;
        }
        host_result_free(&h);
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
        struct host_result h = {0};

        if (af == AF_UNSPEC)
                af = AF_INET;
        if (af != AF_INET && af != AF_INET6)
                return host_status(-EAFNOSUPPORT, saved_errno, errnop, h_errnop);
        if (!valid_host_query(name))
                return host_status(LOOKUP_NOTFOUND, saved_errno, errnop, h_errnop);

        /* A hostent has no room for a scope, without which a link-local address is no use
         * (connect() fails with EINVAL): those are given by gethostbyname4_r only. */
        r = resolve_hostname(name, af, true, &h);
        if (r == 0) {
                r = fill_hostent_addrs(&h, af, result, buffer, buflen, canonp);
                if (r == 0 && ttlp)
                        *ttlp = 0;
        }
        host_result_free(&h);
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
        struct names_result nr = {0};

        if (af != AF_INET && af != AF_INET6)
                return host_status(-EAFNOSUPPORT, saved_errno, errnop, h_errnop);
        if (!addr || len != (af == AF_INET ? 4 : 16))
                return host_status(-EINVAL, saved_errno, errnop, h_errnop);

        r = resolve_address(addr, len, af, &nr);
        if (r == 0) {
                r = fill_hostent_names(&nr, addr, len, af, result, buffer, buflen);
                if (r == 0 && ttlp)
                        *ttlp = 0;
        }
        names_result_free(&nr);
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

enum nss_status _nss_mymachines_getpwnam_r(
                const char *name,
                struct passwd *pwd,
                char *buffer, size_t buflen,
                int *errnop) {

        int saved_errno = errno, r;
        struct user_result u = { .want_name = name };

        if (!valid_user_query(name))
                return record_status(LOOKUP_NOTFOUND, saved_errno, errnop);
        r = get_record("GetUserRecord", "userName", name, 0, parse_user_reply, &u);
        if (r == 0)
                r = fill_passwd(&u, pwd, buffer, buflen);
        user_result_free(&u);
        return record_status(r, saved_errno, errnop);
}

enum nss_status _nss_mymachines_getpwuid_r(
                uid_t uid,
                struct passwd *pwd,
                char *buffer, size_t buflen,
                int *errnop) {

        int saved_errno = errno, r;
        struct user_result u = { .want_uid = true, .uid_in = uid };

        if (!valid_id_query(uid))
                return record_status(LOOKUP_NOTFOUND, saved_errno, errnop);
        r = get_record("GetUserRecord", "uid", NULL, (long long) uid, parse_user_reply, &u);
        if (r == 0)
                r = fill_passwd(&u, pwd, buffer, buflen);
        user_result_free(&u);
        return record_status(r, saved_errno, errnop);
}

enum nss_status _nss_mymachines_getgrnam_r(
                const char *name,
                struct group *gr,
                char *buffer, size_t buflen,
                int *errnop) {

        int saved_errno = errno, r;
        struct group_result g = { .want_name = name };

        if (!valid_group_query(name))
                return record_status(LOOKUP_NOTFOUND, saved_errno, errnop);
        r = get_record("GetGroupRecord", "groupName", name, 0, parse_group_reply, &g);
        if (r == 0)
                r = fill_group(&g, gr, buffer, buflen);
        group_result_free(&g);
        return record_status(r, saved_errno, errnop);
}

enum nss_status _nss_mymachines_getgrgid_r(
                gid_t gid,
                struct group *gr,
                char *buffer, size_t buflen,
                int *errnop) {

        int saved_errno = errno, r;
        struct group_result g = { .want_gid = true, .gid_in = gid };

        if (!valid_id_query(gid))
                return record_status(LOOKUP_NOTFOUND, saved_errno, errnop);
        r = get_record("GetGroupRecord", "gid", NULL, (long long) gid, parse_group_reply, &g);
        if (r == 0)
                r = fill_group(&g, gr, buffer, buflen);
        group_result_free(&g);
        return record_status(r, saved_errno, errnop);
}
