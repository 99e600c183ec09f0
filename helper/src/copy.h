/* Copies of files and trees between the host and a container, with ownership mapped through the
 * container's user namespace, made under a temporary name and renamed into place: a copy that fails
 * (a full disk) leaves nothing behind. */
#pragma once
#include <stdint.h>

struct id_map {
    uint32_t shift, range;
    /* 1: host IDs to the container's (host ID n becomes the container's n); 0: the other way. */
    int into;
};

/* A path as a directory descriptor and a last component, opened where it is meant (host or container). */
struct endpoint {
    int dir;
    char name[256];
};

int endpoint_open_source(const char *path, struct endpoint *e);
int endpoint_open_dest(const char *path, struct endpoint *e);

/* Copies src to dst; 0, or -errno with *what saying where it failed. Without replace an existing
 * destination is EEXIST; with it the destination is exchanged atomically, then the old one removed. */
int copy_into(const struct endpoint *src, const struct endpoint *dst, const struct id_map *map, int replace, const char **what);
