# SPDX-License-Identifier: LGPL-2.1-or-later
"""A writer of mymachinesd's lookup table, format version 1 (docs/CONTRACTS.md, "The lookup
table"), written from the specification on its own (the daemon's is src/table/format.ts), for the
module's C tests, its fuzz corpus, and tables that no daemon would write.

A machine is a dict: name, addrs [(family, ifindex, address text or bytes)], uid/gid
[(base, shift, range)] map lines, container (bool), present (bool, default True: False is a
"no machine of this name any more" entry of a delta). Reverse entries: (family, address, [names]).
Segments: (start, count, base, machine index).
"""
import fcntl
import os
import socket
import struct

MAGIC = b"MYMTABLE"
VERSION = 1
HEADER_SIZE = 64
SECTION_HEADER_SIZE = 112
SECTION_MAGIC = 0x534D594D
BASE, DELTA = 1, 2
LOCK_BYTE = 0x4D4D
ALIGN = 64
AF_INET, AF_INET6 = 2, 10
PRESENT, CONTAINER = 1, 2
H_STATE, H_DELTA = 36, 48


def addr_bytes(family, a):
    if isinstance(a, (bytes, bytearray)):
        return bytes(a)
    return socket.inet_pton(socket.AF_INET if family == AF_INET else socket.AF_INET6, a)


def name_hash(name):
    h = 0x811C9DC5
    for c in name.encode("latin1"):
        if 0x41 <= c <= 0x5A:
            c += 0x20
        h = ((h ^ c) * 0x01000193) & 0xFFFFFFFF
    return h


def address_hash(family, b):
    h = ((0x811C9DC5 ^ family) * 0x01000193) & 0xFFFFFFFF
    for c in b[: 4 if family == AF_INET else 16]:
        h = ((h ^ c) * 0x01000193) & 0xFFFFFFFF
    return h


def buckets_for(n):
    if n == 0:
        return 0
    b = 2
    while b < 2 * n:
        b *= 2
    return b


def align4(n):
    return (n + 3) & ~3


def owned_segments(machines, kind):
    """The segments of the machines' own ranges (non-zero shift), sorted: for tables without overlaps."""
    segs = []
    for i, m in enumerate(machines):
        if m.get("present", True) and m.get("container"):
            for base, shift, rng in m.get(kind, []):
                if shift != 0 and rng > 0:
                    segs.append((shift, rng, base, i))
    return sorted(segs)


def reverse_of(machines):
    """Every address of the present machines and the names that have it, in machine order."""
    out, index = [], {}
    for m in machines:
        if not m.get("present", True):
            continue
        for family, _ifindex, a in m.get("addrs", []):
            key = (family, addr_bytes(family, a))
            if key not in index:
                index[key] = len(out)
                out.append((family, key[1], []))
            out[index[key]][2].append(m["name"])
    return out


