// make install and make uninstall into a DESTDIR: what goes where, that only what runs here is installed
// and that it runs, the systemd unit as systemd-analyze verify sees it, the man pages against the
// programs' verbs and flags, the bash completion against the CLI and a daemon, and that uninstall takes
// back every file. Checks that need the files at their installed paths run in a mount namespace of
// their own with DESTDIR/usr/local bound over /usr/local. The build is not redone here (make -o
// build): other test files run from dist/ at the same time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ROOT, startDaemon } from './helpers/daemon.js';
import { startBus } from './helpers/dbus.js';
import { run, waitFor, type RunResult } from './helpers/run.js';
import { GLOBAL, verbs } from '../src/cli/main.js';

const dest = mkdtempSync(join(tmpdir(), 'mymachines-install-'));
after(() => rmSync(dest, { recursive: true, force: true }));

const multiarch = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
const make = (target: string) => run('make', ['-s', '-C', ROOT, '-o', 'build', target, `DESTDIR=${dest}`, 'INITSCRIPT=openrc'], { timeoutMs: 120_000 });
const PKG = 'usr/local/lib/mymachines';

/** Every file and symlink under dir, relative to it, sorted. */
function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

/** Runs a shell script with DESTDIR/usr/local at /usr/local, in a mount namespace of its own. */
function installed(script: string, env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return run('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', `set -e; mount --bind '${dest}/usr/local' /usr/local; ${script}`], { env, timeoutMs: 60_000 });
}

