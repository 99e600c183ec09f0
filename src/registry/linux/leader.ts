// A machine's leader as the registry holds it: a pidfd, which names that one process for good, and its
// start time, which names it across a restart of the daemon (a state file keeps it).
import { failed, invalid } from '../errors.js';
import * as c from './libc.js';
import { readProcStat } from './proc.js';

export interface Leader {
  fd: number;
  /** Start time in clock ticks since boot, from /proc/PID/stat. */
  startTime: string;
}

const pollfd = Buffer.alloc(8);

/** Whether the process of a pidfd has exited (a pidfd is readable from then on, zombie or not). */
export function pidfdExited(fd: number): boolean {
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
    throw failed(`Cannot open a pidfd for leader PID ${pid}: ${c.errnoName(e)}`);
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
  return { fd, startTime: st.startTime };
}
