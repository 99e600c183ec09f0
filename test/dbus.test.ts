// org.freedesktop.machine1 on a private system bus, driven by systemd's own clients (busctl, machinectl,
// dbus-send) and by dbus-next where error names matter. Real containers (netns, veth, userns).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { run, sleep, waitFor } from './helpers/run.js';
import { type Bus, busClient, errorName, runInSystemdNs, startBus } from './dbus-helpers.js';

const DEST = 'org.freedesktop.machine1';
const MGR_PATH = '/org/freedesktop/machine1';
const MGR = 'org.freedesktop.machine1.Manager';
const MACHINE = 'org.freedesktop.machine1.Machine';
const ID = '0123456789abcdef0123456789abcdef';

let dir: string;
let bus: Bus;
let daemon: Daemon;
let client: Awaited<ReturnType<typeof busClient>>;
let web: Container; // private network with IPv4 and IPv6 on a veth pair
let shared: Container; // shares the host's network namespace
let userns: Container; // user namespace 0 100000 65536

const busctl = (args: string[], opts: { uid?: number } = {}) =>
  opts.uid === undefined ? run('busctl', args, { env: bus.env }) : run('setpriv', ['--reuid', String(opts.uid), '--regid', String(opts.uid), '--clear-groups', 'busctl', ...args], { env: bus.env });
const callMgr = (member: string, sig = '', body: unknown[] = []) => client.call(MGR_PATH, MGR, member, sig, body);
const registerArgs = (name: string, leader: number, cls = 'container', id = Buffer.from(ID, 'hex')) => [name, id, 'test-svc', cls, leader, '/srv/' + name];
const machinectl = (args: string[]) => runInSystemdNs(bus, daemon.stateDir, ['machinectl', '--no-pager', ...args]);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-dbus-'));
  chmodSync(dir, 0o755);
  bus = await startBus(join(dir, 'bus'));
  daemon = await startDaemon({ args: ['--bus', bus.address] });
  await waitFor('the daemon on the bus', () => (daemon.output().includes('serving on D-Bus') ? true : undefined));
  client = await busClient(bus);
  web = await makeContainer({ ipv4: { host: '10.77.80.1', inside: '10.77.80.2' }, ipv6: { host: 'fd77:80::1', inside: 'fd77:80::2' } });
  shared = await makeContainer({ hostNetwork: true });
  userns = await makeContainer({ idMap: [{ base: 0, shift: 100000, range: 65536 }] });
});

after(async () => {
  client?.close();
  await daemon?.stop();
  daemon?.cleanup();
  await bus?.stop();
  await removeAllContainers();
  rmSync(dir, { recursive: true, force: true });
});

test('ListMachines has .host; the Manager properties; ListImages is empty', async () => {
  const [machines] = await callMgr('ListMachines');
  assert.deepEqual(machines, [['.host', 'host', '', '/org/freedesktop/machine1/machine/_2ehost']]);
  const r = await busctl(['--json=short', 'get-property', DEST, MGR_PATH, MGR, 'PoolPath', 'PoolUsage', 'PoolLimit']);
  assert.equal(r.code, 0, r.stderr);
  const props = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(props[0], { type: 's', data: '/var/lib/machines' });
  assert.equal(props[2].type, 't');
  assert.deepEqual(await callMgr('ListImages'), [[]]);
});

