// `npm run bench`: runs every benchmark in dist/bench one after another (they would disturb each other
// in parallel on two cores). Each prints its table and writes bench/results/NAME.json.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
let failed = 0;
for (const f of readdirSync(here).filter((f) => f.endsWith('.js') && f !== 'run.js').sort()) {
  if (only.length && !only.some((o) => f.startsWith(o))) continue;
  process.stdout.write(`\n== ${f.replace(/\.js$/, '')} ==\n`);
  const r = spawnSync(process.execPath, [join(here, f)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
