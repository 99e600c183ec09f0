// A container that runs systemd: shells and logins go through its own service manager, as machined does
// (a transient container-shell@N.service, container-getty@N.service). systemd-nspawn (252, the host's)
// boots the sid root (systemd 262) with a volatile overlay, so the cached root is never written, and
// registers it with mymachinesd over our private bus.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { type Bus, busClient, startBus, systemdNsArgv } from './helpers/dbus.js';
import { run, waitFor } from './helpers/run.js';
import { withMachinectlTerminal } from './helpers/terminal.js';
import { sidRoot } from './helpers/sid-root.js';

const NAME = 'sysd1';
let dir: string;
let bus: Bus;
let daemon: Daemon;
let nspawn: ChildProcess;
let exited: Promise<unknown>;
let leader = 0;
let out = '';


before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-systemd-'));
  chmodSync(dir, 0o755);
  bus = await startBus(join(dir, 'bus'));
  daemon = await startDaemon({ bus: bus.address });
  const argv = systemdNsArgv(daemon.stateDir, [
    'systemd-nspawn', '--quiet', '--register=yes', '--keep-unit', '-D', sidRoot(), '--volatile=overlay', '-M', NAME, '--boot',
  ]);
  // systemd 262 needs the unified cgroup hierarchy inside, whatever the host has.
  nspawn = spawn(argv[0], argv.slice(1), { env: { ...bus.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  nspawn.stdout!.on('data', (d) => (out += d));
  nspawn.stderr!.on('data', (d) => (out += d));
  exited = new Promise((r) => nspawn.once('exit', r));
  const client = await busClient(bus);
  try {
    await waitFor('nspawn to register', async () => {
      const [path] = await client.call('/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager', 'GetMachine', 's', [NAME]).catch(() => [undefined]);
      if (!path) return undefined;
      const [v] = await client.call(path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', ['org.freedesktop.machine1.Machine', 'Leader']);
      leader = v.value;
      return true;
    }, 30_000);
  } finally {
    client.close();
  }
  // Booted far enough: its system bus is up.
  await waitFor('the container\'s system bus', () => (existsSync(`/proc/${leader}/root/run/dbus/system_bus_socket`) && existsSync(`/proc/${leader}/root/run/systemd/system`) ? true : undefined), 60_000);
});

after(async () => {
  if (nspawn && nspawn.exitCode === null) {
    nspawn.kill('SIGTERM'); // nspawn powers the container off
    const t = setTimeout(() => nspawn.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  }
  await daemon?.stop();
  daemon?.cleanup();
  await bus?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs machinectl in a real terminal until `check` accepts the screen; on a timeout, the screen and the
 *  container's journal go into the error. */
function inTerminal(args: string[], check: (screen: string) => boolean, what: string): Promise<string> {
  return withMachinectlTerminal(bus, daemon.stateDir, dir, args, async ({ screen }) =>
    waitFor(what, async () => {
      const s = await screen();
      return check(s) ? s : undefined;
    }, 20_000).catch(async (e) => {
      const journal = await run('nsenter', ['-t', String(leader), '-a', 'sh', '-c', 'journalctl --no-pager -n 8 -o cat; ls -la /dev/ptmx /dev/pts; cat /proc/1/mountinfo | grep -E "pts|/dev "']);
      throw new Error(`${(e as Error).message}; screen:\n${await screen()}\njournal:\n${journal.stdout}`);
    }));
}

// (machinectl 252 with its stdin not a terminal loses the output: systemd 262's terminal reset asks the
// terminal for its size and hangs the PTY up; through a real terminal it works, as people use it.)
test('machinectl shell into a container with systemd: a transient container-shell@ unit of its own systemd', { timeout: 60_000 }, async () => {
  const screen = await inTerminal(['shell', NAME, '/bin/sh', '-c', 'cat /proc/self/cgroup; echo user=$(id -un); sleep 20'], (s) => s.includes('user='), 'the output');
  assert.match(screen, /^0::\/system\.slice\/system-container\\x2dshell\.slice\/container-shell@\d+\.service$/m);
  assert.match(screen, /^user=root$/m);
  assert.match(daemon.output(), /"way":"service-manager"/);
});

test('machinectl login: the container\'s own getty (container-getty@N.service)', { timeout: 60_000 }, async () => {
  const screen = await inTerminal(['login', NAME], (s) => s.includes('login:'), 'the login prompt');
  assert.match(screen, /login:/);
  assert.match(daemon.output(), /"mode":"login".*"way":"service-manager"/);
});
