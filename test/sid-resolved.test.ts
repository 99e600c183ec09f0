// The resolve hook through the real systemd-resolved 262 (in the sid root, in a network namespace of its
// own, so that its stub on 127.0.0.53 is private): resolvectl, getent through nss-resolve and dig at the
// stub answer machine names from our registry, and agree with our NSS module and our DNS front end.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { makeNssEnv, type NssEnv } from './helpers/nss-env.js';
import { freePort } from './helpers/ports.js';
import { run, waitFor } from './helpers/run.js';
import { enterSidRoot, type SidWorld, type Started } from './helpers/sid-root.js';
import { VarlinkClient } from '../src/varlink/client.js';

let dnsPort = 0;
let d: Daemon;
let world: SidWorld;
let resolved: Started;
let nss: NssEnv;
const leaders: ChildProcess[] = [];

const lines = (s: string) => s.trim().split('\n').filter(Boolean);
const digShort = (r: { stdout: string }) => lines(r.stdout).sort();

async function register(name: string, addresses: string[]): Promise<ChildProcess> {
  const leader = spawn('sleep', ['600'], { stdio: 'ignore' });
  leaders.push(leader);
  const r = await d.ctl(['register', name, '--leader', String(leader.pid), '--class', 'vm', ...addresses.flatMap((a) => ['--address', a])]);
  assert.equal(r.code, 0, r.stderr);
  return leader;
}

before(async () => {
  dnsPort = await freePort();
  d = await startDaemon({ args: ['--dns', `127.0.0.1:${dnsPort}`] });
  await register('web1', ['10.77.1.5', 'fd00:77::5']);
  await register('ai', ['10.77.1.6']);
  world = await enterSidRoot({
    privateNetwork: true,
    binds: [[d.resolveHookDir, '/run/systemd/resolve.hook']],
    files: { '/etc/nsswitch.conf': 'hosts: files resolve\n' },
  });
  await world.startBus();
  resolved = world.start(['/usr/lib/systemd/systemd-resolved']);
  await waitFor('resolved', async () => {
    if (resolved.proc.exitCode !== null) throw new Error(`systemd-resolved exited: ${resolved.output()}`);
    return (await world.run(['resolvectl', 'status'])).code === 0 ? true : undefined;
  }, 15_000);
  nss = makeNssEnv({ socket: d.socket });
});

after(async () => {
  await world?.close();
  nss?.close();
  for (const l of leaders) l.kill('SIGKILL');
  await d?.stop();
  d?.cleanup();
});

