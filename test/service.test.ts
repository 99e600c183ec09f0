// mymachinesd as a service: the readiness and watchdog notifications that systemd's Type=notify reads
// (received on a NOTIFY_SOCKET datagram socket of the test's own: systemd is not PID 1 here), SIGHUP
// and SIGTERM, and D-Bus activation through data/org.freedesktop.machine1.service on a real
// dbus-daemon started with --systemd-activation, where the test plays systemd's part: it receives the
// bus's ActivationRequest for the unit and starts the daemon, as systemd would start the unit.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import dbus from 'dbus-next';
import { DAEMON, ROOT, startDaemon } from './helpers/daemon.js';
import { run, waitFor } from './helpers/run.js';
import { startBus } from './helpers/dbus.js';
import { VarlinkClient } from '../src/varlink/client.js';

const dir = mkdtempSync(join(tmpdir(), 'mymachines-service-'));
chmodSync(dir, 0o755);
after(() => rmSync(dir, { recursive: true, force: true }));

// Prints every datagram that arrives on a Unix socket as a JSON line: Node.js has no AF_UNIX datagrams.
const RECEIVER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1].replace('@', '\\0', 1))
print(json.dumps('bound'), flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

interface Receiver {
  /** The datagrams received so far. */
  messages(): string[];
  close(): void;
}

async function notifySocket(address: string): Promise<Receiver> {
  const p = spawn('python3', ['-c', RECEIVER, address], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got: string[] = [];
  let buf = '';
  p.stdout!.on('data', (d) => {
    buf += d;
    for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) got.push(JSON.parse(buf.slice(0, i)));
  });
  await waitFor('the notify socket', () => (got[0] === 'bound' ? true : undefined));
  got.shift();
  return { messages: () => got, close: () => void p.kill() };
}

/** Starts the daemon on private directories with this environment; resolves once it runs. */
function spawnDaemon(name: string, env: NodeJS.ProcessEnv, args: string[] = []) {
  const d = join(dir, name);
  const socket = join(d, 'run', 'io.systemd.Machine');
  const proc = spawn(DAEMON, ['--runtime-dir', join(d, 'run'), '--state-dir', join(d, 'machines'), '--userdb-dir', '', '--resolve-hook-dir', '', '--machine-dir', '', '--bus', 'none', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c) => (out += c));
  proc.stderr!.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, socket, exited, output: () => out };
}

async function stopped(p: ChildProcess, exited: Promise<number | null>) {
  if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await exited;
}

test('READY=1 comes once the socket answers, WATCHDOG=1 every half WATCHDOG_USEC, STOPPING=1 on SIGTERM', async () => {
  const rx = await notifySocket(join(dir, 'notify'));
  // WATCHDOG_PID is the daemon's own when systemd starts it; the test knows the PID only after the spawn,
  // so the variable is left out here (the daemon feeds the watchdog then too) and tested below.
  const d = spawnDaemon('ready', { NOTIFY_SOCKET: join(dir, 'notify'), WATCHDOG_USEC: '200000' });
  try {
    const ready = await waitFor('READY=1', () => rx.messages().find((m) => m.startsWith('READY=1')), 15_000);
    // At once, without retrying: the socket answers from the moment READY=1 is sent.
    const c = await VarlinkClient.connect(d.socket);
    assert.equal(((await c.call('org.varlink.service.GetInfo', {})) as { product: string }).product, 'mymachinesd');
    c.close();
    assert.equal(ready, `READY=1\nSTATUS=Serving 0 machines on ${d.socket}`);
    await waitFor('three WATCHDOG=1', () => (rx.messages().filter((m) => m === 'WATCHDOG=1').length >= 3 ? true : undefined), 5000);
    d.proc.kill('SIGTERM');
    assert.equal(await d.exited, 0);
    assert.equal(rx.messages().at(-1), 'STOPPING=1');
    assert.equal(existsSync(d.socket), false, 'the socket is removed');
  } finally {
    rx.close();
    await stopped(d.proc, d.exited);
  }
});

test('an abstract NOTIFY_SOCKET (@name) is written to; a watchdog meant for another PID is not fed', async () => {
  const name = `@mymachines-test-${process.pid}`;
  const rx = await notifySocket(name);
  const d = spawnDaemon('abstract', { NOTIFY_SOCKET: name, WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid) });
  try {
    await waitFor('READY=1', () => rx.messages().find((m) => m.startsWith('READY=1')), 15_000);
    await new Promise((r) => setTimeout(r, 500)); // five watchdog intervals
    assert.deepEqual(rx.messages().filter((m) => m === 'WATCHDOG=1'), []);
  } finally {
    rx.close();
    await stopped(d.proc, d.exited);
  }
});

