// The host ID ranges of all machines in the published table (uid or gid), sorted by start, so that a change
// can be checked against them: a delta may only carry ranges that overlap no other machine's (where two
// machines' maps overlap, who owns an ID depends on both, and the table is rebuilt whole instead).

export interface Range {
  start: number;
  end: number;
}

interface Item extends Range {
  key: string;
}

export class RangeSet {
  private items: Item[] = [];
  /** The longest range ever added: no range that starts more than this before s can reach s. */
  private maxLength = 0;

  /** A set of these keys' ranges, sorted once. */
  static of(all: Iterable<[string, readonly Range[]]>): RangeSet {
    const set = new RangeSet();
    for (const [key, ranges] of all) {
      for (const r of ranges) {
        set.items.push({ start: r.start, end: r.end, key });
        set.maxLength = Math.max(set.maxLength, r.end - r.start);
      }
    }
    set.items.sort((a, b) => a.start - b.start);
    return set;
  }

  add(key: string, ranges: readonly Range[]): void {
    for (const r of ranges) {
      this.items.splice(this.lowerBound(r.start), 0, { start: r.start, end: r.end, key });
      this.maxLength = Math.max(this.maxLength, r.end - r.start);
    }
  }

  remove(key: string, ranges: readonly Range[]): void {
    for (const r of ranges) {
      for (let i = this.lowerBound(r.start); i < this.items.length && this.items[i].start === r.start; i++) {
        if (this.items[i].key === key && this.items[i].end === r.end) {
          this.items.splice(i, 1);
          break;
        }
      }
    }
  }

  /** Whether [start, end) overlaps a range of another key. */
  overlapsOther(key: string, r: Range): boolean {
    for (let i = this.lowerBound(r.start - this.maxLength + 1); i < this.items.length && this.items[i].start < r.end; i++) {
      const x = this.items[i];
      if (x.key !== key && x.end > r.start) return true;
    }
    return false;
  }

  /** The keys of every range that overlaps another (a superset: all keys of a run of overlapping ranges). */
  overlappingKeys(): Set<string> {
    const out = new Set<string>();
    let run: Item[] = [];
    let runEnd = -1;
    const close = () => {
      if (run.length > 1) for (const x of run) out.add(x.key);
    };
    for (const x of this.items) {
      if (x.start < runEnd) {
        run.push(x);
      } else {
        close();
        run = [x];
      }
      runEnd = Math.max(runEnd, x.end);
    }
    close();
    return out;
  }

  /** The first index whose start is >= start. */
  private lowerBound(start: number): number {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.items[mid].start < start) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
