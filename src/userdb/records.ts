// The user and group records of user-namespaced containers, as machined synthesizes them (reference §4.4,
// §4.5): `vu-<machine>-<uid inside>` for every host UID that a container's uid_map maps, `vg-...` for GIDs.
// Unlike machined, only running containers with a user namespace count, and name -> ID only gives what
// ID -> name gives back (machined maps `vu-x-0` of a container without userns to host UID 0).
import { HOST_ID_RANGE, type IdKind, type MachineSource, outerId, validId } from '../registry/id-mapping.js';
import type { IdMapLine } from '../registry/linux/proc.js';
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
  machine: string;
}

const PREFIX = { user: 'vu-', group: 'vg-' } as const;

/** systemd's strict valid_user_group_name: no dots, at most 31 characters. */
function validUserName(s: string): boolean {
  return s.length <= USER_NAME_MAX && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(s);
}

/** What userdb needs of the registry: machines by name, all of them, and word of every change. */
export interface RegistryView extends MachineSource {
  on(event: 'added' | 'removed', listener: (m: Machine) => void): unknown;
  on(event: 'changed', listener: (m: Machine, previous: Machine) => void): unknown;
}

/** Host IDs start..end-1 are base.. inside the machine of that name. */
interface Segment {
  start: number;
  end: number;
  base: number;
  machine: string;
}

/**
 * The host ID ranges that running containers' user namespaces map (lines with a non-zero shift), sorted
 * and disjoint, rebuilt on the first lookup after the registry changed: an ID lookup is a binary search
 * however many machines there are (a scan of 10,000 machines took 260 µs).
 */
class RangeIndex {
  private segments: Segment[] | undefined;

  constructor(private readonly src: MachineSource, private readonly kind: IdKind) {}

  invalidate(): void {
    this.segments = undefined;
  }

  all(): readonly Segment[] {
    return (this.segments ??= this.build());
  }

  find(hostId: number): { machine: string; inner: number } | undefined {
    const s = (this.segments ??= this.build());
    let lo = 0;
    let hi = s.length - 1;
    let found: Segment | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid].start <= hostId) {
        found = s[mid];
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found && hostId < found.end ? { machine: found.machine, inner: hostId - found.start + found.base } : undefined;
  }

  private build(): Segment[] {
    const all: Segment[] = [];
    for (const m of this.src.list()) {
      if (!hasRecords(m)) continue;
      for (const l of ownedLines(this.kind === 'user' ? m.uidMap : m.gidMap)) all.push({ start: l.shift, end: l.shift + l.range, base: l.base, machine: m.name });
    }
    all.sort((a, b) => a.start - b.start);
    // Where the maps of two machines overlap (a misconfiguration), the range that starts first keeps the
    // IDs both claim (machined takes whichever machine its hash table yields first).
    const out: Segment[] = [];
    for (const seg of all) {
      const prevEnd = out.length > 0 ? out[out.length - 1].end : 0;
      if (seg.end <= prevEnd) continue;
      out.push(seg.start >= prevEnd ? seg : { ...seg, start: prevEnd, base: seg.base + prevEnd - seg.start });
    }
    return out;
  }
}

/** Machines with records: running containers (whose maps may still be empty). */
function hasRecords(m: Machine): boolean {
  return m.class === 'container' && m.state === 'running';
}

/** The lines of a uid_map or gid_map that give a machine host IDs of its own: a non-zero shift (a line
 *  with shift 0 is the identity map of a machine without a user namespace) and a non-empty range. */
export function ownedLines<T extends IdMapLine>(lines: readonly T[]): T[] {
  return lines.filter((l) => l.shift !== 0 && l.range > 0);
}

function userRecord(e: Entry): UserRecord {
  // Field order as machined emits them.
  return {
    userName: e.name,
    uid: e.hostId,
    gid: GID_NOBODY,
    realName: `UID ${e.inner} of Container ${e.machine}`,
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
    description: `GID ${e.inner} of Container ${e.machine}`,
    service: SERVICE,
    disposition: 'container',
  };
}

/** The records of the registry's machines, looked up by ID or by name. */
export class UserRecords {
  private readonly index: Record<IdKind, RangeIndex>;

  constructor(private readonly src: RegistryView) {
    this.index = { user: new RangeIndex(src, 'user'), group: new RangeIndex(src, 'group') };
    const invalidate = () => {
      this.index.user.invalidate();
      this.index.group.invalidate();
    };
    src.on('added', invalidate);
    src.on('removed', invalidate);
    // Most changes are of addresses or the like: the ranges stand (a changed map is a new array).
    src.on('changed', (m, previous) => {
      if (m.uidMap !== previous.uidMap || m.gidMap !== previous.gidMap || hasRecords(m) !== hasRecords(previous)) invalidate();
    });
  }

  userByUid(uid: number): UserRecord | undefined {
    const e = this.entryById('user', uid);
    return e && userRecord(e);
  }

  userByName(name: string): UserRecord | undefined {
    const e = this.entryByName('user', name);
    return e && userRecord(e);
  }

  groupByGid(gid: number): GroupRecord | undefined {
    const e = this.entryById('group', gid);
    return e && groupRecord(e);
  }

  groupByName(name: string): GroupRecord | undefined {
    const e = this.entryByName('group', name);
    return e && groupRecord(e);
  }

  /** The ID map lines of machine `name` if it has records (a running container), for the lookup table,
   *  which derives the records from them as entryById/entryByName do here. */
  idLines(name: string): { uid: readonly IdMapLine[]; gid: readonly IdMapLine[] } | undefined {
    const m = this.src.get(name);
    return m && hasRecords(m) ? { uid: m.uidMap, gid: m.gidMap } : undefined;
  }

  /** The host ID ranges that lookups by ID search, sorted and disjoint (where two machines' maps overlap,
   *  the range that starts first keeps the IDs both claim), with the name of the machine each belongs to. */
  ranges(kind: IdKind): { start: number; end: number; base: number; machine: string }[] {
    return this.index[kind].all().map((s) => ({ ...s }));
  }

  private entryById(kind: IdKind, hostId: number): Entry | undefined {
    if (!validId(hostId) || hostId < HOST_ID_RANGE) return undefined;
    const owner = this.index[kind].find(hostId);
    if (!owner) return undefined;
    const name = `${PREFIX[kind]}${owner.machine}-${owner.inner}`;
    // A name that breaks the user-name rules (a dot, too long) is not synthesized, as machined.
    return validUserName(name) ? { name, hostId, inner: owner.inner, machine: owner.machine } : undefined;
  }

  private entryByName(kind: IdKind, name: string): Entry | undefined {
    if (!validUserName(name) || !name.startsWith(PREFIX[kind])) return undefined;
    // The machine name may hold '-': the ID is what follows the last one.
    const rest = name.slice(PREFIX[kind].length);
    const dash = rest.lastIndexOf('-');
    const idText = rest.slice(dash + 1);
    // Canonical decimal only, so that the record's name is the name asked for.
    if (dash <= 0 || !/^(0|[1-9][0-9]{0,9})$/.test(idText)) return undefined;
    const machine = this.src.get(rest.slice(0, dash));
    if (!machine || !hasRecords(machine)) return undefined;
    const hostId = outerId(machine, kind, Number(idText));
    if (hostId === undefined) return undefined;
    // Only what the other direction gives back: a host ID of this machine's user namespace (not an
    // identity line, not the host's range, not a range another machine claimed first).
    const back = this.entryById(kind, hostId);
    return back?.name === name ? back : undefined;
  }
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
