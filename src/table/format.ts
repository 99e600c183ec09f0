// The lookup table's binary format, version 1 (docs/CONTRACTS.md, "The lookup table"): the file header,
// and the encoder of a section (the base, or a delta over the section below it) from per-machine
// fragments. Pure: bytes in memory, no I/O. The reader is the NSS module's nss-module/src/table.c; a
// second writer, for the module's own tests, is nss-module/test/table_writer.py. All integers are
// little-endian; every record is a multiple of 4 bytes, every array starts 4-aligned.

export const MAGIC = 'MYMTABLE';
export const VERSION = 1;
export const HEADER_SIZE = 64;
/** Sections start on this boundary in the file. */
export const SECTION_ALIGN = 64;
/** The byte of the table file that the daemon holds a write lock on (fcntl F_SETLK) while it runs. */
export const LOCK_BYTE = 0x4d4d;

/** Offsets of the header's fields. `state` and `delta` are written in place after the file is renamed in. */
export const HEADER = {
  magic: 0, // 8 bytes
  version: 8, // u32
  headerSize: 12, // u32
  fileSize: 16, // u64
  generation: 24, // u64: the file's, counted by the daemon from 1
  pid: 32, // u32: the daemon's (for people; liveness is the lock)
  state: 36, // u32: STATE_*
  baseOffset: 40, // u32
  baseSize: 44, // u32
  delta: 48, // u32 offset of the top delta section (0: none), then u32 its complement
  deltaArea: 56, // u32: where delta sections go, one after another, up to the file's end
} as const;
const STATE_CURRENT = 0;
/** A newer file has been renamed over this one: look the path up again. */
export const STATE_SUPERSEDED = 1;

export const SECTION_BASE = 1;
export const SECTION_DELTA = 2;
const SECTION_MAGIC = 0x534d594d; // "MYMS"
export const SECTION_HEADER_SIZE = 112;
export const ADDRESS_SIZE = 24;
const MACHINE_SIZE = 32;
const REVERSE_SIZE = 28;
const NAMEREF_SIZE = 8;
const SEGMENT_SIZE = 16;
const LINE_SIZE = 12;
/** Machine flags. */
export const PRESENT = 1;
export const CONTAINER = 2;

export interface IdLine {
  base: number;
  shift: number;
  range: number;
}

/** A machine's part of a section, encoded once when it changes: its entry for a name (ignoring case). */
export interface Fragment {
  /** The registered name (a tombstone: the lower-cased name). */
  name: string;
  hash: number;
  /** PRESENT (else: no machine of this name any more, in a delta), CONTAINER (has user records). */
  flags: number;
  /** Its hosts answer, ADDRESS_SIZE bytes each: family (u8), ifindex (u32 at 4), 16 address bytes at 8. */
  addrs: Uint8Array;
  /** uid_map lines then gid_map lines, (base, shift, range) each: what lookups by name map through. */
  lines: Uint32Array;
  uidLines: number;
  gidLines: number;
  /** The lines that give it host IDs of its own (ownedLines): its ranges in lookups by ID. */
  owned: { uid: readonly IdLine[]; gid: readonly IdLine[] };
}

/** An address and the names of the machines that answer with it (none, in a delta: none any more). */
export interface ReverseEntry {
  family: number;
  /** 16 bytes (IPv4: the first 4). */
  bytes: Uint8Array;
  hash: number;
  names: readonly string[];
}

/** Host IDs start..start+count-1 are inner IDs base.. of the section's machine number `machine`. */
export interface Segment {
  start: number;
  count: number;
  base: number;
  machine: number;
}

export interface SectionInput {
  kind: typeof SECTION_BASE | typeof SECTION_DELTA;
  generation: number;
  /** A delta: the offset of the section it lies over (0: the base). */
  parent: number;
  machines: readonly Fragment[];
  reverse: Iterable<ReverseEntry>;
  reverseCount: number;
  /** Sorted by start and disjoint; machine: an index into machines. */
  uid: readonly Segment[];
  gid: readonly Segment[];
}

