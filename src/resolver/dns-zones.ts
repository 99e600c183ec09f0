// The zones the DNS server owns, as secondaries copy them: for each --dns-zone its records (A/AAAA of
// the machines, or PTR in a reverse zone), a serial that rises with every change of the records, also
// across restarts (kept in the state directory, never below the clock), and the recent changes, from
// which IXFR answers. Built from the resolver's index and kept up to date from its events; changes that
// come together are taken in one new version (at most one every MIN_VERSION_MS).
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { AF_INET, addressToString } from '../registry/address.js';
import { type HostAddress, type HostEntry, inDns, type Resolver } from './resolver.js';
import { isReverseZone } from './dns-config.js';
import type { StoredZone, ZoneStore } from './dns-zone-store.js';

/** What the zones need of the resolver. */
export type ZoneSource = Pick<Resolver, 'entries' | 'lookup' | 'on' | 'off'>;

/** One record of a zone (never the SOA or NS, which the zone makes itself). */
export interface ZoneRecord {
  /** The owner, in the case of the machine's registered name, without the trailing dot. */
  name: string;
  type: 'A' | 'AAAA' | 'PTR';
  data: string;
}

export interface ZoneChanges {
  removed: ZoneRecord[];
  added: ZoneRecord[];
}

interface Version extends ZoneChanges {
  from: number;
  to: number;
}

/** Refresh, retry and expire of the SOA: what a secondary does without NOTIFY (RFC 1912's advice). */
export const SOA_TIMERS = { refresh: 3600, retry: 600, expire: 86400 } as const;

/** The first version after a change waits this long for the changes that come with it. */
const COALESCE_MS = 20;
/** At most one new version this often: a registration storm makes a bounded number of serials. */
const MIN_VERSION_MS = 200;
/** Machines taken into one version; the rest go into the next, so that no version holds the loop long. */
const MAX_MACHINES_PER_VERSION = 2000;
/** Versions kept for IXFR; older ones (and history longer than the zone) are answered with the whole zone. */
const MAX_VERSIONS = 256;

export class Zone {
  readonly labels: string[];
  readonly reverse: boolean;
  serial = 0;
  /** key(record) -> record. */
  readonly records = new Map<string, ZoneRecord>();
  /** Oldest first. */
  readonly history: Version[] = [];
  private historyRecords = 0;
  /** Order-independent digest of the records: the sum of their hashes, mod 2^128. */
  private sum = 0n;

  constructor(readonly name: string) {
    this.labels = name.split('.');
    this.reverse = isReverseZone(name);
  }

  digest(): string {
    return this.sum.toString(16);
  }

  add(r: ZoneRecord): void {
    const k = recordKey(r);
    if (this.records.has(k)) return;
    this.records.set(k, r);
    this.sum = (this.sum + recordHash(k)) & MASK_128;
  }

  remove(k: string): void {
    if (!this.records.delete(k)) return;
    this.sum = (this.sum - recordHash(k)) & MASK_128;
  }

  /** Takes a new version's changes into the history. */
  remember(v: Version): void {
    this.history.push(v);
    this.historyRecords += v.removed.length + v.added.length;
    while (this.history.length > MAX_VERSIONS || (this.history.length > 1 && this.historyRecords > 2 * this.records.size + 1000)) {
      const old = this.history.shift()!;
      this.historyRecords -= old.removed.length + old.added.length;
    }
  }

  /** The changes from `serial` to now, condensed; 'current' when the serial is ours or newer (RFC 1995:
   *  the answer is our SOA alone); undefined when that version is no longer (or never was) known. */
  changesSince(serial: number): ZoneChanges | 'current' | undefined {
    if (serial === this.serial || serialGreater(serial, this.serial)) return 'current';
    const i = this.history.findIndex((v) => v.from === serial);
    if (i < 0) return undefined;
    const removed = new Map<string, ZoneRecord>();
    const added = new Map<string, ZoneRecord>();
    for (const v of this.history.slice(i)) {
      for (const r of v.removed) {
        const k = recordKey(r);
        if (!added.delete(k)) removed.set(k, r);
      }
      for (const r of v.added) {
        const k = recordKey(r);
        if (!removed.delete(k)) added.set(k, r);
      }
    }
    return { removed: [...removed.values()], added: [...added.values()] };
  }
}

