// The publisher of the lookup table that the NSS module answers from (docs/CONTRACTS.md, "The lookup
// table"): built from the resolver's hosts view and userdb's ID view, following the registry's events.
//
// A table file holds a base section and delta sections in layers over it: L1 (everything that changed
// since the base) and L0 (everything that changed since L1). A publication appends one section, L0
// (a few machines) or, when L0 has grown, a merged L1, and points the header at it; only when L1 has
// grown too, or the deltas fill the file, is a new file with a fresh base written and renamed in. So a
// publication encodes a handful of machines, not all of them (a whole table of 10,000 machines costs
// milliseconds in JavaScript). Each machine's part of a section is encoded once, when it changes.
//
// Where two machines' ID maps overlap, who owns an ID depends on both: a change to such a machine makes
// a fresh base (whose ranges userdb clips), so that a delta only ever holds ranges that overlap nothing.
//
// publish() is synchronous: it returns once every change seen so far is in the table (or throws a
// TableWriteError, and the table on disk is as it was). Changes with a caller (Register, Unregister,
// Terminate) are published before they are answered (published-registry.ts); the others (a leader's
// exit, an address change) once per turn of the event loop, so that a burst costs one publication.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { HostEntry, Resolver } from '../resolver/resolver.js';
import { ownedLines, type UserRecords } from '../userdb/records.js';
import {
  ADDRESS_SIZE, CONTAINER, type Fragment, type IdLine, PRESENT, type ReverseEntry, SECTION_BASE, SECTION_DELTA, type Segment,
  addressHash, encodeSection, nameHash, segmentsOf,
} from './format.js';
import { type Range, RangeSet } from './range-set.js';
import { TableFile, TableWriteError } from './table-file.js';

/** The table's file name in the runtime directory; the NSS module looks for it beside the socket. */
export const TABLE_NAME = 'nss-table';

/** Names in L0 before it is merged into L1, and in L1 before the base is rebuilt. */
const L0_MAX = 32;
const L1_MAX = 1024;
/** Room for deltas in a new file: at least this, or twice as much as the base. */
const MIN_DELTA_ROOM = 1024 * 1024;
const RETRY_MS = 1000;

export interface TableLog {
  info(o: object, msg: string): void;
  error(o: object, msg: string): void;
  debug(o: object, msg: string): void;
}

export interface TableSources {
  resolver: Resolver;
  users: UserRecords;
  /** Word of every change: the registry's events. */
  events: { on(event: 'added' | 'changed' | 'removed', listener: (m: { name: string }) => void): unknown };
}

/** A fragment with what publishing needs beside it: its addresses' keys. */
interface Entry extends Fragment {
  keys: string[];
}

/** A section's contents: entries by lower-cased name, reverse entries by address key. */
interface Layer {
  machines: Map<string, Entry>;
  reverse: Map<string, ReverseEntry>;
}

const emptyLayer = (): Layer => ({ machines: new Map(), reverse: new Map() });
const NO_BYTES = new Uint8Array(0);
const NO_LINES = new Uint32Array(0);

/** An address's key: its family and bytes as a short string. */
const addressKey = (family: number, bytes: ArrayLike<number>) => String.fromCharCode(family, ...Array.prototype.slice.call(bytes, 0, family === 2 ? 4 : 16));

function entry(e: HostEntry, ids: { uid: readonly IdLine[]; gid: readonly IdLine[] } | undefined): Entry {
  const addrs = new Uint8Array(e.addresses.length * ADDRESS_SIZE);
  const keys: string[] = [];
  e.addresses.forEach((a, i) => {
    const p = i * ADDRESS_SIZE;
    addrs[p] = a.family;
    const ifindex = a.ifindex ?? 0;
    addrs[p + 4] = ifindex & 0xff;
    addrs[p + 5] = (ifindex >>> 8) & 0xff;
    addrs[p + 6] = (ifindex >>> 16) & 0xff;
    addrs[p + 7] = ifindex >>> 24;
    addrs.set(a.bytes, p + 8);
    keys.push(addressKey(a.family, a.bytes));
  });
  const uid = ids?.uid ?? [];
  const gid = ids?.gid ?? [];
  const lines = new Uint32Array(3 * (uid.length + gid.length));
  [...uid, ...gid].forEach((l, i) => lines.set([l.base, l.shift, l.range], 3 * i));
  const copy = (ls: readonly IdLine[]) => ownedLines(ls).map((l) => ({ base: l.base, shift: l.shift, range: l.range }));
  return {
    name: e.name,
    hash: nameHash(e.name),
    flags: PRESENT | (ids ? CONTAINER : 0),
    addrs,
    keys,
    lines,
    uidLines: uid.length,
    gidLines: gid.length,
    owned: { uid: copy(uid), gid: copy(gid) },
  };
}

