// userdb benchmark: getpwnam_r of a vu- name in one process, through our NSS module and through Debian's
// nss-systemd (both asking the same daemon), and of a name in /etc/passwd through nss_files, in one run.
// Each lookup is timed on its own by bench/userdb-lookup.c; the table gives the median and p99.
// Goals: our module under 60 µs median; nss-systemd no slower than machined's ~200 µs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeContainer, removeAllContainers } from '../test/helpers/container.js';
import { startDaemon } from '../test/helpers/daemon.js';
import { must } from '../test/helpers/run.js';
import { ROOT, makeUserdbEnv, type PasswdSource } from './userdb-env.js';

const COUNT = Number(process.env.USERDB_BENCH_COUNT ?? 20000);

interface Row {
  what: string;
  source: PasswdSource;
  name: string;
  medianUs: number;
  p99Us: number;
  goalMedianUs?: number;
}

const d = await startDaemon();
const env = makeUserdbEnv({ socket: d.socket, userdbSocket: join(d.userdbDir, 'io.systemd.Machine') });
try {
  const program = join(tmpdir(), 'mymachines-userdb-lookup');
  await must('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', join(ROOT, 'bench/userdb-lookup.c'), '-o', program]);
  const c = await makeContainer({ idMap: [{ base: 0, shift: 100000, range: 65536 }], hostNetwork: true });
  await d.ctl(['register', 'bench1', '--leader', String(c.pid)]);

  const plan: Omit<Row, 'medianUs' | 'p99Us'>[] = [
    { what: 'our module (files mymachines)', source: 'mymachines', name: 'vu-bench1-1000', goalMedianUs: 60 },
    { what: 'nss-systemd (files systemd)', source: 'systemd', name: 'vu-bench1-1000', goalMedianUs: 200 },
    { what: 'nss_files, a name in /etc/passwd', source: 'files', name: 'root' },
  ];
  const rows: Row[] = [];
  for (const p of plan) {
    const r = await env.run(p.source, [program, p.name, String(COUNT)]);
    const [ok, failed, median, p99] = r.stdout.trim().split(' ');
    if (r.code !== 0 || ok !== 'ok' || failed !== '0') throw new Error(`${p.what}: ${r.stdout} ${r.stderr}`);
    rows.push({ ...p, medianUs: Number(median) / 1000, p99Us: Number(p99) / 1000 });
  }

  console.log(`getpwnam_r, ${COUNT} lookups each, one process\n`);
  console.log(`${'through'.padEnd(34)}${'name'.padEnd(16)}${'median µs'.padStart(10)}${'p99 µs'.padStart(10)}  goal`);
  for (const r of rows) {
    const goal = r.goalMedianUs === undefined ? '' : `< ${r.goalMedianUs} ${r.medianUs < r.goalMedianUs ? 'met' : 'MISSED'}`;
    console.log(`${r.what.padEnd(34)}${r.name.padEnd(16)}${r.medianUs.toFixed(1).padStart(10)}${r.p99Us.toFixed(1).padStart(10)}  ${goal}`);
  }
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/userdb.json'), JSON.stringify({ count: COUNT, rows }, null, 2) + '\n');
} finally {
  env.close();
  await removeAllContainers();
  await d.stop();
  d.cleanup();
}
