// What the registry reads about processes from /proc. All reads are asynchronous: they go to the
// thread pool, never blocking the event loop.
import { readFile, readdir } from 'node:fs/promises';

/** A line of /proc/PID/uid_map or gid_map: IDs base..base+range-1 inside are shift..shift+range-1 outside. */
export interface IdMapLine {
  base: number;
  shift: number;
  range: number;
}

export interface ProcStat {
  state: string;
  /** Start time in clock ticks since boot: with the PID, it names one process for good. */
  startTime: string;
}

/** undefined when the process does not exist. */
export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: the fields after it start past the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0], startTime: rest[19] };
}

export async function readIdMap(pid: number, kind: 'uid' | 'gid'): Promise<IdMapLine[]> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/${kind}_map`, 'utf8');
  } catch {
    return [];
  }
  const lines: IdMapLine[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length === 3 && f.every(Number.isSafeInteger)) lines.push({ base: f[0], shift: f[1], range: f[2] });
  }
  return lines;
}

/** The process's path in the cgroup2 hierarchy ("0::" line), e.g. /system.slice/foo.service. */
export async function readCgroupPath(pid: number): Promise<string | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('0::'));
    return line?.slice(3);
  } catch {
    return undefined;
  }
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
export async function processTree(pid: number): Promise<number[]> {
  const seen = new Set<number>();
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (seen.has(p)) continue;
    seen.add(p);
    let tasks: string[];
    try {
      tasks = await readdir(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        const children = await readFile(`/proc/${p}/task/${t}/children`, 'utf8');
        for (const c of children.split(' ')) if (c.trim()) queue.push(Number(c));
      } catch {
        /* the task exited meanwhile */
      }
    }
  }
  return [...seen];
}
