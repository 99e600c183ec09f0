// What the DNS server is told on the command line: where to listen (--dns ADDR[:PORT]) and which zones it
// owns (--dns-zone ZONE). Parsed and checked here, so that a bad value is a usage error naming the flag.
import { AF_INET, AF_INET6, parseAddress } from '../registry/address.js';

export interface DnsListen {
  /** The address to bind, as given (an IPv6 one without brackets, with its %scope if it had one). */
  host: string;
  port: number;
  family: 4 | 6;
}

/** "127.0.0.1:5353", "[::1]:5353", "0.0.0.0" (port 53), "[fe80::1%br0]:53". Throws an Error saying what is wrong. */
export function parseDnsListen(text: string): DnsListen {
  let host: string;
  let port = '53';
  const bracket = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (bracket) {
    host = bracket[1];
    if (bracket[2] !== undefined) port = bracket[2];
  } else {
    const colons = text.split(':').length - 1;
    if (colons > 1) throw new Error(`'${text}': write an IPv6 address in brackets, e.g. [::1]:5353`);
    [host, port = '53'] = text.split(':');
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new Error(`'${text}': the port must be 1..65535`);
  if (bracket) {
    const [bare, scope] = host.split('%', 2) as [string, string | undefined];
    if (parseAddress(bare)?.family !== AF_INET6 || (scope !== undefined && !/^[A-Za-z0-9_.-]{1,15}$/.test(scope))) {
      throw new Error(`'${text}': not an IPv6 address`);
    }
    return { host, port: Number(port), family: 6 };
  }
  // ip-address takes four decimal octets without leading zeros only, so the text is already canonical.
  if (parseAddress(host)?.family !== AF_INET) throw new Error(`'${text}': not an IPv4 address (IPv6: [ADDR]:PORT)`);
  return { host, port: Number(port), family: 4 };
}

export function dnsListenText(l: DnsListen): string {
  return l.family === 6 ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;
/** A decimal octet label as an address's PTR name spells it: no leading zero (its value is checked apart). */
export const OCTET = /^(0|[1-9][0-9]{0,2})$/;
/** A nibble label of an ip6.arpa name, lower case. */
export const NIBBLE = /^[0-9a-f]$/;

/** A zone for --dns-zone, lower-cased and without a trailing dot: a forward zone ("machine",
 *  "containers.example.org") or a reverse zone for a subnet ("3.0.10.in-addr.arpa",
 *  "0.0.0.0.0.3.0.0.7.7.d.f.ip6.arpa"). Throws an Error saying what is wrong. */
export function parseDnsZone(text: string): string {
  const zone = text.replace(/\.$/, '').toLowerCase();
  if (zone === '' || zone.length > 253) throw new Error(`'${text}': a zone is a DNS name of 1..253 characters`);
  const labels = zone.split('.');
  if (!labels.every((l) => LABEL.test(l))) throw new Error(`'${text}': labels are letters, digits, '-' and '_', 1..63 each, no '-' at either end`);
  if (labels.at(-1) !== 'arpa') return zone;
  if (zone === 'in-addr.arpa' || zone === 'ip6.arpa') return zone;
  const rest = labels.slice(0, -2);
  if (zone.endsWith('.in-addr.arpa') && rest.length <= 4 && rest.every((l) => OCTET.test(l) && Number(l) <= 255)) return zone;
  if (zone.endsWith('.ip6.arpa') && rest.length <= 32 && rest.every((l) => NIBBLE.test(l))) return zone;
  throw new Error(`'${text}': under .arpa only reverse zones are served (e.g. 3.0.10.in-addr.arpa, or nibbles under ip6.arpa)`);
}

/** True for a zone under in-addr.arpa or ip6.arpa (it holds PTR names, never machine names). */
export function isReverseZone(zone: string): boolean {
  return zone === 'in-addr.arpa' || zone === 'ip6.arpa' || zone.endsWith('.in-addr.arpa') || zone.endsWith('.ip6.arpa');
}
