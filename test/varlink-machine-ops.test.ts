// io.systemd.Machine's Open, BindMount, CopyFrom, CopyTo and OpenRootDirectory as machined 262 defines
// them (src/registry/varlink-machine.ts on src/registry/varlink-machine-ops.ts), served here by a Varlink
// server of the test's, over a real registry and busybox containers: PTYs and root directories come back
// as descriptors with the reply.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, fstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeBusyboxRoot } from './helpers/busybox-root.js';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { must, run } from './helpers/run.js';
import { MachineOperations } from '../src/registry/machine-ops.js';
import { Registry } from '../src/registry/registry.js';
import { machineHandlers, machineInterface } from '../src/registry/varlink-machine.js';
import { varlinkOperations } from '../src/registry/varlink-machine-ops.js';
import { VarlinkClient } from '../src/varlink/client.js';
import { VarlinkServer } from '../src/varlink/server.js';

const quiet = { info() {}, warn() {}, debug() {}, error() {} } as never;
let dir: string;
let root: string;
let reg: Registry;
let server: VarlinkServer;
let socket: string;
let c: VarlinkClient;
let ct: Container;
const mounts: string[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-vops-'));
  chmodSync(dir, 0o755);
  root = makeBusyboxRoot(join(dir, 'root'), { files: { 'etc/marker': 'varlink root\n' } });
  await must('mount', ['-t', 'devpts', '-o', 'newinstance,ptmxmode=0666', 'devpts', join(root, 'dev/pts')]);
  mounts.push(join(root, 'dev/pts'));
  symlinkSync('pts/ptmx', join(root, 'dev/ptmx'));
  ct = await makeContainer({ root, hostNetwork: true });
  mkdirSync(join(dir, 'state'));
  reg = new Registry({ stateDir: join(dir, 'state'), log: quiet });
  await reg.start();
  await reg.register({ name: 'v1', class: 'container', leader: ct.pid, rootDirectory: root });
  server = new VarlinkServer({ vendor: 'test', product: 'test', version: '1', url: '' });
  server.addInterface(machineInterface, machineHandlers(reg, { operations: varlinkOperations(new MachineOperations(reg, quiet)) }));
  socket = join(dir, 'io.systemd.Machine');
  await server.listen(socket);
  c = await VarlinkClient.connect(socket, { acceptFds: true });
});

after(async () => {
  await c?.close();
  await server?.close();
  await reg?.stop();
  await removeAllContainers();
  for (const m of mounts.reverse()) await run('umount', ['-l', m]);
  rmSync(dir, { recursive: true, force: true });
});

const M = 'io.systemd.Machine';
const errorOf = (method: string, params: object) => c.call(`${M}.${method}`, params).then(() => 'no error', (e) => e.name as string);

test('Open mode tty: the PTY master with the reply, its path inside the container', async () => {
  const r = await c.callWithFds(`${M}.Open`, { name: 'v1', mode: 'tty' });
  assert.deepEqual(Object.keys(r.parameters).sort(), ['ptyFileDescriptor', 'ptyPath']);
  assert.equal(r.parameters.ptyFileDescriptor, 0);
  assert.match(r.parameters.ptyPath, /^\/dev\/pts\/\d+$/);
  assert.equal(r.fds.length, 1);
  // The slave is in the container's own devpts.
  assert.equal(statSync(join(root, r.parameters.ptyPath)).isCharacterDevice(), true);
  assert.equal(fstatSync(r.fds[0]).isCharacterDevice(), true);
  closeSync(r.fds[0]);
});

test('Open mode shell: the program runs on the PTY; its output is read from the master', async () => {
  const r = await c.callWithFds(`${M}.Open`, { name: 'v1', mode: 'shell', user: 'root', path: '/bin/sh', args: ['sh', '-c', 'cat /etc/marker'], environment: ['TERM=dumb'] });
  const fd = r.fds[0];
  // Read the master from a child (cat), until the program hangs up.
  const reader = spawn('cat', [], { stdio: [fd, 'pipe', 'ignore'] });
  let text = '';
  reader.stdout!.on('data', (d) => (text += d));
  closeSync(fd);
  await new Promise((res) => reader.once('exit', res));
  assert.equal(text.replace(/\r/g, ''), 'varlink root\n');
});

test('OpenRootDirectory: a descriptor of the container\'s root', async () => {
  const r = await c.callWithFds(`${M}.OpenRootDirectory`, { name: 'v1' });
  assert.deepEqual(r.parameters, { fileDescriptor: 0 });
  assert.deepEqual(readdirSync(`/proc/self/fd/${r.fds[0]}`).includes('bin'), true);
  assert.equal(readFileSync(`/proc/self/fd/${r.fds[0]}/etc/marker`, 'utf8'), 'varlink root\n');
  closeSync(r.fds[0]);
});

