// A per-user registry: `mymachinesd --user` run as an unprivileged user (setpriv), as systemd-machined
// --user runs per user (258+): its sockets and state under that user's $XDG_RUNTIME_DIR where 262's clients
// look, its machines registered without root (a VM as vmspawn --user registers one, with systemd 262's
// varlinkctl; one of ours with its addresses), resolved for that user (our NSS module, systemd-ssh-proxy
// 262 for `ssh machine/NAME`), and not host-wide: the system registry (a root daemon beside it) neither
// lists nor resolves them. Other users cannot reach the user's sockets; root can. On D-Bus (a bus of the
// test's own, open to all, as the user's session bus), the user changes their machines too, others cannot.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CTL, DAEMON, startDaemon, type Daemon } from './helpers/daemon.js';
import { startBus, type Bus } from './helpers/dbus.js';
import { makeNssEnv, type NssEnv } from './helpers/nss-env.js';
import { eachStep, run, waitFor, type RunResult } from './helpers/run.js';
import { enterSidRoot, type SidWorld } from './helpers/sid-root.js';
import { processPidfdId } from '../src/registry/linux/leader.js';

const USER = 4242;
const OTHER = 65534;
/** The user's runtime directory as 262's clients in the sid world see it. */
const XDG = `/run/user/${USER}`;

let dir: string;
let rt: string;
let user: ChildProcess;
let userOut = '';
let system: Daemon;
let world: SidWorld;
let nss: NssEnv;
let bus: Bus;
const leaders: ChildProcess[] = [];

const as = (uid: number) => ['setpriv', '--reuid', String(uid), '--regid', String(uid), '--clear-groups'];
/** A process of the user's (a VM's stand-in). */
function userLeader(): ChildProcess {
  const p = spawn(as(USER)[0], [...as(USER).slice(1), 'sleep', '600'], { stdio: 'ignore' });
  leaders.push(p);
  return p;
}
const ctlAs = (uid: number, args: string[]) => run(as(uid)[0], [...as(uid).slice(1), process.execPath, CTL, ...args]);
const ourSocket = () => join(rt, 'mymachines/io.systemd.Machine');
const varlinkctl = (uid: number, args: string[], env: Record<string, string> = {}) => world.run([...as(uid), 'varlinkctl', '--json=short', ...args], { env });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-user-'));
  chmodSync(dir, 0o755);
  // The user's runtime directory, theirs alone, as pam_systemd makes it.
  rt = join(dir, 'rt');
  mkdirSync(rt, { mode: 0o700 });
  chownSync(rt, USER, USER);
  bus = await startBus(join(dir, 'bus'), { policy: 'open', extraUsers: [USER] });
  user = spawn(as(USER)[0], [...as(USER).slice(1), process.execPath, DAEMON, '--user', '--bus', bus.address, '--log-level', 'debug'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, XDG_RUNTIME_DIR: rt },
  });
  user.stdout!.on('data', (b) => (userOut += b));
  user.stderr!.on('data', (b) => (userOut += b));
  await waitFor('the user daemon', () => {
    if (user.exitCode !== null) throw new Error(`mymachinesd --user exited with ${user.exitCode}: ${userOut}`);
    return userOut.includes('"msg":"ready"') && userOut.includes('serving on D-Bus') ? true : undefined;
  }, 15_000);
  // The system registry beside it, for the host-wide view.
  system = await startDaemon();
  world = await enterSidRoot({ binds: [[rt, XDG], [system.machineDir, '/run/systemd/machine']] });
  nss = makeNssEnv({ socket: system.socket });
});

after(async () => {
  // Each step whatever the others did.
  const steps = [
    () => nss?.close(),
    () => world?.close(),
    () => leaders.forEach((l) => l.kill('SIGKILL')),
    () => user && user.exitCode === null && new Promise((r) => (user.once('exit', r), user.kill('SIGTERM'))),
    () => system?.stop(),
    () => system?.cleanup(),
    () => bus?.stop(),
    () => dir && rmSync(dir, { recursive: true, force: true }),
  ];
  await eachStep(steps);
});

test('run as the user: sockets and state under $XDG_RUNTIME_DIR where machined 262 --user has them, the user\'s alone', () => {
  const mode = (p: string) => statSync(p).mode & 0o777;
  for (const socket of ['systemd/machine/io.systemd.Machine', 'mymachines/io.systemd.Machine']) {
    const st = statSync(join(rt, socket));
    assert.deepEqual([st.isSocket(), st.uid, mode(join(rt, socket))], [true, USER, 0o600], socket);
  }
  assert.equal(statSync(join(rt, 'systemd/machines')).uid, USER);
  // Per user there is no userdb or resolve hook socket (machined serves those for the system only).
  assert.deepEqual(readdirSync(rt).sort(), ['mymachines', 'systemd']);
  assert.deepEqual(readdirSync(join(rt, 'systemd')).sort(), ['machine', 'machines']);
  assert.match(userOut, /"user":true/);
});

