// mymachinesctl doctor on a good setup and on broken ones, each broken in one way, in a mount namespace of
// its own: a private nsswitch.conf, the module glibc finds (ours, systemd's from Debian's
// libnss-mymachines, or none), a tmpfs over /run/systemd with the userdb socket of the test's daemon, a
// read-only state directory, and the real systemd-machined on a bus of the test's own.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CTL, startDaemon, type Daemon } from './helpers/daemon.js';
import { startBus, type Bus } from './helpers/dbus.js';
import { debianDeb, unpackDeb } from './helpers/debian-debs.js';
import { MODULE } from './helpers/nss-env.js';
import { run } from './helpers/run.js';

const MACHINED = '/lib/systemd/systemd-machined';
const GOOD_NSSWITCH = 'passwd: files systemd\ngroup: files systemd\nhosts: files mymachines dns\n';

// $NSSWITCH over /etc/nsswitch.conf; $MODULE (if set) where glibc looks for libnss_mymachines.so.2;
// /run/systemd a tmpfs with $USERDB (if set) as its userdb directory; $RO_STATE (if set) a read-only
// tmpfs; $MACHINED (if set) started on $DBUS_SYSTEM_BUS_ADDRESS first. Then "$@".
const WORLD = `set -e
d=$1; shift
mount --bind "$NSSWITCH" /etc/nsswitch.conf
if [ -n "$MODULE" ]; then
  mount -t tmpfs doctor-lib "$d/mnt"
  mkdir "$d/mnt/upper" "$d/mnt/work"
  cp "$MODULE" "$d/mnt/upper/libnss_mymachines.so.2"
  mount -t overlay doctor-lib -o "lowerdir=$LIBDIR,upperdir=$d/mnt/upper,workdir=$d/mnt/work" "$LIBDIR"
fi
mkdir -p /run/systemd
mount -t tmpfs tmpfs /run/systemd
mkdir /run/systemd/userdb /run/systemd/machines
if [ -n "$USERDB" ]; then mount --bind "$USERDB" /run/systemd/userdb; fi
if [ -n "$RO_STATE" ]; then mount -t tmpfs -o ro tmpfs "$RO_STATE"; fi
if [ -n "$MACHINED" ]; then
  "$MACHINED" >/dev/null 2>&1 &
  machined=$!
  for i in $(seq 200); do busctl status org.freedesktop.machine1 >/dev/null 2>&1 && break; sleep 0.05; done
fi
status=0
"$@" || status=$?
if [ -n "$MACHINED" ]; then kill "$machined"; wait "$machined" || true; fi
exit $status
`;

let dir: string;
let daemon: Daemon;
let bus: Bus;
let systemdModule: string;
const libDir = realpathSync(`/lib/${execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim()}`);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-doctor-'));
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'mnt'));
  writeFileSync(join(dir, 'world.sh'), WORLD, { mode: 0o755 });
  bus = await startBus(join(dir, 'bus'));
  daemon = await startDaemon({ bus: bus.address });
  // systemd's own module, from Debian's libnss-mymachines, unpacked (not installed).
  await unpackDeb(await debianDeb('libnss-mymachines'), join(dir, 'systemd-module'));
  systemdModule = join(dir, 'systemd-module', libDir.replace(/^\/usr/, ''), 'libnss_mymachines.so.2');
  if (!existsSync(systemdModule)) systemdModule = join(dir, 'systemd-module', libDir, 'libnss_mymachines.so.2');
});

