// What is looked up in a container's root from the daemon. Symlinks there resolve inside the root
// (openat2 RESOLVE_IN_ROOT), so that a container cannot point us at host files. Only an O_PATH open:
// nothing is read, so a FIFO or a stalled file system cannot hold us. (The lead's bounded reader for
// container roots replaces this once it lands: this is the one place to swap.)
import * as c from './libc.js';

const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_IN_ROOT = 0x10;

/** Whether `path` (relative to the root) exists in the root of process `pid`, as a directory if asked. */
function existsInRoot(pid: number, path: string, directory = false): boolean {
  const root = c.open(`/proc/${pid}/root`, c.O_PATH | c.O_DIRECTORY | c.O_CLOEXEC);
  if (root < 0) return false;
  try {
    const how = Buffer.alloc(24);
    how.writeBigUInt64LE(BigInt(c.O_PATH | c.O_CLOEXEC | (directory ? c.O_DIRECTORY : 0)), 0);
    how.writeBigUInt64LE(BigInt(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), 16);
    const fd = Number(c.syscall4(c.SYS_openat2, root, path, how, 24));
    if (fd < 0) return false;
    c.close(fd);
    return true;
  } finally {
    c.close(root);
  }
}

/** Whether systemd runs the container (sd_booted() inside: /run/systemd/system is a directory) and its
 *  system bus is there to ask it. */
export function hasServiceManager(pid: number): boolean {
  return existsInRoot(pid, 'run/systemd/system', true) && existsInRoot(pid, 'run/dbus/system_bus_socket');
}
