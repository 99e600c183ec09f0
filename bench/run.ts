// `npm run bench`: runs the benchmarks one after another (they would disturb each other in parallel on
// two cores). Each prints its table and writes bench/results/NAME.json. `npm run bench -- NAME` runs one.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
let failed = 0;
// The lookups first: the registry and D-Bus benchmarks start and end thousands of leader processes,
// which loads the machine for a while after them.
const BENCHMARKS = ['nss-hosts', 'userdb', 'table', 'freshness', 'dbus', 'dns', 'dns-secondaries', 'registry'];
for (const name of BENCHMARKS) {
  if (only.length && !only.includes(name)) continue;
  process.stdout.write(`\n== ${name} ==\n`);
  const r = spawnSync(process.execPath, [join(here, `${name}.js`)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
