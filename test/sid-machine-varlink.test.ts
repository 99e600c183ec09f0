// io.systemd.Machine of mymachinesd against systemd-machined 262's, call by call. machined runs in a sid
// world of its own (with its bus), mymachinesd on the host with its socket for 262's clients bound into a
// second world where machined's would be (/run/systemd/machine). The same varlinkctl 262 calls go to both,
// with the same real leaders (containers with their own network namespace, each in a unit cgroup, where
// machined 262 insists on finding one), and the outcomes (exit status, reply or error and its parameters,
// what varlinkctl says) are compared. Where they differ on purpose, the README says why, and the test
// asserts both outcomes as they are.
//
// The callers are varlinkctl processes, which exit at once: machined 262 signals a machine's supervisor
// (its caller) when it stops the machine, and nothing here must be signalled but the leaders.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { ROOT, startDaemon, type Daemon } from './helpers/daemon.js';
import { waitFor } from './helpers/run.js';
import { cgroup2Mount, enterSidRoot, type SidWorld, type Started } from './helpers/sid-root.js';
import { processPidfdId } from '../src/registry/linux/leader.js';

const SOCKET = '/run/systemd/machine/io.systemd.Machine';
const ID = '0123456789abcdef0123456789abcdef';
const NOBODY = 65534;
/** Where the descriptions taken from machined 262 are kept. */
const KEEP = join(ROOT, 'build/machined-262');

let dir: string;
let theirsWorld: SidWorld;
let oursWorld: SidWorld;
let machined: Started;
let daemon: Daemon;
const cgroups: string[] = [];
const L: Container[] = [];

/** A container leader in a unit cgroup of its own (machined 262 refuses a leader outside any unit). */
async function leader(n: number, opts: Parameters<typeof makeContainer>[0]): Promise<Container> {
  const ct = await makeContainer(opts);
  const cg = join(cgroup2Mount(), `mmtest-sidvl-${process.pid}-${n}.scope`);
  mkdirSync(cg);
  cgroups.push(cg);
  writeFileSync(join(cg, 'cgroup.procs'), String(ct.pid));
  L.push(ct);
  return ct;
}

interface Outcome {
  code: number | null;
  /** The replies (one per line), or the error's parameters without our `message`. */
  out: unknown[];
  /** varlinkctl's last line on stderr: how it reports the error. */
  err: string;
}

interface Call {
  method: string;
  params?: object;
  more?: boolean;
  as?: number;
}

async function callIn(world: SidWorld, { method, params = {}, more, as }: Call): Promise<Outcome> {
  const who = as === undefined ? [] : ['setpriv', '--reuid', String(as), '--regid', String(as), '--clear-groups'];
  const r = await world.run([...who, 'varlinkctl', '--json=short', 'call', ...(more ? ['--more'] : []), SOCKET, `io.systemd.Machine.${method}`, JSON.stringify(params)]);
  // With --more, varlinkctl writes a JSON sequence (RFC 7464: each record after an RS).
  const out = r.stdout.split(/[\n\x1e]/).filter(Boolean).map((l) => {
    const v = JSON.parse(l);
    delete v.message;
    return v;
  });
  return { code: r.code, out, err: r.stderr.trim().split('\n').at(-1) ?? '' };
}

/** A List reply with what differs by nature between two registries of the same machines: when each
 *  registered it (timestamps), the caller that did (supervisor: each world's varlinkctl), and our
 *  fields (ifIndices, state, checked on their own). */
function normal(reply: unknown): unknown {
  if (typeof reply !== 'object' || reply === null || !('name' in reply)) return reply;
  const m = { ...(reply as Record<string, any>) };
  if (m.timestamp) m.timestamp = Object.keys(m.timestamp);
  if (m.supervisor) m.supervisor = Object.keys(m.supervisor);
  delete m.ifIndices;
  delete m.state;
  return m;
}

async function both(call: Call): Promise<{ theirs: Outcome; ours: Outcome }> {
  const [theirs, ours] = [await callIn(theirsWorld, call), await callIn(oursWorld, call)];
  for (const o of [theirs, ours]) o.out = o.out.map(normal);
  // Machines in name order (machined lists them in hash order).
  if (call.more) for (const o of [theirs, ours]) (o.out as { name: string }[]).sort((a, b) => a.name.localeCompare(b.name));
  return { theirs, ours };
}

