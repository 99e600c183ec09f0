// SystemdScopes (Create's scopes where systemd is PID 1) against a real systemd: a systemd user manager,
// started here with a D-Bus user bus of its own, in a mount namespace of its own (where
// /run/systemd/system exists) and in a cgroup of its own. It speaks the same StartTransientUnit, JobRemoved,
// Cancel and UnrefUnit as PID 1, so the scope allocator is driven here as the daemon drives it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import dbus from 'dbus-next';
import { cgroupPlaceOf, removeSubtree, subtreeProcesses } from '../src/registry/linux/cgroup.js';
import { RegistryError, SystemdError } from '../src/registry/errors.js';
import type { ScopeProperty, ScopeRequest } from '../src/registry/registry.js';
import { BusService, type InterfaceDef, openBus } from '../src/dbus/bus-service.js';
import { type OpenSystemdBus, SystemdScopes } from '../src/registry/linux/systemd-scope.js';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { eachStep, run, sleep, waitFor } from './helpers/run.js';
import { cgroupMounts, fakeBus, startBus } from './helpers/dbus.js';

/** Connections to the test's bus, where the daemon's go to the system bus. */
const onBus = (address: string): OpenSystemdBus => (onLost, o) => openBus(address, onLost, o);

const SYSTEMD = 'org.freedesktop.systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const tag = `mmtest-sdscope-${process.pid}`;
const origin = `mmtest-sdorigin-${process.pid}`;

let cg: Awaited<ReturnType<typeof cgroupMounts>>;
let hierarchies: string[] = [];
let dir: string;
let address: string;
let manager: ChildProcess | undefined;
let managerOutput = '';
let why = '';
let scopes: SystemdScopes;
let client: dbus.MessageBus | undefined;
const warnings: string[] = [];
const log = { info() {}, debug() {}, warn: (_o: object, msg: string) => void warnings.push(msg) };
/** Rejections nobody handled: in the daemon, each would end the process. */
const unhandled: unknown[] = [];
process.on('unhandledRejection', (e) => void unhandled.push(e));
const request = (cls: 'container' | 'vm', properties: ScopeProperty[] = []): ScopeRequest => ({ class: cls, properties, log });

