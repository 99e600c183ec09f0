// Translating user and group IDs between a container's user namespace and the host, through the
// uid_map/gid_map lines read from its leader: the logic behind machined's MapFromMachineUser,
// MapToMachineUser and the group pair, also used by userdb. Pure functions over the registry's machines.
import { RegistryError, invalid, noSuchMachine } from './errors.js';
import type { Machine } from './machine.js';
import type { IdMapLine } from './linux/proc.js';

export type IdKind = 'user' | 'group';

/** Where machines are looked up: the Registry, or anything shaped like it. */
export interface MachineSource {
  get(name: string): Machine | undefined;
  list(): Machine[];
}

/** Host IDs below this are the host's own: machined never maps them to a machine. */
export const HOST_ID_RANGE = 0x10000;

const WORDS = {
  user: { field: 'uid', ID: 'UID', Kind: 'User', error: 'NoSuchUserMapping' },
  group: { field: 'gid', ID: 'GID', Kind: 'Group', error: 'NoSuchGroupMapping' },
} as const;

const lines = (m: Machine, kind: IdKind): readonly IdMapLine[] => (kind === 'user' ? m.uidMap : m.gidMap);

/** systemd's uid_is_valid: 32 bits, and neither (uid_t) -1 nor the 16-bit -1 (65535). */
export function validId(id: number): boolean {
  return Number.isSafeInteger(id) && id >= 0 && id < 0xffffffff && id !== 0xffff;
}

/**
 * machine_owns_uid: the ID inside container `m` that host ID `hostId` is, or undefined. Lines with shift 0
 * are skipped: they are the identity map of a machine without a user namespace, which owns no host IDs.
 */
function innerId(m: Machine, kind: IdKind, hostId: number): number | undefined {
  if (m.class !== 'container') return undefined;
  for (const l of lines(m, kind)) {
    if (l.shift !== 0 && hostId >= l.shift && hostId < l.shift + l.range) return hostId - l.shift + l.base;
  }
  return undefined;
}

/** machine_translate_uid: the host ID that ID `inner` inside `m` is, or undefined when no line maps it.
 *  Unlike innerId, identity lines count (as machined: MapFrom* on a container without userns is identity). */
export function outerId(m: Machine, kind: IdKind, inner: number): number | undefined {
  for (const l of lines(m, kind)) {
    if (inner >= l.base && inner < l.base + l.range) return inner - l.base + l.shift;
  }
  return undefined;
}

/** The container that owns host ID `hostId`, and the ID inside; the first machine in `machines` wins. */
export function findOwner(machines: Iterable<Machine>, kind: IdKind, hostId: number): { machine: Machine; id: number } | undefined {
  for (const machine of machines) {
    const id = innerId(machine, kind, hostId);
    if (id !== undefined) return { machine, id };
  }
  return undefined;
}

/** MapFromMachineUser/Group: the host ID of ID `inner` inside machine `name`. Errors and messages as machined. */
export function mapFromMachine(src: MachineSource, kind: IdKind, name: string, inner: number): number {
  const w = WORDS[kind];
  if (!validId(inner)) throw invalid(w.field, `Invalid ${kind} ID ${inner}`);
  const m = src.get(name);
  if (!m) throw noSuchMachine(name);
  if (m.class !== 'container') throw invalid('name', 'Not supported for non-container machines.');
  const outer = outerId(m, kind, inner);
  if (outer === undefined) throw new RegistryError(w.error, `Machine '${name}' has no matching ${kind} mappings.`);
  if (!validId(outer)) throw invalid(w.field, `Invalid ${kind} ID ${inner}`);
  return outer;
}

/** MapToMachineUser/Group: the container that host ID `outer` belongs to, and the ID inside it. */
export function mapToMachine(src: MachineSource, kind: IdKind, outer: number): { machine: Machine; id: number } {
  const w = WORDS[kind];
  if (!validId(outer)) throw invalid(w.field, `Invalid ${kind} ID ${outer}`);
  if (outer < HOST_ID_RANGE) throw new RegistryError(w.error, `${w.Kind} ${outer} belongs to host ${w.ID} range`);
  const found = findOwner(src.list(), kind, outer);
  if (!found) throw new RegistryError(w.error, `No matching ${kind} mapping for ${outer}.`);
  return found;
}
