// State files in machined's format (reference §2.5), read by sd-login and nss-mymachines, plus keys of
// our own for what machined lacks. Each write is atomic (a temporary file, then rename), so that readers
// and inotify watchers only ever see whole files and a crash never leaves half a file.
//
// The calls are synchronous on purpose: the state directory is on /run, a tmpfs, where writing a small
// file costs microseconds and never waits for a disk, while each fs.promises call is a thread-pool round
// trip (a registration made four of them and spent most of its time waiting). A registration is answered
// only after its file is written anyway.
import { closeSync, constants, fstatSync, mkdirSync, openSync, readSync, readdirSync, readlinkSync, renameSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { errnoText } from '../errno.js';
import { addressToString, parseAddress } from './address.js';
import { systemError } from './errors.js';
import { checkPrivateDirectory } from './linux/private-dir.js';
import type { IdMapLine } from './linux/proc.js';
import type { Machine } from './machine.js';
import { isValidMachineName } from './names.js';

/** Larger than any state file we write (a few hundred bytes) or machined writes. */
const MAX_STATE_FILE = 64 * 1024;
/** Beside the machines' files: a dot file is never taken for one. */
const STALE_SCOPES = '.mymachines-stale-scopes';
// Node opens every file close-on-exec.
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;

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
  controlAddress?: string;
  supervisor?: { pid: number; pidfdId: number };
  uid: number;
  /** The file as read. */
  text: string;
}

/** A state file as read: its text, or why it was skipped. */
export type StateRead = { text: string } | { skipped: string };

export class StateFiles {
  constructor(readonly dir: string) {}

