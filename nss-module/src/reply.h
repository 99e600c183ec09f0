/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Everything between the bytes of one Varlink reply and the filled NSS structures,
 * without any I/O: the reply envelope, the typed results of io.systemd.Resolve and
 * io.systemd.UserDatabase, and the code that lays them out in the caller's buffer.
 * The fuzz target drives exactly these functions.
 */
#ifndef MYMACHINES_REPLY_H
#define MYMACHINES_REPLY_H

#include <grp.h>
#include <netdb.h>
#include <nss.h>
#include <pwd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "json.h"

/* Largest reply we accept, without the terminating NUL. */
#define REPLY_MAX (64 * 1024)

/* Longest name we send to the daemon. */
#define NAME_MAX_QUERY 256
/* Longest host name we ask about, as machine names. */
#define HOST_NAME_MAX_QUERY 64
/* Longest host name we accept in a reply. */
#define HOST_NAME_MAX_REPLY 255
/* Longest string field of a user or group record we accept. */
#define RECORD_STRING_MAX 4096

/* Outcome codes shared by the reply and transport layers:
 * 0 success, LOOKUP_NOTFOUND when the daemon says "not mine", negative errno otherwise. */
#define LOOKUP_NOTFOUND 1

/* Called with the "parameters" object of a successful reply. Returns 0, LOOKUP_NOTFOUND,
 * or a negative errno (-EBADMSG for a reply that does not match the contract). */
typedef int (*reply_cb)(json_val parameters, void *userdata);

/* Parses one complete message (len bytes, without the NUL; it must contain no NUL).
 * Error replies are classified here: DNSError, NoSuchResourceRecord, NoRecordFound and
 * ConflictingRecordFound give LOOKUP_NOTFOUND, any other error -EIO. A success reply is
 * handed to cb. Malformed messages give -EBADMSG. */
int reply_handle(const char *msg, size_t len, reply_cb cb, void *userdata);

/* Is this a name we may ask the daemon about? */
bool valid_host_query(const char *name);
/* Is this a name the daemon may answer with in a record? (looser than the queries) */
bool valid_record_name(const char *name);

/* Could this be a synthesized user (prefix "vu-") or group ("vg-") record, worth asking
 * the daemon about? As the daemon's rules: the prefix, at most USER_NAME_MAX characters,
 * [A-Za-z_][A-Za-z0-9_-]*; IDs from FIRST_CONTAINER_ID on, never (uid_t) -1. */
#define USER_NAME_MAX 31
#define FIRST_CONTAINER_ID 65536
bool valid_user_query(const char *name);
bool valid_group_query(const char *name);
bool valid_id_query(uint32_t id);

/* --- io.systemd.Resolve.ResolveHostname --- */
struct host_addr {
        int family;
        uint32_t scopeid;
        unsigned char addr[16];
};

struct host_result {
        int family;        /* input: AF_INET, AF_INET6 or AF_UNSPEC (both) */
        bool no_link_local; /* input: leave IPv6 link-local addresses out (a hostent cannot carry
                             * their scope, without which they are no use) */
        const char *query; /* input: the name asked for, used if the reply has none */
        char *name; /* canonical name (malloc) */
        size_t n;
        struct host_addr *addrs; /* malloc */
};

/* reply_cb: fills a struct host_result; LOOKUP_NOTFOUND when no address of the family. */
int parse_hostname_reply(json_val params, void *host_result);
void host_result_free(struct host_result *h);

/* Is this IPv6 address link-local (fe80::/10)? */
bool ipv6_is_link_local(const unsigned char addr[16]);

/* --- io.systemd.Resolve.ResolveAddress --- */
struct names_result {
        size_t n;
        char **names; /* malloc, each malloc */
};
int parse_address_reply(json_val params, void *names_result);
void names_result_free(struct names_result *r);

/* --- io.systemd.UserDatabase.GetUserRecord / GetGroupRecord --- */
struct user_result {
        /* input: what was asked; the record must match it */
        const char *want_name; /* or NULL */
        bool want_uid;
        uint32_t uid_in;
        /* output */
        char *name, *gecos, *dir, *shell;
        uint32_t uid, gid;
};
int parse_user_reply(json_val params, void *user_result);
void user_result_free(struct user_result *u);

struct group_result {
        const char *want_name;
        bool want_gid;
        uint32_t gid_in;
        char *name;
        uint32_t gid;
};
int parse_group_reply(json_val params, void *group_result);
void group_result_free(struct group_result *g);

/* --- laying results out in the caller's buffer: 0 or -ERANGE --- */
int fill_addrtuples(const struct host_result *h, struct gaih_addrtuple **pat,
                    char *buffer, size_t buflen);
int fill_hostent_addrs(const struct host_result *h, int af, struct hostent *he,
                       char *buffer, size_t buflen, char **canonp);
int fill_hostent_names(const struct names_result *r, const void *addr, socklen_t len, int af,
                       struct hostent *he, char *buffer, size_t buflen);
int fill_passwd(const struct user_result *u, struct passwd *pw, char *buffer, size_t buflen);
int fill_group(const struct group_result *g, struct group *gr, char *buffer, size_t buflen);

#endif
