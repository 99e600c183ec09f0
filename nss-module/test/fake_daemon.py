#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for mymachinesd, only to develop and test the NSS module's client.

It answers io.systemd.Resolve and io.systemd.UserDatabase calls with fixed data
(replies shaped as in docs/CONTRACTS.md), plus special host names that make it
misbehave on purpose. The real end-to-end tests run against the real daemon.

Usage: fake_daemon.py DIR  -- creates in DIR:
  ok.sock        the answering server
  silent.sock    accepts, reads, never answers
  noaccept.sock  listens but never accepts
  stale.sock     a socket file nobody listens on (connect: ECONNREFUSED)
  full.sock      listens, never accepts, its queue already full (connect: EAGAIN)
  slam.sock      accepts and closes at once, without reading
  ready          written once everything listens
"""
import asyncio
import json
import os
import socket
import struct
import sys

AF_INET, AF_INET6 = 2, 10


def v4(s):
    return list(socket.inet_pton(socket.AF_INET, s))


def v6(s):
    return list(socket.inet_pton(socket.AF_INET6, s))


def a4(s, ifindex=None):
    d = {"family": AF_INET, "address": v4(s)}
    if ifindex is not None:
        d["ifindex"] = ifindex
    return d


def a6(s, ifindex=None):
    d = {"family": AF_INET6, "address": v6(s)}
    if ifindex is not None:
        d["ifindex"] = ifindex
    return d


# Machines: canonical name -> address list in the daemon's order (IPv4 first).
MACHINES = {
    "web1": [a4("10.0.0.1"), a4("10.0.0.2"), a6("fd00::1"), a6("fe80::1", 7)],
    "v4only": [a4("10.0.1.1")],
    "v6only": [a6("fd00::2")],
    "many": [a4("10.1.%d.%d" % (i // 250, i % 250 + 1)) for i in range(200)],
    "oddfamily": [{"family": 99, "address": [1, 2, 3]}],
    # IPv6: only a link-local address (a hostent cannot carry its scope)
    "llonly": [a4("10.0.3.1"), a6("fe80::5", 3)],
    # IPv6: link-local first, then a global one
    "llfirst": [a6("fe80::6", 4), a6("fd00::6")],
}

REVERSE = {
    (AF_INET, tuple(v4("10.0.0.1"))): ["web1"],
    (AF_INET, tuple(v4("10.0.0.2"))): ["web1"],
    (AF_INET6, tuple(v6("fd00::1"))): ["web1"],
    (AF_INET6, tuple(v6("fe80::1"))): ["web1"],
    (AF_INET, tuple(v4("10.0.1.1"))): ["v4only"],
    (AF_INET, tuple(v4("10.9.9.9"))): ["multi", "alias1.example", "alias2"],
}


def user(machine, inner, uid):
    return {
        "userName": "vu-%s-%d" % (machine, inner), "uid": uid, "gid": 65534,
        "realName": "UID %d of Container %s" % (inner, machine), "homeDirectory": "/",
        "shell": "/usr/sbin/nologin", "locked": True, "service": "io.systemd.Machine",
        "disposition": "container",
    }


def group(machine, inner, gid):
    return {
        "groupName": "vg-%s-%d" % (machine, inner), "gid": gid,
        "description": "GID %d of Container %s" % (inner, machine),
        "service": "io.systemd.Machine", "disposition": "container",
    }


USERS = [user("web1", 0, 100000), user("web1", 1000, 101000)]
GROUPS = [group("web1", 0, 100000), group("web1", 1000, 101000)]


def enc(obj):
    return json.dumps(obj, separators=(",", ":")).encode() + b"\0"


def error(name, params=None):
    return enc({"error": name, "parameters": params or {}})


def ok(params):
    return enc({"parameters": params})


NOTFOUND = error("io.systemd.Resolve.DNSError", {"rcode": 3})

# name -> raw bytes (the whole reply, NUL included where wanted)
GARBAGE = {
    "garbage-notjson": b'{"parameters": nonsense}\0',
    "garbage-truncated": b'{"parameters":{"addresses":[{"family":2,"address":[10,0\0',
    "garbage-badutf8": b'{"parameters":{"addresses":[{"family":2,"address":[1,2,3,4]}],"name":"w\xffb"}}\0',
    "garbage-deep": b'{"parameters":{"x":' + b"[" * 100 + b"]" * 100 + b"}}\0",
    "garbage-byte": ok({"addresses": [{"family": 2, "address": [10, 0, 0, 300]}], "name": "x"}),
    "garbage-len": ok({"addresses": [{"family": 2, "address": [10, 0, 0, 1, 5]}], "name": "x"}),
    "garbage-float": ok({"addresses": [{"family": 2, "address": [10, 0, 0, 1.0]}], "name": "x"}),
    "garbage-type": ok({"addresses": "10.0.0.1", "name": "x"}),
    "garbage-noaddresses": ok({"name": "x"}),
    "garbage-name": ok({"addresses": [a4("10.0.0.1")], "name": "bad name!"}),
    "garbage-ifindex": ok({"addresses": [a6("fe80::1", -1)], "name": "x"}),
    "garbage-array": b'[{"parameters":{}}]\0',
    "garbage-trailing": ok({"addresses": [a4("10.0.0.1")], "name": "x"}) + b'{"parameters":{}}\0',
    "garbage-continues": enc({"parameters": {"addresses": [a4("10.0.0.1")], "name": "x"}, "continues": True}),
    "garbage-dupkey": b'{"parameters":{"addresses":[],"name":"x"},"parameters":{"addresses":[],"name":"y"}}\0',
    "garbage-nul": b'{"parameters"\0:{}}\0',
    "garbage-errortype": b'{"error":42,"parameters":{}}\0',
    "othererror": error("io.systemd.System", {"errno": 5}),
    # valid JSON but larger than the module's 64 KiB cap
    "huge-nul": b'{"parameters":{"addresses":[],"name":"x"' + b" " * (70 * 1024) + b"}}\0",
}


class Daemon:
    def __init__(self):
        self.next_conn = 0

    async def handle(self, reader, writer):
        self.next_conn += 1
        conn = self.next_conn
        sock = writer.get_extra_info("socket")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        peer_pid = struct.unpack("3i", creds)[0]
        served = 0
        try:
            while True:
                try:
                    data = await reader.readuntil(b"\0")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    return
                try:
                    req = json.loads(data[:-1])
                except ValueError:
                    return
                reply = await self.dispatch(req, conn, peer_pid, served, writer)
                served += 1
                if reply is None:
                    return  # close without a reply
                if reply == "silent":
                    await asyncio.sleep(3600)
                    return
                try:
                    writer.write(reply)
                    await writer.drain()
                except ConnectionError:
                    return  # the client gave up (oversized reply, timeout): fine
                if reply is CLOSE_AFTER:
                    return
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def dispatch(self, req, conn, peer_pid, served, writer):
        method = req.get("method")
        p = req.get("parameters", {})
        if method == "io.systemd.Resolve.ResolveHostname":
            return await self.resolve_hostname(p, conn, peer_pid, served, writer)
        if method == "io.systemd.Resolve.ResolveAddress":
            names = REVERSE.get((p.get("family"), tuple(p.get("address", []))))
            if not names:
                return NOTFOUND
            return ok({"names": [{"name": n} for n in names], "flags": 0})
        if method in ("io.systemd.UserDatabase.GetUserRecord", "io.systemd.UserDatabase.GetGroupRecord"):
            if p.get("service") != "io.systemd.Machine":
                return error("io.systemd.UserDatabase.BadService")
            is_user = method.endswith("GetUserRecord")
            table, nkey, ikey = (USERS, "userName", "uid") if is_user else (GROUPS, "groupName", "gid")
            if ikey in p and p[ikey] in (65535, 4294967295):
                # as the daemon: IDs that are never valid are refused
                return error("org.varlink.service.InvalidParameter", {"parameter": ikey})
            if p.get(nkey) == ("vu-mismatch" if is_user else "vg-mismatch"):
                return ok({"record": table[1]})  # a record that is not the one asked for
            for rec in table:
                if (ikey in p and rec[ikey] == p[ikey]) or (ikey not in p and rec[nkey] == p.get(nkey)):
                    return ok({"record": rec})
            return error("io.systemd.UserDatabase.NoRecordFound")
        return error("org.varlink.service.MethodNotFound", {"method": method})

    async def resolve_hostname(self, p, conn, peer_pid, served, writer):
        name = p.get("name", "")
        key = name.lower()
        family = p.get("family")
        if key == "whoami":
            # Tells the client which connection (and which process opened it) served it,
            # and how many connections were accepted so far.
            return ok({"addresses": [a4("127.0.0.9")], "name": "c%d-p%d-n%d" % (conn, peer_pid, self.next_conn), "flags": 0})
        if key in GARBAGE:
            return GARBAGE[key]
        if key == "silent":
            return "silent"
        if key == "eof":
            return None
        if key == "closefirst":
            # Fails on a connection that was used before, answers on a fresh one.
            if served > 0:
                return None
            return ok({"addresses": [a4("10.0.0.1")], "name": "closefirst", "flags": 0})
        if key == "dropafter":
            return CLOSE_AFTER
        if key == "huge":
            # 100 KiB without a NUL, then keep the connection open.
            try:
                writer.write(b'{"parameters":{"name":"' + b"a" * (100 * 1024))
                await writer.drain()
            except ConnectionError:
                return None
            return "silent"
        if key == "slow":
            await asyncio.sleep(0.25)
            key = "web1"
        if key == "tooslow":
            await asyncio.sleep(0.8)
            key = "web1"
        if key not in MACHINES:
            return NOTFOUND
        addrs = [a for a in MACHINES[key] if family is None or a["family"] == family]
        if not addrs and family is not None:
            return error("io.systemd.Resolve.NoSuchResourceRecord")
        return ok({"addresses": addrs, "name": key, "flags": 0})


CLOSE_AFTER = ok({"addresses": [a4("10.0.0.1")], "name": "dropafter", "flags": 0})


async def main(d):
    daemon = Daemon()
    paths = {n: os.path.join(d, n) for n in
             ("ok.sock", "silent.sock", "noaccept.sock", "stale.sock", "full.sock", "slam.sock")}
    for p in paths.values():
        if os.path.exists(p):
            os.unlink(p)

    await asyncio.start_unix_server(daemon.handle, path=paths["ok.sock"], limit=1 << 20, backlog=512)

    async def silent(reader, writer):
        try:
            while await reader.read(4096):
                pass
        except ConnectionError:
            pass
        writer.close()

    await asyncio.start_unix_server(silent, path=paths["silent.sock"])

    noaccept = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    noaccept.bind(paths["noaccept.sock"])
    noaccept.listen(64)

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(paths["stale.sock"])
    stale.close()  # the file stays, nobody listens

    full = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    full.bind(paths["full.sock"])
    full.listen(0)
    fillers = []
    while True:  # queue connections until the kernel says the queue is full
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(paths["full.sock"])
        except BlockingIOError:
            c.close()
            break
        fillers.append(c)

    async def slam(reader, writer):
        writer.transport.abort()

    await asyncio.start_unix_server(slam, path=paths["slam.sock"])

    with open(os.path.join(d, "ready"), "w") as f:
        f.write("%d\n" % os.getpid())
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    except KeyboardInterrupt:
        pass