after(async () => {
  await daemon?.stop();
  daemon?.cleanup();
  await bus?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface World {
  nsswitch?: string;
  /** The module glibc finds: ours (default), systemd's, or none. */
  module?: 'ours' | 'systemd' | 'none';
  userdb?: boolean;
  stateDir?: string;
  readOnlyState?: boolean;
  socket?: string;
  /** The bus the doctor asks; machined: a bus of its own where systemd-machined runs. */
  busAddress?: string;
  machined?: boolean;
}

interface Finding {
  ok: boolean;
  line: string;
  fix?: string;
}

let worlds = 0;
async function doctor(w: World = {}): Promise<{ code: number | null; findings: Finding[]; stdout: string }> {
  const nss = join(dir, `nsswitch-${++worlds}.conf`);
  writeFileSync(nss, w.nsswitch ?? GOOD_NSSWITCH);
  const module = w.module === 'none' ? '' : w.module === 'systemd' ? systemdModule : MODULE;
  const stateDir = w.stateDir ?? daemon.stateDir;
  let machinedBus: Bus | undefined;
  if (w.machined) machinedBus = await startBus(join(dir, `machined-bus-${worlds}`));
  const env = {
    ...process.env,
    NSSWITCH: nss,
    MODULE: module,
    LIBDIR: libDir,
    // machined binds its own userdb socket there: never over the test daemon's.
    USERDB: w.userdb === false || w.machined ? '' : daemon.userdbDir,
    RO_STATE: w.readOnlyState ? stateDir : '',
    MACHINED: w.machined ? MACHINED : '',
    DBUS_SYSTEM_BUS_ADDRESS: machinedBus?.address ?? w.busAddress ?? bus.address,
  };
  try {
    const r = await run('unshare', ['-m', '--propagation', 'private', '--', join(dir, 'world.sh'), dir, process.execPath, CTL, '--socket', w.socket ?? daemon.socket, 'doctor', '--state-dir', stateDir], { env, timeoutMs: 60_000 });
    assert.equal(r.stderr, '');
    const findings: Finding[] = [];
    for (const l of r.stdout.split('\n').filter(Boolean)) {
      if (l.startsWith('     fix: ')) findings.at(-1)!.fix = l.slice('     fix: '.length);
      else findings.push({ ok: l.startsWith('ok   '), line: l.slice(5) });
    }
    return { code: r.code, findings, stdout: r.stdout };
  } finally {
    await machinedBus?.stop();
  }
}

/** Asserts that exactly the check at index `failing` fails, with this finding and fix. */
async function brokenIn(w: World, failing: number, line: string, fix: string) {
  const r = await doctor(w);
  assert.equal(r.findings.length, 6, r.stdout);
  assert.deepEqual(r.findings.map((f) => f.ok), [0, 1, 2, 3, 4, 5].map((i) => i !== failing), `${r.stdout}`);
  assert.equal(r.findings[failing].line, line);
  assert.equal(r.findings[failing].fix, fix);
  assert.equal(r.code, 1);
}

test('a good setup: every check holds, exit status 0', async () => {
  const r = await doctor();
  assert.deepEqual(r.findings.map((f) => f.ok), [true, true, true, true, true, true], r.stdout);
  assert.equal(r.findings[1].line, `glibc finds our libnss_mymachines.so.2: ${libDir}/libnss_mymachines.so.2`);
  assert.match(r.findings[3].line, new RegExp(`^systemd-machined is not running and does not own org.freedesktop.machine1: mymachinesd \\(PID ${daemon.proc.pid}\\) owns org.freedesktop.machine1$`));
  assert.equal(r.findings[5].line, 'nss-systemd (or our module) gives the vu-/vg- users and groups: nss-systemd (' + `${libDir}/libnss_systemd.so.2` + ') asks mymachinesd on /run/systemd/userdb/io.systemd.Machine');
  assert.equal(r.code, 0);
});

test('hosts: without mymachines, with dns first, or with an action that returns on NOTFOUND before it', async () => {
  const what = '/etc/nsswitch.conf asks mymachines for hosts, before dns';
  await brokenIn({ nsswitch: 'passwd: files systemd\ngroup: files systemd\nhosts: files dns\n' }, 0, `${what}: 'hosts: files dns' has no mymachines`, "add mymachines after files and before resolve and dns: 'hosts: files mymachines dns'");
  await brokenIn({ nsswitch: 'passwd: files systemd\ngroup: files systemd\nhosts: files dns mymachines\n' }, 0, `${what}: 'hosts: files dns mymachines' asks dns first: machine names go to the DNS servers, and a server that answers them hides the machine`, 'move mymachines before dns');
  await brokenIn({ nsswitch: 'passwd: files systemd\ngroup: files systemd\nhosts: files [NOTFOUND=return] mymachines dns\n' }, 0, `${what}: 'hosts: files [NOTFOUND=return] mymachines dns': [NOTFOUND=return] after files ends every lookup that files does not find, so mymachines is never asked`, 'move mymachines before files, or remove [NOTFOUND=return]');
  await brokenIn({ nsswitch: 'passwd: files systemd\ngroup: files systemd\nhosts: files resolve [!UNAVAIL=return] mymachines dns\n' }, 0, `${what}: 'hosts: files resolve [!UNAVAIL=return] mymachines dns': [!UNAVAIL=return] after resolve ends every lookup that resolve does not find, so mymachines is never asked`, 'move mymachines before resolve, or remove [!UNAVAIL=return]');
  // [!NOTFOUND=return] does not end a lookup on NOTFOUND.
  const r = await doctor({ nsswitch: 'passwd: files systemd\ngroup: files systemd\nhosts: files [!NOTFOUND=return] mymachines dns\n' });
  assert.equal(r.findings[0].ok, true, r.stdout);
});

test("the module: none where glibc looks, or systemd's (Debian's libnss-mymachines)", async () => {
  const r = await doctor({ module: 'none' });
  assert.equal(r.findings[1].ok, false, r.stdout);
  assert.match(r.findings[1].line, /^glibc finds our libnss_mymachines.so.2: not found where glibc looks \(.*cannot open shared object file: No such file or directory\)$/);
  assert.equal(r.findings[1].fix, "install mymachines' module: the mymachines package, or make install");
  assert.equal(r.code, 1);
  await brokenIn({ module: 'systemd' }, 1, `glibc finds our libnss_mymachines.so.2: ${libDir}/libnss_mymachines.so.2 is systemd's nss-mymachines (Debian's libnss-mymachines), which asks systemd-machined`, "install mymachines' module: the mymachines package, or make install (it replaces that file)");
});

test('the daemon does not answer', async () => {
  const socket = join(dir, 'no-daemon', 'io.systemd.Machine');
  await brokenIn({ socket }, 2, `mymachinesd answers on ${socket}: no such socket`, 'start it: systemctl start mymachinesd, rc-service mymachinesd start or /etc/init.d/mymachinesd start');
});

test('systemd-machined runs and owns org.freedesktop.machine1', async () => {
  const r = await doctor({ machined: true });
  assert.equal(r.findings[3].ok, false, r.stdout);
  assert.match(r.findings[3].line, /^systemd-machined is not running and does not own org.freedesktop.machine1: systemd-machined runs \(PID \d+\)$/);
  assert.equal(r.findings[3].fix, 'stop and mask it: systemctl disable --now systemd-machined.service && systemctl mask systemd-machined.service');
  assert.equal(r.code, 1);
});

test('the state directory is on a read-only file system', async () => {
  const stateDir = join(dir, 'ro-state');
  mkdirSync(stateDir);
  await brokenIn({ stateDir, readOnlyState: true }, 4, `the state directory ${stateDir} is writable: ${stateDir}: on a read-only file system`, `registrations fail until it is: run the daemon as root, with ${stateDir} on a writable tmpfs such as /run (mount -o remount,rw), or choose another with mymachinesd --state-dir`);
});

test('vu-/vg- records: passwd: without systemd or mymachines, or no userdb socket for nss-systemd', async () => {
  const what = 'nss-systemd (or our module) gives the vu-/vg- users and groups';
  await brokenIn({ nsswitch: 'passwd: files\ngroup: files systemd\nhosts: files mymachines dns\n' }, 5, `${what}: passwd: asks neither systemd nor mymachines`, 'add systemd (nss-systemd) after files on the passwd: line of /etc/nsswitch.conf, or mymachines on hosts without nss-systemd');
  await brokenIn({ userdb: false }, 5, `${what}: nss-systemd is there, but nothing answers on /run/systemd/userdb/io.systemd.Machine (connect ENOENT /run/systemd/userdb/io.systemd.Machine)`, "start mymachinesd without --userdb-dir '' (its default is /run/systemd/userdb)");
  // Our module on both lines needs no nss-systemd.
  const r = await doctor({ nsswitch: 'passwd: files mymachines\ngroup: files mymachines\nhosts: files mymachines dns\n', userdb: false });
  assert.equal(r.findings[5].ok, true, r.stdout);
  assert.equal(r.findings[5].line, `${what}: passwd: and group: ask mymachines`);
});

test('doctor checks its flag before it looks at anything', async () => {
  const r = await run(CTL, ['doctor', '--state-dir', 'relative']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, "mymachinesctl: invalid --state-dir 'relative': must be an absolute path\nTry 'mymachinesctl --help'.\n");
});
