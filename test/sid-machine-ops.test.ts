// systemd 262's machinectl, unchanged, against mymachinesd: shell, copy-to, copy-from and bind into a
// busybox container without systemd, and the image verbs (list-images, image-status, clone, read-only,
// rename, remove). It runs in the sid root with our bus, state files and io.systemd.MachineImage bound in.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeBusyboxRoot } from './helpers/busybox-root.js';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { must, run } from './helpers/run.js';
import { enterSidRoot, type SidWorld } from './helpers/sid-root.js';

let dir: string;
let world: SidWorld;
let d: Daemon;
let ct: Container;
let root: string;
let pool: string;
const mounts: string[] = [];

// stdin from /dev/null: machinectl ends a session when its stdin (a pipe) reaches its end.
const machinectl = (args: string[]) => world.run(['sh', '-c', 'exec "$@" </dev/null', 'sh', 'machinectl', '--no-pager', ...args], { timeoutMs: 20_000 });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-sid-ops-'));
  chmodSync(dir, 0o755);
  root = makeBusyboxRoot(join(dir, 'root'), { users: ['app:x:1000:1000:App:/:/bin/sh'], files: { 'etc/marker': 'sid test root\n' } });
  await must('mount', ['-t', 'devpts', '-o', 'newinstance,ptmxmode=0666', 'devpts', join(root, 'dev/pts')]);
  mounts.push(join(root, 'dev/pts'));
  symlinkSync('pts/ptmx', join(root, 'dev/ptmx'));
  await must('mount', ['--rbind', '/proc', join(root, 'proc')]);
  mounts.push(join(root, 'proc'));
  const daemonDir = join(dir, 'daemon');
  for (const x of ['machines', 'userdb', 'machine']) mkdirSync(join(daemonDir, x), { recursive: true });
  pool = join(dir, 'pool');
  mkdirSync(join(pool, 'img1/etc'), { recursive: true });
  writeFileSync(join(pool, 'img1/etc/hostname'), 'image-one\n');
  world = await enterSidRoot({
    systemdRunning: true,
    binds: [
      [join(daemonDir, 'machines'), '/run/systemd/machines'],
      [join(daemonDir, 'machine'), '/run/systemd/machine'],
    ],
  });
  await world.startBus();
  d = await startDaemon({ dir: daemonDir, bus: world.busAddress, args: ['--image-pool', pool] });
  ct = await makeContainer({ root, ipv4: { host: '10.79.7.1', inside: '10.79.7.2' }, idMap: [{ base: 0, shift: 300000, range: 65536 }] });
  const r = await d.ctl(['register', 'bb262', '--leader', String(ct.pid), '--service', 'test', '--root', root]);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await world?.close();
  await removeAllContainers();
  await d?.stop();
  for (const m of mounts.reverse()) await run('umount', ['-l', m]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('machinectl 262 shell: a command in the container, as root and as a user of its own', async () => {
  let r = await machinectl(['shell', 'bb262', '/bin/sh', '-c', 'cat /etc/marker; id -u']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.replace(/\r/g, '').trim().split('\n'), ['sid test root', '0']);
  r = await machinectl(['shell', 'app@bb262', '/bin/id', '-u']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.replace(/\r/g, '').trim(), '1000');
});

test('machinectl 262 copy-to, copy-from and bind', async () => {
  writeFileSync(join(dir, 'to.txt'), 'to the container\n');
  let r = await machinectl(['copy-to', 'bb262', join(dir, 'to.txt'), '/tmp/to.txt']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(root, 'tmp/to.txt'), 'utf8'), 'to the container\n');
  assert.equal(statSync(join(root, 'tmp/to.txt')).uid, 300000, "host root is the container's root");
  r = await machinectl(['copy-from', 'bb262', '/etc/marker', join(dir, 'from.txt')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(dir, 'from.txt'), 'utf8'), 'sid test root\n');
  mkdirSync(join(dir, 'share'));
  writeFileSync(join(dir, 'share/f'), 'bound\n');
  r = await machinectl(['bind', '--mkdir', 'bb262', join(dir, 'share'), '/mnt/share']);
  assert.equal(r.code, 0, r.stderr);
  r = await machinectl(['shell', 'bb262', '/bin/cat', '/mnt/share/f']);
  assert.equal(r.stdout.replace(/\r/g, ''), 'bound\n');
});

test('machinectl 262 list-images, image-status, clone, read-only, rename, remove', async () => {
  let r = await machinectl(['list-images', '--no-legend']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^img1\s+directory\s+no/m);
  r = await machinectl(['image-status', 'img1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Hostname: image-one/);
  for (const args of [['clone', 'img1', 'img2'], ['read-only', 'img2'], ['rename', 'img2', 'img3']]) {
    r = await machinectl(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  assert.match((await machinectl(['list-images', '--no-legend'])).stdout, /^img3\s+directory\s+yes/m);
  r = await machinectl(['read-only', 'img3', 'no']);
  assert.equal(r.code, 0, r.stderr);
  r = await machinectl(['remove', 'img3']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(pool), ['img1']);
  r = await machinectl(['clone', 'img1', 'img1']);
  assert.notEqual(r.code, 0);
});
