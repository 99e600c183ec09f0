// Freshness: how soon what happens inside a machine shows in lookups through our NSS module (glibc, in
// one process that keeps the table mapped: test/helpers/nss-lookup.c serve). Timed from the moment the
// kernel has made the change (the `ip` command inside the container has returned, the leader has been
// reaped) until a lookup gives the new answer; the lookups are asked back to back, and one lookup's own
// time is measured alongside as the floor of what can be seen. The other front ends (Varlink, DNS, the
// resolve hook) answer from the same registry, which the table follows. The goal (DESIGN.md): within a
// second.
//   - an address added inside a container (netlink, src/registry/linux/netns-worker.ts);
//   - that address removed again;
//   - a VM's leader exiting (its pidfd, the registry's sweep).
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeContainer, removeAllContainers } from '../test/helpers/container.js';
import { ROOT, startDaemon } from '../test/helpers/daemon.js';
import { makeNssEnv } from '../test/helpers/nss-env.js';
import { median } from './stats.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);

const d = await startDaemon({ args: ['--log-level', 'warn'] });
const env = makeNssEnv({ socket: d.socket, hosts: 'mymachines' });
const server = env.lookupServer();
const results: Record<string, number> = {};
try {
  /** Milliseconds from now until a lookup of name gives `want`. */
  const until = async (name: string, want: 'found' | 'failed') => {
    const t0 = performance.now();
    while ((await server.lookup(name)) !== want) {
      if (performance.now() - t0 > 30_000) throw new Error(`${name} still not ${want} after 30 s`);
    }
    return performance.now() - t0;
  };
  const web = await makeContainer({ ipv4: { host: '10.77.99.1', inside: '10.77.99.2' } });
  const r = await d.ctl(['register', 'fresh99', '--leader', String(web.pid)]);
  if (r.code !== 0) throw new Error(`register: ${r.stderr}`);
  await until('fresh99', 'found');

  const added: number[] = [];
  const removed: number[] = [];
  const exited: number[] = [];
  const lookup: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const address = `10.77.99.${10 + i}`;
    await web.exec(['ip', 'addr', 'add', `${address}/24`, 'dev', 'host0']);
    added.push(await until(`addr=${address}`, 'found'));
    await web.exec(['ip', 'addr', 'del', `${address}/24`, 'dev', 'host0']);
    removed.push(await until(`addr=${address}`, 'failed'));

    const leader = spawn('sleep', ['600'], { stdio: 'ignore' });
    const vm = `exit99-${i}`;
    const v = await d.ctl(['register', vm, '--class', 'vm', '--leader', String(leader.pid), '--address', `10.77.98.${10 + i}`]);
    if (v.code !== 0) {
      leader.kill('SIGKILL');
      throw new Error(`register ${vm}: ${v.stderr}`);
    }
    const gone = new Promise((resolve) => leader.once('exit', resolve));
    leader.kill('SIGKILL');
    await gone;
    exited.push(await until(vm, 'failed'));

    const t = performance.now();
    await server.lookup('fresh99');
    lookup.push(performance.now() - t);
  }
  results.addressAddedMedianMs = median(added);
  results.addressAddedMaxMs = Math.max(...added);
  results.addressRemovedMedianMs = median(removed);
  results.addressRemovedMaxMs = Math.max(...removed);
  results.leaderExitMedianMs = median(exited);
  results.leaderExitMaxMs = Math.max(...exited);
  results.oneLookupMedianMs = median(lookup);
} finally {
  server.close();
  await removeAllContainers();
  await d.stop();
  d.cleanup();
  env.close();
}
process.stdout.write(`freshness (${ROUNDS} rounds; ms from the change in the kernel until a lookup through our module shows it)\n`);
for (const [k, v] of Object.entries(results)) process.stdout.write(`  ${k.padEnd(24)} ${v.toFixed(2).padStart(8)}\n`);
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/freshness.json'), JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, results }, null, 2) + '\n');
