// The DNS server's answers: one message in, one response out (or a zone transfer's messages, or nothing).
// Queries are answered from the resolver's in-memory index, the zones' SOA, NS and transfers from the
// ZoneSet. Authoritative for machine names only: never recursion, never forwarding. A signed request
// (TSIG) is checked first, and its answer signed.
import { AF_INET, AF_INET6, RT_SCOPE_LINK, addressToString, scopeOf } from '../registry/address.js';
import { inDns, type Resolver } from './resolver.js';
import { NIBBLE, OCTET, type TransferRule } from './dns-config.js';
import { appendUnsignedTsig, ResponseSigner, timeOther, TSIG_ERROR, tsigErrorName, verify, type TsigKey } from './dns-tsig.js';
import { axfrRecords, ixfrRecords, mayTransfer, nsRecords, soaRecord, transferMessages, type ZoneHead } from './dns-transfer.js';
import { AA, CD, CLASS_IN, DO, QR, RCODE, RD, TC, TYPE, header, parseQuery, records, type Query, type RR } from './dns-wire.js';
import { longestZone, type Zone, type ZoneSet } from './dns-zones.js';

/** What the responder needs of the resolver. */
export type DnsSource = Pick<Resolver, 'lookup' | 'reverse'>;

/** Answers carry TTL 0, as machined's and nss-mymachines': addresses change as containers do, and a
 *  cache in front of us (dnsmasq, unbound, a client library) would go on handing out stale ones. Zone
 *  transfers carry the zone TTL (--dns-zone-ttl) instead. */
const TTL = 0;
/** Largest UDP response we send: the DNS flag day 2020 size, which avoids IP fragmentation. */
const MAX_UDP_SIZE = 1232;
/** The UDP size without EDNS (RFC 1035). */
const PLAIN_UDP_SIZE = 512;
const MAX_TCP_SIZE = 65535;

/** The messages of a zone transfer, made one by one as the server sends them. */
export interface Transfer {
  messages: Iterator<Buffer>;
  /** For the log. */
  info: { zone: string; type: 'AXFR' | 'IXFR'; serial: number; from?: number; incremental: boolean; client: string; key?: string };
}

interface DnsLogger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  debug(o: object, msg: string): void;
}

export interface DnsResponderOptions {
  zones: ZoneSet;
  head: ZoneHead;
  transferAllow: readonly TransferRule[];
  keys: ReadonlyMap<string, TsigKey>;
  log: DnsLogger;
  /** Seconds since the epoch (TSIG times). */
  clock?: () => number;
}

interface Outcome {
  rcode: number;
  aa: boolean;
  answers: RR[];
  authorities: RR[];
}

/** At most this many warnings a minute of one kind (bad signatures, refused transfers): a flood of
 *  bad packets must not flood the log. */
const WARNINGS_PER_MINUTE = 20;

export class DnsResponder {
  private readonly forward: Zone[];
  private readonly reverseZones: Zone[];
  /** The zone PTR targets are named in (the first forward zone), or '' for bare machine names. */
  private readonly ptrZone: string;
  private readonly clock: () => number;
  private readonly warned = new Map<string, { minute: number; count: number }>();

  constructor(
    private readonly source: DnsSource,
    private readonly opts: DnsResponderOptions,
  ) {
    this.forward = opts.zones.forward;
    this.reverseZones = opts.zones.reverseZones;
    this.ptrZone = this.forward[0]?.name ?? '';
    this.clock = opts.clock ?? (() => Math.floor(Date.now() / 1000));
  }