const MASK_128 = (1n << 128n) - 1n;

function recordKey(r: ZoneRecord): string {
  return `${r.name} ${r.type} ${r.data}`;
}

function recordHash(k: string): bigint {
  return BigInt(`0x${createHash('sha256').update(k).digest('hex').slice(0, 32)}`);
}

/** RFC 1982: a is greater than b in serial number arithmetic. */
function serialGreater(a: number, b: number): boolean {
  return a !== b && ((a > b && a - b < 0x80000000) || (a < b && b - a > 0x80000000));
}

/** The serial after `serial`: the clock's seconds where they are ahead, else one more. */
function nextSerial(serial: number, nowSeconds: number): number {
  const now = nowSeconds >>> 0;
  const plus = (serial + 1) >>> 0;
  return serialGreater(now, plus) ? now : plus;
}

/** The name under in-addr.arpa or ip6.arpa that an address's PTR record has. */
function reverseName(a: Pick<HostAddress, 'family' | 'bytes'>): string {
  if (a.family === AF_INET) return `${[...a.bytes].reverse().join('.')}.in-addr.arpa`;
  return `${a.bytes
    .flatMap((b) => [b >> 4, b & 15])
    .reverse()
    .map((n) => n.toString(16))
    .join('.')}.ip6.arpa`;
}

/** The longest zone that is the name or one of its ancestors (labels compared lower-cased). */
export function longestZone<Z extends { labels: string[] }>(zones: readonly Z[], lower: readonly string[]): Z | undefined {
  let best: Z | undefined;
  for (const z of zones) {
    if (z.labels.length > lower.length || (best && z.labels.length <= best.labels.length)) continue;
    const off = lower.length - z.labels.length;
    if (z.labels.every((l, i) => lower[off + i] === l)) best = z;
  }
  return best;
}

interface ZonesLogger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  debug(o: object, msg: string): void;
}

export interface ZoneSetEvents {
  /** A zone has a new serial. */
  version: [Zone];
}

/** Every zone, kept up to date. */
export class ZoneSet extends EventEmitter<ZoneSetEvents> {
  readonly zones: Zone[];
  readonly forward: Zone[];
  readonly reverseZones: Zone[];
  /** Lower-cased machine name -> its records, and which zone holds each. */
  private readonly owned = new Map<string, { zone: Zone; record: ZoneRecord }[]>();
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private lastVersion = 0;
  private readonly follow = (name: string) => this.changed(name);

  /** zones: as parseDnsZone gives them, without duplicates; ptrZone: the zone PTR targets are named in
   *  ('' for bare machine names). */
  constructor(
    private readonly source: ZoneSource,
    names: readonly string[],
    private readonly ptrZone: string,
    private readonly store: ZoneStore | undefined,
    private readonly log: ZonesLogger,
    private readonly clock: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    super();
    this.zones = names.map((n) => new Zone(n));
    this.forward = this.zones.filter((z) => !z.reverse);
    this.reverseZones = this.zones.filter((z) => z.reverse);
  }

  /** Builds every zone from the resolver and gives each its serial: the stored one when the records are
   *  those it was stored with, else one past it (and past the clock). Then follows the resolver. */
  start(): void {
    for (const e of this.source.entries()) this.take(e.name.toLowerCase(), e);
    const stored = this.store?.load() ?? new Map<string, StoredZone>();
    const now = this.clock();
    for (const z of this.zones) {
      const s = stored.get(z.name);
      z.serial = s === undefined ? now >>> 0 : s.digest === z.digest() ? s.serial : nextSerial(s.serial, now);
      this.log.info({ zone: z.name, serial: z.serial, records: z.records.size, kept: s?.digest === z.digest() }, 'dns zone loaded');
    }
    this.save();
    this.source.on('changed', this.follow);
  }

