// What an image says about itself: /etc/hostname, /etc/machine-id, /etc/machine-info and os-release, read
// from a directory image with symlinks resolved inside the image (openat2 RESOLVE_IN_ROOT), so that an
// image cannot make us read a host file; regular files of at most 64 KiB only.
import { close, fstat, readFile } from 'node:fs';
import { promisify } from 'node:util';
import { parseOsRelease } from '../registry/linux/os-release.js';
import { closeFdSync, openat2InRoot, openDirectoryPath } from './linux.js';

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

async function readIn(root: number, path: string): Promise<string | undefined> {
  const fd = await openat2InRoot(root, path);
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
  const root = openDirectoryPath(imagePath);
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
    closeFdSync(root);
  }
}
