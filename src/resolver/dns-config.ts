// What the DNS server is told on the command line: where to listen (--dns ADDR[:PORT]) and which zones it
// owns (--dns-zone ZONE). Parsed and checked here, so that a bad value is a usage error naming the flag.
import { AF_INET, AF_INET6, addressToString, parseAddress } from '../registry/address.js';

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

/** An address range: the first `length` bits of `bytes`. */
export interface Prefix {
  family: typeof AF_INET | typeof AF_INET6;
  bytes: number[];
  length: number;
}

/** "10.0.0.0/8", "fd00::/64", or a bare address (all of its bits). Throws an Error saying what is wrong. */
function parsePrefix(text: string): Prefix {
  const [addr, len, more] = text.split('/');
  const a = parseAddress(addr);
  if (!a || more !== undefined) throw new Error(`'${text}': expected an address or a prefix such as 10.77.0.0/16 or fd77::/48`);
  const max = a.bytes.length * 8;
  if (len !== undefined && (!/^[0-9]{1,3}$/.test(len) || Number(len) > max)) throw new Error(`'${text}': the prefix length must be 0..${max}`);
  const length = len === undefined ? max : Number(len);
  for (let bit = length; bit < max; bit++) {
    if (a.bytes[bit >> 3] & (0x80 >> (bit & 7))) throw new Error(`'${text}': bits are set past the prefix length (the range starts at ${rangeStart(a.family, a.bytes, length)})`);
  }
  return { family: a.family, bytes: a.bytes, length };
}

function rangeStart(family: number, bytes: number[], length: number): string {
  const masked = bytes.map((b, i) => (i * 8 >= length ? 0 : i * 8 + 8 <= length ? b : b & (0xff << (8 - (length - i * 8)))));
  return `${addressToString({ family: family as typeof AF_INET, bytes: masked })}/${length}`;
}

export function prefixContains(p: Prefix, family: number, bytes: readonly number[]): boolean {
  if (family !== p.family) return false;
  for (let bit = 0; bit < p.length; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((bytes[bit >> 3] & m) !== (p.bytes[bit >> 3] & m)) return false;
  }
  return true;
}

/** --dns-reverse-zone: the reverse zone of an address prefix ("10.77.86.0/24" -> "86.77.10.in-addr.arpa",
 *  "fd77:86::/32" -> "6.8.0.0.7.7.d.f.ip6.arpa"), or a reverse zone's name as --dns-zone takes it. The zone is
 *  derived only where it is unambiguous: a prefix on a label boundary (IPv4: /8, /16, /24, /32; IPv6: a
 *  multiple of 4). Throws an Error saying what is wrong. */
export function parseReverseZone(text: string): string {
  if (!text.includes('/') && /[a-z]/i.test(text) && !text.includes(':')) {
    const zone = parseDnsZone(text);
    if (!isReverseZone(zone)) throw new Error(`'${text}': not a reverse zone (in-addr.arpa or ip6.arpa) nor an address prefix`);
    return zone;
  }
  if (!text.includes('/')) throw new Error(`'${text}': give the prefix length, e.g. 10.77.86.0/24`);
  const p = parsePrefix(text);
  const v4 = p.family === AF_INET;
  const step = v4 ? 8 : 4;
  if (p.length === 0 || p.length % step !== 0) {
    const down = Math.floor(p.length / step) * step;
    const near = [down, down + step].filter((l) => l > 0 && l <= p.bytes.length * 8).map((l) => `/${l}`).join(' or ');
    throw new Error(`'${text}': reverse zones are cut at ${v4 ? 'octet' : 'nibble'} boundaries; give ${near} prefixes (one zone each)`);
  }
  const labels = v4
    ? p.bytes.slice(0, p.length / 8).map(String)
    : p.bytes.flatMap((b) => [b >> 4, b & 15]).slice(0, p.length / 4).map((n) => n.toString(16));
  return `${labels.reverse().join('.')}.${v4 ? 'in-addr.arpa' : 'ip6.arpa'}`;
}

/** A TSIG key's name as written in a key file or a flag: a DNS name, lower case, without the trailing dot. */
export function parseKeyName(text: string): string {
  const name = text.replace(/\.$/, '').toLowerCase();
  if (name === '' || name.length > 253 || !name.split('.').every((l) => /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(l))) {
    throw new Error(`'${text}': a key name is a DNS name (letters, digits, '-', '_', labels of 1..63)`);
  }
  return name;
}

