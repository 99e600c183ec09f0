// machined 259+'s RegisterMachineEx on our daemon alone (the comparison with machined 262 is in
// sid-machined.test.ts): what survives a restart, bad input that changes nothing, and passed fds that
// are never leaked.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import dbus from 'dbus-next';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { type Bus, startBus } from './helpers/dbus.js';
import { waitFor } from './helpers/run.js';
import { processPidfdId } from '../src/registry/linux/leader.js';
import * as c from '../src/registry/linux/libc.js';

const MGR_PATH = '/org/freedesktop/machine1';
const MGR = 'org.freedesktop.machine1.Manager';
const MACHINE = 'org.freedesktop.machine1.Machine';
const v = (sig: string, value: unknown) => new dbus.Variant(sig, value);

let dir: string;
let bus: Bus;
let d: Daemon;
let conn: dbus.MessageBus;

const call = async (path: string, iface: string, member: string, signature = '', body: unknown[] = []) =>
  (await conn.call(new dbus.Message({ destination: 'org.freedesktop.machine1', path, interface: iface, member, signature, body })))!.body;
const errorOf = (p: Promise<unknown>) => p.then(() => 'no error', (e) => (e as { type: string }).type);
const prop = async (name: string, p: string) => (await call(`${MGR_PATH}/machine/${name}`, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [MACHINE, p]))[0].value;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-dbus-ex-'));
  bus = await startBus(join(dir, 'bus'));
  d = await startDaemon({ bus: bus.address });
  conn = dbus.sessionBus({ busAddress: bus.address, negotiateUnixFd: true } as dbus.SessionBusOptions);
  await new Promise<void>((resolve, reject) => (conn.once('connect', () => resolve()), conn.once('error', reject)));
});

after(async () => {
  conn?.disconnect();
  await d?.stop();
  d?.cleanup();
  await bus?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('RegisterMachineEx by pidfd: SSH info, vsock CID, supervisor and UID, kept across a restart', async () => {
  const leader = spawn('sleep', ['600'], { stdio: 'ignore' });
  try {
    const fd = c.pidfd_open(leader.pid!, 0);
    const props = [['Class', v('s', 'vm')], ['Service', v('s', 'qemu')], ['LeaderPIDFD', v('h', fd)], ['VSockCID', v('u', 7)], ['SSHAddress', v('s', 'vsock/7')], ['SSHPrivateKeyPath', v('s', '/run/vm1/key')]];
    assert.deepEqual(await call(MGR_PATH, MGR, 'RegisterMachineEx', 'sa(sv)', ['vm1', props]), [`${MGR_PATH}/machine/vm1`]);
    c.close(fd);
    const state = readFileSync(join(d.stateDir, 'vm1'), 'utf8');
    const supervisorId = processPidfdId(process.pid);
    assert.ok(supervisorId > 0);
    assert.match(state, new RegExp(`\\nSUPERVISOR=${process.pid}\\nSUPERVISOR_PIDFDID=${supervisorId}\\n`));
    assert.match(state, /\nVSOCK_CID=7\nSSH_ADDRESS=vsock\/7\nSSH_PRIVATE_KEY_PATH=\/run\/vm1\/key\n/);
    const check = async () => {
      assert.deepEqual(await call(MGR_PATH, MGR, 'GetMachineSSHInfo', 's', ['vm1']), ['vsock/7', '/run/vm1/key']);
      assert.equal(await prop('vm1', 'Leader'), leader.pid);
      assert.equal(await prop('vm1', 'Supervisor'), process.pid);
      assert.equal(await prop('vm1', 'SupervisorPIDFDId'), BigInt(supervisorId));
      assert.equal(await prop('vm1', 'VSockCID'), 7);
      assert.equal(await prop('vm1', 'UID'), 0);
    };
    await check();
    const leaderId = await prop('vm1', 'LeaderPIDFDId');
    await d.stop();
    d = await d.restart();
    await check();
    assert.equal(await prop('vm1', 'LeaderPIDFDId'), leaderId, 'the same process, the same pidfd ID');
  } finally {
    leader.kill('SIGKILL');
  }
  await waitFor('vm1 gone', async () => ((await errorOf(call(MGR_PATH, MGR, 'GetMachine', 's', ['vm1']))) !== 'no error' ? true : undefined));
});

test('bad input to RegisterMachineEx: a named error, nothing registered, no fd kept', async () => {
  const leader = spawn('sleep', ['600'], { stdio: 'ignore' });
  const fds = () => readdirSync(`/proc/${d.proc.pid}/fd`).length;
  try {
    const file = openSync('/etc/hostname', 'r');
    const pidfd = c.pidfd_open(leader.pid!, 0);
    const before = fds();
    const cases: [string, unknown[]][] = [
      ['relative key path', [['LeaderPID', v('u', leader.pid)], ['LeaderPIDFDID', v('t', 1n)], ['SSHPrivateKeyPath', v('s', 'key')]]],
      ['a file for a pidfd', [['LeaderPIDFD', v('h', file)]]],
      ['pidfd and another PID', [['LeaderPIDFD', v('h', pidfd)], ['LeaderPID', v('u', process.pid)]]],
      ['SSH address with a space', [['LeaderPIDFD', v('h', pidfd)], ['SSHAddress', v('s', 'a b')]]],
    ];
    for (let round = 0; round < 20; round++) {
      for (const [what, props] of cases) {
        assert.equal(await errorOf(call(MGR_PATH, MGR, 'RegisterMachineEx', 'sa(sv)', ['bad1', props])), 'org.freedesktop.DBus.Error.InvalidArgs', what);
      }
    }
    closeSync(file);
    c.close(pidfd);
    // The daemon closed every fd it was passed (80 calls, 60 of them with an fd).
    assert.ok(fds() <= before + 2, `${fds()} fds open, ${before} before`);
    assert.deepEqual(((await call(MGR_PATH, MGR, 'ListMachines'))[0] as string[][]).map((m) => m[0]), ['.host']);
  } finally {
    leader.kill('SIGKILL');
  }
});
