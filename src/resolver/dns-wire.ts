// DNS messages on the wire, as far as the server reads them itself: the header, one question, OPT, the
// SOA of an IXFR request and a TSIG record, by a small strict parser, so that any bytes at all are
// handled without an exception, and the question is echoed byte for byte (0x20 case randomisation).
// Records are encoded by dns-packet (records()); headers here.
import dnsPacket from 'dns-packet';
import { readTsig, type TsigRecord } from './dns-tsig.js';

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, NOTAUTH: 9, BADVERS: 16 } as const;
export const TYPE = { A: 1, NS: 2, SOA: 6, PTR: 12, AAAA: 28, OPT: 41, TSIG: 250, IXFR: 251, AXFR: 252, ANY: 255 } as const;
export const OPCODE = { QUERY: 0, NOTIFY: 4 } as const;
export const CLASS_IN = 1;

export const QR = 0x8000;
export const AA = 0x0400;
export const TC = 0x0200;
export const RD = 0x0100;
export const CD = 0x0010;
export const DO = 0x8000;

export type RR = dnsPacket.Answer;

/** A query as read from the wire. */
export interface Query {
  id: number;
  flags: number;
  /** The question's bytes as received: name, type, class. */
  question: Buffer;
  /** The question's labels (latin1, case as received). */
  labels: string[];
  qtype: number;
  qclass: number;
  edns?: { udpSize: number; version: number; do: boolean };
  /** IXFR: the serial of the SOA in the authority section (the version the client has). */
  ixfrSerial?: number;
  tsig?: TsigRecord;
}

/** A message answered by a header alone: FORMERR, or NOTIMP for an opcode other than QUERY. */
export interface HeaderOnly {
  rcode: number;
  id: number;
  flags: number;
  /** What is wrong, for the log. */
  why: string;
}

/** Reads a query; undefined for a packet that gets no answer at all (no header, or a response). */
export function parseQuery(msg: Buffer): Query | HeaderOnly | undefined {
  if (msg.length < 12) return undefined;
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & QR) return undefined; // never answer a response: no loops between servers
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== OPCODE.QUERY) return { rcode: RCODE.NOTIMP, id, flags, why: `opcode ${opcode}` };
  const formErr = (why: string): HeaderOnly => ({ rcode: RCODE.FORMERR, id, flags, why });
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  const ns = msg.readUInt16BE(8);
  const ar = msg.readUInt16BE(10);
  if (qd !== 1) return formErr('QDCOUNT is not 1');
  // The question: its name cannot use compression (nothing comes before it to point at).
  let off = 12;
  const labels: string[] = [];
  for (;;) {
    if (off >= msg.length) return formErr('question name runs past the end');
    const len = msg[off];
    if (len === 0) {
      off++;
      break;
    }
    if (len > 63) return formErr('compression or extended label in the question');
    if (off + 1 + len > msg.length) return formErr('label runs past the end');
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
    if (off - 12 > 255) return formErr('question name longer than 255 bytes');
  }
  if (off + 4 > msg.length) return formErr('question type and class missing');
  const qtype = msg.readUInt16BE(off);
  const qclass = msg.readUInt16BE(off + 2);
  off += 4;
  const question = msg.subarray(12, off);
  // Answer records (none in a query) are skipped; the authority section is read for an IXFR's SOA, the
  // additional one for OPT and TSIG.
  let edns: Query['edns'];
  let ixfrSerial: number | undefined;
  let tsig: TsigRecord | undefined;
  const total = an + ns + ar;
  for (let i = 0; i < total; i++) {
    const nameStart = off;
    off = skipName(msg, off);
    if (off < 0 || off + 10 > msg.length) return formErr('record runs past the end');
    const type = msg.readUInt16BE(off);
    const klass = msg.readUInt16BE(off + 2);
    const ttl = msg.readUInt32BE(off + 4);
    const rdlen = msg.readUInt16BE(off + 8);
    off += 10;
    if (off + rdlen > msg.length) return formErr('record data runs past the end');
    if (type === TYPE.OPT) {
      if (i < an + ns || edns || msg[nameStart] !== 0) return formErr('misplaced, repeated or named OPT');
      // Options: code, length, data; they must fill the record exactly.
      let o = off;
      while (o < off + rdlen) {
        if (o + 4 > off + rdlen) return formErr('EDNS option header runs past its record');
        o += 4 + msg.readUInt16BE(o + 2);
      }
      if (o !== off + rdlen) return formErr('EDNS option runs past its record');
      edns = { udpSize: klass, version: (ttl >>> 16) & 0xff, do: (ttl & DO) !== 0 };
    } else if (type === TYPE.TSIG) {
      if (i !== total - 1 || i < an + ns) return formErr('TSIG record is not the last one');
      const t = readTsig(msg, nameStart, klass, ttl, off, off + rdlen);
      if (typeof t === 'string') return formErr(t);
      tsig = t;
    } else if (i === an && type === TYPE.SOA && qtype === TYPE.IXFR) {
      // RDATA: MNAME, RNAME (compressed or not), then SERIAL.
      const o = skipName(msg, off);
      const s = o < 0 ? -1 : skipName(msg, o);
      if (s < 0 || s + 20 !== off + rdlen) return formErr('malformed SOA in the IXFR request');
      ixfrSerial = msg.readUInt32BE(s);
    }
    off += rdlen;
  }
  if (off !== msg.length) return formErr('trailing bytes');
  if (qtype === TYPE.IXFR && ixfrSerial === undefined) return formErr("IXFR request without the client's SOA");
  return { id, flags, question, labels, qtype, qclass, edns, ixfrSerial, tsig };
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

export function header(id: number, flags: number, qd: number, an: number, ns: number, ar: number): Buffer {
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
export function records(answers: RR[], authorities: RR[], additionals: RR[]): Buffer {
  if (answers.length + authorities.length + additionals.length === 0) return Buffer.alloc(0);
  return dnsPacket.encode({ type: 'response', answers, authorities, additionals }).subarray(12);
}

/** The question section of a message for `name`, `type`, class IN. */
export function questionBytes(name: string, type: number): Buffer {
  const labels = name === '' ? [] : name.split('.');
  const parts = labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(type, 1);
  tail.writeUInt16BE(CLASS_IN, 3);
  return Buffer.concat([...parts, tail]);
}

/** The TSIG record at the end of any message (a response too), undefined when there is none; a string
 *  names what is malformed. */
export function messageTsig(msg: Buffer): TsigRecord | undefined | string {
  if (msg.length < 12) return 'no header';
  const qd = msg.readUInt16BE(4);
  const total = msg.readUInt16BE(6) + msg.readUInt16BE(8) + msg.readUInt16BE(10);
  let off = 12;
  for (let i = 0; i < qd; i++) {
    off = skipName(msg, off);
    if (off < 0 || off + 4 > msg.length) return 'question runs past the end';
    off += 4;
  }
  for (let i = 0; i < total; i++) {
    const start = off;
    off = skipName(msg, off);
    if (off < 0 || off + 10 > msg.length) return 'record runs past the end';
    const type = msg.readUInt16BE(off);
    const rdlen = msg.readUInt16BE(off + 8);
    if (off + 10 + rdlen > msg.length) return 'record data runs past the end';
    if (type === TYPE.TSIG) {
      if (i !== total - 1) return 'TSIG record is not the last one';
      return readTsig(msg, start, msg.readUInt16BE(off + 2), msg.readUInt32BE(off + 4), off + 10, off + 10 + rdlen);
    }
    off += 10 + rdlen;
  }
  return undefined;
}
