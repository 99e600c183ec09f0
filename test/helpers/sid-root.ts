// systemd 262's own programs for the tests: a Debian sid root (scripts/sid-root, cached in
// build/sid-root), entered in a private world:
//  - a mount namespace of its own (and, if asked, a network namespace), held by one process;
//  - the cached root as the lower layer of an overlay whose upper layer is a tmpfs, so that what 262's
//    programs write never reaches the cache and is gone with the world;
//  - a tmpfs on /run and /tmp, /proc /sys /dev bound in, the cgroup2 hierarchy at /sys/fs/cgroup (262
//    knows no other), the host's machine ID;
//  - host directories bound where 262's programs look (our daemon's state, userdb and hook directories),
//    and /run/dbus bound to a host directory, so that a bus started inside is reachable from outside.
// Every process started here is tracked and ended by its PID on close(), which also ends the holder:
// with it the namespaces go, and every mount in them. A test process that dies takes them along too
// (each is spawned with a parent-death signal).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './daemon.js';
import { run, shellQuote, waitFor, type RunResult } from './run.js';

const BUILD = join(ROOT, 'scripts/sid-root');
/** A clean environment for 262's programs: nothing of the host's (or the test runner's) leaks in. */
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', SYSTEMD_LOG_LEVEL: 'info', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' };

let rootPath: string | undefined;

/** The cached sid root (built first if missing or stale: about 15 s). */
export function sidRoot(): string {
  rootPath ??= execFileSync(BUILD, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  return rootPath;
}

export interface SidWorldOptions {
  /** A network namespace of its own, with only lo (up): resolved's stub on 127.0.0.53 is then private. */
  privateNetwork?: boolean;
  /** /run/systemd/system made, so that 262's tools take systemd for running. */
  systemdRunning?: boolean;
  /** Host directories bound into the root: [host path, path in the root]. */
  binds?: [string, string][];
  /** Files written into the root (in the overlay only): path in the root -> content. */
  files?: Record<string, string>;
}

export interface Started {
  proc: ChildProcess;
  pid: number;
  output(): string;
  /** Resolves with the exit code when it exits by itself. */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code (null: killed by a signal). */
  stop(): Promise<number | null>;
}

export interface SidWorld {
  /** The host directory of the world: dbus/ holds the bus socket of a bus started inside. */
  dir: string;
  /** The D-Bus address of that bus as the host sees it (valid after startBus). */
  busAddress: string;
  /** Runs a 262 program (inside the root) to its end. */
  run(cmd: string[], opts?: { env?: Record<string, string>; timeoutMs?: number; input?: string }): Promise<RunResult>;
  /** Runs a host program in the world's namespaces but not in the root (e.g. dig in its network). */
  runHost(cmd: string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** Starts a long-running 262 program inside the root; ended by close() at the latest. */
  start(cmd: string[], opts?: { env?: Record<string, string> }): Started;
  /** sid's dbus-daemon --system inside, its socket at /run/dbus/system_bus_socket (and busAddress). */
  startBus(): Promise<Started>;
  close(): Promise<void>;
}

/** The mount of the cgroup2 hierarchy (hybrid hosts have it at /sys/fs/cgroup/unified). */
export function cgroup2Mount(): string {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep > 0 && f[sep + 1] === 'cgroup2') return f[4];
  }
  throw new Error('no cgroup2 hierarchy mounted');
}

const q = shellQuote;

