// make install and make uninstall into a DESTDIR: what goes where, that the installed programs run, and
// that uninstall takes back every file. The build is not redone here (make -o build): other test files
// run from dist/ at the same time.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ROOT } from './helpers/daemon.js';
import { run } from './helpers/run.js';

const dest = mkdtempSync(join(tmpdir(), 'mymachines-install-'));
after(() => rmSync(dest, { recursive: true, force: true }));

const multiarch = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
const make = (target: string) => run('make', ['-s', '-C', ROOT, '-o', 'build', target, `DESTDIR=${dest}`], { timeoutMs: 120_000 });

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

test('make install puts the programs, the NSS module and the bus policy in place; make uninstall takes them back', async () => {
  const r = await make('install');
  assert.equal(r.code, 0, r.stderr);
  const installed = files(dest);
  const pkg = 'usr/local/lib/mymachines';
  for (const f of [
    'usr/local/bin/mymachinesd',
    'usr/local/bin/mymachinesctl',
    `${pkg}/bin/mymachinesd`,
    `${pkg}/dist/src/daemon/main.js`,
    `${pkg}/dist/src/cli/main.js`,
    `${pkg}/package.json`,
    `${pkg}/node_modules/dbus-next/package.json`,
    'etc/dbus-1/system.d/org.freedesktop.machine1.conf',
    `lib/${multiarch}/libnss_mymachines.so.2`,
  ]) assert.ok(installed.includes(f), `${f} installed`);
  // Only what runs: no tests, benchmarks, demo or build-time packages.
  for (const f of installed) assert.doesNotMatch(f, /^usr\/local\/lib\/mymachines\/(dist\/(test|bench|demo)\/|node_modules\/(typescript|@types)\/)/);
  assert.equal(lstatSync(join(dest, 'usr/local/bin/mymachinesd')).isSymbolicLink(), true);
  assert.equal(readlinkSync(join(dest, 'usr/local/bin/mymachinesd')), '../lib/mymachines/bin/mymachinesd');
  // The installed programs run from there.
  const d = await run(join(dest, 'usr/local/bin/mymachinesd'), ['--version']);
  assert.match(d.stdout, /^mymachinesd \d+\.\d+\.\d+\n$/, d.stderr);
  const c = await run(join(dest, 'usr/local/bin/mymachinesctl'), ['--help']);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /^Usage: mymachinesctl/);

  const u = await make('uninstall');
  assert.equal(u.code, 0, u.stderr);
  assert.deepEqual(files(dest), [], 'nothing left behind');
});