/** The hash of a name ignoring ASCII case (machine names are ASCII): FNV-1a, 32 bits. */
export function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    h = Math.imul(h ^ c, 0x01000193) >>> 0;
  }
  return h;
}

/** The hash of an address: FNV-1a over its family's byte, then its 4 or 16 bytes. */
export function addressHash(family: number, bytes: ArrayLike<number>): number {
  let h = Math.imul(0x811c9dc5 ^ family, 0x01000193) >>> 0;
  const n = family === 2 ? 4 : 16;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h;
}

/** The bucket count of an open-addressing index for n keys: a power of two, at most half full. */
function bucketsFor(n: number): number {
  if (n === 0) return 0;
  let b = 2;
  while (b < 2 * n) b *= 2;
  return b;
}

const align4 = (n: number) => (n + 3) & ~3;

/** The segments of these machines' own ranges, sorted by start (for sections whose ranges are disjoint). */
export function segmentsOf(machines: readonly Fragment[], kind: 'uid' | 'gid'): Segment[] {
  const out: Segment[] = [];
  machines.forEach((f, i) => {
    for (const l of f.owned[kind]) out.push({ start: l.shift, count: l.range, base: l.base, machine: i });
  });
  return out.sort((a, b) => a.start - b.start);
}

/** Encodes one section. */
export function encodeSection(s: SectionInput): Buffer {
  const machines = s.machines;
  // Strings: each machine's name, then names only reverse entries hold.
  const names = new Map<string, number>();
  let stringsSize = 0;
  let addrCount = 0;
  let lineCount = 0;
  for (const f of machines) {
    if (!names.has(f.name)) {
      names.set(f.name, stringsSize);
      stringsSize += f.name.length;
    }
    addrCount += f.addrs.length / ADDRESS_SIZE;
    lineCount += f.uidLines + f.gidLines;
  }
  const reverse = [...s.reverse];
  let namerefCount = 0;
  for (const r of reverse) {
    for (const n of r.names) {
      if (!names.has(n)) {
        names.set(n, stringsSize);
        stringsSize += n.length;
      }
    }
    namerefCount += r.names.length;
  }
  const nameBuckets = bucketsFor(machines.length);
  const revBuckets = bucketsFor(reverse.length);

  let off = SECTION_HEADER_SIZE;
  const place = (bytes: number) => {
    const at = off;
    off = align4(off + bytes);
    return at;
  };
  const machinesOff = place(machines.length * MACHINE_SIZE);
  const nameIndexOff = place(nameBuckets * 4);
  const revOff = place(reverse.length * REVERSE_SIZE);
  const revIndexOff = place(revBuckets * 4);
  const addrsOff = place(addrCount * ADDRESS_SIZE);
  const namerefsOff = place(namerefCount * NAMEREF_SIZE);
  const uidOff = place(s.uid.length * SEGMENT_SIZE);
  const gidOff = place(s.gid.length * SEGMENT_SIZE);
  const linesOff = place(lineCount * LINE_SIZE);
  const stringsOff = place(stringsSize);
  const size = off;

  const buf = Buffer.alloc(size);
  const u32 = new Uint32Array(buf.buffer, buf.byteOffset, size >> 2);
  u32[0] = SECTION_MAGIC;
  u32[1] = s.kind;
  u32[2] = size;
  u32[3] = s.parent;
  u32[4] = s.generation >>> 0;
  u32[5] = Math.floor(s.generation / 0x100000000);
  const table = [
    machines.length, machinesOff, nameBuckets, nameIndexOff, reverse.length, revOff, revBuckets, revIndexOff,
    addrCount, addrsOff, namerefCount, namerefsOff, s.uid.length, uidOff, s.gid.length, gidOff,
    lineCount, linesOff, stringsSize, stringsOff,
  ];
  for (let i = 0; i < table.length; i++) u32[6 + i] = table[i];
  for (const [n, o] of names) buf.write(n, stringsOff + o, n.length, 'latin1');

  // Machines, their addresses and lines, and the name index.
  let a = 0;
  let l = 0;
  const nameMask = nameBuckets - 1;
  const nameIndex = nameIndexOff >> 2;
  for (let i = 0; i < machines.length; i++) {
    const f = machines[i];
    const r = (machinesOff >> 2) + i * (MACHINE_SIZE >> 2);
    const n = f.addrs.length / ADDRESS_SIZE;
    u32[r] = names.get(f.name)!;
    u32[r + 1] = f.name.length | (f.flags << 16);
    u32[r + 2] = f.hash;
    u32[r + 3] = a;
    u32[r + 4] = n;
    u32[r + 5] = l;
    u32[r + 6] = f.uidLines | (f.gidLines << 16);
    buf.set(f.addrs, addrsOff + a * ADDRESS_SIZE);
    u32.set(f.lines, (linesOff >> 2) + l * 3);
    a += n;
    l += f.uidLines + f.gidLines;
    let b = f.hash & nameMask;
    while (u32[nameIndex + b] !== 0) b = (b + 1) & nameMask;
    u32[nameIndex + b] = i + 1;
  }

  // Reverse entries, their names, and their index.
  let nr = 0;
  const revMask = revBuckets - 1;
  const revIndex = revIndexOff >> 2;
  for (let i = 0; i < reverse.length; i++) {
    const e = reverse[i];
    const p = revOff + i * REVERSE_SIZE;
    buf[p] = e.family;
    buf.set(e.bytes, p + 4);
    u32[(p >> 2) + 5] = nr;
    u32[(p >> 2) + 6] = e.names.length;
    for (const n of e.names) {
      const q = (namerefsOff >> 2) + 2 * nr++;
      u32[q] = names.get(n)!;
      u32[q + 1] = n.length;
    }
    let b = e.hash & revMask;
    while (u32[revIndex + b] !== 0) b = (b + 1) & revMask;
    u32[revIndex + b] = i + 1;
  }

  for (const [segs, o] of [[s.uid, uidOff], [s.gid, gidOff]] as const) {
    for (let i = 0; i < segs.length; i++) {
      const q = (o >> 2) + 4 * i;
      u32[q] = segs[i].start;
      u32[q + 1] = segs[i].count;
      u32[q + 2] = segs[i].base;
      u32[q + 3] = segs[i].machine;
    }
  }
  return buf;
}