  /** The response to one message (or a transfer's messages); undefined when it gets none. transport:
   *  'udp' limits the size to 512 bytes, or to the query's EDNS size up to MAX_UDP_SIZE, and sets TC
   *  beyond. client: the peer's address, for --dns-transfer-allow. Never throws. */
  respond(msg: Buffer, transport: 'udp' | 'tcp', client = ''): Buffer | Transfer | undefined {
    const q = parseQuery(msg);
    if (q === undefined) return undefined;
    if ('rcode' in q) {
      this.opts.log.debug({ client, why: q.why, rcode: q.rcode }, 'dns message refused');
      return header(q.id, (q.flags & (RD | CD | 0x7800)) | QR | q.rcode, 0, 0, 0, 0);
    }
    const limit = transport === 'tcp' ? MAX_TCP_SIZE : q.edns ? Math.max(PLAIN_UDP_SIZE, Math.min(q.edns.udpSize, MAX_UDP_SIZE)) : PLAIN_UDP_SIZE;
    // A signed request: its signature first. A bad one is answered NOTAUTH and never served.
    let signer: ResponseSigner | undefined;
    if (q.tsig) {
      const now = this.clock();
      const v = verify(msg, q.tsig, this.opts.keys, now);
      if (!v.ok) {
        this.warn('tsig', { client, key: q.tsig.keyName, error: 'formErr' in v ? 'FORMERR' : tsigErrorName(v.error), why: v.why }, 'dns request with a bad TSIG signature refused');
        if ('formErr' in v) return header(q.id, (q.flags & (RD | CD)) | QR | RCODE.FORMERR, 0, 0, 0, 0);
        const m = encode(q, { rcode: RCODE.NOTAUTH, aa: false, answers: [], authorities: [] }, limit);
        // BADKEY and BADSIG answers are unsigned (RFC 8945 5.3.2: we cannot, or must not, sign them).
        if (!v.key) return appendUnsignedTsig(m, q.tsig, v.error);
        return new ResponseSigner(v.key, q.tsig.mac, q.tsig.originalId).sign(m, now, v.error, v.error === TSIG_ERROR.BADTIME ? timeOther(now) : undefined);
      }
      signer = new ResponseSigner(v.key, v.mac, q.tsig.originalId);
    }
    let out: Outcome;
    if (q.edns && q.edns.version !== 0) out = { rcode: RCODE.BADVERS, aa: false, answers: [], authorities: [] };
    else if (q.qclass !== CLASS_IN || q.qtype === TYPE.OPT || q.qtype === TYPE.TSIG) out = refused();
    else if (q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) {
      const t = this.transfer(q, transport, client, signer);
      if (!('rcode' in t)) return t;
      out = t;
    } else out = this.answer(q.labels, q.qtype);
    const m = encode(q, out, signer ? limit - 128 : limit);
    return signer ? signer.sign(m, this.clock()) : m;
  }

