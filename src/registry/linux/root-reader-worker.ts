// Runs in a worker thread of root-reader.ts: reads small files below a root directory (a process's, or an
// image's), with blocking system calls. A root may be a FUSE or NFS mount that stops answering; then this
// thread waits with it, and root-reader.ts gives up on it and uses another one: nothing else waits.
import { fstatSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import * as c from './libc.js';

export interface ReadRequest {
  id: number;
  /** A leader PID (its /proc/PID/root) or a directory's path. */
  root: number | string;
  /** Tried in order; the first that is a regular file is read. */
  paths: string[];
  maxBytes: number;
}

export type ReadReply =
  | { id: number; path: string; text: string }
  | { id: number; error: 'no-root' | 'none' | 'not-a-file' | 'too-large' | 'failed'; message?: string };

const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_IN_ROOT = 0x10;
const O_PATH = 0o10000000;
const O_NONBLOCK = 0o4000;
const how = Buffer.alloc(24);
how.writeBigUInt64LE(BigInt(c.O_RDONLY | c.O_CLOEXEC | O_NONBLOCK), 0);
// Symlinks inside the root are resolved within it: a container cannot make us read a host file.
how.writeBigUInt64LE(BigInt(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), 16);

function read(r: ReadRequest): ReadReply {
  const root = c.open(typeof r.root === 'number' ? `/proc/${r.root}/root` : r.root, O_PATH | c.O_DIRECTORY | c.O_CLOEXEC);
  if (root < 0) return { id: r.id, error: 'no-root' };
  try {
    for (const path of r.paths) {
      const fd = Number(c.syscall4(c.SYS_openat2, root, path, how, 24));
      if (fd < 0) continue;
      try {
        // Only a regular file of sane size: a FIFO or a device there must not stall or flood us.
        const st = fstatSync(fd);
        if (!st.isFile()) return { id: r.id, error: 'not-a-file', message: path };
        if (st.size > r.maxBytes) return { id: r.id, error: 'too-large', message: path };
        const buf = Buffer.alloc(Math.min(st.size, r.maxBytes) + 1);
        let n = 0;
        for (let k; n < buf.length && (k = readSync(fd, buf, n, buf.length - n, null)) > 0; ) n += k;
        if (n > r.maxBytes) return { id: r.id, error: 'too-large', message: path };
        return { id: r.id, path, text: buf.toString('utf8', 0, n) };
      } finally {
        // Through libc as it was opened: Node warns when a worker closes a descriptor its fs did not open.
        c.close(fd);
      }
    }
    return { id: r.id, error: 'none' };
  } catch (e) {
    return { id: r.id, error: 'failed', message: (e as Error).message };
  } finally {
    c.close(root);
  }
}

parentPort!.on('message', (r: ReadRequest) => parentPort!.postMessage(read(r)));
