// How mymachinesctl shows machines to people: tables and property lists.
import { readFileSync, readdirSync } from 'node:fs';
import { Address4, Address6 } from 'ip-address';

/** A machine as mymachinesctl shows it, and prints it with --json (without osRelease): its own shape,
 *  kept as it was when the daemon's interface took machined 262's. */
export interface MachineJson {
  name: string;
  id?: string;
  service?: string;
  class: string;
  leader: number;
  rootDirectory?: string;
  unit?: string;
  timestamp: { realtime: number; monotonic: number };
  ifIndices?: number[];
  addresses?: { family: number; address: number[] }[];
  uidShift?: number;
  state: string;
  vSockCid?: number;
  sshAddress?: string;
  osRelease?: Record<string, string>;
  osReleaseError?: string;
}

/** A reply of io.systemd.Machine.List (machined 262's fields, and our ifIndices and state). */
interface ListReply {
  name: string;
  id?: string;
  service?: string;
  class: string;
  leader?: { pid: number };
  rootDirectory?: string;
  unit?: string;
  timestamp?: { realtime?: number; monotonic?: number };
  ifIndices?: number[];
  addresses?: { ifindex?: number; family: number; address: number[] }[];
  UIDShift?: number;
  state?: string;
  vSockCid?: number;
  sshAddress?: string;
  OSRelease?: string[];
  osReleaseError?: string;
}

/** A List reply in our shape (key order as printed): the leader's PID, a machine's addresses without the
 *  interface inside the container, the UID shift of a container, os-release as a map. */
export function fromList(reply: unknown): MachineJson {
  const w = reply as ListReply;
  const m: MachineJson = { name: w.name } as MachineJson;
  if (w.id) m.id = w.id;
  if (w.service) m.service = w.service;
  m.class = w.class;
  m.leader = w.leader?.pid ?? 0;
  if (w.rootDirectory) m.rootDirectory = w.rootDirectory;
  if (w.unit) m.unit = w.unit;
  m.timestamp = { realtime: w.timestamp?.realtime ?? 0, monotonic: w.timestamp?.monotonic ?? 0 };
  if (w.ifIndices?.length) m.ifIndices = w.ifIndices;
  // The host's own addresses are not shown: they are no machine's.
  if (w.addresses?.length && w.class !== 'host') m.addresses = w.addresses.map((a) => ({ family: a.family, address: a.address }));
  if (w.class === 'container' && w.UIDShift !== undefined) m.uidShift = w.UIDShift;
  m.state = w.state ?? 'running';
  if (w.vSockCid !== undefined) m.vSockCid = w.vSockCid;
  if (w.sshAddress) m.sshAddress = w.sshAddress;
  if (w.osReleaseError) m.osReleaseError = w.osReleaseError;
  if (w.OSRelease?.length) m.osRelease = Object.fromEntries(w.OSRelease.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return m;
}

/** What --json prints of a machine: all but os-release (a table column, not a property). */
export function jsonView(m: MachineJson): Omit<MachineJson, 'osRelease'> {
  const { osRelease: _, ...rest } = m;
  return rest;
}

function formatAddress(a: { family: number; address: number[] }): string {
  return a.family === 2 ? Address4.fromInteger(a.address.reduce((n, b) => n * 256 + b, 0)).correctForm() : Address6.fromUnsignedByteArray(a.address).correctForm();
}

/** Columns padded to their widest cell, the last one not. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join(' ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function listTable(machines: MachineJson[]): string {
  const rows = machines.map((m) => {
    const addrs = (m.addresses ?? []).map(formatAddress);
    return [
      m.name,
      m.class,
      m.service || '-',
      m.osRelease?.ID ?? '-',
      m.osRelease?.VERSION_ID ?? '-',
      addrs.length === 0 ? '-' : addrs.length === 1 ? addrs[0] : `${addrs[0]}…`,
    ];
  });
  const body = rows.length ? table(['MACHINE', 'CLASS', 'SERVICE', 'OS', 'VERSION', 'ADDRESSES'], rows) : '';
  return `${body}${rows.length ? '\n' : ''}${rows.length} machine${rows.length === 1 ? '' : 's'} listed.\n`;
}

/** The host's name of a network interface, as machinectl shows it; the index when it has none. */
function interfaceName(index: number): string {
  for (const name of readdirSync('/sys/class/net')) {
    try {
      if (Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8')) === index) return name;
    } catch {
      /* gone meanwhile */
    }
  }
  return String(index);
}

function since(realtimeUs: number): string {
  const d = new Date(realtimeUs / 1000);
  const ago = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
  const rel = ago < 60 ? `${ago}s ago` : ago < 3600 ? `${Math.floor(ago / 60)}min ago` : `${Math.floor(ago / 3600)}h ago`;
  return `${d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}; ${rel}`;
}

export function statusText(m: MachineJson, leaderComm: string): string {
  const rows: [string, string][] = [
    ['Since', since(m.timestamp.realtime)],
    ['Leader', `${m.leader}${leaderComm ? ` (${leaderComm})` : ''}`],
    ['Service', `${m.service || '-'}; class ${m.class}`],
  ];
  if (m.rootDirectory) rows.push(['Root', m.rootDirectory]);
  if (m.ifIndices?.length) rows.push(['Iface', m.ifIndices.map(interfaceName).join(' ')]);
  const addrs = (m.addresses ?? []).map(formatAddress);
  addrs.forEach((a, i) => rows.push([i === 0 ? 'Address' : '', a]));
  const os = m.osRelease?.PRETTY_NAME ?? m.osRelease?.NAME;
  if (os) rows.push(['OS', os]);
  // "Cannot read the OS release of machine 'x': its root ...": the reason is what follows the colon.
  else if (m.osReleaseError) rows.push(['OS', `(cannot be read: ${m.osReleaseError.replace(/^[^:]*: /, '')})`]);
  if (m.uidShift) rows.push(['UID Shift', String(m.uidShift)]);
  if (m.unit) rows.push(['Unit', m.unit]);
  if (m.vSockCid !== undefined) rows.push(['VSOCK CID', String(m.vSockCid)]);
  if (m.sshAddress) rows.push(['SSH', m.sshAddress]);
  rows.push(['State', m.state]);
  const head = m.id ? `${m.name}(${m.id})` : m.name;
  return `${head}\n${rows.map(([k, v]) => `${k.padStart(16)}${k ? ':' : ' '} ${v}`).join('\n')}\n`;
}

/** machinectl show's properties, in its order. */
const PROPERTIES: [string, (m: MachineJson) => string][] = [
  ['Name', (m) => m.name],
  ['Id', (m) => m.id ?? ''],
  ['Timestamp', (m) => String(m.timestamp.realtime)],
  ['TimestampMonotonic', (m) => String(m.timestamp.monotonic)],
  ['Service', (m) => m.service ?? ''],
  ['Unit', (m) => m.unit ?? ''],
  ['Leader', (m) => String(m.leader)],
  ['Class', (m) => m.class],
  ['RootDirectory', (m) => m.rootDirectory ?? ''],
  ['NetworkInterfaces', (m) => (m.ifIndices ?? []).join(' ')],
  ['Addresses', (m) => (m.addresses ?? []).map(formatAddress).join(' ')],
  ['UIDShift', (m) => (m.uidShift === undefined ? '' : String(m.uidShift))],
  ['State', (m) => m.state],
];

export const PROPERTY_NAMES = PROPERTIES.map(([k]) => k);

export function properties(m: MachineJson): [string, string][] {
  return PROPERTIES.map(([k, get]) => [k, get(m)]);
}
