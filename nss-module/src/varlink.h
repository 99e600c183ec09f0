/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The module's Varlink client: one call, one reply, bounded in time.
 */
#ifndef MYMACHINES_VARLINK_H
#define MYMACHINES_VARLINK_H

#include <stddef.h>

#include "reply.h"

#ifndef SOCKET_PATH
#define SOCKET_PATH "/run/mymachines/io.systemd.Machine"
#endif

/* How long one lookup may take in total, connect and retry included. */
#define CALL_TIMEOUT_MS 500

/* Sends the request (a JSON object of len bytes, NUL-terminated: the NUL ends the Varlink
 * message, so it is sent too) to the daemon socket and hands the
 * reply to reply_handle(cb). Returns 0, LOOKUP_NOTFOUND or a negative errno:
 * -ENOENT/-ECONNREFUSED/... from connect, -ETIMEDOUT when the deadline passed,
 * -EMSGSIZE for a reply over REPLY_MAX, -EBADMSG for garbage, -ECONNRESET for a
 * connection closed in the middle, -EIO for an unexpected error reply. */
int varlink_call(const char *request, size_t len, reply_cb cb, void *userdata);

#endif