async function same(call: Call): Promise<Outcome> {
  const r = await both(call);
  assert.deepEqual(r.ours, r.theirs, `${call.method} ${JSON.stringify(call.params ?? {})}${call.as ? ` as ${call.as}` : ''}`);
  return r.ours;
}

const err = (name: string) => `Method call io.systemd.Machine.${name}`;
const INVALID = (method: string, parameter: string): Outcome => ({ code: 1, out: [{ parameter }], err: `${err(method)}() failed: Invalid argument` });
const NAMED = (method: string, error: string): Outcome => ({ code: 1, out: [{}], err: `${err(method)}() failed: io.systemd.Machine.${error}` });
const ERRNO = (method: string, errno: number, errnoName: string, text: string): Outcome => ({ code: 1, out: [{ origin: 'linux', errno, errnoName }], err: `${err(method)}() failed: ${text}` });
const DENIED = (method: string): Outcome => ({ code: 1, out: [{}], err: `${err(method)}() failed: Permission denied` });
const OK: Outcome = { code: 0, out: [{}], err: '' };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-sidvl-'));
  chmodSync(dir, 0o755);
  const theirDir = join(dir, 'theirs');
  mkdirSync(theirDir, { mode: 0o755 });
  theirsWorld = await enterSidRoot({ binds: [[theirDir, '/run/systemd/machine']] });
  await theirsWorld.startBus();
  machined = theirsWorld.start(['/usr/lib/systemd/systemd-machined']);
  mkdirSync(join(dir, 'ours'));
  daemon = await startDaemon({ dir: join(dir, 'ours') });
  oursWorld = await enterSidRoot({ binds: [[daemon.machineDir, '/run/systemd/machine']] });
  await waitFor('machined 262 on its Varlink socket', async () => {
    if (machined.proc.exitCode !== null) throw new Error(`machined exited: ${machined.output()}`);
    return (await callIn(theirsWorld, { method: 'List', params: { name: '.host' } })).code === 0 ? true : undefined;
  }, 15_000);
  await leader(1, { ipv4: { host: '10.78.61.1', inside: '10.78.61.2' } });
  await leader(2, { ipv4: { host: '10.78.62.1', inside: '10.78.62.2' }, idMap: [{ base: 0, shift: 1_000_000, range: 65536 }] });
  await leader(3, { hostNetwork: true });
  await leader(4, { hostNetwork: true });
});

after(async () => {
  // Each step whatever the others did. machined first: it would signal the callers when their machines'
  // leaders go.
  const steps = [() => theirsWorld?.close(), () => oursWorld?.close(), () => daemon?.stop(), () => removeAllContainers(),
    () => cgroups.forEach((d) => rmdirSync(d)), () => dir && rmSync(dir, { recursive: true, force: true })];
  const failures: unknown[] = [];
  for (const step of steps) await Promise.resolve().then(step).catch((e) => failures.push(e));
  if (failures.length) throw failures[0];
});

/** The interface as `varlinkctl introspect` prints it, without the comments (machined's are systemd's
 *  sentences; ours are our own). */
async function introspect(world: SidWorld): Promise<string> {
  const r = await world.run(['varlinkctl', 'introspect', SOCKET, 'io.systemd.Machine']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}
const uncommented = (idl: string) => idl.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\n{3,}/g, '\n\n');

test('varlinkctl introspect: machined 262\'s io.systemd.Machine, and our four additions', async () => {
  const theirs = await introspect(theirsWorld);
  mkdirSync(KEEP, { recursive: true });
  writeFileSync(join(KEEP, 'io.systemd.Machine.varlink'), theirs);
  const ours = uncommented(await introspect(oursWorld));
  // Ours: Register's addresses, List's ifIndices, state and osReleaseError, the method Watch (README).
  const additions = [
    /,\n\taddresses: \?\[\]string(?=\n\) -> \(\))/,
    /,\n\tifIndices: \?\[\]int,\n\tstate: \?string,\n\tosReleaseError: \?string(?=\n\)\n)/,
    /\nmethod Watch\(\) -> \(\n\tevent: \(\n\t\tadded,\n\t\tremoved,\n\t\tchanged\n\t\),\n\tmachine: object\n\)\n/,
  ];
  let stripped = ours;
  for (const a of additions) {
    assert.match(stripped, a);
    stripped = stripped.replace(a, '');
  }
  assert.equal(stripped, uncommented(theirs));
});