before(async () => {
  cg = await cgroupMounts();
  hierarchies = [cg.v2, cg.legacy].filter((h): h is string => h !== undefined);
  dir = mkdtempSync(join(tmpdir(), 'mymachines-sdscope-'));
  const units = join(dir, 'units');
  const rt = join(dir, 'rt');
  mkdirSync(units);
  mkdirSync(rt, { mode: 0o700 });
  const unit = (name: string, text: string) => writeFileSync(join(units, name), text);
  // Only these units: the manager starts its bus and nothing else of the host's user units.
  unit('mmtest.target', '[Unit]\nDescription=mymachines test\nWants=dbus.socket dbus.service\n');
  unit('dbus.socket', '[Socket]\nListenStream=%t/bus\n');
  unit('dbus.service', '[Unit]\nRequires=dbus.socket\n[Service]\nType=notify\nNotifyAccess=main\nExecStart=/usr/bin/dbus-daemon --session --address=systemd: --nofork --nopidfile --systemd-activation\n');
  unit('mmfail.service', '[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshot\nExecStart=/bin/false\n');
  unit('mmslow.service', '[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshot\nExecStart=/bin/sleep 3\n');
  for (const h of hierarchies) mkdirSync(join(h, origin));
  const script = [
    'set -e',
    'mkdir -p /run/systemd',
    'mount -t tmpfs tmpfs /run/systemd',
    'mkdir /run/systemd/system',
    ...hierarchies.map((h) => `mkdir '${join(h, tag)}' && echo $$ > '${join(h, tag, 'cgroup.procs')}'`),
    `export XDG_RUNTIME_DIR='${rt}' SYSTEMD_UNIT_PATH='${units}'`,
    'exec systemd --user --unit=mmtest.target --log-target=console',
  ].join('\n');
  manager = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  manager.stdout!.on('data', (d) => (managerOutput += d));
  manager.stderr!.on('data', (d) => (managerOutput += d));
  address = `unix:path=${join(rt, 'bus')}`;
  try {
    await waitFor(
      'the systemd user manager on its bus',
      async () => {
        if (manager!.exitCode !== null) throw new Error(`systemd --user exited with ${manager!.exitCode}: ${managerOutput}`);
        const r = await run('busctl', [`--address=${address}`, 'call', 'org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'GetNameOwner', 's', SYSTEMD]);
        return r.code === 0 ? true : undefined;
      },
      20_000,
    );
  } catch (e) {
    why = `no systemd user manager here: ${(e as Error).message}`;
    return;
  }
  scopes = new SystemdScopes(cg.v2, cg.legacy, onBus(address), { jobTimeoutMs: 10_000 });
  client = dbus.sessionBus({ busAddress: address } as dbus.SessionBusOptions);
});

after(async () => {
  scopes?.close();
  await removeAllContainers();
  if (manager && manager.exitCode === null && manager.signalCode === null) {
    // Exit(): the manager stops its units (its bus too) and exits; a user manager takes SIGTERM as a
    // request to start exit.target, which is not among the units here.
    const exited = new Promise((r) => manager!.once('exit', r));
    const timer = setTimeout(() => manager!.kill('SIGKILL'), 10_000);
    if (client) await callSystemd('/org/freedesktop/systemd1', MANAGER, 'Exit').catch(() => manager!.kill('SIGKILL'));
    else manager.kill('SIGKILL');
    await exited;
    clearTimeout(timer);
  }
  client?.disconnect();
  // Whatever is left in the manager's cgroups (its bus, a unit's process) goes, then the cgroups; each
  // step whatever the others did.
  await eachStep([
    ...hierarchies.map((h) => async () => {
      for (const pid of await subtreeProcesses(join(h, tag))) await run('kill', ['-9', String(pid)]);
    }),
    ...hierarchies.flatMap((h) => [
      () => waitFor(`${tag} removed from ${h}`, () => (removeSubtree(join(h, tag)).then((gone) => gone || undefined)), 10_000),
      () => removeSubtree(join(h, origin)),
    ]),
    () => rmSync(dir, { recursive: true, force: true }),
  ]);
});

/** A leader in a cgroup of its own, in each hierarchy, outside the manager's tree. */
async function leader(): Promise<Container> {
  const c = await makeContainer({ hostNetwork: true });
  for (const h of hierarchies) writeFileSync(join(h, origin, 'cgroup.procs'), `${c.pid}\n`);
  return c;
}

const originPlace = () => ({ v2: `/${origin}`, ...(cg.legacy ? { legacy: `/${origin}` } : {}) });

async function callSystemd(path: string, iface: string, member: string, signature = '', body: unknown[] = []): Promise<any[]> {
  const reply = await client!.call(new dbus.Message({ destination: SYSTEMD, path, interface: iface, member, signature, body }));
  return reply!.body;
}

async function unitProperty(unit: string, iface: string, name: string): Promise<unknown> {
  const [path] = await callSystemd('/org/freedesktop/systemd1', MANAGER, 'GetUnit', 's', [unit]);
  const [v] = await callSystemd(path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [iface, name]);
  return (v as dbus.Variant).value;
}

/** Gone from systemd: collected once inactive and no longer referenced. */
const unitGone = (unit: string) =>
  waitFor(
    `${unit} to be collected`,
    () => callSystemd('/org/freedesktop/systemd1', MANAGER, 'GetUnit', 's', [unit]).then(
      () => undefined,
      (e) => (e.type === 'org.freedesktop.systemd1.NoSuchUnit' ? true : undefined),
    ),
    10_000,
  );

test("StartTransientUnit with machined's properties and the caller's; the whole subtree's processes; UnrefUnit lets systemd collect it", async (t) => {
  if (why) return t.skip(why);
  const c = await leader();
  const { path, unit } = await scopes.create('sd-ct', c.pid, request('container', [
    { name: 'DevicePolicy', signature: 's', value: 'closed' },
    { name: 'DeviceAllow', signature: 'a(ss)', value: [['/dev/net/tun', 'rwm']] },
  ]));
  assert.equal(unit, 'machine-sd\\x2dct.scope');
  assert.equal(path, `/${tag}/machine.slice/machine-sd\\x2dct.scope`, 'the cgroup the leader is in, read back');
  assert.deepEqual(cgroupPlaceOf(c.pid), { v2: path, ...(cg.legacy ? { legacy: path } : {}) });
  const U = 'org.freedesktop.systemd1.Unit';
  const S = 'org.freedesktop.systemd1.Scope';
  assert.equal(await unitProperty(unit, U, 'Description'), 'Container sd-ct');
  assert.equal(await unitProperty(unit, U, 'CollectMode'), 'inactive-or-failed');
  assert.equal(await unitProperty(unit, S, 'Slice'), 'machine.slice');
  assert.equal(await unitProperty(unit, S, 'Delegate'), true);
  assert.equal(await unitProperty(unit, S, 'TasksMax'), 16384n);
  assert.equal(await unitProperty(unit, S, 'DevicePolicy'), 'closed');
  assert.deepEqual(await unitProperty(unit, S, 'DeviceAllow'), [['/dev/net/tun', 'rwm']]);

  // Delegate=yes: the machine may make cgroups below its scope; its processes there are its processes.
  mkdirSync(join(cg.v2, path, 'payload'));
  const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
  writeFileSync(join(cg.v2, path, 'payload/cgroup.procs'), `${child.pid}\n`);
  assert.deepEqual((await scopes.processes(path)).sort(), [c.pid, child.pid].sort());

  assert.equal(await scopes.remove(path), false, 'processes remain');
  child.kill('SIGKILL');
  await c.remove();
  // Our reference was dropped at remove: once empty, systemd stops the scope and collects it.
  await unitGone(unit);
  await waitFor('the scope cgroup gone', async () => ((await scopes.remove(path)) ? true : undefined), 10_000);
  // And the name can be had again.
  const again = await leader();
  const second = await scopes.create('sd-ct', again.pid, request('container'));
  assert.equal(second.path, path);
  await again.remove();
  await scopes.remove(second.path);
  await unitGone(unit);
});

test('a VM is described as one; abandon() puts the leader back where it was and systemd collects the scope', async (t) => {
  if (why) return t.skip(why);
  const c = await leader();
  const { path, unit, abandon } = await scopes.create('sd-vm', c.pid, request('vm'));
  assert.equal(await unitProperty(unit, 'org.freedesktop.systemd1.Unit', 'Description'), 'Virtual Machine sd-vm');
  assert.equal(cgroupPlaceOf(c.pid).v2, path);
  await abandon();
  assert.deepEqual(cgroupPlaceOf(c.pid), originPlace());
  await unitGone(unit);
  await c.remove();
});

test("a start job that fails: org.freedesktop.systemd1.JobFailed with machined's message; the leader stays", async (t) => {
  if (why) return t.skip(why);
  const c = await leader();
  const e = await scopes
    .create('sd-fail', c.pid, request('container', [
      { name: 'Requires', signature: 'as', value: ['mmfail.service'] },
      { name: 'After', signature: 'as', value: ['mmfail.service'] },
    ]))
    .catch((x) => x);
  assert.ok(e instanceof SystemdError, String(e));
  assert.equal(e.busName, 'org.freedesktop.systemd1.JobFailed', e.message);
  assert.equal(e.message, "Start job for unit machine-sd\\x2dfail.scope failed with 'dependency'");
  assert.deepEqual(cgroupPlaceOf(c.pid), originPlace());
  await c.remove();
});

test("systemd's own errors keep their name and message; the deadline of a refused Create never fires", async (t) => {
  if (why) return t.skip(why);
  const quick = new SystemdScopes(cg.v2, cg.legacy, onBus(address), { jobTimeoutMs: 300 });
  const c = await leader();
  try {
    const e = await quick.create('sd-bad', c.pid, request('container', [{ name: 'NoSuchProperty', signature: 's', value: 'x' }])).catch((x) => x);
    assert.ok(e instanceof SystemdError, String(e));
    assert.equal(e.busName, 'org.freedesktop.DBus.Error.PropertyReadOnly');
    assert.match(e.message, /NoSuchProperty/);
    assert.deepEqual(cgroupPlaceOf(c.pid), originPlace());
    await sleep(600);
    assert.deepEqual(unhandled, [], 'no rejection left unhandled by the deadline');
  } finally {
    quick.close();
    await c.remove();
  }
});

test('a start job that does not finish in time: refused, the job cancelled, the leader where it was, no unhandled rejection', async (t) => {
  if (why) return t.skip(why);
  const quick = new SystemdScopes(cg.v2, cg.legacy, onBus(address), { jobTimeoutMs: 1000 });
  const c = await leader();
  try {
    // The scope waits for a service that takes 3 s to start.
    const e = await quick
      .create('sd-slow', c.pid, request('container', [
        { name: 'Wants', signature: 'as', value: ['mmslow.service'] },
        { name: 'After', signature: 'as', value: ['mmslow.service'] },
      ]))
      .catch((x) => x);
    assert.ok(e instanceof RegistryError && !(e instanceof SystemdError), String(e));
    assert.equal(e.message, 'Start job for unit machine-sd\\x2dslow.scope did not finish within 1 s');
    // After the slow service is done, the cancelled scope has not started with our leader in it.
    await sleep(3000);
    assert.deepEqual(cgroupPlaceOf(c.pid), originPlace());
    await unitGone('machine-sd\\x2dslow.scope');
  } finally {
    quick.close();
    await c.remove();
  }
});

test('no leftovers: nothing of ours in the manager but its bus', async (t) => {
  if (why) return t.skip(why);
  assert.ok(!existsSync(join(cg.v2, tag, 'machine.slice', 'machine-sd\\x2dct.scope')));
  assert.deepEqual(warnings, []);
  assert.deepEqual(unhandled, []);
});

// What a real systemd does not do on demand: a JobRemoved sent before the StartTransientUnit reply (the
// two can come in one read), a job that never ends. A fake org.freedesktop.systemd1 on a bus of its own.
test('a fake systemd: JobRemoved before the reply is not missed; a failed job is JobFailed; a job that never ends is cancelled', async () => {
  const bus = await startBus(join(dir, 'fakebus'), { policy: 'open' });
  let result: string | undefined = 'done';
  let jobs = 0;
  const cancelled: string[] = [];
  const unreffed: string[] = [];
  const fakeLog = { info() {}, debug() {}, warn() {} };
  const manager: InterfaceDef<null> = {
    name: MANAGER,
    methods: {
      Subscribe: { in: '', out: '', call: () => {} },
      StartTransientUnit: {
        in: 'name:s mode:s properties:a(sv) aux:a(sa(sv))',
        out: 'job:o',
        call: (_t, _c, unit: string) => {
          const id = ++jobs;
          const job = `/org/freedesktop/systemd1/job/${id}`;
          // Sent before the method returns, so before its reply.
          if (result) fake.signal('/org/freedesktop/systemd1', MANAGER, 'JobRemoved', 'id:u job:o unit:s result:s', [id, job, unit, result]);
          return [job];
        },
      },
      UnrefUnit: { in: 'name:s', out: '', call: (_t, _c, unit: string) => void unreffed.push(unit) },
    },
    properties: {},
    signals: { JobRemoved: 'id:u job:o unit:s result:s' },
  };
  const job: InterfaceDef<string> = { name: 'org.freedesktop.systemd1.Job', methods: { Cancel: { in: '', out: '', call: (path) => void cancelled.push(path) } }, properties: {}, signals: {} };
  const fake = new BusService({
    address: bus.address,
    name: SYSTEMD,
    log: fakeLog,
    tree: {
      find: (path) => (path === '/org/freedesktop/systemd1' ? { target: null, interfaces: [manager] } : path.startsWith('/org/freedesktop/systemd1/job/') ? { target: path, interfaces: [job] } : undefined),
      paths: () => ['/org/freedesktop/systemd1'],
      mapError: () => undefined,
    },
  });
  fake.start();
  const quick = new SystemdScopes(cg.v2, cg.legacy, onBus(bus.address), { jobTimeoutMs: 1000 });
  try {
    await waitFor('the fake systemd', () => (fake.isConnected ? true : undefined));
    const { path, unit } = await quick.create('fake-1', process.pid, request('container'));
    assert.deepEqual({ path, unit }, { path: '/machine.slice/machine-fake\\x2d1.scope', unit: 'machine-fake\\x2d1.scope' });

    result = 'failed';
    const failed = await quick.create('fake-2', process.pid, request('vm')).catch((x) => x);
    assert.ok(failed instanceof SystemdError, String(failed));
    assert.equal(failed.busName, 'org.freedesktop.systemd1.JobFailed');
    assert.equal(failed.message, "Start job for unit machine-fake\\x2d2.scope failed with 'failed'");
    await waitFor('the reference dropped', () => (unreffed.includes('machine-fake\\x2d2.scope') ? true : undefined));

    result = undefined;
    const never = await quick.create('fake-3', process.pid, request('container')).catch((x) => x);
    assert.equal(never.message, 'Start job for unit machine-fake\\x2d3.scope did not finish within 1 s');
    await waitFor('the job cancelled', () => (cancelled.includes(`/org/freedesktop/systemd1/job/${jobs}`) ? true : undefined));
    await waitFor('the reference dropped', () => (unreffed.includes('machine-fake\\x2d3.scope') ? true : undefined));

    // Removing the machine of fake-1 drops its reference, once.
    await quick.remove('/machine.slice/machine-fake\\x2d1.scope');
    await quick.remove('/machine.slice/machine-fake\\x2d1.scope');
    await waitFor('fake-1 unreferenced', () => (unreffed.includes('machine-fake\\x2d1.scope') ? true : undefined));
    await sleep(100);
    assert.equal(unreffed.filter((u) => u === 'machine-fake\\x2d1.scope').length, 1);
    assert.deepEqual(unhandled, []);
  } finally {
    quick.close();
    fake.stop();
    await bus.stop();
  }
});

test('a bus that refuses Hello: Create is refused as a lost connection, and no rejection is left unhandled', async () => {
  const socket = join(dir, 'refusing-bus');
  const fake = await fakeBus(socket, 'refuse');
  const quick = new SystemdScopes(cg.v2, cg.legacy, onBus(`unix:path=${socket}`), { jobTimeoutMs: 2000 });
  try {
    const e = await quick.create('refused', process.pid, request('container')).catch((x) => x);
    assert.ok(e instanceof RegistryError && !(e instanceof SystemdError), String(e));
    assert.equal(e.message, 'Lost the connection to systemd: the bus refused Hello: org.freedesktop.DBus.Error.AccessDenied');
    await sleep(100);
    assert.deepEqual(unhandled, []);
  } finally {
    quick.close();
    await fake.close();
  }
});
