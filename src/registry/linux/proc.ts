// What the registry reads about processes from /proc.
//
// These reads are synchronous on purpose: procfs makes its files in memory, so a read costs a few
// microseconds and never waits for a disk; a thread-pool round trip costs more, and fs.promises reads
// a size-0 file into fresh 64 KiB buffers (at 10,000 machines that was most of a restart's time).
import { closeSync, openSync, readSync, readdirSync, readlinkSync } from 'node:fs';

const chunk = Buffer.alloc(16 * 1024);

/** A whole small file as text (procfs, cgroupfs); undefined when it cannot be read
 *  (for /proc: the process is gone). */
export function readSmallFile(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    let text = '';
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0; ) {
      text += chunk.toString('utf8', 0, n);
      // A procfs file hands over whole lines, as much as fits, and a regular file all it has: a short
      // read that ends a line is the end, without one more read to be told so.
      if (n < chunk.length && chunk[n - 1] === 10) break;
    }
    return text;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** A line of /proc/PID/uid_map or gid_map: IDs base..base+range-1 inside are shift..shift+range-1 outside. */
export interface IdMapLine {
  base: number;
  shift: number;
  range: number;
}

/** PF_KTHREAD in the flags of /proc/PID/stat. */
const PF_KTHREAD = 0x00200000;

export interface ProcStat {
  state: string;
  /** A kernel thread (kthreadd and its children): never a machine's leader. */
  kernelThread: boolean;
  /** Start time in clock ticks since boot: with the PID, it names one process for good. */
  startTime: string;
}

/** undefined when the process does not exist. */
export function readProcStat(pid: number): ProcStat | undefined {
  const text = readSmallFile(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: the fields after it start past the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0], kernelThread: (Number(rest[6]) & PF_KTHREAD) !== 0, startTime: rest[19] };
}

export function readIdMap(pid: number | 'self', kind: 'uid' | 'gid'): IdMapLine[] {
  const text = readSmallFile(`/proc/${pid}/${kind}_map`) ?? '';
  const lines: IdMapLine[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length === 3 && f.every(Number.isSafeInteger)) lines.push({ base: f[0], shift: f[1], range: f[2] });
  }
  return lines;
}

/** The namespace link of a process ("net:[4026531840]"); undefined when it is gone. */
export function readNamespace(pid: number | 'self', kind: 'net' | 'user'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

let own: { ns: string; uid: IdMapLine[]; gid: IdMapLine[] } | undefined;

/** The uid_map and gid_map of a process. One in our own user namespace (most leaders without a user
 *  namespace of their own) has ours, read once: one readlink instead of reading two files. */
export function readIdMaps(pid: number): { uid: IdMapLine[]; gid: IdMapLine[] } {
  own ??= { ns: readlinkSync('/proc/self/ns/user'), uid: readIdMap('self', 'uid'), gid: readIdMap('self', 'gid') };
  return readNamespace(pid, 'user') === own.ns ? own : { uid: readIdMap(pid, 'uid'), gid: readIdMap(pid, 'gid') };
}

/** The process's path in the cgroup2 hierarchy ("0::" line), e.g. /system.slice/foo.service. */
export function readCgroupPath(pid: number): string | undefined {
  return readSmallFile(`/proc/${pid}/cgroup`)
    ?.split('\n')
    .find((l) => l.startsWith('0::'))
    ?.slice(3);
}

/** The systemd unit a cgroup path belongs to, as cg_path_get_unit: the first component that is not a
 *  slice, if it is a unit name. */
export function unitOfCgroupPath(path: string): string {
  for (const part of path.split('/')) {
    if (part === '' || part.endsWith('.slice')) continue;
    return /^[^/]+\.(service|scope|socket|mount|swap|device|target|timer|path|automount)$/.test(part) ? part : '';
  }
  return '';
}

/** The process and all its descendants, through /proc/PID/task/TID/children. */
export function processTree(pid: number): number[] {
  const seen = new Set<number>();
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (seen.has(p)) continue;
    seen.add(p);
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      const children = readSmallFile(`/proc/${p}/task/${t}/children`) ?? ''; // '' when the task exited
      for (const c of children.split(' ')) if (c.trim()) queue.push(Number(c));
    }
  }
  return [...seen];
}