export async function enterSidRoot(o: SidWorldOptions = {}): Promise<SidWorld> {
  const root = sidRoot();
  const dir = mkdtempSync(join(tmpdir(), 'mymachines-sid-'));
  for (const d of ['ovl', 'merged', 'dbus', 'files']) mkdirSync(join(dir, d));
  const m = join(dir, 'merged');
  const files = Object.entries(o.files ?? {});
  files.forEach(([, content], i) => writeFileSync(join(dir, 'files', String(i)), content));
  const script = [
    'set -e',
    `mount -t tmpfs sid-world ${q(join(dir, 'ovl'))}`,
    `mkdir ${q(join(dir, 'ovl/upper'))} ${q(join(dir, 'ovl/work'))}`,
    `mount -t overlay sid-root -o ${q(`lowerdir=${root},upperdir=${dir}/ovl/upper,workdir=${dir}/ovl/work`)} ${q(m)}`,
    `mount -t tmpfs tmpfs ${q(m + '/run')}`,
    `mount -t tmpfs tmpfs ${q(m + '/tmp')}`,
    `mount --rbind /proc ${q(m + '/proc')}`,
    `mount --rbind /sys ${q(m + '/sys')}`,
    `mount --bind ${q(cgroup2Mount())} ${q(m + '/sys/fs/cgroup')}`,
    `mount --rbind /dev ${q(m + '/dev')}`,
    existsSync('/etc/machine-id') ? `mount --bind /etc/machine-id ${q(m + '/etc/machine-id')}` : '',
    `mkdir -p ${q(m + '/run/dbus')} ${q(m + '/run/systemd')}`,
    `mount --bind ${q(join(dir, 'dbus'))} ${q(m + '/run/dbus')}`,
    o.systemdRunning ? `mkdir -p ${q(m + '/run/systemd/system')}` : '',
    ...(o.binds ?? []).flatMap(([src, target]) => [`mkdir -p ${q(m + target)}`, `mount --bind ${q(src)} ${q(m + target)}`]),
    ...files.map(([path], i) => `cp ${q(join(dir, 'files', String(i)))} ${q(m + path)}`),
    o.privateNetwork ? 'ip link set lo up' : '',
    'echo ready',
    // The holder: it lives until close() ends it, or its stdin closes with the test process.
    'exec cat >/dev/null',
  ].filter(Boolean).join('\n');
  const holder = spawn('setpriv', ['--pdeathsig', 'KILL', 'unshare', '--mount', '--propagation', 'private', ...(o.privateNetwork ? ['--net'] : []), '--', 'sh', '-c', script], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let holderOut = '';
  holder.stdout!.on('data', (d) => (holderOut += d));
  holder.stderr!.on('data', (d) => (holderOut += d));
  const holderExited = new Promise<void>((r) => holder.once('exit', () => r()));
  const started = new Set<Started>();
  const enter = (chroot: boolean, cmd: string[]) => [
    '--pdeathsig', 'KILL', 'nsenter', '-t', String(holder.pid), '-m', ...(o.privateNetwork ? ['-n'] : []), '--', ...(chroot ? ['chroot', m] : []), ...cmd,
  ];
  const world: SidWorld = {
    dir,
    busAddress: `unix:path=${join(dir, 'dbus/system_bus_socket')}`,
    run: (cmd, opts = {}) => run('setpriv', enter(true, cmd), { env: { ...ENV, ...opts.env }, timeoutMs: opts.timeoutMs, input: opts.input }),
    runHost: (cmd, opts = {}) => run('setpriv', enter(false, cmd), { timeoutMs: opts.timeoutMs }),
    start(cmd, opts = {}) {
      const proc = spawn('setpriv', enter(true, cmd), { env: { ...ENV, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      proc.stdout!.on('data', (d) => (out += d));
      proc.stderr!.on('data', (d) => (out += d));
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      const s: Started = {
        proc,
        pid: proc.pid!,
        output: () => out,
        exited,
        async stop() {
          if (proc.exitCode === null && proc.signalCode === null) {
            proc.kill('SIGTERM');
            const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(t);
          }
          started.delete(s);
          return exited;
        },
      };
      started.add(s);
      return s;
    },
    async startBus() {
      const bus = world.start(['dbus-daemon', '--system', '--nofork', '--nopidfile']);
      await waitFor('the sid dbus-daemon', () => {
        if (bus.proc.exitCode !== null) throw new Error(`dbus-daemon exited with ${bus.proc.exitCode}: ${bus.output()}`);
        return existsSync(join(dir, 'dbus/system_bus_socket')) ? true : undefined;
      }, 10_000);
      return bus;
    },
    async close() {
      await Promise.all([...started].map((s) => s.stop()));
      if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
      await holderExited;
      // The mounts went with the namespace: only the host directory is left.
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor('the sid world', () => {
      if (holder.exitCode !== null) throw new Error(`cannot enter the sid root: ${holderOut}`);
      return holderOut.includes('ready') ? true : undefined;
    }, 10_000);
  } catch (e) {
    await world.close();
    throw e;
  }
  return world;
}
