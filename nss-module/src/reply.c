/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "reply.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define UID_INVALID_MAX 4294967294LL /* (uid_t) -1 is never a valid ID */
#define DEFAULT_HOME "/"
#define DEFAULT_SHELL "/usr/sbin/nologin"

static const char empty_object[] = "{}";

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Host name rules of machined (hostname_is_valid): labels of ASCII letters, digits and
 * '-', separated by single dots; no label starts or ends with '-'; no leading or
 * trailing dot. */
static bool valid_hostname(const char *s, size_t max) {
        size_t n;
        bool dot = true, hyphen = true; /* "at the start of a label" */

        if (!s)
                return false;
        n = strnlen(s, max + 1);
        if (n == 0 || n > max)
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
        return valid_hostname(name, HOST_NAME_MAX_QUERY);
}

/* A user or group name in a reply to a lookup by ID: [A-Za-z0-9_.-], not starting with '-'
 * or '.', at most NAME_MAX_QUERY bytes. (A reply to a lookup by name must carry that name.) */
bool valid_record_name(const char *s) {
        size_t n;

        if (!s)
                return false;
        n = strnlen(s, NAME_MAX_QUERY + 1);
        if (n == 0 || n > NAME_MAX_QUERY)
                return false;
        if (s[0] == '-' || s[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
                        return false;
        return true;
}

/* The daemon synthesizes prefix<machine>-<id> only where it makes a valid user name by
 * systemd's strict rules (valid_user_group_name): [A-Za-z_][A-Za-z0-9_-]*, at most 31
 * characters. Nothing else can be one of its records. */
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

static int classify_error(const char *error) {
        static const char *const notfound[] = {
                "io.systemd.Resolve.DNSError",
                "io.systemd.Resolve.NoSuchResourceRecord",
                "io.systemd.UserDatabase.NoRecordFound",
                "io.systemd.UserDatabase.ConflictingRecordFound",
        };
        for (size_t i = 0; i < sizeof notfound / sizeof notfound[0]; i++)
                if (strcmp(error, notfound[i]) == 0)
                        return LOOKUP_NOTFOUND;
        return -EIO;
}

int reply_handle(const char *msg, size_t len, reply_cb cb, void *userdata) {
        json_val root, params = { empty_object, 2 }, v;
        char error[256];
        int r;

        if (!msg || len == 0 || memchr(msg, 0, len))
                return -EBADMSG;
        if (json_parse(msg, len, &root) < 0 || json_typeof(root) != JSON_OBJECT)
                return -EBADMSG;

        /* We never ask with "more", so a reply that says more follows is a protocol error. */
        r = json_object_get(root, "continues", &v);
        if (r < 0)
                return r;
        if (r > 0 && json_typeof(v) != JSON_FALSE)
                return -EBADMSG;

        r = json_object_get(root, "parameters", &v);
        if (r < 0)
                return r;
        if (r > 0) {
                if (json_typeof(v) == JSON_OBJECT)
                        params = v;
                else if (json_typeof(v) != JSON_NULL)
                        return -EBADMSG;
        }

        r = json_object_get(root, "error", &v);
        if (r < 0)
                return r;
        if (r > 0) {
                if (json_string_decode(v, error, sizeof error, NULL) < 0)
                        return -EBADMSG;
                return classify_error(error);
        }

        return cb(params, userdata);
}

/* Reads an optional member: 0 absent (or null), 1 present, <0 error. */
static int get_optional(json_val obj, const char *key, json_val *out) {
        int r = json_object_get(obj, key, out);
        if (r > 0 && json_typeof(*out) == JSON_NULL)
                return 0;
        return r;
}

static int dup_string(json_val v, size_t max, char **out) {
        char *buf;
        int r;

        if (json_typeof(v) != JSON_STRING)
                return -EBADMSG;
        if (v.n > 6 * max + 2) /* cannot decode to <= max bytes anyway */
                return -EBADMSG;
        buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        r = json_string_decode(v, buf, max + 1, NULL);
        if (r < 0) {
                free(buf);
                return -EBADMSG;
        }
        *out = buf;
        return 0;
}

static int dup_hostname(json_val v, char **out) {
        char *s;
        int r = dup_string(v, HOST_NAME_MAX_REPLY, &s);
        if (r < 0)
                return r;
        if (!valid_hostname(s, HOST_NAME_MAX_REPLY)) {
                free(s);
                return -EBADMSG;
        }
        *out = s;
        return 0;
}

static int count_elements(json_val arr, size_t *n) {
        json_iter it;
        int r;

        *n = 0;
        if (json_typeof(arr) != JSON_ARRAY)
                return -EBADMSG;
        r = json_iter_init(&it, arr);
        if (r < 0)
                return r;
        while ((r = json_iter_next(&it, NULL, NULL)) > 0)
                (*n)++;
        return r;
}

bool ipv6_is_link_local(const unsigned char addr[16]) {
        return addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80;
}

void host_result_free(struct host_result *h) {
        free(h->name);
        h->name = NULL;
        free(h->addrs);
        h->addrs = NULL;
        h->n = 0;
}

static int parse_one_address(json_val e, int want, bool no_link_local, struct host_addr *out) {
        json_val v, b;
        json_iter it;
        int64_t family, ifindex = 0, byte;
        size_t alen, i = 0;
        int r;

        if (json_typeof(e) != JSON_OBJECT)
                return -EBADMSG;
        if (json_object_get(e, "family", &v) != 1 || json_get_int(v, INT32_MIN, INT32_MAX, &family) < 0)
                return -EBADMSG;
        if (family != AF_INET && family != AF_INET6)
                return 0; /* a family we do not know: skip it */
        alen = family == AF_INET ? 4 : 16;

        r = get_optional(e, "ifindex", &v);
        if (r < 0)
                return r;
        if (r > 0 && json_get_int(v, 0, INT32_MAX, &ifindex) < 0)
                return -EBADMSG;

        if (json_object_get(e, "address", &v) != 1 || json_iter_init(&it, v) < 0 || json_typeof(v) != JSON_ARRAY)
                return -EBADMSG;
        memset(out, 0, sizeof *out);
        while ((r = json_iter_next(&it, NULL, &b)) > 0) {
                if (i >= alen || json_get_int(b, 0, 255, &byte) < 0)
                        return -EBADMSG;
                out->addr[i++] = (unsigned char) byte;
        }
        if (r < 0 || i != alen)
                return -EBADMSG;

        if (want != AF_UNSPEC && family != want)
                return 0;
        out->family = (int) family;
        /* The scope matters (and is sent) for IPv6 link-local addresses only. */
        if (family == AF_INET6 && ipv6_is_link_local(out->addr)) {
                if (no_link_local)
                        return 0;
                out->scopeid = (uint32_t) ifindex;
        }
        return 1;
}

int parse_hostname_reply(json_val params, void *userdata) {
        struct host_result *h = userdata;
        json_val addrs, e, v;
        json_iter it;
        size_t total;
        int r;

        host_result_free(h);

        if (json_object_get(params, "addresses", &addrs) != 1)
                return -EBADMSG;
        r = count_elements(addrs, &total);
        if (r < 0)
                return r;

        r = get_optional(params, "name", &v);
        if (r < 0)
                return r;
        if (r > 0)
                r = dup_hostname(v, &h->name);
        else if (h->query)
                r = (h->name = strdup(h->query)) ? 0 : -ENOMEM;
        else
                r = -EBADMSG;
        if (r < 0)
                return r;

        if (total > 0) {
                h->addrs = calloc(total, sizeof *h->addrs);
                if (!h->addrs)
                        return -ENOMEM;
        }
        json_iter_init(&it, addrs);
        while ((r = json_iter_next(&it, NULL, &e)) > 0) {
                if (h->n >= total)
                        return -EBADMSG;
                r = parse_one_address(e, h->family, h->no_link_local, &h->addrs[h->n]);
                if (r < 0)
                        return r;
                if (r > 0)
                        h->n++;
        }
        if (r < 0)
                return r;
        return h->n > 0 ? 0 : LOOKUP_NOTFOUND;
}

void names_result_free(struct names_result *nr) {
        for (size_t i = 0; i < nr->n; i++)
                free(nr->names[i]);
        free(nr->names);
        nr->names = NULL;
        nr->n = 0;
}

int parse_address_reply(json_val params, void *userdata) {
        struct names_result *nr = userdata;
        json_val names, e, v;
        json_iter it;
        size_t total;
        int64_t ifindex;
        int r;

        names_result_free(nr);

        if (json_object_get(params, "names", &names) != 1)
                return -EBADMSG;
        r = count_elements(names, &total);
        if (r < 0)
                return r;
        if (total == 0)
                return LOOKUP_NOTFOUND;
        nr->names = calloc(total, sizeof *nr->names);
        if (!nr->names)
                return -ENOMEM;
        json_iter_init(&it, names);
        while ((r = json_iter_next(&it, NULL, &e)) > 0) {
                if (nr->n >= total || json_typeof(e) != JSON_OBJECT)
                        return -EBADMSG;
                r = get_optional(e, "ifindex", &v);
                if (r < 0)
                        return r;
                if (r > 0 && json_get_int(v, 0, INT32_MAX, &ifindex) < 0)
                        return -EBADMSG;
                if (json_object_get(e, "name", &v) != 1)
                        return -EBADMSG;
                r = dup_hostname(v, &nr->names[nr->n]);
                if (r < 0)
                        return r;
                nr->n++;
        }
        return r;
}

/* A string for a passwd field: no control characters and no ':' (the passwd file
 * separator); getent and friends print these fields as they are. */
static bool valid_passwd_field(const char *s, bool path) {
        if (path && s[0] != '/')
                return false;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f || *p == ':')
                        return false;
        return true;
}

static int get_record(json_val params, json_val *rec) {
        if (json_object_get(params, "record", rec) != 1 || json_typeof(*rec) != JSON_OBJECT)
                return -EBADMSG;
        return 0;
}

static int get_id(json_val rec, const char *key, bool required, uint32_t *out) {
        json_val v;
        int64_t id;
        int r = get_optional(rec, key, &v);
        if (r < 0)
                return r;
        if (r == 0)
                return required ? -EBADMSG : 0;
        if (json_get_int(v, 0, UID_INVALID_MAX, &id) < 0)
                return -EBADMSG;
        *out = (uint32_t) id;
        return 1;
}

static int get_record_name(json_val rec, const char *key, const char *want, char **out) {
        json_val v;
        int r;

        if (json_object_get(rec, key, &v) != 1)
                return -EBADMSG;
        r = dup_string(v, NAME_MAX_QUERY, out);
        if (r < 0)
                return r;
        /* By name: what we asked for (already a valid name), else a name at all. */
        if (want ? strcmp(want, *out) != 0 : !valid_record_name(*out))
                return -EBADMSG;
        return 0;
}

/* An optional path field: absent or null gives dflt; present but unusable is an error. */
static int get_path(json_val rec, const char *key, const char *dflt, char **out) {
        json_val v;
        int r = get_optional(rec, key, &v);
        if (r < 0)
                return r;
        if (r == 0) {
                *out = strdup(dflt);
                return *out ? 0 : -ENOMEM;
        }
        r = dup_string(v, RECORD_STRING_MAX, out);
        if (r < 0)
                return r;
        return valid_passwd_field(*out, true) ? 0 : -EBADMSG;
}

void user_result_free(struct user_result *u) {
        free(u->name);
        free(u->gecos);
        free(u->dir);
        free(u->shell);
        u->name = u->gecos = u->dir = u->shell = NULL;
}

int parse_user_reply(json_val params, void *userdata) {
        struct user_result *u = userdata;
        json_val rec, v;
        int r;

        user_result_free(u);
        r = get_record(params, &rec);
        if (r < 0)
                return r;
        r = get_record_name(rec, "userName", u->want_name, &u->name);
        if (r < 0)
                return r;
        r = get_id(rec, "uid", true, &u->uid);
        if (r < 0)
                return r;
        if (u->want_uid && u->uid != u->uid_in)
                return -EBADMSG;
        u->gid = u->uid; /* the userdb default when a record has no gid */
        r = get_id(rec, "gid", false, &u->gid);
        if (r < 0)
                return r;

        /* realName is only informative: like machined, drop it when it is unusable. */
        r = get_optional(rec, "realName", &v);
        if (r < 0)
                return r;
        if (r > 0 && dup_string(v, RECORD_STRING_MAX, &u->gecos) == 0 &&
            !valid_passwd_field(u->gecos, false)) {
                free(u->gecos);
                u->gecos = NULL;
        }
        if (!u->gecos && !(u->gecos = strdup("")))
                return -ENOMEM;

        r = get_path(rec, "homeDirectory", DEFAULT_HOME, &u->dir);
        if (r < 0)
                return r;
        return get_path(rec, "shell", DEFAULT_SHELL, &u->shell);
}

void group_result_free(struct group_result *g) {
        free(g->name);
        g->name = NULL;
}

int parse_group_reply(json_val params, void *userdata) {
        struct group_result *g = userdata;
        json_val rec;
        int r;

        group_result_free(g);
        r = get_record(params, &rec);
        if (r < 0)
                return r;
        r = get_record_name(rec, "groupName", g->want_name, &g->name);
        if (r < 0)
                return r;
        r = get_id(rec, "gid", true, &g->gid);
        if (r < 0)
                return r;
        if (g->want_gid && g->gid != g->gid_in)
                return -EBADMSG;
        return 0;
}

/* --- buffer layout --- */

/* Moves *buf forward to the next multiple of align. false if the buffer is too small. */
static bool align_buffer(char **buf, size_t *len, size_t align) {
        size_t mis = (uintptr_t) *buf % align, pad = mis ? align - mis : 0;
        if (*len < pad)
                return false;
        *buf += pad;
        *len -= pad;
        return true;
}

static size_t family_size(int af) {
        return af == AF_INET ? 4 : af == AF_INET6 ? 16 : 0;
}

int fill_addrtuples(const struct host_result *h, struct gaih_addrtuple **pat,
                    char *buffer, size_t buflen) {
        struct gaih_addrtuple *t;
        size_t l, need;
        char *name;

        if (!h->name || h->n == 0)
                return -EINVAL;
        l = strlen(h->name) + 1;
        if (!align_buffer(&buffer, &buflen, __alignof__(struct gaih_addrtuple)))
                return -ERANGE;
        need = h->n * sizeof(struct gaih_addrtuple) + l;
        if (buflen < need)
                return -ERANGE;

        t = (struct gaih_addrtuple *) buffer;
        name = buffer + h->n * sizeof(struct gaih_addrtuple);
        memcpy(name, h->name, l);
        for (size_t i = 0; i < h->n; i++) {
                memset(&t[i], 0, sizeof t[i]);
                t[i].next = i + 1 < h->n ? &t[i + 1] : NULL;
                t[i].name = name;
                t[i].family = h->addrs[i].family;
                memcpy(t[i].addr, h->addrs[i].addr, family_size(h->addrs[i].family));
                t[i].scopeid = h->addrs[i].scopeid;
        }
        if (*pat)
                **pat = t[0];
        else
                *pat = t;
        return 0;
}

int fill_hostent_addrs(const struct host_result *h, int af, struct hostent *he,
                       char *buffer, size_t buflen, char **canonp) {
        size_t alen = family_size(af), n = 0, l, need;
        char **addr_list, **aliases, *addrs, *name;

        if (alen == 0 || !h->name)
                return -EINVAL;
        for (size_t i = 0; i < h->n; i++)
                if (h->addrs[i].family == af)
                        n++;
        if (n == 0)
                return -EINVAL;
        l = strlen(h->name) + 1;
        if (!align_buffer(&buffer, &buflen, sizeof(char *)))
                return -ERANGE;
        need = (n + 2) * sizeof(char *) + n * alen + l;
        if (buflen < need)
                return -ERANGE;

        addr_list = (char **) buffer;
        aliases = addr_list + n + 1;
        addrs = (char *) (aliases + 1);
        name = addrs + n * alen;

        memcpy(name, h->name, l);
        aliases[0] = NULL;
        for (size_t i = 0, j = 0; i < h->n; i++) {
                if (h->addrs[i].family != af)
                        continue;
                memcpy(addrs + j * alen, h->addrs[i].addr, alen);
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

int fill_hostent_names(const struct names_result *nr, const void *addr, socklen_t len, int af,
                       struct hostent *he, char *buffer, size_t buflen) {
        size_t need, strs = 0;
        char **addr_list, **aliases, *a, *p;

        if (nr->n == 0 || family_size(af) != len)
                return -EINVAL;
        for (size_t i = 0; i < nr->n; i++)
                strs += strlen(nr->names[i]) + 1;
        if (!align_buffer(&buffer, &buflen, sizeof(char *)))
                return -ERANGE;
        /* address list (address, NULL), aliases (n-1 names, NULL), address, names */
        need = (2 + nr->n) * sizeof(char *) + len + strs;
        if (buflen < need)
                return -ERANGE;

        addr_list = (char **) buffer;
        aliases = addr_list + 2;
        a = (char *) (aliases + nr->n);
        p = a + len;

        memcpy(a, addr, len);
        addr_list[0] = a;
        addr_list[1] = NULL;
        for (size_t i = 0; i < nr->n; i++) {
                size_t l = strlen(nr->names[i]) + 1;
                memcpy(p, nr->names[i], l);
                if (i == 0)
                        he->h_name = p;
                else
                        aliases[i - 1] = p;
                p += l;
        }
        aliases[nr->n - 1] = NULL;

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

int fill_passwd(const struct user_result *u, struct passwd *pw, char *buffer, size_t buflen) {
        size_t need;
        char *p = buffer;

        if (!u->name || !u->gecos || !u->dir || !u->shell)
                return -EINVAL;
        need = strlen(u->name) + 1 + 2 + strlen(u->gecos) + 1 + strlen(u->dir) + 1 +
               strlen(u->shell) + 1;
        if (buflen < need)
                return -ERANGE;
        pw->pw_name = put_string(&p, u->name);
        pw->pw_passwd = put_string(&p, "x");
        pw->pw_uid = u->uid;
        pw->pw_gid = u->gid;
        pw->pw_gecos = put_string(&p, u->gecos);
        pw->pw_dir = put_string(&p, u->dir);
        pw->pw_shell = put_string(&p, u->shell);
        return 0;
}

int fill_group(const struct group_result *g, struct group *gr, char *buffer, size_t buflen) {
        size_t need;
        char **mem, *p;

        if (!g->name)
                return -EINVAL;
        if (!align_buffer(&buffer, &buflen, sizeof(char *)))
                return -ERANGE;
        need = sizeof(char *) + strlen(g->name) + 1 + 2;
        if (buflen < need)
                return -ERANGE;
        mem = (char **) buffer;
        mem[0] = NULL;
        p = buffer + sizeof(char *);
        gr->gr_name = put_string(&p, g->name);
        gr->gr_passwd = put_string(&p, "x");
        gr->gr_gid = g->gid;
        gr->gr_mem = mem;
        return 0;
}