function tombstone(key: string): Entry {
  return { name: key, hash: nameHash(key), flags: 0, addrs: NO_BYTES, keys: [], lines: NO_LINES, uidLines: 0, gidLines: 0, owned: { uid: [], gid: [] } };
}

const sameBytes = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};
const same = (a: Entry, b: Entry) => a.name === b.name && a.flags === b.flags && a.uidLines === b.uidLines && sameBytes(a.addrs, b.addrs) && sameBytes(a.lines, b.lines);
const present = (e: Entry | undefined) => (e && e.flags & PRESENT ? e : undefined);
const rangesOf = (lines: readonly IdLine[]): Range[] => lines.map((l) => ({ start: l.shift, end: l.shift + l.range }));

interface Change {
  key: string;
  want: Entry | undefined;
  have: Entry | undefined;
}

export class TablePublisher {
  private file: TableFile | undefined;
  private generation = 0;
  private files = 0;
  private base = emptyLayer();
  private l1 = emptyLayer();
  /** Where L1 is in the file (0: no L1). */
  private l1At = 0;
  private l0 = emptyLayer();
  /** Names changed since the last publication. */
  private readonly pending = new Set<string>();
  /** The ID ranges of the published machines, to check changes against; rebuilt after a failure. */
  private ids: { uid: RangeSet; gid: RangeSet } | undefined;
  /** Names whose ranges overlapped another machine's in the base. */
  private baseOverlap = new Set<string>();
  private flushing: NodeJS.Immediate | undefined;
  private retrying: NodeJS.Timeout | undefined;
  private failure: TableWriteError | undefined;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly src: TableSources,
    private readonly log: TableLog,
  ) {
    const changed = (m: { name: string }) => {
      this.pending.add(m.name.toLowerCase());
      this.flushing ??= setImmediate(() => {
        this.flushing = undefined;
        this.flush();
      });
    };
    for (const event of ['added', 'changed', 'removed'] as const) src.events.on(event, changed);
  }

  /** The first publication, of every machine there is; a failure is logged and retried, as later ones. */
  start(): void {
    TableFile.removeLeftovers(this.path);
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
    } catch {
      /* the publication says what is wrong */
    }
    for (const e of this.src.resolver.entries()) this.pending.add(e.name.toLowerCase());
    this.flush();
  }

  /** Publishes every change seen so far; throws a TableWriteError when the table cannot be written (the
   *  one on disk is then as it was: see withdrawIfStale). */
  publish(): void {
    if (this.closed) return;
    try {
      this.publishChanges();
    } catch (e) {
      if (!(e instanceof TableWriteError)) throw e;
      if (!this.failure) this.log.error({ path: e.path, code: e.code }, e.message);
      this.failure = e;
      this.ids = undefined;
      this.retrying ??= setInterval(() => this.flush(), RETRY_MS).unref();
      throw e;
    }
    if (this.failure) this.log.info({ path: this.path }, 'lookup table up to date again');
    this.failure = undefined;
    if (this.retrying) clearInterval(this.retrying);
    this.retrying = undefined;
  }

  /** After a failed publication: if the table on disk no longer says what the registry holds, lets go of
   *  it, so that lookups fail (UNAVAIL) rather than answer from it, until a publication succeeds. */
  withdrawIfStale(): void {
    if (!this.file || this.changes().length === 0) return;
    this.log.error({ path: this.path }, 'lookup table withdrawn until it can be written: NSS lookups fail meanwhile');
    this.file.close();
    this.file = undefined;
  }

  /** At shutdown: removes the table; lookups then fail (UNAVAIL), as with no daemon. */
  close(): void {
    this.closed = true;
    if (this.flushing) clearImmediate(this.flushing);
    if (this.retrying) clearInterval(this.retrying);
    this.file?.remove();
    this.file = undefined;
  }

  private flush(): void {
    try {
      this.publish();
    } catch (e) {
      if (!(e instanceof TableWriteError)) throw e;
      this.withdrawIfStale();
    }
  }

  private publishChanges(): void {
    const changes = this.changes();
    if (changes.length === 0 && this.file) return;
    const ids = (this.ids ??= this.rangeSets());
    const l0 = { machines: new Map(this.l0.machines), reverse: new Map(this.l0.reverse) };
    let whole = !this.file;
    for (const c of changes) {
      l0.machines.set(c.key, c.want ?? tombstone(c.key));
      for (const f of [c.have, c.want]) if (f) f.keys.forEach((k, i) => l0.reverse.set(k, this.reverseEntry(f, i)));
      for (const kind of ['uid', 'gid'] as const) {
        ids[kind].remove(c.key, rangesOf(c.have?.owned[kind] ?? []));
        const ranges = rangesOf(c.want?.owned[kind] ?? []);
        if (this.baseOverlap.has(c.key) || ranges.some((r) => ids[kind].overlapsOther(c.key, r))) whole = true;
        ids[kind].add(c.key, ranges);
      }
    }
    if (whole) return this.rebuild(l0);
    if (l0.machines.size <= L0_MAX) {
      if (this.append(l0, this.l1At)) this.l0 = l0;
      else this.rebuild(l0);
    } else {
      const l1 = this.merged(this.l1, l0);
      if (l1.machines.size > L1_MAX) return this.rebuild(l0);
      const at = this.append(l1, 0);
      if (at === undefined) return this.rebuild(l0);
      this.l1 = l1;
      this.l1At = at;
      this.l0 = emptyLayer();
    }
    this.pending.clear();
  }

  /** Appends a delta section of this layer; undefined when it does not fit (or the file is no longer
   *  at its path): then a new file is due. */
  private append(layer: Layer, parent: number): number | undefined {
    const machines = [...layer.machines.values()];
    const section = encodeSection({
      kind: SECTION_DELTA,
      generation: this.generation + 1,
      parent,
      machines,
      reverse: layer.reverse.values(),
      reverseCount: layer.reverse.size,
      uid: segmentsOf(machines, 'uid'),
      gid: segmentsOf(machines, 'gid'),
    });
    if (!this.file!.fits(section.length)) return undefined;
    try {
      this.file!.checkPath();
    } catch {
      return undefined; // removed or replaced: put a whole table back (or say why not)
    }
    const at = this.file!.appendDelta(section);
    this.generation++;
    return at;
  }

  /** Layer `upper` laid over `lower`, for a section over the base: what no longer differs from the
   *  base (a name or address the base does not have either) is left out. */
  private merged(lower: Layer, upper: Layer): Layer {
    const out = { machines: new Map(lower.machines), reverse: new Map(lower.reverse) };
    for (const [k, e] of upper.machines) {
      if (e.flags & PRESENT || this.base.machines.has(k)) out.machines.set(k, e);
      else out.machines.delete(k);
    }
    for (const [k, r] of upper.reverse) {
      if (r.names.length > 0 || this.base.reverse.has(k)) out.reverse.set(k, r);
      else out.reverse.delete(k);
    }
    return out;
  }

  /** The pending names whose table entry differs from what is published. */
  private changes(): Change[] {
    const out: Change[] = [];
    for (const key of this.pending) {
      const e = this.src.resolver.lookup(key);
      const want = e && entry(e, this.src.users.idLines(e.name));
      const have = this.current(key);
      if (want === undefined ? have !== undefined : have === undefined || !same(want, have)) out.push({ key, want, have });
    }
    if (out.length === 0) this.pending.clear();
    return out;
  }

  /** What the table holds for a (lower-cased) name now. */
  private current(key: string): Entry | undefined {
    return present(this.l0.machines.get(key) ?? this.l1.machines.get(key) ?? this.base.machines.get(key));
  }

  /** The names reverse() gives for address i of f now (f's or not: it may be shared, or gone). */
  private reverseEntry(f: Entry, i: number): ReverseEntry {
    const p = i * ADDRESS_SIZE;
    const family = f.addrs[p];
    const bytes = f.addrs.slice(p + 8, p + 24);
    const names = this.src.resolver.reverse(family, Array.from(bytes.subarray(0, family === 2 ? 4 : 16))).map((n) => n.name);
    return { family, bytes, hash: addressHash(family, bytes), names };
  }

  /** The published machines' ID ranges, by name. */
  private rangeSets(): { uid: RangeSet; gid: RangeSet } {
    const all: [string, Entry][] = [];
    for (const [k, e] of this.base.machines) if (!this.l1.machines.has(k) && !this.l0.machines.has(k)) all.push([k, e]);
    for (const [k, e] of this.l1.machines) if (present(e) && !this.l0.machines.has(k)) all.push([k, e]);
    for (const [k, e] of this.l0.machines) if (present(e)) all.push([k, e]);
    return {
      uid: RangeSet.of(all.map(([k, e]) => [k, rangesOf(e.owned.uid)])),
      gid: RangeSet.of(all.map(([k, e]) => [k, rangesOf(e.owned.gid)])),
    };
  }

  /** A new file: everything in its base (the published layers and l0 over them), no delta. It replaces
   *  the old file, whose readers then look again. */
  private rebuild(l0: Layer): void {
    const t0 = performance.now();
    const base: Layer = { machines: new Map(this.base.machines), reverse: new Map(this.base.reverse) };
    for (const layer of [this.l1, l0]) {
      for (const [k, e] of layer.machines) {
        if (e.flags & PRESENT) base.machines.set(k, e);
        else base.machines.delete(k);
      }
      for (const [k, r] of layer.reverse) {
        if (r.names.length > 0) base.reverse.set(k, r);
        else base.reverse.delete(k);
      }
    }
    const machines = [...base.machines.values()];
    const ids = RangeSet.of([...base.machines].map(([k, e]) => [k, rangesOf(e.owned.uid)]));
    const gids = RangeSet.of([...base.machines].map(([k, e]) => [k, rangesOf(e.owned.gid)]));
    const overlap = new Set([...ids.overlappingKeys(), ...gids.overlappingKeys()]);
    const section = encodeSection({
      kind: SECTION_BASE,
      generation: this.generation + 1,
      parent: 0,
      machines,
      reverse: base.reverse.values(),
      reverseCount: base.reverse.size,
      uid: overlap.size ? this.clipped(machines, 'user') : segmentsOf(machines, 'uid'),
      gid: overlap.size ? this.clipped(machines, 'group') : segmentsOf(machines, 'gid'),
    });
    const file = TableFile.create(this.path, { generation: ++this.files, base: section, deltaRoom: Math.max(MIN_DELTA_ROOM, 2 * section.length) });
    this.file?.supersede();
    this.file = file;
    this.generation++;
    this.base = base;
    this.l1 = emptyLayer();
    this.l1At = 0;
    this.l0 = emptyLayer();
    this.pending.clear();
    this.ids = { uid: ids, gid: gids };
    this.baseOverlap = overlap;
    this.log.debug({ path: this.path, machines: machines.length, bytes: file.size, ms: Number((performance.now() - t0).toFixed(2)) }, 'lookup table rebuilt');
  }

  /** Where ranges overlap, userdb's own index says who owns which IDs. */
  private clipped(machines: readonly Fragment[], kind: 'user' | 'group'): Segment[] {
    const index = new Map(machines.map((f, i) => [f.name, i]));
    return this.src.users.ranges(kind).map((r) => ({ start: r.start, count: r.end - r.start, base: r.base, machine: index.get(r.machine)! }));
  }
}
