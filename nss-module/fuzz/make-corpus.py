#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the fuzz target's seed corpus (fuzz/corpus/): whole table files, made with
test/table_writer.py from the C tests' fixtures, with deltas, and small. Run it after a change of
the format; the files are committed."""
import os
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "test"))
import fake_daemon as fd  # noqa: E402
import table_writer as tw  # noqa: E402

A4, A6 = tw.AF_INET, tw.AF_INET6


def file_with(base, deltas=()):
    """A table file as the module maps it: header, base, deltas each over the one before."""
    data, size, area = tw.encode_file(base, delta_room=4096 * (1 + len(deltas)))
    buf = bytearray(data) + bytearray(size - len(data))
    at, parent = area, 0
    for d in deltas:
        sec = d(parent)
        buf[at:at + len(sec)] = sec
        struct.pack_into("<II", buf, tw.H_DELTA, at, ~at & 0xFFFFFFFF)
        parent, at = at, (at + len(sec) + tw.ALIGN - 1) // tw.ALIGN * tw.ALIGN
    return bytes(buf[:max(at, area)])  # holes at the end are left out: the header's size then differs, too


def main():
    out = os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    ms, rev = fd.fixture()
    layered_base = [fd.vm("web1", (A4, 0, "10.4.0.1")), fd.vm("gone1", (A4, 0, "10.4.0.2")),
                    fd.container("c1", [(0, 200000, 1000)]), fd.container("c2", [(0, 210000, 1000)])]
    cases = {
        "fixture": file_with(fd.base(ms, rev)),
        "one-vm": file_with(fd.base([fd.vm("web1", (A4, 0, "10.0.0.1"), (A6, 7, "fe80::1"))])),
        "one-container": file_with(fd.base([fd.container("web1", [(0, 100000, 65536)], (A4, 0, "10.0.0.1"))])),
        "empty": file_with(fd.base([])),
        "layered": file_with(fd.base(layered_base), [
            lambda p: tw.encode_section(tw.DELTA, 2, [dict(name="gone1", present=False), fd.container("c1", [(0, 220000, 1000)])],
                                        [(A4, "10.4.0.2", [])], parent=p),
            lambda p: tw.encode_section(tw.DELTA, 3, [fd.vm("WEB1", (A4, 0, "10.4.0.5")), dict(name="c2", present=False)],
                                        [(A4, "10.4.0.1", []), (A4, "10.4.0.5", ["WEB1"])], parent=p),
        ]),
        "hostile": file_with(fd.base([fd.container("web1", [(0, 0, 65536)]), fd.container("big", [(0, 4294900000, 1000000)])],
                                     [], uid=[(0, 65536, 0, 0), (4294900000, 67295, 0, 1)], gid=[])),
    }
    for name, data in cases.items():
        # The header's file size must be the file's: fix it for the cut ones.
        data = bytearray(data)
        struct.pack_into("<Q", data, 16, len(data))
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("wrote %d files to %s" % (len(cases), out))


if __name__ == "__main__":
    main()
