// `npm run bench`: runs the benchmarks one after another (they would disturb each other in parallel on
// two cores). Each prints its table and writes bench/results/NAME.json. `npm run bench -- NAME` runs one.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
let failed = 0;
const BENCHMARKS = ['registry', 'nss-hosts', 'userdb', 'dbus'];
for (const name of BENCHMARKS) {
  if (only.length && !only.includes(name)) continue;
  process.stdout.write(`\n== ${name} ==\n`);
  const r = spawnSync(process.execPath, [join(here, `${name}.js`)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
