// What an image says about itself: /etc/hostname, /etc/machine-id, /etc/machine-info and os-release, read
// from a directory image through the RootReader: symlinks resolve inside the image (openat2
// RESOLVE_IN_ROOT), so that an image cannot make us read a host file; regular files of at most 64 KiB
// only; and a pool on a file system that stops answering costs one worker thread and a timeout, never
// Node's thread pool.
import { parseOsRelease } from '../registry/linux/os-release.js';
import { RootReadError, type RootReader } from '../registry/linux/root-reader.js';

const MAX_BYTES = 64 * 1024;

export interface ImageMetadata {
  hostname: string;
  /** 32 hex digits, or '' */
  machineId: string;
  machineInfo: Map<string, string>;
  osRelease: Map<string, string>;
}

/** The image's metadata; what is missing, not a file or too large is empty. A RootReadError when the
 *  image's directory did not answer in time. */
export async function readImageMetadata(roots: RootReader, imagePath: string): Promise<ImageMetadata> {
  const readIn = async (...paths: string[]): Promise<string | undefined> => {
    try {
      return (await roots.read(imagePath, paths, MAX_BYTES))?.text;
    } catch (e) {
      if (e instanceof RootReadError && e.why !== 'timeout' && e.why !== 'stalled') return undefined;
      throw e;
    }
  };
  const hostname = (await readIn('etc/hostname'))?.split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#')) ?? '';
  const id = (await readIn('etc/machine-id'))?.trim().toLowerCase() ?? '';
  const info = await readIn('etc/machine-info');
  const os = await readIn('etc/os-release', 'usr/lib/os-release');
  return {
    hostname,
    machineId: /^[0-9a-f]{32}$/.test(id) && !/^0+$/.test(id) ? id : '',
    machineInfo: info ? parseOsRelease(info) : new Map(),
    osRelease: os ? parseOsRelease(os) : new Map(),
  };
}