  close(): void {
    this.source.off('changed', this.follow);
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The zone of that name (lower case). */
  get(name: string): Zone | undefined {
    return this.zones.find((z) => z.name === name);
  }

  private changed(name: string): void {
    this.dirty.add(name.toLowerCase());
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(COALESCE_MS, this.lastVersion + MIN_VERSION_MS - Date.now());
    this.timer = setTimeout(() => this.commit(), wait);
  }

  /** Takes the changed machines into the zones; every zone whose records changed gets a new version. */
  private commit(): void {
    this.timer = undefined;
    this.lastVersion = Date.now();
    const batch = [...this.dirty].slice(0, MAX_MACHINES_PER_VERSION);
    const changes = new Map<Zone, ZoneChanges>();
    for (const name of batch) {
      this.dirty.delete(name);
      const old = this.owned.get(name) ?? [];
      for (const { zone, record } of old) {
        zone.remove(recordKey(record));
        changesOf(changes, zone).removed.push(record);
      }
      this.owned.delete(name);
      const entry = this.source.lookup(name);
      for (const { zone, record } of this.take(name, entry)) changesOf(changes, zone).added.push(record);
    }
    const now = this.clock();
    const versions: Zone[] = [];
    for (const [zone, c] of changes) {
      // Records both removed and added (an entry that changed elsewhere) are no change.
      const removedKeys = new Set(c.removed.map(recordKey));
      const addedKeys = new Set(c.added.map(recordKey));
      const removed = c.removed.filter((r) => !addedKeys.has(recordKey(r)));
      const added = c.added.filter((r) => !removedKeys.has(recordKey(r)));
      if (removed.length + added.length === 0) continue;
      const from = zone.serial;
      zone.serial = nextSerial(from, now);
      zone.remember({ from, to: zone.serial, removed, added });
      versions.push(zone);
      this.log.debug({ zone: zone.name, serial: zone.serial, removed: removed.length, added: added.length }, 'dns zone changed');
    }
    // Saved before a secondary can hear of it: a serial once given out is never given to other records.
    if (versions.length > 0) this.save();
    for (const z of versions) this.emit('version', z);
    if (this.dirty.size > 0) this.schedule();
  }

  /** Puts a machine's records into the zones and remembers them as its own. */
  private take(name: string, entry: HostEntry | undefined): { zone: Zone; record: ZoneRecord }[] {
    if (!entry) return [];
    const mine: { zone: Zone; record: ZoneRecord }[] = [];
    const addresses = entry.addresses.filter(inDns);
    for (const z of this.forward) {
      const owner = `${entry.name}.${z.name}`;
      // A name under a longer zone of ours is in that zone only.
      if (longestZone(this.forward, owner.toLowerCase().split('.')) !== z) continue;
      for (const a of addresses) mine.push({ zone: z, record: { name: owner, type: a.family === AF_INET ? 'A' : 'AAAA', data: addressToString(a) } });
    }
    const target = this.ptrZone ? `${entry.name}.${this.ptrZone}` : entry.name;
    for (const a of addresses) {
      const owner = reverseName(a);
      const z = longestZone(this.reverseZones, owner.split('.'));
      if (z) mine.push({ zone: z, record: { name: owner, type: 'PTR', data: target } });
    }
    for (const m of mine) m.zone.add(m.record);
    if (mine.length > 0) this.owned.set(name, mine);
    return mine;
  }

  private save(): void {
    this.store?.save(new Map(this.zones.map((z) => [z.name, { serial: z.serial, digest: z.digest() }])));
  }
}

function changesOf(m: Map<Zone, ZoneChanges>, z: Zone): ZoneChanges {
  let c = m.get(z);
  if (!c) m.set(z, (c = { removed: [], added: [] }));
  return c;
}
