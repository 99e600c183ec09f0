// D-Bus benchmark through a private dbus-daemon: registrations per second (RegisterMachine, one dbus-next
// connection), before and after a container with a network namespace of its own is registered; then, with
// over 1,000 machines, GetMachineAddresses of that container and ListMachines, timed from an sd-bus client
// (bench/dbus-client.c, as systemd's tools call) and from dbus-next. For reference, systemd-machined takes
// 1.9-3.4 ms for GetMachineAddresses and 0.2 ms for ListMachines with one machine on this kind of host.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeContainer, removeAllContainers } from '../test/helpers/container.js';
import { ROOT, startDaemon, type Daemon } from '../test/helpers/daemon.js';
import { must, run, waitFor } from '../test/helpers/run.js';
import { type Bus, busClient, startBus } from '../test/helpers/dbus.js';
import { compile } from './compile.js';
import { sleepingLeaders } from '../test/helpers/leaders.js';

const MGR = 'org.freedesktop.machine1.Manager';
const N = Number(process.env.BENCH_MACHINES ?? 1000);
const EXTRA = 50;

/** Median and 99th percentile in ms of `runs` sequential calls. */
async function latency(runs: number, call: () => Promise<unknown>): Promise<{ median: number; p99: number }> {
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await call();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return { median: t[Math.floor(runs / 2)], p99: t[Math.floor(runs * 0.99)] };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mymachines-bench-dbus-'));
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'machines'));
  // /run is a tmpfs on a normal host; so is the state directory here (gone with the private namespace).
  await must('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', join(dir, 'machines')]);
  const L = await sleepingLeaders(N + EXTRA);
  const client = await compile('dbus-client', dir, ['-lsystemd']);
  let bus: Bus | undefined;
  let d: Daemon | undefined;
  const results: Record<string, number> = {};
  try {
    bus = await startBus(join(dir, 'bus'));
    d = await startDaemon({ dir, args: ['--bus', bus.address, '--log-level', 'warn'] });
    // At log level warn the daemon does not say when it is on the bus: ask the bus.
    await waitFor('the daemon on the bus', async () => ((await run('busctl', ['status', 'org.freedesktop.machine1'], { env: bus!.env })).code === 0 ? true : undefined));
    const c = await busClient(bus);
    const register = (name: string, pid: number) => c.call('/org/freedesktop/machine1', MGR, 'RegisterMachine', 'sayssus', [name, Buffer.alloc(0), 'bench', 'container', pid, '']);
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await register(`dbus-bench${i}`, L.pids[i]);
    results.registrationsPerSecond = N / ((performance.now() - t0) / 1000);
    // A container with a network namespace of its own, whose addresses the registry watches.
    const ct = await makeContainer({ ipv4: { host: '10.77.85.1', inside: '10.77.85.2' }, ipv6: { host: 'fd77:85::1', inside: 'fd77:85::2' } });
    await c.call('/org/freedesktop/machine1', MGR, 'RegisterMachine', 'sayssus', ['bench-ct', Buffer.alloc(0), '', 'container', ct.pid, '']);
    const t1 = performance.now();
    for (let i = N; i < N + EXTRA; i++) await register(`dbus-bench${i}`, L.pids[i]);
    results.registrationsPerSecondWithANetns = EXTRA / ((performance.now() - t1) / 1000);
    const [list] = await c.call('/org/freedesktop/machine1', MGR, 'ListMachines');
    if (list.length !== N + EXTRA + 2) throw new Error(`ListMachines has ${list.length} machines, expected ${N + EXTRA + 2}`);
    const [addrs] = await c.call('/org/freedesktop/machine1', MGR, 'GetMachineAddresses', 's', ['bench-ct']);
    if (addrs.length !== 3) throw new Error(`bench-ct has ${addrs.length} addresses, expected 3`);
    // sd-bus, as systemd's clients call; then dbus-next, a JavaScript client.
    const sdbus = async (runs: number, ...args: string[]) => (await must(client, [String(runs), ...args], { env: bus!.env })).trim().split(' ').map(Number);
    [results.getMachineAddressesMs, results.getMachineAddressesP99Ms] = await sdbus(2000, 'GetMachineAddresses', 'bench-ct');
    [results.listMachinesMs, results.listMachinesP99Ms] = await sdbus(100, 'ListMachines');
    const a = await latency(2000, () => c.call('/org/freedesktop/machine1', MGR, 'GetMachineAddresses', 's', ['bench-ct']));
    results.dbusNextGetMachineAddressesMs = a.median;
    const l = await latency(100, () => c.call('/org/freedesktop/machine1', MGR, 'ListMachines'));
    results.dbusNextListMachinesMs = l.median;
    c.close();
  } finally {
    await d?.stop();
    await bus?.stop();
    await removeAllContainers();
    await L.stop();
    await must('umount', [join(dir, 'machines')]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
  const goals: Record<string, [string, (v: number) => boolean]> = {
    registrationsPerSecond: ['', () => true],
    registrationsPerSecondWithANetns: ['', () => true],
    getMachineAddressesMs: ['< 0.5 ms', (v) => v < 0.5],
    getMachineAddressesP99Ms: ['', () => true],
    listMachinesMs: ['< 20 ms', (v) => v < 20],
    listMachinesP99Ms: ['', () => true],
    dbusNextGetMachineAddressesMs: ['', () => true],
    dbusNextListMachinesMs: ['', () => true],
  };
  process.stdout.write(`D-Bus benchmark: one connection each, ${N + EXTRA + 1} machines; latencies are medians (and 99th percentiles) in ms\n`);
  for (const [k, v] of Object.entries(results)) {
    const [goal, ok] = goals[k];
    process.stdout.write(`  ${k.padEnd(32)} ${v.toFixed(2).padStart(10)}  ${goal}${goal ? (ok(v) ? '  met' : '  MISSED') : ''}\n`);
  }
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/dbus.json'), JSON.stringify({ date: new Date().toISOString(), machines: N, results }, null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench/dbus: ${(e as Error).stack}\n`);
  process.exitCode = 1;
});
