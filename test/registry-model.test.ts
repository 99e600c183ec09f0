// The registry model in-process: a Registry over a temporary state directory, with a scope allocator of
// the test's own and cheap leader processes (sleep). Validation, name clashes, reservations, reload and
// the read-only machines, in milliseconds; test/registry.test.ts covers the same through the daemon.
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryError } from '../src/registry/errors.js';
import type { Machine } from '../src/registry/machine.js';
import { Registry, type ScopeAllocator, type ScopeRequest } from '../src/registry/registry.js';
import { waitFor } from './helpers/run.js';
import { endSleepingLeaders, sleepingLeader, sleepingLeaderPid } from './helpers/leaders.js';

const leader = sleepingLeaderPid;

const quiet = { info() {}, warn() {}, debug() {} };

/** A scope allocator that only records what it is asked, and can be told to refuse. */
class FakeScopes implements ScopeAllocator {
  created: string[] = [];
  abandoned: string[] = [];
  removed: string[] = [];
  refuse: RegistryError | undefined;
  async create(machine: string, _leader: number, _req: ScopeRequest) {
    if (this.refuse) throw this.refuse;
    const path = `/machine.slice/machine-${machine}.scope`;
    this.created.push(machine);
    return { path, unit: `machine-${machine}.scope`, abandon: async () => void this.abandoned.push(machine) };
  }
  async processes() {
    return [];
  }
  async kill() {
    return false;
  }
  async remove(path: string) {
    this.removed.push(path);
    return true;
  }
}

/** The error a promise rejects with, as [kind, field, message]. */
async function refusal(p: Promise<unknown>): Promise<[string, string | undefined, string]> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof RegistryError, `not a RegistryError: ${e}`);
    return [e.kind, e.field, e.message];
  }
  assert.fail('no refusal');
}

let dir: string;
let stateDir: string;
let scopes: FakeScopes;
let reg: Registry;

async function open(): Promise<Registry> {
  const r = new Registry({ stateDir, scopes, log: quiet, sweepMs: 20 });
  await r.start();
  return r;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-model-'));
  stateDir = join(dir, 'machines');
  scopes = new FakeScopes();
  reg = await open();
});

afterEach(async () => {
  await reg.stop();
  rmSync(dir, { recursive: true, force: true });
});

after(endSleepingLeaders);

const names = () => reg.list().map((m) => m.name);

