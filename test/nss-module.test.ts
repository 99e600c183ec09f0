// The NSS module's own C-level suite, `make -C nss-module test`, as part of `npm test`: its entry points
// called directly against the tables of a fake daemon (nss-module/test/fake_daemon.py: statuses, ERANGE
// at every buffer size, tables not to use, hostile and layered tables, a daemon stopped, killed and
// restarted, 16 threads and fork while the table is replaced, descriptors, signals), the same under
// valgrind and helgrind, the exported symbols, and getent through glibc with a private nsswitch.conf. It
// needs python3, valgrind, gcc, make, unshare and getent (test/debian-packages). It fails when the suite
// fails, with the suite's output in the message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT } from './helpers/daemon.js';
import { run } from './helpers/run.js';

/** The end of a long output: what failed is printed last, the FAIL lines anywhere. */
function report(out: string): string {
  const fails = out.split('\n').filter((l) => /FAIL|not ok|error|Error|ERROR SUMMARY: [1-9]|unexpected|missing/.test(l));
  const tail = out.length > 12_000 ? `[... ${out.length - 12_000} characters before ...]\n${out.slice(-12_000)}` : out;
  return `${fails.length ? `failures:\n${fails.slice(0, 60).join('\n')}\n\n` : ''}output:\n${tail}`;
}

test('make -C nss-module test: the C suite, valgrind, helgrind, symbols, glibc', { timeout: 600_000 }, async (t) => {
  const t0 = Date.now();
  const r = await run('make', ['-C', join(ROOT, 'nss-module'), '--no-print-directory', 'test'], {
    timeoutMs: 590_000,
    // The thread tests under memcheck are its slowest part: 16 threads x 300 lookups and 300 replacements
    // there (1,000 without valgrind and under helgrind, which runs the replacement tests only).
    env: { ...process.env, VALGRIND_ITERATIONS: process.env.VALGRIND_ITERATIONS ?? '300' },
  });
  const out = `${r.stdout}${r.stderr ? `\n--- stderr ---\n${r.stderr}` : ''}`;
  t.diagnostic(`make -C nss-module test took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(r.signal, null, `killed by ${r.signal} (timeout?)\n${report(out)}`);
  assert.equal(r.code, 0, `make -C nss-module test failed with exit code ${r.code}\n${report(out)}`);
  assert.match(r.stdout, /all nss-module tests passed/, report(out));
  // Each part ran: none was skipped for a missing tool.
  for (const part of ['== test_nss', '== test_nss under valgrind', '== threads and fork under helgrind', '== through glibc', 'symbols ok']) {
    assert.ok(r.stdout.includes(part), `"${part}" did not run\n${report(out)}`);
  }
});