test('a VM registered by the user as vmspawn --user registers it (varlinkctl 262), without root; no .host', async () => {
  const qemu = userLeader();
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '');
  const register = {
    name: 'uvm', id: '4c1f0e2d3b5a49688776655443322110', service: 'systemd-vmspawn', class: 'vm', vSockCid: 4712, sshAddress: 'vsock/4712',
    sshPrivateKeyPath: `${XDG}/systemd/vmspawn/machine-uvm-ed25519`, allocateUnit: true, leaderProcessId: { pid: qemu.pid, pidfdId: processPidfdId(qemu.pid!), bootId },
  };
  const socket = `${XDG}/systemd/machine/io.systemd.Machine`;
  const r = await varlinkctl(USER, ['call', socket, 'io.systemd.Machine.Register', JSON.stringify(register)]);
  assert.deepEqual([r.code, r.stdout, r.stderr], [0, '{}\n', '']);
  const list = await varlinkctl(USER, ['call', '--more', socket, 'io.systemd.Machine.List', '{}']);
  const machines = list.stdout.split(/[\n\x1e]/).filter(Boolean).map((l) => JSON.parse(l));
  assert.deepEqual(machines.map((m) => [m.name, m.class, m.UID, m.vSockCid, m.leader.pid]), [['uvm', 'vm', USER, 4712, qemu.pid]]);
  // No scope was made (the user may make no cgroups): the leader is where it was.
  assert.equal(machines[0].unit, undefined);
  // Its state file, machined's format, in the user's state directory.
  assert.match(readFileSync(join(rt, 'systemd/machines/uvm'), 'utf8'), new RegExp(`^NAME=uvm\\nUID=${USER}\\n`, 'm'));
});

test('on D-Bus the user changes their own registry as over Varlink; other users may read, not change', async () => {
  const l = userLeader();
  const busctl = (uid: number, args: string[]) => run(as(uid)[0], [...as(uid).slice(1), 'busctl', `--address=${bus.address}`, ...args]);
  const mgr = ['org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager'];
  const reg = await busctl(USER, ['call', ...mgr, 'RegisterMachine', 'sayssus', 'ubus', '0', 'test', 'vm', String(l.pid), '']);
  assert.deepEqual([reg.code, reg.stdout, reg.stderr], [0, 'o "/org/freedesktop/machine1/machine/ubus"\n', '']);
  // dbus-send, which prints an error's message as it is (busctl says only "Access denied" for that name).
  const dbusSend = (uid: number, path: string, method: string, args: string[]) =>
    run(as(uid)[0], [...as(uid).slice(1), 'dbus-send', `--bus=${bus.address}`, '--print-reply', '--dest=org.freedesktop.machine1', path, method, ...args]);
  const other = await dbusSend(OTHER, '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager.UnregisterMachine', ['string:ubus']);
  assert.deepEqual([other.code, other.stderr], [1, `Error org.freedesktop.DBus.Error.AccessDenied: Access denied: only root and UID ${USER} may change machines.\n`]);
  const logging = await dbusSend(OTHER, '/org/freedesktop/LogControl1', 'org.freedesktop.DBus.Properties.Set', ['string:org.freedesktop.LogControl1', 'string:LogLevel', 'variant:string:debug']);
  assert.deepEqual([logging.code, logging.stderr], [1, `Error org.freedesktop.DBus.Error.AccessDenied: Access denied: only root and UID ${USER} may change logging.\n`]);
  assert.deepEqual(await busctl(OTHER, ['call', ...mgr, 'GetMachine', 's', 'ubus']), { code: 0, signal: null, stdout: 'o "/org/freedesktop/machine1/machine/ubus"\n', stderr: '' });
  const un = await busctl(USER, ['call', ...mgr, 'UnregisterMachine', 's', 'ubus']);
  assert.deepEqual([un.code, un.stderr], [0, '']);
  assert.equal((await busctl(USER, ['call', ...mgr, 'GetMachine', 's', 'ubus'])).code, 1);
});

