#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for mymachinesd, only to test the NSS module: it writes lookup tables with fixed data
(test/table_writer.py), holds their locks as the daemon does, writes broken and hostile ones, and
replaces tables on command. The real end-to-end tests run against the real daemon.

Usage: fake_daemon.py DIR  -- makes, in DIR, one directory per case, each with its nss-table (the
module looks for it beside MYMACHINES_SOCKET=DIR/CASE/io.systemd.Machine):
  ok/         the fixture below, held by this process
  dead/       the same, held by nobody (its daemon exited)
  notroot/, writable/, groupw/, symlink/, fifo/, dir/   tables the module must not trust
  empty/      no table at all
  badmagic/, badversion/, truncated/, c-*/              malformed tables (see CORRUPT)
  hostile/    well-formed, with records that claim host IDs below 65536
  layered/    a base with two delta sections over it
  swap/       replaced on command (control socket)
  proc/       held by a child process whose PID is in proc/pid (to stop and kill it)
  control     a socket: "replace N file|delta" replaces swap/'s table N times, alternating
              generations, then answers "done N"; "restart" gives proc/ a new holder and table.
  ready       written once everything is there
"""
import fcntl
import os
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table_writer as tw  # noqa: E402

A4, A6 = tw.AF_INET, tw.AF_INET6


def vm(name, *addrs):
    return {"name": name, "addrs": list(addrs)}


def container(name, lines, *addrs):
    return {"name": name, "addrs": list(addrs), "container": True, "uid": lines, "gid": lines}


def fixture(web1_extra=()):
    ms = [
        container("web1", [(0, 100000, 65536)], (A4, 0, "10.0.0.1"), (A4, 0, "10.0.0.2"), (A6, 0, "fd00::1"),
                  (A6, 7, "fe80::1"), *web1_extra),
        vm("v4only", (A4, 0, "10.0.1.1")),
        vm("v6only", (A6, 0, "fd00::2")),
        vm("many", *[(A4, 0, "10.1.%d.%d" % (i // 250, i % 250 + 1)) for i in range(200)]),
        vm("oddfamily", (99, 0, b"\1\2\3\0")),
        # IPv6: only a link-local address (a hostent cannot carry its scope)
        vm("llonly", (A4, 0, "10.0.3.1"), (A6, 3, "fe80::5")),
        # IPv6: link-local first, then a global one
        vm("llfirst", (A6, 4, "fe80::6"), (A6, 0, "fd00::6")),
        vm("multi"), vm("alias1.example"), vm("alias2"),
        # a container without a user namespace (identity map): no records
        container("plain", [(0, 0, 4294967295)]),
        # a dot in the name: no records either
        container("foo.bar", [(0, 500000, 65536)]),
    ]
    rev = tw.reverse_of(ms) + [(A4, "10.9.9.9", ["multi", "alias1.example", "alias2"])]
    return ms, rev


def base(ms, rev=None, generation=1, **kw):
    return tw.encode_section(tw.BASE, generation, ms, rev, **kw)


def write_raw(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def generation_table(k):
    """web1 with three addresses that all say k: a reader that mixes two tables sees it."""
    ms = [vm("web1", (A4, 0, "10.%d.0.1" % k), (A4, 0, "10.%d.0.2" % k), (A6, 0, "fd00::%x" % k))]
    return ms


def hold(path, data_section, delta_room=65536):
    """A child process that writes and holds a table until killed; returns its PID."""
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            t = tw.TableFile(path, data_section, delta_room=delta_room)
            with open(os.path.join(os.path.dirname(path), "pid.tmp"), "w") as f:
                f.write("%d\n" % os.getpid())
            os.rename(os.path.join(os.path.dirname(path), "pid.tmp"), os.path.join(os.path.dirname(path), "pid"))
            while True:
                signal.pause()
        finally:
            os._exit(0)
    return pid


def main():
    d = sys.argv[1]
    ms, rev = fixture()
    ok_base = base(ms, rev)
    mk = lambda name: os.makedirs(os.path.join(d, name), exist_ok=True) or os.path.join(d, name, "nss-table")  # noqa: E731
    keep = []

    keep.append(tw.TableFile(mk("ok"), ok_base))
    t = tw.TableFile(mk("dead"), ok_base)
    t.close()  # lock released: as a daemon that exited, table left behind

    t = tw.TableFile(mk("notroot"), ok_base)
    os.chown(t.path, 65534, 65534)
    keep.append(t)
    keep.append(tw.TableFile(mk("writable"), ok_base, mode=0o666))
    keep.append(tw.TableFile(mk("groupw"), ok_base, mode=0o664))
    mk("symlink")
    os.symlink(os.path.join(d, "ok", "nss-table"), os.path.join(d, "symlink", "nss-table"))
    os.mkfifo(mk("fifo"), 0o644)
    os.mkdir(mk("dir"))
    mk("empty")

    # Malformed tables, all held as if a daemon ran: each case says what is broken.
    data, size, area = tw.encode_file(ok_base)
    corrupt = {
        "badmagic": b"XYMTABLE" + data[8:],
        "badversion": data[:8] + struct.pack("<I", 2) + data[12:],
        "truncated": data[: len(data) // 2],
        # a base section that says it is bigger than the file
        "c-basesize": data[:44] + struct.pack("<I", size) + data[48:],
    }
    for case, raw in corrupt.items():
        p = mk(case)
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, raw)
        if case != "truncated":
            os.ftruncate(fd, size)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, tw.LOCK_BYTE, os.SEEK_SET)
        keep.append(fd)
    # Sections with one field wrong (header offsets: section.ts / table.c).
    broken_sections = {
        "c-machines": {28: 0x7FFFFFF0},  # machines array past the section
        "c-buckets": {32: 3},  # a bucket count that is no power of two
        "c-strings": {96: 0xFFFFFF},  # strings past the section
    }
    for case, ov in broken_sections.items():
        keep.append(tw.TableFile(mk(case), base(ms, rev, overrides=ov)))
    # Records that point outside their arrays.
    bad = [dict(m) for m in ms]
    sec = bytearray(base(bad, rev))
    n_machines, m_off, nb, ni_off = struct.unpack_from("<IIII", sec, 24)
    struct.pack_into("<I", sec, m_off + 0, 0xFFFFF)  # web1's name past the strings (hash still matches)
    keep.append(tw.TableFile(mk("c-name"), bytes(sec)))
    sec = bytearray(base(ms, rev))
    nrev, r_off = struct.unpack_from("<II", sec, 40)
    for i in range(nrev):
        struct.pack_into("<I", sec, r_off + 28 * i + 20, 0xFFFF0)  # every reverse entry's names past the array
    keep.append(tw.TableFile(mk("c-revref"), bytes(sec)))
    sec = bytearray(base(ms, rev))
    nuid, u_off = struct.unpack_from("<II", sec, 72)
    struct.pack_into("<I", sec, u_off + 12, 999)  # web1's uid segment names machine 999
    keep.append(tw.TableFile(mk("c-segment"), bytes(sec)))
    # A reverse entry whose name is no host name.
    keep.append(tw.TableFile(mk("c-revname"), base(ms, [(A4, "10.0.0.1", ["bad name"])])))
    # Deltas: past the file, a torn word, a cycle, too deep.
    t = tw.TableFile(mk("c-delta-far"), ok_base)
    os.pwrite(t.fd, struct.pack("<II", 0x7FFFFFC0, ~0x7FFFFFC0 & 0xFFFFFFFF), tw.H_DELTA)
    keep.append(t)
    t = tw.TableFile(mk("c-delta-torn"), ok_base)
    at = t.append(tw.encode_section(tw.DELTA, 2, [vm("web1", (A4, 0, "10.3.3.3"))]))
    os.pwrite(t.fd, struct.pack("<II", at, 0), tw.H_DELTA)
    keep.append(t)
    t = tw.TableFile(mk("c-delta-cycle"), ok_base)
    at = t.cursor
    t.append(tw.encode_section(tw.DELTA, 2, [vm("web1", (A4, 0, "10.3.3.3"))], parent=at))
    keep.append(t)
    t = tw.TableFile(mk("c-delta-deep"), ok_base)
    parent = 0
    for i in range(9):
        parent = t.append(tw.encode_section(tw.DELTA, 2 + i, [vm("x%d" % i)], parent=parent))
    keep.append(t)

    # Hostile but well-formed: records for host IDs the host owns, and a VM with user ranges.
    hostile = [
        container("web1", [(0, 0, 65536)]),  # vu-web1-0 would be UID 0
        {"name": "vm1", "addrs": [], "uid": [(0, 300000, 10)], "gid": []},  # not a container
        container("big", [(0, 4294900000, 1000000)]),  # past 2^32
    ]
    hsegs = [(0, 65536, 0, 0), (300000, 10, 0, 1), (4294900000, 67295, 0, 2)]
    keep.append(tw.TableFile(mk("hostile"), base(hostile, [], uid=hsegs, gid=[])))

    # Layers: base, L1 over it, L0 over L1.
    lbase = [vm("web1", (A4, 0, "10.4.0.1")), vm("gone1", (A4, 0, "10.4.0.2")), vm("keep1", (A4, 0, "10.4.0.3")),
             container("c1", [(0, 200000, 1000)]), container("c2", [(0, 210000, 1000)]), vm("a"), vm("b")]
    lrev = tw.reverse_of(lbase) + [(A4, "10.4.0.9", ["a", "b"])]
    t = tw.TableFile(mk("layered"), base(lbase, lrev))
    l1 = [dict(name="gone1", present=False), vm("new1", (A4, 0, "10.4.0.4")), container("c1", [(0, 220000, 1000)])]
    l1rev = [(A4, "10.4.0.2", []), (A4, "10.4.0.4", ["new1"]), (A4, "10.4.0.9", ["b"])]
    at = t.append(tw.encode_section(tw.DELTA, 2, l1, l1rev))
    l0 = [vm("WEB1", (A4, 0, "10.4.0.5")), dict(name="new1", present=False), dict(name="c2", present=False)]
    l0rev = [(A4, "10.4.0.1", []), (A4, "10.4.0.5", ["WEB1"]), (A4, "10.4.0.4", [])]
    t.append(tw.encode_section(tw.DELTA, 3, l0, l0rev, parent=at))
    keep.append(t)

    # The table replaced on command.
    swap_path = mk("swap")
    swap = [tw.TableFile(swap_path, base(generation_table(1)), delta_room=1 << 20)]

    proc_path = mk("proc")
    holder = [hold(proc_path, ok_base)]

    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.bind(os.path.join(d, "control"))
    ctl.listen(4)
    while not os.path.exists(os.path.join(d, "proc", "pid")):
        time.sleep(0.01)
    open(os.path.join(d, "ready"), "w").close()

    def stop(*_):
        for pid in holder:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    generation = 1
    while True:
        conn, _ = ctl.accept()
        with conn:
            words = conn.makefile("r").readline().split()
            if words[:1] == ["replace"]:
                n, mode = int(words[1]), words[2]
                for _ in range(n):
                    generation += 1
                    k = generation % 200 + 1
                    if mode == "delta":
                        try:
                            swap[0].append(tw.encode_section(tw.DELTA, generation, generation_table(k)))
                            continue
                        except ValueError:
                            pass  # no room: a new file, as the daemon does
                    new = tw.TableFile(swap_path, base(generation_table(k), generation=generation), generation,
                                       delta_room=1 << 20)
                    swap[0].supersede()
                    swap[0] = new
                conn.sendall(b"done %d\n" % n)
            elif words[:1] == ["restart"]:
                for pid in holder:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                    except (ProcessLookupError, ChildProcessError):
                        pass
                os.unlink(os.path.join(d, "proc", "pid"))
                holder[:] = [hold(proc_path, base(*fixture([(A4, 0, "10.0.0.77")])))]
                while not os.path.exists(os.path.join(d, "proc", "pid")):
                    time.sleep(0.01)
                conn.sendall(b"done\n")
            else:
                conn.sendall(b"what?\n")


if __name__ == "__main__":
    main()
