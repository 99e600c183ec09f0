// mymachinesctl end to end: every verb and its exact output against the real daemon and real containers;
// usage errors (checked before connecting), unreachable, unprivileged and stopped daemons; the client's
// call timeout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCgroupMounts } from '../src/registry/linux/cgroup.js';
import { VarlinkClient } from '../src/varlink/client.js';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { CTL, ROOT, startDaemon, type Daemon } from './helpers/daemon.js';
import { run, waitFor, type RunResult } from './helpers/run.js';

const NO_SOCKET = '/nonexistent/mymachines.sock';
const HINT = "Try 'mymachinesctl --help'.\n";

/** The environment of the tests, without what would change the CLI's behaviour. */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!('MYMACHINES_SOCKET' in extra)) delete e.MYMACHINES_SOCKET;
  if (!('MYMACHINESCTL_TIMEOUT' in extra)) delete e.MYMACHINESCTL_TIMEOUT;
  return e;
}

const ctl = (args: string[], extra: NodeJS.ProcessEnv = {}) => run(CTL, args, { env: env(extra) });
const asNobody = (args: string[]) =>
  run('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, CTL, ...args], { env: env() });

function ok(r: RunResult, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code ?? r.signal}: ${r.stderr}`);
  assert.equal(r.stderr, '', what);
  return r.stdout;
}

function failed(r: RunResult, message: string, what = message): void {
  assert.deepEqual([r.code, r.stderr, r.stdout], [1, `mymachinesctl: ${message}\n`, ''], what);
}

function usageError(r: RunResult, message: string, what = message): void {
  assert.deepEqual([r.code, r.stderr, r.stdout], [2, `mymachinesctl: ${message}\n${HINT}`, ''], what);
}

/** Leaders of our own, killed at the end; and the PIDs of their children, killed too if still `sleep`. */
const children: ChildProcess[] = [];
const grandchildren: number[] = [];
function sleeper(): ChildProcess {
  const p = spawn('sleep', ['1000'], { stdio: 'ignore' });
  children.push(p);
  return p;
}

/** A shell with a `sleep` child. */
async function shellWithChild(): Promise<{ sh: ChildProcess; child: number }> {
  const sh = spawn('sh', ['-c', 'sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(sh);
  let text = '';
  sh.stdout!.on('data', (d) => (text += d));
  const child = await waitFor('the child PID', () => (text.includes('\n') ? Number(text) : undefined));
  grandchildren.push(child);
  return { sh, child };
}

/** A leader that survives HUP, USR1 and TERM and reports them, with a `sleep` child that reports how it ends. */
async function trapper(): Promise<{ p: ChildProcess; child: number; got(): string[] }> {
  const script = `const c = require('child_process').spawn('sleep', ['1000'], { stdio: 'ignore' });
c.on('exit', (code, signal) => console.log('child ' + signal));
for (const s of ['SIGHUP', 'SIGUSR1', 'SIGTERM']) process.on(s, () => console.log(s));
setInterval(() => {}, 1 << 30);
console.log(c.pid);`;
  const p = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(p);
  let text = '';
  p.stdout!.on('data', (d) => (text += d));
  const lines = () => text.split('\n').filter(Boolean);
  const child = await waitFor('the child PID', () => (lines().length ? Number(lines()[0]) : undefined));
  grandchildren.push(child);
  return { p, child, got: () => lines().slice(1).sort() };
}

function killLeftovers(): void {
  for (const p of children) p.kill('SIGKILL');
  for (const pid of grandchildren) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8') === 'sleep\n') process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
const exited = (p: ChildProcess) =>
  p.exitCode !== null || p.signalCode !== null
    ? Promise.resolve(p.signalCode ?? p.exitCode)
    : new Promise<NodeJS.Signals | number | null>((r) => p.once('exit', (code, signal) => r(signal ?? code)));

/** Gone or a zombie. */
function dead(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').startsWith('Z');
  } catch {
    return true;
  }
}

function osRelease(): Record<string, string> {
  const text = readFileSync('/etc/os-release', 'utf8');
  return Object.fromEntries(text.split('\n').filter((l) => l.includes('=')).map((l) => {
    const i = l.indexOf('=');
    return [l.slice(0, i), l.slice(i + 1).replace(/^"(.*)"$/, '$1')];
  }));
}

/** A process that listened on `path` and was killed: the socket file stays, nobody listens. */
async function staleSocket(path: string): Promise<void> {
  const p = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  p.stdout!.on('data', (d) => (text += d));
  await waitFor('the listener', () => (text.includes('ready') ? true : undefined));
  p.kill('SIGKILL');
  await exited(p);
}

/** A server that accepts and never answers; or answers each connection's first call once, with `continues`. */
async function silentServer(path: string, once = false): Promise<{ close(): Promise<void> }> {
  const held: net.Socket[] = [];
  const server = net.createServer((s) => {
    held.push(s);
    if (once) s.once('data', () => s.write('{"parameters":{"n":1},"continues":true}\0'));
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    close: () => {
      for (const s of held) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

const HELP = `Usage: mymachinesctl [--socket PATH] COMMAND [OPTIONS]

Lists, registers and controls the machines known to mymachinesd.

Commands:
  list [--all] [--json]            list the machines (--all: with .host)
  status NAME...                   show the state of machines
  show NAME [-p PROP]... [--value] [--json]
                                   show a machine's properties
  register NAME --leader PID [--class container|vm] [--service S] [--root DIR] [--id HEX]
           [--netif IFINDEX]... [--address ADDR]... [--create]
                                   register a machine (--create: in a scope cgroup of its own)
  unregister NAME...               forget machines; their processes go on
  terminate NAME...                stop every process of machines (SIGTERM, then SIGKILL)
  kill NAME [--whom leader|all] [--signal SIG]
                                   send a signal (default SIGTERM to all)
  watch [--json]                   print machines as they come, change and go
  images [--all] [--json]          list the OS images of the pool (--all: hidden ones and .host)
  clone NAME NEW-NAME [--read-only]  copy an image
  rename NAME NEW-NAME             rename an image
  remove NAME...                   remove images
  read-only NAME [BOOL]            mark an image read-only (or writable: no)
  doctor [--state-dir DIR]         check the setup that lookups of machines need, and say how to
                                   fix what is wrong (exit status 0 only when all is well)

Options:
  --socket PATH    the daemon's socket (default: $MYMACHINES_SOCKET or /run/mymachines/io.systemd.Machine)
  -h, --help       show this help (also after a command)
  --version        show the version

Environment:
  MYMACHINESCTL_TIMEOUT=SEC   how long to wait for the daemon to accept and to answer (default: 25)

Exit status: 0 on success, 1 on failure, 2 on a usage error.
`;

const VERB_USAGE: Record<string, string> = {
  list: 'list [--all] [--json]',
  status: 'status NAME...',
  show: 'show NAME [-p PROP]... [--value] [--json]',
  register: 'register NAME --leader PID [--class container|vm] [--service S] [--root DIR] [--id HEX] [--netif IFINDEX]... [--address ADDR]... [--create]',
  unregister: 'unregister NAME...',
  terminate: 'terminate NAME...',
  kill: 'kill NAME [--whom leader|all] [--signal SIG]',
  watch: 'watch [--json]',
  images: 'images [--all] [--json]',
  clone: 'clone NAME NEW-NAME [--read-only]',
  rename: 'rename NAME NEW-NAME',
  remove: 'remove NAME...',
  'read-only': 'read-only NAME [BOOL]',
  doctor: 'doctor [--state-dir DIR]',
};

const PROPS = 'Name, Id, Timestamp, TimestampMonotonic, Service, Unit, Leader, Class, RootDirectory, NetworkInterfaces, Addresses, UIDShift, State';

describe('mymachinesctl without a daemon', { timeout: 120_000 }, () => {
  test('usage errors exit 2 with one line and the hint, before anything is sent', async () => {
    const cases: [string[], string][] = [
      [['--bogus', 'list'], "unknown option '--bogus'"],
      [['read-only', 'x', 'maybe'], "read-only: invalid boolean 'maybe'; usage: read-only NAME [BOOL]"],
      [['clone', 'a'], 'clone: missing argument; usage: clone NAME NEW-NAME [--read-only]'],
      [['images', 'x'], 'images: too many arguments; usage: images [--all] [--json]'],
      [['-x', 'list'], "unknown option '-x'"],
      [['--socket'], 'option --socket needs a value'],
      [['--socket', '--help'], 'option --socket needs a value'],
      [['--socket=', 'list'], 'option --socket needs a value'],
      [['--help=yes'], 'option --help takes no value'],
      [[], 'no command given'],
      [['--socket', '/x'], 'no command given'],
      [['frobnicate'], "unknown command 'frobnicate'"],
      [['frob\nnicate'], "unknown command 'frob\\x0anicate'"],
      [['constructor'], "unknown command 'constructor'"],
      [['list', 'extra'], 'list: too many arguments; usage: list [--all] [--json]'],
      [['list', '--bogus'], "unknown option '--bogus'"],
      [['list', '--json=yes'], 'option --json takes no value'],
      [['list', '--socket'], 'option --socket needs a value'],
      [['status'], 'status: missing argument; usage: status NAME...'],
      [['show'], `show: missing argument; usage: ${VERB_USAGE.show}`],
      [['show', 'a', 'b'], `show: too many arguments; usage: ${VERB_USAGE.show}`],
      [['show', 'a', '-p'], 'option -p needs a value'],
      [['show', 'a', '-p', 'Name,Bogus'], `unknown property 'Bogus'; known: ${PROPS}`],
      [['show', 'a', '-p', 'Name', '--property', 'name'], `unknown property 'name'; known: ${PROPS}`],
      [['unregister'], 'unregister: missing argument; usage: unregister NAME...'],
      [['terminate'], 'terminate: missing argument; usage: terminate NAME...'],
      [['watch', 'x'], 'watch: too many arguments; usage: watch [--json]'],
      [['kill'], `kill: missing argument; usage: ${VERB_USAGE.kill}`],
      [['kill', 'a', '--signal', 'NOPE'], "invalid signal 'NOPE': expected a name such as TERM or SIGKILL, or a number from 1 to 64"],
      [['kill', 'a', '--signal', 'SIGNOPE'], "invalid signal 'SIGNOPE': expected a name such as TERM or SIGKILL, or a number from 1 to 64"],
      [['kill', 'a', '--signal', '0'], "invalid signal '0': expected a name such as TERM or SIGKILL, or a number from 1 to 64"],
      [['kill', 'a', '-s', '65'], "invalid signal '65': expected a name such as TERM or SIGKILL, or a number from 1 to 64"],
      [['kill', 'a', '--signal=-9'], "invalid signal '-9': expected a name such as TERM or SIGKILL, or a number from 1 to 64"],
      [['kill', 'a', '--signal', ''], "invalid signal '': expected a name such as TERM or SIGKILL, or a number from 1 to 64"],
      [['kill', 'a', '--signal', 'SIG'], "invalid signal 'SIG': expected a name such as TERM or SIGKILL, or a number from 1 to 64"],
      [['kill', 'a', '--whom', 'nobody'], "--whom must be 'leader' or 'all', not 'nobody'"],
      [['register', 'a'], 'register needs --leader PID'],
      [['register', 'a', 'b', '--leader', '5'], `register: too many arguments; usage: ${VERB_USAGE.register}`],
      [['register', 'a', '--leader', 'abc'], "invalid leader PID 'abc': expected a decimal number"],
      [['register', 'a', '--leader=-5'], "invalid leader PID '-5': expected a decimal number"],
      [['register', 'a', '--leader', '1e3'], "invalid leader PID '1e3': expected a decimal number"],
      [['register', 'a', '--leader', '5', '--netif', 'eth0'], "invalid network interface index 'eth0': expected a decimal number"],
      [['register', 'a', '--leader', '5', '--create=yes'], 'option --create takes no value'],
    ];
    for (const [args, message] of cases) {
      // No daemon on the socket: a CLI that tried to connect would fail with exit 1 instead.
      usageError(await ctl(args, { MYMACHINES_SOCKET: NO_SOCKET }), message, JSON.stringify(args));
    }
    for (const bad of ['abc', '0', '-1', '1e3', 'infinity']) {
      usageError(await ctl(['list'], { MYMACHINES_SOCKET: NO_SOCKET, MYMACHINESCTL_TIMEOUT: bad }), `invalid MYMACHINESCTL_TIMEOUT '${bad}': expected seconds > 0`);
    }
  });

  test('signal names and numbers that pass the check reach the connection', async () => {
    for (const sig of ['TERM', 'SIGTERM', 'term', 'sigkill', 'USR1', 'CONT', '1', '9', '64']) {
      const r = await ctl(['kill', 'a', '--signal', sig], { MYMACHINES_SOCKET: NO_SOCKET });
      failed(r, `cannot reach mymachinesd at ${NO_SOCKET}: no such socket (is it running?)`, sig);
    }
  });

  test('--version prints the version and exits 0', async () => {
    const r = await ctl(['--version']);
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, `mymachinesctl ${version}\n`, '']);
  });

  test('--help for the tool and after each command exits 0', async () => {
    for (const args of [['--help'], ['-h'], ['--socket', NO_SOCKET, '--help']]) {
      const r = await ctl(args);
      assert.deepEqual([r.code, r.stdout, r.stderr], [0, HELP, ''], args.join(' '));
    }
    const cases = [...Object.keys(VERB_USAGE).map((verb) => [verb, '--help']), ['list', '-h'], ['--help', 'kill'], ['register', 'x', 'y', '--help']];
    for (const args of cases) {
      const usage = VERB_USAGE[args.find((a) => a in VERB_USAGE)!];
      const r = await ctl(args, { MYMACHINES_SOCKET: NO_SOCKET });
      assert.deepEqual([r.code, r.stdout, r.stderr], [0, `Usage: mymachinesctl [--socket PATH] ${usage}\n`, ''], args.join(' '));
    }
  });

  test('an unreachable daemon: one line that names the socket and the cause', async () => {
    failed(await ctl(['list'], { MYMACHINES_SOCKET: NO_SOCKET }), `cannot reach mymachinesd at ${NO_SOCKET}: no such socket (is it running?)`);
    failed(await ctl(['--socket', NO_SOCKET, 'status', 'x']), `cannot reach mymachinesd at ${NO_SOCKET}: no such socket (is it running?)`);
    const dir = mkdtempSync(join(tmpdir(), 'mymachines-cli-'));
    try {
      chmodSync(dir, 0o755);
      const stale = join(dir, 'stale.sock');
      await staleSocket(stale);
      failed(await ctl(['--socket', stale, 'list']), `cannot reach mymachinesd at ${stale}: connection refused (is it running?)`);
      const closed = join(dir, 'closed.sock');
      const server = await silentServer(closed);
      try {
        chmodSync(closed, 0o600);
        failed(await asNobody(['--socket', closed, 'list']), `cannot reach mymachinesd at ${closed}: permission denied`);
      } finally {
        await server.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a daemon that accepts and never answers: the call times out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mymachines-cli-'));
    const path = join(dir, 'silent.sock');
    const server = await silentServer(path);
    try {
      const t0 = Date.now();
      failed(await ctl(['--socket', path, 'list'], { MYMACHINESCTL_TIMEOUT: '0.3' }), `mymachinesd at ${path} did not answer within 0.3 s`);
      assert.ok(Date.now() - t0 < 5000);

      // The client alone: a call fails with ETIMEDOUT, and so does every other call on the connection.
      let c = await VarlinkClient.connect(path, { callTimeoutMs: 200 });
      const first = c.call('io.systemd.Machine.List', { name: 'x' });
      const second = c.call('io.systemd.Machine.List', { name: 'y' });
      await assert.rejects(first, { code: 'ETIMEDOUT', message: 'varlink: no reply to io.systemd.Machine.List within 200 ms' });
      await assert.rejects(second, { code: 'ETIMEDOUT' });
      await c.close();
      c = await VarlinkClient.connect(path, { callTimeoutMs: 200 });
      await assert.rejects(async () => {
        for await (const _ of c.callMore('io.systemd.Machine.Watch')) break;
      }, { code: 'ETIMEDOUT' });
      await c.close();
    } finally {
      await server.close();
    }
    // Only the first reply is timed: a Watch may wait for events as long as it likes.
    const slow = await silentServer(path, true);
    try {
      const c = await VarlinkClient.connect(path, { callTimeoutMs: 200 });
      const it = c.callMore('io.systemd.Machine.Watch')[Symbol.asyncIterator]();
      assert.deepEqual(await it.next(), { done: false, value: { n: 1 } });
      const next = it.next();
      const outcome = await Promise.race([next.then(() => 'reply', (e) => `failed: ${e.code}`), new Promise((r) => setTimeout(() => r('still waiting'), 600))]);
      assert.equal(outcome, 'still waiting');
      await c.close();
      await assert.rejects(next, { code: 'ECONNRESET' });
    } finally {
      await slow.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('mymachinesctl with a daemon', { timeout: 180_000 }, () => {
  let d: Daemon;
  let c: Container;
  let vmLeader: ChildProcess;
  const os = osRelease();
  const ID = '0123456789abcdef0123456789abcdef';
  const VM_ID = 'FEDCBA9876543210FEDCBA9876543210';
  let linkLocal = '';
  let llBytes: number[] = [];

  before(async () => {
    d = await startDaemon({ args: ['--terminate-timeout', '1'] });
  });
  after(async () => {
    killLeftovers();
    await removeAllContainers();
    await d?.stop();
    d?.cleanup();
  });

  async function listJson(all = false): Promise<any[]> {
    return JSON.parse(ok(await d.ctl(all ? ['list', '--all', '--json'] : ['list', '--json']), 'list --json'));
  }
  async function raw(): Promise<any[]> {
    const client = await VarlinkClient.connect(d.socket);
    try {
      const list: any[] = [];
      for await (const m of client.callMore('io.systemd.Machine.List', {})) list.push(m);
      return list.sort((a, b) => a.name.localeCompare(b.name));
    } finally {
      await client.close();
    }
  }

  test('list with no machines', async () => {
    assert.equal(ok(await d.ctl(['list']), 'list'), '0 machines listed.\n');
    assert.equal(ok(await d.ctl(['list', '--json']), 'list --json'), '[]\n');
  });

  test('register with every flag; the daemon has every value', async () => {
    c = await makeContainer({ ipv4: { host: '10.77.50.1', inside: '10.77.50.2' } });
    vmLeader = sleeper();
    assert.equal(ok(await d.ctl(['register', 'web1', '--leader', String(c.pid), '--service', 'cli-test', '--root', '/srv/web1', '--id', ID, '--netif', String(c.hostIfIndex)]), 'register web1'), '');
    assert.equal(ok(await d.ctl(['register', 'vm1', '--leader', String(vmLeader.pid), '--class', 'vm', '--service', 'qemu', '--root', '/srv/vm1', '--id', VM_ID,
      '--netif', '1', '--netif', String(c.hostIfIndex), '--address', 'fd77:50::5', '--address', '10.77.50.5']), 'register vm1'), '');
    const [line] = (await c.exec(['ip', '-6', '-o', 'addr', 'show', 'dev', 'host0', 'scope', 'link'])).trim().split('\n');
    linkLocal = line.match(/inet6 ([0-9a-f:]+)\//)![1];
    const groups = linkLocal.replace('::', ':' + '0:'.repeat(9 - linkLocal.split(':').length)).split(':');
    llBytes = groups.flatMap((g) => [parseInt(g || '0', 16) >> 8, parseInt(g || '0', 16) & 255]);
    const list = await waitFor('the link-local address', async () => {
      const l = await listJson();
      return l.find((m) => m.name === 'web1')?.addresses?.length === 2 ? l : undefined;
    });
    assert.deepEqual(list, [
      {
        name: 'vm1', id: VM_ID.toLowerCase(), service: 'qemu', class: 'vm', leader: vmLeader.pid, rootDirectory: '/srv/vm1',
        timestamp: list[0].timestamp, ifIndices: [1, c.hostIfIndex],
        addresses: [{ family: 2, address: [10, 77, 50, 5] }, { family: 10, address: [0xfd, 0x77, 0, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5] }],
        state: 'running',
      },
      {
        name: 'web1', id: ID, service: 'cli-test', class: 'container', leader: c.pid, rootDirectory: '/srv/web1',
        timestamp: list[1].timestamp, ifIndices: [c.hostIfIndex],
        addresses: [{ family: 2, address: [10, 77, 50, 2] }, { family: 10, address: llBytes }],
        uidShift: 0, state: 'running',
      },
    ]);
    assert.ok(Math.abs(list[1].timestamp.realtime / 1000 - Date.now()) < 60_000);
  });

  test('list: a table as machinectl list, and its footer', async () => {
    const w = Math.max(2, os.ID.length);
    const v = Math.max(7, os.VERSION_ID.length);
    const row = (m: string, cls: string, svc: string, o: string, ver: string, a: string) =>
      `${m.padEnd(7)} ${cls.padEnd(9)} ${svc.padEnd(8)} ${o.padEnd(w)} ${ver.padEnd(v)} ${a}\n`;
    const header = row('MACHINE', 'CLASS', 'SERVICE', 'OS', 'VERSION', 'ADDRESSES');
    assert.equal(header, `MACHINE CLASS     SERVICE  OS${' '.repeat(w - 2)} VERSION ADDRESSES\n`);
    const vm = row('vm1', 'vm', 'qemu', '-', '-', '10.77.50.5…');
    const web = row('web1', 'container', 'cli-test', os.ID, os.VERSION_ID, '10.77.50.2…');
    assert.equal(ok(await d.ctl(['list']), 'list'), `${header}${vm}${web}\n2 machines listed.\n`);
    const host = row('.host', 'host', '-', os.ID, os.VERSION_ID, '-');
    assert.equal(ok(await d.ctl(['list', '--all']), 'list --all'), `${header}${host}${vm}${web}\n3 machines listed.\n`);
    if (os.ID === 'debian' && os.VERSION_ID === '12') {
      assert.equal(ok(await d.ctl(['list']), 'list'), [
        'MACHINE CLASS     SERVICE  OS     VERSION ADDRESSES',
        'vm1     vm        qemu     -      -       10.77.50.5…',
        'web1    container cli-test debian 12      10.77.50.2…',
        '',
        '2 machines listed.',
        '',
      ].join('\n'));
    }
  });

  test('list --json is the machines of the Varlink List, in mymachinesctl\'s shape; --all adds .host', async () => {
    const all = await raw();
    const out = await listJson();
    assert.deepEqual(out.map((m) => [m.name, m.leader, m.timestamp]), all.filter((m) => m.name !== '.host').map((m) => [m.name, m.leader.pid, m.timestamp]));
    const withHost = await listJson(true);
    assert.deepEqual(withHost.slice(1), out);
    assert.deepEqual(withHost.map((m) => [m.name, m.class]), [['.host', 'host'], ['vm1', 'vm'], ['web1', 'container']]);
  });

  test('show: every property, -p, --value, --json', async () => {
    const [vm, web] = await listJson();
    const props = [
      'Name=web1',
      `Id=${ID}`,
      `Timestamp=${web.timestamp.realtime}`,
      `TimestampMonotonic=${web.timestamp.monotonic}`,
      'Service=cli-test',
      'Unit=',
      `Leader=${c.pid}`,
      'Class=container',
      'RootDirectory=/srv/web1',
      `NetworkInterfaces=${c.hostIfIndex}`,
      `Addresses=10.77.50.2 ${linkLocal}`,
      'UIDShift=0',
      'State=running',
    ];
    assert.equal(web.unit, undefined, 'a leader of no unit');
    assert.equal(ok(await d.ctl(['show', 'web1']), 'show'), props.join('\n') + '\n');
    assert.equal(ok(await d.ctl(['show', 'web1', '--value']), 'show --value'), props.map((p) => p.replace(/^\w+=/, '')).join('\n') + '\n');
    assert.equal(ok(await d.ctl(['show', 'web1', '-p', 'State,Name', '-p', 'Leader']), 'show -p'), `Name=web1\nLeader=${c.pid}\nState=running\n`, "machinectl's order");
    assert.equal(ok(await d.ctl(['show', 'web1', '-p', 'Addresses', '--value']), 'show -p --value'), `10.77.50.2 ${linkLocal}\n`);
    assert.equal(ok(await d.ctl(['show', 'vm1', '--property=NetworkInterfaces', '--value']), 'show vm1'), `1 ${c.hostIfIndex}\n`);
    assert.equal(ok(await d.ctl(['show', 'vm1', '-p', 'Addresses,UIDShift,Class']), 'show vm1'), 'Class=vm\nAddresses=10.77.50.5 fd77:50::5\nUIDShift=\n');
    assert.equal(ok(await d.ctl(['show', 'vm1', '--json']), 'show --json'), JSON.stringify(vm, null, 2) + '\n');
  });

  test('status of two machines', async () => {
    const [vm, web] = await listJson();
    const iface = (i: number) => (i === 1 ? 'lo' : c.hostIf);
    const out = ok(await d.ctl(['status', 'web1', 'vm1']), 'status');
    const since = (m: any) => new Date(m.timestamp.realtime / 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    const lines = out.split('\n');
    const agos = lines.filter((l) => l.startsWith('           Since: '));
    assert.equal(agos.length, 2, out);
    for (const l of agos) assert.match(l, /; \d+s ago$/);
    assert.equal(out.replace(/; \d+s ago\n/g, '; Ns ago\n'), [
      `web1(${ID})`,
      `           Since: ${since(web)}; Ns ago`,
      `          Leader: ${c.pid} (sleep)`,
      '         Service: cli-test; class container',
      '            Root: /srv/web1',
      `           Iface: ${iface(c.hostIfIndex)}`,
      '         Address: 10.77.50.2',
      `                  ${linkLocal}`,
      `              OS: ${os.PRETTY_NAME}`,
      '           State: running',
      '',
      `vm1(${VM_ID.toLowerCase()})`,
      `           Since: ${since(vm)}; Ns ago`,
      `          Leader: ${vmLeader.pid} (sleep)`,
      '         Service: qemu; class vm',
      '            Root: /srv/vm1',
      `           Iface: lo ${c.hostIf}`,
      '         Address: 10.77.50.5',
      '                  fd77:50::5',
      '           State: running',
      '',
    ].join('\n'));
  });

  test('MYMACHINES_SOCKET is used when --socket is absent; --socket wins', async () => {
    const expected = ok(await d.ctl(['list']), 'list');
    assert.equal(ok(await ctl(['list'], { MYMACHINES_SOCKET: d.socket }), 'list by MYMACHINES_SOCKET'), expected);
    assert.equal(ok(await ctl(['--socket', d.socket, 'list'], { MYMACHINES_SOCKET: NO_SOCKET }), '--socket first'), expected);
    assert.equal(ok(await ctl(['list', '--socket', d.socket], { MYMACHINES_SOCKET: NO_SOCKET }), '--socket after the command'), expected);
    failed(await ctl(['list'], { MYMACHINES_SOCKET: NO_SOCKET }), `cannot reach mymachinesd at ${NO_SOCKET}: no such socket (is it running?)`);
  });

  test('errors: unknown machine, machine exists', async () => {
    for (const args of [['status', 'nosuch'], ['status', 'web1', 'nosuch'], ['show', 'nosuch'], ['show', 'nosuch', '--json'], ['terminate', 'nosuch'],
      ['kill', 'nosuch'], ['unregister', 'nosuch']]) {
      failed(await d.ctl(args), "no machine 'nosuch' known", args.join(' '));
    }
    const l = sleeper();
    failed(await d.ctl(['register', 'web1', '--leader', String(l.pid)]), "machine 'web1' already exists");
    failed(await d.ctl(['register', 'WEB1', '--leader', String(l.pid)]), "machine 'WEB1' clashes with machine 'web1': names must differ in more than letter case");
    failed(await d.ctl(['register', 'other', '--leader', String(c.pid)]), `invalid leader PID ${c.pid}: it already leads machine 'web1'`);
    // The registry's rules: the CLI checks syntax only and passes the daemon's refusal on (exit 1).
    const L = String(l.pid);
    const refused: [string[], string][] = [
      [['register', 'bad_name', '--leader', L], "invalid machine name 'bad_name': 1 to 64 letters, digits, '-' and '.', no '..' and no label starting with '.' or '-'"],
      [['register', 'lo1', '--leader', L, '--address', '127.0.0.1'], "invalid address '127.0.0.1': loopback addresses cannot reach a machine"],
      [['register', 'a', '--leader', '0'], 'invalid leader PID 0'],
      [['register', 'a', '--leader', '99999999999'], 'invalid leader PID 99999999999'],
      [['register', 'a', '--leader', L, '--class', 'host'], "invalid machine class 'host': reserved for the host itself"],
      // machined 262's MachineClass type refuses it before the registry sees it (InvalidParameter, no message).
      [['register', 'a', '--leader', L, '--class', 'toaster'], "invalid parameter 'class'"],
      [['register', 'a', '--leader', L, '--id', 'abc'], "invalid machine id 'abc': expected 32 hexadecimal digits"],
      [['register', 'a', '--leader', L, '--id', 'g'.repeat(32)], `invalid machine id '${'g'.repeat(32)}': expected 32 hexadecimal digits`],
      [['register', 'a', '--leader', L, '--id', '0'.repeat(33)], `invalid machine id '${'0'.repeat(33)}': expected 32 hexadecimal digits`],
      [['register', 'a', '--leader', L, '--netif', '1', '--netif', '0'], 'invalid network interface index 0: must be > 0'],
      [['register', 'a', '--leader', L, '--address', '10.0.0.300'], "invalid address '10.0.0.300': expected an IPv4 or IPv6 address"],
      [['register', 'a', '--leader', L, '--address', '10.0.0.1', '--address', '10.0.0.0/24'], "invalid address '10.0.0.0/24': expected an IPv4 or IPv6 address"],
      [['register', 'a', '--leader', L, '--address', 'fe80::1%2'], "invalid address 'fe80::1%2': expected an IPv4 or IPv6 address"],
      [['register', 'a', '--leader', L, '--address', 'web1'], "invalid address 'web1': expected an IPv4 or IPv6 address"],
      [['register', 'a', '--leader', L, '--root', 'relative/dir'], "invalid root directory 'relative/dir': must be an absolute path"],
    ];
    for (const [args, message] of refused) failed(await d.ctl(args), message, args.join(' '));
    assert.deepEqual((await listJson()).map((m) => m.name), ['vm1', 'web1']);
  });

  test('changes need root: permission denied as an unprivileged user, who may read', async () => {
    const l = sleeper();
    for (const args of [['register', 'p1', '--leader', String(l.pid)], ['unregister', 'web1'], ['terminate', 'web1'], ['kill', 'web1', '--signal', 'KILL']]) {
      failed(await asNobody(['--socket', d.socket, ...args]), 'permission denied: changing the registry needs root', args.join(' '));
    }
    assert.equal(ok(await asNobody(['--socket', d.socket, 'show', 'web1', '-p', 'State', '--value']), 'show as nobody'), 'running\n');
    assert.equal(ok(await asNobody(['--socket', d.socket, 'list', '--json']), 'list as nobody'), ok(await d.ctl(['list', '--json']), 'list'));
    assert.equal(dead(c.pid), false);
  });

  test('watch and watch --json print what comes, changes and goes', async () => {
    const [vm, web] = await listJson();
    const watchers = [spawn(CTL, ['--socket', d.socket, 'watch'], { stdio: ['ignore', 'pipe', 'pipe'] }),
      spawn(CTL, ['--socket', d.socket, 'watch', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })];
    const outs = ['', ''];
    const errs = ['', ''];
    watchers.forEach((w, i) => {
      children.push(w);
      w.stdout!.on('data', (x) => (outs[i] += x));
      w.stderr!.on('data', (x) => (errs[i] += x));
    });
    let ends: unknown[] = [];
    try {
      const initial = [
        'added    .host host running 0 address(es)',
        'added    web1 container running 2 address(es)',
        'added    vm1 vm running 2 address(es)',
      ];
      await waitFor('the machines there now', () => (outs.every((o) => o.split('\n').length > 3) ? true : undefined));
      assert.equal(outs[0], initial.join('\n') + '\n');
      const events = outs[1].trimEnd().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(events.map((e) => [e.event, e.machine.name]), [['added', '.host'], ['added', 'web1'], ['added', 'vm1']], 'in the order of registration');
      assert.deepEqual(events[1].machine, web);
      assert.deepEqual(events[2].machine, vm);

      const l = sleeper();
      ok(await d.ctl(['register', 'watched', '--leader', String(l.pid), '--class', 'vm', '--address', '10.77.50.9']), 'register');
      const [m] = (await listJson()).filter((x) => x.name === 'watched');
      ok(await d.ctl(['unregister', 'watched']), 'unregister');
      await waitFor('the removal', () => (outs.every((o) => o.includes('removed')) ? true : undefined));
      await new Promise((r) => setTimeout(r, 100)); // nothing else is printed
      assert.equal(outs[0], [...initial, 'added    watched vm running 1 address(es)', 'removed  watched vm running 1 address(es)'].join('\n') + '\n');
      const later = outs[1].trimEnd().split('\n').slice(3).map((x) => JSON.parse(x));
      assert.deepEqual(later, [{ event: 'added', machine: m }, { event: 'removed', machine: m }]);
      assert.deepEqual(errs, ['', '']);
      for (const w of watchers) assert.equal(w.exitCode, null, 'still watching');
    } finally {
      for (const w of watchers) w.kill('SIGTERM');
      ends = await Promise.all(watchers.map(exited));
    }
    assert.deepEqual(ends, ['SIGTERM', 'SIGTERM']);
  });

  test('watch whose reader goes away (watch | head -1) exits 0 quietly', async () => {
    const w = spawn(CTL, ['--socket', d.socket, 'watch'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(w);
    let err = '';
    w.stderr!.on('data', (x) => (err += x));
    await new Promise((resolve) => w.stdout!.once('data', resolve));
    w.stdout!.destroy(); // the reader goes away
    // The next line written (a machine registered) meets the closed pipe.
    const l = sleeper();
    ok(await d.ctl(['register', 'piped', '--leader', String(l.pid), '--class', 'vm']), 'register');
    assert.equal(await exited(w), 0);
    assert.equal(err, '');
    ok(await d.ctl(['unregister', 'piped']), 'unregister');
  });

  test('unregister several names leaves their processes alone', async () => {
    const ls = [sleeper(), sleeper(), sleeper()];
    for (const [i, l] of ls.entries()) ok(await d.ctl(['register', `u${i}`, '--leader', String(l.pid)]), `register u${i}`);
    assert.equal(ok(await d.ctl(['unregister', 'u0', 'u2']), 'unregister'), '');
    assert.deepEqual((await listJson()).map((m) => m.name), ['u1', 'vm1', 'web1']);
    failed(await d.ctl(['unregister', 'u1', 'nosuch', 'vm1']), "no machine 'nosuch' known");
    assert.deepEqual((await listJson()).map((m) => m.name), ['vm1', 'web1'], 'the names before the unknown one are gone, the ones after stay');
    for (const l of ls) assert.equal(dead(l.pid!), false);
  });

  test('terminate stops every process of several machines', async () => {
    const a = await shellWithChild();
    const b = sleeper();
    ok(await d.ctl(['register', 't1', '--leader', String(a.sh.pid)]), 'register t1');
    ok(await d.ctl(['register', 't2', '--leader', String(b.pid)]), 'register t2');
    assert.equal(ok(await d.ctl(['terminate', 't1', 't2']), 'terminate'), '');
    assert.deepEqual(await Promise.all([exited(a.sh), exited(b)]), ['SIGTERM', 'SIGTERM']);
    await waitFor('the child of the leader', () => (dead(a.child) ? true : undefined));
    await waitFor('both gone', async () => ((await listJson()).length === 2 ? true : undefined), 3000);
  });

  test('kill --whom leader|all --signal', async () => {
    const a = await trapper();
    ok(await d.ctl(['register', 'k1', '--leader', String(a.p.pid)]), 'register k1');
    assert.equal(ok(await d.ctl(['kill', 'k1', '--whom', 'leader', '--signal', 'HUP']), 'kill --whom leader'), '');
    await waitFor('SIGHUP', () => (a.got().length ? true : undefined));
    assert.deepEqual(a.got(), ['SIGHUP'], 'only the leader');
    assert.equal(ok(await d.ctl(['kill', 'k1', '--whom', 'all', '-s', '10']), 'kill --whom all'), '');
    await waitFor('SIGUSR1', () => (a.got().length === 3 ? true : undefined));
    assert.deepEqual(a.got(), ['SIGHUP', 'SIGUSR1', 'child SIGUSR1']);

    const b = await trapper();
    ok(await d.ctl(['register', 'k2', '--leader', String(b.p.pid)]), 'register k2');
    assert.equal(ok(await d.ctl(['kill', 'k2']), 'kill'), '');
    await waitFor('SIGTERM', () => (b.got().length === 2 ? true : undefined));
    assert.deepEqual(b.got(), ['SIGTERM', 'child SIGTERM'], 'SIGTERM to all by default');

    a.p.kill('SIGKILL');
    b.p.kill('SIGKILL');
    await waitFor('both gone', async () => ((await listJson()).length === 2 ? true : undefined), 3000);
  });

  test('register --create puts the leader into its own scope cgroup', async (t) => {
    const { v2: mount, legacy } = await findCgroupMounts();
    if (!mount) return t.skip('no cgroup2 hierarchy mounted');
    const scope = join('machine.slice', 'machine-cli\\x2dmade.scope');
    const l = sleeper();
    try {
      ok(await d.ctl(['register', 'cli-made', '--leader', String(l.pid), '--create']), 'register --create');
      assert.match(readFileSync(`/proc/${l.pid}/cgroup`, 'utf8'), /^0::\/machine\.slice\/machine-cli\\x2dmade\.scope$/m);
      assert.equal(ok(await d.ctl(['show', 'cli-made', '-p', 'Unit', '--value']), 'show'), 'machine-cli\\x2dmade.scope\n');
      assert.ok(existsSync(join(mount, scope)));
      ok(await d.ctl(['terminate', 'cli-made']), 'terminate');
      assert.equal(await exited(l), 'SIGTERM');
      await waitFor('the scope removed', () => (existsSync(join(mount, scope)) ? undefined : true), 3000);
    } finally {
      l.kill('SIGKILL');
      await exited(l);
      for (const m of [mount, legacy]) if (m && existsSync(join(m, scope))) rmdirSync(join(m, scope));
    }
  });

  test('a stopped daemon: the CLI gives up after MYMACHINESCTL_TIMEOUT, naming the socket', async () => {
    process.kill(d.proc.pid!, 'SIGSTOP');
    try {
      for (const args of [['list'], ['status', 'web1'], ['watch'], ['unregister', 'vm1']]) {
        const t0 = Date.now();
        failed(await d.ctl(args, { env: env({ MYMACHINESCTL_TIMEOUT: '0.5' }) }), `mymachinesd at ${d.socket} did not answer within 0.5 s`, args.join(' '));
        assert.ok(Date.now() - t0 < 5000, `${args.join(' ')} took ${Date.now() - t0} ms`);
      }
    } finally {
      process.kill(d.proc.pid!, 'SIGCONT');
    }
    // unregister may have reached the daemon, which answers it now to a client that is gone.
    await waitFor('the daemon back', async () => ((await d.ctl(['list', '--json'])).code === 0 ? true : undefined));
  });

  test('a daemon that stops while watched: watch ends with exit 1', async () => {
    const w = spawn(CTL, ['--socket', d.socket, 'watch'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(w);
    let out = '';
    let err = '';
    w.stdout!.on('data', (x) => (out += x));
    w.stderr!.on('data', (x) => (err += x));
    await waitFor('the first lines', () => (out.includes('.host') ? true : undefined));
    assert.equal(await d.stop(), 0);
    assert.equal(await exited(w), 1);
    assert.equal(err, `mymachinesctl: mymachinesd at ${d.socket} closed the connection\n`);
    failed(await d.ctl(['list']), `cannot reach mymachinesd at ${d.socket}: no such socket (is it running?)`);
  });
});