test('a NOTIFY_SOCKET nobody listens on is a warning; the daemon serves', async () => {
  const d = spawnDaemon('nobody', { NOTIFY_SOCKET: join(dir, 'no-such-socket') });
  try {
    await waitFor('the warning', () => (d.output().includes('cannot tell the service manager that the daemon is ready') ? true : undefined), 15_000);
    const c = await VarlinkClient.connect(d.socket);
    assert.equal(((await c.call('org.varlink.service.GetInfo', {})) as { product: string }).product, 'mymachinesd');
    c.close();
  } finally {
    await stopped(d.proc, d.exited);
  }
});

test('SIGHUP is logged and changes nothing; the machines and the socket stay', async () => {
  const d = await startDaemon();
  const leader = spawn('sleep', ['60']);
  try {
    assert.equal((await d.ctl(['register', 'hup1', '--leader', String(leader.pid)])).code, 0);
    d.proc.kill('SIGHUP');
    await waitFor('the SIGHUP log line', () => (d.output().includes('nothing to reload') ? true : undefined));
    const r = await d.ctl(['show', 'hup1', '-p', 'Leader', '--value']);
    assert.equal(r.stdout, `${leader.pid}\n`, r.stderr);
    assert.equal(d.proc.exitCode, null);
  } finally {
    leader.kill();
    await d.stop();
    d.cleanup();
  }
});

/** A bus with systemd activation, and the test as systemd: the units the bus asked to start. */
async function activationBus(name: string, serviceDirs: string[], onRequest: (unit: string, address: string) => void) {
  // The repository's bus policy, the activation files of serviceDirs, and the test allowed to own
  // org.freedesktop.systemd1 as systemd does.
  const bus = await startBus(join(dir, name), { activation: { serviceDirs } });
  const address = bus.address;
  const systemd = dbus.sessionBus({ busAddress: address } as dbus.SessionBusOptions);
  try {
    await new Promise<void>((resolve, reject) => (systemd.once('connect', () => resolve()), systemd.once('error', reject)));
    await systemd.requestName('org.freedesktop.systemd1', 0);
  } catch (e) {
    systemd.disconnect();
    await bus.stop();
    throw e;
  }
  const requests: string[] = [];
  systemd.on('message', (m: dbus.Message) => {
    if (m.interface === 'org.freedesktop.systemd1.Activator' && m.member === 'ActivationRequest') {
      requests.push(m.body[0]);
      onRequest(m.body[0], address);
    }
  });
  // dbus-next delivers signals addressed to us only to a match it knows of.
  await systemd.call(new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: ["type='signal',interface='org.freedesktop.systemd1.Activator'"] }));
  return {
    address,
    requests,
    async close() {
      systemd.disconnect();
      await bus.stop();
    },
  };
}

test('D-Bus activation: the first call to org.freedesktop.machine1 has mymachinesd.service started, and is answered by it', async () => {
  const services = join(dir, 'services');
  mkdirSync(services);
  copyFileSync(join(ROOT, 'data/org.freedesktop.machine1.service'), join(services, 'org.freedesktop.machine1.service'));
  let daemon: ReturnType<typeof spawnDaemon> | undefined;
  const bus = await activationBus('activation', [services], (unit, address) => {
    if (unit === 'mymachinesd.service') daemon = spawnDaemon('activated', {}, ['--bus', address]);
  });
  try {
    const r = await run('busctl', ['call', 'org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager', 'ListMachines'], { env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: bus.address } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'a(ssso) 1 ".host" "host" "" "/org/freedesktop/machine1/machine/_2ehost"\n');
    assert.deepEqual(bus.requests, ['mymachinesd.service']);
  } finally {
    await bus.close();
    if (daemon) await stopped(daemon.proc, daemon.exited);
  }
});

test("with systemd-container's activation file in a later directory too, ours is the one used (the first directory wins)", async () => {
  // dbus-daemon's standard order: /usr/local/share (make install), then /usr/share (packages).
  const local = join(dir, 'usr-local-share');
  const share = join(dir, 'usr-share');
  mkdirSync(local);
  mkdirSync(share);
  copyFileSync(join(ROOT, 'data/org.freedesktop.machine1.service'), join(local, 'org.freedesktop.machine1.service'));
  writeFileSync(join(share, 'org.freedesktop.machine1.service'), '[D-BUS Service]\nName=org.freedesktop.machine1\nExec=/bin/false\nUser=root\nSystemdService=dbus-org.freedesktop.machine1.service\n');
  const bus = await activationBus('precedence', [local, share], () => {});
  try {
    // Nobody starts anything here: the call fails once the bus has asked for the unit.
    const call = run('busctl', ['--timeout=2', 'call', 'org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager', 'ListMachines'], { env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: bus.address } });
    await waitFor('the activation request', () => (bus.requests.length > 0 ? true : undefined));
    assert.deepEqual(bus.requests, ['mymachinesd.service']);
    await call;
  } finally {
    await bus.close();
  }
});