test('RegisterMachine(WithNetwork) with busctl; the machine object, its properties and MachineNew', async () => {
  const monitor = spawn('busctl', ['monitor', '--json=short', `--match=type='signal',interface='${MGR}'`], { env: bus.env, stdio: ['ignore', 'pipe', 'ignore'] });
  let signals = '';
  monitor.stdout.on('data', (d) => (signals += d));
  await sleep(300); // let the monitor subscribe
  const idBytes = Buffer.from(ID, 'hex').toString('hex').match(/../g)!.map((h) => String(parseInt(h, 16)));
  const r = await busctl(['call', DEST, MGR_PATH, MGR, 'RegisterMachineWithNetwork', 'sayssusai', 'web-1', '16', ...idBytes, 'test-svc', 'container', String(web.pid), '/srv/web', '1', String(web.hostIfIndex)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'o "/org/freedesktop/machine1/machine/web_2d1"');
  await callMgr('RegisterMachine', 'sayssus', registerArgs('shared', shared.pid));
  await callMgr('RegisterMachine', 'sayssus', ['userns', Buffer.alloc(16), '', 'container', userns.pid, '']);

  assert.deepEqual(await callMgr('GetMachine', 's', ['web-1']), ['/org/freedesktop/machine1/machine/web_2d1']);
  assert.deepEqual(await callMgr('GetMachineByPID', 'u', [web.pid]), ['/org/freedesktop/machine1/machine/web_2d1']);
  const [list] = await callMgr('ListMachines');
  assert.deepEqual(
    list.map((m: string[]) => m.join(' ')).sort(),
    ['.host host  /org/freedesktop/machine1/machine/_2ehost', 'shared container test-svc /org/freedesktop/machine1/machine/shared', 'userns container  /org/freedesktop/machine1/machine/userns', 'web-1 container test-svc /org/freedesktop/machine1/machine/web_2d1'],
  );

  const path = '/org/freedesktop/machine1/machine/web_2d1';
  const all = await busctl(['--json=short', 'call', DEST, path, 'org.freedesktop.DBus.Properties', 'GetAll', 's', MACHINE]);
  assert.equal(all.code, 0, all.stderr);
  const p = JSON.parse(all.stdout).data[0];
  assert.equal(p.Name.data, 'web-1');
  assert.equal(Buffer.from(p.Id.data).toString('hex'), ID);
  assert.equal(p.Service.data, 'test-svc');
  assert.equal(p.Class.data, 'container');
  assert.equal(p.Leader.data, web.pid);
  assert.equal(p.RootDirectory.data, '/srv/web');
  assert.deepEqual(p.NetworkInterfaces.data, [web.hostIfIndex]);
  assert.equal(p.State.data, 'running');
  assert.ok(Math.abs(p.Timestamp.data / 1000 - Date.now()) < 60_000, 'Timestamp is realtime µs');
  assert.equal(p.Scope, undefined, 'Scope is hidden from GetAll');
  // Scope: hidden, yet readable; an all-zero ID reads as an empty array.
  assert.equal((await busctl(['get-property', DEST, path, MACHINE, 'Scope'])).code, 0);
  assert.equal((await busctl(['get-property', DEST, '/org/freedesktop/machine1/machine/userns', MACHINE, 'Id'])).stdout.trim(), 'ay 0');
  const intro = await busctl(['introspect', DEST, path]);
  assert.match(intro.stdout, /\.NetworkInterfaces\s+property\s+ai/);
  assert.doesNotMatch(intro.stdout, /\.Scope\s/);
  const tree = await busctl(['tree', DEST]);
  for (const label of ['_2ehost', 'web_2d1', 'shared', 'userns']) assert.ok(tree.stdout.includes(`/org/freedesktop/machine1/machine/${label}`), tree.stdout);
  assert.ok(tree.stdout.includes('/org/freedesktop/LogControl1'));

  await callMgr('UnregisterMachine', 's', ['shared']);
  await waitFor('MachineRemoved', () => (signals.includes('MachineRemoved') ? true : undefined));
  monitor.kill();
  const seen = signals.trim().split('\n').map((l) => JSON.parse(l)).map((s) => `${s.member} ${s.payload.data.join(' ')}`);
  assert.deepEqual(seen, [
    'MachineNew web-1 /org/freedesktop/machine1/machine/web_2d1',
    'MachineNew shared /org/freedesktop/machine1/machine/shared',
    'MachineNew userns /org/freedesktop/machine1/machine/userns',
    'MachineRemoved shared /org/freedesktop/machine1/machine/shared',
  ]);
  assert.ok(!existsSync(join(daemon.stateDir, 'shared')), 'Unregister removes the state file');
  await callMgr('RegisterMachine', 'sayssus', registerArgs('shared', shared.pid));
});

test('GetMachineAddresses, OSRelease, UIDShift and the Map methods, on the Manager and the Machine object', async () => {
  const [addrs] = await callMgr('GetMachineAddresses', 's', ['web-1']);
  const text = addrs.map(([f, b]: [number, Buffer]) => `${f} ${f === 2 ? [...b].join('.') : b.toString('hex')}`);
  assert.equal(text[0], '2 10.77.80.2');
  assert.equal(text[1], '10 fd770080000000000000000000000002');
  assert.match(text[2], /^10 fe80/);
  assert.equal(text.length, 3);
  const viaObject = await client.call('/org/freedesktop/machine1/machine/web_2d1', MACHINE, 'GetAddresses');
  assert.deepEqual(viaObject[0].length, 3);
  const [os] = await callMgr('GetMachineOSRelease', 's', ['web-1']);
  assert.equal(os.ID, 'debian');
  assert.deepEqual(await callMgr('GetMachineUIDShift', 's', ['userns']), [100000]);
  assert.deepEqual(await callMgr('GetMachineUIDShift', 's', ['web-1']), [0]);
  assert.deepEqual(await callMgr('GetMachineUIDShift', 's', ['.host']), [0]);
  assert.deepEqual(await client.call('/org/freedesktop/machine1/machine/userns', MACHINE, 'GetUIDShift'), [100000]);
  assert.deepEqual(await callMgr('MapFromMachineUser', 'su', ['userns', 1000]), [101000]);
  assert.deepEqual(await callMgr('MapFromMachineGroup', 'su', ['userns', 5]), [100005]);
  assert.deepEqual(await callMgr('MapToMachineUser', 'u', [101000]), ['userns', '/org/freedesktop/machine1/machine/userns', 1000]);
  assert.deepEqual(await callMgr('MapToMachineGroup', 'u', [100005]), ['userns', '/org/freedesktop/machine1/machine/userns', 5]);
  // .host: the host's own addresses and os-release.
  assert.ok((await callMgr('GetMachineAddresses', 's', ['.host']))[0].length >= 1);
  assert.equal((await callMgr('GetMachineOSRelease', 's', ['.host']))[0].ID, 'debian');
});

test("error names are machined's", async () => {
  const name = (member: string, sig: string, body: unknown[]) => errorName(callMgr(member, sig, body));
  const cases: [string, string, unknown[], string][] = [
    ['GetMachine', 's', ['nope'], 'org.freedesktop.machine1.NoSuchMachine'],
    ['GetMachineAddresses', 's', ['nope'], 'org.freedesktop.machine1.NoSuchMachine'],
    ['GetMachineByPID', 'u', [process.pid], 'org.freedesktop.machine1.NoMachineForPID'],
    ['RegisterMachine', 'sayssus', registerArgs('web-1', web.pid), 'org.freedesktop.machine1.MachineExists'],
    ['RegisterMachine', 'sayssus', registerArgs('bad_name', web.pid), 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['RegisterMachine', 'sayssus', registerArgs('x', web.pid, 'container', Buffer.from([1, 2, 3])), 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['RegisterMachine', 'sayssus', registerArgs('x', web.pid, 'host'), 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['RegisterMachine', 'sayssus', registerArgs('x', 1), 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['RegisterMachine', 'sayssus', ['x', Buffer.alloc(0), '', 'container', web.pid, 'relative/root'], 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['RegisterMachineWithNetwork', 'sayssusai', [...registerArgs('x', web.pid), [0]], 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['GetMachineAddresses', 's', ['shared'], 'org.freedesktop.machine1.NoPrivateNetworking'],
    ['KillMachine', 'ssi', ['web-1', 'everyone', 15], 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['KillMachine', 'ssi', ['web-1', 'all', 0], 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['MapToMachineUser', 'u', [1000], 'org.freedesktop.machine1.NoSuchUserMapping'],
    ['MapToMachineGroup', 'u', [5000000], 'org.freedesktop.machine1.NoSuchGroupMapping'],
    ['MapFromMachineUser', 'su', ['userns', 70000], 'org.freedesktop.machine1.NoSuchUserMapping'],
    ['MapFromMachineUser', 'su', ['.host', 0], 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['GetMachine', 'i', [3], 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['NoSuchMethod', '', [], 'org.freedesktop.DBus.Error.UnknownMethod'],
    ['GetImage', 's', ['x'], 'org.freedesktop.DBus.Error.NotSupported'],
    ['OpenMachineShell', 'sssasas', ['web-1', '', '', [], []], 'org.freedesktop.DBus.Error.NotSupported'],
    ['CopyFromMachine', 'sss', ['web-1', '/a', '/b'], 'org.freedesktop.DBus.Error.NotSupported'],
    ['CleanPool', 's', ['all'], 'org.freedesktop.DBus.Error.NotSupported'],
  ];
  for (const [member, sig, body, want] of cases) assert.equal(await name(member, sig, body), want, `${member}(${JSON.stringify(body)})`);
  // A VM: no addresses, OS release or UID shift through machined's interface.
  const vm = await makeContainer({ hostNetwork: true });
  await callMgr('RegisterMachine', 'sayssus', registerArgs('vm1', vm.pid, 'vm'));
  assert.equal(await name('GetMachineAddresses', 's', ['vm1']), 'org.freedesktop.DBus.Error.NotSupported');
  assert.equal(await name('GetMachineOSRelease', 's', ['vm1']), 'org.freedesktop.DBus.Error.NotSupported');
  assert.equal(await name('GetMachineUIDShift', 's', ['vm1']), 'org.freedesktop.DBus.Error.NotSupported');
  await vm.remove();
  await waitFor('the VM to go with its leader', async () => ((await errorName(callMgr('GetMachine', 's', ['vm1']))) === 'org.freedesktop.machine1.NoSuchMachine' ? true : undefined));
  // Objects: unknown paths, and `self` from a process that is in no machine.
  assert.equal(await errorName(client.call('/org/freedesktop/machine1/machine/nope', MACHINE, 'GetAddresses')), 'org.freedesktop.DBus.Error.UnknownObject');
  assert.equal(await errorName(client.call('/org/freedesktop/machine1/machine/self', MACHINE, 'GetAddresses')), 'org.freedesktop.DBus.Error.UnknownObject');
  assert.equal(await errorName(client.call('/org/freedesktop/machine1/machine/web_2d1', 'org.freedesktop.DBus.Properties', 'Get', 'ss', [MACHINE, 'Nope'])), 'org.freedesktop.DBus.Error.UnknownProperty');
  assert.equal(
    await errorName(client.call('/org/freedesktop/machine1/machine/web_2d1', 'org.freedesktop.DBus.Properties', 'Set', 'ssv', [MACHINE, 'Name', new (await import('dbus-next')).default.Variant('s', 'x')])),
    'org.freedesktop.DBus.Error.PropertyReadOnly',
  );
  // busctl shows the messages.
  const r = await busctl(['call', DEST, MGR_PATH, MGR, 'GetMachine', 's', 'nope']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /No machine 'nope' known/);
});

test('the self path is the machine of the calling process', async () => {
  // busctl run inside the machine's cgroup: machined finds a machine by the caller's unit.
  const c = await makeContainer({ hostNetwork: true });
  await callMgr('CreateMachine', 'sayssusa(sv)', ['selfie', Buffer.alloc(0), '', 'container', c.pid, '', []]);
  const procs = '/sys/fs/cgroup/unified/machine.slice/machine-selfie.scope/cgroup.procs';
  const r = await run('sh', ['-c', `echo $$ > ${procs} && exec busctl get-property ${DEST} /org/freedesktop/machine1/machine/self ${MACHINE} Name`], { env: bus.env });
  assert.equal(r.stdout.trim(), 's "selfie"', r.stderr);
  await callMgr('TerminateMachine', 's', ['selfie']);
  await c.remove();
});

test('CreateMachine makes the scope; Terminate and Kill; the leader exiting removes the machine', async () => {
  const c = await makeContainer({ hostNetwork: true });
  const r = await busctl(['call', DEST, MGR_PATH, MGR, 'CreateMachine', 'sayssusa(sv)', 'made-1', '0', 'svc', 'container', String(c.pid), '', '0']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(readFileSync(`/proc/${c.pid}/cgroup`, 'utf8'), /^0::\/machine\.slice\/machine-made\\x2d1\.scope$/m);
  const unit = await busctl(['get-property', DEST, '/org/freedesktop/machine1/machine/made_2d1', MACHINE, 'Unit']);
  assert.equal(unit.stdout.trim(), 's "machine-made\\\\x2d1.scope"');
  // Kill the leader with a signal it ignores, then one it does not.
  assert.equal((await busctl(['call', DEST, MGR_PATH, MGR, 'KillMachine', 'ssi', 'made-1', 'leader', '28'])).code, 0);
  await sleep(300);
  assert.deepEqual(await callMgr('GetMachine', 's', ['made-1']), ['/org/freedesktop/machine1/machine/made_2d1']);
  assert.equal((await busctl(['call', DEST, '/org/freedesktop/machine1/machine/made_2d1', MACHINE, 'Kill', 'si', 'all', '9'])).code, 0);
  await waitFor('made-1 to go', async () => ((await errorName(callMgr('GetMachine', 's', ['made-1']))) === 'org.freedesktop.machine1.NoSuchMachine' ? true : undefined));
  await c.remove();
  // Terminate on the Machine object: State turns closing, then the machine goes with its leader.
  const t = await makeContainer({ hostNetwork: true });
  await callMgr('RegisterMachine', 'sayssus', registerArgs('term', t.pid));
  assert.equal((await busctl(['call', DEST, '/org/freedesktop/machine1/machine/term', MACHINE, 'Terminate'])).code, 0);
  await waitFor('term to go', async () => ((await errorName(callMgr('GetMachine', 's', ['term']))) === 'org.freedesktop.machine1.NoSuchMachine' ? true : undefined));
  await t.remove();
});

test('unprivileged callers may read, but not change: AccessDenied', async () => {
  const list = await busctl(['call', DEST, MGR_PATH, MGR, 'ListMachines'], { uid: 65534 });
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /web-1/);
  assert.equal((await busctl(['call', DEST, MGR_PATH, MGR, 'GetMachineAddresses', 's', 'web-1'], { uid: 65534 })).code, 0);
  assert.equal((await busctl(['get-property', DEST, '/org/freedesktop/machine1/machine/web_2d1', MACHINE, 'Leader'], { uid: 65534 })).code, 0);
  // dbus-send prints the error name. Terminate/Kill/Unregister pass the bus policy: our own check refuses them.
  const send = (member: string, ...args: string[]) =>
    run('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'dbus-send', '--system', '--print-reply', `--dest=${DEST}`, MGR_PATH, `${MGR}.${member}`, ...args], { env: bus.env });
  for (const [member, args] of [
    ['TerminateMachine', ['string:web-1']],
    ['KillMachine', ['string:web-1', 'string:all', 'int32:15']],
    ['UnregisterMachine', ['string:web-1']],
    ['RegisterMachine', ['string:x', 'array:byte:', 'string:', 'string:container', `uint32:${web.pid}`, 'string:']],
  ] as [string, string[]][]) {
    const r = await send(member, ...args);
    assert.match(r.stderr, /org\.freedesktop\.DBus\.Error\.AccessDenied/, `${member}: ${r.stderr}`);
  }
  const obj = await run('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'dbus-send', '--system', '--print-reply', `--dest=${DEST}`, '/org/freedesktop/machine1/machine/web_2d1', `${MACHINE}.Terminate`], { env: bus.env });
  assert.match(obj.stderr, /AccessDenied/);
  assert.deepEqual(await callMgr('GetMachine', 's', ['web-1']), ['/org/freedesktop/machine1/machine/web_2d1'], 'still registered');
});

test('LogControl1: LogLevel read and changed by root only', async () => {
  const path = '/org/freedesktop/LogControl1';
  const get = async () => (await busctl(['get-property', DEST, path, 'org.freedesktop.LogControl1', 'LogLevel'])).stdout.trim();
  assert.equal(await get(), 's "debug"');
  assert.equal((await busctl(['get-property', DEST, path, 'org.freedesktop.LogControl1', 'SyslogIdentifier'])).stdout.trim(), 's "mymachinesd"');
  assert.equal((await busctl(['get-property', DEST, path, 'org.freedesktop.LogControl1', 'LogTarget'])).stdout.trim(), 's "console"');
  const denied = await busctl(['set-property', DEST, path, 'org.freedesktop.LogControl1', 'LogLevel', 's', 'info'], { uid: 65534 });
  assert.notEqual(denied.code, 0);
  assert.equal(await get(), 's "debug"');
  assert.equal((await busctl(['set-property', DEST, path, 'org.freedesktop.LogControl1', 'LogLevel', 's', 'bogus'])).code, 1);
  assert.equal((await busctl(['set-property', DEST, path, 'org.freedesktop.LogControl1', 'LogLevel', 's', 'warning'])).code, 0);
  assert.equal(await get(), 's "warning"');
  // At warning, a debug message is no longer logged.
  const before = daemon.output().length;
  await callMgr('GetMachine', 's', ['web-1']);
  await busctl(['call', DEST, MGR_PATH, MGR, 'GetMachine', 's', 'nope']);
  await sleep(200);
  assert.doesNotMatch(daemon.output().slice(before), /"level":20/);
  assert.equal((await busctl(['set-property', DEST, path, 'org.freedesktop.LogControl1', 'LogLevel', 's', 'debug'])).code, 0);
});

test('machinectl: list, status (addresses, OS), show, kill, terminate', async () => {
  const list = await machinectl(['list']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^web-1\s+container\s+test-svc\s+debian\s+12\s+10\.77\.80\.2/m);
  assert.match(list.stdout, /machines listed/);
  assert.doesNotMatch(list.stdout, /\.host/);
  const status = await machinectl(['status', 'web-1']);
  assert.match(status.stdout, new RegExp(`web-1\\(${ID}\\)`));
  assert.match(status.stdout, new RegExp(`Leader: ${web.pid} \\(sleep\\)`));
  assert.match(status.stdout, /Service: test-svc; class container/);
  assert.match(status.stdout, /Root: \/srv\/web/);
  assert.match(status.stdout, /Address: 10\.77\.80\.2\s+fd77:80::2%\d+\s+fe80::\S+%\d+\s+OS:/);
  assert.match(status.stdout, /OS: Debian GNU\/Linux 12/);
  const show = await machinectl(['show', 'web-1']);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /^Name=web-1$/m);
  assert.match(show.stdout, new RegExp(`^Leader=${web.pid}$`, 'm'));
  assert.match(show.stdout, /^Class=container$/m);
  assert.match(show.stdout, /^State=running$/m);
  const gone = await machinectl(['status', 'nope']);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /No machine 'nope' known/);

  const k = await makeContainer({ hostNetwork: true });
  await callMgr('RegisterMachine', 'sayssus', registerArgs('kill-me', k.pid));
  const kill = await machinectl(['kill', '--kill-whom=leader', '--signal=SIGKILL', 'kill-me']);
  assert.equal(kill.code, 0, kill.stderr);
  await waitFor('kill-me to go', async () => (!(await machinectl(['list'])).stdout.includes('kill-me') ? true : undefined));
  await k.remove();
  const t = await makeContainer({ hostNetwork: true });
  await callMgr('RegisterMachine', 'sayssus', registerArgs('term-me', t.pid));
  const term = await machinectl(['terminate', 'term-me']);
  assert.equal(term.code, 0, term.stderr);
  await waitFor('term-me to go', async () => (!(await machinectl(['list'])).stdout.includes('term-me') ? true : undefined));
  await t.remove();
});

test('the bus killed and started again: the daemon reconnects and serves', async () => {
  await bus.stop();
  await sleep(300);
  assert.equal(daemon.proc.exitCode, null, 'the daemon goes on without the bus');
  await bus.start();
  await waitFor(
    'the daemon back on the bus',
    async () => ((await busctl(['call', DEST, MGR_PATH, MGR, 'GetMachine', 's', 'web-1'])).code === 0 ? true : undefined),
    10_000,
  );
  client.close();
  client = await busClient(bus);
  assert.deepEqual(await callMgr('GetMachine', 's', ['web-1']), ['/org/freedesktop/machine1/machine/web_2d1']);
  assert.match(daemon.output(), /lost the D-Bus connection/);
});
