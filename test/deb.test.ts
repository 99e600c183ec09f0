// The Debian package: make deb, lintian, the maintainer scripts' edits of nsswitch.conf, and the package
// installed, used, removed and purged in a throwaway root, never on this machine's own system.
//
// The root is this machine's own Debian system seen through an overlay whose upper layer is a tmpfs,
// mounted at build/test-root/mnt in a mount namespace that a holder process (`sleep`) keeps for the
// test: dpkg, the init scripts and the daemon run chrooted there (nsenter into the holder's mounts), so
// everything they write goes to the tmpfs, which goes with the namespace. The Debian packages installed
// there besides ours (libnss-mymachines, OpenRC) are fetched into build/debs once.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { ROOT } from './helpers/daemon.js';
import { debianDeb } from './helpers/debian-debs.js';
import { processTree, readSmallFile } from '../src/registry/linux/proc.js';
import { alive, endChild, run, waitFor, type RunResult } from './helpers/run.js';

const VERSION = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
const DEB = join(ROOT, `build/deb/mymachines_${VERSION}_amd64.deb`);
const TEST_ROOT = join(ROOT, 'build/test-root');
const R = join(TEST_ROOT, 'mnt');
// The checkout's build/ inside the root (its own /tmp is a tmpfs, and the checkout may be anywhere).
const IN_ROOT = '/srv/mymachines-build';
const inRootPath = (hostPath: string) => hostPath.replace(join(ROOT, 'build'), IN_ROOT);
const POSTINST = join(ROOT, 'debian/mymachines.postinst');
const POSTRM = join(ROOT, 'debian/mymachines.postrm');

let holder: ChildProcess | undefined;
const scratch = mkdtempSync(join(tmpdir(), 'mymachines-deb-'));

