// For the D-Bus tests: a private system-type dbus-daemon with mymachines' bus policy, systemd's clients run
// where they look for machined's files, and a dbus-next client that shows error names.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import dbus from 'dbus-next';
import { findCgroupMounts } from '../../src/registry/linux/cgroup.js';
import { ROOT } from './daemon.js';
import { run, waitFor, type RunResult } from './run.js';

export interface Bus {
  address: string;
  /** Environment for clients: DBUS_SYSTEM_BUS_ADDRESS set to this bus. */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
  /** Starts the bus again on the same socket (after stop). */
  start(): Promise<void>;
  /** Rewrites the configuration and has the running bus reload it (SIGHUP). */
  reconfigure(opts: BusOptions): void;
}

export interface BusOptions {
  /** 'machined' (default): a system bus with data/org.freedesktop.machine1.conf, so that the policy
   *  applies to non-root callers as on a real host. 'open': every call let through to everyone, so that
   *  only mymachinesd's own checks stand between a caller and a change. */
  policy?: 'machined' | 'open';
  /** false: nobody may own org.freedesktop.machine1 (until reconfigure). */
  allowOwn?: boolean;
  /** Services started on demand through systemd (dbus-daemon --systemd-activation) from these
   *  directories' activation files; root may own org.freedesktop.systemd1, so that a test can stand in
   *  for systemd. */
  activation?: { serviceDirs: string[] };
  /** UIDs that /etc/passwd lacks but that connect: dbus-daemon refuses a connection from a UID it cannot
   *  look up. It then runs in a mount namespace of its own, with them added to its view of /etc/passwd. */
  extraUsers?: number[];
}

function busConfig(socket: string, o: BusOptions): string {
  const open = o.policy === 'open';
  // The open policy lets anyone own names and send calls; the system one (dbus-daemon's own system.conf)
  // does not, beyond the bus itself and what the service's policy file allows.
  const rule = open ? 'allow' : 'deny';
  const defaults = `    <allow user="*"/>
    <${rule} own="*"/>
    <${rule} send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>${open ? '' : `
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>`}`;
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
${(o.activation?.serviceDirs ?? []).map((d) => `  <servicedir>${d}</servicedir>\n`).join('')}  <policy context="default">
${defaults}
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>${o.activation ? '\n    <allow own="org.freedesktop.systemd1"/>' : ''}
  </policy>
${open ? '' : `  <include>${join(ROOT, 'data/org.freedesktop.machine1.conf')}</include>\n`}${o.allowOwn === false ? '  <policy context="mandatory">\n    <deny own="org.freedesktop.machine1"/>\n  </policy>\n' : ''}</busconfig>
`;
}

/** A system-type bus on DIR/bus: by default with data/org.freedesktop.machine1.conf (see BusOptions). */
export async function startBus(dir: string, opts: BusOptions = {}): Promise<Bus> {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755); // unprivileged clients connect too
  const socket = join(dir, 'bus');
  const config = join(dir, 'bus.conf');
  writeFileSync(config, busConfig(socket, opts));
  const address = `unix:path=${socket}`;
  const daemonArgv = ['dbus-daemon', '--config-file', config, '--nofork', ...(opts.activation ? ['--systemd-activation'] : [])];
  let argv = daemonArgv;
  if (opts.extraUsers?.length) {
    const passwd = join(dir, 'passwd');
    writeFileSync(passwd, readFileSync('/etc/passwd', 'utf8') + opts.extraUsers.map((u) => `test${u}:x:${u}:${u}::/nonexistent:/usr/sbin/nologin\n`).join(''));
    // unshare and sh exec: the PID is dbus-daemon's.
    argv = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/passwd && exec "$@"', passwd, ...daemonArgv];
  }
  let proc: ChildProcess | undefined;
  const bus: Bus = {
    address,
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: address },
    async start() {
      proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
      const p = proc;
      await waitFor('the dbus-daemon socket', () => {
        if (p.exitCode !== null) throw new Error(`dbus-daemon exited with ${p.exitCode}`);
        return existsSync(socket) ? true : undefined;
      }).catch((e) => {
        p.kill('SIGKILL'); // never answered: not left running
        throw e;
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
    reconfigure(o) {
      writeFileSync(config, busConfig(socket, o));
      proc?.kill('SIGHUP');
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

/** The cgroup2 mount and the legacy name=systemd mount (hybrid hosts), found as the daemon finds them. */
export async function cgroupMounts(): Promise<{ v2: string; legacy: string | undefined }> {
  const { v2, legacy } = await findCgroupMounts();
  if (!v2) throw new Error('no cgroup2 hierarchy mounted');
  return { v2, legacy };
}

/** busctl monitor for the signals of one interface; each seen signal as "Member arg1 arg2 ...". */
export async function monitorSignals(bus: Bus, iface: string) {
  const monitor = spawn('busctl', ['monitor', '--json=short', `--match=type='signal',interface='${iface}'`], { env: bus.env, stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  monitor.stdout!.on('data', (d) => (out += d));
  await new Promise((r) => setTimeout(r, 300)); // let the monitor subscribe
  return {
    seen: (): string[] =>
      out
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .map((s) => `${s.member} ${s.payload.data.join(' ')}`),
    stop: () => monitor.kill(),
  };
}

/** A bus that is not one: a socket at `path` that accepts D-Bus clients and completes their
 *  authentication, then never answers Hello ('silent'), or answers it with an error ('refuse'). */
export async function fakeBus(path: string, mode: 'silent' | 'refuse') {
  const { marshallMessage } = createRequire(import.meta.url)('dbus-next/lib/marshall-compat') as { marshallMessage(m: dbus.Message): [Buffer, number[]] };
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((sock) => {
    connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let text = '';
    let begun = false;
    let refused = false;
    sock.on('data', (d) => {
      if (begun) {
        // The first message is Hello (serial 1).
        if (mode === 'refuse' && !refused) {
          refused = true;
          const err = new dbus.Message({ type: dbus.MessageType.ERROR, serial: 1, replySerial: 1 as unknown as string, errorName: 'org.freedesktop.DBus.Error.AccessDenied', signature: 's', body: ['not today'] });
          sock.write(marshallMessage(err)[0]);
        }
        return;
      }
      text += d.toString('latin1');
      for (let i; (i = text.indexOf('\r\n')) >= 0; ) {
        const line = text.slice(0, i).replace(/^\0/, '');
        text = text.slice(i + 2);
        if (line.startsWith('AUTH')) sock.write('OK 0123456789abcdef0123456789abcdef\r\n');
        else if (line.startsWith('NEGOTIATE_UNIX_FD')) sock.write('ERROR\r\n');
        else if (line.startsWith('BEGIN')) {
          begun = true;
          if (text.length > 0 && mode === 'refuse') sock.emit('data', Buffer.alloc(0));
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return {
    connections: () => connections,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
      rmSync(path, { force: true });
    },
  };
}
