// The resolver: machine names to addresses and back, answered from an index that follows the registry's
// events, so that every lookup is a map read and nothing on the lookup path waits for anything.
import { EventEmitter } from 'node:events';
import { AF_INET, AF_INET6, type Address, RT_SCOPE_HOST, RT_SCOPE_LINK } from '../registry/address.js';
import { type Machine, machineAddresses } from '../registry/machine.js';
import type { Registry } from '../registry/registry.js';

/** One address of a hosts answer; ifindex is the scope of an IPv6 link-local address, else absent. */
export interface HostAddress {
  family: typeof AF_INET | typeof AF_INET6;
  bytes: number[];
  ifindex?: number;
}

export interface HostEntry {
  /** The registered name (the canonical name of the answer). */
  name: string;
  /** In machined's order, after the hosts policy (hostsAddresses); may be empty. */
  addresses: HostAddress[];
}

/** Whether DNS can carry the address (as records of a zone, or through resolved's hook): not one that
 *  needs a scope, which hostsAddresses gives IPv6 link-local addresses, and only them. */
export const inDns = (a: HostAddress): boolean => !a.ifindex;

/** The hosts policy of DESIGN.md "Name resolution" over a machine's addresses (already in machined's
 *  order): never loopback; IPv6 link-local only with its scope, the host-side interface through which it
 *  is reached: for an address read inside a container, the registered interface that is the veth peer
 *  of the one it sits on (Address.peer); for an address given by the registrant, the one registered
 *  interface if there is exactly one. IPv4 link-local only when there is no other IPv4 address. An
 *  address that sits on two interfaces inside the machine is given once. */
export function hostsAddresses(addresses: readonly Address[], ifIndices: readonly number[]): HostAddress[] {
  const only = ifIndices.length === 1 ? ifIndices[0] : 0;
  const scopeOf = (a: Address) => (a.ifindex === 0 ? only : a.peer !== undefined && ifIndices.includes(a.peer) ? a.peer : 0);
  const otherIPv4 = addresses.some((a) => a.family === AF_INET && a.scope < RT_SCOPE_LINK);
  const out: HostAddress[] = [];
  const seen = new Set<string>();
  for (const a of addresses) {
    if (a.scope >= RT_SCOPE_HOST) continue;
    const linkLocal = a.scope === RT_SCOPE_LINK;
    const scope = linkLocal && a.family === AF_INET6 ? scopeOf(a) : 0;
    if (linkLocal && a.family === AF_INET6 && scope === 0) continue;
    if (linkLocal && a.family === AF_INET && otherIPv4) continue;
    const k = key(a.family, a.bytes);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(scope ? { family: a.family, bytes: a.bytes, ifindex: scope } : { family: a.family, bytes: a.bytes });
  }
  return out;
}

function key(family: number, bytes: readonly number[]): string {
  return `${family}:${bytes.join('.')}`;
}

/** Machines that resolve: running containers and VMs (never the `.host` pseudo machine). */
function resolvable(m: Machine): boolean {
  return (m.class === 'container' || m.class === 'vm') && m.state === 'running';
}

export interface ResolverEvents {
  /** The entry of this machine (the registered name) may have changed, or gone. */
  changed: [string];
}

export class Resolver extends EventEmitter<ResolverEvents> {
  /** Lower-cased name -> entry. */
  private readonly byName = new Map<string, HostEntry>();
  /** Address key -> the names of the machines whose hosts answer holds it, in registration order. */
  private readonly byAddress = new Map<string, { name: string; address: HostAddress }[]>();
  private readonly update = (m: Machine) => {
    this.index(m);
    this.emit('changed', m.name);
  };
  private readonly drop = (m: Machine) => {
    this.unindex(m.name);
    this.emit('changed', m.name);
  };

  constructor(registry: Registry) {
    super();
    for (const m of registry.list()) this.index(m);
    registry.on('added', this.update);
    registry.on('changed', this.update);
    registry.on('removed', this.drop);
  }

  /** By name, ignoring case as DNS does (ASCII letters only: machine names are ASCII, and Unicode case
   *  folding would take the Kelvin sign for a 'k'); undefined when the name is no (resolvable) machine. */
  lookup(name: string): HostEntry | undefined {
    if (!/^[\x21-\x7e]+$/.test(name)) return undefined;
    return this.byName.get(name.toLowerCase());
  }

  /** Every machine that resolves, in no particular order (DNS zones, the lookup table). */
  entries(): IterableIterator<HostEntry> {
    return this.byName.values();
  }

  /** The registered names of the machines that resolve. */
  names(): string[] {
    return [...this.entries()].map((e) => e.name);
  }

  /** The machines answering with this address (ifindex: the scope of an IPv6 link-local one). */
  reverse(family: number, bytes: readonly number[]): { name: string; ifindex?: number }[] {
    return (this.byAddress.get(key(family, bytes)) ?? []).map((e) => (e.address.ifindex ? { name: e.name, ifindex: e.address.ifindex } : { name: e.name }));
  }

  private index(m: Machine): void {
    this.unindex(m.name);
    if (!resolvable(m)) return;
    const entry: HostEntry = { name: m.name, addresses: hostsAddresses(machineAddresses(m), m.ifIndices) };
    this.byName.set(m.name.toLowerCase(), entry);
    for (const a of entry.addresses) {
      const k = key(a.family, a.bytes);
      const list = this.byAddress.get(k) ?? [];
      list.push({ name: m.name, address: a });
      this.byAddress.set(k, list);
    }
  }

  private unindex(name: string): void {
    const old = this.byName.get(name.toLowerCase());
    if (!old || old.name !== name) return;
    this.byName.delete(name.toLowerCase());
    for (const a of old.addresses) {
      const k = key(a.family, a.bytes);
      const list = this.byAddress.get(k)!.filter((e) => e.name !== name);
      if (list.length > 0) this.byAddress.set(k, list);
      else this.byAddress.delete(k);
    }
  }
}
