// Zone transfers (AXFR, RFC 5936; IXFR, RFC 1995): who may have them (--dns-transfer-allow), and the
// messages of one, made one at a time, so that the server can send each and let other work run between
// them: a zone of many thousands of machines never holds the event loop for long.
import { parseAddress } from '../registry/address.js';
import { prefixContains, type TransferRule } from './dns-config.js';
import type { ResponseSigner } from './dns-tsig.js';
import { AA, QR, RD, header, records, type Query, type RR } from './dns-wire.js';
import { SOA_TIMERS, type Zone, type ZoneChanges, type ZoneRecord } from './dns-zones.js';

/** Bytes of records per message: BIND's and Knot's order of size, well under the 64 KiB limit of TCP. */
const MESSAGE_BYTES = 16 * 1024;

/** Whether a peer may transfer: some rule's address range holds it and its key (when the rule names
 *  one) is the one the request was signed with. No rule: nobody. */
export function mayTransfer(rules: readonly TransferRule[], client: string, key: string | undefined): boolean {
  const a = parseAddress(client.replace(/%.*$/, '').replace(/^::ffff:(?=\d+\.)/, ''));
  return rules.some((r) => (r.key === undefined || r.key === key) && (r.prefix === undefined || (a !== undefined && prefixContains(r.prefix, a.family, a.bytes))));
}

/** What the zone's SOA and NS records say. */
export interface ZoneHead {
  /** The name servers, in NS records; the first is the SOA's MNAME. */
  ns: readonly string[];
  ttl: number;
}

export function soaRecord(zone: Zone, head: ZoneHead, ttl: number, serial = zone.serial, owner = zone.name): RR {
  const mname = head.ns[0] ?? zone.name;
  return { name: owner, type: 'SOA', ttl, data: { mname, rname: `hostmaster.${zone.name}`, serial, ...SOA_TIMERS, minimum: head.ttl } };
}

export function nsRecords(zone: Zone, head: ZoneHead, ttl: number, owner = zone.name): RR[] {
  return (head.ns.length > 0 ? head.ns : [zone.name]).map((data) => ({ name: owner, type: 'NS', ttl, data }));
}

function rr(r: ZoneRecord, ttl: number): RR {
  return { name: r.name, type: r.type, ttl, data: r.data } as RR;
}

/** The records of a whole zone, in transfer order: SOA, NS, the records, SOA again. */
export function* axfrRecords(zone: Zone, head: ZoneHead): Generator<RR> {
  const soa = soaRecord(zone, head, head.ttl);
  yield soa;
  yield* nsRecords(zone, head, head.ttl);
  // A copy, taken now: the transfer is of this version, whatever changes while it is sent.
  const snapshot = [...zone.records.values()];
  for (const r of snapshot) yield rr(r, head.ttl);
  yield soa;
}

/** An incremental transfer (RFC 1995 4): the new SOA, the client's SOA, what went, the new SOA, what came,
 *  and the new SOA again. */
export function* ixfrRecords(zone: Zone, head: ZoneHead, from: number, changes: ZoneChanges): Generator<RR> {
  const soa = soaRecord(zone, head, head.ttl);
  yield soa;
  yield soaRecord(zone, head, head.ttl, from);
  for (const r of changes.removed) yield rr(r, head.ttl);
  yield soa;
  for (const r of changes.added) yield rr(r, head.ttl);
  yield soa;
}

/** About how many bytes a record takes on the wire (names are not compressed). */
function size(r: RR): number {
  const name = r.name.length + 2;
  if (r.type === 'A') return name + 14;
  if (r.type === 'AAAA') return name + 26;
  if (r.type === 'SOA') return name + 10 + r.data.mname.length + r.data.rname.length + 24;
  return name + 12 + String((r as { data?: unknown }).data).length;
}

/** The messages of a transfer: the records in messages of about MESSAGE_BYTES, the question in the
 *  first, OPT in each when the request had EDNS, each signed when the request was. */
export function* transferMessages(q: Query, rrs: Iterable<RR>, opt: RR[], signer: ResponseSigner | undefined, now: () => number): Generator<Buffer> {
  let batch: RR[] = [];
  let bytes = 0;
  let first = true;
  const flush = () => {
    const h = header(q.id, QR | AA | (q.flags & RD), first ? 1 : 0, batch.length, 0, opt.length);
    const m = Buffer.concat([h, first ? q.question : Buffer.alloc(0), records(batch, [], opt)]);
    first = false;
    batch = [];
    bytes = 0;
    return signer ? signer.sign(m, now()) : m;
  };
  for (const r of rrs) {
    const n = size(r);
    if (batch.length > 0 && bytes + n > MESSAGE_BYTES) yield flush();
    batch.push(r);
    bytes += n;
  }
  if (batch.length > 0) yield flush();
}
