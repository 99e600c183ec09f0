// IP addresses of machines: families, scopes, parsing and printing, and machined's order. Shared by the
// registry, the resolver and the DNS front end.
import { Address4, Address6 } from 'ip-address';

export const AF_INET = 2;
export const AF_INET6 = 10;

/** The kernel's address scopes (rtnetlink RT_SCOPE_*): the lower, the farther an address reaches. */
const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;

export interface Address {
  family: typeof AF_INET | typeof AF_INET6;
  /** 4 or 16 bytes. */
  bytes: number[];
  /** The interface the address sits on (inside the container), 0 when unknown (given addresses). */
  ifindex: number;
  /** RT_SCOPE_*. */
  scope: number;
  /** For an address read inside a container: the host-side interface of the veth pair it sits on (the
   *  peer of its interface, checked from both ends), the only interface through which a link-local
   *  address of it can be reached; absent when its interface has no peer on the host. */
  peer?: number;
}

export function addressToString(a: Pick<Address, 'family' | 'bytes'>): string {
  return a.family === AF_INET ? a.bytes.join('.') : Address6.fromUnsignedByteArray(a.bytes).correctForm();
}

/** Parses "10.0.3.2" or "fd00::2" into an address given by a registrant; undefined if it is neither. */
export function parseAddress(text: string): Address | undefined {
  if (Address4.isValid(text) && !text.includes('/')) {
    const bytes = new Address4(text).toArray();
    return { family: AF_INET, bytes, ifindex: 0, scope: scopeOf(AF_INET, bytes) };
  }
  if (Address6.isValid(text) && !text.includes('/') && !text.includes('%')) {
    const bytes = new Address6(text).toUnsignedByteArray();
    return { family: AF_INET6, bytes, ifindex: 0, scope: scopeOf(AF_INET6, bytes) };
  }
  return undefined;
}

/** The scope the kernel would give an address: link for 169.254/16 and fe80::/10, host for loopback. */
export function scopeOf(family: number, b: readonly number[]): number {
  if (family === AF_INET) return b[0] === 127 ? RT_SCOPE_HOST : b[0] === 169 && b[1] === 254 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  if (b.every((x, i) => x === (i === 15 ? 1 : 0))) return RT_SCOPE_HOST;
  return b[0] === 0xfe && (b[1] & 0xc0) === 0x80 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
}

/** What no machine can be reached at, whatever it says: the unspecified addresses (0.0.0.0, ::), the
 *  IPv4 broadcast address, and multicast (224.0.0.0/4, ff00::/8); undefined for any other address. */
export function unreachableKind(a: Pick<Address, 'family' | 'bytes'>): string | undefined {
  const b = a.bytes;
  if (b.every((x) => x === 0)) return 'the unspecified address';
  if (a.family === AF_INET) {
    if (b.every((x) => x === 255)) return 'the broadcast address';
    if (b[0] >= 224 && b[0] <= 239) return 'a multicast address';
  } else if (b[0] === 0xff) return 'a multicast address';
  return undefined;
}

/** machined's order: IPv4 first, then scope ascending, ifindex, bytes; exact duplicates dropped. */
export function sortAddresses(list: readonly Address[]): Address[] {
  const sorted = [...list].sort(
    (a, b) =>
      a.family - b.family || a.scope - b.scope || a.ifindex - b.ifindex || compareBytes(a.bytes, b.bytes),
  );
  return sorted.filter((a, i) => i === 0 || !sameAddress(a, sorted[i - 1]));
}

function compareBytes(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function sameAddress(a: Address, b: Address): boolean {
  return a.family === b.family && a.ifindex === b.ifindex && compareBytes(a.bytes, b.bytes) === 0;
}