test('Register with 262\'s parameters, List by name and by pid, with and without metadata, List all with more', async () => {
  const [web, ns, vm] = L;
  assert.deepEqual(await same({ method: 'Register', params: { name: 'web1', class: 'container', service: 'test', leaderProcessId: { pid: web.pid }, ifIndices: [web.hostIfIndex] } }), OK);
  assert.deepEqual(await same({ method: 'Register', params: { name: 'ns2', class: 'container', leader: ns.pid, id: ID, rootDirectory: '/srv/ns2' } }), OK);
  assert.deepEqual(await same({ method: 'Register', params: {
    name: 'vm3', class: 'vm', leaderProcessId: { pid: vm.pid, pidfdId: processPidfdId(vm.pid) }, vSockCid: 42, sshAddress: 'vsock/42',
    sshPrivateKeyPath: '/run/vm3/key', controlAddress: '/run/vm3/control', allocateUnit: false, supervisor: 12345,
  } }), OK);
  for (const name of ['web1', 'ns2', 'vm3', '.host']) {
    const r = await same({ method: 'List', params: { name } });
    assert.equal(r.code, 0);
  }
  // Ours, beside machined's fields.
  const mine = await callIn(oursWorld, { method: 'List', params: { name: 'web1' } });
  assert.deepEqual([(mine.out[0] as any).ifIndices, (mine.out[0] as any).state], [[web.hostIfIndex], 'running']);
  // The containers' addresses once their IPv6 link-local ones are no longer tentative (both leave those out).
  await waitFor('the link-local addresses', async () => {
    const r = await callIn(oursWorld, { method: 'List', params: { name: 'ns2', acquireMetadata: 'yes' } });
    return (r.out[0] as any)?.addresses?.length === 2 ? true : undefined;
  }, 10_000);
  for (const params of [
    { name: 'web1', acquireMetadata: 'yes' },
    { name: 'ns2', acquireMetadata: 'yes' },
    { name: 'ns2', acquireMetadata: 'graceful' },
    { name: 'vm3', acquireMetadata: 'yes' },
    { name: 'vm3', acquireMetadata: 'graceful' },
    { name: 'web1', acquireMetadata: 'no' },
    { pid: { pid: ns.pid } },
    { pid: { pid: ns.pid }, acquireMetadata: 'yes' },
    { pid: { pid: vm.pid, pidfdId: 1 } },
    { pid: { pid: ns.pid, bootId: '00000000000000000000000000000001' } },
    { pid: { pid: 1 } },
    { pid: { pid: 0 } },
    { name: 'web1', pid: { pid: web.pid } },
    { name: 'web1', pid: { pid: ns.pid } },
    { name: 'nosuch' },
  ]) {
    await same({ method: 'List', params });
  }
  const all = await same({ method: 'List', more: true });
  assert.deepEqual(all.out.map((m: any) => m.name), ['.host', 'ns2', 'vm3', 'web1']);
  assert.deepEqual(all.out[3], {
    name: 'web1', class: 'container', service: 'test', unit: `mmtest-sidvl-${process.pid}-1.scope`,
    leader: { pid: web.pid, pidfdId: processPidfdId(web.pid), bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '') },
    supervisor: ['pid', 'pidfdId', 'bootId'], timestamp: ['realtime', 'monotonic'], UID: 0,
  });
});

