// Runs in a worker thread: watches the addresses of containers' network namespaces.
//
// For each watched leader it makes two netlink sockets inside the leader's network namespace (setns()
// on this thread only, then straight back): one subscribed to address changes, one for dumps. A
// blocking poll() on all event sockets wakes it when anything changes, then it dumps that namespace's
// addresses and posts them when they differ from the last post. So addresses are fresh within
// milliseconds and nothing here ever runs on the main thread's event loop.
//
// With the addresses go the peers of the interfaces they sit on: a veth's link (IFLA_LINK) names its
// other end, in the namespace IFLA_LINK_NETNSID says. An inner interface whose link is host interface H,
// and H's link that inner interface (a dump of our own namespace's links), is the pair; a link-local
// address is only reachable through that H, so it is the address's scope.
import { parentPort, workerData } from 'node:worker_threads';
import { readlinkSync } from 'node:fs';
import * as c from './libc.js';
import { AF_INET, AF_INET6, type Address, RT_SCOPE_HOST, RT_SCOPE_LINK, sortAddresses } from '../address.js';

export type WorkerRequest = { op: 'watch'; id: number; pid: number } | { op: 'unwatch'; id: number };
export type WorkerReply =
  | { id: number; addresses: Address[] }
  | { id: number; error: 'no-private-network' | 'gone' | 'failed'; message?: string };

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SOCK_NONBLOCK = 0o4000;
const NETLINK_ROUTE = 0;
const RTMGRP_IPV4_IFADDR = 0x10;
const RTMGRP_IPV6_IFADDR = 0x100;
const RTMGRP_LINK = 0x1;
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const IFLA_LINK = 5;
const IFLA_LINK_NETNSID = 37;
const RTM_NEWADDR = 20;
const RTM_GETADDR = 22;
const NLM_F_REQUEST = 1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
const IFA_F_DADFAILED = 0x08;
const IFA_F_DEPRECATED = 0x20;
const IFA_F_TENTATIVE = 0x40;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const POLL_MS = 100;

interface Watch {
  events: number;
  dump: number;
  last: string;
}

const watches = new Map<number, Watch>();
/** A dump socket in our own (the host's) namespace, for the host side of veth pairs. */
let hostDump = -1;
const selfNetns = readlinkSync('/proc/thread-self/ns/net');
const selfNetnsFd = c.open('/proc/thread-self/ns/net', c.O_RDONLY | c.O_CLOEXEC);
const buf = Buffer.alloc(64 * 1024);
/** Written by the main thread after each message (netns.ts): wakes the poll() in loop(). */
const wakeFd: number = workerData.wakeFd;
let seq = 1;

function post(m: WorkerReply): void {
  parentPort!.postMessage(m);
}

function netlinkSocket(groups: number): number {
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0) return -1;
  const addr = Buffer.alloc(12);
  addr.writeUInt16LE(AF_NETLINK, 0);
  addr.writeUInt32LE(groups, 8);
  if (c.bind(fd, addr, 12) !== 0) {
    c.close(fd);
    return -1;
  }
  const size = Buffer.alloc(4);
  size.writeInt32LE(1 << 20, 0);
  c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, 4);
  return fd;
}

function watch(id: number, pid: number): void {
  let ns: string;
  try {
    ns = readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return post({ id, error: 'gone' });
  }
  // netns.ts sends only leaders whose namespace was not ours, but that may be the namespace a state
  // file remembers: a leader that has since joined ours must not have our addresses watched as its own.
  if (ns === selfNetns) return post({ id, error: 'no-private-network' });
  const nsFd = c.open(`/proc/${pid}/ns/net`, c.O_RDONLY | c.O_CLOEXEC);
  if (nsFd < 0) return post({ id, error: 'gone' });
  let events = -1;
  let dump = -1;
  if (c.setns(nsFd, c.CLONE_NEWNET) === 0) {
    events = netlinkSocket(RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_LINK);
    dump = netlinkSocket(0);
    // Back to our own namespace before anything else; a failure here would leave this thread astray.
    if (c.setns(selfNetnsFd, c.CLONE_NEWNET) !== 0) throw new Error('cannot return to the daemon network namespace');
  }
  c.close(nsFd);
  if (events < 0 || dump < 0) {
    if (events >= 0) c.close(events);
    if (dump >= 0) c.close(dump);
    return post({ id, error: 'failed', message: `netlink in the namespace of PID ${pid}: errno ${c.errno()}` });
  }
  const w: Watch = { events, dump, last: '' };
  watches.set(id, w);
  refresh(id, w);
}

function unwatch(id: number): void {
  const w = watches.get(id);
  if (!w) return;
  c.close(w.events);
  c.close(w.dump);
  watches.delete(id);
}

function refresh(id: number, w: Watch): void {
  const found = dumpAddresses(w.dump);
  if (!found) return post({ id, error: 'failed', message: `address dump failed: errno ${c.errno()}` });
  const list = withPeers(found, w.dump);
  const key = JSON.stringify(list);
  if (key === w.last) return;
  w.last = key;
  post({ id, addresses: list });
}

/** A netlink dump of `type` (RTM_GETADDR, RTM_GETLINK): each message of the answer (its payload) to
 *  `each`; false when the dump failed. */