test('CopyTo, CopyFrom, BindMount by name and by PID', async () => {
  writeFileSync(join(dir, 'in.txt'), 'copied in\n');
  assert.equal(await errorOf('CopyTo', { name: 'v1', source: join(dir, 'in.txt'), destination: '/tmp/in.txt' }), 'no error');
  assert.equal(readFileSync(join(root, 'tmp/in.txt'), 'utf8'), 'copied in\n');
  assert.equal(await errorOf('CopyTo', { name: 'v1', source: join(dir, 'in.txt'), destination: '/tmp/in.txt' }), 'io.systemd.System');
  assert.equal(await errorOf('CopyTo', { name: 'v1', source: join(dir, 'in.txt'), destination: '/tmp/in.txt', replace: true }), 'no error');
  assert.equal(await errorOf('CopyFrom', { pid: { pid: ct.pid }, source: '/etc/marker', destination: join(dir, 'marker') }), 'no error');
  assert.equal(readFileSync(join(dir, 'marker'), 'utf8'), 'varlink root\n');
  mkdirSync(join(dir, 'share'));
  writeFileSync(join(dir, 'share/x'), 'shared\n');
  assert.equal(await errorOf('BindMount', { name: 'v1', source: join(dir, 'share'), destination: '/mnt/share', mkdir: true, readOnly: true }), 'no error');
  const r = await c.callWithFds(`${M}.OpenRootDirectory`, { name: 'v1' });
  assert.equal(readFileSync(`/proc/self/fd/${r.fds[0]}/mnt/share/x`, 'utf8'), 'shared\n');
  closeSync(r.fds[0]);
});

test("errors as machined 262's: NoSuchMachine (also for a call that names no machine), NotSupported, NoSuchUser, InvalidParameter, PermissionDenied", async () => {
  assert.equal(await errorOf('Open', { name: 'nope', mode: 'tty' }), 'io.systemd.Machine.NoSuchMachine');
  assert.equal(await errorOf('Open', { name: 'v1', mode: 'tty', user: 'root' }), 'org.varlink.service.InvalidParameter');
  assert.equal(await errorOf('Open', { name: 'v1', mode: 'shell', user: 'ghost', path: '/bin/sh' }), 'io.systemd.Machine.NoSuchUser');
  assert.equal(await errorOf('Open', { name: 'v1', mode: 'bogus' }), 'org.varlink.service.InvalidParameter');
  assert.equal(await errorOf('CopyFrom', { name: 'v1', source: 'relative' }), 'org.varlink.service.InvalidParameter');
  assert.equal(await errorOf('OpenRootDirectory', {}), 'io.systemd.Machine.NoSuchMachine');
  const vm = await makeContainer({ hostNetwork: true });
  await reg.register({ name: 'vm1', class: 'vm', leader: vm.pid });
  assert.equal(await errorOf('Open', { name: 'vm1', mode: 'tty' }), 'io.systemd.Machine.NotSupported');
  assert.equal(await errorOf('OpenRootDirectory', { name: 'vm1' }), 'io.systemd.Machine.NotSupported');
  // Not root: refused, after the machine is found.
  const script = `const { VarlinkClient } = await import('${join(process.cwd(), 'dist/src/varlink/client.js')}');
    const c = await VarlinkClient.connect('${socket}');
    for (const p of [{ name: 'v1', mode: 'tty' }, { name: 'nope', mode: 'tty' }]) console.log(await c.call('${M}.Open', p).then(() => 'ok', (e) => e.name));
    c.close();`;
  chmodSync(dir, 0o755);
  const out = await must('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script]);
  assert.deepEqual(out.trim().split('\n'), ['org.varlink.service.PermissionDenied', 'io.systemd.Machine.NoSuchMachine']);
});

test('mymachines-enter under valgrind: no memory errors or leaks in pty, shell, copies and bind mounts', async () => {
  const logs = join(dir, 'valgrind');
  mkdirSync(logs);
  const wrapper = join(dir, 'enter-valgrind');
  writeFileSync(wrapper, `#!/bin/sh\nexec 9>>${logs}/vg.$$\nexec valgrind -q --vgdb=no --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --log-fd=9 ${join(process.cwd(), 'helper/build/mymachines-enter')} "$@"\n`, { mode: 0o755 });
  process.env.MYMACHINES_ENTER = wrapper;
  const results: string[] = [];
  try {
    const tty = await c.callWithFds(`${M}.Open`, { name: 'v1', mode: 'tty' });
    closeSync(tty.fds[0]);
    const sh = await c.callWithFds(`${M}.Open`, { name: 'v1', mode: 'shell', path: '/bin/true' });
    closeSync(sh.fds[0]);
    writeFileSync(join(dir, 'vg.txt'), 'valgrind\n');
    results.push(await errorOf('CopyTo', { name: 'v1', source: join(dir, 'vg.txt'), destination: '/tmp/vg.txt' }));
    results.push(await errorOf('CopyFrom', { name: 'v1', source: '/bin', destination: join(dir, 'vg-bin') }));
    results.push(await errorOf('CopyTo', { name: 'v1', source: join(dir, 'vg.txt'), destination: '/tmp/vg.txt' }));
    // Not BindMount: valgrind 3.19 knows neither open_tree nor move_mount (ENOSYS under it).
    results.push(await c.call(`${M}.BindMount`, { name: 'v1', source: join(dir, 'share'), destination: '/mnt/vg', mkdir: true }).then(() => 'no error', (e) => String(e.parameters?.errnoName)));
    results.push(await errorOf('Open', { name: 'v1', mode: 'shell', user: 'ghost', path: '/bin/sh' }));
  } finally {
    delete process.env.MYMACHINES_ENTER;
  }
  const found = readdirSync(logs);
  // Errors and leaks are "==PID==" lines; "--PID-- WARNING: unhandled syscall 434" is valgrind not
  // knowing pidfd_open, which the helper then does without.
  for (const f of found) assert.deepEqual(readFileSync(join(logs, f), 'utf8').split('\n').filter((l) => /^==\d+==/.test(l)), [], `valgrind log ${f}`);
  assert.deepEqual(results, ['no error', 'no error', 'io.systemd.System', 'ENOSYS', 'io.systemd.Machine.NoSuchUser']);
  assert.ok(found.length >= 7, `valgrind ran ${found.length} times`);
});
