// What an image says about itself: /etc/hostname, /etc/machine-id, /etc/machine-info and os-release, read
// from a directory image with symlinks resolved inside the image (openat2 RESOLVE_IN_ROOT), so that an
// image cannot make us read a host file; regular files of at most 64 KiB only.
import { close, fstat, readFile } from 'node:fs';
import { promisify } from 'node:util';
import koffi from 'koffi';
import { parseOsRelease } from '../registry/linux/os-release.js';

const libc = koffi.load('libc.so.6');
const open = libc.func('int open(const char *path, int flags)');
const closeSync = libc.func('int close(int fd)');
const syscall4 = libc.func('long syscall(long nr, int dirfd, const char *path, const void *how, unsigned long size)');
const SYS_openat2 = 437;
const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000;
const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_IN_ROOT = 0x10;
const MAX_BYTES = 64 * 1024;
const readFd = promisify(readFile) as (fd: number, enc: 'utf8') => Promise<string>;
const fstatFd = promisify(fstat);
const closeFd = promisify(close);

export interface ImageMetadata {
  hostname: string;
  /** 32 hex digits, or '' */
  machineId: string;
  machineInfo: Map<string, string>;
  osRelease: Map<string, string>;
}

function openat2(dirfd: number, path: string): Promise<number> {
  const how = Buffer.alloc(24);
  how.writeBigUInt64LE(BigInt(O_RDONLY | O_CLOEXEC | O_NONBLOCK), 0);
  how.writeBigUInt64LE(BigInt(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), 16);
  return new Promise((resolve, reject) =>
    syscall4.async(SYS_openat2, dirfd, path, how, 24, (err: unknown, fd: number) => (err ? reject(err) : resolve(Number(fd)))),
  );
}

async function readIn(root: number, path: string): Promise<string | undefined> {
  const fd = await openat2(root, path);
  if (fd < 0) return undefined;
  try {
    const st = await fstatFd(fd);
    if (!st.isFile() || st.size > MAX_BYTES) return undefined;
    return await readFd(fd, 'utf8');
  } finally {
    await closeFd(fd).catch(() => {});
  }
}

export async function readImageMetadata(imagePath: string): Promise<ImageMetadata> {
  const root = open(imagePath, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return { hostname: '', machineId: '', machineInfo: new Map(), osRelease: new Map() };
  try {
    const hostname = (await readIn(root, 'etc/hostname'))?.split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#')) ?? '';
    const id = (await readIn(root, 'etc/machine-id'))?.trim().toLowerCase() ?? '';
    const info = await readIn(root, 'etc/machine-info');
    const os = (await readIn(root, 'etc/os-release')) ?? (await readIn(root, 'usr/lib/os-release'));
    return {
      hostname,
      machineId: /^[0-9a-f]{32}$/.test(id) && !/^0+$/.test(id) ? id : '',
      machineInfo: info ? parseOsRelease(info) : new Map(),
      osRelease: os ? parseOsRelease(os) : new Map(),
    };
  } finally {
    closeSync(root);
  }
}
