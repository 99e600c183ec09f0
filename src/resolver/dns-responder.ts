// The DNS server's answers: one query message in, one response message out (or nothing), from the
// resolver's in-memory index alone. Authoritative for machine names only: never recursion, never forwarding.
//
// The query is read here by a small strict parser (header, one question, OPT), so that any bytes at all
// are handled without an exception and the question is echoed byte for byte (0x20 case randomisation).
// The records of a response are encoded by dns-packet.
import dnsPacket from 'dns-packet';
import { AF_INET, AF_INET6, RT_SCOPE_LINK, addressToString, scopeOf } from '../registry/address.js';
import type { Resolver } from './resolver.js';
import { isReverseZone, NIBBLE, OCTET } from './dns-config.js';

/** What the responder needs of the resolver. */
export type DnsSource = Pick<Resolver, 'lookup' | 'reverse'>;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
const TYPE = { A: 1, NS: 2, SOA: 6, PTR: 12, AAAA: 28, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 } as const;
const CLASS_IN = 1;

/** Answers carry TTL 0, as machined's and nss-mymachines': addresses change as containers do, and a
 *  cache in front of us (dnsmasq, unbound, a client library) would go on handing out stale ones. */
const TTL = 0;
/** Largest UDP response we send: the DNS flag day 2020 size, which avoids IP fragmentation. */
const MAX_UDP_SIZE = 1232;
/** The UDP size without EDNS (RFC 1035). */
const PLAIN_UDP_SIZE = 512;
const MAX_TCP_SIZE = 65535;

const QR = 0x8000;
const AA = 0x0400;
const TC = 0x0200;
const RD = 0x0100;
const CD = 0x0010;
const DO = 0x8000;

type RR = dnsPacket.Answer;

/** A query as read from the wire. */
interface Query {
  id: number;
  flags: number;
  /** The question's bytes as received: name, type, class. */
  question: Buffer;
  /** The question's labels (latin1, case as received). */
  labels: string[];
  qtype: number;
  qclass: number;
  edns?: { udpSize: number; version: number; do: boolean };
}

/** A message answered by a header alone: FORMERR or NOTIMP. */
interface HeaderOnly {
  rcode: number;
  id: number;
  flags: number;
}

/** Reads a query; undefined for a packet that gets no answer at all (no header, or a response);
 *  a HeaderOnly for one that gets FORMERR, or NOTIMP for an opcode other than QUERY. */
function parse(msg: Buffer): Query | HeaderOnly | undefined {
  if (msg.length < 12) return undefined;
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & QR) return undefined; // never answer a response: no loops between servers
  if (((flags >> 11) & 0xf) !== 0) return { rcode: RCODE.NOTIMP, id, flags };
  const formErr: HeaderOnly = { rcode: RCODE.FORMERR, id, flags };
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  const ns = msg.readUInt16BE(8);
  const ar = msg.readUInt16BE(10);
  if (qd !== 1) return formErr; // QDCOUNT is not 1
  // The question: its name cannot use compression (nothing comes before it to point at).
  let off = 12;
  const labels: string[] = [];
  for (;;) {
    if (off >= msg.length) return formErr; // question name runs past the end
    const len = msg[off];
    if (len === 0) {
      off++;
      break;
    }
    if (len > 63) return formErr; // compression or extended label in the question
    if (off + 1 + len > msg.length) return formErr; // label runs past the end
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
    if (off - 12 > 255) return formErr; // question name longer than 255 bytes
  }
  if (off + 4 > msg.length) return formErr; // question type and class missing
  const qtype = msg.readUInt16BE(off);
  const qclass = msg.readUInt16BE(off + 2);
  off += 4;
  const question = msg.subarray(12, off);
  // Answer and authority records (none in a normal query) are skipped; additional ones are read for OPT.
  let edns: Query['edns'];
  for (let i = 0; i < an + ns + ar; i++) {
    const nameStart = off;
    off = skipName(msg, off);
    if (off < 0 || off + 10 > msg.length) return formErr; // record runs past the end
    const type = msg.readUInt16BE(off);
    const klass = msg.readUInt16BE(off + 2);
    const ttl = msg.readUInt32BE(off + 4);
    const rdlen = msg.readUInt16BE(off + 8);
    off += 10;
    if (off + rdlen > msg.length) return formErr; // record data runs past the end
    if (type === TYPE.OPT) {
      if (i < an + ns || edns || msg[nameStart] !== 0) return formErr; // misplaced, repeated or named OPT
      // Options: code, length, data; they must fill the record exactly.
      let o = off;
      while (o < off + rdlen) {
        if (o + 4 > off + rdlen) return formErr; // EDNS option header runs past its record
        o += 4 + msg.readUInt16BE(o + 2);
      }
      if (o !== off + rdlen) return formErr; // EDNS option runs past its record
      edns = { udpSize: klass, version: (ttl >>> 16) & 0xff, do: (ttl & DO) !== 0 };
    }
    off += rdlen;
  }
  if (off !== msg.length) return formErr; // trailing bytes
  return { id, flags, question, labels, qtype, qclass, edns };
}

