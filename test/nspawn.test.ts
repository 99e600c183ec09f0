// systemd-nspawn registering with mymachines over D-Bus, as it does with machined: a busybox root with a
// veth pair and a picked user namespace. The container then resolves by name, its UIDs by vu- name, and it
// is removed when it exits.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { makeBusyboxRoot } from './helpers/busybox-root.js';
import { must, waitFor } from './helpers/run.js';
import { VarlinkClient } from '../src/varlink/client.js';
import { type Bus, busClient, errorName, runInSystemdNs, startBus, systemdNsArgv } from './helpers/dbus.js';

const MGR = 'org.freedesktop.machine1.Manager';
const NAME = 'nsp-test';
const PATH = '/org/freedesktop/machine1/machine/nsp_2dtest';

let dir: string;
let root: string;
let bus: Bus;
let daemon: Daemon;
let client: Awaited<ReturnType<typeof busClient>>;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-nspawn-'));
  chmodSync(dir, 0o755);
  root = makeBusyboxRoot(join(dir, 'root'));
  bus = await startBus(join(dir, 'bus'));
  daemon = await startDaemon({ bus: bus.address });
  client = await busClient(bus);
});

after(async () => {
  client?.close();
  await daemon?.stop();
  daemon?.cleanup();
  await bus?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('systemd-nspawn --register=yes --keep-unit --private-users=pick --network-veth registers with mymachines', { timeout: 60_000 }, async () => {
  // The container sets up its end of the veth pair, then waits for /var/stop to appear (nspawn mounts a tmpfs on /tmp).
  const inside = 'ip link set host0 up && ip addr add 10.77.84.2/24 dev host0 && while [ ! -e /var/stop ]; do sleep 0.1; done';
  const argv = systemdNsArgv(daemon.stateDir, ['systemd-nspawn', '--quiet', '--register=yes', '--keep-unit', '-D', root, '--private-users=pick', '--private-users-ownership=chown', '--network-veth', '-M', NAME, '/bin/sh', '-c', inside]);
  const nspawn = spawn(argv[0], argv.slice(1), { env: bus.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  nspawn.stdout.on('data', (d) => (out += d));
  nspawn.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => nspawn.once('exit', (code) => r(code)));
  try {
    await waitFor('nspawn to register', async () => ((await errorName(client.call('/org/freedesktop/machine1', MGR, 'GetMachine', 's', [NAME]))) === 'no error' ? true : undefined), 20_000);
    const props = async (p: string) => (await client.call(PATH, 'org.freedesktop.DBus.Properties', 'Get', 'ss', ['org.freedesktop.machine1.Machine', p]))[0].value;
    assert.equal(await props('Service'), 'systemd-nspawn');
    assert.equal(await props('Class'), 'container');
    assert.equal(await props('RootDirectory'), root);
    const ifindex = Number((await must('cat', [`/sys/class/net/ve-${NAME}/ifindex`])).trim());
    assert.deepEqual(await props('NetworkInterfaces'), [ifindex]);
    const [shift] = await client.call('/org/freedesktop/machine1', MGR, 'GetMachineUIDShift', 's', [NAME]);
    assert.ok(shift >= 65536 && shift % 65536 === 0, `picked UID range at ${shift}`);

    await must('ip', ['addr', 'add', '10.77.84.1/24', 'dev', `ve-${NAME}`]);
    await must('ip', ['link', 'set', `ve-${NAME}`, 'up']);
    const varlink = await VarlinkClient.connect(daemon.socket);
    try {
      const resolved = await waitFor('the container address', async () => {
        const r = await varlink.call('io.systemd.Resolve.ResolveHostname', { name: NAME, family: 2 }).catch(() => undefined);
        return r?.addresses?.length ? r : undefined;
      });
      assert.deepEqual(resolved.addresses.map((a: { address: number[] }) => a.address.join('.')), ['10.77.84.2']);
      const user = await varlink.call('io.systemd.UserDatabase.GetUserRecord', { userName: `vu-${NAME}-0`, service: 'io.systemd.Machine' });
      assert.equal(user.record.uid, shift);
      const byUid = await varlink.call('io.systemd.UserDatabase.GetUserRecord', { uid: shift + 1000, service: 'io.systemd.Machine' });
      assert.equal(byUid.record.userName, `vu-${NAME}-1000`);
    } finally {
      await varlink.close();
    }
    assert.deepEqual(await client.call('/org/freedesktop/machine1', MGR, 'MapToMachineUser', 'u', [shift + 5]), [NAME, PATH, 5]);

    // machinectl shell into it: busybox, no systemd inside, so directly, in its PID namespace as its root.
    const sh = await runInSystemdNs(bus, daemon.stateDir, ['sh', '-c', 'exec "$@" </dev/null', 'sh', 'machinectl', '-q', 'shell', NAME, '/bin/sh', '-c', 'cat /usr/lib/os-release; id -u; test -e /proc/1/comm && echo pid1=$(cat /proc/1/comm)']);
    assert.equal(sh.code, 0, sh.stderr);
    assert.deepEqual(sh.stdout.replace(/\r/g, '').trim().split('\n'), ['ID=busybox', 'NAME=BusyBox', '0', 'pid1=sh']);

    // The container ends: nspawn exits and the machine is gone.
    writeFileSync(join(root, 'var/stop'), '');
    assert.equal(await exited, 0, out);
    await waitFor('the machine to go', async () => ((await errorName(client.call('/org/freedesktop/machine1', MGR, 'GetMachine', 's', [NAME]))) === 'org.freedesktop.machine1.NoSuchMachine' ? true : undefined));
    assert.ok(!existsSync(join(daemon.stateDir, NAME)));
  } finally {
    if (nspawn.exitCode === null) nspawn.kill('SIGKILL');
  }
});
