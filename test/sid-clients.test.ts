// systemd 262's clients against mymachinesd, unchanged: machinectl (over D-Bus, as it goes when machined's
// Varlink socket is absent), userdbctl (our userdb socket), systemd-nspawn --register=yes (RegisterMachineEx
// with a pidfd). They run in the sid root, where our bus, state files and userdb socket are bound.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { must, waitFor } from './helpers/run.js';
import { enterSidRoot, type SidWorld } from './helpers/sid-root.js';

let dir: string;
let world: SidWorld;
let d: Daemon;
let web: Container;

const machinectl = (args: string[]) => world.run(['machinectl', '--no-pager', ...args]);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-sid-clients-'));
  chmodSync(dir, 0o755);
  // A busybox tree for nspawn (busybox-static from the host).
  const root = join(dir, 'nsp');
  for (const x of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'var', 'usr/lib']) mkdirSync(join(root, x), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  for (const x of ['sh', 'sleep', 'ip', 'test', '[']) symlinkSync('busybox', join(root, 'bin', x));
  writeFileSync(join(root, 'usr/lib/os-release'), 'ID=busybox\nNAME=BusyBox\n');
  symlinkSync('../usr/lib/os-release', join(root, 'etc/os-release'));
  // The daemon's directories exist before the world binds them; the daemon joins the world's bus.
  const daemonDir = join(dir, 'daemon');
  for (const x of ['machines', 'userdb']) mkdirSync(join(daemonDir, x), { recursive: true });
  world = await enterSidRoot({
    systemdRunning: true,
    binds: [
      [join(daemonDir, 'machines'), '/run/systemd/machines'],
      [join(daemonDir, 'userdb'), '/run/systemd/userdb'],
      [root, '/srv/nsp'],
    ],
  });
  await world.startBus();
  d = await startDaemon({ dir: daemonDir, args: ['--bus', world.busAddress] });
  await waitFor('the daemon on the bus', () => (d.output().includes('serving on D-Bus') ? true : undefined), 15_000);
  web = await makeContainer({ ipv4: { host: '10.79.1.1', inside: '10.79.1.2' }, idMap: [{ base: 0, shift: 1_000_000, range: 65536 }] });
  const r = await d.ctl(['register', 'web1', '--leader', String(web.pid), '--service', 'test', '--netif', String(web.hostIfIndex)]);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await world?.close();
  await removeAllContainers();
  await d?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('machinectl 262 list, status and show', async () => {
  const list = await machinectl(['list', '--no-legend']);
  assert.equal(list.code, 0, list.stderr);
  // Its OS is the host's (the container shares our root); more addresses follow (IPv6 link-local).
  assert.deepEqual(list.stdout.trim().split(/\s+/), ['web1', 'container', 'test', 'debian', '12', '10.79.1.2…']);
  const show = await machinectl(['show', 'web1', '-p', 'Name', '-p', 'Class', '-p', 'Leader', '-p', 'Service', '-p', 'VSockCID', '-p', 'UID']);
  assert.equal(show.code, 0, show.stderr);
  assert.deepEqual(show.stdout.trim().split('\n').sort(), ['Class=container', `Leader=${web.pid}`, 'Name=web1', 'Service=test', 'UID=0', 'VSockCID=4294967295']);
  const status = await machinectl(['status', 'web1']);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^web1\n/);
  assert.match(status.stdout, new RegExp(`Leader: ${web.pid} \\(sleep\\)`));
  assert.match(status.stdout, /Address: 10\.79\.1\.2/);
  assert.equal((await machinectl(['status', 'nosuch'])).code, 1);
});

test('userdbctl 262 finds the container\'s users on our userdb socket', async () => {
  const r = await world.run(['userdbctl', '--output=classic', 'user', 'vu-web1-0']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'vu-web1-0:x:1000000:65534:UID 0 of Container web1:/:/usr/sbin/nologin');
  const g = await world.run(['userdbctl', '--output=classic', 'group', '1000005']);
  assert.equal(g.stdout.trim(), 'vg-web1-5:x:1000005:');
  assert.equal((await world.run(['userdbctl', 'user', 'vu-nosuch-0'])).code, 1);
});