describe('registry model', () => {
  test('each validation rule refuses with its kind, field and message, and changes nothing', async () => {
    const l = leader();
    const cases: [Parameters<Registry['register']>[0], [string, string | undefined, string]][] = [
      [{ name: 'bad_name', leader: l }, ['InvalidParameter', 'name', "Invalid machine name 'bad_name': 1 to 64 letters, digits, '-' and '.', no '..' and no label starting with '.' or '-'"]],
      [{ name: 'a..b', leader: l }, ['InvalidParameter', 'name', "Invalid machine name 'a..b': 1 to 64 letters, digits, '-' and '.', no '..' and no label starting with '.' or '-'"]],
      [{ name: 'x'.repeat(65), leader: l }, ['InvalidParameter', 'name', `Invalid machine name '${'x'.repeat(65)}': 1 to 64 letters, digits, '-' and '.', no '..' and no label starting with '.' or '-'`]],
      [{ name: 'c', leader: l, class: 'host' }, ['InvalidParameter', 'class', "Invalid machine class 'host': reserved for the host itself"]],
      [{ name: 'c', leader: l, class: 'toaster' }, ['InvalidParameter', 'class', "Invalid machine class 'toaster': expected 'container' or 'vm'"]],
      [{ name: 'c', leader: l, id: 'abc' }, ['InvalidParameter', 'id', "Invalid machine id 'abc': expected 32 hexadecimal digits"]],
      [{ name: 'c', leader: l, service: 'a\nb' }, ['InvalidParameter', 'service', 'Invalid service: at most 255 printable characters']],
      [{ name: 'c', leader: l, rootDirectory: 'rel' }, ['InvalidParameter', 'rootDirectory', "Invalid root directory 'rel': must be an absolute path"]],
      [{ name: 'c', leader: 0 }, ['InvalidParameter', 'leader', 'Invalid leader PID 0']],
      [{ name: 'c', leader: 1 }, ['InvalidParameter', 'leader', 'Invalid leader PID 1: the init process cannot lead a machine']],
      [{ name: 'c', leader: process.pid }, ['InvalidParameter', 'leader', `Invalid leader PID ${process.pid}: that is the registry daemon itself`]],
      [{ name: 'c', leader: 0x3ffffff0 }, ['InvalidParameter', 'leader', `Invalid leader PID ${0x3ffffff0}: no such process`]],
      [{ name: 'c', leader: l, ifIndices: [3, 0] }, ['InvalidParameter', 'ifIndices', 'Invalid network interface index 0: must be > 0']],
      [{ name: 'c', leader: l, addresses: ['10.1.1.300'] }, ['InvalidParameter', 'addresses', "Invalid address '10.1.1.300': expected an IPv4 or IPv6 address"]],
      [{ name: 'c', leader: l, addresses: ['::1'] }, ['InvalidParameter', 'addresses', "Invalid address '::1': loopback addresses cannot reach a machine"]],
      [{ name: 'c', leader: l, vSockCid: 2 }, ['InvalidParameter', 'vSockCid', 'Invalid VSOCK CID 2: must be 3..4294967294']],
      // Addresses no machine can have (ssh to 0.0.0.0 reaches the host itself).
      [{ name: 'c', leader: l, addresses: ['0.0.0.0'] }, ['InvalidParameter', 'addresses', "Invalid address '0.0.0.0': the unspecified address cannot reach a machine"]],
      [{ name: 'c', leader: l, addresses: ['::'] }, ['InvalidParameter', 'addresses', "Invalid address '::': the unspecified address cannot reach a machine"]],
      [{ name: 'c', leader: l, addresses: ['255.255.255.255'] }, ['InvalidParameter', 'addresses', "Invalid address '255.255.255.255': the broadcast address cannot reach a machine"]],
      [{ name: 'c', leader: l, addresses: ['10.0.0.1', '224.0.0.1'] }, ['InvalidParameter', 'addresses', "Invalid address '224.0.0.1': a multicast address cannot reach a machine"]],
      [{ name: 'c', leader: l, addresses: ['ff02::1'] }, ['InvalidParameter', 'addresses', "Invalid address 'ff02::1': a multicast address cannot reach a machine"]],
      // Accepted, it would never be answered: a link-local address is usable only with its scope.
      [{ name: 'c', leader: l, class: 'vm', addresses: ['fe80::5'] }, ['InvalidParameter', 'addresses', "Invalid address 'fe80::5': an IPv6 link-local address needs exactly one network interface (ifIndices) to give it a scope"]],
      [{ name: 'c', leader: l, class: 'vm', ifIndices: [3, 4], addresses: ['fe80::5'] }, ['InvalidParameter', 'addresses', "Invalid address 'fe80::5': an IPv6 link-local address needs exactly one network interface (ifIndices) to give it a scope"]],
      [{ name: 'c', leader: 2 }, ['InvalidParameter', 'leader', 'Invalid leader PID 2: a kernel thread cannot lead a machine']],
    ];
    for (const [req, want] of cases) assert.deepEqual(await refusal(reg.register(req)), want, JSON.stringify(req));
    assert.deepEqual(names(), ['.host']);
    assert.deepEqual(readdirSync(stateDir), []);
  });

  test('a VM with one network interface may give a link-local address', async () => {
    const m = await reg.register({ name: 'vm', class: 'vm', leader: leader(), ifIndices: [7], addresses: ['fe80::5', '10.0.0.5'] });
    assert.deepEqual(m.addresses.map((a) => a.bytes.length), [4, 16]);
  });

  test('names are unique ignoring case, and a leader leads one machine', async () => {
    const a = leader();
    const b = leader();
    await reg.register({ name: 'Web', leader: a });
    assert.deepEqual(await refusal(reg.register({ name: 'Web', leader: b })), ['MachineExists', undefined, "Machine 'Web' already exists"]);
    assert.deepEqual(await refusal(reg.register({ name: 'wEB', leader: b })), ['MachineExists', undefined, "Machine 'wEB' clashes with machine 'Web': names must differ in more than letter case"]);
    assert.deepEqual(await refusal(reg.register({ name: 'other', leader: a })), ['InvalidParameter', 'leader', `Invalid leader PID ${a}: it already leads machine 'Web'`]);
    await reg.unregister('Web');
    await reg.register({ name: 'web', leader: a });
    assert.deepEqual(names(), ['.host', 'web']);
  });

  test('racing registrations: the name and the leader are reserved while the first is checked', async () => {
    const a = leader();
    const b = leader();
    // Create waits for its scope: the second request comes while the first is still under way.
    const [first, byName, byLeader] = await Promise.allSettled([
      reg.register({ name: 'race', leader: a, allocateUnit: true }),
      reg.register({ name: 'RACE', leader: b }),
      reg.register({ name: 'other', leader: a }),
    ]);
    assert.equal(first.status, 'fulfilled');
    assert.equal(byName.status === 'rejected' && byName.reason.message, "Machine 'RACE' clashes with machine 'race': names must differ in more than letter case");
    assert.equal(byLeader.status === 'rejected' && byLeader.reason.message, `Invalid leader PID ${a}: it already leads another machine`);
    assert.deepEqual(names(), ['.host', 'race']);
    // Once answered, the reservation is gone: the leader and the name are the machine's now.
    assert.deepEqual(await refusal(reg.register({ name: 'other', leader: a })), ['InvalidParameter', 'leader', `Invalid leader PID ${a}: it already leads machine 'race'`]);
  });

  test('a refused Create leaves nothing: no machine, no file, the scope abandoned', async () => {
    scopes.refuse = new RegistryError('Failed', 'Cannot make cgroup');
    const l = leader();
    assert.deepEqual(await refusal(reg.register({ name: 'made', leader: l, allocateUnit: true })), ['Failed', undefined, 'Cannot make cgroup']);
    scopes.refuse = undefined;
    // A refusal after the scope was made puts it back (here: the state directory cannot take the file).
    rmSync(stateDir, { recursive: true });
    writeFileSync(stateDir, 'not a directory');
    await assert.rejects(reg.register({ name: 'made', leader: l, allocateUnit: true }), /ENOTDIR/);
    assert.deepEqual(scopes.created, ['made']);
    assert.deepEqual(scopes.abandoned, ['made']);
    assert.deepEqual(names(), ['.host']);
  });

  test('machines are read-only; a change is a new object, announced with the one it replaces', async () => {
    const l = leader();
    const m = await reg.register({ name: 'ro', leader: l });
    assert.equal(Object.isFrozen(m), true);
    assert.throws(() => ((m as { state: string }).state = 'closing'), TypeError);
    const changed: [Machine, Machine][] = [];
    reg.on('changed', (now, previous) => changed.push([now, previous]));
    await reg.terminate('ro');
    assert.equal(changed.length, 1);
    assert.equal(changed[0][1], m);
    assert.equal(changed[0][0].state, 'closing');
    assert.equal(reg.get('ro'), changed[0][0]);
    assert.equal(m.state, 'running', 'the old object is unchanged');
  });

  test('a machine goes when its leader exits, its state file with it', async () => {
    const p = sleepingLeader();
    const removed: string[] = [];
    reg.on('removed', (m) => removed.push(m.name));
    await reg.register({ name: 'brief', leader: p.pid!, allocateUnit: true });
    assert.deepEqual(readdirSync(stateDir).sort(), ['brief', 'unit:machine-brief.scope']);
    p.kill('SIGKILL');
    await waitFor('the machine to go', () => (reg.get('brief') ? undefined : true));
    assert.deepEqual(removed, ['brief']);
    assert.deepEqual(readdirSync(stateDir), []);
    assert.deepEqual(scopes.removed, ['/machine.slice/machine-brief.scope']);
  });

  test('reload: machines come back from their files; gone, reused and duplicate leaders are dropped', async () => {
    const a = leader();
    const b = leader();
    await reg.register({ name: 'keep', leader: a, service: 'svc', addresses: ['10.9.0.1'] });
    const before = reg.get('keep')!;
    await reg.stop();
    const file = (n: string, text: string) => writeFileSync(join(stateDir, n), text);
    file('gone', 'NAME=gone\nLEADER=1073741800\nCLASS=container\n');
    file('reused', `NAME=reused\nLEADER=${b}\nCLASS=container\nLEADER_STARTTIME=1\n`);
    // Of two files for one leader, the first by name is taken.
    file('zdup', `NAME=zdup\nLEADER=${a}\nCLASS=vm\n`);
    file('bad', 'garbage');
    file('.#keep.1.tmp', 'left by a crash');
    reg = await open();
    assert.deepEqual(names(), ['.host', 'keep']);
    const after = reg.get('keep')!;
    assert.deepEqual([after.leader, after.service, after.leaderStartTime, after.timestamp], [before.leader, before.service, before.leaderStartTime, before.timestamp]);
    assert.deepEqual(readdirSync(stateDir), ['keep']);
    assert.match(readFileSync(join(stateDir, 'keep'), 'utf8'), /\nADDRESSES=10\.9\.0\.1\n/);
  });

  test('reload: a second file for the same leader goes without the unit link and scope of the machine kept', async () => {
    const a = leader();
    await reg.register({ name: 'made', leader: a, allocateUnit: true });
    await reg.stop();
    // Names the same leader, unit and scope: only the file goes.
    writeFileSync(join(stateDir, 'zdup'), `NAME=zdup\nLEADER=${a}\nCLASS=container\nSCOPE=machine-made.scope\nOWN_CGROUP=/machine.slice/machine-made.scope\n`);
    reg = await open();
    assert.deepEqual(names(), ['.host', 'made']);
    assert.deepEqual(readdirSync(stateDir).sort(), ['made', 'unit:machine-made.scope']);
    assert.deepEqual(scopes.removed, []);
  });
});
