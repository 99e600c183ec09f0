// The image pool: machinectl 252's list-images, image-status, clone, rename, remove and read-only against
// mymachinesd on a private bus, D-Bus image objects, io.systemd.MachineImage over Varlink, and mymachinesctl's
// image verbs. The pool is a small tmpfs of the test's own, so that a full disk can be met.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeContainer, removeAllContainers } from './helpers/container.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { type Bus, busClient, errorName, runInSystemdNs, startBus } from './helpers/dbus.js';
import { stallingFuse } from './helpers/faulty-fs.js';
import { eachStep, must, run, waitFor } from './helpers/run.js';
import { VarlinkClient } from '../src/varlink/client.js';

const MGR_PATH = '/org/freedesktop/machine1';
const MGR = 'org.freedesktop.machine1.Manager';
const IMAGE = 'org.freedesktop.machine1.Image';
const ID = '0123456789abcdef0123456789abcdef';

let dir: string;
let pool: string;
let bus: Bus;
let daemon: Daemon;
let client: Awaited<ReturnType<typeof busClient>>;

const machinectl = (args: string[]) => runInSystemdNs(bus, daemon.stateDir, ['machinectl', '--no-pager', ...args]);
const callMgr = (member: string, sig = '', body: unknown[] = []) => client.call(MGR_PATH, MGR, member, sig, body);
const names = () => readdirSync(pool).sort();

function makeTree(name: string, files: Record<string, string>): string {
  const root = join(pool, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  mkdirSync(root, { recursive: true });
  return root;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-images-'));
  chmodSync(dir, 0o755);
  pool = join(dir, 'pool');
  mkdirSync(pool);
  await must('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0700', 'tmpfs', pool]);
  makeTree('tree1', {
    'etc/hostname': 'tree-one\n',
    'etc/machine-id': `${ID}\n`,
    'etc/machine-info': 'PRETTY_HOSTNAME="Tree One"\nDEPLOYMENT=test\n',
    'usr/lib/os-release': 'ID=treeos\nNAME="Tree OS"\nPRETTY_NAME="Tree OS 1"\nVERSION_ID=1\n',
  });
  // An os-release link that leaves the image resolves inside it (no host file is read).
  await must('ln', ['-s', '/usr/lib/os-release', join(pool, 'tree1/etc/os-release')]);
  writeFileSync(join(pool, 'disk1.raw'), '');
  truncateSync(join(pool, 'disk1.raw'), 1024 * 1024);
  makeTree('.hidden1', { 'etc/hostname': 'hidden\n' });
  bus = await startBus(join(dir, 'bus'));
  daemon = await startDaemon({ bus: bus.address, args: ['--image-pool', pool] });
  client = await busClient(bus);
});

after(async () => {
  client?.close();
  await daemon?.stop();
  daemon?.cleanup();
  await bus?.stop();
  await removeAllContainers();
  // Read-only marks (the immutable flag) would keep the tree from going.
  if (pool) await run('chattr', ['-R', '-i', pool]);
  await run('umount', [pool]);
  rmSync(dir, { recursive: true, force: true });
});

test('machinectl list-images: the trees and raw images of the pool, hidden ones only with --all', async () => {
  const r = await machinectl(['list-images', '--no-legend']);
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/));
  assert.deepEqual(rows.map((c) => [c[0], c[1], c[2]]), [['disk1', 'raw', 'no'], ['tree1', 'directory', 'no']]);
  const all = await machinectl(['list-images', '--all', '--no-legend']);
  assert.deepEqual(all.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/)[0]), ['.host', 'disk1', 'tree1']);
  // ListImages itself: .host too (machinectl hides names with a dot), never the hidden ones of the pool.
  const [images] = await callMgr('ListImages');
  assert.deepEqual(images.map((i: unknown[]) => i[0]), ['.host', 'disk1', 'tree1']);
  const disk = images.find((i: unknown[]) => i[0] === 'disk1');
  assert.deepEqual([disk[1], disk[2], disk[5], disk[6]], ['raw', false, 0n, '/org/freedesktop/machine1/image/disk1']);
});

