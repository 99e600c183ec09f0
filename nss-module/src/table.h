/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The reader of mymachinesd's lookup table, format version 1 (docs/CONTRACTS.md, "The lookup
 * table"): pure functions over the bytes of a mapped table file, no I/O. Every offset, count and
 * index read from the table is checked against the mapping before it is followed, so that a
 * truncated, corrupt or hostile table gives an error or "not found", never a read outside it.
 * The fuzz target drives exactly these functions.
 *
 * A table is a base section and up to TABLE_MAX_DELTAS delta sections over it; each delta holds
 * every name, address and ID range that changed since the section below it. A lookup asks the
 * top section first; the first section that has an entry for the name (or address) decides.
 */
#ifndef MYMACHINES_TABLE_H
#define MYMACHINES_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define TABLE_VERSION 1
#define TABLE_HEADER_SIZE 64
/* Where the header's state word is (0: current; else superseded by a newer file). */
#define TABLE_STATE_OFFSET 36
/* The byte the daemon holds a write lock on while it runs (fcntl, F_SETLK). */
#define TABLE_LOCK_BYTE 0x4d4d
/* The largest table file we map. */
#define TABLE_MAX_SIZE (1024u * 1024 * 1024)
#define TABLE_MAX_DELTAS 8
#define TABLE_NAME_MAX 64

/* Outcome codes: 0 found, TABLE_NOTFOUND, or a negative errno (-EBADMSG: the table is malformed). */
#define TABLE_NOTFOUND 1

struct table_section {
        const uint8_t *p;
        uint32_t size;
        uint32_t n_machines, machines;
        uint32_t name_buckets, name_index;
        uint32_t n_reverse, reverse;
        uint32_t reverse_buckets, reverse_index;
        uint32_t n_addrs, addrs;
        uint32_t n_namerefs, namerefs;
        uint32_t n_segs[2], segs[2]; /* [0] uid, [1] gid */
        uint32_t n_lines, lines;
        uint32_t strings_size, strings;
};

/* The sections of a table as of one moment, top (newest) first, the base last. */
struct table_view {
        struct table_section layer[TABLE_MAX_DELTAS + 1];
        unsigned n;
};

/* Checks the file header of a mapped table of `size` bytes: magic, version (-EPROTONOSUPPORT for
 * another), sizes. 0 or a negative errno. */
int table_check_header(const uint8_t *p, size_t size);

/* Whether a newer table has been renamed over this one (the header's state word). */
bool table_superseded(const uint8_t *p);

/* The sections as of now, each checked. The header's delta word is read atomically, again while it
 * is torn (its halves do not match, up to 1000 reads; then -EBADMSG). */
int table_get_view(const uint8_t *p, size_t size, struct table_view *v);

/* The length of an address of family AF_INET or AF_INET6; 0 for any other. */
static inline size_t family_size(int family) {
        return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

/* A machine's hosts answer. */
struct table_host {
        const char *name; /* the registered name; not NUL-terminated */
        size_t name_len;
        const uint8_t *addrs; /* n_addrs records */
        uint32_t n_addrs;
};

/* Address i of h: family (AF_INET or AF_INET6; anything else is to be skipped), its scope (the
 * ifindex of an IPv6 link-local address, else 0) and its 4 or 16 bytes. */
void table_host_address(const struct table_host *h, uint32_t i, int *family, uint32_t *ifindex,
                        const uint8_t **addr);

/* By name, ignoring ASCII case (name: 1..TABLE_NAME_MAX characters). */
int table_find_host(const struct table_view *v, const char *name, struct table_host *out);

/* The names of the machines that answer with an address, in the daemon's order. */
struct table_names {
        const struct table_section *sec;
        uint32_t first, count;
};
int table_find_address(const struct table_view *v, int family, const uint8_t *addr, struct table_names *out);
/* Name i of n; -EBADMSG if it is out of bounds. */
int table_name_at(const struct table_names *n, uint32_t i, const char **name, size_t *len);

/* Host user (kind 0) or group (kind 1) IDs. */
struct table_id {
        const char *machine; /* not NUL-terminated */
        size_t machine_len;
        uint32_t inner; /* the ID inside the machine */
};
/* The running container whose user namespace owns host ID `id`, and the ID inside. */
int table_find_id(const struct table_view *v, int kind, uint32_t id, struct table_id *out);
/* The host ID that ID `inner` of machine `machine` (its exact name) maps to through its ID map;
 * the caller checks with table_find_id that the machine owns it. */
int table_map_inner(const struct table_view *v, int kind, const char *machine, size_t machine_len,
                    uint32_t inner, uint32_t *id);

#endif
