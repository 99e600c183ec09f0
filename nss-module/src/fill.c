/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fill.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "names.h"

#define GID_NOBODY 65534
#define HOME "/"
#define SHELL "/usr/sbin/nologin"

bool ipv6_is_link_local(const unsigned char addr[16]) {
        return addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80;
}

/* Moves *buf forward to the next multiple of align. false if the buffer is too small. */
static bool align_buffer(char **buf, size_t *len, size_t align) {
        size_t mis = (uintptr_t) *buf % align, pad = mis ? align - mis : 0;
        if (*len < pad)
                return false;
        *buf += pad;
        *len -= pad;
        return true;
}

/* Whether address i of h is given: its family is af (AF_UNSPEC: either), and (no_link_local) it is
 * no IPv6 link-local address. */
static bool wanted(const struct table_host *h, uint32_t i, int af, bool no_link_local, int *family,
                   uint32_t *ifindex, const uint8_t **addr) {
        table_host_address(h, i, family, ifindex, addr);
        if (family_size(*family) == 0 || (af != AF_UNSPEC && *family != af))
                return false;
        return !(no_link_local && *family == AF_INET6 && ipv6_is_link_local(*addr));
}

static size_t count_wanted(const struct table_host *h, int af, bool no_link_local) {
        size_t n = 0;
        int family;
        uint32_t ifindex;
        const uint8_t *addr;

        for (uint32_t i = 0; i < h->n_addrs; i++)
                n += wanted(h, i, af, no_link_local, &family, &ifindex, &addr);
        return n;
}

static char *put_name(char *p, const char *s, size_t len) {
        memcpy(p, s, len);
        p[len] = 0;
        return p;
}

int fill_addrtuples(const struct table_host *h, struct gaih_addrtuple **pat, char *buffer, size_t buflen) {
        struct gaih_addrtuple *t;
        size_t n, need;
        char *name;
        int family;
        uint32_t ifindex;
        const uint8_t *addr;

        if (!valid_hostname(h->name, h->name_len, HOST_NAME_MAX_QUERY))
                return -EBADMSG;
        n = count_wanted(h, AF_UNSPEC, false);
        if (n == 0)
                return TABLE_NOTFOUND;
        if (!align_buffer(&buffer, &buflen, __alignof__(struct gaih_addrtuple)))
                return -ERANGE;
        need = n * sizeof(struct gaih_addrtuple) + h->name_len + 1;
        if (buflen < need)
                return -ERANGE;

        t = (struct gaih_addrtuple *) buffer;
        name = put_name(buffer + n * sizeof(struct gaih_addrtuple), h->name, h->name_len);
        for (uint32_t i = 0, j = 0; i < h->n_addrs; i++) {
                if (!wanted(h, i, AF_UNSPEC, false, &family, &ifindex, &addr))
                        continue;
                memset(&t[j], 0, sizeof t[j]);
                t[j].next = j + 1 < n ? &t[j + 1] : NULL;
                t[j].name = name;
                t[j].family = family;
                memcpy(t[j].addr, addr, family_size(family));
                /* The scope matters for IPv6 link-local addresses only. */
                t[j].scopeid = family == AF_INET6 && ipv6_is_link_local(addr) ? ifindex : 0;
                j++;
        }
        if (*pat)
                **pat = t[0];
        else
                *pat = t;
        return 0;
}

int fill_hostent_addrs(const struct table_host *h, int af, struct hostent *he, char *buffer, size_t buflen,
                       char **canonp) {
        size_t alen = family_size(af), n, need;
        char **addr_list, **aliases, *addrs, *name;
        int family;
        uint32_t ifindex;
        const uint8_t *addr;

        if (alen == 0)
                return -EINVAL;
        if (!valid_hostname(h->name, h->name_len, HOST_NAME_MAX_QUERY))
                return -EBADMSG;
        n = count_wanted(h, af, true);
        if (n == 0)
                return TABLE_NOTFOUND;
        if (!align_buffer(&buffer, &buflen, sizeof(char *)))
                return -ERANGE;
        need = (n + 2) * sizeof(char *) + n * alen + h->name_len + 1;
        if (buflen < need)
                return -ERANGE;

        addr_list = (char **) buffer;
        aliases = addr_list + n + 1;
        addrs = (char *) (aliases + 1);
        name = put_name(addrs + n * alen, h->name, h->name_len);
        aliases[0] = NULL;
        for (uint32_t i = 0, j = 0; i < h->n_addrs; i++) {
                if (!wanted(h, i, af, true, &family, &ifindex, &addr))
                        continue;
                memcpy(addrs + j * alen, addr, alen);
                addr_list[j] = addrs + j * alen;
                j++;
        }
        addr_list[n] = NULL;

        he->h_name = name;
        he->h_aliases = aliases;
        he->h_addrtype = af;
        he->h_length = (int) alen;
        he->h_addr_list = addr_list;
        if (canonp)
                *canonp = name;
        return 0;
}

