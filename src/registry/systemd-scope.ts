// Scopes for Create where systemd is PID 1: asked of PID 1 with StartTransientUnit, as machined does
// (reference §2.6), since systemd owns the cgroup tree there and would undo cgroups made behind its back.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import dbus from 'dbus-next';
import { RegistryError } from './errors.js';
import { scopeUnitName } from './names.js';
import type { ScopeAllocator } from './registry.js';

const { Variant } = dbus;
const JOB_TIMEOUT_MS = 30_000;

/** True when systemd runs as PID 1 (sd_booted()'s test). */
export const systemdIsPid1 = () => existsSync('/run/systemd/system');

export class SystemdScopes implements ScopeAllocator {
  private manager: Promise<dbus.ClientInterface> | undefined;

  constructor(private readonly cgroupMount: string) {}

  private systemd(): Promise<dbus.ClientInterface> {
    this.manager ??= (async () => {
      const bus = dbus.systemBus();
      // A broken connection is made again at the next Create.
      bus.on('error', () => (this.manager = undefined));
      const obj = await bus.getProxyObject('org.freedesktop.systemd1', '/org/freedesktop/systemd1');
      const m = obj.getInterface('org.freedesktop.systemd1.Manager');
      await m.Subscribe(); // JobRemoved is only sent to subscribers
      return m;
    })().catch((e) => {
      this.manager = undefined;
      throw e;
    });
    return this.manager;
  }

  async create(machine: string, leader: number): Promise<{ path: string; unit: string }> {
    const unit = scopeUnitName(machine);
    const m = await this.systemd();
    let job = '';
    let onRemoved: (id: number, path: string, unit: string, result: string) => void = () => {};
    // Listening before the start, so that a job that ends at once is not missed.
    const finished = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new RegistryError('Failed', `Start job for unit ${unit} timed out`)), JOB_TIMEOUT_MS);
      onRemoved = (_id, path, _unit, result) => {
        if (path === job) (clearTimeout(timer), resolve(result));
      };
      m.on('JobRemoved', onRemoved);
    });
    try {
      job = await m.StartTransientUnit(unit, 'fail', [
        ['Slice', new Variant('s', 'machine.slice')],
        ['Description', new Variant('s', `Machine ${machine}`)],
        ['PIDs', new Variant('au', [leader])],
        ['Delegate', new Variant('b', true)],
        ['CollectMode', new Variant('s', 'inactive-or-failed')],
        ['TasksMax', new Variant('t', 16384n)],
      ], []);
      const result = await finished;
      if (result !== 'done') throw new RegistryError('Failed', `Start job for unit ${unit} failed with '${result}'`);
    } finally {
      m.off('JobRemoved', onRemoved);
    }
    return { path: `/machine.slice/${unit}`, unit };
  }

  async processes(path: string): Promise<number[]> {
    const text = await readFile(join(this.cgroupMount, path, 'cgroup.procs'), 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).map(Number);
  }

  /** systemd collects the scope itself once it is empty (CollectMode); it is gone when its cgroup is. */
  async remove(path: string): Promise<boolean> {
    return !existsSync(join(this.cgroupMount, path));
  }
}
