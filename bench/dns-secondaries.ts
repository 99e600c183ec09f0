// How soon the site's DNS servers follow a change: BIND and Knot as secondaries of a mymachinesd zone
// (NOTIFY, then IXFR, signed with TSIG), in a network namespace of the benchmark's own on loopback
// addresses, as test/dns-secondaries.test.ts runs them. For each of ROUNDS registrations and removals,
// the time from the daemon's answer until the secondary answers the change (polled with dig, whose own
// query to the secondary is measured alongside as the floor of what can be seen). The goal (issue 14):
// within a second; without NOTIFY a secondary would wait for the SOA refresh, an hour.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VarlinkClient } from '../src/varlink/client.js';
import { ROOT, startDaemon } from '../test/helpers/daemon.js';
import { dig } from '../test/helpers/dig.js';
import { bindKeyText, makeTsigSecret, startBind, startKnot, type ServerProcess } from '../test/helpers/dns-servers.js';
import { sleepingLeaders } from '../test/helpers/leaders.js';
import { makeNetns } from '../test/helpers/netns.js';
import { median } from './stats.js';

const ZONE = 'follow.test';
const PRIMARY = '127.0.0.2';
const SECONDARIES = { bind: '127.0.0.4', knot: '127.0.0.5' } as const;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mymachines-bench-dns2-'));
  const key = makeTsigSecret('xfr');
  writeFileSync(join(dir, 'xfr.key'), bindKeyText(key), { mode: 0o600 });
  mkdirSync(join(dir, 'daemon'));
  const ns = await makeNetns([PRIMARY, ...Object.values(SECONDARIES)]);
  const L = await sleepingLeaders(ROUNDS + 1);
  const servers: ServerProcess[] = [];
  const results: Record<string, number> = {};
  let d: Awaited<ReturnType<typeof startDaemon>> | undefined;
  try {
    d = await startDaemon({
      prefix: ns.prefix,
      dir: join(dir, 'daemon'),
      args: [
        '--log-level', 'warn', '--dns', `${PRIMARY}:53`, '--dns-zone', ZONE, '--dns-tsig-key', join(dir, 'xfr.key'),
        ...Object.values(SECONDARIES).flatMap((s) => ['--dns-transfer-allow', `${s},key=xfr`, '--dns-notify', `${s},key=xfr`]),
      ],
    });
    const c = await VarlinkClient.connect(d.socket);
    const q = (server: string, name: string) => dig(server, 53, [name, 'A'], ns.prefix);
    const until = async (server: string, name: string, present: boolean) => {
      const end = performance.now() + 30_000;
      while (performance.now() < end) {
        const r = await q(server, name);
        if (present ? r.answer.length === 1 : r.status === 'NXDOMAIN') return;
      }
      throw new Error(`${server} did not follow: ${name} still ${present ? 'missing' : 'there'} after 30 s`);
    };
    await c.call('io.systemd.Machine.Register', { name: 'seed', class: 'vm', leader: L.pids[ROUNDS], addresses: ['10.93.1.1'] });
    const zone = { zone: ZONE, primary: PRIMARY, port: 53, key: 'xfr' };
    servers.push(await startBind(ns, join(dir, 'bind'), SECONDARIES.bind, [zone], [key]));
    servers.push(await startKnot(ns, join(dir, 'knot'), SECONDARIES.knot, [zone], [key]));
    for (const s of Object.values(SECONDARIES)) await until(s, `seed.${ZONE}`, true);

    const seen: Record<string, { add: number[]; remove: number[]; query: number[] }> = { bind: { add: [], remove: [], query: [] }, knot: { add: [], remove: [], query: [] } };
    for (let i = 0; i < ROUNDS; i++) {
      const name = `m${i}`;
      for (const change of ['add', 'remove'] as const) {
        if (change === 'add') await c.call('io.systemd.Machine.Register', { name, class: 'vm', leader: L.pids[i], addresses: [`10.93.2.${i + 1}`] });
        else await c.call('io.systemd.Machine.Unregister', { name });
        const t0 = performance.now();
        await Promise.all(
          Object.entries(SECONDARIES).map(async ([which, s]) => {
            await until(s, `${name}.${ZONE}`, change === 'add');
            seen[which][change].push(performance.now() - t0);
          }),
        );
        // Past the NOTIFY pacing (one per zone and secondary every 500 ms), so that each change is timed
        // on its own rather than behind the one before.
        await new Promise((r) => setTimeout(r, 600));
      }
      for (const [which, s] of Object.entries(SECONDARIES)) {
        const t = performance.now();
        await q(s, `seed.${ZONE}`);
        seen[which].query.push(performance.now() - t);
      }
    }
    await c.close();
    for (const [which, x] of Object.entries(seen)) {
      results[`${which}AddMedianMs`] = median(x.add);
      results[`${which}AddMaxMs`] = Math.max(...x.add);
      results[`${which}RemoveMedianMs`] = median(x.remove);
      results[`${which}RemoveMaxMs`] = Math.max(...x.remove);
      results[`${which}DigQueryMedianMs`] = median(x.query);
    }
  } finally {
    for (const s of servers) await s.stop();
    await d?.stop();
    await L.stop();
    await ns.remove();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`DNS secondaries following a change (${ROUNDS} registrations and removals; ms from the daemon's answer)\n`);
  for (const [k, v] of Object.entries(results)) process.stdout.write(`  ${k.padEnd(24)} ${v.toFixed(1).padStart(8)}\n`);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/dns-secondaries.json'), JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, results }, null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench/dns-secondaries: ${(e as Error).stack}\n`);
  process.exitCode = 1;
});
