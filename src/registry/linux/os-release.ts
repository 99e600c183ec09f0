// A container's os-release, read from the leader's root directory. Symlinks inside it are resolved
// within that root (openat2 RESOLVE_IN_ROOT), so a container cannot make us read a host file.
import { close, fstat, readFile } from 'node:fs';
import { promisify } from 'node:util';
import * as c from './libc.js';

const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_IN_ROOT = 0x10;
const O_PATH = 0o10000000;
const readFd = promisify(readFile) as (fd: number, enc: 'utf8') => Promise<string>;
const closeFd = promisify(close);
const fstatFd = promisify(fstat);
const O_NONBLOCK = 0o4000;
const MAX_BYTES = 64 * 1024;

function openat2(dirfd: number, path: string): Promise<number> {
  const how = Buffer.alloc(24);
  how.writeBigUInt64LE(BigInt(c.O_RDONLY | c.O_CLOEXEC | O_NONBLOCK), 0);
  how.writeBigUInt64LE(BigInt(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), 16);
  // On the thread pool: the container's file system may be slow (FUSE, network).
  return new Promise((resolve, reject) =>
    c.syscall4.async(c.SYS_openat2, dirfd, path, how, 24, (err: unknown, fd: number) => (err ? reject(err) : resolve(Number(fd)))),
  );
}

/** The os-release pairs of the process's root, in file order; undefined when it has none. */
export async function readOsRelease(pid: number): Promise<Map<string, string> | undefined> {
  const root = c.open(`/proc/${pid}/root`, O_PATH | c.O_DIRECTORY | c.O_CLOEXEC);
  if (root < 0) return undefined;
  try {
    for (const path of ['etc/os-release', 'usr/lib/os-release']) {
      const fd = await openat2(root, path);
      if (fd < 0) continue;
      try {
        // Only a regular file of sane size: a FIFO or a device there must not stall or flood us.
        const st = await fstatFd(fd);
        if (!st.isFile() || st.size > MAX_BYTES) return undefined;
        return parseOsRelease(await readFd(fd, 'utf8'));
      } finally {
        await closeFd(fd).catch(() => {});
      }
    }
    return undefined;
  } finally {
    c.close(root);
  }
}

/** os-release(5): KEY=value lines, values optionally quoted with shell-like escapes. */
export function parseOsRelease(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2];
    const q = v[0];
    if ((q === '"' || q === "'") && v.endsWith(q) && v.length >= 2) {
      v = v.slice(1, -1);
      if (q === '"') v = v.replace(/\\([\\"$`])/g, '$1');
    }
    out.set(m[1], v);
  }
  return out;
}