  /** AXFR or IXFR of one of our zones, for a peer that --dns-transfer-allow lets in: the transfer over TCP;
   *  over UDP, an IXFR is answered with the SOA alone (RFC 1995 2: the client then asks over TCP) and AXFR
   *  is refused. Everyone else: REFUSED. */
  private transfer(q: Query, transport: 'udp' | 'tcp', client: string, signer: ResponseSigner | undefined): Transfer | Outcome {
    const type = q.qtype === TYPE.AXFR ? 'AXFR' : 'IXFR';
    const key = q.tsig?.keyName;
    const name = q.labels.join('.').toLowerCase();
    if (!mayTransfer(this.opts.transferAllow, client, key)) {
      this.warn('transfer', { client, key, zone: name, type }, 'dns zone transfer refused: not in --dns-transfer-allow');
      return refused();
    }
    const zone = this.opts.zones.get(name);
    if (!zone) return { rcode: RCODE.NOTAUTH, aa: false, answers: [], authorities: [] };
    const { head } = this.opts;
    if (transport === 'udp') {
      if (type === 'AXFR') return refused();
      return { rcode: RCODE.NOERROR, aa: true, answers: [soaRecord(zone, head, head.ttl)], authorities: [] };
    }
    const opt = optRecord(q, RCODE.NOERROR);
    const info: Transfer['info'] = { zone: zone.name, type, serial: zone.serial, incremental: false, client, ...(key ? { key } : {}) };
    let rrs: Iterable<RR>;
    if (type === 'IXFR') {
      const from = q.ixfrSerial!;
      const changes = zone.changesSince(from);
      info.from = from;
      if (changes === 'current') rrs = [soaRecord(zone, head, head.ttl)];
      else if (changes === undefined) rrs = axfrRecords(zone, head); // that version is gone: the whole zone
      else {
        rrs = ixfrRecords(zone, head, from, changes);
        info.incremental = true;
      }
    } else rrs = axfrRecords(zone, head);
    return { messages: transferMessages(q, rrs, opt, signer, this.clock), info };
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
      const soa = this.soaFor(labels, zone);
      if (zone.labels.length === labels.length) return this.apex(labels, zone, qtype);
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
    const soa = rzone !== undefined ? this.soaFor(labels, rzone) : undefined;
    const bytes = plain ? reverseAddress(family, under) : undefined;
    if (bytes) {
      const names = this.ptrTargets(family, bytes);
      if (names.length > 0) {
        if (qtype !== TYPE.PTR && qtype !== TYPE.ANY) return { rcode: RCODE.NOERROR, aa: true, answers: [], authorities: soa ? [soa] : [] };
        return { rcode: RCODE.NOERROR, aa: true, answers: names.map((n) => ({ type: 'PTR', name: qname, ttl: TTL, data: n })), authorities: [] };
      }
    }
    // Other reverse names are ours only in a reverse zone given with --dns-zone or --dns-reverse-zone.
    if (rzone === undefined || soa === undefined) return refused();
    if (rzone.labels.length === labels.length) return this.apex(labels, rzone, qtype);
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
      if (!inDns(a)) continue;
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

  /** The zone's SOA record, its owner spelled as in the question. */
  private soaFor(labels: string[], zone: Zone): RR {
    return soaRecord(zone, this.opts.head, TTL, zone.serial, labels.slice(labels.length - zone.labels.length).join('.'));
  }

  /** A query for the zone's own name: its SOA and NS records, each for its type (both for ANY), else no data. */
  private apex(labels: string[], zone: Zone, qtype: number): Outcome {
    const soa = this.soaFor(labels, zone);
    const answers: RR[] = [];
    if (qtype === TYPE.SOA || qtype === TYPE.ANY) answers.push(soa);
    if (qtype === TYPE.NS || qtype === TYPE.ANY) answers.push(...nsRecords(zone, this.opts.head, TTL, soa.name));
    return { rcode: RCODE.NOERROR, aa: true, answers, authorities: answers.length === 0 ? [soa] : [] };
  }

  /** Logs at most WARNINGS_PER_MINUTE warnings a minute of one kind, then one that says more were left out. */
  private warn(kind: string, o: object, msg: string): void {
    const minute = Math.floor(Date.now() / 60_000);
    const w = this.warned.get(kind);
    const seen = w && w.minute === minute ? w.count + 1 : 1;
    this.warned.set(kind, { minute, count: seen });
    if (seen <= WARNINGS_PER_MINUTE) this.opts.log.warn(o, msg);
    else if (seen === WARNINGS_PER_MINUTE + 1) this.opts.log.warn({ kind }, `more than ${WARNINGS_PER_MINUTE} such warnings this minute: the rest of them are left out`);
  }
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

function refused(): Outcome {
  return { rcode: RCODE.REFUSED, aa: false, answers: [], authorities: [] };
}

/** The OPT record of a response to a query with EDNS; none without. */
function optRecord(q: Query, rcode: number): RR[] {
  if (!q.edns) return [];
  return [{ type: 'OPT', name: '.', udpPayloadSize: MAX_UDP_SIZE, extendedRcode: rcode >> 4, ednsVersion: 0, flags: q.edns.do ? DO : 0, flag_do: q.edns.do, options: [] }];
}

function encode(q: Query, out: Outcome, limit: number): Buffer {
  const flags = QR | (out.aa ? AA : 0) | (q.flags & (RD | CD)) | (out.rcode & 0xf);
  const opt = optRecord(q, out.rcode);
  const body = records(out.answers, out.authorities, opt);
  if (12 + q.question.length + body.length <= limit) {
    return Buffer.concat([header(q.id, flags, 1, out.answers.length, out.authorities.length, opt.length), q.question, body]);
  }
  // Too big for this transport: the question alone with TC, so that the client asks again over TCP.
  return Buffer.concat([header(q.id, flags | TC, 1, 0, 0, opt.length), q.question, records([], [], opt)]);
}