int fill_hostent_names(const struct table_names *nr, const void *addr, socklen_t len, int af, struct hostent *he,
                       char *buffer, size_t buflen) {
        size_t need, strs = 0;
        char **addr_list, **aliases, *a, *p;
        const char *s;
        size_t l;
        int r;

        if (nr->count == 0 || family_size(af) != len)
                return -EINVAL;
        for (uint32_t i = 0; i < nr->count; i++) {
                r = table_name_at(nr, i, &s, &l);
                if (r < 0)
                        return r;
                if (!valid_hostname(s, l, HOST_NAME_MAX_QUERY))
                        return -EBADMSG;
                strs += l + 1;
        }
        if (!align_buffer(&buffer, &buflen, sizeof(char *)))
                return -ERANGE;
        /* address list (address, NULL), aliases (n-1 names, NULL), address, names */
        need = (2 + (size_t) nr->count) * sizeof(char *) + len + strs;
        if (buflen < need)
                return -ERANGE;

        addr_list = (char **) buffer;
        aliases = addr_list + 2;
        a = (char *) (aliases + nr->count);
        p = a + len;

        memcpy(a, addr, len);
        addr_list[0] = a;
        addr_list[1] = NULL;
        /* Again: the space the names take was known only once all were checked, and a name is not
         * written before then (a later one may be out of bounds, or no host name). */
        for (uint32_t i = 0; i < nr->count; i++) {
                (void) table_name_at(nr, i, &s, &l); /* checked above */
                if (i == 0)
                        he->h_name = put_name(p, s, l);
                else
                        aliases[i - 1] = put_name(p, s, l);
                p += l + 1;
        }
        aliases[nr->count - 1] = NULL;

        he->h_aliases = aliases;
        he->h_addrtype = af;
        he->h_length = (int) len;
        he->h_addr_list = addr_list;
        return 0;
}

/* Copies s into the buffer at *p; the caller has checked the space. */
static char *put_string(char **p, const char *s) {
        size_t l = strlen(s) + 1;
        char *r = *p;
        memcpy(r, s, l);
        *p += l;
        return r;
}

int fill_passwd(const char *name, uint32_t uid, const char *gecos, struct passwd *pw, char *buffer, size_t buflen) {
        size_t need = strlen(name) + 1 + 2 + strlen(gecos) + 1 + sizeof HOME + sizeof SHELL;
        char *p = buffer;

        if (buflen < need)
                return -ERANGE;
        pw->pw_name = put_string(&p, name);
        pw->pw_passwd = put_string(&p, "x");
        pw->pw_uid = uid;
        pw->pw_gid = GID_NOBODY;
        pw->pw_gecos = put_string(&p, gecos);
        pw->pw_dir = put_string(&p, HOME);
        pw->pw_shell = put_string(&p, SHELL);
        return 0;
}

int fill_group(const char *name, uint32_t gid, struct group *gr, char *buffer, size_t buflen) {
        size_t need;
        char **mem, *p;

        if (!align_buffer(&buffer, &buflen, sizeof(char *)))
                return -ERANGE;
        need = sizeof(char *) + strlen(name) + 1 + 2;
        if (buflen < need)
                return -ERANGE;
        mem = (char **) buffer;
        mem[0] = NULL;
        p = buffer + sizeof(char *);
        gr->gr_name = put_string(&p, name);
        gr->gr_passwd = put_string(&p, "x");
        gr->gr_gid = gid;
        gr->gr_mem = mem;
        return 0;
}
