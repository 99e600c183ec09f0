// org.freedesktop.machine1 on a private system bus, driven by systemd's own clients (busctl, machinectl,
// dbus-send) and by dbus-next where error names matter. Real containers (netns, veth, userns).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import dbus from 'dbus-next';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { run, sleep, waitFor } from './helpers/run.js';
import { type Bus, busClient, cgroupMounts, errorName, runInSystemdNs, startBus } from './helpers/dbus.js';

const DEST = 'org.freedesktop.machine1';

/** rmdir that says whether the directory is gone. */
function rmdirQuiet(path: string): boolean {
  try {
    rmdirSync(path);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}
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
let cg: Awaited<ReturnType<typeof cgroupMounts>>;

const busctl = (args: string[], opts: { uid?: number } = {}) =>
  opts.uid === undefined ? run('busctl', args, { env: bus.env }) : run('setpriv', ['--reuid', String(opts.uid), '--regid', String(opts.uid), '--clear-groups', 'busctl', ...args], { env: bus.env });
const callMgr = (member: string, sig = '', body: unknown[] = []) => client.call(MGR_PATH, MGR, member, sig, body);
const registerArgs = (name: string, leader: number, cls = 'container', id = Buffer.from(ID, 'hex')) => [name, id, 'test-svc', cls, leader, '/srv/' + name];
const machinectl = (args: string[]) => runInSystemdNs(bus, daemon.stateDir, ['machinectl', '--no-pager', ...args]);

before(async () => {
  cg = await cgroupMounts();
  dir = mkdtempSync(join(tmpdir(), 'mymachines-dbus-'));
  chmodSync(dir, 0o755);
  bus = await startBus(join(dir, 'bus'));
  daemon = await startDaemon({ bus: bus.address });
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

test('ListMachines has .host; the Manager properties; ListImages has the host image', async () => {
  const [machines] = await callMgr('ListMachines');
  assert.deepEqual(machines, [['.host', 'host', '', '/org/freedesktop/machine1/machine/_2ehost']]);
  const r = await busctl(['--json=short', 'get-property', DEST, MGR_PATH, MGR, 'PoolPath', 'PoolUsage', 'PoolLimit']);
  assert.equal(r.code, 0, r.stderr);
  const props = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(props[0], { type: 's', data: daemon.poolDir });
  assert.equal(props[2].type, 't');
  assert.deepEqual(await callMgr('ListImages'), [[['.host', 'directory', true, 0n, 0n, 0xffffffffffffffffn, '/org/freedesktop/machine1/image/_2ehost']]]);
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
    ['GetImage', 's', ['x'], 'org.freedesktop.machine1.NoSuchImage'],
    ['OpenMachineShell', 'sssasas', ['web-1', '', 'bin/sh', [], []], 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['CopyFromMachine', 'sss', ['web-1', '/a', '/b'], 'org.freedesktop.DBus.Error.FileNotFound'],
    ['CleanPool', 's', ['some'], 'org.freedesktop.DBus.Error.InvalidArgs'],
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

test('the self path and GetMachineByPID(0) are the machine of the calling process', async () => {
  // busctl run inside the machine's cgroup: machined finds a machine by the caller's unit.
  const c = await makeContainer({ hostNetwork: true });
  await callMgr('CreateMachine', 'sayssusa(sv)', ['selfie', Buffer.alloc(0), '', 'container', c.pid, '', []]);
  const procs = join(cg.v2, 'machine.slice/machine-selfie.scope/cgroup.procs');
  const inScope = (cmd: string) => run('sh', ['-c', `echo $$ > ${procs} && exec ${cmd}`], { env: bus.env });
  const r = await inScope(`busctl get-property ${DEST} /org/freedesktop/machine1/machine/self ${MACHINE} Name`);
  assert.equal(r.stdout.trim(), 's "selfie"', r.stderr);
  const byPid = await inScope(`busctl call ${DEST} ${MGR_PATH} ${MGR} GetMachineByPID u 0`);
  assert.equal(byPid.stdout.trim(), 'o "/org/freedesktop/machine1/machine/selfie"', byPid.stderr);
  // From this process, in no machine: PID 0 is this process's PID.
  const e = await callMgr('GetMachineByPID', 'u', [0]).catch((x) => x);
  assert.equal(e.type, 'org.freedesktop.machine1.NoMachineForPID');
  assert.equal(e.text, `PID ${process.pid} does not belong to any known machine`);
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

test('leader 0 is the caller; bad Kill arguments; Machine.GetOSRelease; PoolUsage and the timestamps are t', async () => {
  const [path] = await callMgr('RegisterMachine', 'sayssus', ['caller', Buffer.alloc(0), '', 'container', 0, '']);
  assert.equal(path, '/org/freedesktop/machine1/machine/caller');
  const [leader] = await client.call(path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [MACHINE, 'Leader']);
  assert.equal(leader.value, process.pid, 'leader 0 is the PID of the calling process');
  await callMgr('UnregisterMachine', 's', ['caller']);

  const webPath = '/org/freedesktop/machine1/machine/web_2d1';
  const invalid = async (p: Promise<unknown>, want: RegExp) => {
    const e = await p.then(
      () => undefined,
      (x) => x,
    );
    assert.ok(e, `refused: ${want}`);
    assert.equal(e.type, 'org.freedesktop.DBus.Error.InvalidArgs', e.text);
    assert.match(e.text, want);
  };
  await invalid(callMgr('KillMachine', 'ssi', ['web-1', 'all', 65]), /Invalid signal 65/);
  await invalid(callMgr('KillMachine', 'ssi', ['web-1', 'leader', -1]), /Invalid signal -1/);
  await invalid(callMgr('KillMachine', 'ssi', ['web-1', 'everyone', 15]), /Invalid whom 'everyone'/);
  await invalid(client.call(webPath, MACHINE, 'Kill', 'si', ['nobody', 15]), /Invalid whom 'nobody'/);
  await invalid(client.call(webPath, MACHINE, 'Kill', 'si', ['leader', 0]), /Invalid signal 0/);
  await invalid(client.call(webPath, MACHINE, 'Kill', 'si', ['all', 65]), /Invalid signal 65/);
  await invalid(client.call(webPath, MACHINE, 'Kill', 'i', [15]), /expecting 'si'/);
  // '' is all, as machined has it (SIGWINCH: the leader ignores it).
  await callMgr('KillMachine', 'ssi', ['web-1', '', 28]);
  assert.deepEqual(await callMgr('GetMachine', 's', ['web-1']), [webPath]);

  const [os] = await client.call(webPath, MACHINE, 'GetOSRelease');
  assert.equal(os.ID, 'debian');
  assert.deepEqual(Object.keys(os).sort(), Object.keys((await callMgr('GetMachineOSRelease', 's', ['web-1']))[0]).sort());

  const prop = async (p: string, iface: string, name: string) => JSON.parse((await busctl(['--json=short', 'get-property', DEST, p, iface, name])).stdout);
  assert.equal((await prop(MGR_PATH, MGR, 'PoolUsage')).type, 't');
  assert.equal((await prop(MGR_PATH, MGR, 'PoolLimit')).type, 't');
  const mono = await prop(webPath, MACHINE, 'TimestampMonotonic');
  assert.equal(mono.type, 't');
  assert.ok(mono.data > 0 && mono.data < Number(process.hrtime.bigint() / 1000n) + 1, `monotonic µs: ${mono.data}`);
  assert.equal((await prop(webPath, MACHINE, 'Timestamp')).type, 't');
});

test('LogControl1: LogTarget set', async () => {
  const path = '/org/freedesktop/LogControl1';
  const LC = 'org.freedesktop.LogControl1';
  const set = (value: unknown, type = 's') => client.call(path, 'org.freedesktop.DBus.Properties', 'Set', 'ssv', [LC, 'LogTarget', new dbus.Variant(type, value)]);
  await set('console');
  await set('auto');
  const journal = await set('journal').catch((x) => x);
  assert.equal(journal.type, 'org.freedesktop.DBus.Error.NotSupported');
  assert.match(journal.text, /Log target 'journal' is not supported/);
  const bogus = await set('bogus').catch((x) => x);
  assert.equal(bogus.type, 'org.freedesktop.DBus.Error.InvalidArgs');
  assert.match(bogus.text, /Invalid log target 'bogus'/);
  assert.equal(await errorName(set(3, 'i')), 'org.freedesktop.DBus.Error.InvalidArgs');
  const r = await busctl(['set-property', DEST, path, LC, 'LogTarget', 's', 'console']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await busctl(['get-property', DEST, path, LC, 'LogTarget'])).stdout.trim(), 's "console"');
});

test('the v252 methods of PTYs, copies, bind mounts and images are introspected with their signatures', async () => {
  // The error each gives for a source that does not exist or an image that is not there (null: the call
  // would pass a descriptor, which this client does not take; machine-shell.test.ts covers those).
  const noFile = 'org.freedesktop.DBus.Error.FileNotFound';
  const noImage = 'org.freedesktop.machine1.NoSuchImage';
  const manager: [string, string, string, unknown[], string | null][] = [
    ['GetImage', 's', 'o', ['x'], noImage],
    ['OpenMachinePTY', 's', 'hs', ['web-1'], null],
    ['OpenMachineLogin', 's', 'hs', ['web-1'], null],
    ['OpenMachineShell', 'sssasas', 'hs', ['web-1', '', '', [], []], null],
    ['BindMountMachine', 'sssbb', '', ['web-1', '/a', '/b', false, false], noFile],
    ['CopyFromMachine', 'sss', '', ['web-1', '/a', '/b'], noFile],
    ['CopyToMachine', 'sss', '', ['web-1', '/a', '/b'], noFile],
    ['CopyFromMachineWithFlags', 'ssst', '', ['web-1', '/a', '/b', 0n], noFile],
    ['CopyToMachineWithFlags', 'ssst', '', ['web-1', '/a', '/b', 1n], noFile],
    ['OpenMachineRootDirectory', 's', 'h', ['web-1'], null],
    ['RemoveImage', 's', '', ['x'], noImage],
    ['RenameImage', 'ss', '', ['x', 'y'], noImage],
    ['CloneImage', 'ssb', '', ['x', 'y', false], noImage],
    ['MarkImageReadOnly', 'sb', '', ['x', true], noImage],
    ['GetImageHostname', 's', 's', ['x'], noImage],
    ['GetImageMachineID', 's', 'ay', ['x'], noImage],
    ['GetImageMachineInfo', 's', 'a{ss}', ['x'], noImage],
    ['GetImageOSRelease', 's', 'a{ss}', ['x'], noImage],
    ['SetPoolLimit', 't', '', [1n], 'org.freedesktop.DBus.Error.NotSupported'],
    ['SetImageLimit', 'st', '', ['x', 1n], noImage],
    ['CleanPool', 's', 'a(st)', ['all'], 'no error'],
  ];
  const machine: [string, string, string, unknown[], string | null][] = [
    ['OpenPTY', '', 'hs', [], null],
    ['OpenLogin', '', 'hs', [], null],
    ['OpenShell', 'ssasas', 'hs', ['', '', [], []], null],
    ['BindMount', 'ssbb', '', ['/a', '/b', false, false], noFile],
    ['CopyFrom', 'ss', '', ['/a', '/b'], noFile],
    ['CopyTo', 'ss', '', ['/a', '/b'], noFile],
    ['CopyFromWithFlags', 'sst', '', ['/a', '/b', 0n], noFile],
    ['CopyToWithFlags', 'sst', '', ['/a', '/b', 0n], noFile],
    ['OpenRootDirectory', '', 'h', [], null],
  ];
  for (const [path, iface, methods] of [
    [MGR_PATH, MGR, manager],
    ['/org/freedesktop/machine1/machine/web_2d1', MACHINE, machine],
  ] as const) {
    const [xml] = await client.call(path, 'org.freedesktop.DBus.Introspectable', 'Introspect');
    const section = xml.slice(xml.indexOf(`<interface name="${iface}">`));
    for (const [member, sigIn, sigOut, args, want] of methods) {
      const m = new RegExp(`<method name="${member}">(.*?)</method>`).exec(section);
      assert.ok(m, `${member} introspected`);
      const sig = (dir: string) => [...m[1].matchAll(new RegExp(`<arg type="([^"]+)" name="[^"]*" direction="${dir}"/>`, 'g'))].map((a) => a[1]).join('');
      assert.equal(sig('in'), sigIn, `${member} in`);
      assert.equal(sig('out'), sigOut, `${member} out`);
      if (want !== null) assert.equal(await errorName(client.call(path, iface, member, sigIn, [...args])), want, member);
    }
  }
});

test('Kill all and Terminate reach processes in cgroups below the scope; the scope goes with them', async () => {
  for (const how of ['kill', 'terminate'] as const) {
    const name = `sub-${how}`;
    const c = await makeContainer({ hostNetwork: true });
    await callMgr('CreateMachine', 'sayssusa(sv)', [name, Buffer.alloc(0), '', 'container', c.pid, '', []]);
    // As a container's own systemd would: a cgroup below the scope, with a process in it.
    const scope = join(cg.v2, `machine.slice/machine-sub\\x2d${how}.scope`);
    mkdirSync(join(scope, 'payload/inner'), { recursive: true });
    const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', (_code, sig) => r(sig)));
    try {
      writeFileSync(join(scope, 'payload/inner/cgroup.procs'), `${child.pid}\n`);
      if (how === 'kill') await callMgr('KillMachine', 'ssi', [name, 'all', 9]);
      else await callMgr('TerminateMachine', 's', [name]);
      assert.equal(await exited, how === 'kill' ? 'SIGKILL' : 'SIGTERM');
      await waitFor(`${name} to go`, async () => ((await errorName(callMgr('GetMachine', 's', [name]))) === 'org.freedesktop.machine1.NoSuchMachine' ? true : undefined));
      await waitFor('the scope and the cgroups below it to be removed', () => (existsSync(scope) ? undefined : true));
    } finally {
      child.kill('SIGKILL');
      await c.remove();
    }
  }
});

test('a Create refused after the leader was moved puts the leader back where it was', async () => {
  const c = await makeContainer({ hostNetwork: true });
  // The leader starts in a cgroup of its own (in each hierarchy), to tell "back" from "anywhere".
  const origin = `mmtest-origin-${process.pid}`;
  const mounts = [cg.v2, cg.legacy].filter((m): m is string => m !== undefined);
  for (const m of mounts) {
    mkdirSync(join(m, origin));
    writeFileSync(join(m, origin, 'cgroup.procs'), `${c.pid}\n`);
  }
  const before = readFileSync(`/proc/${c.pid}/cgroup`, 'utf8');
  // Its state file cannot be written (a directory has its name): refused after the scope took the leader.
  mkdirSync(join(daemon.stateDir, 'refused', 'x'), { recursive: true });
  try {
    const e = await callMgr('CreateMachine', 'sayssusa(sv)', ['refused', Buffer.alloc(0), '', 'container', c.pid, '', []]).catch((x) => x);
    // A system error, named as sd-bus names an errno it has no D-Bus error for, with its message.
    assert.equal(e.type, 'System.Error.EISDIR', e.text);
    assert.equal(e.text, `Cannot write state file ${daemon.stateDir}/refused: illegal operation on a directory (EISDIR)`);
    assert.equal(readFileSync(`/proc/${c.pid}/cgroup`, 'utf8'), before);
    assert.deepEqual(readdirSync(daemon.stateDir).filter((f) => f.startsWith('.#')), [], 'no temporary state file left');
    for (const m of mounts) assert.ok(!existsSync(join(m, 'machine.slice/machine-refused.scope')), `no scope left in ${m}`);
    assert.equal(await errorName(callMgr('GetMachine', 's', ['refused'])), 'org.freedesktop.machine1.NoSuchMachine');
  } finally {
    rmSync(join(daemon.stateDir, 'refused'), { recursive: true, force: true });
    await c.remove();
    for (const m of mounts) await waitFor(`${origin} removed`, () => (rmdirQuiet(join(m, origin)) ? true : undefined));
  }
});

test('Create after Unregister: the same leader takes its scope over, another is refused while the scope holds processes, an empty one is reused', async () => {
  const c1 = await makeContainer({ hostNetwork: true });
  const c2 = await makeContainer({ hostNetwork: true });
  const c3 = await makeContainer({ hostNetwork: true });
  const create = (name: string, pid: number, props: unknown[] = []) => callMgr('CreateMachine', 'sayssusa(sv)', [name, Buffer.alloc(0), '', 'container', pid, '', props]);
  const cgroupOf = (pid: number) => /^0::(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))![1];
  const gone = (name: string) => waitFor(`${name} to go`, async () => ((await errorName(callMgr('GetMachine', 's', [name]))) === 'org.freedesktop.machine1.NoSuchMachine' ? true : undefined));
  const scope = join(cg.v2, 'machine.slice/machine-again.scope');
  try {
    await create('again', c1.pid);
    await callMgr('UnregisterMachine', 's', ['again']);
    assert.ok(existsSync(scope), 'Unregister leaves the processes in their scope');
    await create('again', c1.pid);
    assert.equal(cgroupOf(c1.pid), '/machine.slice/machine-again.scope');
    await callMgr('UnregisterMachine', 's', ['again']);

    const e = await create('again', c2.pid).catch((x) => x);
    assert.equal(e.type, 'org.freedesktop.machine1.MachineExists', e.text);
    assert.equal(e.text, `Scope machine-again.scope already exists and holds other processes (PID ${c1.pid})`);
    assert.equal(cgroupOf(c2.pid), '/', 'the refused leader stays where it was');

    // Once its processes are gone, the daemon removes the old scope; the name is free for c2.
    await c1.remove();
    await waitFor('the old scope to go', () => (existsSync(scope) ? undefined : true));
    await create('again', c2.pid);
    assert.equal(cgroupOf(c2.pid), '/machine.slice/machine-again.scope');

    // An empty scope left behind (as by a crash) is reused; scope properties that need systemd are named
    // in a warning, not refused.
    mkdirSync(join(cg.v2, 'machine.slice/machine-left.scope'));
    await create('left', c3.pid, [
      ['Delegate', new dbus.Variant('b', true)],
      ['DevicePolicy', new dbus.Variant('s', 'closed')],
      ['DeviceAllow', new dbus.Variant('a(ss)', [['/dev/net/tun', 'rwm']])],
    ]);
    assert.equal(cgroupOf(c3.pid), '/machine.slice/machine-left.scope');
    const warning = daemon
      .output()
      .split('\n')
      .filter((l) => l.includes('"machine":"left"') && l.includes('scope properties not applied'));
    assert.equal(warning.length, 1, daemon.output());
    assert.deepEqual(JSON.parse(warning[0]).properties, ['DevicePolicy', 'DeviceAllow']);
  } finally {
    await Promise.all([c1.remove(), c2.remove(), c3.remove()]);
  }
  await gone('again');
  await gone('left');
  await waitFor('the scopes to go', () => (existsSync(scope) || existsSync(join(cg.v2, 'machine.slice/machine-left.scope')) ? undefined : true));
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
