// The lookup table's file: written whole under a temporary name and renamed into place, then extended
// in place by delta sections (pwrite into pages no reader has seen, then the header's delta word), and
// superseded when the next file replaces it. While the daemon runs it holds a write lock on one byte of
// the current file: the kernel drops it when the daemon exits, SIGKILL included, and keeps it while the
// daemon is stopped, which is how the NSS module tells a live table from a dead daemon's (CONTRACTS.md).
//
// Synchronous on purpose, as the state files: the file is on /run (a tmpfs), and a registration is
// answered only once its table is published anyway.
import { closeSync, fchmodSync, fstatSync, ftruncateSync, openSync, readdirSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import koffi from 'koffi';
import { errnoName, errnoOf, errnoText } from '../errno.js';
import { HEADER, HEADER_SIZE, LOCK_BYTE, SECTION_ALIGN, STATE_SUPERSEDED, deltaWord, encodeHeader } from './format.js';

const libc = koffi.load('libc.so.6');
const fcntl = libc.func('int fcntl(int fd, int cmd, ...)');
const F_SETLK = 6;
const F_WRLCK = 1;
const SEEK_SET = 0;

/** A failed write of the table, with what was done and the system's error (code: ENOSPC, EROFS...). */
export class TableWriteError extends Error {
  constructor(
    readonly path: string,
    readonly op: string,
    readonly code: string,
    detail: string,
  ) {
    super(`cannot ${op} the lookup table ${path}: ${detail}`);
  }
}

function writeError(path: string, op: string, e: unknown): TableWriteError {
  if (e instanceof TableWriteError) return e;
  const en = errnoOf(e);
  return new TableWriteError(path, op, en?.name ?? 'EIO', errnoText(e));
}

/** Writes all of buf at position, or throws (a short write on a full file system is ENOSPC). */
function writeAll(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = writeSync(fd, buf, done, buf.length - done, position + done);
    if (n <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
    done += n;
  }
}

function lock(fd: number): void {
  // struct flock on Linux (x86-64 and aarch64): short l_type, l_whence; off_t l_start, l_len; pid_t l_pid.
  const fl = Buffer.alloc(32);
  fl.writeInt16LE(F_WRLCK, 0);
  fl.writeInt16LE(SEEK_SET, 2);
  fl.writeBigInt64LE(BigInt(LOCK_BYTE), 8);
  fl.writeBigInt64LE(1n, 16);
  if (fcntl(fd, F_SETLK, 'void *', fl) !== 0) {
    const errno = koffi.errno();
    const code = errnoName(errno);
    throw Object.assign(new Error(`${code}: cannot lock it, fcntl`), { code, errno: -errno });
  }
}

const PAGE = 4096;
const roundUp = (n: number, to = PAGE) => Math.ceil(n / to) * to;

export class TableFile {
  private constructor(
    readonly path: string,
    private fd: number,
    private readonly dev: number,
    private readonly ino: number,
    readonly size: number,
    /** Where the next delta section goes: past everything a reader may look at. */
    private cursor: number,
  ) {}

  /** Writes a new table (header, base section, room for deltaRoom bytes of deltas) under a temporary
   *  name, locks it and renames it over `path`. Leaves no temporary file behind when it fails. */
  static create(path: string, o: { generation: number; base: Buffer; deltaRoom: number }): TableFile {
    const deltaArea = roundUp(HEADER_SIZE + o.base.length);
    const size = deltaArea + roundUp(o.deltaRoom);
    const tmp = join(dirname(path), `.#${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}`);
    let fd = -1;
    let op = 'create';
    try {
      fd = openSync(tmp, 'wx+', 0o644);
      fchmodSync(fd, 0o644); // whatever the umask: the module refuses a table others may write
      op = 'write';
      writeAll(fd, Buffer.concat([encodeHeader({ fileSize: size, generation: o.generation, pid: process.pid, baseSize: o.base.length, deltaArea }), o.base]), 0);
      // The delta area stays a hole until deltas are written into it: a tmpfs gives it pages then.
      ftruncateSync(fd, size);
      lock(fd);
      const st = fstatSync(fd);
      op = 'rename';
      renameSync(tmp, path);
      return new TableFile(path, fd, st.dev, st.ino, size, deltaArea);
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      try {
        unlinkSync(tmp);
      } catch {
        /* never made, or gone with its directory */
      }
      throw writeError(path, op, e);
    }
  }

  /** Whether a delta section of this many bytes still fits. */
  fits(bytes: number): boolean {
    return this.cursor + bytes <= this.size;
  }

  /** Where the next delta section will be (a delta names the section below it by offset). */
  get next(): number {
    return this.cursor;
  }

  /** Publishes a delta section: written where no reader looks yet, then made current by the header's
   *  delta word (a reader that sees the word sees the section: it was written by an earlier call). */
  appendDelta(section: Buffer): number {
    try {
      writeAll(this.fd, section, this.cursor);
      writeAll(this.fd, deltaWord(this.cursor), HEADER.delta);
    } catch (e) {
      throw writeError(this.path, 'write', e);
    }
    const at = this.cursor;
    this.cursor = roundUp(this.cursor + section.length, SECTION_ALIGN);
    return at;
  }

  /** Throws unless `path` still names this file (its directory removed, or the file replaced). */
  checkPath(): void {
    let st;
    try {
      st = statSync(this.path);
    } catch (e) {
      throw writeError(this.path, 'find', e);
    }
    if (st.dev !== this.dev || st.ino !== this.ino) throw new TableWriteError(this.path, 'find', 'ENOENT', 'it was replaced by another file (ENOENT)');
  }

  /** A newer file is in place: tell the readers of this one to look again, and let go of it (the lock
   *  goes with the descriptor). */
  supersede(): void {
    const word = Buffer.alloc(4);
    word.writeUInt32LE(STATE_SUPERSEDED, 0);
    try {
      writeAll(this.fd, word, HEADER.state);
    } catch {
      /* the lock goes anyway: readers then look again as well */
    }
    this.close();
  }

  /** Lets go of the file without a word: readers see no live daemon behind it (UNAVAIL) until a newer
   *  file is in place. For a table that no longer says what the registry holds. */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /** At shutdown: removes the file if it is still ours, and lets go of it. */
  remove(): void {
    try {
      this.checkPath();
      unlinkSync(this.path);
    } catch {
      /* not ours any more, or gone */
    }
    this.close();
  }

  /** Removes temporary files a crashed daemon left beside `path`. */
  static removeLeftovers(path: string): void {
    const prefix = `.#${basename(path)}.`;
    let names: string[] = [];
    try {
      names = readdirSync(dirname(path));
    } catch {
      return;
    }
    for (const n of names) {
      if (!n.startsWith(prefix)) continue;
      try {
        unlinkSync(join(dirname(path), n));
      } catch {
        /* gone meanwhile */
      }
    }
  }
}

