// Hosts benchmark: glibc lookups in one process (test/helpers/nss-lookup.c times each one), through our
// module alone (`hosts: mymachines`) and through nss_files alone (`hosts: files`, the baseline) in the
// same run, for the same answers: a name with two addresses (hit), a name neither has (miss), an
// address back to its name (reverse, getnameinfo); then a hit with `hosts: files mymachines` (a
// host's usual order); then lookups per second with 1, 4 and 16 processes, ours and nss_files'.
// Goals (issue 9): hit, miss and reverse at or below nss_files' median (ratio <= 1.0); with 1 process
// at least 5x the 4,527/s of the socket-based module; with 4 processes no fewer than nss_files.
import { mkdirSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, startDaemon } from '../test/helpers/daemon.js';
import { makeNssEnv, type NssEnv } from '../test/helpers/nss-env.js';

const COUNT = Number(process.env.NSS_BENCH_COUNT ?? 20000);
const RATE_MS = Number(process.env.NSS_BENCH_RATE_MS ?? 3000);
const SOCKET_MODULE_RATE = 4527; // lookups/s with 1 process, socket-based module (README, before issue 9)
const MACHINE = 'bench32';
const FILES_NAME = 'files32';

interface TimeRow {
  what: string;
  ours: { medianUs: number; p99Us: number };
  files: { medianUs: number; p99Us: number };
  ratio: number;
}

const d = await startDaemon({ args: ['--log-level', 'info'] });
const leader = spawn('sleep', ['1032'], { stdio: 'ignore' });
const envs: NssEnv[] = [];
try {
  // The /etc/hosts name has two addresses as the machine has, so that getaddrinfo sorts both alike.
  const etcHosts = [`10.77.32.99\t${FILES_NAME}`, `fd77:32::99\t${FILES_NAME}`];
  const env = (hosts: string) => {
    const e = makeNssEnv({ socket: d.socket, hosts, etcHosts });
    envs.push(e);
    return e;
  };
  const ours = env('mymachines');
  const files = env('files');
  const usual = env('files mymachines');
  const r = await d.ctl(['register', MACHINE, '--class', 'vm', '--leader', String(leader.pid), '--address', '10.77.32.2', '--address', 'fd77:32::2']);
  if (r.code !== 0) throw new Error(`register: ${r.stderr}`);

  const time = async (e: NssEnv, name: string, mustResolve: boolean) => {
    const out = await e.run(e.lookupProgram(), ['time', name, String(COUNT)], { timeoutMs: 600_000 });
    const [ok, failed, median, p99] = out.stdout.trim().split(' ');
    if (out.code !== 0 || ok !== 'ok' || Number(failed) !== (mustResolve ? 0 : COUNT)) throw new Error(`${name}: ${out.stdout} ${out.stderr}`);
    return { medianUs: Number(median) / 1000, p99Us: Number(p99) / 1000 };
  };
  const row = async (what: string, ourName: string, filesName: string, found: boolean): Promise<TimeRow> => {
    // Taking turns, so that other load on the machine hits both alike.
    const o = await time(ours, ourName, found);
    const f = await time(files, filesName, found);
    return { what, ours: o, files: f, ratio: o.medianUs / f.medianUs };
  };
  const rows = [
    await row('hit: a name with two addresses', MACHINE, FILES_NAME, true),
    await row('miss: a name nobody has', 'nomachine32', 'nomachine32', false),
    await row('reverse: an address to its name', 'addr=10.77.32.2', 'addr=10.77.32.99', true),
  ];
  const usualHit = await time(usual, MACHINE, true);

  // Aggregate: P processes at once, each looking up as fast as it can for RATE_MS.
  const rate = async (e: NssEnv, name: string, processes: number) => {
    const outs = await Promise.all(Array.from({ length: processes }, () => e.run(e.lookupProgram(), ['rate', name, String(RATE_MS)], { timeoutMs: RATE_MS + 60_000 })));
    let total = 0;
    for (const o of outs) {
      const [n, failed] = o.stdout.trim().split(' ').map(Number);
      if (o.code !== 0 || failed !== 0) throw new Error(`rate: ${o.stdout} ${o.stderr}`);
      total += n;
    }
    return Math.round(total / (RATE_MS / 1000));
  };
  const rates: { processes: number; ours: number; files: number; goal: string; met: boolean }[] = [];
  for (const processes of [1, 4, 16]) {
    const o = await rate(ours, MACHINE, processes);
    const f = await rate(files, FILES_NAME, processes);
    const goal = processes === 1 ? `>= ${5 * SOCKET_MODULE_RATE} (5x the socket module)` : processes === 4 ? `>= nss_files (${f})` : '';
    rates.push({ processes, ours: o, files: f, goal, met: processes === 1 ? o >= 5 * SOCKET_MODULE_RATE : processes === 4 ? o >= f : true });
  }

  console.log(`glibc lookups in one process (getaddrinfo AF_UNSPEC SOCK_STREAM; reverse: getnameinfo NI_NAMEREQD), ${COUNT} each\n`);
  console.log(`${'lookup'.padEnd(34)}${'ours median'.padStart(12)}${'p99'.padStart(9)}${'files median'.padStart(14)}${'p99'.padStart(9)}${'ratio'.padStart(8)}  goal <= 1.0`);
  for (const x of rows) {
    console.log(`${x.what.padEnd(34)}${x.ours.medianUs.toFixed(1).padStart(12)}${x.ours.p99Us.toFixed(1).padStart(9)}${x.files.medianUs.toFixed(1).padStart(14)}${x.files.p99Us.toFixed(1).padStart(9)}${x.ratio.toFixed(2).padStart(8)}  ${x.ratio <= 1 ? 'met' : 'MISSED'}`);
  }
  console.log(`\nhit with hosts: files mymachines: median ${usualHit.medianUs.toFixed(1)} µs, p99 ${usualHit.p99Us.toFixed(1)} µs`);
  console.log(`\nlookups per second, ${RATE_MS} ms (ours: ${MACHINE} through mymachines; nss_files: ${FILES_NAME} through files)\n`);
  console.log(`${'processes'.padEnd(12)}${'ours'.padStart(10)}${'nss_files'.padStart(12)}  goal`);
  for (const x of rates) console.log(`${String(x.processes).padEnd(12)}${String(x.ours).padStart(10)}${String(x.files).padStart(12)}  ${x.goal}${x.goal ? (x.met ? ' met' : ' MISSED') : ''}`);

  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/nss-hosts.json'), JSON.stringify({ count: COUNT, rateMs: RATE_MS, lookups: rows, usualHit, rates }, null, 2) + '\n');
} finally {
  leader.kill('SIGKILL');
  for (const e of envs) e.close();
  await d.stop();
  d.cleanup();
}