function dump(fd: number, type: number, payload: number, each: (type: number, m: Buffer) => void): boolean {
  const req = Buffer.alloc(16 + payload);
  req.writeUInt32LE(req.length, 0);
  req.writeUInt16LE(type, 4);
  req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  const mySeq = seq++;
  req.writeUInt32LE(mySeq, 8);
  if (c.send(fd, req, req.length, 0) < 0) return false;
  const deadline = Date.now() + 1000;
  for (;;) {
    const n = Number(c.recv(fd, buf, buf.length, 0));
    if (n < 0) {
      const e = c.errno();
      if ((e === c.EAGAIN || e === c.EINTR) && Date.now() < deadline) {
        pollOne(fd, 10);
        continue;
      }
      return false;
    }
    for (let off = 0; off + 16 <= n; ) {
      const len = buf.readUInt32LE(off);
      const t = buf.readUInt16LE(off + 4);
      const s = buf.readUInt32LE(off + 8);
      if (len < 16 || off + len > n) break;
      if (s === mySeq) {
        if (t === NLMSG_DONE) return true;
        if (t === NLMSG_ERROR) return false;
        each(t, buf.subarray(off + 16, off + len));
      }
      off += (len + 3) & ~3;
    }
  }
}

/** RTM_GETADDR dump of every address, filtered as machined (reference §3.1) and sorted its way. */
function dumpAddresses(fd: number): Address[] | undefined {
  const out: Address[] = [];
  const ok = dump(fd, RTM_GETADDR, 8, (type, m) => {
    if (type !== RTM_NEWADDR) return;
    const a = parseAddr(m);
    if (a) out.push(a);
  });
  return ok ? sortAddresses(out) : undefined;
}

/** Each interface's link to an interface of another namespace (IFLA_LINK with IFLA_LINK_NETNSID):
 *  ifindex -> the other end's ifindex there. Empty when the dump fails. */
function dumpLinks(fd: number): Map<number, number> {
  const links = new Map<number, number>();
  dump(fd, RTM_GETLINK, 16, (type, m) => {
    if (type !== RTM_NEWLINK || m.length < 16) return;
    const ifindex = m.readInt32LE(4);
    let link: number | undefined;
    let elsewhere = false;
    for (let off = 16; off + 4 <= m.length; ) {
      const len = m.readUInt16LE(off);
      const t = m.readUInt16LE(off + 2) & 0x3fff;
      if (len < 4 || off + len > m.length) break;
      if (t === IFLA_LINK && len >= 8) link = m.readUInt32LE(off + 4);
      else if (t === IFLA_LINK_NETNSID) elsewhere = true;
      off += (len + 3) & ~3;
    }
    if (link !== undefined && elsewhere) links.set(ifindex, link);
  });
  return links;
}

/** The addresses with the host-side peer of their interface, where both ends name each other. */
function withPeers(list: Address[], innerDump: number): Address[] {
  if (!list.some((a) => a.scope === RT_SCOPE_LINK)) return list;
  const inner = dumpLinks(innerDump);
  if (inner.size === 0) return list;
  if (hostDump < 0) hostDump = netlinkSocket(0);
  const host = hostDump < 0 ? new Map<number, number>() : dumpLinks(hostDump);
  return list.map((a) => {
    const peer = inner.get(a.ifindex);
    return peer !== undefined && host.get(peer) === a.ifindex ? { ...a, peer } : a;
  });
}

function parseAddr(m: Buffer): Address | undefined {
  if (m.length < 8) return undefined;
  const family = m[0];
  const scope = m[3];
  const ifindex = m.readUInt32LE(4);
  let flags = m[2];
  let local: Buffer | undefined;
  let address: Buffer | undefined;
  for (let off = 8; off + 4 <= m.length; ) {
    const len = m.readUInt16LE(off);
    const type = m.readUInt16LE(off + 2);
    if (len < 4 || off + len > m.length) break;
    const data = m.subarray(off + 4, off + len);
    if (type === IFA_LOCAL) local = data;
    else if (type === IFA_ADDRESS) address = data;
    else if (type === IFA_FLAGS && data.length >= 4) flags = data.readUInt32LE(0);
    off += (len + 3) & ~3;
  }
  if (family !== AF_INET && family !== AF_INET6) return undefined;
  if (flags & (IFA_F_DEPRECATED | IFA_F_TENTATIVE | IFA_F_DADFAILED)) return undefined;
  if (scope >= RT_SCOPE_HOST) return undefined; // host and nowhere: loopback never reaches a machine
  const bytes = local ?? address;
  if (!bytes || bytes.length !== (family === AF_INET ? 4 : 16)) return undefined;
  return { family, bytes: [...bytes], ifindex, scope };
}

function pollOne(fd: number, ms: number): void {
  const p = Buffer.alloc(8);
  p.writeInt32LE(fd, 0);
  p.writeInt16LE(c.POLLIN, 4);
  c.poll(p, 1, ms);
}

/** Waits for address events on every watched namespace, or a message from the main thread, then
 *  yields so that messages are taken. */
function loop(): void {
  const ids = [...watches.keys()];
  const fds = Buffer.alloc(8 * (ids.length + 1));
  fds.writeInt32LE(wakeFd, 0);
  fds.writeInt16LE(c.POLLIN, 4);
  ids.forEach((id, i) => {
    fds.writeInt32LE(watches.get(id)!.events, 8 * (i + 1));
    fds.writeInt16LE(c.POLLIN, 8 * (i + 1) + 4);
  });
  if (c.poll(fds, ids.length + 1, POLL_MS) > 0) {
    if (fds.readInt16LE(6) !== 0) c.read(wakeFd, buf, 8); // the messages themselves come through the event loop
    ids.forEach((id, i) => {
      if (fds.readInt16LE(8 * (i + 1) + 6) === 0) return;
      const w = watches.get(id);
      if (!w) return;
      // Drain the events (their content does not matter: a dump says what is there now).
      while (Number(c.recv(w.events, buf, buf.length, 0)) > 0);
      refresh(id, w);
    });
  }
  setImmediate(loop);
}

parentPort!.on('message', (m: WorkerRequest) => {
  if (m.op === 'watch') watch(m.id, m.pid);
  else unwatch(m.id);
});
loop();
