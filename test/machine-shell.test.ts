// machinectl shell, login, copy-to/copy-from and bind (systemd 252's, unchanged) against mymachinesd on a
// private system bus, into real containers without systemd: busybox roots in mount, UTS, IPC, network
// and (for one) user namespaces, and one that shares the host's root. Interactive shells through tmux.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeBusyboxRoot } from './helpers/busybox-root.js';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { type Bus, busClient, errorName, runInSystemdNs, startBus } from './helpers/dbus.js';
import { must, run, waitFor } from './helpers/run.js';
import { type Terminal, withMachinectlTerminal } from './helpers/terminal.js';

const MGR_PATH = '/org/freedesktop/machine1';
const MGR = 'org.freedesktop.machine1.Manager';
const SHIFT = 200000;

let dir: string;
let bus: Bus;
let daemon: Daemon;
let client: Awaited<ReturnType<typeof busClient>>;
let plain: Container; // busybox root, no user namespace
let userns: Container; // busybox root, user namespace 0 -> SHIFT
let hostRoot: Container; // the host's root, a network namespace only
let rootPlain: string;
let rootUserns: string;
const mounts: string[] = [];

// stdin from /dev/null: machinectl ends a session when its stdin (a pipe) reaches its end.
const machinectl = (args: string[], timeoutMs = 20_000) =>
  runInSystemdNs(bus, daemon.stateDir, ['sh', '-c', 'exec "$@" </dev/null', 'sh', 'machinectl', '--no-pager', '-q', ...args], { timeoutMs });

const inTerminal = (args: string[], body: (t: Terminal) => Promise<void>) => withMachinectlTerminal(bus, daemon.stateDir, dir, args, body);
const callMgr = (member: string, sig = '', body: unknown[] = []) => client.call(MGR_PATH, MGR, member, sig, body);

/** A devpts of the container's own, /dev/ptmx and /dev/null, as container managers give them. */
async function mountDev(root: string, owner = 0): Promise<void> {
  await must('mount', ['-t', 'devpts', '-o', `newinstance,ptmxmode=0666,mode=620,gid=${owner + 5}`, 'devpts', join(root, 'dev/pts')]);
  mounts.push(join(root, 'dev/pts'));
  symlinkSync('pts/ptmx', join(root, 'dev/ptmx'));
  writeFileSync(join(root, 'dev/null'), '');
  await must('mount', ['--bind', '/dev/null', join(root, 'dev/null')]);
  mounts.push(join(root, 'dev/null'));
  await must('mount', ['--rbind', '/proc', join(root, 'proc')]);
  mounts.push(join(root, 'proc'));
}

async function register(name: string, c: Container, root: string): Promise<void> {
  await callMgr('RegisterMachine', 'sayssus', [name, Buffer.alloc(16), 'test', 'container', c.pid, root]);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-shell-'));
  chmodSync(dir, 0o755);
  bus = await startBus(join(dir, 'bus'));
  daemon = await startDaemon({ bus: bus.address });
  client = await busClient(bus);
  rootPlain = makeBusyboxRoot(join(dir, 'plain'), { users: ['app:x:1000:1000:App:/home/app:/bin/sh'], groups: ['app:x:1000:', 'extra:x:2000:app'], files: { 'etc/marker': 'plain root\n' } });
  mkdirSync(join(rootPlain, 'home/app'));
  chmodSync(join(rootPlain, 'home/app'), 0o777);
  await mountDev(rootPlain);
  rootUserns = makeBusyboxRoot(join(dir, 'userns'), { files: { 'etc/marker': 'userns root\n' } });
  // The container's files belong to its own root, as a manager with a user namespace makes them.
  await must('chown', ['-R', '-h', `${SHIFT}:${SHIFT}`, rootUserns]);
  await mountDev(rootUserns, SHIFT);
  plain = await makeContainer({ root: rootPlain, ipv4: { host: '10.77.90.1', inside: '10.77.90.2' } });
  userns = await makeContainer({ root: rootUserns, idMap: [{ base: 0, shift: SHIFT, range: 65536 }] });
  hostRoot = await makeContainer({});
  // Created: its leader is moved into a scope cgroup of its own, where shells must go too.
  await callMgr('CreateMachine', 'sayssusa(sv)', ['bb1', Buffer.alloc(16), 'test', 'container', plain.pid, rootPlain, []]);
  await register('bb2', userns, rootUserns);
  await register('hostroot', hostRoot, '/');
});

