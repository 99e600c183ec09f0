// Starts the real mymachinesd for a test, in private directories, and stops it again.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';
import { run, waitFor, type RunResult } from './run.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DAEMON = join(ROOT, 'bin/mymachinesd');
export const CTL = join(ROOT, 'bin/mymachinesctl');

export interface Daemon {
  dir: string;
  runtimeDir: string;
  stateDir: string;
  userdbDir: string;
  /** Where the resolve hook socket is (io.systemd.Machine in it). */
  resolveHookDir: string;
  /** The image pool (--image-pool). */
  poolDir: string;
  /** Where machined's socket for systemd 258+ clients is (io.systemd.Machine in it). */
  machineDir: string;
  socket: string;
  /** The socket in machineDir. */
  machineSocket: string;
  proc: ChildProcess;
  /** What the daemon wrote on stdout (its JSON log) and stderr. */
  output(): string;
  /** The lines of its JSON log whose message is `msg`, parsed. */
  logLines(msg: string): Record<string, unknown>[];
  /** mymachinesctl against this daemon. */
  ctl(args: string[], opts?: { env?: NodeJS.ProcessEnv }): Promise<RunResult>;
  /** SIGTERM and wait; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Starts another daemon on the same directories (after stop or kill). */
  restart(): Promise<Daemon>;
  /** Removes the directories (after stop). */
  cleanup(): void;
}

export interface DaemonOptions {
  args?: string[];
  dir?: string;
  env?: NodeJS.ProcessEnv;
  /** An argv that runs the daemon elsewhere and execs it (e.g. nsenter into a network namespace, or
   *  prlimit). */
  prefix?: string[];
  /** A D-Bus address to serve on (--bus): startDaemon returns once the daemon owns its name there. */
  bus?: string;
  /** The mymachinesd to run (default: this checkout's bin/mymachinesd). */
  program?: string;
}

function connects(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export async function startDaemon(o: DaemonOptions = {}): Promise<Daemon> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'mymachines-test-'));
  chmodSync(dir, 0o755); // unprivileged clients in the tests must reach the socket
  const runtimeDir = join(dir, 'run');
  const stateDir = join(dir, 'machines');
  const userdbDir = join(dir, 'userdb');
  const resolveHookDir = join(dir, 'resolve.hook');
  const machineDir = join(dir, 'machine');
  const socket = join(runtimeDir, 'io.systemd.Machine');
  const args = ['--runtime-dir', runtimeDir, '--state-dir', stateDir, '--userdb-dir', userdbDir, '--resolve-hook-dir', resolveHookDir, '--machine-dir', machineDir, '--image-pool', join(dir, 'pool'), '--bus', o.bus ?? 'none', '--log-level', 'debug', ...(o.args ?? [])];
  const argv = [...(o.prefix ?? []), o.program ?? DAEMON, ...args];
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const d: Daemon = {
    dir,
    runtimeDir,
    stateDir,
    userdbDir,
    resolveHookDir,
    poolDir: join(dir, 'pool'),
    machineDir,
    socket,
    machineSocket: join(machineDir, 'io.systemd.Machine'),
    proc,
    output: () => out,
    logLines: (msg) =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((o) => o.msg === msg),
    ctl: (a, opts) => run(CTL, ['--socket', socket, ...a], { env: opts?.env }),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    restart: () => startDaemon({ ...o, dir }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  try {
    await waitFor('the daemon socket', async () => {
      if (proc.exitCode !== null) throw new Error(`mymachinesd exited with ${proc.exitCode}: ${out}`);
      return (await connects(socket)) ? true : undefined;
    }, 15_000);
    if (o.bus) await waitFor('the daemon on the bus', () => (out.includes('serving on D-Bus') ? true : undefined), 15_000);
  } catch (e) {
    await d.kill();
    if (!o.dir) d.cleanup(); // made here: nobody else would remove it
    throw e;
  }
  return d;
}
