// TSIG (RFC 8945), HMAC-SHA256 only: the keys an operator gives (key files in BIND's format, as
// tsig-keygen writes them), checking a signed message, and signing responses, multi-message transfers and
// NOTIFY. Written here, over node:crypto: no maintained npm package does TSIG (dns-packet, which encodes
// our records, knows the type number only).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseKeyName } from './dns-config.js';

const ALGORITHM = 'hmac-sha256';
const MAC_BYTES = 32;
/** RFC 8945 5.2.2.1: a MAC shorter than half the hash (or 10 bytes) is a format error. */
const MIN_MAC_BYTES = MAC_BYTES / 2;
/** Seconds a signature's time may differ from ours (RFC 8945 recommends 300). */
const FUDGE = 300;
const TYPE_TSIG = 250;
const CLASS_ANY = 255;

/** TSIG error codes (RFC 8945 3). */
export const TSIG_ERROR = { NOERROR: 0, BADSIG: 16, BADKEY: 17, BADTIME: 18, BADTRUNC: 22 } as const;
const TSIG_ERROR_NAME: Record<number, string> = { 16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME', 22: 'BADTRUNC' };

export function tsigErrorName(code: number): string {
  return TSIG_ERROR_NAME[code] ?? String(code);
}

export interface TsigKey {
  /** Lower case, without the trailing dot. */
  name: string;
  secret: Buffer;
}

/** Reads key files in BIND's format (`key "name" { algorithm hmac-sha256; secret "base64"; };`, several
 *  keys a file); throws an Error that names the file and what is wrong in it. */
export function readKeyFiles(paths: readonly string[]): Map<string, TsigKey> {
  const keys = new Map<string, TsigKey>();
  for (const path of paths) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new Error(`--dns-tsig-key ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    for (const k of parseKeyFile(text, path)) {
      if (keys.has(k.name)) throw new Error(`--dns-tsig-key ${path}: key '${k.name}' is given twice`);
      keys.set(k.name, k);
    }
  }
  return keys;
}

function parseKeyFile(text: string, path: string): TsigKey[] {
  const fail = (what: string) => new Error(`--dns-tsig-key ${path}: ${what}`);
  // Strings, comments as named.conf has them (#, // and /* */, never inside a string), punctuation, words.
  const tokens = (text.match(/"[^"]*"|\/\*[\s\S]*?\*\/|(?:#|\/\/)[^\n]*|[{};]|[^\s{};"#]+/g) ?? []).filter((t) => !/^(#|\/\/|\/\*)/.test(t));
  let i = 0;
  const next = (what: string) => {
    if (i >= tokens.length) throw fail(`the file ends where ${what} should be`);
    return tokens[i++];
  };
  const expect = (t: string) => {
    const got = next(`'${t}'`);
    if (got !== t) throw fail(`expected '${t}', found '${got}'`);
  };
  const unquote = (t: string) => (t.startsWith('"') ? t.slice(1, -1) : t);
  const keys: TsigKey[] = [];
  while (i < tokens.length) {
    const kw = next('key');
    if (kw !== 'key') throw fail(`expected 'key', found '${kw}'`);
    let name: string;
    try {
      name = parseKeyName(unquote(next('the key name')));
    } catch (e) {
      throw fail((e as Error).message);
    }
    expect('{');
    let algorithm: string | undefined;
    let secret: string | undefined;
    for (let t = next("'}'"); t !== '}'; t = next("'}'")) {
      const value = unquote(next(`the value of ${t}`));
      expect(';');
      if (t === 'algorithm') algorithm = value.toLowerCase();
      else if (t === 'secret') secret = value;
      else throw fail(`key '${name}': unknown statement '${t}'`);
    }
    expect(';');
    if (algorithm !== ALGORITHM) throw fail(`key '${name}': algorithm ${algorithm ?? '(none)'} is not supported (only ${ALGORITHM})`);
    if (secret === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(secret) || secret.length % 4 !== 0) throw fail(`key '${name}': the secret is not base64`);
    const bytes = Buffer.from(secret, 'base64');
    if (bytes.length < 16) throw fail(`key '${name}': the secret has ${bytes.length} bytes, at least 16 are needed (tsig-keygen makes 32)`);
    keys.push({ name, secret: bytes });
  }
  if (keys.length === 0) throw fail('no key in the file');
  return keys;
}

/** The TSIG record of a message as read (RFC 8945 4.2); start: where the record begins. */
export interface TsigRecord {
  start: number;
  keyName: string;
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
}

/** Reads the TSIG record whose owner name starts at `start` and whose RDATA is [rdata, end) of msg, the
 *  type, class and TTL already read; a string names what is malformed. Names there are never compressed. */
export function readTsig(msg: Buffer, start: number, klass: number, ttl: number, rdata: number, end: number): TsigRecord | string {
  if (klass !== CLASS_ANY || ttl !== 0) return 'TSIG record with a class other than ANY or a TTL';
  const owner = readPlainName(msg, start, rdata);
  if (typeof owner !== 'object') return 'TSIG key name compressed or malformed';
  const alg = readPlainName(msg, rdata, end);
  if (typeof alg !== 'object') return 'TSIG algorithm name compressed or malformed';
  let o = alg.next;
  if (o + 10 > end) return 'TSIG record truncated';
  const timeSigned = msg.readUIntBE(o, 6);
  const fudge = msg.readUInt16BE(o + 6);
  const macSize = msg.readUInt16BE(o + 8);
  o += 10;
  if (o + macSize + 6 > end) return 'TSIG MAC runs past its record';
  const mac = msg.subarray(o, o + macSize);
  o += macSize;
  const originalId = msg.readUInt16BE(o);
  const error = msg.readUInt16BE(o + 2);
  const otherLen = msg.readUInt16BE(o + 4);
  o += 6;
  if (o + otherLen !== end) return 'TSIG other data does not fill its record';
  return { start, keyName: owner.name, algorithm: alg.name, timeSigned, fudge, mac, originalId, error, other: msg.subarray(o, end) };
}

/** A name of plain labels ending before `limit`, lower case, without the trailing dot. */
function readPlainName(msg: Buffer, off: number, limit: number): { name: string; next: number } | undefined {
  const labels: string[] = [];
  for (;;) {
    if (off >= limit) return undefined;
    const len = msg[off];
    if (len === 0) return { name: labels.join('.').toLowerCase(), next: off + 1 };
    if (len > 63 || off + 1 + len >= limit) return undefined;
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
}

function nameWire(name: string): Buffer {
  const parts = name === '' ? [] : name.split('.');
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])), Buffer.from([0])]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u48(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
}

/** The TSIG variables a MAC covers (RFC 8945 4.3.3); timersOnly for the later messages of a stream. */
function variables(keyName: string, timeSigned: number, fudge: number, error: number, other: Buffer, timersOnly: boolean): Buffer {
  const timers = Buffer.concat([u48(timeSigned), u16(fudge)]);
  if (timersOnly) return timers;
  return Buffer.concat([nameWire(keyName), u16(CLASS_ANY), Buffer.alloc(4), nameWire(ALGORITHM), timers, u16(error), u16(other.length), other]);
}

/** The message as the MAC sees it: without its TSIG record, one record fewer, with the original ID. */
function unsignedPart(msg: Buffer, t: TsigRecord): Buffer {
  const m = Buffer.from(msg.subarray(0, t.start));
  m.writeUInt16BE(t.originalId, 0);
  m.writeUInt16BE(m.readUInt16BE(10) - 1, 10);
  return m;
}

function hmac(key: TsigKey, parts: Buffer[]): Buffer {
  const h = createHmac('sha256', key.secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

function priorMac(mac: Buffer | undefined): Buffer[] {
  return mac ? [u16(mac.length), mac] : [];
}

export type Verdict =
  | { ok: true; key: TsigKey; mac: Buffer }
  /** A TSIG error (BADKEY, BADSIG, BADTIME, BADTRUNC): answered NOTAUTH with that error. */
  | { ok: false; error: number; key?: TsigKey; why: string }
  /** Malformed: answered FORMERR. */
  | { ok: false; formErr: true; why: string };

/** Checks a signed message: the key, the MAC (over the message, after `prior` for a response), the time. */
export function verify(msg: Buffer, t: TsigRecord, keys: ReadonlyMap<string, TsigKey>, now: number, prior?: Buffer): Verdict {
  const key = keys.get(t.keyName);
  if (!key) return { ok: false, error: TSIG_ERROR.BADKEY, why: `unknown key '${t.keyName}'` };
  if (t.algorithm !== ALGORITHM) return { ok: false, error: TSIG_ERROR.BADKEY, why: `key '${t.keyName}' signed with ${t.algorithm}, not ${ALGORITHM}` };
  if (t.mac.length > MAC_BYTES || t.mac.length < MIN_MAC_BYTES) return { ok: false, formErr: true, why: `TSIG MAC of ${t.mac.length} bytes` };
  const want = hmac(key, [...priorMac(prior), unsignedPart(msg, t), variables(t.keyName, t.timeSigned, t.fudge, t.error, t.other, false)]);
  if (!timingSafeEqual(want.subarray(0, t.mac.length), t.mac)) return { ok: false, error: TSIG_ERROR.BADSIG, why: `bad signature with key '${t.keyName}'` };
  if (t.mac.length < MAC_BYTES) return { ok: false, error: TSIG_ERROR.BADTRUNC, key, why: `MAC truncated to ${t.mac.length} bytes` };
  if (Math.abs(now - t.timeSigned) > t.fudge) return { ok: false, error: TSIG_ERROR.BADTIME, key, why: `signed at ${t.timeSigned}, ${now - t.timeSigned} s from our clock` };
  return { ok: true, key, mac: t.mac };
}

/** A TSIG record for `msg` (whose header is final), its MAC over what RFC 8945 says; the message with the
 *  record appended and ARCOUNT raised. */
function appendTsig(msg: Buffer, keyName: string, mac: Buffer, originalId: number, timeSigned: number, error: number, other: Buffer): Buffer {
  const rdata = Buffer.concat([nameWire(ALGORITHM), u48(timeSigned), u16(FUDGE), u16(mac.length), mac, u16(originalId), u16(error), u16(other.length), other]);
  const rr = Buffer.concat([nameWire(keyName), u16(TYPE_TSIG), u16(CLASS_ANY), Buffer.alloc(4), u16(rdata.length), rdata]);
  const out = Buffer.concat([msg, rr]);
  out.writeUInt16BE(msg.readUInt16BE(10) + 1, 10);
  return out;
}

/** Signs a request (NOTIFY): the MAC, to check the response with, and the signed message. */
export function signRequest(msg: Buffer, key: TsigKey, now: number): { signed: Buffer; mac: Buffer } {
  const mac = hmac(key, [msg, variables(key.name, now, FUDGE, 0, Buffer.alloc(0), false)]);
  return { signed: appendTsig(msg, key.name, mac, msg.readUInt16BE(0), now, 0, Buffer.alloc(0)), mac };
}

/** Signs the responses to one signed request, in order: the first after the request's MAC with all the
 *  variables, each later one after the previous MAC with the timers only (RFC 8945 5.3.1). */
export class ResponseSigner {
  private prior: Buffer;
  private first = true;

  constructor(
    private readonly key: TsigKey,
    requestMac: Buffer,
    private readonly originalId: number,
  ) {
    this.prior = requestMac;
  }

  sign(msg: Buffer, now: number, error = 0, other: Buffer = Buffer.alloc(0)): Buffer {
    const mac = hmac(this.key, [...priorMac(this.prior), msg, variables(this.key.name, now, FUDGE, error, other, !this.first)]);
    this.first = false;
    this.prior = mac;
    return appendTsig(msg, this.key.name, mac, this.originalId, now, error, other);
  }
}

/** The unsigned TSIG record of a BADKEY or BADSIG answer (RFC 8945 5.3.2): the request's key and time. */
export function appendUnsignedTsig(msg: Buffer, t: TsigRecord, error: number): Buffer {
  return appendTsig(msg, t.keyName, Buffer.alloc(0), t.originalId, t.timeSigned, error, Buffer.alloc(0));
}

/** The "other data" of a BADTIME answer: our time. */
export function timeOther(now: number): Buffer {
  return u48(now);
}
