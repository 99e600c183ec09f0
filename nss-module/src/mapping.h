/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Finding, trusting and mapping the daemon's lookup table, and telling whether its daemon still
 * runs: the module's only I/O. The table is the file TABLE_NAME beside the daemon socket
 * (SOCKET_PATH, or $MYMACHINES_SOCKET read with secure_getenv).
 */
#ifndef MYMACHINES_MAPPING_H
#define MYMACHINES_MAPPING_H

#include "table.h"

#ifndef SOCKET_PATH
#define SOCKET_PATH "/run/mymachines/io.systemd.Machine"
#endif
#define TABLE_NAME "nss-table"

typedef int (*table_fn)(const struct table_view *v, void *userdata);

/* Runs fn over the daemon's current table and gives its result, or a negative errno:
 * -ENOENT (no table: no daemon), -ECONNREFUSED (no running daemon holds the table: it exited, or
 * withdrew the table), -EAGAIN (the table was replaced 64 times while this tried to open it), -EPERM
 * (a table that is not a regular file, or a symlink, neither root's nor the caller's (effective UID),
 * or writable by group or others), -EBADMSG (a malformed table), -EPROTONOSUPPORT (another format
 * version), -ENAMETOOLONG. At most one system call when the table is already mapped. */
int with_table(table_fn fn, void *userdata);

#endif