after(async () => {
  // Whatever a failed test left running in the machines goes with them.
  for (const m of ['bb1', 'bb2', 'hostroot']) await client?.call(MGR_PATH, MGR, 'TerminateMachine', 's', [m]).catch(() => undefined);
  client?.close();
  await daemon?.stop();
  daemon?.cleanup();
  await bus?.stop();
  await removeAllContainers();
  for (const m of mounts.reverse()) await run('umount', ['-l', m]);
  rmSync(dir, { recursive: true, force: true });
});

test('machinectl shell runs a command in a container without systemd: its root, namespaces, cgroup, user', async () => {
  const r = await machinectl(['shell', 'bb1', '/bin/sh', '-c', 'cat /etc/marker; id -u; hostname; readlink /proc/self/ns/net; cat /proc/self/cgroup']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.replace(/\r/g, '').trim().split('\n');
  assert.equal(lines[0], 'plain root', "the container's root");
  assert.equal(lines[1], '0');
  assert.equal(lines[3], (await must('readlink', [`/proc/${plain.pid}/ns/net`])).trim(), "the leader's network namespace");
  const v2 = (text: string) => text.split('\n').find((l) => l.startsWith('0::'));
  assert.equal(v2(lines.slice(4).join('\n')), '0::/machine.slice/machine-bb1.scope', "the machine's cgroup");
  assert.equal(v2(readFileSync(`/proc/${plain.pid}/cgroup`, 'utf8')), '0::/machine.slice/machine-bb1.scope');
});

test('machinectl shell as a user of the container: its UID, groups, home and environment', async () => {
  const r = await machinectl(['shell', '--setenv=GREETING=hello', 'app@bb1', '/bin/sh', '-c', 'id -u; id -G; pwd; echo $HOME $USER $GREETING']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.replace(/\r/g, '').trim().split('\n'), ['1000', '1000 2000', '/home/app', '/home/app app hello']);
});

test('the program gets the PTY as 0, 1 and 2 and no other descriptor', async () => {
  const r = await machinectl(['shell', 'bb1', '/bin/ls', '/proc/self/fd']);
  assert.equal(r.code, 0, r.stderr);
  // 3 is ls's own, reading the directory.
  assert.deepEqual(r.stdout.replace(/\r/g, '').trim().split(/\s+/), ['0', '1', '2', '3']);
});

test('machinectl shell in a user-namespaced container: root inside is the shifted UID outside', async () => {
  const r = await machinectl(['shell', 'bb2', '/bin/sh', '-c', 'cat /etc/marker; id -u; cat /proc/self/uid_map; sleep 0.2; echo done']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.replace(/\r/g, '').trim().split('\n').map((l) => l.trim().replace(/\s+/g, ' '));
  assert.deepEqual(lines, ['userns root', '0', `0 ${SHIFT} 65536`, 'done']);
});

test('machinectl shell: output and the end of the program; the exit status is the daemon\'s to log', async () => {
  const r = await machinectl(['shell', 'bb1', '/bin/sh', '-c', 'echo hi; exit 3']);
  assert.equal(r.stdout.replace(/\r/g, ''), 'hi\n');
  // machinectl 252 ends with 0 whatever the program's status (as it does with machined): the status is
  // logged by the daemon, with the machine and the PTY.
  assert.equal(r.code, 0);
  await waitFor('the status in the log', () => (/"mode":"shell".*"status":3,.*"shell in machine ended"/.test(daemon.output()) ? true : undefined));
});

test('machinectl shell into a container that shares the host root', async () => {
  const r = await machinectl(['shell', 'hostroot', '/bin/sh', '-c', 'readlink /proc/self/ns/net']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.replace(/\r/g, '').trim(), (await must('readlink', [`/proc/${hostRoot.pid}/ns/net`])).trim());
});

test('machinectl shell root@bb1 is interactive through a real terminal (tmux)', async () => {
  await inTerminal(['shell', 'root@bb1'], async ({ screen, keys }) => {
    await waitFor('a prompt', async () => ((await screen()).includes('~ #') ? true : undefined), 10_000);
    await keys('echo "typed $((6*7))"; cat /etc/marker', 'Enter');
    await waitFor('the answer', async () => ((await screen()).includes('typed 42') ? true : undefined), 10_000);
    assert.match(await screen(), /typed 42\s+plain root/);
    await keys('exit', 'Enter');
    await waitFor('the session to end', async () => ((await screen()).includes('Connection to machine bb1 terminated') ? true : undefined), 10_000);
  });
});

test("machinectl login shows the container's getty prompt (busybox getty, started directly) and logs in", async () => {
  await inTerminal(['login', 'bb1'], async ({ screen, keys }) => {
    await waitFor('the login prompt', async () => ((await screen()).includes('login:') ? true : undefined), 10_000);
    await keys('root', 'Enter');
    await waitFor('a shell prompt', async () => ((await screen()).includes('~ #') ? true : undefined), 10_000);
    await keys('cat /etc/marker', 'Enter');
    await waitFor('the answer', async () => ((await screen()).includes('plain root') ? true : undefined), 10_000);
  });
});

test('OpenMachineShell refusals: no such user, no such program, relative path, bad environment, a VM, non-root', async () => {
  assert.equal(await errorName(callMgr('OpenMachineShell', 'sssasas', ['bb1', 'nobody-here', '/bin/sh', [], []])), 'org.freedesktop.DBus.Error.InvalidArgs');
  assert.equal(await errorName(callMgr('OpenMachineShell', 'sssasas', ['bb1', 'root', '/bin/nope', [], []])), 'org.freedesktop.DBus.Error.FileNotFound');
  assert.equal(await errorName(callMgr('OpenMachineShell', 'sssasas', ['bb1', 'root', 'bin/sh', [], []])), 'org.freedesktop.DBus.Error.InvalidArgs');
  assert.equal(await errorName(callMgr('OpenMachineShell', 'sssasas', ['bb1', 'root', '/bin/sh', [], ['NOEQUALS']])), 'org.freedesktop.DBus.Error.InvalidArgs');
  assert.equal(await errorName(callMgr('OpenMachinePTY', 's', ['nope'])), 'org.freedesktop.machine1.NoSuchMachine');
  const vm = await makeContainer({ hostNetwork: true });
  await callMgr('RegisterMachine', 'sayssus', ['vm1', Buffer.alloc(16), 'test', 'vm', vm.pid, '']);
  assert.equal(await errorName(callMgr('OpenMachinePTY', 's', ['vm1'])), 'org.freedesktop.DBus.Error.NotSupported');
  assert.equal(await errorName(callMgr('CopyToMachine', 'sss', ['vm1', '/etc/hostname', '/x'])), 'org.freedesktop.DBus.Error.NotSupported');
  const r = await run('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'busctl', 'call', 'org.freedesktop.machine1', MGR_PATH, MGR, 'OpenMachinePTY', 's', 'bb1'], { env: bus.env });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Access denied/);
  // Nothing of these left a helper behind.
  // The daemon's children only: other test files run helpers of their own meanwhile.
  assert.equal((await run('pgrep', ['-a', '-P', String(daemon.proc.pid), '-f', 'mymachines-enter pty '])).stdout, '');
});

test('machinectl copy-to and copy-from: trees, ownership mapped through the user namespace, --replace, errors', async () => {
  const src = join(dir, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'a.txt'), 'alpha\n');
  writeFileSync(join(src, 'sub/b.txt'), 'beta\n');
  symlinkSync('a.txt', join(src, 'link'));
  await must('chown', ['1000:1000', join(src, 'sub/b.txt')]);
  let r = await machinectl(['copy-to', 'bb2', src, '/tmp/copied']);
  assert.equal(r.code, 0, r.stderr);
  // Host root is the container's root (SHIFT outside); host UID 1000 is the container's 1000.
  assert.equal(statSync(join(rootUserns, 'tmp/copied/a.txt')).uid, SHIFT);
  assert.equal(statSync(join(rootUserns, 'tmp/copied/sub/b.txt')).uid, SHIFT + 1000);
  assert.equal(readFileSync(join(rootUserns, 'tmp/copied/sub/b.txt'), 'utf8'), 'beta\n');
  assert.equal(lstatSync(join(rootUserns, 'tmp/copied/link')).isSymbolicLink(), true);
  // Again without --replace: the destination exists; nothing changes.
  r = await machinectl(['copy-to', 'bb2', src, '/tmp/copied']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /File exists/);
  writeFileSync(join(src, 'a.txt'), 'alpha 2\n');
  r = await machinectl(['copy-to', '--force', 'bb2', src, '/tmp/copied']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(rootUserns, 'tmp/copied/a.txt'), 'utf8'), 'alpha 2\n');
  // Back out: the container's IDs as the container sees them.
  r = await machinectl(['copy-from', 'bb2', '/tmp/copied', join(dir, 'back')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(join(dir, 'back/a.txt')).uid, 0);
  assert.equal(statSync(join(dir, 'back/sub/b.txt')).uid, 1000);
  // An absolute symlink in the container resolves inside the container, never on the host.
  symlinkSync('/etc', join(rootUserns, 'tmp/etc-link'));
  r = await machinectl(['copy-from', 'bb2', '/tmp/etc-link/marker', join(dir, 'marker')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(dir, 'marker'), 'utf8'), 'userns root\n');
  for (const [args, name] of [
    [['bb2', '/tmp/../etc/passwd', '/tmp/x'], 'org.freedesktop.DBus.Error.InvalidArgs'],
    [['bb2', 'relative', '/tmp/x'], 'org.freedesktop.DBus.Error.InvalidArgs'],
    [['bb2', '/no/such/file', join(dir, 'nothing')], 'org.freedesktop.DBus.Error.FileNotFound'],
  ] as [string[], string][]) assert.equal(await errorName(callMgr('CopyFromMachine', 'sss', args)), name, args.join(' '));
  assert.equal(existsSync(join(dir, 'nothing')), false);
  assert.equal(await errorName(callMgr('CopyToMachineWithFlags', 'ssst', ['bb2', src, '/tmp/y', 2n])), 'org.freedesktop.DBus.Error.InvalidArgs');
});

test('a copy onto a full disk fails with ENOSPC and leaves nothing behind', async () => {
  const small = join(rootPlain, 'small');
  mkdirSync(small);
  // In the container's mount namespace: it goes with the container.
  await must('nsenter', ['-t', String(plain.pid), '-m', '-r', '--', '/bin/busybox', 'mount', '-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', '/small']);
  const big = join(dir, 'big');
  writeFileSync(big, Buffer.alloc(1024 * 1024, 1));
  const r = await machinectl(['copy-to', 'bb1', big, '/small/big']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /No space left on device/);
  assert.equal((await must('nsenter', ['-t', String(plain.pid), '-m', '-r', '--', '/bin/busybox', 'ls', '-A', '/small'])).trim(), '', 'no temporary file left');
});

test('machinectl bind: a host directory into a running container, read-only, --mkdir', async () => {
  const shared = join(dir, 'shared');
  mkdirSync(shared);
  writeFileSync(join(shared, 'hello'), 'from the host\n');
  let r = await machinectl(['bind', '--mkdir', 'bb2', shared, '/mnt/shared']);
  assert.equal(r.code, 0, r.stderr);
  r = await machinectl(['shell', 'bb2', '/bin/cat', '/mnt/shared/hello']);
  assert.equal(r.stdout.replace(/\r/g, ''), 'from the host\n');
  r = await machinectl(['bind', '--read-only', '--mkdir', 'bb1', shared, '/mnt/ro']);
  assert.equal(r.code, 0, r.stderr);
  r = await machinectl(['shell', 'bb1', '/bin/sh', '-c', 'cat /mnt/ro/hello; touch /mnt/ro/new 2>&1; echo $?']);
  assert.match(r.stdout.replace(/\r/g, ''), /^from the host\n.*Read-only file system\n1\n$/s);
  // Not in the host's mount table: the mount is the container's alone.
  assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes('/mnt/ro'), false);
  r = await machinectl(['bind', 'bb1', shared, '/mnt/missing']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /No such file or directory/);
  assert.equal(await errorName(callMgr('BindMountMachine', 'sssbb', ['bb1', 'rel', '/x', false, false])), 'org.freedesktop.DBus.Error.InvalidArgs');
});
