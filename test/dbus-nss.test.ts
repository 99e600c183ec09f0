// Debian's own nss-mymachines (libnss-mymachines, systemd 252) resolving machines through our D-Bus service
// and state files: it reads CLASS= and NETIF= from /run/systemd/machines/<name> and calls
// GetMachineAddresses on the system bus. The package is unpacked into a temporary directory, never
// installed: its maintainer script would edit the host's /etc/nsswitch.conf.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { run } from './helpers/run.js';
import { type Bus, busClient, runInSystemdNs, startBus } from './helpers/dbus.js';

const MGR = 'org.freedesktop.machine1.Manager';

let dir: string;
let libDir = '';
let why = '';
let bus: Bus;
let daemon: Daemon;
let client: Awaited<ReturnType<typeof busClient>>;
let ct: Container;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-dbus-nss-'));
  chmodSync(dir, 0o755);
  const dl = await run('sh', ['-c', `cd '${dir}' && apt-get download libnss-mymachines && dpkg -x libnss-mymachines_*.deb pkg`], { timeoutMs: 120_000 });
  libDir = join(dir, 'pkg/usr/lib/x86_64-linux-gnu');
  if (dl.code !== 0 || !existsSync(join(libDir, 'libnss_mymachines.so.2'))) {
    why = `cannot fetch Debian's libnss-mymachines: ${dl.stderr.trim().split('\n').pop()}`;
    return;
  }
  writeFileSync(join(dir, 'nsswitch.conf'), 'hosts: mymachines\n');
  bus = await startBus(join(dir, 'bus'));
  daemon = await startDaemon({ bus: bus.address });
  client = await busClient(bus);
  ct = await makeContainer({ ipv4: { host: '10.77.81.1', inside: '10.77.81.2' }, ipv6: { host: 'fd77:81::1', inside: 'fd77:81::2' } });
});

after(async () => {
  client?.close();
  await daemon?.stop();
  daemon?.cleanup();
  await bus?.stop();
  await removeAllContainers();
  rmSync(dir, { recursive: true, force: true });
});

/** getent with Debian's module as the only hosts source. */
const getent = (...args: string[]) =>
  runInSystemdNs(bus, daemon.stateDir, ['env', `LD_LIBRARY_PATH=${libDir}`, 'getent', ...args], { binds: [[join(dir, 'nsswitch.conf'), '/etc/nsswitch.conf']] });

test("Debian's libnss_mymachines.so.2 resolves a container registered over D-Bus", async (t) => {
  if (why) return t.skip(why);
  await client.call('/org/freedesktop/machine1', MGR, 'RegisterMachineWithNetwork', 'sayssusai', ['nss-ct', Buffer.alloc(0), '', 'container', ct.pid, '', [ct.hostIfIndex]]);
  assert.ok(readdirSync(daemon.stateDir).includes('nss-ct'));
  const v4 = await getent('ahostsv4', 'nss-ct');
  assert.equal(v4.code, 0, v4.stderr);
  assert.match(v4.stdout, /^10\.77\.81\.2\s+STREAM nss-ct$/m);
  const all = await getent('ahosts', 'nss-ct');
  assert.equal(all.code, 0, all.stderr);
  const addrs = [...new Set(all.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]))];
  // getaddrinfo reorders (RFC 3484); the scope is the one interface the machine registered.
  assert.deepEqual(addrs.map((a) => a.replace(/^fe80::.*%/, 'fe80::%')).sort(), ['10.77.81.2', `fd77:81::2%${ct.hostIfIndex}`, `fe80::%${ct.hostIfIndex}`]);
  const hosts = await getent('hosts', 'nss-ct');
  assert.equal(hosts.code, 0);
  // Not a machine: NOTFOUND (getent exits 2); a container sharing the host's network: not resolved.
  assert.equal((await getent('hosts', 'no-such-machine')).code, 2);
  const shared = await makeContainer({ hostNetwork: true });
  await client.call('/org/freedesktop/machine1', MGR, 'RegisterMachine', 'sayssus', ['nss-shared', Buffer.alloc(0), '', 'container', shared.pid, '']);
  assert.equal((await getent('hosts', 'nss-shared')).code, 2);
  // Unregistered: no longer resolved.
  await client.call('/org/freedesktop/machine1', MGR, 'UnregisterMachine', 's', ['nss-ct']);
  assert.equal((await getent('ahostsv4', 'nss-ct')).code, 2);
});