test('machinectl image-status and the image object: hostname, machine ID, machine info, OS', async () => {
  const r = await machinectl(['image-status', 'tree1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Hostname: tree-one/);
  assert.match(r.stdout, /Machine ID: 0123456789abcdef0123456789abcdef/);
  assert.match(r.stdout, /OS: Tree OS 1/);
  assert.match(r.stdout, new RegExp(`Path: ${pool}/tree1`));
  const path = '/org/freedesktop/machine1/image/tree1';
  assert.deepEqual(await callMgr('GetImage', 's', ['tree1']), [path]);
  assert.deepEqual(await client.call(path, IMAGE, 'GetMachineInfo'), [{ PRETTY_HOSTNAME: 'Tree One', DEPLOYMENT: 'test' }]);
  assert.deepEqual(await callMgr('GetImageOSRelease', 's', ['tree1']), [{ ID: 'treeos', NAME: 'Tree OS', PRETTY_NAME: 'Tree OS 1', VERSION_ID: '1' }]);
  assert.deepEqual(await callMgr('GetImageMachineID', 's', ['tree1']), [Buffer.from(ID, 'hex')]);
  const props = await must('busctl', ['--json=short', 'get-property', 'org.freedesktop.machine1', path, IMAGE, 'Name', 'Type', 'ReadOnly', 'Path'], { env: bus.env });
  assert.deepEqual(props.trim().split('\n').map((l) => JSON.parse(l).data), ['tree1', 'directory', false, `${pool}/tree1`]);
  // Raw images: what is in them is not read here.
  assert.equal(await errorName(callMgr('GetImageHostname', 's', ['disk1'])), 'org.freedesktop.DBus.Error.NotSupported');
});

test('machinectl clone, read-only, rename and remove of a tree and of a raw image', async () => {
  let r = await machinectl(['clone', 'tree1', 'tree2']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(join(pool, 'tree2/etc/hostname')).size, 'tree-one\n'.length);
  r = await machinectl(['read-only', 'tree2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match((await machinectl(['list-images', '--no-legend'])).stdout, /^tree2\s+directory\s+yes/m);
  // Read-only: nothing inside can be made.
  assert.throws(() => writeFileSync(join(pool, 'tree2/new'), 'x'), { code: 'EPERM' });
  r = await machinectl(['rename', 'tree2', 'tree3']);
  assert.equal(r.code, 0, r.stderr);
  assert.match((await machinectl(['list-images', '--no-legend'])).stdout, /^tree3\s+directory\s+yes/m);
  r = await machinectl(['read-only', 'tree3', 'false']);
  assert.equal(r.code, 0, r.stderr);
  r = await machinectl(['clone', '--read-only', 'disk1', 'disk2']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(join(pool, 'disk2.raw')).mode & 0o222, 0);
  assert.match((await machinectl(['list-images', '--no-legend'])).stdout, /^disk2\s+raw\s+yes/m);
  r = await machinectl(['remove', 'tree3', 'disk2']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(names(), ['.hidden1', 'disk1.raw', 'tree1']);
});

test('refusals: an existing name, bad names, the host image, an image in use, non-root; nothing changes', async () => {
  const before = names();
  for (const [member, sig, args, want] of [
    ['CloneImage', 'ssb', ['tree1', 'disk1', false], 'org.freedesktop.DBus.Error.FileExists'],
    ['RenameImage', 'ss', ['tree1', 'disk1'], 'org.freedesktop.DBus.Error.FileExists'],
    ['CloneImage', 'ssb', ['tree1', '../escape', false], 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['CloneImage', 'ssb', ['tree1', 'a/b', false], 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['RenameImage', 'ss', ['tree1', '.#clone-x'], 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['GetImage', 's', ['../pool'], 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['RemoveImage', 's', ['nope'], 'org.freedesktop.machine1.NoSuchImage'],
    ['RemoveImage', 's', ['.host'], 'System.Error.EROFS'],
    ['MarkImageReadOnly', 'sb', ['.host', false], 'System.Error.EROFS'],
    ['SetImageLimit', 'st', ['tree1', 1000000n], 'org.freedesktop.DBus.Error.NotSupported'],
    ['CleanPool', 's', ['bogus'], 'org.freedesktop.DBus.Error.InvalidArgs'],
  ] as [string, string, unknown[], string][]) assert.equal(await errorName(callMgr(member, sig, args)), want, `${member} ${args.map(String).join(' ')}`);
  // A machine running from the image keeps it.
  const c = await makeContainer({ hostNetwork: true });
  await callMgr('RegisterMachine', 'sayssus', ['user1', Buffer.alloc(16), 'test', 'container', c.pid, join(pool, 'tree1')]);
  assert.equal(await errorName(callMgr('RemoveImage', 's', ['tree1'])), 'System.Error.EBUSY');
  assert.equal(await errorName(callMgr('RenameImage', 'ss', ['tree1', 'tree9'])), 'System.Error.EBUSY');
  await c.remove();
  const r = await run('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'busctl', 'call', 'org.freedesktop.machine1', MGR_PATH, MGR, 'RemoveImage', 's', 'tree1'], { env: bus.env });
  assert.notEqual(r.code, 0);
  assert.deepEqual(names(), before);
});

test('a clone that fills the disk fails with ENOSPC and leaves no image and no temporary tree', async () => {
  makeTree('big', { 'data/blob': 'x'.repeat(30 * 1024 * 1024) });
  const r = await machinectl(['clone', 'big', 'big2']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /No space left on device/);
  assert.deepEqual(names(), ['.hidden1', 'big', 'disk1.raw', 'tree1']);
  await callMgr('RemoveImage', 's', ['big']);
});

test('a long clone does not hold up the daemon: calls made meanwhile are answered before it ends', async () => {
  const root = makeTree('many', {});
  for (let i = 0; i < 40; i++) {
    mkdirSync(join(root, `d${i}`));
    for (let j = 0; j < 100; j++) writeFileSync(join(root, `d${i}/f${j}`), `${i}/${j}\n`);
  }
  const order: string[] = [];
  const clone = callMgr('CloneImage', 'ssb', ['many', 'many2', false]).then(() => order.push('clone'));
  await waitFor('the clone under way', () => (readdirSync(pool).some((n) => n.startsWith('.#clone-many2')) ? true : undefined), 5000);
  await callMgr('ListMachines').then(() => order.push('ListMachines'));
  // A second clone onto the same name while the first runs: refused, and nothing of it is left.
  assert.equal(await errorName(callMgr('CloneImage', 'ssb', ['tree1', 'many2', false])), 'System.Error.EBUSY');
  await clone;
  assert.deepEqual(order, ['ListMachines', 'clone']);
  assert.equal(readdirSync(join(pool, 'many2')).length, 40);
  await callMgr('RemoveImage', 's', ['many']);
  await callMgr('RemoveImage', 's', ['many2']);
  assert.deepEqual(names(), ['.hidden1', 'disk1.raw', 'tree1']);
});

test('an image whose /etc stalls (a FUSE mount that never answers): its metadata fails at the read limit, named; other images answer meanwhile', async () => {
  makeTree('stall1', { 'usr/lib/os-release': 'ID=stall\n' });
  mkdirSync(join(pool, 'stall1/etc'));
  const fuse = stallingFuse();
  const at = join(pool, 'stall1/etc');
  let v: VarlinkClient | undefined;
  let passed = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const p = spawn('sh', ['-c', fuse.mount(at)], { stdio: ['ignore', 'ignore', 'inherit', fuse.fd] });
      p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mount exited with ${code}`))));
    });
    v = await VarlinkClient.connect(join(daemon.machineDir, 'io.systemd.MachineImage'));
    const order: string[] = [];
    const stalled = v.call('io.systemd.MachineImage.List', { name: 'stall1', acquireMetadata: 'yes' }).then(
      () => assert.fail('answered'),
      (e) => (order.push('stall1'), e),
    );
    const other = await VarlinkClient.connect(join(daemon.machineDir, 'io.systemd.MachineImage'));
    assert.equal((await other.call('io.systemd.MachineImage.List', { name: 'tree1', acquireMetadata: 'yes' })).hostname, 'tree-one');
    order.push('tree1');
    other.close();
    const e = await stalled;
    assert.deepEqual(order, ['tree1', 'stall1'], 'the stalled read held nothing else up');
    assert.deepEqual([e.name, e.parameters], ['io.systemd.System', { origin: 'linux', errno: 110, errnoName: 'ETIMEDOUT', message: `Cannot read the metadata of image 'stall1': its root directory did not answer within 2 s` }]);
    // While the read is still stuck: at once, and over D-Bus as sd-bus names ETIMEDOUT; without metadata
    // the image is there.
    assert.equal(await errorName(callMgr('GetImageHostname', 's', ['stall1'])), 'org.freedesktop.DBus.Error.Timeout');
    const graceful = await v.call('io.systemd.MachineImage.List', { name: 'stall1', acquireMetadata: 'graceful' });
    assert.deepEqual([graceful.name, graceful.hostname, graceful.OSRelease], ['stall1', undefined, undefined]);
    passed = true;
  } finally {
    await eachStep([
      () => v?.close(),
      () => fuse.close(), // aborts the mount: the stuck read returns
      () => run('umount', ['-l', at]), // not mounted (the mount failed): nothing to do
      // After a failure, what the later tests must not find.
      () => passed || rmSync(join(pool, 'stall1'), { recursive: true, force: true }),
    ]);
  }
  await callMgr('RemoveImage', 's', ['stall1']);
});

test('io.systemd.MachineImage over Varlink: List, Update, Clone, Remove, SetPoolLimit, CleanPool', async () => {
  const v = await VarlinkClient.connect(join(daemon.machineDir, 'io.systemd.MachineImage'));
  try {
    const listed: Record<string, unknown>[] = [];
    for await (const r of v.callMore('io.systemd.MachineImage.List', {})) listed.push(r);
    assert.deepEqual(listed.map((i) => [i.name, i.type, i.class, i.readOnly]), [['.host', 'directory', 'machine', true], ['disk1', 'raw', 'machine', false], ['tree1', 'directory', 'machine', false]]);
    const one = await v.call('io.systemd.MachineImage.List', { name: 'tree1', acquireMetadata: 'yes' });
    assert.equal(one.hostname, 'tree-one');
    assert.equal(one.machineId, ID);
    assert.deepEqual(one.OSRelease, ['ID=treeos', 'NAME=Tree OS', 'PRETTY_NAME=Tree OS 1', 'VERSION_ID=1']);
    assert.deepEqual(one.machineInfo, ['PRETTY_HOSTNAME=Tree One', 'DEPLOYMENT=test']);
    const err = async (method: string, params: object) => v.call(`io.systemd.MachineImage.${method}`, params).then(() => 'no error', (e) => e.name);
    assert.equal(await err('List', {}), 'org.varlink.service.ExpectedMore');
    assert.equal(await err('List', { name: 'nope' }), 'io.systemd.MachineImage.NoSuchImage');
    assert.equal(await err('Clone', { name: 'tree1', newName: 'v1' }), 'no error');
    assert.equal(await err('Update', { name: 'v1', newName: 'v2', readOnly: true }), 'no error');
    assert.equal((await v.call('io.systemd.MachineImage.List', { name: 'v2' })).readOnly, true);
    assert.equal(await err('Update', { name: 'v2', newName: 'no/slash' }), 'org.varlink.service.InvalidParameter');
    assert.equal(await err('Update', { name: 'v2', readOnly: false }), 'no error');
    assert.equal(await err('Clone', { name: 'tree1', newName: 'v2' }), 'io.systemd.System');
    assert.equal(await err('SetPoolLimit', { limit: 1000 }), 'io.systemd.MachineImage.NotSupported');
    assert.equal(await err('Remove', { name: 'v2' }), 'no error');
    const cleaned: Record<string, unknown>[] = [];
    for await (const r of v.callMore('io.systemd.MachineImage.CleanPool', { mode: 'hidden' })) cleaned.push(r);
    assert.deepEqual(cleaned.map((c) => c.name), ['.hidden1']);
    assert.deepEqual(names(), ['disk1.raw', 'tree1']);
  } finally {
    v.close();
  }
});

test('mymachinesctl images, clone, read-only, rename, remove, with --json', async () => {
  let r = await daemon.ctl(['images', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).map((i: { name: string }) => i.name), ['disk1', 'tree1']);
  r = await daemon.ctl(['images']);
  assert.match(r.stdout, /^NAME\s+TYPE\s+RO\s+USAGE\s+CREATED\s+MODIFIED/);
  assert.match(r.stdout, /^tree1\s+directory\s+no/m);
  for (const args of [['clone', 'tree1', 'c1'], ['read-only', 'c1'], ['rename', 'c1', 'c2']]) {
    r = await daemon.ctl(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  r = await daemon.ctl(['images', '--json']);
  assert.deepEqual(JSON.parse(r.stdout).find((i: { name: string }) => i.name === 'c2').readOnly, true);
  r = await daemon.ctl(['read-only', 'c2', 'no']);
  assert.equal(r.code, 0, r.stderr);
  r = await daemon.ctl(['remove', 'c2']);
  assert.equal(r.code, 0, r.stderr);
  r = await daemon.ctl(['remove', 'c2']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "mymachinesctl: no image 'c2' known\n");
  r = await daemon.ctl(['clone', 'tree1', 'bad/name']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /newName/);
  assert.equal(existsSync(join(pool, 'c2')), false);
});

test('btrfs: subvolumes are images of their own type; clone is a snapshot; read-only is the subvolume property; quotas', async () => {
  const img = join(dir, 'btrfs.img');
  writeFileSync(img, '');
  truncateSync(img, 256 * 1024 * 1024);
  await must('mkfs.btrfs', ['-q', img]);
  const loop = (await must('losetup', ['--find', '--show', img])).trim();
  const mnt = join(dir, 'btrfs');
  mkdirSync(mnt);
  let d2: Daemon | undefined;
  try {
    await must('mount', [loop, mnt]);
    await must('btrfs', ['quota', 'enable', mnt]);
    await must('btrfs', ['subvolume', 'create', join(mnt, 'sub1')]);
    writeFileSync(join(mnt, 'sub1/hello'), 'subvolume\n');
    d2 = await startDaemon({ args: ['--image-pool', mnt] });
    const v = await VarlinkClient.connect(join(d2.machineDir, 'io.systemd.MachineImage'));
    try {
      const list = async () => {
        const out: Record<string, unknown>[] = [];
        for await (const r of v.callMore('io.systemd.MachineImage.List', {})) out.push(r);
        return out.filter((i) => i.name !== '.host').map((i) => [i.name, i.type, i.readOnly]);
      };
      assert.deepEqual(await list(), [['sub1', 'subvolume', false]]);
      await v.call('io.systemd.MachineImage.Clone', { name: 'sub1', newName: 'sub2' });
      assert.equal((await must('btrfs', ['subvolume', 'show', join(mnt, 'sub2')])).includes('Parent UUID'), true);
      await v.call('io.systemd.MachineImage.Update', { name: 'sub2', readOnly: true, limit: 100 * 1024 * 1024 });
      assert.deepEqual(await list(), [['sub1', 'subvolume', false], ['sub2', 'subvolume', true]]);
      assert.throws(() => writeFileSync(join(mnt, 'sub2/new'), 'x'), { code: 'EROFS' });
      assert.match(await must('btrfs', ['qgroup', 'show', '-re', mnt]), /104857600|100\.00MiB/);
      await v.call('io.systemd.MachineImage.SetPoolLimit', { limit: 200 * 1024 * 1024 });
      await v.call('io.systemd.MachineImage.Remove', { name: 'sub2' });
      assert.deepEqual(await list(), [['sub1', 'subvolume', false]]);
      assert.deepEqual(readdirSync(mnt), ['sub1']);
    } finally {
      v.close();
    }
  } finally {
    await d2?.stop();
    d2?.cleanup();
    await run('umount', [mnt]);
    await run('losetup', ['-d', loop]);
  }
});