/** The offset after a name that may use compression; -1 if it is malformed. */
function skipName(msg: Buffer, off: number): number {
  for (let n = 0; n < 128; n++) {
    if (off >= msg.length) return -1;
    const len = msg[off];
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= msg.length ? off + 2 : -1;
    if (len > 63) return -1;
    off += 1 + len;
  }
  return -1;
}

/** Letters, digits, '-' and '_': a label that can be part of a machine name or a zone. */
const PLAIN_LABEL = /^[A-Za-z0-9_-]+$/;
/** Up to three digits, leading zeros allowed: a label on the way down to IPv4 addresses. */
const DIGITS = /^[0-9]{1,3}$/;

/** The address a full reverse name stands for (under: its labels below in-addr.arpa or ip6.arpa, lower
 *  case): 4 octets or 32 nibbles, as the address's own PTR name spells them; undefined for any other name. */
function reverseAddress(family: number, under: readonly string[]): number[] | undefined {
  if (family === AF_INET) {
    // No leading zeros (OCTET): "010.0.0.10.in-addr.arpa" is no address's name, only the name built from the address is.
    if (under.length !== 4 || !under.every((p) => OCTET.test(p) && Number(p) <= 255)) return undefined;
    return under.map(Number).reverse();
  }
  if (under.length !== 32 || !under.every((p) => NIBBLE.test(p))) return undefined;
  const nibbles = under.map((p) => parseInt(p, 16)).reverse();
  return Array.from({ length: 16 }, (_, i) => (nibbles[2 * i] << 4) | nibbles[2 * i + 1]);
}

/** fe80::/10. */
function isLinkLocal6(bytes: number[]): boolean {
  return scopeOf(AF_INET6, bytes) === RT_SCOPE_LINK;
}

interface Outcome {
  rcode: number;
  aa: boolean;
  answers: RR[];
  authorities: RR[];
}

/** A zone we serve: its labels, and its SOA record but for the owner name. */
interface Zone {
  labels: string[];
  soa: Omit<dnsPacket.SoaAnswer, 'name'>;
}