test('resolved for the user: our NSS module on the user\'s socket, ssh machine/NAME through systemd-ssh-proxy 262', async () => {
  const l = userLeader();
  const reg = await ctlAs(USER, ['--socket', ourSocket(), 'register', 'uvm2', '--class', 'vm', '--leader', String(l.pid), '--address', '10.77.210.5']);
  assert.deepEqual([reg.code, reg.stderr], [0, '']);
  const getent = (socket: string) => nss.run(as(USER)[0], [...as(USER).slice(1), 'getent', 'hosts', 'uvm2'], { env: { MYMACHINES_SOCKET: socket } });
  assert.deepEqual(await getent(ourSocket()), { code: 0, signal: null, stdout: '10.77.210.5     uvm2\n', stderr: '' });
  // ssh machine/uvm: the proxy asks the user's registry first (XDG_RUNTIME_DIR), finds the CID; no VM listens.
  const proxy = await world.run([...as(USER), '/usr/lib/systemd/systemd-ssh-proxy', 'machine/uvm', '22'], { env: { XDG_RUNTIME_DIR: XDG } });
  assert.equal(proxy.code, 1);
  assert.match(proxy.stderr, /^Failed to connect to vsock:4712:22: /m);
  // A system machine: the user's registry knows none (NoSuchMachine), so the proxy asks the system's.
  const sys = spawn('sleep', ['600'], { stdio: 'ignore' });
  leaders.push(sys);
  const sysReg = await world.run(['varlinkctl', 'call', '/run/systemd/machine/io.systemd.Machine', 'io.systemd.Machine.Register', JSON.stringify({ name: 'sysvm', class: 'vm', leader: sys.pid, vSockCid: 4713 })]);
  assert.equal(sysReg.code, 0, sysReg.stderr);
  const proxySys = await world.run([...as(USER), '/usr/lib/systemd/systemd-ssh-proxy', 'machine/sysvm', '22'], { env: { XDG_RUNTIME_DIR: XDG } });
  assert.match(proxySys.stderr, /^Failed to connect to vsock:4713:22: /m);
});

test('not host-wide: the system registry neither lists nor resolves the user\'s machines (as machined\'s)', async () => {
  const list = await system.ctl(['list', '--json']);
  assert.deepEqual(JSON.parse(list.stdout).map((m: { name: string }) => m.name), ['sysvm']);
  const r: RunResult = await nss.run('getent', ['hosts', 'uvm2']);
  assert.deepEqual([r.code, r.stdout], [2, '']);
});

test('only the user and root may change it; other users cannot even reach its sockets', async () => {
  const l = userLeader();
  const other = await ctlAs(OTHER, ['--socket', ourSocket(), 'list']);
  assert.deepEqual([other.code, other.stderr], [1, `mymachinesctl: cannot reach mymachinesd at ${ourSocket()}: permission denied\n`]);
  const otherVl = await varlinkctl(OTHER, ['call', `${XDG}/systemd/machine/io.systemd.Machine`, 'io.systemd.Machine.List', '{"name":"uvm"}']);
  assert.equal(otherVl.code, 1);
  // Root may: it registers and unregisters for the user.
  const reg = await run(process.execPath, [CTL, '--socket', ourSocket(), 'register', 'byroot', '--class', 'vm', '--leader', String(l.pid)]);
  assert.deepEqual([reg.code, reg.stderr], [0, '']);
  const list = await ctlAs(USER, ['--socket', ourSocket(), 'list', '--json']);
  assert.deepEqual(JSON.parse(list.stdout).map((m: { name: string }) => m.name), ['byroot', 'uvm', 'uvm2']);
  assert.equal((await ctlAs(USER, ['--socket', ourSocket(), 'unregister', 'byroot'])).code, 0);
  assert.equal(existsSync(join(rt, 'systemd/machines/byroot')), false);
});

test('the user\'s machines go with their leaders; --user needs XDG_RUNTIME_DIR', async () => {
  for (const l of leaders) l.kill('SIGKILL');
  await waitFor('the user\'s machines gone', async () => {
    const r = await ctlAs(USER, ['--socket', ourSocket(), 'list', '--json']);
    return r.code === 0 && JSON.parse(r.stdout).length === 0 ? true : undefined;
  });
  const empty = await ctlAs(USER, ['--socket', ourSocket(), 'list']);
  assert.deepEqual([empty.code, empty.stdout], [0, '0 machines listed.\n']);
  assert.deepEqual(readdirSync(join(rt, 'systemd/machines')), []);
  const r = await run(DAEMON, ['--user', '--bus', 'none'], { env: { PATH: process.env.PATH } });
  assert.deepEqual([r.code, r.stderr], [2, "mymachinesd: --user needs $XDG_RUNTIME_DIR, the absolute path of the user's runtime directory (e.g. /run/user/1000)\nTry 'mymachinesd --help'.\n"]);
});
