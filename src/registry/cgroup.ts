// Scope cgroups made by Create where systemd is not PID 1: directly in the cgroup2 hierarchy, at the path
// systemd would use (machine.slice/machine-<name>.scope), so that sd-login and `ps -o machine` find them.
import { readFile, mkdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scopeUnitName } from './names.js';

/** The mount point of the cgroup2 hierarchy (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts). */
export async function findCgroup2Mount(): Promise<string | undefined> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of info.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.split(' ')[0] === 'cgroup2') return unescapeMountPath(pre.split(' ')[4]);
  }
  return undefined;
}

/** The v1 name=systemd hierarchy of a hybrid host, where sd-login (ps -o machine, sd_pid_get_machine_name)
 *  looks for a process's unit instead of cgroup2; undefined elsewhere. */
export async function findLegacySystemdMount(): Promise<string | undefined> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of info.split('\n')) {
    const [pre, post] = line.split(' - ');
    const f = post?.split(' ') ?? [];
    if (f[0] === 'cgroup' && f[2]?.split(',').includes('name=systemd')) return unescapeMountPath(pre.split(' ')[4]);
  }
  return undefined;
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export class Cgroups {
  constructor(
    readonly mount: string,
    /** Also mirror scopes here (see findLegacySystemdMount). */
    readonly legacyMount?: string,
  ) {}

  /** Makes machine.slice/machine-<name>.scope and moves the leader into it; returns the cgroup path
   *  (relative to the hierarchy, as /proc/PID/cgroup shows it). */
  async create(machine: string, leader: number): Promise<{ path: string; unit: string }> {
    const unit = scopeUnitName(machine);
    const path = `/machine.slice/${unit}`;
    await mkdir(join(this.mount, 'machine.slice'), { recursive: true });
    await mkdir(join(this.mount, path));
    try {
      await writeFile(join(this.mount, path, 'cgroup.procs'), `${leader}\n`);
    } catch (e) {
      await rmdir(join(this.mount, path)).catch(() => {});
      throw e;
    }
    if (this.legacyMount) {
      // Best effort: only sd-login's view depends on it, not the registry's.
      await mkdir(join(this.legacyMount, path), { recursive: true })
        .then(() => writeFile(join(this.legacyMount!, path, 'cgroup.procs'), `${leader}\n`))
        .catch(() => {});
    }
    return { path, unit };
  }

  async processes(path: string): Promise<number[]> {
    const text = await readFile(join(this.mount, path, 'cgroup.procs'), 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).map(Number);
  }

  /** True once the cgroup is gone; false while processes are still in it. */
  async remove(path: string): Promise<boolean> {
    if (this.legacyMount) await rmdir(join(this.legacyMount, path)).catch(() => {});
    try {
      await rmdir(join(this.mount, path));
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ENOENT';
    }
  }
}