function makeZone(name: string): Zone {
  // Minimum 0: negative answers are not cached either.
  const data = { mname: name, rname: `hostmaster.${name}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 0 };
  return { labels: name.split('.'), soa: { type: 'SOA', ttl: TTL, data } };
}

export class DnsResponder {
  private readonly forward: Zone[];
  private readonly reverseZones: Zone[];
  /** The zone PTR targets are named in (the first forward zone), or '' for bare machine names. */
  private readonly ptrZone: string;

  /** zones: as parseDnsZone gives them (lower case, no trailing dot), without duplicates. */
  constructor(
    private readonly source: DnsSource,
    zones: readonly string[],
  ) {
    this.forward = zones.filter((z) => !isReverseZone(z)).map(makeZone);
    this.reverseZones = zones.filter(isReverseZone).map(makeZone);
    this.ptrZone = zones.find((z) => !isReverseZone(z)) ?? '';
  }

  /** The response to one message; undefined when it gets none. transport: 'udp' limits the size to
   *  512 bytes, or to the query's EDNS size up to MAX_UDP_SIZE, and sets TC beyond. Never throws. */
  respond(msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    const q = parse(msg);
    if (q === undefined) return undefined;
    if ('rcode' in q) return header(q.id, (q.flags & (RD | CD | 0x7800)) | QR | q.rcode, 0, 0, 0, 0);
    let out: Outcome;
    if (q.edns && q.edns.version !== 0) out = { rcode: RCODE.BADVERS, aa: false, answers: [], authorities: [] };
    else if (q.qclass !== CLASS_IN || q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR || q.qtype === TYPE.OPT) out = refused();
    else out = this.answer(q.labels, q.qtype);
    const limit = transport === 'tcp' ? MAX_TCP_SIZE : q.edns ? Math.max(PLAIN_UDP_SIZE, Math.min(q.edns.udpSize, MAX_UDP_SIZE)) : PLAIN_UDP_SIZE;
    return encode(q, out, limit);
  }

  private answer(labels: string[], qtype: number): Outcome {
    const qname = labels.join('.');
    const lower = labels.map((l) => l.toLowerCase());
    const plain = labels.length > 0 && labels.every((l) => PLAIN_LABEL.test(l));
    // The bare machine name.
    if (plain) {
      const m = this.machineAnswer(qname, qname, qtype);
      if (m) return m;
    }
    // <machine>.<zone>, in the longest zone that holds the name.
    const zone = longestZone(this.forward, lower);
    if (zone !== undefined) {
      const soa = soaFor(labels, zone);
      if (zone.labels.length === labels.length) return apex(qtype, soa);
      const prefix = labels.slice(0, labels.length - zone.labels.length);
      const m = prefix.every((l) => PLAIN_LABEL.test(l)) ? this.machineAnswer(prefix.join('.'), qname, qtype, soa) : undefined;
      // Names in the zone that are no machine do not exist (below a machine's name neither: machined's rule).
      return m ?? { rcode: RCODE.NXDOMAIN, aa: true, answers: [], authorities: [soa] };
    }
    // Reverse names: every address that a forward lookup gives is answered, in a declared reverse zone or not.
    const top = lower.slice(-2).join('.');
    const family = top === 'in-addr.arpa' ? AF_INET : top === 'ip6.arpa' ? AF_INET6 : undefined;
    if (family === undefined) return refused();
    const under = lower.slice(0, -2);
    const rzone = longestZone(this.reverseZones, lower);
    const soa = rzone !== undefined ? soaFor(labels, rzone) : undefined;
    const bytes = plain ? reverseAddress(family, under) : undefined;
    if (bytes) {
      const names = this.ptrTargets(family, bytes);
      if (names.length > 0) {
        if (qtype !== TYPE.PTR && qtype !== TYPE.ANY) return { rcode: RCODE.NOERROR, aa: true, answers: [], authorities: soa ? [soa] : [] };
        return { rcode: RCODE.NOERROR, aa: true, answers: names.map((n) => ({ type: 'PTR', name: qname, ttl: TTL, data: n })), authorities: [] };
      }
    }
    // Other reverse names are ours only in a reverse zone given with --dns-zone.
    if (rzone === undefined || soa === undefined) return refused();
    if (rzone.labels.length === labels.length) return apex(qtype, soa);
    // A name on the way down to addresses may have addresses below it: it exists, without data.
    const v4 = family === AF_INET;
    if (under.length < (v4 ? 4 : 32) && under.every((l) => (v4 ? DIGITS.test(l) : NIBBLE.test(l)))) {
      return { rcode: RCODE.NOERROR, aa: true, answers: [], authorities: [soa] };
    }
    return { rcode: RCODE.NXDOMAIN, aa: true, answers: [], authorities: [soa] };
  }

  /** The answer for a machine named `name`, with owner `owner`; undefined if there is no such machine. */
  private machineAnswer(name: string, owner: string, qtype: number, soa?: RR): Outcome | undefined {
    if (name.length === 0 || name.length > 64) return undefined;
    const entry = this.source.lookup(name);
    if (!entry) return undefined;
    const answers: RR[] = [];
    for (const a of entry.addresses) {
      // A link-local IPv6 address needs a scope, which DNS cannot carry.
      if (a.family === AF_INET6 && (a.ifindex || isLinkLocal6(a.bytes))) continue;
      if (a.family === AF_INET && (qtype === TYPE.A || qtype === TYPE.ANY)) answers.push({ type: 'A', name: owner, ttl: TTL, data: addressToString(a) });
      if (a.family === AF_INET6 && (qtype === TYPE.AAAA || qtype === TYPE.ANY)) answers.push({ type: 'AAAA', name: owner, ttl: TTL, data: addressToString(a) });
    }
    return { rcode: RCODE.NOERROR, aa: true, answers, authorities: answers.length === 0 && soa ? [soa] : [] };
  }

  /** The names a PTR answer gives for an address: its machines, in the first forward zone if there is one. */
  private ptrTargets(family: number, bytes: number[]): string[] {
    if (family === AF_INET6 && isLinkLocal6(bytes)) return [];
    return this.source
      .reverse(family, bytes)
      .filter((e) => !e.ifindex)
      .map((e) => (this.ptrZone ? `${e.name}.${this.ptrZone}` : e.name));
  }
}

/** The zone's SOA record, its owner spelled as in the question. */
function soaFor(labels: string[], zone: Zone): RR {
  return { ...zone.soa, name: labels.slice(labels.length - zone.labels.length).join('.') };
}

function refused(): Outcome {
  return { rcode: RCODE.REFUSED, aa: false, answers: [], authorities: [] };
}

/** The longest zone that is the name or one of its ancestors (compared label by label, lower case). */
function longestZone(zones: readonly Zone[], lower: readonly string[]): Zone | undefined {
  let best: Zone | undefined;
  for (const z of zones) {
    if (z.labels.length > lower.length || (best && z.labels.length <= best.labels.length)) continue;
    const off = lower.length - z.labels.length;
    if (z.labels.every((l, i) => lower[off + i] === l)) best = z;
  }
  return best;
}

/** A query for the zone's own name: its SOA for SOA and ANY, else no data. */
function apex(qtype: number, soa: RR): Outcome {
  if (qtype === TYPE.SOA || qtype === TYPE.ANY) return { rcode: RCODE.NOERROR, aa: true, answers: [soa], authorities: [] };
  return { rcode: RCODE.NOERROR, aa: true, answers: [], authorities: [soa] };
}

function header(id: number, flags: number, qd: number, an: number, ns: number, ar: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(id, 0);
  b.writeUInt16BE(flags, 2);
  b.writeUInt16BE(qd, 4);
  b.writeUInt16BE(an, 6);
  b.writeUInt16BE(ns, 8);
  b.writeUInt16BE(ar, 10);
  return b;
}

/** The records' wire bytes (dns-packet, without its header). */
function records(answers: RR[], authorities: RR[], additionals: RR[]): Buffer {
  if (answers.length + authorities.length + additionals.length === 0) return Buffer.alloc(0);
  return dnsPacket.encode({ type: 'response', answers, authorities, additionals }).subarray(12);
}

function encode(q: Query, out: Outcome, limit: number): Buffer {
  const flags = QR | (out.aa ? AA : 0) | (q.flags & (RD | CD)) | (out.rcode & 0xf);
  const opt: RR[] = q.edns
    ? [{ type: 'OPT', name: '.', udpPayloadSize: MAX_UDP_SIZE, extendedRcode: out.rcode >> 4, ednsVersion: 0, flags: q.edns.do ? DO : 0, flag_do: q.edns.do, options: [] }]
    : [];
  const body = records(out.answers, out.authorities, opt);
  if (12 + q.question.length + body.length <= limit) {
    return Buffer.concat([header(q.id, flags, 1, out.answers.length, out.authorities.length, opt.length), q.question, body]);
  }
  // Too big for this transport: the question alone with TC, so that the client asks again over TCP.
  return Buffer.concat([header(q.id, flags | TC, 1, 0, 0, opt.length), q.question, records([], [], opt)]);
}
