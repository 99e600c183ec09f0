// mymachinesd against the real systemd-machined 262, call by call. machined runs once in the sid root on
// a private bus of its own; mymachinesd is on another private bus (sid's dbus-daemon too). The same
// scripted calls go to both from one client, with the same real leaders (containers with their own
// network namespace, each in a unit cgroup, where machined 262 insists on finding one), and the answers
// are compared. Where they differ on purpose, the README says why; those are asserted as such here.
//
// machined 262 SIGTERMs the caller (the "supervisor") of a machine it stops: it is stopped before any
// leader exits, and no call here makes it stop a machine.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import dbus from 'dbus-next';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { ROOT, startDaemon, type Daemon } from './helpers/daemon.js';
import { eachStep, waitFor } from './helpers/run.js';
import { cgroup2Mount, enterSidRoot, type SidWorld, type Started } from './helpers/sid-root.js';
import * as c from '../src/registry/linux/libc.js';
import { processPidfdId } from '../src/registry/linux/leader.js';

const MGR_PATH = '/org/freedesktop/machine1';
const MGR = 'org.freedesktop.machine1.Manager';
const MACHINE = 'org.freedesktop.machine1.Machine';
const ID = '0123456789abcdef0123456789abcdef';
/** Where the descriptions taken from machined 262 are kept. */
const KEEP = join(ROOT, 'build/machined-262');

type Client = { conn: dbus.MessageBus; call(path: string, iface: string, member: string, sig?: string, body?: unknown[]): Promise<any[]> };

let theirsWorld: SidWorld;
let oursWorld: SidWorld;
let machined: Started;
let daemon: Daemon;
let theirs: Client;
let ours: Client;
const cgroups: string[] = [];
const leaders: Container[] = [];

async function connect(address: string): Promise<Client> {
  const conn = dbus.sessionBus({ busAddress: address, negotiateUnixFd: true } as dbus.SessionBusOptions);
  await new Promise<void>((resolve, reject) => {
    conn.once('connect', () => resolve());
    conn.once('error', reject);
  });
  return {
    conn,
    async call(path, iface, member, signature = '', body = []) {
      const reply = await conn.call(new dbus.Message({ destination: 'org.freedesktop.machine1', path, interface: iface, member, signature, body }));
      return reply!.body;
    },
  };
}

/** A container leader in a unit cgroup of its own (machined 262 refuses a leader outside any unit). */
async function leader(n: number, v4: string): Promise<Container> {
  const ct = await makeContainer({ ipv4: { host: `10.78.${n}.1`, inside: v4 }, ipv6: { host: `fd00:78:${n}::1`, inside: `fd00:78:${n}::2` } });
  leaders.push(ct);
  const dir = join(cgroup2Mount(), `mmtest-sid-${process.pid}-${n}.scope`);
  mkdirSync(dir);
  cgroups.push(dir);
  writeFileSync(join(dir, 'cgroup.procs'), String(ct.pid));
  return ct;
}

/** The outcome of a call: its reply, or the error name. */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { reply: await p };
  } catch (e) {
    return { error: (e as { type?: string }).type ?? String(e) };
  }
}

/** Both answers to the same call. */
async function both(member: string, sig: string, body: unknown[], path = MGR_PATH, iface = MGR) {
  return { theirs: await outcome(theirs.call(path, iface, member, sig, body)), ours: await outcome(ours.call(path, iface, member, sig, body)) };
}

const v = (sig: string, value: unknown) => new dbus.Variant(sig, value);

/** Methods, properties and signals of one interface from introspection XML: member -> signature. */
function members(xml: string, iface: string): Record<string, string> {
  const body = xml.split(`<interface name="${iface}">`)[1]?.split('</interface>')[0] ?? '';
  const out: Record<string, string> = {};
  for (const m of body.matchAll(/<(method|signal) name="([^"]+)"\s*(\/>|>([\s\S]*?)<\/\1>)/g)) {
    const args = [...(m[4] ?? '').matchAll(/<arg ([^>]*)\/?>/g)].map((a) => ({ type: /type="([^"]+)"/.exec(a[1])![1], dir: /direction="([^"]+)"/.exec(a[1])?.[1] ?? 'out' }));
    const sig = (d: string) => args.filter((a) => a.dir === d).map((a) => a.type).join('');
    out[`${m[1]} ${m[2]}`] = m[1] === 'method' ? `${sig('in')} -> ${sig('out')}` : sig('out');
  }
  for (const m of body.matchAll(/<property name="([^"]+)" type="([^"]+)" access="([^"]+)"/g)) out[`property ${m[1]}`] = `${m[2]} ${m[3]}`;
  return out;
}