def encode_section(kind, generation, machines, reverse=None, uid=None, gid=None, parent=0, overrides=None):
    """One section. overrides: {field offset: u32} written over the header at the end (corrupt tables)."""
    if reverse is None:
        reverse = reverse_of(machines)
    if uid is None:
        uid = owned_segments(machines, "uid")
    if gid is None:
        gid = owned_segments(machines, "gid")
    strings, names = bytearray(), {}

    def intern(n):
        if n not in names:
            names[n] = len(strings)
            strings.extend(n.encode("latin1"))
        return names[n]

    for m in machines:
        intern(m["name"])
    for _f, _a, ns in reverse:
        for n in ns:
            intern(n)
    naddrs = sum(len(m.get("addrs", [])) for m in machines)
    nlines = sum(len(m.get("uid", [])) + len(m.get("gid", [])) for m in machines)
    nrefs = sum(len(ns) for _f, _a, ns in reverse)
    nb, rb = buckets_for(len(machines)), buckets_for(len(reverse))

    off = SECTION_HEADER_SIZE
    layout = []
    for count, size in [(len(machines), 32), (nb, 4), (len(reverse), 28), (rb, 4), (naddrs, 24), (nrefs, 8),
                        (len(uid), 16), (len(gid), 16), (nlines, 12), (len(strings), 1)]:
        layout.append(off)
        off = align4(off + count * size)
    total = off
    buf = bytearray(total)
    (m_off, ni_off, r_off, ri_off, a_off, nr_off, u_off, g_off, l_off, s_off) = layout
    struct.pack_into("<IIIIQ", buf, 0, SECTION_MAGIC, kind, total, parent, generation)
    struct.pack_into("<20I", buf, 24, len(machines), m_off, nb, ni_off, len(reverse), r_off, rb, ri_off, naddrs, a_off,
                     nrefs, nr_off, len(uid), u_off, len(gid), g_off, nlines, l_off, len(strings), s_off)
    buf[s_off:s_off + len(strings)] = strings

    a = line = 0
    for i, m in enumerate(machines):
        flags = (PRESENT if m.get("present", True) else 0) | (CONTAINER if m.get("container") else 0)
        addrs, ul, gl = m.get("addrs", []), m.get("uid", []), m.get("gid", [])
        h = m.get("hash", name_hash(m["name"]))
        struct.pack_into("<IHBBIIIIHHI", buf, m_off + 32 * i, names[m["name"]], len(m["name"]), flags, 0, h, a,
                         len(addrs), line, len(ul), len(gl), 0)
        for family, ifindex, addr in addrs:
            b = addr_bytes(family, addr)
            struct.pack_into("<BxxxI16s", buf, a_off + 24 * a, family, ifindex, b)
            a += 1
        for base, shift, rng in ul + gl:
            struct.pack_into("<III", buf, l_off + 12 * line, base, shift, rng)
            line += 1
        b = h & (nb - 1)
        while struct.unpack_from("<I", buf, ni_off + 4 * b)[0]:
            b = (b + 1) & (nb - 1)
        struct.pack_into("<I", buf, ni_off + 4 * b, i + 1)

    ref = 0
    for i, (family, addr, ns) in enumerate(reverse):
        b16 = addr_bytes(family, addr)
        struct.pack_into("<Bxxx16sII", buf, r_off + 28 * i, family, b16, ref, len(ns))
        for n in ns:
            struct.pack_into("<II", buf, nr_off + 8 * ref, names[n], len(n))
            ref += 1
        b = address_hash(family, b16) & (rb - 1)
        while struct.unpack_from("<I", buf, ri_off + 4 * b)[0]:
            b = (b + 1) & (rb - 1)
        struct.pack_into("<I", buf, ri_off + 4 * b, i + 1)

    for segs, o in ((uid, u_off), (gid, g_off)):
        for i, s in enumerate(segs):
            struct.pack_into("<IIII", buf, o + 16 * i, *s)
    for at, v in (overrides or {}).items():
        struct.pack_into("<I", buf, at, v)
    return bytes(buf)


def encode_file(base, generation=1, delta_room=65536, pid=0, version=VERSION):
    """Header and base section; the delta area follows, delta_room bytes (a hole until written)."""
    area = (HEADER_SIZE + len(base) + 4095) // 4096 * 4096
    size = area + (delta_room + 4095) // 4096 * 4096
    head = struct.pack("<8sIIQQIIIIIIII", MAGIC, version, HEADER_SIZE, size, generation, pid, 0, HEADER_SIZE, len(base),
                       0, 0xFFFFFFFF, area, 0)
    return head + base, size, area


class TableFile:
    """A table file written as the daemon writes it: under a temporary name, locked, renamed in."""

    def __init__(self, path, base, generation=1, delta_room=65536, lock=True, mode=0o644):
        data, self.size, self.cursor = encode_file(base, generation, delta_room, os.getpid())
        tmp = "%s.tmp.%d" % (path, os.getpid())
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.ftruncate(fd, self.size)
        if lock:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, LOCK_BYTE, os.SEEK_SET)
        os.rename(tmp, path)
        self.fd, self.path = fd, path

    def append(self, section):
        """A delta section made current: written, then the header's delta word."""
        at = self.cursor
        if at + len(section) > self.size:
            raise ValueError("no room")
        os.pwrite(self.fd, section, at)
        os.pwrite(self.fd, struct.pack("<II", at, ~at & 0xFFFFFFFF), H_DELTA)
        self.cursor = (at + len(section) + ALIGN - 1) // ALIGN * ALIGN
        return at

    def supersede(self):
        os.pwrite(self.fd, struct.pack("<I", 1), H_STATE)
        self.close()

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1
