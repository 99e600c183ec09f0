// mymachinesd and a bus that is not there yet, then not a bus, then one where the name cannot be had, and
// at last a real one: Varlink is served all along, and once the name is ours every machine registered
// meanwhile is announced. Then, on that bus, whose policy lets every call through, mymachinesd's own
// check is what refuses changes from callers other than root.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { VarlinkClient } from '../src/varlink/client.js';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { ROOT, startDaemon, type Daemon } from './helpers/daemon.js';
import { run, waitFor } from './helpers/run.js';
import { type Bus, busClient, fakeBus, monitorSignals, startBus } from './helpers/dbus.js';

const MGR_PATH = '/org/freedesktop/machine1';
const MGR = 'org.freedesktop.machine1.Manager';
const MACHINE = 'org.freedesktop.machine1.Machine';

let dir: string;
let busDir: string;
let bus: Bus | undefined;
let daemon: Daemon | undefined;
let other: Daemon | undefined;
let leaders: Container[] = [];
let fakes: { close(): Promise<void> }[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-dbus-bus-'));
  chmodSync(dir, 0o755);
  busDir = join(dir, 'bus');
  mkdirSync(busDir);
  chmodSync(busDir, 0o755);
  leaders = [await makeContainer({ hostNetwork: true }), await makeContainer({ hostNetwork: true })];
});

after(async () => {
  for (const f of fakes) await f.close();
  await daemon?.stop();
  daemon?.cleanup();
  await other?.stop();
  other?.cleanup();
  await bus?.stop();
  await removeAllContainers();
  rmSync(dir, { recursive: true, force: true });
});

const logged = (d: Daemon, text: string, ms = 5000) => waitFor(`the daemon to log "${text}"`, () => (d.output().includes(text) ? true : undefined), ms);

test('the bus unreachable at start, then not a bus, then a real one: Varlink meanwhile, then the name and MachineNew for every machine', { timeout: 60_000 }, async () => {
  const socket = join(busDir, 'bus');
  const d = (daemon = await startDaemon({ args: ['--bus', `unix:path=${socket}`] }));
  await logged(d, 'cannot reach the D-Bus bus; org.freedesktop.machine1 is not served until it can be reached');
  // The cause in words, without the socket library's source file and line.
  assert.match(d.output(), /"why":"connect: no such file or directory \(ENOENT\)"/);
  assert.doesNotMatch(d.output(), /uwrap/);
  // Varlink is served meanwhile.
  const varlink = await VarlinkClient.connect(d.socket);
  try {
    await varlink.call('io.systemd.Machine.Register', { name: 'early-1', class: 'container', leader: leaders[0].pid });

    // A socket that completes authentication but never answers Hello: given up after a timeout, tried again.
    const silent = await fakeBus(socket, 'silent');
    fakes.push(silent);
    await logged(d, 'no answer from the bus within 5 s', 12_000);
    await waitFor('another try', () => (silent.connections() >= 2 ? true : undefined), 5000);
    await silent.close();
    // One that answers Hello with an error: no more fatal than no bus.
    const refusing = await fakeBus(socket, 'refuse');
    fakes.push(refusing);
    // Within a Hello timeout and a retry: the silent bus may have been closed while the daemon was
    // still authenticating on it, which the daemon may only notice when Hello goes unanswered.
    await logged(d, 'the bus refused Hello: org.freedesktop.DBus.Error.AccessDenied', 12_000);
    await refusing.close();
    assert.equal(d.proc.exitCode, null, 'the daemon goes on');

    // A real bus where nobody may own the name yet, so that a monitor is there before the daemon is.
    bus = await startBus(busDir, { policy: 'open', allowOwn: false });
    const monitor = await monitorSignals(bus, MGR);
    try {
      await logged(d, 'cannot own org.freedesktop.machine1');
      await varlink.call('io.systemd.Machine.Register', { name: 'early-2', class: 'container', leader: leaders[1].pid });
      bus.reconfigure({ policy: 'open' });
      await logged(d, 'serving on D-Bus', 10_000);
      await waitFor('MachineNew for both', () => (monitor.seen().length >= 2 ? true : undefined));
      await new Promise((r) => setTimeout(r, 300)); // nothing more comes
      assert.deepEqual(monitor.seen(), ['MachineNew early-1 /org/freedesktop/machine1/machine/early_2d1', 'MachineNew early-2 /org/freedesktop/machine1/machine/early_2d2']);
    } finally {
      monitor.stop();
    }
    const client = await busClient(bus);
    try {
      assert.deepEqual(await client.call(MGR_PATH, MGR, 'GetMachine', 's', ['early-2']), ['/org/freedesktop/machine1/machine/early_2d2']);
    } finally {
      client.close();
    }
  } finally {
    await varlink.close();
  }
});

