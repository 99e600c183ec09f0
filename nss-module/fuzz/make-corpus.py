#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the seed corpus of fuzz_reply into fuzz/corpus/: one reply per file, without
the terminating NUL (the transport strips it). Run again after changing it."""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus")
os.makedirs(out, exist_ok=True)


def j(o):
    return json.dumps(o, separators=(",", ":")).encode()


v4 = lambda *b: {"family": 2, "address": list(b)}
web1 = [v4(10, 0, 0, 1), v4(10, 0, 0, 2),
        {"family": 10, "address": [0xfd] + [0] * 14 + [1]},
        {"family": 10, "ifindex": 7, "address": [0xfe, 0x80] + [0] * 13 + [1]}]
user = {"userName": "vu-web1-0", "uid": 100000, "gid": 65534, "realName": "UID 0 of Container web1",
        "homeDirectory": "/", "shell": "/usr/sbin/nologin", "locked": True,
        "service": "io.systemd.Machine", "disposition": "container"}
group = {"groupName": "vg-web1-0", "gid": 100000, "description": "GID 0 of Container web1",
         "service": "io.systemd.Machine", "disposition": "container"}

seeds = {
    "hostname-both": j({"parameters": {"addresses": web1, "name": "web1", "flags": 0}}),
    "hostname-v4": j({"parameters": {"addresses": web1[:2], "name": "web1", "flags": 0}}),
    "hostname-v6-scope": j({"parameters": {"addresses": web1[2:], "name": "web1.machines", "flags": 0}}),
    "hostname-noname": j({"parameters": {"addresses": [v4(1, 2, 3, 4)]}}),
    "hostname-empty": j({"parameters": {"addresses": [], "name": "x"}}),
    "hostname-oddfamily": j({"parameters": {"addresses": [{"family": 99, "address": []}], "name": "x"}}),
    "hostname-pretty": json.dumps({"parameters": {"addresses": web1, "name": "web1"}}, indent=2).encode(),
    "address-one": j({"parameters": {"names": [{"name": "web1"}], "flags": 0}}),
    "address-aliases": j({"parameters": {"names": [{"ifindex": 3, "name": "multi"}, {"name": "a.b"}, {"name": "c"}]}}),
    "user": j({"parameters": {"record": user}}),
    "user-minimal": j({"parameters": {"record": {"userName": "vu-x-1", "uid": 524289}}}),
    "user-escapes": b'{"parameters":{"record":{"userName":"vu-web1-0","uid":100000,"gid":65534,'
                    b'"realName":"\\u00fcber \\ud83d\\ude00 \\"q\\" \\/ \\\\","homeDirectory":"\\/home","shell":"/bin/sh"}}}',
    "group": j({"parameters": {"record": group}}),
    "error-dns": j({"error": "io.systemd.Resolve.DNSError", "parameters": {"rcode": 3}}),
    "error-norr": j({"error": "io.systemd.Resolve.NoSuchResourceRecord", "parameters": {}}),
    "error-norecord": j({"error": "io.systemd.UserDatabase.NoRecordFound"}),
    "error-system": j({"error": "io.systemd.System", "parameters": {"errno": 5}}),
    "error-methodnotfound": j({"error": "org.varlink.service.MethodNotFound", "parameters": {"method": "x"}}),
    "continues": j({"parameters": {"addresses": web1, "name": "web1"}, "continues": True}),
    "truncated-hostname": j({"parameters": {"addresses": web1, "name": "web1"}})[:60],
    "truncated-user": j({"parameters": {"record": user}})[:100],
    "numbers": b'{"parameters":{"addresses":[{"family":2e0,"address":[-0,1.5,1E400,255]}],"n":-9223372036854775808}}',
    "deep": b'{"parameters":' + b'[' * 31 + b']' * 31 + b'}',
    "literals": b' {"parameters" : {"addresses":[ ],"name":null,"x":[true,false,null,{}]} } ',
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print("wrote %d seeds to %s" % (len(seeds), out))