test('machinectl 262 kill; poweroff and terminate wait for the Varlink half', async () => {
  const ct = await makeContainer({});
  const r = await d.ctl(['register', 'sig1', '--leader', String(ct.pid)]);
  assert.equal(r.code, 0, r.stderr);
  const ok = async (args: string[]) => {
    const x = await machinectl(args);
    assert.equal(x.code, 0, `machinectl ${args.join(' ')}: ${x.stderr}`);
  };
  const stat = () => must('cat', [`/proc/${ct.pid}/status`]);
  await ok(['kill', '--signal=SIGSTOP', 'sig1']);
  await waitFor('the leader stopped', async () => (/State:\s+T/.test(await stat()) ? true : undefined));
  await ok(['kill', '--signal=SIGCONT', '--kill-whom=leader', 'sig1']);
  await waitFor('the leader running', async () => (/State:\s+[SR]/.test(await stat()) ? true : undefined));
  // poweroff (SIGRTMIN+4 to the leader) and terminate are asked of machined's Varlink socket only, with
  // no D-Bus fallback: they wait for io.systemd.Machine as machined 262 shapes it (the second half of
  // issue 11). Nothing is done meanwhile.
  for (const verb of ['poweroff', 'terminate']) {
    const x = await machinectl([verb, 'sig1']);
    assert.deepEqual([x.code, x.stderr.trim()], [1, 'Failed to connect to machined varlink: No such file or directory'], verb);
  }
  assert.match(await stat(), /State:\s+[SR]/);
  await ok(['kill', '--signal=SIGKILL', 'sig1']);
  await waitFor('sig1 gone', async () => ((await machinectl(['status', 'sig1'])).code === 1 ? true : undefined));
});

test('systemd-nspawn 262 --register=yes registers through RegisterMachineEx and resolves by name', { timeout: 60_000 }, async () => {
  const inside = 'ip link set host0 up && ip addr add 10.79.9.2/24 dev host0 && while [ ! -e /var/stop ]; do sleep 0.1; done';
  const nspawn = world.start(['systemd-nspawn', '--quiet', '--register=yes', '--keep-unit', '-D', '/srv/nsp', '--network-veth', '-M', 'nsp262', '/bin/sh', '-c', inside], { env: { SYSTEMD_LOG_LEVEL: 'debug' } });
  try {
    await waitFor('nspawn to register', async () => ((await machinectl(['status', 'nsp262'])).code === 0 ? true : undefined), 30_000);
    assert.match(nspawn.output(), /RegisterMachineEx|Registering machine/, 'nspawn says how it registered');
    assert.doesNotMatch(nspawn.output(), /falling back to RegisterMachineWithNetwork|UnknownMethod/);
    const show = await machinectl(['show', 'nsp262', '-p', 'Service', '-p', 'Class', '-p', 'RootDirectory']);
    assert.deepEqual(show.stdout.trim().split('\n').sort(), ['Class=container', 'RootDirectory=/srv/nsp', 'Service=systemd-nspawn']);
    await must('ip', ['addr', 'add', '10.79.9.1/24', 'dev', 've-nsp262']);
    await must('ip', ['link', 'set', 've-nsp262', 'up']);
    const resolved = await waitFor('its address', async () => {
      const r = await d.ctl(['list', '--json']);
      const m = JSON.parse(r.stdout).find((x: { name: string }) => x.name === 'nsp262');
      return m?.addresses?.length ? m.addresses : undefined;
    });
    assert.deepEqual(resolved.map((a: { address: number[] }) => a.address.join('.')), ['10.79.9.2']);
    writeFileSync(join(dir, 'nsp/var/stop'), '');
    assert.equal(await nspawn.exited, 0, nspawn.output());
    await waitFor('nsp262 gone', async () => ((await machinectl(['status', 'nsp262'])).code === 1 ? true : undefined));
  } finally {
    await nspawn.stop();
  }
});