test('bad input: the same error names as machined 262 (and our message beside them), nothing registered', async () => {
  const [web, ns, , spare] = L;
  const cases: [Call, Outcome][] = [
    [{ method: 'List' }, { code: 1, out: [{}], err: `${err('List')}() failed: called without 'more' flag, but flag needs to be set.` }],
    [{ method: 'List', params: { pid: ns.pid } }, INVALID('List', 'pid')],
    [{ method: 'List', params: { acquireMetadata: true } }, INVALID('List', 'acquireMetadata')],
    [{ method: 'List', params: { name: 'x', acquireMetadata: 'maybe' } }, INVALID('List', 'acquireMetadata')],
    [{ method: 'List', params: { name: 'bad_name' } }, INVALID('List', 'name')],
    [{ method: 'List', params: { bogus: 1 } }, INVALID('List', 'bogus')],
    [{ method: 'Register', params: { name: 'web1', class: 'container', leader: spare.pid } }, NAMED('Register', 'MachineExists')],
    [{ method: 'Register', params: { name: 'bad_name', class: 'container', leader: spare.pid } }, INVALID('Register', 'name')],
    [{ method: 'Register', params: { class: 'container', leader: spare.pid } }, INVALID('Register', 'name')],
    [{ method: 'Register', params: { name: 'x1', class: 'toaster', leader: spare.pid } }, INVALID('Register', 'class')],
    [{ method: 'Register', params: { name: 'x1', class: 'host', leader: spare.pid } }, INVALID('Register', 'class')],
    [{ method: 'Register', params: { name: 'x1', leader: spare.pid } }, INVALID('Register', 'class')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: 1 } }, INVALID('Register', 'leader')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: 0 } }, INVALID('Register', 'leader')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: -5 } }, INVALID('Register', 'leader')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: 0x3ffffff0 } }, INVALID('Register', 'leader')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: 'one' } }, INVALID('Register', 'leader')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: spare.pid, leaderProcessId: { pid: web.pid } } }, INVALID('Register', 'leaderProcessId')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leaderProcessId: { pid: spare.pid, pidfdId: 1 } } }, INVALID('Register', 'leaderProcessId')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leaderProcessId: { pid: spare.pid, bootId: '00000000000000000000000000000001' } } }, INVALID('Register', 'leaderProcessId')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leaderProcessId: { pid: 0 } } }, INVALID('Register', 'leaderProcessId')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: spare.pid, id: 'abc' } }, INVALID('Register', 'id')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: spare.pid, rootDirectory: 'rel' } }, INVALID('Register', 'rootDirectory')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: spare.pid, rootDirectory: '/a//b' } }, INVALID('Register', 'rootDirectory')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: spare.pid, rootDirectory: '/a/./b' } }, INVALID('Register', 'rootDirectory')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: spare.pid, ifIndices: [0] } }, INVALID('Register', 'ifIndices')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: spare.pid, ifIndices: [-1] } }, INVALID('Register', 'ifIndices')],
    [{ method: 'Register', params: { name: 'x1', class: 'vm', leader: spare.pid, vSockCid: 1 } }, INVALID('Register', 'vSockCid')],
    [{ method: 'Register', params: { name: 'x1', class: 'vm', leader: spare.pid, vSockCid: -1 } }, INVALID('Register', 'vSockCid')],
    [{ method: 'Register', params: { name: 'x1', class: 'vm', leader: spare.pid, sshPrivateKeyPath: 'key' } }, INVALID('Register', 'sshPrivateKeyPath')],
    [{ method: 'Register', params: { name: 'x1', class: 'vm', leader: spare.pid, controlAddress: '' } }, INVALID('Register', 'controlAddress')],
    [{ method: 'Register', params: { name: 'x1', class: 'vm', leader: spare.pid, controlAddress: 'unix:/run/x' } }, INVALID('Register', 'controlAddress')],
    [{ method: 'Register', params: { name: 'x1', class: 'vm', leader: spare.pid, controlAddress: '/run/../x' } }, INVALID('Register', 'controlAddress')],
    [{ method: 'Register', params: { name: 'x1', class: 'container', leader: spare.pid }, as: NOBODY }, DENIED('Register')],
    [{ method: 'Register', params: { name: 'bad_name', class: 'container', leader: spare.pid }, as: NOBODY }, INVALID('Register', 'name')],
    [{ method: 'Unregister', params: { name: 'nosuch' } }, NAMED('Unregister', 'NoSuchMachine')],
    [{ method: 'Unregister', params: {} }, NAMED('Unregister', 'NoSuchMachine')],
    [{ method: 'Unregister', params: { name: 'bad_name' } }, INVALID('Unregister', 'name')],
    [{ method: 'Unregister', params: { name: 'web1' }, as: NOBODY }, DENIED('Unregister')],
    [{ method: 'Unregister', params: { name: 'nosuch' }, as: NOBODY }, NAMED('Unregister', 'NoSuchMachine')],
    [{ method: 'Terminate', params: { name: 'nosuch' } }, NAMED('Terminate', 'NoSuchMachine')],
    [{ method: 'Terminate', params: { name: '.host' } }, ERRNO('Terminate', 95, 'EOPNOTSUPP', 'Operation not supported')],
    [{ method: 'Terminate', params: { name: 'web1' }, as: NOBODY }, DENIED('Terminate')],
    [{ method: 'Kill', params: { name: 'web1', signal: 0 } }, INVALID('Kill', 'signal')],
    [{ method: 'Kill', params: { name: 'web1', signal: 65 } }, INVALID('Kill', 'signal')],
    [{ method: 'Kill', params: { name: 'nosuch', signal: 0 } }, INVALID('Kill', 'signal')],
    [{ method: 'Kill', params: { name: 'web1' } }, INVALID('Kill', 'signal')],
    [{ method: 'Kill', params: { name: 'web1', signal: 18, whom: 'bogus' } }, INVALID('Kill', 'whom')],
    [{ method: 'Kill', params: { name: 'web1', signal: 18, whom: '' } }, INVALID('Kill', 'whom')],
    [{ method: 'Kill', params: { name: 'nosuch', signal: 18 } }, NAMED('Kill', 'NoSuchMachine')],
    [{ method: 'Kill', params: { name: 'web1', signal: 18 }, as: NOBODY }, DENIED('Kill')],
    [{ method: 'Kill', params: { name: 'nosuch', signal: 18 }, as: NOBODY }, NAMED('Kill', 'NoSuchMachine')],
    [{ method: 'Kill', params: { name: 'web1', signal: 18, whom: 'leader' } }, OK],
    // Its supervisor, the varlinkctl that registered it, is gone.
    [{ method: 'Kill', params: { name: 'web1', signal: 18, whom: 'supervisor' } }, ERRNO('Kill', 3, 'ESRCH', 'No such process')],
  ];
  for (const [call, expected] of cases) {
    const r = await same(call);
    assert.deepEqual(r, expected, `${call.method} ${JSON.stringify(call.params ?? {})}`);
  }
  const names = async (world: SidWorld) => (await callIn(world, { method: 'List', more: true })).out.map((m: any) => m.name).sort();
  assert.deepEqual(await names(oursWorld), await names(theirsWorld));
  assert.deepEqual(await names(oursWorld), ['.host', 'ns2', 'vm3', 'web1']);
});

