// systemd 262's clients against mymachinesd, unchanged: machinectl (over D-Bus and our io.systemd.Machine
// where 262 looks for machined's), userdbctl (our userdb socket), systemd-nspawn --register=yes (through
// io.systemd.Machine.Register), systemd-vmspawn itself (QEMU under TCG), and vmspawn's registration of a
// VM with AF_VSOCK replayed (this kernel has no vhost-vsock) with the control socket it gives. They run in the sid root, where our bus, state files and sockets are bound; machinectl
// 252 (the host's) asks the same daemon over the same bus.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { makeBusyboxRoot } from './helpers/busybox-root.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { systemdNsArgv } from './helpers/dbus.js';
import { makeNssEnv, type NssEnv } from './helpers/nss-env.js';
import { eachStep, must, run, waitFor } from './helpers/run.js';
import { cgroup2Mount, enterSidRoot, type SidWorld, type Started } from './helpers/sid-root.js';
import { processPidfdId } from '../src/registry/linux/leader.js';
import { VarlinkServer } from '../src/varlink/server.js';

let dir: string;
let world: SidWorld;
let d: Daemon;
let web: Container;
let nss: NssEnv;
/** vmspawn's control socket stand-in (io.systemd.MachineInstance), and the calls it got. */
let control: VarlinkServer;
const controlCalls: string[] = [];

const machinectl = (args: string[]) => world.run(['machinectl', '--no-pager', ...args]);
/** The host's machinectl 252, on the same bus (where it takes systemd for running, as 262's in the world). */
function machinectl252(args: string[]) {
  const [u, ...rest] = systemdNsArgv(d.stateDir, ['machinectl', '--no-pager', ...args]);
  return run(u, rest, { env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: world.busAddress, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' } });
}
const listed = (out: string) => out.split('\n').filter((l) => l && !l.startsWith('MACHINE') && !/machines? listed/.test(l)).map((l) => l.split(/\s+/)[0]).sort();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-sid-clients-'));
  chmodSync(dir, 0o755);
  // A busybox tree for nspawn (busybox-static from the host).
  const root = makeBusyboxRoot(join(dir, 'nsp'));
  // The daemon's directories exist before the world binds them; the daemon joins the world's bus.
  const daemonDir = join(dir, 'daemon');
  for (const x of ['machines', 'userdb', 'machine']) mkdirSync(join(daemonDir, x), { recursive: true });
  // vmspawn's runtime directory, where its control socket is.
  const vmspawnDir = join(dir, 'vmspawn');
  mkdirSync(vmspawnDir, { mode: 0o755 });
  world = await enterSidRoot({
    systemdRunning: true,
    binds: [
      [join(daemonDir, 'machines'), '/run/systemd/machines'],
      [join(daemonDir, 'userdb'), '/run/systemd/userdb'],
      [join(daemonDir, 'machine'), '/run/systemd/machine'],
      [vmspawnDir, '/run/systemd/vmspawn/vm262'],
      [root, '/srv/nsp'],
    ],
  });
  control = new VarlinkServer({ vendor: 'test', product: 'vmspawn control stand-in', version: '1', url: '' });
  const verbs = ['PowerOff', 'Reboot', 'Terminate', 'Pause', 'Resume'];
  control.addInterface(
    { name: 'io.systemd.MachineInstance', methods: Object.fromEntries(verbs.map((v) => [v, { in: {}, out: {} }])) },
    Object.fromEntries(verbs.map((v) => [v, () => void controlCalls.push(v)])),
  );
  await control.listen(join(vmspawnDir, 'control'), 0o600);
  await world.startBus();
  d = await startDaemon({ dir: daemonDir, bus: world.busAddress });
  web = await makeContainer({ ipv4: { host: '10.79.1.1', inside: '10.79.1.2' }, idMap: [{ base: 0, shift: 1_000_000, range: 65536 }] });
  const r = await d.ctl(['register', 'web1', '--leader', String(web.pid), '--service', 'test', '--netif', String(web.hostIfIndex)]);
  assert.equal(r.code, 0, r.stderr);
  nss = makeNssEnv({ socket: d.socket });
});

