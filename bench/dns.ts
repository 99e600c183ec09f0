// DNS benchmark: with 10,000 machines (an IPv4 and an IPv6 address each), how long an AXFR of the forward
// zone (20,003 records) and of the IPv6 reverse zone take, and what a query waits meanwhile: the latency
// of UDP queries asked one after another, without a transfer and while AXFRs run back to back (dig, in
// processes of their own). The largest wait shows how long the daemon's loop is ever held by a transfer.
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { VarlinkClient } from '../src/varlink/client.js';
import { ROOT, startDaemon } from '../test/helpers/daemon.js';
import { freePort } from '../test/helpers/ports.js';
import { run } from '../test/helpers/run.js';
import { sleepingLeaders } from '../test/helpers/leaders.js';
import { percentile } from './stats.js';

const ZONE = 'bench.test';
const REV6 = '2.9.0.0.7.7.d.f.ip6.arpa';

/** Query latencies (ms), one query at a time, for `ms` milliseconds. */
async function latencies(port: number, ms: number, names: string[]): Promise<number[]> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const out: number[] = [];
  const end = performance.now() + ms;
  let id = 0;
  while (performance.now() < end) {
    id = (id + 1) & 0xffff;
    const q = dnsPacket.encode({ type: 'query', id, questions: [{ type: 'A', name: names[id % names.length] }] });
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      const on = (m: Buffer) => {
        if (m.readUInt16BE(0) !== id) return;
        s.off('message', on);
        resolve();
      };
      s.on('message', on);
      s.send(q, port, '127.0.0.1');
    });
    out.push(performance.now() - t0);
  }
  s.close();
  return out.sort((a, b) => a - b);
}

async function axfrMs(port: number, zone: string, records: number): Promise<number> {
  const t0 = performance.now();
  const r = await run('dig', ['@127.0.0.1', '-p', String(port), zone, 'AXFR', '+onesoa'], { timeoutMs: 120_000 });
  const got = r.stdout.split('\n').filter((l) => l && !l.startsWith(';')).length;
  if (got !== records) throw new Error(`AXFR of ${zone}: ${got} records, expected ${records}`);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const N = Number(process.env.BENCH_MACHINES ?? 10_000);
  const dir = mkdtempSync(join(tmpdir(), 'mymachines-bench-dns-'));
  const port = await freePort();
  const L = await sleepingLeaders(N);
  const d = await startDaemon({
    dir,
    args: ['--log-level', 'warn', '--dns', `127.0.0.1:${port}`, '--dns-zone', ZONE, '--dns-reverse-zone', 'fd77:92::/32', '--dns-transfer-allow', '127.0.0.0/8'],
  });
  const results: Record<string, number> = {};
  try {
    const c = await VarlinkClient.connect(d.socket);
    await Promise.all(
      L.pids.map((pid, i) => c.call('io.systemd.Machine.Register', { name: `m${i}`, class: 'vm', leader: pid, addresses: [`10.92.${i >> 8}.${i & 255}`, `fd77:92::${i.toString(16)}`] })),
    );
    await c.close();
    // Until the zone holds them all.
    for (;;) {
      try {
        await axfrMs(port, ZONE, 2 * N + 2);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const names = Array.from({ length: 100 }, (_, i) => `m${i * Math.floor(N / 100)}.${ZONE}`);
    results.axfrForwardMs = Math.min(await axfrMs(port, ZONE, 2 * N + 2), await axfrMs(port, ZONE, 2 * N + 2));
    results.axfrReverse6Ms = Math.min(await axfrMs(port, REV6, N + 2), await axfrMs(port, REV6, N + 2));
    const quiet = await latencies(port, 3000, names);
    // AXFRs back to back, two at a time, while the queries are timed.
    let busy = true;
    const transfers = (async () => {
      let n = 0;
      while (busy) {
        await Promise.all([axfrMs(port, ZONE, 2 * N + 2), axfrMs(port, REV6, N + 2)]);
        n += 2;
      }
      return n;
    })();
    const loaded = await latencies(port, 5000, names);
    busy = false;
    results.transfersDuringQueries = await transfers;
    results.queryP50MsQuiet = percentile(quiet, 50);
    results.queryP99MsQuiet = percentile(quiet, 99);
    results.queryMaxMsQuiet = quiet.at(-1)!;
    results.queryP50MsDuringAxfr = percentile(loaded, 50);
    results.queryP99MsDuringAxfr = percentile(loaded, 99);
    results.queryMaxMsDuringAxfr = loaded.at(-1)!;
  } finally {
    await d.stop();
    await L.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`dns benchmark (${N} machines)\n`);
  for (const [k, v] of Object.entries(results)) process.stdout.write(`  ${k.padEnd(28)} ${v.toFixed(2).padStart(10)}\n`);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/dns.json'), JSON.stringify({ date: new Date().toISOString(), machines: N, results }, null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench/dns: ${(e as Error).stack}\n`);
  process.exitCode = 1;
});