test('resolvectl query 262 answers a machine name from the hook', async () => {
  const r = await world.run(['resolvectl', 'query', '--legend=no', 'web1']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(lines(r.stdout), ['web1: 10.77.1.5', '      fd00:77::5']);
  // Case is ignored (machined's hook is case-sensitive); resolved echoes the name as asked.
  const upper = await world.run(['resolvectl', 'query', '--legend=no', '-4', 'WEB1']);
  assert.deepEqual(lines(upper.stdout), ['WEB1: 10.77.1.5']);
  const none = await world.run(['resolvectl', 'query', '--legend=no', 'nomachine']);
  assert.equal(none.code, 1);
});

test('getent hosts through nss-resolve 262 agrees with our NSS module', async () => {
  const viaResolved = await world.run(['getent', 'ahosts', 'web1']);
  assert.equal(viaResolved.code, 0, viaResolved.stderr);
  const ours = await nss.run('getent', ['ahosts', 'web1']);
  assert.equal(ours.code, 0, ours.stderr);
  assert.deepEqual(lines(viaResolved.stdout), lines(ours.stdout));
  assert.deepEqual(lines((await world.run(['getent', 'hosts', 'web1'])).stdout), ['fd00:77::5      web1']);
});

test('dig at resolved 262\'s stub agrees with our DNS front end, TTL 0', async () => {
  for (const type of ['A', 'AAAA']) {
    const stub = await world.runHost(['dig', '+noall', '+answer', '@127.0.0.53', 'web1', type]);
    const ours = await run('dig', ['+noall', '+answer', '-p', String(dnsPort), '@127.0.0.1', 'web1', type]);
    assert.equal(stub.code, 0, stub.stderr);
    assert.deepEqual(digShort(stub), [type === 'A' ? 'web1.\t\t\t0\tIN\tA\t10.77.1.5' : 'web1.\t\t\t0\tIN\tAAAA\tfd00:77::5']);
    assert.deepEqual(digShort(stub), digShort(ours));
  }
});

test('names below a machine\'s name are not ours: resolved goes on as usual (no NXDOMAIN, systemd#43783)', async () => {
  // A machine named like a top-level domain: its subdomains are passed on. With no DNS server in this
  // network namespace resolved's stub then refuses; machined 261/262 would make them NXDOMAIN.
  const below = await world.runHost(['dig', '@127.0.0.53', 'www.nic.ai', 'A']);
  assert.match(below.stdout, /status: REFUSED/);
  const hook = await VarlinkClient.connect(`${d.resolveHookDir}/io.systemd.Machine`);
  try {
    assert.deepEqual(await hook.call('io.systemd.Resolve.Hook.ResolveRecord', { question: [{ key: { class: 1, type: 1, name: 'www.nic.ai' } }] }), {});
    const exact = await hook.call('io.systemd.Resolve.Hook.ResolveRecord', { question: [{ key: { class: 1, type: 1, name: 'ai' } }] });
    assert.equal(exact.rcode, 0);
    assert.equal(exact.answer.length, 1);
  } finally {
    await hook.close();
  }
});

test('QueryFilter names the machines and follows them; resolved sees a new machine at once', async () => {
  const hook = await VarlinkClient.connect(`${d.resolveHookDir}/io.systemd.Machine`);
  try {
    assert.deepEqual(await hook.call('io.systemd.Resolve.Hook.QueryFilter', {}), { filterDomains: ['ai', 'web1'] });
    const updates = hook.callMore('io.systemd.Resolve.Hook.QueryFilter', {})[Symbol.asyncIterator]();
    assert.deepEqual((await updates.next()).value, { filterDomains: ['ai', 'web1'] });
    const leader = await register('db1', ['10.77.1.7']);
    assert.deepEqual((await updates.next()).value, { filterDomains: ['ai', 'db1', 'web1'] });
    const r = await world.run(['resolvectl', 'query', '--legend=no', 'db1']);
    assert.deepEqual(lines(r.stdout), ['db1: 10.77.1.7']);
    leader.kill('SIGKILL');
    assert.deepEqual((await updates.next()).value, { filterDomains: ['ai', 'web1'] });
    await waitFor('db1 gone from resolved', async () => ((await world.run(['resolvectl', 'query', 'db1'])).code === 1 ? true : undefined));
  } finally {
    await hook.close();
  }
});

test('bad input to the hook: a named error, and the hook socket serves the hook alone', async () => {
  const hook = await VarlinkClient.connect(`${d.resolveHookDir}/io.systemd.Machine`);
  try {
    const err = async (method: string, params: object) => hook.call(method, params).then(() => 'no error', (e) => `${e.name} ${JSON.stringify(e.parameters ?? {})}`);
    assert.equal(await err('io.systemd.Resolve.Hook.ResolveRecord', { question: [] }), 'org.varlink.service.InvalidParameter {"parameter":"question"}');
    assert.equal(await err('io.systemd.Resolve.Hook.ResolveRecord', { question: [{ key: { type: 1 } }] }), 'org.varlink.service.InvalidParameter {"parameter":"question"}');
    assert.equal(await err('io.systemd.Resolve.Hook.ResolveRecord', { question: [{ key: { type: 1, name: 'x'.repeat(300) } }] }), 'org.varlink.service.InvalidParameter {"parameter":"question"}');
    assert.equal(await err('io.systemd.Machine.List', {}), 'org.varlink.service.InterfaceNotFound {"interface":"io.systemd.Machine"}');
  } finally {
    await hook.close();
  }
  // resolved still answers after them.
  assert.equal((await world.run(['resolvectl', 'query', 'web1'])).code, 0);
});
