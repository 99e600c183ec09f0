// A machine's leader as the registry holds it: a pidfd, which names that one process for good, and its
// start time, which names it across a restart of the daemon (a state file keeps it).
import { fstatSync } from 'node:fs';
import { errnoName } from '../../errno.js';
import { failed, invalid } from '../errors.js';
import * as c from './libc.js';
import { readProcStat, readSmallFile } from './proc.js';

export interface Leader {
  fd: number;
  /** Start time in clock ticks since boot, from /proc/PID/stat. */
  startTime: string;
  /** The pidfd's inode number: one per process where pidfds live on pidfs (Linux 6.9+), so that others
   *  can name the process by it (machined's LeaderPIDFDId); 0 on older kernels' anonymous inodes. */
  id: number;
}

const statfsBuf = Buffer.alloc(128);

/** The inode number of a pidfd (see Leader.id); 0 when it is not on pidfs (older kernels give every
 *  pidfd the same anonymous inode), as machined does. */
export function pidfdId(fd: number): number {
  if (c.fstatfs(fd, statfsBuf) !== 0 || Number(statfsBuf.readBigInt64LE(0)) !== c.PIDFS_MAGIC) return 0;
  try {
    const ino = fstatSync(fd, { bigint: true }).ino;
    return ino <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(ino) : 0;
  } catch {
    return 0;
  }
}

const pollfd = Buffer.alloc(8);

/** Whether the process of a pidfd has exited (a pidfd is readable from then on, zombie or not). */
function pidfdExited(fd: number): boolean {
  pollfd.writeInt32LE(fd, 0);
  pollfd.writeInt16LE(c.POLLIN, 4);
  pollfd.writeInt16LE(0, 6);
  return c.poll(pollfd, 1, 0) > 0;
}

/** A pidfd for the process and its start time, read after the pidfd is open, so that both surely name
 *  the same process; undefined when there is no such (living) process. Throws a RegistryError for a
 *  kernel thread, and when no pidfd can be had (EMFILE...). */
export function openLeader(pid: number): Leader | undefined {
  const fd = c.pidfd_open(pid, 0);
  if (fd < 0) {
    const e = c.errno();
    if (e === c.ESRCH || e === c.EINVAL) return undefined;
    throw failed(`Cannot open a pidfd for leader PID ${pid}: ${errnoName(e)}`);
  }
  const st = readProcStat(pid);
  // The pidfd not readable after the read: its process had not exited, so the PID still named it.
  if (!st || st.state === 'Z' || st.state === 'X' || pidfdExited(fd)) {
    c.close(fd);
    return undefined;
  }
  if (st.kernelThread) {
    c.close(fd);
    throw invalid('leader', `Invalid leader PID ${pid}: a kernel thread cannot lead a machine`);
  }
  return { fd, startTime: st.startTime, id: pidfdId(fd) };
}

/** The PID of the process a pidfd names (from /proc/self/fdinfo); undefined when fd is no pidfd, or its
 *  process has exited (the kernel then gives -1). */
export function pidOfPidfd(fd: number): number | undefined {
  const text = readSmallFile(`/proc/self/fdinfo/${fd}`);
  const m = text === undefined ? null : /^Pid:\s*(-?\d+)$/m.exec(text);
  const pid = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** The pidfd ID (see pidfdId) of a living process; 0 when there is none or it has no such ID. */
export function processPidfdId(pid: number): number {
  const fd = c.pidfd_open(pid, 0);
  if (fd < 0) return 0;
  try {
    return pidfdId(fd);
  } finally {
    c.close(fd);
  }
}