/** Runs a command in the holder's mount namespace (`chroot: true`: chrooted into the test root). */
function inNs(args: string[], o: { chroot?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  const cmd = o.chroot === false ? args : ['chroot', R, ...args];
  return run('nsenter', ['-t', String(holder!.pid), '-m', '--', ...cmd], { timeoutMs: o.timeoutMs ?? 120_000 });
}
const inRoot = (args: string[], timeoutMs?: number) => inNs(args, { timeoutMs });
async function mustInRoot(args: string[]): Promise<string> {
  const r = await inRoot(args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}
const readInRoot = (path: string) => mustInRoot(['cat', path]);

const SETUP = `set -e
mount -t tmpfs mymachines-test-root "$1"
mkdir "$1/upper" "$1/work"
mount -t overlay mymachines-test-root -o "lowerdir=/,upperdir=$1/upper,workdir=$1/work" "$2"
mount -t proc proc "$2/proc"
mount --rbind /sys "$2/sys"
mount --rbind /dev "$2/dev"
mount -t tmpfs tmpfs "$2/run"
mount -t tmpfs tmpfs "$2/tmp"
mkdir -p "$2${IN_ROOT}"
mount --bind -o ro "$3" "$2${IN_ROOT}"
# Nothing that a package installs is started by its maintainer scripts.
printf '#!/bin/sh\\nexit 101\\n' > "$2/usr/sbin/policy-rc.d"
chmod 755 "$2/usr/sbin/policy-rc.d"
`;

before(async () => {
  const r = await run('make', ['-s', '-C', ROOT, 'deb'], { timeoutMs: 600_000 });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  mkdirSync(join(TEST_ROOT, 'layer'), { recursive: true });
  mkdirSync(R, { recursive: true });
  holder = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sleep', 'infinity'], { stdio: 'ignore' });
  await waitFor('the holder namespace', async () => ((await run('readlink', [`/proc/${holder!.pid}/ns/mnt`])).stdout !== (await run('readlink', ['/proc/self/ns/mnt'])).stdout ? true : undefined));
  const s = await inNs(['sh', '-c', SETUP, 'sh', join(TEST_ROOT, 'layer'), R, join(ROOT, 'build')], { chroot: false });
  assert.equal(s.code, 0, s.stderr);
});

/** PIDs of the processes the test started in the root, ended in after() if a test failed midway. */
const rootPids = new Set<number>();

after(async () => {
  await removeAllContainers();
  for (const pid of rootPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  // The holder's end takes the namespace, its mounts and the tmpfs with it.
  if (holder && holder.exitCode === null) {
    const exited = new Promise((r) => holder!.once('exit', r));
    holder.kill('SIGKILL');
    await exited;
  }
  rmSync(scratch, { recursive: true, force: true });
});

test('lintian finds no errors in the package; the warnings left are known', async () => {
  const r = await run('lintian', ['--tag-display-limit', '0', DEB], { timeoutMs: 300_000 });
  const tags = r.stdout.split('\n').filter((l) => /^[EW]: /.test(l));
  assert.deepEqual(tags.filter((l) => l.startsWith('E: ')), [], r.stdout);
  // dh_fixperms takes the executable bit off every .js outside /usr/lib/nodejs, also off the npm
  // packages' own command-line scripts, which mymachines never runs.
  assert.deepEqual(tags.filter((l) => !/^W: mymachines: script-not-executable \[usr\/lib\/mymachines\/node_modules\/[^ ]+\.js\]$/.test(l)), [], r.stdout);
});

/** Runs postinst configure (first installation) on this nsswitch.conf, then postrm purge on what the
 *  administrator made of it meanwhile; gives the file after each, through DPKG_ROOT. */
async function scripts(before: string, edit: (afterInstall: string) => string = (s) => s): Promise<{ installed: string; purged: string; out: string }> {
  const root = mkdtempSync(join(scratch, 'root-'));
  mkdirSync(join(root, 'etc'));
  const file = join(root, 'etc/nsswitch.conf');
  writeFileSync(file, before);
  const env = { ...process.env, DPKG_ROOT: root };
  const i = await run('sh', [POSTINST, 'configure', ''], { env });
  assert.equal(i.code, 0, i.stderr);
  const installed = readFileSync(file, 'utf8');
  writeFileSync(file, edit(installed));
  const p = await run('sh', [POSTRM, 'purge'], { env });
  assert.equal(p.code, 0, p.stderr);
  return { installed, purged: readFileSync(file, 'utf8'), out: i.stdout + p.stdout };
}

test('postinst adds mymachines as libnss-mymachines does; purge gives back the file as it was', async () => {
  const cases: [string, string][] = [
    // Debian 12's file with libnss-systemd: hosts only, before dns.
    ['passwd:         files systemd\ngroup:          files systemd\n\nhosts:          files dns\nnetworks:       files\n', 'passwd:         files systemd\ngroup:          files systemd\n\nhosts:          files mymachines dns\nnetworks:       files\n'],
    // Without nss-systemd: passwd and group too, after files.
    ['passwd: files\ngroup: files\nhosts: files\n', 'passwd: files mymachines\ngroup: files mymachines\nhosts: files mymachines\n'],
    // Before resolve, and before a source whose action would end the lookup on NOTFOUND.
    ['hosts:\tfiles myhostname resolve [!UNAVAIL=return] dns # resolved\n', 'hosts:\tfiles myhostname mymachines resolve [!UNAVAIL=return] dns # resolved\n'],
    ['hosts: files mdns4_minimal [NOTFOUND=return] dns\n', 'hosts: files mymachines mdns4_minimal [NOTFOUND=return] dns\n'],
    // A line that names mymachines already is left as it is.
    ['hosts: files dns mymachines\npasswd: compat\n', 'hosts: files dns mymachines\npasswd: compat mymachines\n'],
  ];
  for (const [before, expected] of cases) {
    const r = await scripts(before);
    assert.equal(r.installed, expected, before);
    assert.equal(r.purged, before, `purge gives back ${JSON.stringify(before)}`);
  }
});

test("purge leaves an administrator's own edits alone", async () => {
  const before = 'passwd: files systemd\ngroup: files systemd\nhosts: files dns\n';
  // A source added after ours stays; only mymachines goes.
  let r = await scripts(before, (s) => s.replace('mymachines dns', 'mymachines myhostname dns'));
  assert.equal(r.purged, 'passwd: files systemd\ngroup: files systemd\nhosts: files myhostname dns\n');
  // Taken out by the administrator already: nothing to do.
  r = await scripts(before, (s) => s.replace('mymachines ', ''));
  assert.equal(r.purged, before);
  // An action the administrator put after mymachines would belong to files without it: the line stays.
  r = await scripts(before, (s) => s.replace('mymachines dns', 'mymachines [NOTFOUND=return] dns'));
  assert.equal(r.purged, 'passwd: files systemd\ngroup: files systemd\nhosts: files mymachines [NOTFOUND=return] dns\n');
  assert.match(r.out, /left the hosts: line of \/etc\/nsswitch.conf alone: an action follows mymachines there/);
  // Other lines the administrator changed are not touched.
  r = await scripts(before, (s) => s.replace('group: files systemd', 'group: files [SUCCESS=merge] systemd'));
  assert.equal(r.purged, 'passwd: files systemd\ngroup: files [SUCCESS=merge] systemd\nhosts: files dns\n');
});

let nsswitchBefore = '';

test("the package replaces Debian's libnss-mymachines, which has a file of the same name (Conflicts, Replaces, Provides)", async () => {
  nsswitchBefore = await readInRoot('/etc/nsswitch.conf');
  const theirs = await debianDeb('libnss-mymachines');
  await mustInRoot(['dpkg', '-i', inRootPath(theirs)]);
  const r = await inRoot(['dpkg', '-i', inRootPath(DEB)]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /dpkg: yes, will remove libnss-mymachines:amd64 in favour of mymachines/);
  assert.equal(await mustInRoot(['dpkg-query', '-W', '-f', '${Status}', 'libnss-mymachines']), 'install ok config-files');
  assert.equal(await mustInRoot(['dpkg-query', '-S', '/lib/x86_64-linux-gnu/libnss_mymachines.so.2']), 'mymachines: /lib/x86_64-linux-gnu/libnss_mymachines.so.2\n');
  assert.ok((await inNs(['grep', '-c', 'MYMACHINES_SOCKET', join(R, 'lib/x86_64-linux-gnu/libnss_mymachines.so.2')], { chroot: false })).stdout.trim() !== '0', 'the module is ours');
  // Both purged, nsswitch.conf is as it was before either.
  await mustInRoot(['dpkg', '--purge', 'mymachines', 'libnss-mymachines']);
  assert.equal(await readInRoot('/etc/nsswitch.conf'), nsswitchBefore);
});

test('install: the files, the services enabled, systemd-container’s activation file diverted, nsswitch.conf', async () => {
  const out = await mustInRoot(['dpkg', '-i', inRootPath(DEB)]);
  assert.match(out, /mymachines: added mymachines to \/etc\/nsswitch.conf: hosts:/);
  assert.equal((await inRoot(['test', '-e', '/run/mymachines/io.systemd.Machine'])).code, 1, 'not started (policy-rc.d)');
  const files = (await mustInRoot(['dpkg', '-L', 'mymachines'])).split('\n');
  for (const f of [
    '/usr/bin/mymachinesd',
    '/usr/bin/mymachinesctl',
    '/lib/x86_64-linux-gnu/libnss_mymachines.so.2',
    '/lib/systemd/system/mymachinesd.service',
    '/etc/init.d/mymachinesd',
    '/usr/share/dbus-1/system-services/org.freedesktop.machine1.service',
    '/usr/share/dbus-1/system.d/mymachines.conf',
    '/usr/share/bash-completion/completions/mymachinesctl',
    '/usr/share/man/man1/mymachinesctl.1.gz',
    '/usr/share/man/man8/mymachinesd.8.gz',
    '/usr/share/man/man8/nss-mymachines.8.gz',
  ]) assert.ok(files.includes(f), `${f} in the package`);
  assert.equal(await mustInRoot(['mymachinesd', '--version']), `mymachinesd ${VERSION}\n`);
  assert.equal(await mustInRoot(['readlink', '/etc/systemd/system/dbus-org.freedesktop.machine1.service']), '/lib/systemd/system/mymachinesd.service\n');
  assert.equal(await mustInRoot(['readlink', '/etc/systemd/system/multi-user.target.wants/mymachinesd.service']), '/lib/systemd/system/mymachinesd.service\n');
  assert.match(await mustInRoot(['ls', '/etc/rc2.d']), /S\d\dmymachinesd/);
  assert.equal(await mustInRoot(['dpkg-divert', '--list', 'mymachines']), 'diversion of /usr/share/dbus-1/system-services/org.freedesktop.machine1.service to /usr/share/dbus-1/system-services/org.freedesktop.machine1.service.systemd-container by mymachines\n');
  assert.match(await readInRoot('/usr/share/dbus-1/system-services/org.freedesktop.machine1.service'), /^SystemdService=mymachinesd.service$/m);
  assert.match(await readInRoot('/usr/share/dbus-1/system-services/org.freedesktop.machine1.service.systemd-container'), /^SystemdService=dbus-org.freedesktop.machine1.service$/m);
  assert.equal(await readInRoot('/etc/nsswitch.conf'), nsswitchBefore.replace(/^(hosts:\s+files )/m, '$1mymachines '));
});

let busPid = 0;

test("the installed daemon, started by its init script, does the demo's job: names, addresses, users, machinectl", async () => {
  // The root's own system bus, with the package's bus policy.
  busPid = Number((await mustInRoot(['sh', '-c', 'mkdir -p /run/dbus && exec dbus-daemon --system --fork --print-pid'])).trim());
  rootPids.add(busPid);
  assert.equal((await mustInRoot(['/etc/init.d/mymachinesd', 'start'])).trim(), 'Starting mymachines registry: mymachinesd.');
  const pid = Number((await readInRoot('/run/mymachinesd.pid')).trim());
  rootPids.add(pid);
  assert.equal(await mustInRoot(['/etc/init.d/mymachinesd', 'status']), `mymachinesd is running (PID ${pid})\n`);
  await waitFor('the daemon on the bus', async () => ((await inRoot(['busctl', 'status', 'org.freedesktop.machine1'])).code === 0 ? true : undefined), 15_000);

  let c: Container | undefined = await makeContainer({ idMap: [{ base: 0, shift: 100000, range: 65536 }], ipv4: { host: '10.77.240.1', inside: '10.77.240.2' }, ipv6: { host: 'fd77:240::1', inside: 'fd77:240::2' } });
  try {
    await mustInRoot(['mymachinesctl', 'register', 'debweb1', '--leader', String(c.pid), '--service', 'demo', '--netif', String(c.hostIfIndex)]);
    assert.match(await mustInRoot(['mymachinesctl', 'list']), /^debweb1 +container +demo /m);
    // Through the root's nsswitch.conf as postinst left it, and the package's module.
    assert.equal(await mustInRoot(['getent', 'ahostsv4', 'debweb1']), '10.77.240.2     STREAM debweb1\n10.77.240.2     DGRAM  \n10.77.240.2     RAW    \n');
    assert.equal(await mustInRoot(['getent', 'hosts', '10.77.240.2']), '10.77.240.2     debweb1\n');
    assert.equal(await mustInRoot(['getent', 'hosts', 'fd77:240::2']), 'fd77:240::2     debweb1\n');
    assert.match(await mustInRoot(['ping', '-c1', '-W2', 'debweb1']), /1 packets transmitted, 1 received/);
    // Through nss-systemd, which asks the daemon's userdb socket.
    assert.equal(await mustInRoot(['getent', 'passwd', 'vu-debweb1-0']), 'vu-debweb1-0:x:100000:65534:UID 0 of Container debweb1:/:/usr/sbin/nologin\n');
    // machinectl, over the root's bus, with the package's policy (/run/systemd/system: it wants systemd
    // as PID 1, which it does not need for this).
    await mustInRoot(['mkdir', '-p', '/run/systemd/system']);
    assert.match(await mustInRoot(['machinectl', 'list', '--no-legend']), /^debweb1 +container +demo /m);
    // Else the LSB functions would hand the init script over to systemctl.
    await mustInRoot(['rmdir', '/run/systemd/system']);
    const doctor = await mustInRoot(['mymachinesctl', 'doctor']);
    assert.equal(doctor.split('\n').filter((l) => l.startsWith('ok   ')).length, 6, doctor);
    assert.match(doctor, new RegExp(`mymachinesd \\(PID ${pid}\\) owns org.freedesktop.machine1`));
    // Its leader exits: the machine goes with it.
    await c.remove();
    c = undefined;
    await waitFor('the machine to go', async () => ((await inRoot(['getent', 'hosts', 'debweb1'])).code === 2 ? true : undefined), 5000);
  } finally {
    await c?.remove();
  }
  assert.equal((await mustInRoot(['/etc/init.d/mymachinesd', 'stop'])).trim(), 'Stopping mymachines registry: mymachinesd.');
  assert.equal((await inRoot(['/etc/init.d/mymachinesd', 'status'])).code, 3);
  await waitFor('the daemon to exit', () => (!alive(pid) ? true : undefined));
  rootPids.delete(pid);
  assert.equal((await inRoot(['test', '-e', '/run/mymachines/io.systemd.Machine'])).code, 1, 'its socket is removed');
});

/** The PID (here) of the systemd that systemd-nspawn `pid` booted: the first one below it. */
const bootedInit = (pid: number) => processTree(pid).slice(1).find((p) => readSmallFile(`/proc/${p}/comm`)?.trim() === 'systemd');

test('under systemd as PID 1 (this system with the package, booted by systemd-nspawn): started at boot and ready, scopes from PID 1, bind, shell, copy, a crash restarted, D-Bus activation', { timeout: 240_000 }, async () => {
  // The root boots with an overlay of its own over it (--volatile=overlay: what the boot writes goes
  // with the container), on a private network, registered nowhere; nspawn's own files go to a tmpfs
  // over /run/systemd, never the host's.
  const boot = spawn('nsenter', ['-t', String(holder!.pid), '-m', '--', 'unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c',
    'mount -t tmpfs tmpfs /run/systemd && exec systemd-nspawn --quiet -D "$1" --volatile=overlay --register=no --keep-unit --private-network -M mmdebboot --boot', 'sh', R],
  { env: { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  boot.stdout!.on('data', (d) => (output += d));
  boot.stderr!.on('data', (d) => (output += d));
  try {
    const init = await waitFor('the booted systemd', () => bootedInit(boot.pid!), 30_000).catch((e) => {
      throw new Error(`${(e as Error).message}: ${output}`);
    });
    const inBoot = (args: string[]) => run('nsenter', ['-t', String(init), '-a', '--', ...args], { timeoutMs: 60_000 });
    const mustInBoot = async (args: string[]) => {
      const r = await inBoot(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    const show = async (unit: string, ...props: string[]) => Object.fromEntries((await mustInBoot(['systemctl', 'show', unit, ...props.map((p) => `-p${p}`)])).trim().split('\n').map((l) => l.split('=', 2)));
    const journal = () => inBoot(['journalctl', '-u', 'mymachinesd.service', '--no-pager', '-o', 'cat']).then((r) => r.stdout);

    // Enabled by the package: started at boot, and ready (READY=1) with the unit's sandboxing.
    await waitFor('mymachinesd to be active', async () => ((await inBoot(['systemctl', 'is-active', 'mymachinesd.service'])).stdout.trim() === 'active' ? true : undefined), 90_000)
      .catch(async (e) => assert.fail(`${(e as Error).message}; the unit's journal:\n${await journal()}`));
    const first = await show('mymachinesd.service', 'Type', 'SubState', 'NRestarts', 'MainPID', 'WatchdogUSec');
    assert.deepEqual({ ...first, MainPID: undefined }, { Type: 'notify', SubState: 'running', NRestarts: '0', MainPID: undefined, WatchdogUSec: '3min' });
    assert.match(await journal(), /"msg":"ready"/);

    // A machine whose scope PID 1 makes (StartTransientUnit), its leader started by PID 1 too.
    await mustInBoot(['systemd-run', '--quiet', '--unit=mmtest-c1', '-p', 'Type=exec', 'unshare', '--mount', '--propagation', 'private', '--net', 'sleep', '600']);
    const leader = Number((await show('mmtest-c1.service', 'MainPID')).MainPID);
    assert.ok(leader > 0);
    await mustInBoot(['mymachinesctl', 'register', 'c1', '--leader', String(leader), '--create']);
    assert.equal((await mustInBoot(['systemctl', 'is-active', 'machine-c1.scope'])).trim(), 'active');
    assert.match(await mustInBoot(['machinectl', 'status', 'c1', '--no-pager']), /^\s+Unit: machine-c1\.scope$/m);

    // The verbs that need the host's mounts and capabilities (no mount namespace of the daemon's own).
    await mustInBoot(['sh', '-c', 'mkdir -p /srv/bindsrc && echo bound > /srv/bindsrc/file']);
    await mustInBoot(['machinectl', 'bind', '--mkdir', 'c1', '/srv/bindsrc', '/mnt/bound']);
    assert.equal(await mustInBoot(['nsenter', '-t', String(leader), '-m', 'cat', '/mnt/bound/file']), 'bound\n');
    await mustInBoot(['machinectl', 'copy-to', 'c1', '/etc/hostname', '/tmp/copied']);
    assert.equal(await mustInBoot(['nsenter', '-t', String(leader), '-m', 'cat', '/tmp/copied']), await mustInBoot(['cat', '/etc/hostname']));
    const shell = await mustInBoot(['sh', '-c', 'machinectl shell c1 /bin/sh -c "echo hi; id -un" </dev/null']);
    assert.match(shell.replace(/\r/g, ''), /^hi\nroot$/m);

    // Killed: Restart=on-failure starts it again, and it takes the machine back from its state file.
    // (MainPID is a PID of the container's PID namespace: the signal is sent from inside.)
    await mustInBoot(['kill', '-KILL', first.MainPID]);
    const again = await waitFor('the restart', async () => {
      const now = await show('mymachinesd.service', 'SubState', 'NRestarts', 'MainPID');
      return now.SubState === 'running' && now.MainPID !== first.MainPID && now.MainPID !== '0' ? now : undefined;
    }, 30_000);
    assert.equal(again.NRestarts, '1');
    assert.match(await mustInBoot(['machinectl', 'list', '--no-legend']), /^c1 +container /m);

    // Stopped, it is started again by the first call to org.freedesktop.machine1 (D-Bus activation).
    await mustInBoot(['systemctl', 'stop', 'mymachinesd.service']);
    assert.equal((await inBoot(['systemctl', 'is-active', 'mymachinesd.service'])).stdout.trim(), 'inactive');
    assert.match(await mustInBoot(['machinectl', 'list', '--no-legend']), /^c1 +container /m);
    assert.equal((await mustInBoot(['systemctl', 'is-active', 'mymachinesd.service'])).trim(), 'active');
  } finally {
    // SIGTERM: nspawn powers the container off; what it started goes with it.
    await endChild(boot, 20_000);
  }
});

test("the OpenRC script under Debian's OpenRC: start, status, a crash restarted by supervise-daemon, stop", async () => {
  const debs = await Promise.all(['libeinfo1', 'librc1', 'insserv', 'openrc'].map(debianDeb));
  await mustInRoot(['dpkg', '-i', ...debs.map(inRootPath)]);
  // make install INITSCRIPT=openrc's script for this package's paths, beside the package's LSB one.
  const script = readFileSync(join(ROOT, 'data/openrc/mymachinesd.in'), 'utf8').replaceAll('@bindir@', '/usr/bin');
  writeFileSync(join(scratch, 'openrc'), script);
  await inNs(['cp', join(scratch, 'openrc'), join(R, 'etc/init.d/mymachinesd-openrc')], { chroot: false });
  await mustInRoot(['chmod', '755', '/etc/init.d/mymachinesd-openrc']);
  // OpenRC runs services only on a system it booted, which it tells by this file.
  await mustInRoot(['sh', '-c', 'mkdir -p /run/openrc && touch /run/openrc/softlevel']);
  const started = await inRoot(['/etc/init.d/mymachinesd-openrc', 'start']);
  assert.equal(started.code, 0, started.stdout + started.stderr);
  assert.match(await mustInRoot(['/etc/init.d/mymachinesd-openrc', 'status']), /status: started/);
  assert.equal(await mustInRoot(['mymachinesctl', 'list']), '0 machines listed.\n');
  const daemonPid = async () => Number((await mustInRoot(['sh', '-c', "ps -eo pid=,args= | awk '$2 == \"node\" && $3 == \"/usr/bin/mymachinesd\" { print $1 }'"])).trim());
  const first = await daemonPid();
  rootPids.add(first);
  process.kill(first, 'SIGKILL');
  const second = await waitFor('supervise-daemon to start it again', async () => {
    const p = await daemonPid().catch(() => 0);
    return p > 0 && p !== first ? p : undefined;
  }, 10_000);
  rootPids.add(second);
  await waitFor('the restarted daemon to answer', async () => ((await inRoot(['mymachinesctl', 'list'])).code === 0 ? true : undefined), 10_000);
  const stopped = await inRoot(['/etc/init.d/mymachinesd-openrc', 'stop']);
  assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
  await waitFor('the daemon to exit', () => (!alive(second) ? true : undefined));
  assert.match((await inRoot(['/etc/init.d/mymachinesd-openrc', 'status'])).stdout, /status: stopped/);
  await mustInRoot(['rm', '/etc/init.d/mymachinesd-openrc']);
  // Back to sysvinit's rc for the rest, as the root was.
  await mustInRoot(['dpkg', '--purge', 'openrc', 'insserv', 'librc1', 'libeinfo1']);
});

test('remove, then purge: the files, the diversion, the enabled links and the nsswitch.conf entry go; nsswitch.conf is as before', async () => {
  process.kill(busPid, 'SIGTERM');
  await waitFor('the root bus to exit', () => (!alive(busPid) ? true : undefined));
  rootPids.delete(busPid);
  await mustInRoot(['dpkg', '-r', 'mymachines']);
  assert.equal((await inRoot(['test', '-e', '/usr/bin/mymachinesd'])).code, 1);
  assert.equal((await inRoot(['test', '-e', '/lib/x86_64-linux-gnu/libnss_mymachines.so.2'])).code, 1);
  assert.equal(await mustInRoot(['dpkg-divert', '--list', 'mymachines']), '');
  assert.match(await readInRoot('/usr/share/dbus-1/system-services/org.freedesktop.machine1.service'), /^SystemdService=dbus-org.freedesktop.machine1.service$/m, "systemd-container's activation file is back");
  // Configuration stays until purge: the init script (a conffile) and the nsswitch.conf entry.
  assert.match(await readInRoot('/etc/nsswitch.conf'), /^hosts:\s+files mymachines dns$/m);
  assert.equal((await inRoot(['test', '-e', '/etc/init.d/mymachinesd'])).code, 0);
  await mustInRoot(['dpkg', '--purge', 'mymachines']);
  assert.equal(await readInRoot('/etc/nsswitch.conf'), nsswitchBefore);
  for (const f of ['/etc/init.d/mymachinesd', '/var/lib/mymachines', '/etc/systemd/system/dbus-org.freedesktop.machine1.service', '/etc/systemd/system/multi-user.target.wants/mymachinesd.service', '/usr/lib/mymachines']) {
    assert.equal((await inRoot(['test', '-e', f])).code, 1, `${f} is gone`);
  }
  assert.equal((await inRoot(['dpkg-query', '-W', 'mymachines'])).code, 1);
});
