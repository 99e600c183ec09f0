// Registry benchmark: registrations per second through Varlink (1 and 8 clients, and 1 client with
// 10,000 machines registered: each answered only once the lookup table holding it is published), List latency and
// daemon memory with 1,000 and 10,000 machines, restart-to-ready with 10,000 state files. The calls are
// made from C (bench/varlink-client.c); List is also timed from the Node.js client, as mymachinesctl
// makes it.
// The state directory is a tmpfs, as /run is on a normal host. Leaders are cheap sleeping processes.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VarlinkClient } from '../src/varlink/client.js';
import { ROOT, startDaemon, type Daemon } from '../test/helpers/daemon.js';
import { must, run } from '../test/helpers/run.js';
import { compile } from './compile.js';
import { sleepingLeaders } from '../test/helpers/leaders.js';

const M = 'io.systemd.Machine';

/** Registrations per second of machines bench<i>, i = from.., by `clients` C clients at once, one call
 *  at a time each. */
async function registerAll(d: Daemon, client: string, pids: number[], from: number, clients: number): Promise<number> {
  const r = await run(client, ['register', d.socket, 'bench', String(from), String(clients)], { input: pids.join('\n') + '\n', timeoutMs: 600_000 });
  const [count, seconds] = r.stdout.trim().split(' ').map(Number);
  if (r.code !== 0 || count !== pids.length - from) throw new Error(`varlink-client register: ${r.stdout} ${r.stderr}`);
  return count / seconds;
}

/** Unregisters machines bench<from>..bench<to - 1>. */
async function unregisterRange(d: Daemon, from: number, to: number): Promise<void> {
  const c = await VarlinkClient.connect(d.socket);
  for (let i = from; i < to; i++) await c.call(`${M}.Unregister`, { name: `bench${i}` });
  await c.close();
}

/** The median time of a List from C, and the number of machines in it (.host included). */
async function listFromC(d: Daemon, client: string, runs: number): Promise<{ ms: number; machines: number }> {
  const r = await run(client, ['list', d.socket, String(runs)]);
  const [machines, ms] = r.stdout.trim().split(' ').map(Number);
  if (r.code !== 0) throw new Error(`varlink-client list: ${r.stdout} ${r.stderr}`);
  return { ms, machines };
}

async function listMsNode(d: Daemon, runs = 10): Promise<number> {
  const c = await VarlinkClient.connect(d.socket);
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    for await (const _ of c.callMore(`${M}.List`, {}));
    times.push(performance.now() - t0);
  }
  await c.close();
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mymachines-bench-'));
  mkdirSync(join(dir, 'machines'));
  // The bench runs in a private mount namespace (npm run bench): this tmpfs is gone with it.
  await must('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', join(dir, 'machines')]);
  const N = Number(process.env.BENCH_MACHINES ?? 10_000);
  const L = await sleepingLeaders(N);
  const client = await compile('varlink-client', dir);
  const results: Record<string, number> = {};
  let d = await startDaemon({ dir, args: ['--log-level', 'warn'] });
  try {
    // Warm-up, as a daemon that has run a while is: 1,000 registrations and unregistrations, not timed.
    await registerAll(d, client, L.pids.slice(0, 1000), 0, 1);
    await unregisterRange(d, 0, 1000);
    // 1 client for the first 2,000, 8 clients for the next 2,000 (the registry grows meanwhile).
    results.registrationsPerSecond1Client = await registerAll(d, client, L.pids.slice(0, 2000), 0, 1);
    results.registrationsPerSecond8Clients = await registerAll(d, client, L.pids.slice(0, 4000), 2000, 8);
    // Back to 1,000 machines for the List at 1,000.
    await unregisterRange(d, 1000, 4000);
    results.listMs1000 = (await listFromC(d, client, 10)).ms;
    results.rssMB1000 = rssMB(d.proc.pid!);
    await registerAll(d, client, L.pids, 1000, 8);
    // With 10,000 registered: the last 1,000 again, one client.
    await unregisterRange(d, N - 1000, N);
    results.registrationsPerSecond1ClientAt10000 = await registerAll(d, client, L.pids, N - 1000, 1);
    results.listMs10000 = (await listFromC(d, client, 5)).ms;
    results.listMs10000NodeClient = await listMsNode(d, 5);
    results.rssMB10000 = rssMB(d.proc.pid!);
    await d.stop();
    const t0 = performance.now();
    d = await startDaemon({ dir, args: ['--log-level', 'warn'] });
    // Ready: the first List, all machines in it, has come back.
    const { machines } = await listFromC(d, client, 1);
    results.restartToReadyMs10000 = performance.now() - t0;
    if (machines !== N + 1) throw new Error(`after restart ${machines - 1} machines, expected ${N}`);
  } finally {
    await d.stop();
    await L.stop();
    await must('umount', [join(dir, 'machines')]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
  const goals: Record<string, [string, (v: number) => boolean]> = {
    registrationsPerSecond1Client: ['>= 2,000/s', (v) => v >= 2000],
    registrationsPerSecond8Clients: ['>= 2,000/s', (v) => v >= 2000],
    registrationsPerSecond1ClientAt10000: ['>= 2,000/s', (v) => v >= 2000],
    listMs1000: ['', () => true],
    rssMB1000: ['', () => true],
    listMs10000: ['< 100 ms', (v) => v < 100],
    listMs10000NodeClient: ['', () => true],
    rssMB10000: ['< 200 MB', (v) => v < 200],
    restartToReadyMs10000: ['< 2,000 ms', (v) => v < 2000],
  };
  process.stdout.write('registry benchmark\n');
  for (const [k, v] of Object.entries(results)) {
    const [goal, ok] = goals[k];
    process.stdout.write(`  ${k.padEnd(32)} ${v.toFixed(1).padStart(10)}  ${goal}${goal ? (ok(v) ? '  met' : '  MISSED') : ''}\n`);
  }
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/registry.json'), JSON.stringify({ date: new Date().toISOString(), results }, null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench/registry: ${(e as Error).stack}\n`);
  process.exitCode = 1;
});
