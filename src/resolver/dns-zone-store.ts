// Where the zones' serials outlive the daemon: one small file in the state directory, written atomically
// (a temporary file, then rename). Its name starts with '.', so that it is no machine name: the registry,
// which takes every file there named like a machine for a state file, never reads it, and its clean-up
// at start (temporary '.#' files, 'unit:' links) never removes it; machined skips dot files too.
import { closeSync, constants, fstatSync, openSync, readSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errnoText } from '../errno.js';

const STORE_NAME = '.mymachines-dns-zones';
/** A store larger than this is not ours. */
const MAX_BYTES = 1 << 20;

export interface StoredZone {
  serial: number;
  /** The digest of the zone's records at that serial (ZoneSet's). */
  digest: string;
}

interface StoreLogger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

export class ZoneStore {
  readonly path: string;
  /** The error code of the last failed write, '' once a write works again. */
  private failing = '';

  constructor(
    private readonly dir: string,
    private readonly log: StoreLogger,
  ) {
    this.path = join(dir, STORE_NAME);
  }

  /** The stored zones; none when the file is missing or not ours (said in the log). Never follows a
   *  link or blocks on a special file. */
  load(): Map<string, StoredZone> {
    const out = new Map<string, StoredZone>();
    let text: string;
    try {
      const fd = openSync(this.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        const st = fstatSync(fd);
        if (!st.isFile() || st.size > MAX_BYTES) throw new Error('not a regular file of at most 1 MiB');
        const buf = Buffer.alloc(st.size);
        let n = 0;
        while (n < buf.length) {
          const r = readSync(fd, buf, n, buf.length - n, n);
          if (r === 0) break;
          n += r;
        }
        text = buf.toString('utf8', 0, n);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ file: this.path, error: errnoText(e) }, 'dns zone serials not read: starting them afresh');
      return out;
    }
    try {
      const j = JSON.parse(text) as { zones?: Record<string, unknown> };
      for (const [zone, v] of Object.entries(j.zones ?? {})) {
        const z = v as Partial<StoredZone>;
        if (Number.isInteger(z.serial) && z.serial! >= 0 && z.serial! <= 0xffffffff && typeof z.digest === 'string') out.set(zone, { serial: z.serial!, digest: z.digest });
      }
    } catch {
      this.log.warn({ file: this.path }, 'dns zone serials not read (not JSON): starting them afresh');
    }
    return out;
  }

  /** Writes every zone's serial; a failure is logged (once, until a write works again), never thrown:
   *  the zones go on, and a restart then takes a serial past both the stored one and the clock. */
  save(zones: ReadonlyMap<string, StoredZone>): void {
    const tmp = join(this.dir, `.#${STORE_NAME.slice(1)}.${process.pid}.${Math.random().toString(36).slice(2)}`);
    try {
      writeFileSync(tmp, `${JSON.stringify({ zones: Object.fromEntries(zones) })}\n`, { mode: 0o644, flag: 'wx' });
      renameSync(tmp, this.path);
      if (this.failing) this.log.info({ file: this.path }, 'dns zone serials saved again');
      this.failing = '';
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {
        /* never made */
      }
      const why = errnoText(e);
      if (this.failing !== why) this.log.warn({ file: this.path, error: why }, 'dns zone serials not saved');
      this.failing = why;
    }
  }
}