test('MapFrom and MapTo, and their errors', async () => {
  const [, ns] = L;
  const cases: [Call, Outcome][] = [
    [{ method: 'MapFrom', params: { name: 'ns2', uid: 0 } }, { code: 0, out: [{ uid: 1_000_000 }], err: '' }],
    [{ method: 'MapFrom', params: { name: 'ns2', uid: 0, gid: 5 } }, { code: 0, out: [{ uid: 1_000_000, gid: 1_000_005 }], err: '' }],
    [{ method: 'MapFrom', params: { pid: { pid: ns.pid }, uid: 7 }, as: NOBODY }, { code: 0, out: [{ uid: 1_000_007 }], err: '' }],
    [{ method: 'MapFrom', params: { name: 'ns2' } }, OK],
    [{ method: 'MapFrom', params: { name: 'web1', uid: 5 } }, { code: 0, out: [{ uid: 5 }], err: '' }],
    [{ method: 'MapFrom', params: { name: 'ns2', uid: 70000 } }, NAMED('MapFrom', 'NoSuchUser')],
    [{ method: 'MapFrom', params: { name: 'ns2', gid: 70000 } }, NAMED('MapFrom', 'NoSuchGroup')],
    [{ method: 'MapFrom', params: { name: 'vm3', uid: 5 } }, NAMED('MapFrom', 'NotSupported')],
    [{ method: 'MapFrom', params: { name: '.host', uid: 5 } }, NAMED('MapFrom', 'NotSupported')],
    [{ method: 'MapFrom', params: { name: 'nosuch', uid: 5 } }, NAMED('MapFrom', 'NoSuchMachine')],
    [{ method: 'MapFrom', params: { uid: 5 } }, NAMED('MapFrom', 'NoSuchMachine')],
    [{ method: 'MapFrom', params: { name: 'ns2', uid: -1 } }, INVALID('MapFrom', 'uid')],
    [{ method: 'MapFrom', params: { name: 'ns2', uid: 4294967295 } }, INVALID('MapFrom', 'uid')],
    [{ method: 'MapFrom', params: { name: 'ns2', uid: 65535 } }, INVALID('MapFrom', 'uid')],
    [{ method: 'MapTo', params: { uid: 1_000_007 } }, { code: 0, out: [{ uid: 7, machineName: 'ns2' }], err: '' }],
    [{ method: 'MapTo', params: { uid: 1_000_007, gid: 1_000_008 } }, { code: 0, out: [{ uid: 7, gid: 8, machineName: 'ns2' }], err: '' }],
    [{ method: 'MapTo', params: { gid: 1_000_008 }, as: NOBODY }, { code: 0, out: [{ gid: 8, machineName: 'ns2' }], err: '' }],
    [{ method: 'MapTo', params: { uid: 1_000_007, gid: 5 } }, NAMED('MapTo', 'GroupInHostRange')],
    [{ method: 'MapTo', params: { uid: 5 } }, NAMED('MapTo', 'UserInHostRange')],
    [{ method: 'MapTo', params: { uid: 2_000_000 } }, NAMED('MapTo', 'NoSuchUser')],
    [{ method: 'MapTo', params: { gid: 2_000_000 } }, NAMED('MapTo', 'NoSuchGroup')],
    [{ method: 'MapTo', params: {} }, NAMED('MapTo', 'NoSuchMachine')],
    [{ method: 'MapTo', params: { uid: -3 } }, INVALID('MapTo', 'uid')],
    [{ method: 'MapTo', params: { uid: 4294967295 } }, INVALID('MapTo', 'uid')],
    [{ method: 'MapTo', params: { name: 'ns2', uid: 5 } }, INVALID('MapTo', 'name')],
  ];
  for (const [call, expected] of cases) {
    const r = await same(call);
    assert.deepEqual(r, expected, `${call.method} ${JSON.stringify(call.params ?? {})}`);
  }
});