/** The file header of a table whose base section follows it and whose delta area starts at deltaArea. */
export function encodeHeader(h: { fileSize: number; generation: number; pid: number; baseSize: number; deltaArea: number }): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE);
  buf.write(MAGIC, HEADER.magic, 'latin1');
  buf.writeUInt32LE(VERSION, HEADER.version);
  buf.writeUInt32LE(HEADER_SIZE, HEADER.headerSize);
  buf.writeBigUInt64LE(BigInt(h.fileSize), HEADER.fileSize);
  buf.writeBigUInt64LE(BigInt(h.generation), HEADER.generation);
  buf.writeUInt32LE(h.pid, HEADER.pid);
  buf.writeUInt32LE(STATE_CURRENT, HEADER.state);
  buf.writeUInt32LE(HEADER_SIZE, HEADER.baseOffset);
  buf.writeUInt32LE(h.baseSize, HEADER.baseSize);
  buf.writeUInt32LE(0, HEADER.delta);
  buf.writeUInt32LE(0xffffffff, HEADER.delta + 4);
  buf.writeUInt32LE(h.deltaArea, HEADER.deltaArea);
  return buf;
}

/** The delta word: the top delta section's offset and its complement (a torn read shows). */
export function deltaWord(offset: number): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeUInt32LE(offset, 0);
  buf.writeUInt32LE(~offset >>> 0, 4);
  return buf;
}
