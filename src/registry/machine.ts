// The machine model: what the registry holds for each machine.
import { Address4, Address6 } from 'ip-address';
import type { IdMapLine } from './proc.js';

export type MachineClass = 'container' | 'vm' | 'host';
export type MachineState = 'opening' | 'running' | 'closing';

export const AF_INET = 2;
export const AF_INET6 = 10;

export interface Address {
  family: typeof AF_INET | typeof AF_INET6;
  /** 4 or 16 bytes. */
  bytes: number[];
  /** The interface the address sits on (inside the container), 0 when unknown (given addresses). */
  ifindex: number;
  /** RT_SCOPE_*: 0 universe, 200 site, 253 link. */
  scope: number;
}

/** What a registrant asks for, validated (see validate.ts). */
export interface MachineSpec {
  name: string;
  /** 32 lowercase hex digits, or '' for none. */
  id: string;
  service: string;
  class: 'container' | 'vm';
  leader: number;
  rootDirectory: string;
  ifIndices: number[];
  /** Addresses given by the registrant: they win over what is read from the leader. */
  addresses: Address[];
  vSockCid?: number;
  sshAddress?: string;
  /** Create (true) also puts the leader into a scope cgroup of its own; Register (false) adopts it. */
  allocateUnit: boolean;
}

export interface Machine extends Omit<MachineSpec, 'class'> {
  class: MachineClass;
  /** The leader's start time from /proc/PID/stat: a reused PID never passes for the leader. */
  leaderStartTime: string;
  /** The unit that holds the leader: the scope made by Create, or the unit the leader was found in. */
  unit: string;
  /** The cgroup2 path that Create made, removed with the machine. */
  ownCgroup: string;
  timestamp: { realtime: number; monotonic: number };
  state: MachineState;
  /** Read from the leader's network namespace; undefined until read or when the leader shares ours. */
  netAddresses: Address[] | undefined;
  privateNetwork: boolean;
  /** The leader's network namespace when it registered ("net:[INODE]"; '' for VMs): kept in the state
   *  file, so that a restart need not look again for every machine. */
  netns: string;
  uidMap: IdMapLine[];
  gidMap: IdMapLine[];
}

/** The addresses a machine answers with: the given ones if any, else those of its network namespace. */
export function machineAddresses(m: Machine): Address[] {
  return m.addresses.length > 0 ? m.addresses : (m.netAddresses ?? []);
}

/** The UID shift as machined's GetMachineUIDShift: 0 without a user namespace, the shift of a single
 *  0-based line covering at least 65534 IDs, undefined for anything more complex. */
export function uidShift(m: Machine): number | undefined {
  if (m.class === 'host') return 0;
  const u = m.uidMap;
  const g = m.gidMap;
  if (u.length === 0) return 0;
  if (u.length !== 1 || g.length !== 1) return undefined;
  if (u[0].base !== 0 || u[0].range < 65534) return undefined;
  if (g[0].base !== u[0].base || g[0].shift !== u[0].shift || g[0].range !== u[0].range) return undefined;
  return u[0].shift;
}

export function addressToString(a: Pick<Address, 'family' | 'bytes'>): string {
  return a.family === AF_INET ? a.bytes.join('.') : Address6.fromUnsignedByteArray(a.bytes).correctForm();
}

/** Parses "10.0.3.2" or "fd00::2" into an address given by a registrant; undefined if it is neither. */
export function parseAddress(text: string): Address | undefined {
  if (Address4.isValid(text) && !text.includes('/')) return { family: AF_INET, bytes: new Address4(text).toArray(), ifindex: 0, scope: scopeOf(AF_INET, new Address4(text).toArray()) };
  if (Address6.isValid(text) && !text.includes('/') && !text.includes('%')) {
    const bytes = new Address6(text).toUnsignedByteArray();
    return { family: AF_INET6, bytes, ifindex: 0, scope: scopeOf(AF_INET6, bytes) };
  }
  return undefined;
}

/** The scope the kernel would give an address: link for 169.254/16 and fe80::/10, host for loopback. */
export function scopeOf(family: number, b: number[]): number {
  if (family === AF_INET) return b[0] === 127 ? 254 : b[0] === 169 && b[1] === 254 ? 253 : 0;
  if (b.every((x, i) => x === (i === 15 ? 1 : 0))) return 254;
  return b[0] === 0xfe && (b[1] & 0xc0) === 0x80 ? 253 : 0;
}