test('Open, BindMount, CopyFrom, CopyTo, OpenRootDirectory: what machined 262 answers for a VM, bad input, no rights', async () => {
  const cases: [Call, Outcome][] = [
    [{ method: 'Open', params: { name: 'vm3', mode: 'tty' } }, NAMED('Open', 'NotSupported')],
    [{ method: 'Open', params: { name: 'vm3', mode: 'login' } }, NAMED('Open', 'NotSupported')],
    [{ method: 'Open', params: { name: 'nosuch', mode: 'tty' } }, NAMED('Open', 'NoSuchMachine')],
    [{ method: 'Open', params: { name: 'vm3' } }, INVALID('Open', 'mode')],
    [{ method: 'Open', params: { name: 'vm3', mode: 'bogus' } }, INVALID('Open', 'mode')],
    [{ method: 'Open', params: { name: 'vm3', mode: 'shell', path: 'rel' } }, INVALID('Open', 'path')],
    [{ method: 'Open', params: { name: 'vm3', mode: 'shell', environment: ['NOEQUALS'] } }, INVALID('Open', 'environment')],
    [{ method: 'Open', params: { name: 'vm3', mode: 'tty' }, as: NOBODY }, DENIED('Open')],
    [{ method: 'BindMount', params: { name: 'vm3', source: '/tmp' } }, NAMED('BindMount', 'NotSupported')],
    [{ method: 'BindMount', params: { name: 'vm3', source: '/tmp' }, as: NOBODY }, NAMED('BindMount', 'NotSupported')],
    [{ method: 'BindMount', params: { name: 'vm3' } }, INVALID('BindMount', 'source')],
    [{ method: 'BindMount', params: { name: 'vm3', source: 'rel' } }, INVALID('BindMount', 'source')],
    [{ method: 'BindMount', params: { name: 'vm3', source: '/tmp', destination: 'rel' } }, INVALID('BindMount', 'destination')],
    [{ method: 'BindMount', params: { name: 'nosuch', source: '/tmp' } }, NAMED('BindMount', 'NoSuchMachine')],
    [{ method: 'CopyFrom', params: { name: 'vm3', source: '/etc/hostname' } }, NAMED('CopyFrom', 'NotSupported')],
    [{ method: 'CopyFrom', params: { name: 'vm3', source: 'rel' } }, INVALID('CopyFrom', 'source')],
    [{ method: 'CopyFrom', params: { name: 'nosuch', source: '/etc/hostname' } }, NAMED('CopyFrom', 'NoSuchMachine')],
    [{ method: 'CopyTo', params: { name: 'vm3', source: '/etc/hostname', destination: '/tmp/x' } }, NAMED('CopyTo', 'NotSupported')],
    [{ method: 'CopyTo', params: { name: 'vm3' } }, INVALID('CopyTo', 'source')],
    [{ method: 'CopyTo', params: { name: 'vm3', source: '/etc/hostname' }, as: NOBODY }, NAMED('CopyTo', 'NotSupported')],
    [{ method: 'OpenRootDirectory', params: { name: 'vm3' } }, NAMED('OpenRootDirectory', 'NotSupported')],
    [{ method: 'OpenRootDirectory', params: { name: 'nosuch' } }, NAMED('OpenRootDirectory', 'NoSuchMachine')],
    [{ method: 'OpenRootDirectory', params: {} }, NAMED('OpenRootDirectory', 'NoSuchMachine')],
    [{ method: 'OpenRootDirectory', params: { name: 'vm3' }, as: NOBODY }, DENIED('OpenRootDirectory')],
  ];
  for (const [call, expected] of cases) {
    const r = await same(call);
    assert.deepEqual(r, expected, `${call.method} ${JSON.stringify(call.params ?? {})}`);
  }
});