/** The key name of a `key=NAME` part of a flag's value. */
function keyAfter(text: string, part: string): string {
  try {
    return parseKeyName(part.slice(4));
  } catch {
    throw new Error(`'${text}': key= names a key, a DNS name (letters, digits, '-', '_', labels of 1..63)`);
  }
}

/** One --dns-transfer-allow rule: a peer that may transfer the zones when it matches every part given. */
export interface TransferRule {
  prefix?: Prefix;
  /** The TSIG key the request must be signed with. */
  key?: string;
}

/** "127.0.0.2", "10.1.0.0/16", "key=xfr", "10.1.0.0/16,key=xfr" (both must hold). */
function parseTransferRule(text: string): TransferRule {
  const rule: TransferRule = {};
  for (const part of text.split(',')) {
    if (part.startsWith('key=')) {
      if (rule.key !== undefined) throw new Error(`'${text}': one key per rule (give several rules for several keys)`);
      rule.key = keyAfter(text, part);
    } else {
      if (rule.prefix !== undefined) throw new Error(`'${text}': one address or prefix per rule (give several rules)`);
      if (part === '') throw new Error(`'${text}': expected ADDRESS[/LEN], key=NAME or both, separated by a comma`);
      rule.prefix = parsePrefix(part);
    }
  }
  return rule;
}

export function transferRuleText(r: TransferRule): string {
  return [r.prefix && `${addressToString(r.prefix)}/${r.prefix.length}`, r.key && `key=${r.key}`].filter(Boolean).join(',');
}

/** One --dns-notify target: a secondary told of every change of the zones. */
export interface NotifyTarget extends DnsListen {
  /** The TSIG key the NOTIFY is signed with. */
  key?: string;
}

/** "127.0.0.5", "127.0.0.5:5300", "[::1]:5300,key=xfr". */
function parseNotifyTarget(text: string): NotifyTarget {
  const [where, ...rest] = text.split(',');
  const target: NotifyTarget = parseDnsListen(where);
  for (const part of rest) {
    if (!part.startsWith('key=') || target.key !== undefined) throw new Error(`'${text}': expected ADDR[:PORT] or ADDR[:PORT],key=NAME`);
    target.key = keyAfter(text, part);
  }
  return target;
}

/** What the zones and their transfers are told on the command line (beyond --dns and --dns-zone). */
export interface DnsZoneOptions {
  /** --dns-ns: the name servers named in every zone's NS records (the first also in the SOA); none: the zone's own name. */
  ns: string[];
  /** --dns-zone-ttl: the TTL of the records in zone transfers, in seconds. */
  zoneTtl: number;
  transferAllow: TransferRule[];
  notify: NotifyTarget[];
  /** --dns-tsig-key: key files in BIND's format (tsig-keygen). */
  tsigKeyFiles: string[];
}

/** The longest zone TTL accepted: a week. */
const MAX_ZONE_TTL = 604800;

/** Parses the zone flags' values; throws an Error that starts with the flag's name. */
export function parseDnsZoneOptions(v: { 'dns-ns'?: string[]; 'dns-zone-ttl'?: string; 'dns-transfer-allow'?: string[]; 'dns-notify'?: string[]; 'dns-tsig-key'?: string[] }): DnsZoneOptions {
  const each = <T>(flag: string, values: string[] | undefined, parse: (s: string) => T): T[] =>
    (values ?? []).map((text) => {
      try {
        return parse(text);
      } catch (e) {
        throw new Error(`invalid ${flag} ${(e as Error).message}`);
      }
    });
  const ttlText = v['dns-zone-ttl'] ?? '0';
  if (!/^[0-9]{1,7}$/.test(ttlText) || Number(ttlText) > MAX_ZONE_TTL) throw new Error(`invalid --dns-zone-ttl '${ttlText}': expected seconds, 0..${MAX_ZONE_TTL}`);
  const ns = each('--dns-ns', v['dns-ns'], (t) => {
    try {
      return parseDnsZone(t);
    } catch {
      throw new Error(`'${t}': a name server's name is a DNS name`);
    }
  });
  const files = v['dns-tsig-key'] ?? [];
  for (const f of files) if (!f.startsWith('/')) throw new Error(`invalid --dns-tsig-key '${f}': give an absolute path`);
  return {
    ns: [...new Set(ns)],
    zoneTtl: Number(ttlText),
    transferAllow: each('--dns-transfer-allow', v['dns-transfer-allow'], parseTransferRule),
    notify: each('--dns-notify', v['dns-notify'], parseNotifyTarget),
    tsigKeyFiles: files,
  };
}
