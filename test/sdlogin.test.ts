// sd-login against mymachines: libsystemd's sd_get_machine_names, sd_machine_get_class,
// sd_machine_get_ifindices and sd_pid_get_machine_name (test/sdlogin.c), and `ps -o machine=`, for a
// machine registered from its unit and one created (its scope made by the daemon). They read the state
// files and the process's cgroup, so they run with the state directory at /run/systemd/machines.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { ROOT, startDaemon, type Daemon } from './helpers/daemon.js';
import { eachStep, must, waitFor } from './helpers/run.js';
import { type Bus, busClient, cgroupMounts, runInSystemdNs, startBus } from './helpers/dbus.js';

const MGR = 'org.freedesktop.machine1.Manager';
// Where sd-login looks (name=systemd on a hybrid host, else cgroup2) and where the registry looks (cgroup2):
// found in /proc/self/mountinfo, as the daemon finds them.
let hierarchies: string[] = [];

let dir: string;
let bus: Bus;
let daemon: Daemon;
let client: Awaited<ReturnType<typeof busClient>>;
let registered: Container;
let created: Container;
let unitCgroup: string;
let program: string;

before(async () => {
  const cg = await cgroupMounts();
  hierarchies = [cg.legacy, cg.v2].filter((h): h is string => h !== undefined);
  dir = mkdtempSync(join(tmpdir(), 'mymachines-sdlogin-'));
  chmodSync(dir, 0o755);
  program = join(dir, 'sdlogin');
  await must('gcc', ['-Wall', '-Werror', '-o', program, join(ROOT, 'test/sdlogin.c'), '-lsystemd']);
  bus = await startBus(join(dir, 'bus'));
  daemon = await startDaemon({ bus: bus.address });
  client = await busClient(bus);
  registered = await makeContainer({ ipv4: { host: '10.77.82.1', inside: '10.77.82.2' } });
  created = await makeContainer({ ipv4: { host: '10.77.83.1', inside: '10.77.83.2' } });
  // The registered machine's leader runs in a unit of its own, as under a service manager.
  unitCgroup = `system.slice/mmtest-sdlogin-${process.pid}.service`;
  for (const h of hierarchies) {
    mkdirSync(join(h, unitCgroup), { recursive: true });
    writeFileSync(join(h, unitCgroup, 'cgroup.procs'), `${registered.pid}\n`);
  }
});

after(() =>
  eachStep([
    // Leaders first, so that the daemon removes the scope it made before it stops.
    () => removeAllContainers(),
    () => client && waitFor('the machines to go', async () => ((await client.call('/org/freedesktop/machine1', MGR, 'ListMachines'))[0].length === 1 ? true : undefined)),
    () => client?.close(),
    () => daemon?.stop(),
    () => daemon?.cleanup(),
    () => bus?.stop(),
    ...hierarchies.map((h) => () => unitCgroup && rmdirSync(join(h, unitCgroup))),
    () => rmSync(dir, { recursive: true, force: true }),
  ]));

test('sd-login and ps see a registered and a created machine', async () => {
  await client.call('/org/freedesktop/machine1', MGR, 'RegisterMachineWithNetwork', 'sayssusai', ['sdl-reg', Buffer.alloc(0), '', 'container', registered.pid, '', [registered.hostIfIndex]]);
  await client.call('/org/freedesktop/machine1', MGR, 'CreateMachineWithNetwork', 'sayssusaia(sv)', ['sdl-made', Buffer.alloc(0), '', 'container', created.pid, '', [created.hostIfIndex, 7], []]);
  const r = await runInSystemdNs(bus, daemon.stateDir, [program, String(registered.pid), String(created.pid), String(process.pid)]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.deepEqual(lines.filter((l) => l.startsWith('machine ')).sort(), [
    `machine sdl-made class container ifindices ${created.hostIfIndex} 7`,
    `machine sdl-reg class container ifindices ${registered.hostIfIndex}`,
  ]);
  assert.deepEqual(lines.filter((l) => l.startsWith('pid ')), [
    `pid ${registered.pid} machine sdl-reg`,
    `pid ${created.pid} machine sdl-made`,
    `pid ${process.pid} machine No data available`,
  ]);
  const ps = await runInSystemdNs(bus, daemon.stateDir, ['ps', '-o', 'pid=,machine=', '-p', `${registered.pid},${created.pid}`]);
  const machines = Object.fromEntries(ps.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/)));
  assert.deepEqual(machines, { [registered.pid]: 'sdl-reg', [created.pid]: 'sdl-made' });

  // Gone from sd-login's view once unregistered.
  await client.call('/org/freedesktop/machine1', MGR, 'UnregisterMachine', 's', ['sdl-reg']);
  const again = await runInSystemdNs(bus, daemon.stateDir, [program, String(registered.pid)]);
  assert.match(again.stdout, /^machine sdl-made /m);
  assert.doesNotMatch(again.stdout, /^machine sdl-reg/m);
  assert.match(again.stdout, new RegExp(`^pid ${registered.pid} machine No such file or directory`, 'm'));
});