after(async () => {
  nss?.close();
  await control?.close();
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

test('machinectl 262 kill, poweroff and terminate: through io.systemd.Machine, then D-Bus', async () => {
  const ct = await makeContainer({});
  const r = await d.ctl(['register', 'sig1', '--leader', String(ct.pid)]);
  assert.equal(r.code, 0, r.stderr);
  const ok = async (args: string[]) => {
    const x = await machinectl(args);
    assert.deepEqual([x.code, x.stdout, x.stderr], [0, '', ''], `machinectl ${args.join(' ')}`);
  };
  const stat = () => must('cat', [`/proc/${ct.pid}/status`]);
  await ok(['kill', '--signal=SIGSTOP', 'sig1']);
  await waitFor('the leader stopped', async () => (/State:\s+T/.test(await stat()) ? true : undefined));
  await ok(['kill', '--signal=SIGCONT', '--kill-whom=leader', 'sig1']);
  await waitFor('the leader running', async () => (/State:\s+[SR]/.test(await stat()) ? true : undefined));
  // poweroff asks io.systemd.Machine.List for the machine's control socket; a container has none, so it
  // sends SIGRTMIN+4 to the leader over D-Bus (KillMachine), which ends `sleep`.
  await ok(['poweroff', 'sig1']);
  await waitFor('sig1 gone after poweroff', async () => ((await machinectl(['status', 'sig1'])).code === 1 ? true : undefined));
  assert.equal(existsSync(`/proc/${ct.pid}`), false, 'the leader ended');
  // terminate likewise (TerminateMachine): SIGTERM to every process of the machine.
  const ct2 = await makeContainer({});
  assert.equal((await d.ctl(['register', 'sig2', '--leader', String(ct2.pid)])).code, 0);
  await ok(['terminate', 'sig2']);
  await waitFor('sig2 gone after terminate', async () => ((await machinectl(['status', 'sig2'])).code === 1 ? true : undefined));
  for (const verb of ['poweroff', 'terminate']) {
    const x = await machinectl([verb, 'nosuch']);
    assert.deepEqual([x.code, x.stderr.trim()], [1, "Failed to look up machine 'nosuch': io.systemd.Machine.NoSuchMachine"], verb);
  }
});

test('systemd-nspawn 262 --register=yes registers through io.systemd.Machine, resolves by name, shows in machinectl 262 and 252', { timeout: 60_000 }, async () => {
  const inside = 'ip link set host0 up && ip addr add 10.79.9.2/24 dev host0 && while [ ! -e /var/stop ]; do sleep 0.1; done';
  const nspawn = world.start(['systemd-nspawn', '--quiet', '--register=yes', '--keep-unit', '-D', '/srv/nsp', '--network-veth', '-M', 'nsp262', '/bin/sh', '-c', inside], { env: { SYSTEMD_LOG_LEVEL: 'debug' } });
  try {
    await waitFor('nspawn to register', async () => ((await machinectl(['status', 'nsp262'])).code === 0 ? true : undefined), 30_000);
    // Through our io.systemd.Machine where machined 262's would be: no fallback to D-Bus.
    assert.match(nspawn.output(), /"method":"io\.systemd\.Machine\.Register","parameters":\{"name":"nsp262"/);
    assert.doesNotMatch(nspawn.output(), /falling back to D-Bus|RegisterMachine/);
    const show = await machinectl(['show', 'nsp262', '-p', 'Service', '-p', 'Class', '-p', 'RootDirectory']);
    assert.deepEqual(show.stdout.trim().split('\n').sort(), ['Class=container', 'RootDirectory=/srv/nsp', 'Service=systemd-nspawn']);
    await must('ip', ['addr', 'add', '10.79.9.1/24', 'dev', 've-nsp262']);
    await must('ip', ['link', 'set', 've-nsp262', 'up']);
    const hosts = await waitFor('nsp262 by name', async () => {
      const r = await nss.run('getent', ['hosts', 'nsp262']);
      return r.code === 0 ? r.stdout : undefined;
    });
    assert.equal(hosts, '10.79.9.2       nsp262\n');
    for (const list of [await machinectl(['list']), await machinectl252(['list'])]) {
      assert.equal(list.code, 0, list.stderr);
      assert.deepEqual(listed(list.stdout), ['nsp262', 'web1']);
    }
    writeFileSync(join(dir, 'nsp/var/stop'), '');
    assert.equal(await nspawn.exited, 0, nspawn.output());
    assert.match(nspawn.output(), /"method":"io\.systemd\.Machine\.Unregister","parameters":\{"name":"nsp262"\}/);
    await waitFor('nsp262 gone', async () => ((await machinectl(['status', 'nsp262'])).code === 1 ? true : undefined));
  } finally {
    await nspawn.stop();
  }
});

test('systemd-vmspawn 262 itself (QEMU under TCG, a VM that never boots): it registers through io.systemd.Machine with its scope and control socket; machinectl 262 and 252 list it; terminate ends it', { timeout: 90_000 }, async () => {
  // vmspawn wants a unit of its own to name (a cgroup that looks like one) and a system bus (the world's);
  // an empty disk is enough: SeaBIOS finds nothing to boot, and QEMU waits. TCG, since this machine's
  // KVM refuses the CPU flags vmspawn passes.
  const cgroup = join(cgroup2Mount(), `mmtest-vmspawn-${process.pid}.scope`);
  mkdirSync(cgroup);
  let vmspawn: Started | undefined;
  try {
    await world.run(['truncate', '-s', '1M', '/tmp/vmreal.raw']);
    vmspawn = world.start(['sh', '-c', `echo $$ > /sys/fs/cgroup/${basename(cgroup)}/cgroup.procs && exec systemd-vmspawn --image=/tmp/vmreal.raw --machine=vmreal --console=headless --pass-ssh-key=no --firmware=bios --kvm=no </dev/null`], { env: { SYSTEMD_LOG_LEVEL: 'debug' } });
    const vm = vmspawn;
    await waitFor('vmspawn to register', async () => {
      if (vm.proc.exitCode !== null) throw new Error(`vmspawn exited with ${vm.proc.exitCode}: ${vm.output()}`);
      return (await machinectl(['status', 'vmreal'])).code === 0 ? true : undefined;
    }, 60_000);
    // Through our io.systemd.Machine where machined 262's would be.
    assert.match(vmspawn.output(), /"method":"io\.systemd\.Machine\.Register","parameters":\{"name":"vmreal"/);
    const list = JSON.parse((await world.run(['varlinkctl', '--json=short', 'call', '/run/systemd/machine/io.systemd.Machine', 'io.systemd.Machine.List', '{"name":"vmreal"}'])).stdout);
    const qemu = list.leader.pid as number;
    assert.equal(readFileSync(`/proc/${qemu}/comm`, 'utf8').trim(), 'qemu-system-x86');
    assert.deepEqual([list.class, list.service, list.unit, list.controlAddress, list.state, list.supervisor.pid], ['vm', 'systemd-vmspawn', 'machine-vmreal.scope', '/run/systemd/vmspawn/vmreal/control', 'running', vmspawn.pid]);
    // allocateUnit: QEMU in the scope we made for it; vmspawn stays where it was.
    assert.match(readFileSync(`/proc/${qemu}/cgroup`, 'utf8'), /machine\.slice\/machine-vmreal\.scope$/m);
    for (const l of [await machinectl(['list']), await machinectl252(['list'])]) {
      assert.equal(l.code, 0, l.stderr);
      assert.deepEqual(listed(l.stdout), ['vmreal', 'web1']);
    }
    assert.match((await machinectl(['status', 'vmreal'])).stdout, /Superv\.: .*systemd-vmspawn/);
    // terminate: machinectl 262 asks the VM's control socket; vmspawn quits QEMU, unregisters, exits 0.
    const t = await machinectl(['terminate', 'vmreal']);
    assert.deepEqual([t.code, t.stderr], [0, '']);
    assert.equal(await vmspawn.exited, 0, vmspawn.output());
    await waitFor('vmreal gone', async () => ((await machinectl(['status', 'vmreal'])).code === 1 ? true : undefined));
  } finally {
    await eachStep([
      () => vmspawn?.stop(),
      () => waitFor('the test cgroup empty', () => (readFileSync(join(cgroup, 'cgroup.procs'), 'utf8') === '' ? true : undefined)),
      () => rmdirSync(cgroup),
    ]);
  }
});

test('systemd-vmspawn 262\'s registration with AF_VSOCK (replayed): machinectl 262 and 252 list the VM, poweroff and terminate go to its control socket', async () => {
  // A VM with AF_VSOCK and its SSH key, which this kernel cannot give the real vmspawn (no vhost-vsock):
  // a process stands in for QEMU, and the Register call is the one vmspawn 262 makes then
  // (src/shared/machine-register.c, from vmspawn's run_virtual_machine), started without --keep-unit: its
  // keys in its order, the control socket and key in its runtime directory.
  const qemu = spawn('sleep', ['600'], { stdio: 'ignore' });
  try {
    const leaderId = processPidfdId(qemu.pid!);
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '');
    const register = {
      name: 'vm262',
      id: 'b1a4c9e2d5f64a7bb8c9d0e1f2a3b4c5',
      service: 'systemd-vmspawn',
      class: 'vm',
      vSockCid: 4711,
      sshAddress: 'vsock/4711',
      sshPrivateKeyPath: '/run/systemd/vmspawn/vm262/ed25519',
      controlAddress: '/run/systemd/vmspawn/vm262/control',
      allocateUnit: true,
      leaderProcessId: { pid: qemu.pid, pidfdId: leaderId, bootId },
    };
    const r = await world.run(['varlinkctl', 'call', '/run/systemd/machine/io.systemd.Machine', 'io.systemd.Machine.Register', JSON.stringify(register)]);
    assert.deepEqual([r.code, r.stderr], [0, ''], r.stderr);
    // allocateUnit: its scope, as machined would ask systemd for.
    assert.match(readFileSync(`/proc/${qemu.pid}/cgroup`, 'utf8'), /machine\.slice\/machine-vm262\.scope$/m);
    const list = JSON.parse((await world.run(['varlinkctl', '--json=short', 'call', '/run/systemd/machine/io.systemd.Machine', 'io.systemd.Machine.List', '{"name":"vm262"}'])).stdout);
    assert.deepEqual({ ...list, timestamp: undefined, supervisor: undefined }, {
      name: 'vm262', id: register.id, class: 'vm', service: 'systemd-vmspawn', unit: 'machine-vm262.scope', leader: register.leaderProcessId,
      vSockCid: 4711, sshAddress: 'vsock/4711', sshPrivateKeyPath: register.sshPrivateKeyPath, controlAddress: register.controlAddress,
      UID: 0, state: 'running', timestamp: undefined, supervisor: undefined,
    });
    for (const l of [await machinectl(['list']), await machinectl252(['list'])]) {
      assert.equal(l.code, 0, l.stderr);
      assert.deepEqual(listed(l.stdout), ['vm262', 'web1']);
    }
    const show = await machinectl(['show', 'vm262', '-p', 'VSockCID', '-p', 'SSHAddress', '-p', 'SSHPrivateKeyPath', '-p', 'Unit']);
    assert.deepEqual(show.stdout.trim().split('\n').sort(), ['SSHAddress=vsock/4711', `SSHPrivateKeyPath=${register.sshPrivateKeyPath}`, 'Unit=machine-vm262.scope', 'VSockCID=4711']);
    // poweroff and terminate: to the VM's control socket (io.systemd.MachineInstance), which vmspawn
    // turns into QMP; the machine stays until its leader exits.
    for (const [verb, method] of [['poweroff', 'PowerOff'], ['terminate', 'Terminate']]) {
      const x = await machinectl([verb, 'vm262']);
      assert.deepEqual([x.code, x.stderr], [0, ''], verb);
      assert.equal(controlCalls.at(-1), method);
    }
    assert.deepEqual(controlCalls, ['PowerOff', 'Terminate']);
    assert.equal((await machinectl(['status', 'vm262'])).code, 0);
  } finally {
    qemu.kill('SIGKILL');
  }
  await waitFor('vm262 gone with its leader', async () => ((await machinectl(['status', 'vm262'])).code === 1 ? true : undefined));
});
