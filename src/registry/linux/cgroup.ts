// Scope cgroups made by Create where systemd is not PID 1: directly in the cgroup2 hierarchy, at the path
// systemd would use (machine.slice/machine-<name>.scope), so that sd-login and `ps -o machine` find them.
// Also the cgroup helpers that SystemdScopes shares: a machine's processes are those of its scope's whole
// subtree (a container's own systemd, or anything given Delegate=yes, makes cgroups below the scope).
import { existsSync } from 'node:fs';
import { readFile, mkdir, readdir, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RegistryError, failed } from '../errors.js';
import { scopeUnitName } from '../names.js';
import { processTree, readSmallFile } from './proc.js';
import type { ScopeAllocator, ScopeProperty, ScopeRequest } from '../scope.js';

/** From one read of /proc/self/mountinfo (the first mount of each):
 *  - v2: the mount point of the cgroup2 hierarchy (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid
 *    hosts); undefined where there is none;
 *  - legacy: the v1 name=systemd hierarchy of a hybrid host, where sd-login (ps -o machine,
 *    sd_pid_get_machine_name) looks for a process's unit instead of cgroup2; undefined elsewhere. */
export async function findCgroupMounts(): Promise<{ v2?: string; legacy?: string }> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const found: { v2?: string; legacy?: string } = {};
  for (const line of info.split('\n')) {
    const [pre, post] = line.split(' - ');
    const f = post?.split(' ') ?? [];
    const at = () => unescapeMountPath(pre.split(' ')[4]);
    if (f[0] === 'cgroup2') found.v2 ??= at();
    else if (f[0] === 'cgroup' && f[2]?.split(',').includes('name=systemd')) found.legacy ??= at();
  }
  return found;
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Where a process is in the cgroup2 hierarchy and in name=systemd (paths as /proc/PID/cgroup shows them). */
export interface CgroupPlace {
  v2?: string;
  legacy?: string;
}

export function cgroupPlaceOf(pid: number): CgroupPlace {
  const place: CgroupPlace = {};
  for (const line of (readSmallFile(`/proc/${pid}/cgroup`) ?? '').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (line.startsWith('0::')) place.v2 = m[2];
    else if (m[1].split(',').includes('name=systemd')) place.legacy = m[2];
  }
  return place;
}

/** Whether systemd runs as PID 1 (and owns the cgroup tree), as sd_booted() tells. */
export const systemdIsPid1 = () => existsSync('/run/systemd/system');

/** SIGKILL to every process of a cgroup2 subtree at once, through cgroup.kill (Linux 5.14+), so that
 *  a process forking meanwhile cannot escape; false where the kernel has no cgroup.kill. */
export async function killSubtree(dir: string): Promise<boolean> {
  return writeFile(join(dir, 'cgroup.kill'), '1\n').then(() => true, () => false);
}

/** Every process in the cgroup at dir and in every cgroup below it; [] when it is gone. */
export async function subtreeProcesses(dir: string): Promise<number[]> {
  const text = readSmallFile(join(dir, 'cgroup.procs')) ?? '';
  const pids = text.split('\n').filter(Boolean).map(Number);
  const children = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const c of children) if (c.isDirectory()) pids.push(...(await subtreeProcesses(join(dir, c.name))));
  return pids;
}

/** Removes the cgroup at dir and the cgroups below it, deepest first. True once it is gone; false while
 *  processes remain somewhere in it (EBUSY). */
