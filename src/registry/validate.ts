// Checks a registration request field by field. Each refusal names the field; nothing is changed.
import { isAbsolute } from 'node:path';
import { invalid } from './errors.js';
import { AF_INET6, type Address, RT_SCOPE_HOST, RT_SCOPE_LINK, parseAddress, sortAddresses, unreachableKind } from './address.js';
import type { MachineSpec } from './machine.js';
import { isValidMachineName } from './names.js';

/** A registration as the front ends hand it over, types already checked by their protocol. */
export interface RegisterRequest {
  name: string;
  id?: string;
  service?: string;
  class?: string;
  leader: number;
  rootDirectory?: string;
  ifIndices?: number[];
  addresses?: string[];
  vSockCid?: number;
  sshAddress?: string;
  sshPrivateKeyPath?: string;
  controlAddress?: string;
  /** The inode number of a pidfd the registrant holds for the leader: the registration is refused
   *  unless the leader is that very process. */
  leaderPidfdId?: number;
  /** The registering process, from the caller's socket: the machine's supervisor unless it is the
   *  leader (machined 258+). The registry pins it by its pidfd ID. */
  supervisor?: number;
  /** The registering user (0: root). */
  uid?: number;
  allocateUnit?: boolean;
}

const MAX_GIVEN_ADDRESSES = 64;
const MAX_IFINDICES = 64;

export function validateRequest(r: RegisterRequest): MachineSpec {
  if (!isValidMachineName(r.name)) {
    throw invalid('name', `Invalid machine name '${printable(r.name)}': 1 to 64 letters, digits, '-' and '.', no '..' and no label starting with '.' or '-'`);
  }
  const cls = r.class ?? 'container';
  if (cls === 'host') throw invalid('class', "Invalid machine class 'host': reserved for the host itself");
  if (cls !== 'container' && cls !== 'vm') throw invalid('class', `Invalid machine class '${printable(cls)}': expected 'container' or 'vm'`);
  let id = (r.id ?? '').toLowerCase();
  if (id !== '' && !/^[0-9a-f]{32}$/.test(id)) throw invalid('id', `Invalid machine id '${printable(r.id ?? '')}': expected 32 hexadecimal digits`);
  if (/^0+$/.test(id)) id = ''; // all zeros means none, as in machined

  const service = r.service ?? '';
  if (service.length > 255 || /[\x00-\x1f\x7f]/.test(service)) throw invalid('service', 'Invalid service: at most 255 printable characters');
  const root = r.rootDirectory ?? '';
  if (root !== '' && !isNormalizedPath(root)) {
    throw invalid('rootDirectory', `Invalid root directory '${printable(root)}': must be an absolute path`);
  }
  if (!Number.isSafeInteger(r.leader) || r.leader <= 0 || r.leader > 0x3fffffff) throw invalid('leader', `Invalid leader PID ${r.leader}`);
  if (r.leader === 1) throw invalid('leader', 'Invalid leader PID 1: the init process cannot lead a machine');
  const ifIndices = r.ifIndices ?? [];
  if (ifIndices.length > MAX_IFINDICES) throw invalid('ifIndices', `Too many network interfaces: at most ${MAX_IFINDICES}`);
  for (const i of ifIndices) {
    if (!Number.isSafeInteger(i) || i <= 0 || i > 0x7fffffff) throw invalid('ifIndices', `Invalid network interface index ${i}: must be > 0`);
  }
  const given = r.addresses ?? [];
  if (given.length > MAX_GIVEN_ADDRESSES) throw invalid('addresses', `Too many addresses: at most ${MAX_GIVEN_ADDRESSES}`);
  const addresses: Address[] = [];
  for (const text of given) {
    const a = parseAddress(text);
    if (!a) throw invalid('addresses', `Invalid address '${printable(text)}': expected an IPv4 or IPv6 address`);
    if (a.scope === RT_SCOPE_HOST) throw invalid('addresses', `Invalid address '${text}': loopback addresses cannot reach a machine`);
    const unreachable = unreachableKind(a);
    if (unreachable) throw invalid('addresses', `Invalid address '${text}': ${unreachable} cannot reach a machine`);
    // Such an address is only usable with its scope, the one host-side interface: without it, it would
    // be accepted and never answered (DESIGN, "Name resolution").
    if (a.family === AF_INET6 && a.scope === RT_SCOPE_LINK && ifIndices.length !== 1) {
      throw invalid('addresses', `Invalid address '${text}': an IPv6 link-local address needs exactly one network interface (ifIndices) to give it a scope`);
    }
    addresses.push(a);
  }
  if (r.vSockCid !== undefined && (!Number.isSafeInteger(r.vSockCid) || r.vSockCid < 3 || r.vSockCid > 0xfffffffe)) {
    throw invalid('vSockCid', `Invalid VSOCK CID ${r.vSockCid}: must be 3..4294967294`);
  }
  if (r.sshAddress !== undefined && (r.sshAddress.length > 255 || /[\s\x00-\x1f\x7f]/.test(r.sshAddress))) {
    throw invalid('sshAddress', 'Invalid SSH address');
  }
  const key = r.sshPrivateKeyPath;
  if (key !== undefined && !isNormalizedPath(key)) {
    throw invalid('sshPrivateKeyPath', `Invalid SSH private key path '${printable(key)}': must be an absolute path`);
  }
  const control = r.controlAddress;
  if (control !== undefined && (!isNormalizedPath(control) || Buffer.byteLength(control) > 107)) {
    throw invalid('controlAddress', `Invalid control address '${printable(control)}': must be the absolute path of a Unix socket`);
  }
  if (r.leaderPidfdId !== undefined && (!Number.isSafeInteger(r.leaderPidfdId) || r.leaderPidfdId <= 0)) {
    throw invalid('leaderPidfdId', `Invalid leader pidfd ID ${r.leaderPidfdId}: must be > 0`);
  }
  const sup = r.supervisor;
  if (sup !== undefined && (!Number.isSafeInteger(sup) || sup <= 0)) throw invalid('supervisor', `Invalid supervisor PID ${sup}`);
  const uid = r.uid ?? 0;
  if (!Number.isSafeInteger(uid) || uid < 0 || uid > 0xfffffffe) throw invalid('uid', `Invalid UID ${uid}`);
  return {
    name: r.name,
    id,
    service,
    class: cls,
    leader: r.leader,
    rootDirectory: root,
    ifIndices: [...ifIndices],
    addresses: sortAddresses(addresses),
    vSockCid: r.vSockCid,
    sshAddress: r.sshAddress,
    sshPrivateKeyPath: key,
    controlAddress: control,
    // Its pidfd ID is read where the machine is made (register).
    supervisor: sup !== undefined && sup !== r.leader ? { pid: sup, pidfdId: 0 } : undefined,
    uid,
    allocateUnit: r.allocateUnit ?? false,
  };
}

/** An absolute path in its plain form, as machined 262 insists on (json_dispatch_path): no '.' or '..'
 *  component, no '//', no control characters, at most PATH_MAX. A trailing '/' is allowed. */
export function isNormalizedPath(p: string): boolean {
  if (!isAbsolute(p) || p.length > 4096 || /[\x00-\x1f\x7f]/.test(p) || p.includes('//')) return false;
  return p.split('/').every((c) => c !== '.' && c !== '..');
}

/** Quotes user input safely inside an error message. */
export function printable(s: string): string {
  const t = s.length > 80 ? s.slice(0, 80) + '…' : s;
  return t.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