test('where we answer differently on purpose (README): each, as it is; then Unregister by pid', async () => {
  const [web, ns, , spare] = L;
  const differs = async (call: Call, theirs: Outcome, ours: Outcome) => assert.deepEqual(await both(call), { theirs, ours }, `${call.method} ${JSON.stringify(call.params ?? {})}`);
  // A leader that leads another machine already: machined fails linking it (EEXIST); we name the leader.
  await differs({ method: 'Register', params: { name: 'other', class: 'container', leader: web.pid } }, ERRNO('Register', 17, 'EEXIST', 'File exists'), INVALID('Register', 'leader'));
  // Names that differ in case only: machined has both, we refuse the second.
  await differs({ method: 'Register', params: { name: 'WEB1', class: 'container', leader: spare.pid } }, OK, NAMED('Register', 'MachineExists'));
  assert.deepEqual(await callIn(theirsWorld, { method: 'Unregister', params: { name: 'WEB1' } }), OK);
  // A service with control characters, an SSH address with a space: machined takes them, we refuse them
  // (they would break the state file's lines and ssh's command line).
  await differs({ method: 'Register', params: { name: 'svc', class: 'vm', leader: spare.pid, service: 'a\nb' } }, OK, INVALID('Register', 'service'));
  assert.deepEqual(await callIn(theirsWorld, { method: 'Unregister', params: { name: 'svc' } }), OK);
  await differs({ method: 'Register', params: { name: 'ssh', class: 'vm', leader: spare.pid, sshAddress: 'a b' } }, OK, INVALID('Register', 'sshAddress'));
  assert.deepEqual(await callIn(theirsWorld, { method: 'Unregister', params: { name: 'ssh' } }), OK);
  // The host: machined "unregisters" it and answers success (it stays); we say it cannot be.
  await differs({ method: 'Unregister', params: { name: '.host' } }, OK, ERRNO('Unregister', 95, 'EOPNOTSUPP', 'Operation not supported'));
  // Without systemd as PID 1 machined cannot signal or stop a machine's unit (EIO); we signal its processes.
  await differs({ method: 'Kill', params: { name: 'web1', signal: 18, whom: 'all' } }, ERRNO('Kill', 5, 'EIO', 'Input/output error'), OK);
  assert.deepEqual(await same({ method: 'Unregister', params: { pid: { pid: ns.pid } } }), OK);
  assert.deepEqual(await same({ method: 'List', params: { name: 'ns2' } }), NAMED('List', 'NoSuchMachine'));
  await differs({ method: 'Terminate', params: { name: 'web1' } }, ERRNO('Terminate', 5, 'EIO', 'Input/output error'), OK);
  await waitFor('web1 gone from ours (its leader terminated)', async () => ((await callIn(oursWorld, { method: 'List', params: { name: 'web1' } })).code === 1 ? true : undefined), 15_000);
});