export async function removeSubtree(dir: string): Promise<boolean> {
  let children;
  try {
    children = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
  for (const c of children) if (c.isDirectory()) await removeSubtree(join(dir, c.name));
  try {
    await rmdir(dir);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** Moves processes into the cgroup at dir, one by one (cgroup.procs takes one PID per write); a process
 *  that exited meanwhile is skipped. Throws on the first other failure. */
async function moveInto(dir: string, pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      await writeFile(join(dir, 'cgroup.procs'), `${pid}\n`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }
}

/** Puts every process of the scope at `path` back where the leader was before the scope took it, in each
 *  hierarchy (for a Create refused after the move: a refused request changes nothing). Best effort: a
 *  place that is gone meanwhile leaves its processes where they are. */
export async function moveBack(mount: string, legacyMount: string | undefined, path: string, origin: CgroupPlace): Promise<void> {
  const back = async (m: string, to: string | undefined) => {
    if (to === undefined || to === path) return;
    await moveInto(join(m, to), await subtreeProcesses(join(m, path))).catch(() => {});
  };
  await back(mount, origin.v2);
  if (legacyMount) await back(legacyMount, origin.legacy);
}

/** cgroup2 files for the unit properties that map onto one file each; applied when the scope has the
 *  controller (its file exists), as systemd would. */
const PROPERTY_FILES: Record<string, string> = {
  TasksMax: 'pids.max',
  MemoryMin: 'memory.min',
  MemoryLow: 'memory.low',
  MemoryHigh: 'memory.high',
  MemoryMax: 'memory.max',
  MemorySwapMax: 'memory.swap.max',
  CPUWeight: 'cpu.weight',
};
const UINT64_MAX = 0xffffffffffffffffn;

/** Applies what can be applied of a scope's unit properties without systemd; returns the names of the rest. */
async function applyProperties(dir: string, properties: ScopeProperty[]): Promise<string[]> {
  const notApplied: string[] = [];
  for (const p of properties) {
    // Scopes made here are always in machine.slice, and delegated: root in the machine may make cgroups below.
    if (p.name === 'Slice' && p.value === 'machine.slice') continue;
    if (p.name === 'Delegate' && p.value === true) continue;
    const file = PROPERTY_FILES[p.name];
    if (file && p.signature === 't' && existsSync(join(dir, file))) {
      const v = BigInt(p.value as bigint);
      const ok = await writeFile(join(dir, file), v === UINT64_MAX ? 'max\n' : `${v}\n`).then(() => true, () => false);
      if (ok) continue;
    }
    notApplied.push(p.name);
  }
  return notApplied;
}

export class Cgroups implements ScopeAllocator {
  constructor(
    readonly mount: string,
    /** Also mirror scopes here: the legacy mount of findCgroupMounts. */
    readonly legacyMount?: string,
  ) {}

  /** Makes machine.slice/machine-<name>.scope and moves the leader into it; returns the cgroup path
   *  (relative to the hierarchy, as /proc/PID/cgroup shows it). Every failure is a RegistryError, and
   *  leaves the leader where it was. */
  async create(machine: string, leader: number, req: ScopeRequest): Promise<{ path: string; unit: string; abandon(): Promise<void> }> {
    const unit = scopeUnitName(machine);
    const path = `/machine.slice/${unit}`;
    const dir = join(this.mount, path);
    const origin = cgroupPlaceOf(leader);
    await mkdir(join(this.mount, 'machine.slice'), { recursive: true }).catch((e: Error) => {
      throw failed(`Cannot make cgroup /machine.slice for scope ${unit}: ${e.message}`);
    });
    let made = true;
    try {
      await mkdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw failed(`Cannot make cgroup ${path} for scope ${unit}: ${(e as Error).message}`);
      // Left by a crash, or by an Unregister whose processes went on: taken over when nothing but this
      // leader and its own descendants is in it, else it belongs to something else.
      made = false;
      const family = new Set(processTree(leader));
      const others = (await subtreeProcesses(dir)).filter((p) => !family.has(p));
      if (others.length > 0) {
        throw new RegistryError('MachineExists', `Scope ${unit} already exists and holds other processes (PID ${others.slice(0, 5).join(', ')}${others.length > 5 ? ', ...' : ''})`);
      }
    }
    const notApplied = await applyProperties(dir, req.properties);
    try {
      await writeFile(join(dir, 'cgroup.procs'), `${leader}\n`);
    } catch (e) {
      if (made) await removeSubtree(dir);
      throw failed(`Cannot move leader PID ${leader} into cgroup ${path}: ${(e as Error).message}`);
    }
    if (this.legacyMount) {
      // Best effort: only sd-login's view depends on it, not the registry's.
      const legacyDir = join(this.legacyMount, path);
      await mkdir(legacyDir, { recursive: true })
        .then(() => moveInto(legacyDir, [leader]))
        .catch(() => {});
    }
    if (notApplied.length > 0) {
      req.log.warn({ machine, unit, properties: notApplied }, `scope properties not applied (no systemd to apply them): ${notApplied.join(', ')}`);
    }
    const abandon = async () => {
      await moveBack(this.mount, this.legacyMount, path, origin);
      await this.remove(path);
    };
    return { path, unit, abandon };
  }

  async processes(path: string): Promise<number[]> {
    return subtreeProcesses(join(this.mount, path));
  }

  kill(path: string): Promise<boolean> {
    return killSubtree(join(this.mount, path));
  }

  /** True once the cgroup and those below it are gone; false while processes are still in them. */
  async remove(path: string): Promise<boolean> {
    if (this.legacyMount) await removeSubtree(join(this.legacyMount, path));
    const gone = await removeSubtree(join(this.mount, path));
    if (gone) {
      // Without systemd, machine.slice is ours too: it goes with its last scope (rmdir fails while any
      // scope, of this daemon or another, is still in it).
      for (const m of [this.mount, this.legacyMount]) if (m) await rmdir(join(m, dirname(path))).catch(() => {});
    }
    return gone;
  }
}
