// The user and group records of user-namespaced containers, as machined synthesizes them (reference §4.4,
// §4.5): `vu-<machine>-<uid inside>` for every host UID that a container's uid_map maps, `vg-...` for GIDs.
// Unlike machined, only running containers with a user namespace count, and name -> ID only gives what
// ID -> name gives back (machined maps `vu-x-0` of a container without userns to host UID 0).
import { HOST_ID_RANGE, type IdKind, type MachineSource, findOwner, outerId, validId } from '../registry/id-mapping.js';
import type { Machine } from '../registry/machine.js';

/** The userdb service name: the socket's file name, which clients send as `service`. */
export const SERVICE = 'io.systemd.Machine';

/** Debian's nologin (machined uses its build-time NOLOGIN path). */
const NOLOGIN = '/usr/sbin/nologin';
const GID_NOBODY = 65534;
/** min(LOGIN_NAME_MAX, NAME_MAX, UT_NAMESIZE - 1) on glibc, as systemd's valid_user_group_name. */
const USER_NAME_MAX = 31;

export interface UserRecord {
  userName: string;
  uid: number;
  gid: number;
  realName: string;
  homeDirectory: string;
  shell: string;
  locked: boolean;
  service: string;
  disposition: 'container';
}

export interface GroupRecord {
  groupName: string;
  gid: number;
  description: string;
  service: string;
  disposition: 'container';
}

/** A synthesized ID: its name, the host ID, and what it is inside which machine. */
interface Entry {
  name: string;
  hostId: number;
  inner: number;
  machine: Machine;
}

const PREFIX = { user: 'vu-', group: 'vg-' } as const;

/** systemd's strict valid_user_group_name: no dots, at most 31 characters. */
export function validUserName(s: string): boolean {
  return s.length <= USER_NAME_MAX && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(s);
}

/** Machines whose IDs get records: running containers. (An identity map owns nothing: see innerId.) */
function recordMachines(src: MachineSource): Machine[] {
  return src.list().filter((m) => m.class === 'container' && m.state === 'running');
}

function entryById(src: MachineSource, kind: IdKind, hostId: number): Entry | undefined {
  if (!validId(hostId) || hostId < HOST_ID_RANGE) return undefined;
  const owner = findOwner(recordMachines(src), kind, hostId);
  if (!owner) return undefined;
  const name = `${PREFIX[kind]}${owner.machine.name}-${owner.id}`;
  // A name that breaks the user-name rules (a dot, too long) is not synthesized, as machined.
  return validUserName(name) ? { name, hostId, inner: owner.id, machine: owner.machine } : undefined;
}

function entryByName(src: MachineSource, kind: IdKind, name: string): Entry | undefined {
  if (!validUserName(name) || !name.startsWith(PREFIX[kind])) return undefined;
  // The machine name may hold '-': the ID is what follows the last one.
  const rest = name.slice(PREFIX[kind].length);
  const dash = rest.lastIndexOf('-');
  const idText = rest.slice(dash + 1);
  // Canonical decimal only, so that the record's name is the name asked for.
  if (dash <= 0 || !/^(0|[1-9][0-9]{0,9})$/.test(idText)) return undefined;
  const machine = src.get(rest.slice(0, dash));
  if (!machine || machine.class !== 'container' || machine.state !== 'running') return undefined;
  const hostId = outerId(machine, kind, Number(idText));
  if (hostId === undefined) return undefined;
  // Only what the other direction gives back: a host ID of this machine's user namespace (not an identity
  // line, not the host's range, not first claimed by an overlapping map of another machine).
  const back = entryById(src, kind, hostId);
  return back?.name === name ? back : undefined;
}

function userRecord(e: Entry): UserRecord {
  // Field order as machined emits them.
  return {
    userName: e.name,
    uid: e.hostId,
    gid: GID_NOBODY,
    realName: `UID ${e.inner} of Container ${e.machine.name}`,
    homeDirectory: '/',
    shell: NOLOGIN,
    locked: true,
    service: SERVICE,
    disposition: 'container',
  };
}

function groupRecord(e: Entry): GroupRecord {
  return {
    groupName: e.name,
    gid: e.hostId,
    description: `GID ${e.inner} of Container ${e.machine.name}`,
    service: SERVICE,
    disposition: 'container',
  };
}

export function userByUid(src: MachineSource, uid: number): UserRecord | undefined {
  const e = entryById(src, 'user', uid);
  return e && userRecord(e);
}

export function userByName(src: MachineSource, name: string): UserRecord | undefined {
  const e = entryByName(src, 'user', name);
  return e && userRecord(e);
}

export function groupByGid(src: MachineSource, gid: number): GroupRecord | undefined {
  const e = entryById(src, 'group', gid);
  return e && groupRecord(e);
}

export function groupByName(src: MachineSource, name: string): GroupRecord | undefined {
  const e = entryByName(src, 'group', name);
  return e && groupRecord(e);
}

/** The filters newer clients (systemd 258+) send along with a lookup. */
export interface RecordMatch {
  fuzzyNames?: string[];
  dispositionMask?: string[];
  idMin?: number;
  idMax?: number;
}

/** userdb_match: the ID in range, the disposition in the mask, and some fuzzy name found in the name or
 *  real name (case-insensitively, as a substring: a simple form of systemd's fuzzy match). */
export function recordMatches(r: UserRecord | GroupRecord, m: RecordMatch): boolean {
  const [name, id, gecos] = 'userName' in r ? [r.userName, r.uid, r.realName] : [r.groupName, r.gid, r.description];
  if (id < (m.idMin ?? 0) || id > (m.idMax ?? 0xfffffffe)) return false;
  if (m.dispositionMask && m.dispositionMask.length > 0 && !m.dispositionMask.includes(r.disposition)) return false;
  if (m.fuzzyNames && m.fuzzyNames.length > 0) {
    const hay = [name.toLowerCase(), gecos.toLowerCase()];
    if (!m.fuzzyNames.some((f) => hay.some((h) => h.includes(f.toLowerCase())))) return false;
  }
  return true;
}