before(async () => {
  theirsWorld = await enterSidRoot();
  await theirsWorld.startBus();
  machined = theirsWorld.start(['/usr/lib/systemd/systemd-machined']);
  oursWorld = await enterSidRoot();
  await oursWorld.startBus();
  daemon = await startDaemon({ args: ['--bus', oursWorld.busAddress] });
  theirs = await connect(theirsWorld.busAddress);
  ours = await connect(oursWorld.busAddress);
  for (const client of [theirs, ours]) {
    if (machined.proc.exitCode !== null) throw new Error(`machined exited: ${machined.output()}`);
    await waitFor('org.freedesktop.machine1 on the bus', async () => ((await outcome(client.call(MGR_PATH, MGR, 'ListMachines'))) as { reply?: unknown }).reply ? true : undefined, 15_000);
  }
});

after(() =>
  eachStep([
    () => theirs?.conn.disconnect(),
    () => ours?.conn.disconnect(),
    // machined first: it would signal its callers when their machines' leaders go.
    () => theirsWorld?.close(),
    () => oursWorld?.close(),
    () => daemon?.stop(),
    () => daemon?.cleanup(),
    () => removeAllContainers(),
    ...cgroups.map((d) => () => rmdirSync(d)),
  ]));

test('the D-Bus interfaces of machined 262 and ours: the same members and signatures', async () => {
  const [theirManager] = await theirs.call(MGR_PATH, 'org.freedesktop.DBus.Introspectable', 'Introspect');
  const [ourManager] = await ours.call(MGR_PATH, 'org.freedesktop.DBus.Introspectable', 'Introspect');
  mkdirSync(KEEP, { recursive: true });
  writeFileSync(join(KEEP, 'org.freedesktop.machine1.Manager.xml'), theirManager);
  assert.deepEqual(members(ourManager, MGR), members(theirManager, MGR));
  const [theirHost] = await theirs.call(`${MGR_PATH}/machine/_2ehost`, 'org.freedesktop.DBus.Introspectable', 'Introspect');
  const [ourHost] = await ours.call(`${MGR_PATH}/machine/_2ehost`, 'org.freedesktop.DBus.Introspectable', 'Introspect');
  writeFileSync(join(KEEP, 'org.freedesktop.machine1.Machine.xml'), theirHost);
  assert.deepEqual(members(ourHost, MACHINE), members(theirHost, MACHINE));
});

