// Lookup table benchmark: what publishing the table costs, with the real registry, resolver, userdb and
// table publisher in one process (so that each publication can be timed on its own): VMs with an IPv4
// and an IPv6 address each, cheap leader processes, state files and table on a tmpfs.
//  - a publication after one registration, with 1,000 and with 10,000 machines registered (median, p99,
//    mean: the mean holds the merged deltas and rebuilt bases that some publications make);
//  - a whole table (a new file: what a rebuild, and a daemon's start, write) at 1,000 and 10,000;
//  - the table file's size and the pages it holds at 1,000 and 10,000.
// Registrations per second through the daemon at 10,000 machines are in bench/registry.ts.
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../src/registry/registry.js';
import { Resolver } from '../src/resolver/resolver.js';
import { TablePublisher } from '../src/table/publisher.js';
import { UserRecords } from '../src/userdb/records.js';
import { ROOT } from '../test/helpers/daemon.js';
import { must } from '../test/helpers/run.js';
import { sleepingLeaders } from '../test/helpers/leaders.js';
import { mean, median, percentile } from './stats.js';

const SIZES = [1000, 10_000];
const SAMPLE = 1000;
const quiet = { info() {}, warn() {}, debug() {}, error(o: object, msg: string) { console.error(msg, o); } };

const dir = mkdtempSync(join(tmpdir(), 'mymachines-bench-table-'));
mkdirSync(join(dir, 'fs'));
// The bench runs in a private mount namespace (npm run bench): this tmpfs is gone with it.
await must('mount', ['-t', 'tmpfs', 'tmpfs', join(dir, 'fs')]);
const L = await sleepingLeaders(SIZES[SIZES.length - 1] + SAMPLE);
const registry = new Registry({ stateDir: join(dir, 'fs/machines'), log: quiet });
const results: Record<string, number> = {};
try {
  await registry.start();
  const resolver = new Resolver(registry);
  const users = new UserRecords(registry);
  const table = new TablePublisher(join(dir, 'fs/nss-table'), { resolver, users, events: registry }, quiet);
  table.start();
  let next = 0;
  const register = (i: number) =>
    registry.register({ name: `bench${i}`, class: 'vm', leader: L.pids[next++], addresses: [`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, `fd77:33::${i.toString(16)}`] });
  let registered = 0;
  for (const n of SIZES) {
    // Up to n - SAMPLE machines untimed, then SAMPLE registrations with their publications timed.
    while (registered < n - SAMPLE) {
      await register(registered++);
      table.publish();
    }
    const times: number[] = [];
    while (registered < n) {
      await register(registered++);
      const t0 = performance.now();
      table.publish();
      times.push((performance.now() - t0) * 1000);
    }
    results[`publishMedianUs${n}`] = median(times);
    results[`publishP99Us${n}`] = percentile(times, 99);
    results[`publishMeanUs${n}`] = mean(times);
    results[`publishMaxMs${n}`] = Math.max(...times) / 1000;
    // A whole table, as a rebuild or a start writes it: a second publisher, its own file.
    const whole: number[] = [];
    for (let r = 0; r < 5; r++) {
      const path = join(dir, `fs/whole-${r}`);
      const t0 = performance.now();
      const other = new TablePublisher(path, { resolver, users, events: registry }, quiet);
      other.start();
      whole.push(performance.now() - t0);
      const st = statSync(path);
      results[`wholeFileBytes${n}`] = st.size;
      results[`wholeFilePagesBytes${n}`] = st.blocks * 512;
      other.close();
    }
    results[`wholeTableMs${n}`] = median(whole);
    const st = statSync(join(dir, 'fs/nss-table'));
    results[`fileBytes${n}`] = st.size;
    results[`filePagesBytes${n}`] = st.blocks * 512;
  }
  table.close();
} finally {
  await registry.stop();
  await L.stop();
  await must('umount', [join(dir, 'fs')]).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}

process.stdout.write('lookup table: VMs with an IPv4 and an IPv6 address each\n\n');
process.stdout.write(`${'machines'.padEnd(10)}${'publish median µs'.padStart(19)}${'p99'.padStart(9)}${'mean'.padStart(9)}${'max ms'.padStart(9)}${'whole table ms'.padStart(16)}${'file size'.padStart(12)}${'in pages'.padStart(11)}\n`);
for (const n of SIZES) {
  const kb = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
  process.stdout.write(`${String(n).padEnd(10)}${results[`publishMedianUs${n}`].toFixed(1).padStart(19)}${results[`publishP99Us${n}`].toFixed(0).padStart(9)}${results[`publishMeanUs${n}`].toFixed(1).padStart(9)}${results[`publishMaxMs${n}`].toFixed(1).padStart(9)}${results[`wholeTableMs${n}`].toFixed(1).padStart(16)}${kb(results[`wholeFileBytes${n}`]).padStart(12)}${kb(results[`wholeFilePagesBytes${n}`]).padStart(11)}\n`);
}
process.stdout.write('\n(file size: a fresh table, with room for deltas; in pages: what it holds in memory; the\n running table holds more pages as deltas are written into that room)\n');
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/table.json'), JSON.stringify({ date: new Date().toISOString(), results }, null, 2) + '\n');
