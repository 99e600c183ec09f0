// For the D-Bus tests: a private system-type dbus-daemon with mymachines' bus policy, systemd's clients run
// where they look for machined's files, and a dbus-next client that shows error names.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dbus from 'dbus-next';
import { ROOT } from './helpers/daemon.js';
import { run, waitFor, type RunResult } from './helpers/run.js';

export interface Bus {
  address: string;
  /** Environment for clients: DBUS_SYSTEM_BUS_ADDRESS set to this bus. */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
  /** Starts the bus again on the same socket (after stop). */
  start(): Promise<void>;
}

/** A system bus (so the policy applies to non-root callers) on DIR/bus, with data/org.freedesktop.machine1.conf. */
export async function startBus(dir: string): Promise<Bus> {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755); // unprivileged clients connect too
  const socket = join(dir, 'bus');
  const config = join(dir, 'bus.conf');
  writeFileSync(
    config,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>${join(ROOT, 'data/org.freedesktop.machine1.conf')}</include>
</busconfig>
`,
  );
  const address = `unix:path=${socket}`;
  let proc: ChildProcess | undefined;
  const bus: Bus = {
    address,
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: address },
    async start() {
      proc = spawn('dbus-daemon', ['--config-file', config, '--nofork'], { stdio: ['ignore', 'ignore', 'inherit'] });
      const p = proc;
      await waitFor('the dbus-daemon socket', () => {
        if (p.exitCode !== null) throw new Error(`dbus-daemon exited with ${p.exitCode}`);
        return existsSync(socket) ? true : undefined;
      });
    },
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
      // dbus-daemon leaves its socket behind when killed; the next one must bind it afresh.
      await run('rm', ['-f', socket]);
    },
  };
  await bus.start();
  return bus;
}

/** The argv that runs a command as machined's clients expect to find things: /run/systemd/system present
 *  (so that systemd's tools think systemd runs), the daemon's state directory at /run/systemd/machines,
 *  and extra bind mounts (source -> target), all in a mount namespace of its own. */
export function systemdNsArgv(stateDir: string, cmd: string[], binds: [string, string][] = []): string[] {
  const script = [
    'set -e',
    'mkdir -p /run/systemd',
    'mount -t tmpfs tmpfs /run/systemd',
    'mkdir -p /run/systemd/system /run/systemd/machines',
    `mount --bind '${stateDir}' /run/systemd/machines`,
    ...binds.map(([s, t]) => `mount --bind '${s}' '${t}'`),
    'exec "$@"',
  ].join('\n');
  return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', ...cmd];
}

export function runInSystemdNs(bus: Bus, stateDir: string, cmd: string[], opts: { binds?: [string, string][]; timeoutMs?: number } = {}): Promise<RunResult> {
  const [u, ...args] = systemdNsArgv(stateDir, cmd, opts.binds);
  return run(u, args, { env: bus.env, timeoutMs: opts.timeoutMs });
}

/** A dbus-next connection for calls whose error names matter (busctl prints only messages). */
export async function busClient(bus: Bus) {
  const conn = dbus.sessionBus({ busAddress: bus.address } as dbus.SessionBusOptions);
  await new Promise<void>((resolve, reject) => {
    conn.once('connect', () => resolve());
    conn.once('error', reject);
  });
  return {
    conn,
    /** Calls a method of machine1; resolves to the reply body, rejects with a DBusError (its .type is the name). */
    async call(path: string, iface: string, member: string, signature = '', body: unknown[] = []): Promise<any[]> {
      const reply = await conn.call(new dbus.Message({ destination: 'org.freedesktop.machine1', path, interface: iface, member, signature, body }));
      return reply!.body;
    },
    close: () => conn.disconnect(),
  };
}

/** The error name a failed call ends with. */
export async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { type?: string }).type ?? String(e);
  }
  return 'no error';
}
