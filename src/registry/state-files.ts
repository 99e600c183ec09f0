// State files in machined's format (reference §2.5), read by sd-login and nss-mymachines, plus keys of
// our own for what machined lacks. Each write is atomic (a temporary file, then rename), so that readers
// and inotify watchers only ever see whole files and a crash never leaves half a file.
//
// The calls are synchronous on purpose: the state directory is on /run, a tmpfs, where writing a small
// file costs microseconds and never waits for a disk, while each fs.promises call is a thread-pool round
// trip (a registration made four of them and spent most of its time waiting). A registration is answered
// only after its file is written anyway.
import { mkdirSync, readdirSync, readlinkSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addressToString, parseAddress } from './address.js';
import { type IdMapLine, readSmallFile } from './linux/proc.js';
import type { Machine } from './machine.js';
import { isValidMachineName } from './names.js';

/** What a state file holds; enough to take a machine back after a restart. */
export interface StateRecord {
  name: string;
  unit: string;
  service: string;
  rootDirectory: string;
  id: string;
  leader: number;
  class: string;
  realtime: number;
  monotonic: number;
  ifIndices: number[];
  leaderStartTime: string;
  addresses: string[];
  ownCgroup: string;
  allocateUnit: boolean;
  netns: string;
  uidMap: IdMapLine[];
  gidMap: IdMapLine[];
  vSockCid?: number;
  sshAddress?: string;
  sshPrivateKeyPath?: string;
  supervisor?: { pid: number; pidfdId: number };
  uid: number;
  /** The file as read. */
  text: string;
}

export class StateFiles {
  constructor(readonly dir: string) {}

  init(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
  }

  /** The file's content for a machine. */
  serialize(m: Machine): string {
    const lines = ['# This is private data. Do not parse.', `NAME=${m.name}`, `UID=${m.uid}`];
    if (m.unit) lines.push(`SCOPE=${cescape(m.unit)}`);
    if (m.service) lines.push(`SERVICE=${cescape(m.service)}`);
    if (m.rootDirectory) lines.push(`ROOT=${cescape(m.rootDirectory)}`);
    if (m.id) lines.push(`ID=${m.id}`);
    lines.push(`LEADER=${m.leader}`);
    if (m.leaderPidfdId) lines.push(`LEADER_PIDFDID=${m.leaderPidfdId}`);
    if (m.supervisor) lines.push(`SUPERVISOR=${m.supervisor.pid}`, ...(m.supervisor.pidfdId ? [`SUPERVISOR_PIDFDID=${m.supervisor.pidfdId}`] : []));
    lines.push(`CLASS=${m.class}`, `REALTIME=${m.timestamp.realtime}`, `MONOTONIC=${m.timestamp.monotonic}`);
    if (m.ifIndices.length) lines.push(`NETIF=${m.ifIndices.join(' ')}`);
    if (m.vSockCid !== undefined) lines.push(`VSOCK_CID=${m.vSockCid}`);
    if (m.sshAddress) lines.push(`SSH_ADDRESS=${cescape(m.sshAddress)}`);
    if (m.sshPrivateKeyPath) lines.push(`SSH_PRIVATE_KEY_PATH=${cescape(m.sshPrivateKeyPath)}`);
    // Ours: machined ignores unknown keys.
    lines.push(`LEADER_STARTTIME=${m.leaderStartTime}`);
    if (m.addresses.length) lines.push(`ADDRESSES=${m.addresses.map(addressToString).join(' ')}`);
    if (m.ownCgroup) lines.push(`OWN_CGROUP=${cescape(m.ownCgroup)}`);
    if (m.allocateUnit) lines.push('ALLOCATE_UNIT=1');
    if (m.netns) lines.push(`NETNS=${m.netns}`);
    if (m.uidMap.length && m.gidMap.length) lines.push(`UID_MAP=${idMapText(m.uidMap)}`, `GID_MAP=${idMapText(m.gidMap)}`);
    return lines.join('\n') + '\n';
  }

  write(m: Machine): void {
    const path = join(this.dir, m.name);
    const tmp = join(this.dir, `.#${m.name}.${process.pid}.${Math.random().toString(36).slice(2)}`);
    // No fsync: what must survive is a crash of the daemon, and the page cache outlives that; /run
    // does not outlive a reboot anyway.
    writeFileSync(tmp, this.serialize(m), { mode: 0o644, flag: 'wx' });
    try {
      renameSync(tmp, path);
    } catch (e) {
      this.removeFile(tmp.slice(this.dir.length + 1));
      throw e;
    }
    if (m.unit) this.link(m.unit, m.name);
  }

  /** unit:<unit> -> <name>, through which sd_pid_get_machine_name() finds the machine of a process. */
  private link(unit: string, name: string): void {
    const path = join(this.dir, `unit:${unit}`);
    const tmp = join(this.dir, `.#unit.${process.pid}.${Math.random().toString(36).slice(2)}`);
    symlinkSync(name, tmp);
    renameSync(tmp, path);
  }

  remove(m: Pick<Machine, 'name' | 'unit'>): void {
    this.removeFile(m.name);
    if (m.unit) this.removeFile(`unit:${m.unit}`);
  }