test("on a bus that lets every call through, mymachinesd's own check refuses changes from UID 65534", async (t) => {
  if (!bus || !daemon) return t.skip('needs the bus and daemon of the test before');
  // A dbus-next client run as nobody: it prints the error name and message that it gets.
  const script = join(dir, 'call.mjs');
  writeFileSync(
    script,
    `import dbus from '${join(ROOT, 'node_modules/dbus-next/index.js')}';
const [address, path, iface, member, signature, json] = process.argv.slice(2);
const body = JSON.parse(json, (_k, v) => (v && typeof v === 'object' && 'variant' in v ? new dbus.Variant(v.variant[0], v.variant[1]) : v));
const bus = dbus.sessionBus({ busAddress: address });
try {
  const reply = await bus.call(new dbus.Message({ destination: 'org.freedesktop.machine1', path, interface: iface, member, signature, body }));
  console.log('ok ' + JSON.stringify(reply.body));
} catch (e) {
  console.log(e.type + ': ' + e.text);
}
bus.disconnect();
`,
  );
  chmodSync(script, 0o644);
  const asNobody = async (path: string, iface: string, member: string, signature: string, body: unknown[]) => {
    const r = await run('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, script, bus!.address, path, iface, member, signature, JSON.stringify(body)]);
    return r.stdout.trim() || r.stderr.trim();
  };
  const machines = 'org.freedesktop.DBus.Error.AccessDenied: Access denied: only root may change machines.';
  const logging = 'org.freedesktop.DBus.Error.AccessDenied: Access denied: only root may change logging.';
  const web = '/org/freedesktop/machine1/machine/early_2d1';
  const pid = leaders[0].pid;
  const cases: [string, string, string, string, unknown[], string][] = [
    [MGR_PATH, MGR, 'RegisterMachine', 'sayssus', ['x', [], '', 'container', pid, ''], machines],
    [MGR_PATH, MGR, 'RegisterMachineWithNetwork', 'sayssusai', ['x', [], '', 'container', pid, '', [1]], machines],
    [MGR_PATH, MGR, 'CreateMachine', 'sayssusa(sv)', ['x', [], '', 'container', pid, '', []], machines],
    [MGR_PATH, MGR, 'CreateMachineWithNetwork', 'sayssusaia(sv)', ['x', [], '', 'container', pid, '', [1], []], machines],
    [MGR_PATH, MGR, 'UnregisterMachine', 's', ['early-1'], machines],
    [MGR_PATH, MGR, 'TerminateMachine', 's', ['early-1'], machines],
    [MGR_PATH, MGR, 'KillMachine', 'ssi', ['early-1', 'all', 9], machines],
    [web, MACHINE, 'Terminate', '', [], machines],
    [web, MACHINE, 'Kill', 'si', ['all', 9], machines],
    ['/org/freedesktop/LogControl1', 'org.freedesktop.DBus.Properties', 'Set', 'ssv', ['org.freedesktop.LogControl1', 'LogLevel', { variant: ['s', 'err'] }], logging],
    ['/org/freedesktop/LogControl1', 'org.freedesktop.DBus.Properties', 'Set', 'ssv', ['org.freedesktop.LogControl1', 'LogTarget', { variant: ['s', 'console'] }], logging],
  ];
  for (const [path, iface, member, sig, body, want] of cases) assert.equal(await asNobody(path, iface, member, sig, body), want, member);
  // Reading stays open; nothing changed.
  assert.match(await asNobody(MGR_PATH, MGR, 'ListMachines', '', []), /^ok .*early-1.*early-2/);
  assert.equal(await asNobody('/org/freedesktop/LogControl1', 'org.freedesktop.DBus.Properties', 'Get', 'ss', ['org.freedesktop.LogControl1', 'LogLevel']), 'ok [{"signature":"s","value":"debug"}]');
  assert.equal(daemon.proc.exitCode, null);
  for (const l of leaders) assert.ok(l.pid > 0 && (await run('kill', ['-0', String(l.pid)])).code === 0, 'the leaders live');
});

test('--bus session with a DBUS_SESSION_BUS_ADDRESS that is no address: a warning, Varlink served, retried, never fatal', async () => {
  // dbus-next throws at once for it, where an unreachable address fails later.
  const d = (other = await startDaemon({ args: ['--bus', 'session'], env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: 'garbage' } }));
  await logged(d, 'cannot reach the D-Bus bus');
  assert.match(d.output(), /cannot connect: /);
  await logged(d, 'D-Bus still unreachable', 3000);
  const list = await d.ctl(['list', '--json']);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(d.proc.exitCode, null);
});
