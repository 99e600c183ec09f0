// Hosts benchmark: getaddrinfo in one process (test/helpers/nss-lookup.c times each lookup) with
// `hosts: files mymachines`, for a machine name (hit: nss_files misses, then our module answers), a name
// that is no machine (miss: both say not found) and a name in /etc/hosts (nss_files answers: the
// baseline, in the same run); then lookups per second of the machine name with 1, 4 and 16 processes.
// Goals on the 2-core machine: hit < 60 µs median and within 5x of nss_files; miss < 60 µs; > 20,000/s
// with 4 processes. Debian's nss-mymachines with systemd-machined: 2.6-2.9 ms per lookup.
import { mkdirSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startDaemon } from '../test/helpers/daemon.js';
import { ROOT } from '../test/helpers/daemon.js';
import { makeNssEnv, type NssEnv } from '../test/helpers/nss-env.js';

const COUNT = Number(process.env.NSS_BENCH_COUNT ?? 20000);
const RATE_MS = Number(process.env.NSS_BENCH_RATE_MS ?? 3000);
const MACHINE = 'bench32';
const FILES_NAME = 'files32';

interface TimeRow {
  what: string;
  name: string;
  medianUs: number;
  p99Us: number;
  goal: string;
  met: boolean;
}

const d = await startDaemon({ args: ['--log-level', 'info'] });
const leader = spawn('sleep', ['1032'], { stdio: 'ignore' });
let env: NssEnv | undefined;
try {
  // The /etc/hosts name has two addresses as the machine has, so that getaddrinfo sorts both alike.
  const nss = (env = makeNssEnv({ socket: d.socket, etcHosts: [`10.77.32.99\t${FILES_NAME}`, `fd77:32::99\t${FILES_NAME}`] }));
  const r = await d.ctl(['register', MACHINE, '--class', 'vm', '--leader', String(leader.pid), '--address', '10.77.32.2', '--address', 'fd77:32::2']);
  if (r.code !== 0) throw new Error(`register: ${r.stderr}`);
  const program = nss.lookupProgram();

  const time = async (name: string, mustResolve: boolean) => {
    const out = await nss.run(program, ['time', name, String(COUNT)], { timeoutMs: 600_000 });
    const [ok, failed, median, p99] = out.stdout.trim().split(' ');
    if (out.code !== 0 || ok !== 'ok' || Number(failed) !== (mustResolve ? 0 : COUNT)) throw new Error(`${name}: ${out.stdout} ${out.stderr}`);
    return { medianUs: Number(median) / 1000, p99Us: Number(p99) / 1000 };
  };
  const files = await time(FILES_NAME, true);
  const hit = await time(MACHINE, true);
  const miss = await time('nomachine32', false);
  const rows: TimeRow[] = [
    { what: 'machine name (hit, our module)', name: MACHINE, ...hit, goal: `< 60 µs, <= 5x nss_files (${(5 * files.medianUs).toFixed(1)})`, met: hit.medianUs < 60 && hit.medianUs <= 5 * files.medianUs },
    { what: 'no machine (miss, both modules)', name: 'nomachine32', ...miss, goal: '< 60 µs', met: miss.medianUs < 60 },
    { what: '/etc/hosts name (nss_files)', name: FILES_NAME, ...files, goal: 'baseline', met: true },
  ];

  // Aggregate: P processes at once, each looking the machine up as fast as it can for RATE_MS.
  const rates: { processes: number; lookupsPerSecond: number; goal: string; met: boolean }[] = [];
  for (const processes of [1, 4, 16]) {
    const outs = await Promise.all(Array.from({ length: processes }, () => nss.run(program, ['rate', MACHINE, String(RATE_MS)], { timeoutMs: RATE_MS + 60_000 })));
    let total = 0;
    for (const o of outs) {
      const [n, failed] = o.stdout.trim().split(' ').map(Number);
      if (o.code !== 0 || failed !== 0) throw new Error(`rate: ${o.stdout} ${o.stderr}`);
      total += n;
    }
    const lookupsPerSecond = Math.round(total / (RATE_MS / 1000));
    rates.push({ processes, lookupsPerSecond, goal: processes === 4 ? '> 20,000/s' : '', met: processes !== 4 || lookupsPerSecond > 20_000 });
  }

  console.log(`getaddrinfo (AF_UNSPEC, SOCK_STREAM), hosts: files mymachines, ${COUNT} lookups each, one process\n`);
  console.log(`${'lookup'.padEnd(34)}${'name'.padEnd(13)}${'median µs'.padStart(10)}${'p99 µs'.padStart(10)}  goal`);
  for (const x of rows) {
    console.log(`${x.what.padEnd(34)}${x.name.padEnd(13)}${x.medianUs.toFixed(1).padStart(10)}${x.p99Us.toFixed(1).padStart(10)}  ${x.goal}${x.goal === 'baseline' ? '' : x.met ? ' met' : ' MISSED'}`);
  }
  console.log(`\nlookups of ${MACHINE} per second, ${RATE_MS} ms\n`);
  console.log(`${'processes'.padEnd(12)}${'lookups/s'.padStart(10)}  goal`);
  for (const x of rates) console.log(`${String(x.processes).padEnd(12)}${String(x.lookupsPerSecond).padStart(10)}  ${x.goal}${x.goal ? (x.met ? ' met' : ' MISSED') : ''}`);

  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/nss-hosts.json'), JSON.stringify({ count: COUNT, rateMs: RATE_MS, lookups: rows, rates }, null, 2) + '\n');
} finally {
  leader.kill('SIGKILL');
  env?.close();
  await d.stop();
  d.cleanup();
}