  /** The state file of machine `name`, parsed; undefined when it cannot be read or is not one. */
  read(name: string): StateRecord | undefined {
    const rec = parseState(readSmallFile(join(this.dir, name)) ?? '');
    return rec?.name === name ? rec : undefined;
  }

  /** The names of the state files (not the unit: links, temporary files or other names). */
  names(): string[] {
    return readdirSync(this.dir).filter((n) => !n.startsWith('.') && !n.startsWith('unit:') && isValidMachineName(n));
  }

  /** Removes what a crash may have left: temporary files and unit links without their machine. */
  removeLeftovers(keep: Set<string>): void {
    for (const n of readdirSync(this.dir)) {
      if (n.startsWith('.#')) this.removeFile(n);
      else if (n.startsWith('unit:')) {
        let target = '';
        try {
          target = readlinkSync(join(this.dir, n));
        } catch {
          /* not a link: removed below */
        }
        if (!keep.has(target)) this.removeFile(n);
      }
    }
  }

  /** Removes a file of the directory if it is there. */
  removeFile(name: string): void {
    try {
      unlinkSync(join(this.dir, name));
    } catch {
      /* already gone */
    }
  }
}

export function parseState(text: string): StateRecord | undefined {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.includes('=')) continue;
    const i = line.indexOf('=');
    kv.set(line.slice(0, i), cunescape(line.slice(i + 1)));
  }
  const name = kv.get('NAME');
  const leader = Number(kv.get('LEADER'));
  if (!name || !Number.isSafeInteger(leader) || leader <= 1) return undefined;
  const num = (k: string) => (kv.has(k) ? Number(kv.get(k)) : undefined);
  return {
    text,
    name,
    unit: kv.get('SCOPE') ?? '',
    service: kv.get('SERVICE') ?? '',
    rootDirectory: kv.get('ROOT') ?? '',
    id: kv.get('ID') ?? '',
    leader,
    class: kv.get('CLASS') ?? '',
    realtime: num('REALTIME') ?? 0,
    monotonic: num('MONOTONIC') ?? 0,
    ifIndices: (kv.get('NETIF') ?? '').split(' ').filter(Boolean).map(Number),
    leaderStartTime: kv.get('LEADER_STARTTIME') ?? '',
    addresses: (kv.get('ADDRESSES') ?? '').split(' ').filter((a) => a && parseAddress(a)),
    ownCgroup: kv.get('OWN_CGROUP') ?? '',
    allocateUnit: kv.get('ALLOCATE_UNIT') === '1',
    netns: /^net:\[\d+\]$/.test(kv.get('NETNS') ?? '') ? kv.get('NETNS')! : '',
    uidMap: parseIdMap(kv.get('UID_MAP') ?? ''),
    gidMap: parseIdMap(kv.get('GID_MAP') ?? ''),
    // machined 262 writes VMADDR_CID_ANY (2^32 - 1) for "none".
    vSockCid: validCid(num('VSOCK_CID')),
    sshAddress: kv.get('SSH_ADDRESS') || undefined,
    sshPrivateKeyPath: kv.get('SSH_PRIVATE_KEY_PATH') || undefined,
    supervisor: positive(num('SUPERVISOR')) ? { pid: num('SUPERVISOR')!, pidfdId: positive(num('SUPERVISOR_PIDFDID')) ? num('SUPERVISOR_PIDFDID')! : 0 } : undefined,
    uid: Number.isSafeInteger(num('UID')) && num('UID')! >= 0 && num('UID')! < 0xffffffff ? num('UID')! : 0,
  };
}

const positive = (n: number | undefined) => Number.isSafeInteger(n) && n! > 0;
const validCid = (n: number | undefined) => (Number.isSafeInteger(n) && n! >= 3 && n! <= 0xfffffffe ? n : undefined);

/** ID map lines as "BASE SHIFT RANGE,..." (the kernel's lines, comma-separated). */
function idMapText(lines: IdMapLine[]): string {
  return lines.map((l) => `${l.base} ${l.shift} ${l.range}`).join(',');
}

/** [] for anything malformed: the maps are then read from the leader again. */
function parseIdMap(text: string): IdMapLine[] {
  const lines: IdMapLine[] = [];
  for (const part of text.split(',').filter(Boolean)) {
    const f = part.split(' ').map(Number);
    if (f.length !== 3 || !f.every((x) => Number.isSafeInteger(x) && x >= 0 && x <= 0xffffffff)) return [];
    lines.push({ base: f[0], shift: f[1], range: f[2] });
  }
  return lines;
}

/** C-style escaping as systemd's cescape(): backslash, quotes and non-printable bytes. */
export function cescape(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (c === '\\' || c === '"' || c === "'") out += '\\' + c;
    else if (b === 10) out += '\\n';
    else if (b === 9) out += '\\t';
    else if (b < 0x20 || b >= 0x7f) out += '\\x' + b.toString(16).padStart(2, '0');
    else out += c;
  }
  return out;
}

export function cunescape(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '\\' || i + 1 >= s.length) {
      bytes.push(...Buffer.from(s[i], 'utf8'));
      continue;
    }
    const n = s[++i];
    if (n === 'n') bytes.push(10);
    else if (n === 't') bytes.push(9);
    else if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...Buffer.from(n, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}