/** What `man PAGE` shows, as plain text on lines long enough not to be broken. */
async function manText(page: string): Promise<string> {
  const r = await installed(`MANWIDTH=1000 MAN_KEEP_FORMATTING= man ${page} | col -b`, { ...process.env, MANPAGER: 'cat', PAGER: 'cat' });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

let installedFiles: string[] = [];
before(async () => {
  const r = await make('install');
  assert.equal(r.code, 0, r.stderr);
  installedFiles = files(dest);
});

test('make install puts the programs, the NSS module, the service files, the man pages and the completion in place', () => {
  for (const f of [
    'usr/local/bin/mymachinesd',
    'usr/local/bin/mymachinesctl',
    `${PKG}/bin/mymachinesd`,
    `${PKG}/dist/src/daemon/main.js`,
    `${PKG}/dist/src/cli/main.js`,
    `${PKG}/package.json`,
    `${PKG}/node_modules/dbus-next/package.json`,
    'etc/dbus-1/system.d/org.freedesktop.machine1.conf',
    'usr/local/share/dbus-1/system-services/org.freedesktop.machine1.service',
    'usr/local/lib/systemd/system/mymachinesd.service',
    'etc/init.d/mymachinesd',
    'usr/local/share/bash-completion/completions/mymachinesctl',
    'usr/local/share/man/man1/mymachinesctl.1',
    'usr/local/share/man/man8/mymachinesd.8',
    'usr/local/share/man/man8/nss-mymachines.8',
    `lib/${multiarch}/libnss_mymachines.so.2`,
  ]) assert.ok(installedFiles.includes(f), `${f} installed`);
  assert.equal(lstatSync(join(dest, 'usr/local/bin/mymachinesd')).isSymbolicLink(), true);
  assert.equal(readlinkSync(join(dest, 'usr/local/bin/mymachinesd')), '../lib/mymachines/bin/mymachinesd');
  // The installed paths are filled in; INITSCRIPT=openrc gives the openrc-run script.
  assert.match(execFileSync('grep', ['^ExecStart=', join(dest, 'usr/local/lib/systemd/system/mymachinesd.service')], { encoding: 'utf8' }), /^ExecStart=\/usr\/local\/bin\/mymachinesd \$MYMACHINESD_ARGS\n$/);
  assert.match(execFileSync('head', ['-1', join(dest, 'etc/init.d/mymachinesd')], { encoding: 'utf8' }), /^#!\/sbin\/openrc-run\n$/);
});

test('only what runs here is installed: no tests, sources, build-time packages, or addons for other systems', (t) => {
  for (const f of installedFiles) {
    assert.doesNotMatch(f, /^usr\/local\/lib\/mymachines\/(dist\/(test|bench|demo)\/|node_modules\/(typescript|@types|node-gyp|nan|tar|undici|marked|marked-man)\/)/);
    assert.doesNotMatch(f, /\/node_modules\/.*\/(tests?|examples?)\/|\/\.npmignore$|\.(cc|h|gyp|py)$/);
  }
  // One addon per native package: the one this machine loads.
  const addons = installedFiles.filter((f) => f.endsWith('.node'));
  assert.deepEqual(addons, [`${PKG}/node_modules/koffi/build/koffi/${process.platform}_${process.arch}/koffi.node`, `${PKG}/node_modules/usocket/build/Release/uwrap.node`]);
  const bytes = installedFiles.reduce((sum, f) => sum + lstatSync(join(dest, f)).size, 0);
  t.diagnostic(`installed: ${installedFiles.length} files, ${(bytes / 1e6).toFixed(1)} MB`);
});

test('the installed daemon and CLI run from there: Varlink, D-Bus (dbus-next with usocket), koffi', async () => {
  const d = await run(join(dest, 'usr/local/bin/mymachinesd'), ['--version']);
  assert.equal(d.stdout, `mymachinesd ${JSON.parse(execFileSync('cat', [join(ROOT, 'package.json')], { encoding: 'utf8' })).version}\n`, d.stderr);
  const c = await run(join(dest, 'usr/local/bin/mymachinesctl'), ['--version']);
  assert.equal(c.stdout, d.stdout.replace('mymachinesd', 'mymachinesctl'), c.stderr);
  const busDir = join(dest, 'bus');
  const bus = await startBus(busDir);
  const runtime = join(dest, 'run');
  const daemon = spawn(join(dest, 'usr/local/bin/mymachinesd'), ['--runtime-dir', runtime, '--state-dir', join(dest, 'machines'), '--userdb-dir', '', '--resolve-hook-dir', '', '--machine-dir', '', '--bus', bus.address], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  daemon.stdout!.on('data', (b) => (out += b));
  daemon.stderr!.on('data', (b) => (out += b));
  const leader = spawn('sleep', ['60']);
  try {
    await waitFor('the installed daemon on the bus', () => (out.includes('serving on D-Bus') ? true : undefined), 15_000);
    const ctl = (args: string[]) => run(join(dest, 'usr/local/bin/mymachinesctl'), ['--socket', join(runtime, 'io.systemd.Machine'), ...args]);
    assert.equal((await ctl(['register', 'inst1', '--leader', String(leader.pid)])).code, 0);
    const r = await run('busctl', ['call', 'org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager', 'GetMachineByPID', 'u', String(leader.pid)], { env: bus.env });
    assert.equal(r.stdout, 'o "/org/freedesktop/machine1/machine/inst1"\n', r.stderr);
  } finally {
    leader.kill();
    daemon.kill('SIGTERM');
    await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once('exit', r)));
    await bus.stop();
  }
});

test('systemd-analyze verify passes the installed unit (its ExecStart and man pages found where they are installed)', async () => {
  const r = await installed('systemd-analyze verify /usr/local/lib/systemd/system/mymachinesd.service');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
});

test('the init scripts and the completion are valid shell', async () => {
  for (const [shell, file] of [['sh', 'data/sysv/mymachinesd.in'], ['sh', 'data/openrc/mymachinesd.in'], ['bash', 'data/bash-completion/mymachinesctl']]) {
    const r = await run(shell, ['-n', join(ROOT, file)]);
    assert.equal(r.code, 0, `${file}: ${r.stderr}`);
  }
});

test('man mymachinesctl shows every command and, in its entry, every option of it; and the global options', async () => {
  const text = await manText('mymachinesctl');
  const entries = text.split(/\n\s*• /).slice(1);
  for (const [name, verb] of Object.entries(verbs)) {
    const entry = entries.find((e) => e.startsWith(`${name} `) || e.startsWith(`${name}:`));
    assert.ok(entry, `man mymachinesctl has an entry for ${name}`);
    for (const [long, o] of Object.entries(verb.options)) {
      assert.ok(entry.includes(`--${long}`), `the entry of ${name} names --${long}`);
      if (o.short) assert.ok(entry.includes(`-${o.short}`), `the entry of ${name} names -${o.short}`);
    }
  }
  const options = text.slice(text.indexOf('\nOPTIONS'), text.indexOf('\nENVIRONMENT'));
  for (const [long, o] of Object.entries(GLOBAL)) {
    assert.ok(options.includes(`--${long}`), `OPTIONS names --${long}`);
    if (o.short) assert.ok(options.includes(`-${o.short}`), `OPTIONS names -${o.short}`);
  }
});

test("man mymachinesd shows every flag of mymachinesd --help; man nss-mymachines is there", async () => {
  const help = (await run(join(ROOT, 'bin/mymachinesd'), ['--help'])).stdout;
  const flags = [...new Set(help.match(/--[a-z][a-z-]*/g))];
  assert.ok(flags.length >= 10, `flags found in --help: ${flags}`);
  const text = await manText('mymachinesd');
  for (const f of flags) assert.ok(text.includes(f), `man mymachinesd names ${f}`);
  assert.match(await manText('nss-mymachines'), /^NSS-MYMACHINES\(8\)/);
});

/** What the installed completion offers for a command line whose last word is being completed. */
async function complete(words: string[]): Promise<string[]> {
  const line = words.join(' ');
  const script = `. /usr/share/bash-completion/bash_completion; . /usr/local/share/bash-completion/completions/mymachinesctl
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; COMP_LINE='${line}'; COMP_POINT=${line.length}
_mymachinesctl; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = await installed(`PATH=/usr/local/bin:$PATH exec bash -c '${script.replace(/'/g, `'\\''`)}'`);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).sort();
}