  /** Makes the directory if need be, and refuses one that another user could plant or block files in. */
  init(): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw systemError(`Cannot make the state directory ${this.dir}`, e);
    }
    checkPrivateDirectory(this.dir, 'state directory');
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
    if (m.controlAddress) lines.push(`CONTROL_ADDRESS=${cescape(m.controlAddress)}`);
    // Ours: machined ignores unknown keys.
    lines.push(`LEADER_STARTTIME=${m.leaderStartTime}`);
    if (m.addresses.length) lines.push(`ADDRESSES=${m.addresses.map(addressToString).join(' ')}`);
    if (m.ownCgroup) lines.push(`OWN_CGROUP=${cescape(m.ownCgroup)}`);
    if (m.allocateUnit) lines.push('ALLOCATE_UNIT=1');
    if (m.netns) lines.push(`NETNS=${m.netns}`);
    if (m.uidMap.length && m.gidMap.length) lines.push(`UID_MAP=${idMapText(m.uidMap)}`, `GID_MAP=${idMapText(m.gidMap)}`);
    return lines.join('\n') + '\n';
  }

  /** Writes a machine's file, and its unit: link when `fresh` (a new machine). Throws a SystemError that
   *  says what failed and where; then nothing of this write is left (no temporary file, no new file). */
  write(m: Machine, fresh: boolean): void {
    const path = join(this.dir, m.name);
    this.replace(m.name, `Cannot write state file ${path}`, (tmp) => writeNew(tmp, this.serialize(m)));
    if (!fresh || !m.unit) return;
    try {
      // unit:<unit> -> <name>, through which sd_pid_get_machine_name() finds the machine of a process.
      this.replace(`unit:${m.unit}`, `Cannot write state file ${join(this.dir, `unit:${m.unit}`)}`, (tmp) => symlinkSync(m.name, tmp));
    } catch (e) {
      this.removeFile(m.name);
      throw e;
    }
  }

  /** Makes `name` atomically: `make` creates a temporary file, which is then renamed over it. A state
   *  directory removed under us is made again, once. */
  private replace(name: string, what: string, make: (tmp: string) => void): void {
    for (let attempt = 0; ; attempt++) {
      const tmp = join(this.dir, `.#${name}.${process.pid}.${Math.random().toString(36).slice(2)}`);
      try {
        make(tmp);
        renameSync(tmp, join(this.dir, name));
        return;
      } catch (e) {
        this.removeFile(tmp.slice(this.dir.length + 1));
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && attempt === 0 && this.remake()) continue;
        throw systemError(what, e);
      }
    }
  }

  /** Makes the directory again after it was removed; false when it cannot be. */
  private remake(): boolean {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
      return true;
    } catch {
      return false;
    }
  }

  /** The scope cgroups of removed machines that still held processes (one path a line), so that a
   *  restart goes on removing them once empty. The file's name is no machine name. */
  readStaleScopes(): string[] {
    const r = this.read(STALE_SCOPES);
    if ('skipped' in r) return [];
    // Only what Create makes: the file must not be a way to have other cgroups removed.
    return r.text.split('\n').filter((p) => /^(\/[^/\0]+)*\/machine\.slice\/machine-[^/\0]+\.scope$/.test(p) && !p.split('/').includes('..'));
  }

  writeStaleScopes(paths: Iterable<string>): void {
    const text = [...paths].map((p) => `${p}\n`).join('');
    if (text === '') return this.remove({ name: STALE_SCOPES, unit: '' });
    this.replace(STALE_SCOPES, `Cannot write ${join(this.dir, STALE_SCOPES)}`, (tmp) => writeNew(tmp, text));
  }

  /** Removes a machine's files. Throws a SystemError when one is there and cannot be removed (a
   *  read-only state directory). */
  remove(m: Pick<Machine, 'name' | 'unit'>): void {
    for (const name of m.unit ? [m.name, `unit:${m.unit}`] : [m.name]) {
      try {
        unlinkSync(join(this.dir, name));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw systemError(`Cannot remove state file ${join(this.dir, name)}`, e);
      }
    }
  }

  /** The state file of machine `name`: only a regular file of a sane size, opened without following
   *  links or waiting (a FIFO or a link to /dev/zero planted there must not stall or flood us). */
  read(name: string): StateRead {
    const path = join(this.dir, name);
    let fd: number;
    try {
      fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (e) {
      return { skipped: (e as NodeJS.ErrnoException).code === 'ELOOP' ? 'a symbolic link' : `cannot be opened: ${errnoText(e)}` };
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) return { skipped: `not a regular file (${fileType(st)})` };
      if (st.size > MAX_STATE_FILE) return { skipped: `larger than ${MAX_STATE_FILE} bytes` };
      const buf = Buffer.alloc(Math.min(st.size + 1, MAX_STATE_FILE + 1));
      let n = 0;
      for (let k; n < buf.length && (k = readSync(fd, buf, n, buf.length - n, null)) > 0; ) n += k;
      if (n > MAX_STATE_FILE) return { skipped: `larger than ${MAX_STATE_FILE} bytes` };
      return { text: buf.toString('utf8', 0, n) };
    } catch (e) {
      return { skipped: `cannot be read: ${errnoText(e)}` };
    } finally {
      closeSync(fd);
    }
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

  /** Removes a file of the directory if it can. */
  removeFile(name: string): void {
    try {
      unlinkSync(join(this.dir, name));
    } catch {
      /* gone, or cannot be: nothing more to do here */
    }
  }
}

/** Writes a new file (never an existing one, never through a link), all of it. */
function writeNew(path: string, text: string): void {
  const fd = openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
  try {
    const buf = Buffer.from(text);
    // No fsync: what must survive is a crash of the daemon, and the page cache outlives that; /run
    // does not outlive a reboot anyway.
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
  } finally {
    closeSync(fd);
  }
}

function fileType(st: import('node:fs').Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a file';
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
    controlAddress: kv.get('CONTROL_ADDRESS') || undefined,
    supervisor: positive(num('SUPERVISOR')) ? { pid: num('SUPERVISOR')!, pidfdId: positive(num('SUPERVISOR_PIDFDID')) ? num('SUPERVISOR_PIDFDID')! : 0 } : undefined,
    uid: Number.isSafeInteger(num('UID')) && num('UID')! >= 0 && num('UID')! < 0xffffffff ? num('UID')! : 0,
  };
}

const positive = (n: number | undefined) => Number.isSafeInteger(n) && n! > 0;
const validCid = (n: number | undefined) => (Number.isSafeInteger(n) && n! >= 3 && n! <= 0xfffffffe ? n : undefined);

/** ID map lines as "BASE SHIFT RANGE,..." (the kernel's lines, comma-separated). */
function idMapText(lines: readonly IdMapLine[]): string {
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
function cescape(s: string): string {
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

function cunescape(s: string): string {
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