test('machined 262\'s Varlink interfaces on its sockets, kept in build/machined-262 (test/sid-machine-varlink.test.ts compares ours)', async () => {
  const expect: Record<string, string> = {
    '/run/systemd/machine/io.systemd.Machine io.systemd.Machine': 'Register Unregister Terminate Kill List Open MapFrom MapTo BindMount CopyFrom CopyTo OpenRootDirectory',
    '/run/systemd/machine/io.systemd.MachineImage io.systemd.MachineImage': 'List Update Clone Remove SetPoolLimit CleanPool',
    '/run/systemd/resolve.hook/io.systemd.Machine io.systemd.Resolve.Hook': 'QueryFilter ResolveRecord',
  };
  for (const [what, methods] of Object.entries(expect)) {
    const [socket, iface] = what.split(' ');
    const r = await theirsWorld.run(['varlinkctl', 'introspect', socket, iface]);
    assert.equal(r.code, 0, r.stderr);
    writeFileSync(join(KEEP, `${iface}.varlink`), r.stdout);
    assert.equal([...r.stdout.matchAll(/^method (\w+)\(/gm)].map((m) => m[1]).join(' '), methods);
  }
});

test('registrations: RegisterMachine, RegisterMachineEx by PID and pidfd ID, by pidfd; the same objects and properties', async () => {
  const web = await leader(1, '10.78.1.2');
  const vm = await leader(2, '10.78.2.2');
  const ct = await leader(3, '10.78.3.2');
  const id = Buffer.from(ID, 'hex');
  assert.deepEqual(await both('RegisterMachine', 'sayssus', ['web1', id, 'test', 'container', web.pid, '/srv/web1']), { theirs: { reply: [`${MGR_PATH}/machine/web1`] }, ours: { reply: [`${MGR_PATH}/machine/web1`] } });
  const vmProps = [['Class', v('s', 'vm')], ['Service', v('s', 'qemu')], ['LeaderPID', v('u', vm.pid)], ['LeaderPIDFDID', v('t', BigInt(processPidfdId(vm.pid)))], ['VSockCID', v('u', 42)], ['SSHAddress', v('s', 'vsock/42')], ['SSHPrivateKeyPath', v('s', '/root/.ssh/vm1')], ['NetworkInterfaces', v('ai', [vm.hostIfIndex])]];
  assert.deepEqual(await both('RegisterMachineEx', 'sa(sv)', ['vm1', vmProps]), { theirs: { reply: [`${MGR_PATH}/machine/vm1`] }, ours: { reply: [`${MGR_PATH}/machine/vm1`] } });
  // The leader as a pidfd (an fd passed along; each bus gets its own copy).
  for (const client of [theirs, ours]) {
    const fd = c.pidfd_open(ct.pid, 0);
    try {
      assert.deepEqual(await client.call(MGR_PATH, MGR, 'RegisterMachineEx', 'sa(sv)', ['ct-2', [['Class', v('s', 'container')], ['LeaderPIDFD', v('h', fd)]]]), [`${MGR_PATH}/machine/ct_2d2`]);
    } finally {
      c.close(fd);
    }
  }

  const list = async (client: Client) => ((await client.call(MGR_PATH, MGR, 'ListMachines'))[0] as string[][]).map((m) => m.join(' ')).sort();
  assert.deepEqual(await list(ours), await list(theirs));
  for (const name of ['web1', 'vm1', 'ct-2']) {
    const path = (await theirs.call(MGR_PATH, MGR, 'GetMachine', 's', [name]))[0];
    const props = async (client: Client) => {
      const all = (await client.call(path, 'org.freedesktop.DBus.Properties', 'GetAll', 's', [MACHINE]))[0] as Record<string, dbus.Variant>;
      // Registration times differ by the calls' order.
      delete all.Timestamp;
      delete all.TimestampMonotonic;
      // machined 262 says 0 for a machine RegisterMachineEx made without a CID, VMADDR_CID_ANY for the
      // others; we say VMADDR_CID_ANY for all (below).
      if (name === 'ct-2') delete all.VSockCID;
      return Object.fromEntries(Object.entries(all).map(([k, x]) => [k, `${x.signature} ${typeof x.value === 'bigint' ? x.value : JSON.stringify(x.value)}`]));
    };
    assert.deepEqual(await props(ours), await props(theirs), name);
  }
  const cid = await both('Get', 'ss', [MACHINE, 'VSockCID'], `${MGR_PATH}/machine/ct_2d2`, 'org.freedesktop.DBus.Properties');
  assert.deepEqual(JSON.stringify(cid), JSON.stringify({ theirs: { reply: [v('u', 0)] }, ours: { reply: [v('u', 0xffffffff)] } }));
  assert.deepEqual(await both('GetMachineByPID', 'u', [web.pid]), { theirs: { reply: [`${MGR_PATH}/machine/web1`] }, ours: { reply: [`${MGR_PATH}/machine/web1`] } });
  const ssh = await both('GetMachineSSHInfo', 's', ['vm1']);
  assert.deepEqual(ssh.ours, ssh.theirs);
  assert.deepEqual(ssh.ours, { reply: ['vsock/42', '/root/.ssh/vm1'] });
  const sshMachine = await both('GetSSHInfo', '', [], `${MGR_PATH}/machine/vm1`, MACHINE);
  assert.deepEqual(sshMachine.ours, sshMachine.theirs);
  const addresses = await both('GetMachineAddresses', 's', ['web1']);
  assert.deepEqual(addresses.ours, addresses.theirs);
  const vmAddresses = await both('GetMachineAddresses', 's', ['vm1']);
  assert.deepEqual(vmAddresses.ours, vmAddresses.theirs);
});

test('bad input: the same error names as machined 262, and nothing registered', async () => {
  const ct = await leader(4, '10.78.4.2');
  const rightId = BigInt(processPidfdId(ct.pid));
  const cases: [string, string, unknown[]][] = [
    ['GetMachine', 's', ['nosuch']],
    ['GetMachineSSHInfo', 's', ['nosuch']],
    ['GetMachineSSHInfo', 's', ['web1']],
    ['GetMachineByPID', 'u', [process.pid]],
    ['RegisterMachine', 'sayssus', ['bad_name', Buffer.alloc(0), '', 'container', ct.pid, '']],
    ['RegisterMachine', 'sayssus', ['web1', Buffer.alloc(0), '', 'container', ct.pid, '']],
    ['RegisterMachine', 'sayssus', ['bad-id', Buffer.alloc(3), '', 'container', ct.pid, '']],
    ['RegisterMachine', 'sayssus', ['bad-class', Buffer.alloc(0), '', 'toaster', ct.pid, '']],
    ['RegisterMachine', 'sayssus', ['host-class', Buffer.alloc(0), '', 'host', ct.pid, '']],
    ['RegisterMachine', 'sayssus', ['init', Buffer.alloc(0), '', 'container', 1, '']],
    ['RegisterMachine', 'sayssus', ['gone', Buffer.alloc(0), '', 'container', 0x3ffffff0, '']],
    ['RegisterMachine', 'sayssus', ['rel-root', Buffer.alloc(0), '', 'container', ct.pid, 'srv/x']],
    ['RegisterMachineEx', 'sa(sv)', ['bad_name', [['Class', v('s', 'vm')]]]],
    ['RegisterMachineEx', 'sa(sv)', ['unknown-key', [['Colour', v('s', 'red')]]]],
    ['RegisterMachineEx', 'sa(sv)', ['web1', [['Class', v('s', 'container')], ['LeaderPID', v('u', ct.pid)], ['LeaderPIDFDID', v('t', rightId)]]]],
    ['RegisterMachineEx', 'sa(sv)', ['pid-only', [['LeaderPID', v('u', ct.pid)]]]],
    ['RegisterMachineEx', 'sa(sv)', ['bad-cid', [['Class', v('s', 'vm')], ['VSockCID', v('u', 1)], ['LeaderPID', v('u', ct.pid)], ['LeaderPIDFDID', v('t', rightId)]]]],
    ['RegisterMachineEx', 'sa(sv)', ['bad-netif', [['NetworkInterfaces', v('ai', [-1])]]]],
    ['RegisterMachineEx', 'sa(sv)', ['bad-root', [['RootDirectory', v('s', 'relative')]]]],
    ['RegisterMachineEx', 'sa(sv)', ['bad-class', [['Class', v('s', 'toaster')]]]],
    ['RegisterMachineEx', 'sa(sv)', ['bad-id', [['Id', v('ay', Buffer.alloc(5))]]]],
  ];
  for (const [member, sig, body] of cases) {
    const r = await both(member, sig, body);
    assert.deepEqual(r.ours, r.theirs, `${member}(${JSON.stringify(body[0])})`);
  }
  const list = async (client: Client) => ((await client.call(MGR_PATH, MGR, 'ListMachines'))[0] as string[][]).map((m) => m[0]).sort();
  assert.deepEqual(await list(ours), await list(theirs));
  assert.deepEqual(await list(ours), ['.host', 'ct-2', 'vm1', 'web1']);
});

test('where we answer differently on purpose (README): each, as it is', async () => {
  const ct = await leader(5, '10.78.5.2');
  // A type that is not the key's: machined fails reading it (ENXIO); we name the key.
  const wrongType = await both('RegisterMachineEx', 'sa(sv)', ['wrong-type', [['Class', v('u', 1)]]]);
  assert.deepEqual(wrongType, { theirs: { error: 'System.Error.ENXIO' }, ours: { error: 'org.freedesktop.DBus.Error.InvalidArgs' } });
  // A leader's pidfd ID that is another process's: machined cannot pin it (ESRCH), nor can we.
  const wrongId = await both('RegisterMachineEx', 'sa(sv)', ['wrong-id', [['LeaderPID', v('u', ct.pid)], ['LeaderPIDFDID', v('t', 1n)]]]);
  assert.deepEqual(wrongId.ours, wrongId.theirs);
  assert.deepEqual(wrongId.ours, { error: 'org.freedesktop.DBus.Error.UnixProcessIdUnknown' });
  // Names that differ in case only: machined has both, we refuse the second.
  const cased = await both('RegisterMachine', 'sayssus', ['WEB1', Buffer.alloc(0), '', 'container', ct.pid, '']);
  assert.deepEqual(cased, { theirs: { reply: [`${MGR_PATH}/machine/WEB1`] }, ours: { error: 'org.freedesktop.machine1.MachineExists' } });
  // CreateMachineEx: machined asks systemd for the scope (none here: it fails); we make it ourselves.
  const created = await ours.call(MGR_PATH, MGR, 'CreateMachineEx', 'sa(sv)a(sv)', ['made1', [['Class', v('s', 'container')], ['LeaderPID', v('u', ct.pid)], ['LeaderPIDFDID', v('t', BigInt(processPidfdId(ct.pid)))]], []]);
  assert.deepEqual(created, [`${MGR_PATH}/machine/made1`]);
  const unit = (await ours.call(created[0], 'org.freedesktop.DBus.Properties', 'Get', 'ss', [MACHINE, 'Unit']))[0].value;
  assert.equal(unit, 'machine-made1.scope');
  assert.match(readFileSync(`/proc/${ct.pid}/cgroup`, 'utf8'), /machine\.slice\/machine-made1\.scope/);
  // Terminated: its leader is killed, and the scope goes with the machine.
  await ours.call(MGR_PATH, MGR, 'TerminateMachine', 's', ['made1']);
  await waitFor('made1 to go', async () => ((await outcome(ours.call(MGR_PATH, MGR, 'GetMachine', 's', ['made1']))) as { error?: string }).error ? true : undefined);
});