test('bash completion offers the CLI’s commands, each command’s options, and the machines the daemon has', async () => {
  assert.deepEqual(await complete(['mymachinesctl', '']), Object.keys(verbs).sort());
  const globalLong = Object.keys(GLOBAL).map((k) => `--${k}`);
  for (const [name, verb] of Object.entries(verbs)) {
    assert.deepEqual(await complete(['mymachinesctl', name, '--']), [...Object.keys(verb.options).map((k) => `--${k}`), ...globalLong].sort(), `options of ${name}`);
  }
  assert.deepEqual(await complete(['mymachinesctl', 'register', 'x', '--class', '']), ['container', 'vm']);
  const d = await startDaemon();
  const leaders = [spawn('sleep', ['60']), spawn('sleep', ['60'])];
  try {
    for (const [i, name] of ['web-a', 'web-b'].entries()) assert.equal((await d.ctl(['register', name, '--leader', String(leaders[i].pid)])).code, 0);
    assert.deepEqual(await complete(['mymachinesctl', '--socket', d.socket, 'status', '']), ['web-a', 'web-b']);
    assert.deepEqual(await complete(['mymachinesctl', '--socket', d.socket, 'kill', 'web-']), ['web-a', 'web-b']);
  } finally {
    for (const l of leaders) l.kill();
    await d.stop();
    d.cleanup();
  }
});

test('make uninstall takes back every file', async () => {
  rmSync(join(dest, 'bus'), { recursive: true, force: true });
  rmSync(join(dest, 'run'), { recursive: true, force: true });
  rmSync(join(dest, 'machines'), { recursive: true, force: true });
  const u = await make('uninstall');
  assert.equal(u.code, 0, u.stderr);
  assert.deepEqual(files(dest), [], 'nothing left behind');
  assert.equal(statSync(dest).isDirectory(), true);
});
