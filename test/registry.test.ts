// End-to-end tests of the registry: the real daemon, real containers, mymachinesctl and raw Varlink.
import * as libc from '../src/registry/linux/libc.js';
import { pidfdId } from '../src/registry/linux/leader.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { VarlinkClient } from '../src/varlink/client.js';
import { makeContainer, removeAllContainers } from './helpers/container.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { alive, run, sleep, waitFor } from './helpers/run.js';

/** A cheap leader: a sleeping child that the test ends itself. */
function leader(): { pid: number; kill(): void; exited: Promise<void> } {
  const p = spawn('sleep', ['1000'], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  return { pid: p.pid!, kill: () => void p.kill('SIGKILL'), exited };
}

const leaders: { kill(): void }[] = [];
function newLeader() {
  const l = leader();
  leaders.push(l);
  return l;
}

/** A leader with a child; the child ignores SIGTERM if asked (ignored signals stay ignored across exec). */
async function leaderWithChild(ignoreTerm: boolean): Promise<{ pid: number; child: number; kill(): void }> {
  const inner = ignoreTerm ? 'trap "" TERM; exec sleep 1000' : 'exec sleep 1000';
  const p = spawn('sh', ['-c', `sh -c '${inner}' & wait`], { stdio: 'ignore' });
  const child = await waitFor('the child', () => {
    const kids = readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
    if (kids.length !== 1) return undefined;
    return readFileSync(`/proc/${kids[0]}/comm`, 'utf8').trim() === 'sleep' ? kids[0] : undefined;
  });
  const kill = () => {
    for (const pid of [p.pid!, child]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  leaders.push({ kill });
  return { pid: p.pid!, child, kill };
}

async function listJson(d: Daemon): Promise<any[]> {
  const r = await d.ctl(['list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

describe('registry', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon({ args: ['--terminate-timeout', '1'] });
  });
  after(async () => {
    for (const l of leaders) l.kill();
    await removeAllContainers();
    await d?.stop();
    d?.cleanup();
  });

  test('a container registers, lists with its addresses, shows and unregisters', async () => {
    const c = await makeContainer({ ipv4: { host: '10.77.1.1', inside: '10.77.1.2' }, ipv6: { host: 'fd77:1::1', inside: 'fd77:1::2' } });
    const r = await d.ctl(['register', 'web1', '--leader', String(c.pid), '--service', 'test', '--netif', String(c.hostIfIndex), '--id', '0123456789ABCDEF0123456789abcdef', '--root', '/srv/web1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    const [m] = (await listJson(d)).filter((x) => x.name === 'web1');
    const ll = m.addresses.find((a: any) => a.family === 10 && a.address[0] === 0xfe);
    assert.deepEqual(
      { ...m, timestamp: undefined, addresses: m.addresses.filter((a: any) => a !== ll) },
      {
        name: 'web1',
        id: '0123456789abcdef0123456789abcdef',
        service: 'test',
        class: 'container',
        leader: c.pid,
        rootDirectory: '/srv/web1',
        ifIndices: [c.hostIfIndex],
        addresses: [
          { family: 2, address: [10, 77, 1, 2] },
          { family: 10, address: [0xfd, 0x77, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2] },
        ],
        uidShift: 0,
        state: 'running',
        timestamp: undefined,
      },
    );
    assert.ok(ll, 'the IPv6 link-local address of host0 is listed last');
    assert.equal(m.addresses.at(-1), ll);
    assert.ok(Math.abs(m.timestamp.realtime / 1000 - Date.now()) < 60_000);

    const state = readFileSync(join(d.stateDir, 'web1'), 'utf8');
    // machined 262's keys and order (252's reader skips the keys it does not know); a pidfd ID where
    // pidfds have one (pidfs, Linux 6.9+).
    // The registering process (mymachinesctl) is the supervisor, as machined 262 records its Varlink caller.
    const pidfdLine = pidfdsHaveIds() ? 'LEADER_PIDFDID=\\d+\\nSUPERVISOR=\\d+\\nSUPERVISOR_PIDFDID=\\d+\\n' : 'SUPERVISOR=\\d+\\n';
    assert.match(state, new RegExp(`^# This is private data\\. Do not parse\\.\\nNAME=web1\\nUID=0\\nSERVICE=test\\nROOT=/srv/web1\\nID=0123456789abcdef0123456789abcdef\\nLEADER=\\d+\\n${pidfdLine}CLASS=container\\nREALTIME=\\d+\\nMONOTONIC=\\d+\\nNETIF=\\d+\\n`));

    const show = await d.ctl(['show', 'web1', '-p', 'Name,Class,Leader,State']);
    assert.equal(show.stdout, `Name=web1\nLeader=${c.pid}\nClass=container\nState=running\n`, 'in machinectl\'s order');
    const value = await d.ctl(['show', 'web1', '-p', 'Addresses', '--value']);
    assert.match(value.stdout, /^10\.77\.1\.2 fd77:1::2 fe80::[0-9a-f:]+\n$/);

    const table = await d.ctl(['list']);
    assert.match(table.stdout, /^MACHINE +CLASS +SERVICE +OS +VERSION +ADDRESSES\nweb1 +container +test +debian +12 +10\.77\.1\.2…\n\n1 machine listed\.\n$/);
    const status = await d.ctl(['status', 'web1']);
    assert.match(status.stdout, /^web1\(0123456789abcdef0123456789abcdef\)\n/);
    assert.match(status.stdout, /\n +Address: 10\.77\.1\.2\n +fd77:1::2\n/);
    assert.match(status.stdout, /\n +OS: Debian GNU\/Linux 12 \(bookworm\)\n/);
    assert.match(status.stdout, /\n +State: running\n$/);

    assert.equal((await d.ctl(['unregister', 'web1'])).code, 0);
    assert.equal(existsSync(join(d.stateDir, 'web1')), false);
    assert.equal((await listJson(d)).filter((x) => x.name === 'web1').length, 0);
    assert.equal(readFileSync(`/proc/${c.pid}/comm`, 'utf8'), 'sleep\n', 'unregister leaves the processes alone');
    await c.remove();
  });

  test('every validation rule refuses with a message that names the cause, and changes nothing', async () => {
    const l = newLeader();
    const before = readdirSync(d.stateDir).sort();
    const cases: [string[], RegExp][] = [
      [['register', 'bad_name', '--leader', String(l.pid)], /^mymachinesctl: invalid machine name 'bad_name'/],
      [['register', 'a..b', '--leader', String(l.pid)], /invalid machine name 'a\.\.b'/],
      [['register', '.hidden', '--leader', String(l.pid)], /invalid machine name '\.hidden'/],
      [['register', 'x'.repeat(65), '--leader', String(l.pid)], /invalid machine name/],
      [['register', 'c1', '--leader', String(l.pid), '--class', 'host'], /invalid machine class 'host'/],
      // Refused by the interface's MachineClass type, as machined 262's.
      [['register', 'c1', '--leader', String(l.pid), '--class', 'toaster'], /invalid parameter 'class'/],
      [['register', 'c1', '--leader', String(l.pid), '--id', 'abc'], /invalid machine id/],
      [['register', 'c1', '--leader', String(l.pid), '--root', 'relative/dir'], /invalid root directory/],
      [['register', 'c1', '--leader', String(l.pid), '--netif', '0'], /invalid network interface index 0/],
      [['register', 'c1', '--leader', '1'], /invalid leader PID 1/],
      [['register', 'c1', '--leader', '999999999'], /invalid leader PID 999999999/],
      [['register', 'c1', '--leader', String(d.proc.pid)], /the registry daemon itself/],
      [['register', 'c1', '--leader', String(l.pid), '--address', '10.0.0.300'], /invalid address '10\.0\.0\.300'/],
      [['register', 'c1', '--leader', String(l.pid), '--address', '127.0.0.1'], /loopback/],
      [['register', 'c1', '--leader', String(l.pid), '--address', '0.0.0.0'], /^mymachinesctl: invalid address '0\.0\.0\.0': the unspecified address cannot reach a machine\n$/],
      [['register', 'c1', '--leader', String(l.pid), '--address', 'ff02::1'], /^mymachinesctl: invalid address 'ff02::1': a multicast address cannot reach a machine\n$/],
      [['register', 'c1', '--leader', '2'], /^mymachinesctl: invalid leader PID 2: a kernel thread cannot lead a machine\n$/],
    ];
    for (const [args, re] of cases) {
      const r = await d.ctl(args);
      // The daemon refuses (exit 1); the CLI only checks syntax.
      assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
    }
    // A name that looks like options (-w -e -b) is the CLI's to refuse (exit 2), before the daemon is asked.
    const opt = await d.ctl(['register', '-web', '--leader', String(l.pid)]);
    assert.deepEqual([opt.code, opt.stderr], [2, "mymachinesctl: unknown option '-w'\nTry 'mymachinesctl --help'.\n"]);
    assert.deepEqual(readdirSync(d.stateDir).sort(), before);
    assert.deepEqual((await listJson(d)).map((m) => m.name), []);
  });

  test('a name is unique ignoring case; a leader leads one machine', async () => {
    const a = newLeader();
    const b = newLeader();
    assert.equal((await d.ctl(['register', 'Dup', '--leader', String(a.pid)])).code, 0);
    let r = await d.ctl(['register', 'Dup', '--leader', String(b.pid)]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "mymachinesctl: machine 'Dup' already exists\n");
    r = await d.ctl(['register', 'dUP', '--leader', String(b.pid)]);
    assert.equal(r.stderr, "mymachinesctl: machine 'dUP' clashes with machine 'Dup': names must differ in more than letter case\n");
    r = await d.ctl(['register', 'other', '--leader', String(a.pid)]);
    assert.equal(r.stderr, `mymachinesctl: invalid leader PID ${a.pid}: it already leads machine 'Dup'\n`);
    assert.equal((await d.ctl(['unregister', 'Dup'])).code, 0);
  });

  test('a VM registers with given addresses', async () => {
    const l = newLeader();
    const r = await d.ctl(['register', 'vm1', '--class', 'vm', '--leader', String(l.pid), '--address', 'fd77:2::5', '--address', '10.77.2.5']);
    assert.equal(r.code, 0, r.stderr);
    const m = (await listJson(d)).find((x) => x.name === 'vm1');
    assert.deepEqual(m.addresses, [
      { family: 2, address: [10, 77, 2, 5] },
      { family: 10, address: [0xfd, 0x77, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5] },
    ]);
    assert.match(readFileSync(join(d.stateDir, 'vm1'), 'utf8'), /\nCLASS=vm\n[\s\S]*\nADDRESSES=10\.77\.2\.5 fd77:2::5\n/);
    await d.ctl(['unregister', 'vm1']);
  });

  test('changes need root; reading does not', async () => {
    const l = newLeader();
    const asNobody = ['--reuid', '65534', '--regid', '65534', '--clear-groups'];
    let r = await run('setpriv', [...asNobody, process.execPath, join(process.cwd(), 'bin/mymachinesctl'), '--socket', d.socket, 'register', 'c2', '--leader', String(l.pid)]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'mymachinesctl: permission denied: changing the registry needs root\n');
    assert.equal((await d.ctl(['register', 'c2', '--leader', String(l.pid)])).code, 0);
    for (const verb of [['unregister', 'c2'], ['terminate', 'c2'], ['kill', 'c2']]) {
      r = await run('setpriv', [...asNobody, process.execPath, join(process.cwd(), 'bin/mymachinesctl'), '--socket', d.socket, ...verb]);
      assert.equal(r.stderr, 'mymachinesctl: permission denied: changing the registry needs root\n', verb.join(' '));
    }
    r = await run('setpriv', [...asNobody, process.execPath, join(process.cwd(), 'bin/mymachinesctl'), '--socket', d.socket, 'show', 'c2', '-p', 'Name', '--value']);
    assert.equal(r.stdout, 'c2\n');
    assert.equal(readFileSync(`/proc/${l.pid}/comm`, 'utf8'), 'sleep\n');
    await d.ctl(['unregister', 'c2']);
  });

  test('a machine goes when its leader exits, state file too', async () => {
    // How soon is measured in bench/freshness.ts (goal: within a second); here, that it shows at all.
    const l = newLeader();
    assert.equal((await d.ctl(['register', 'short', '--leader', String(l.pid)])).code, 0);
    assert.ok(existsSync(join(d.stateDir, 'short')));
    l.kill();
    await l.exited;
    await waitFor('removal', async () => ((await listJson(d)).some((m) => m.name === 'short') ? undefined : true), 10_000);
    assert.equal(existsSync(join(d.stateDir, 'short')), false);
  });

  test('terminate reaches every process; kill reaches the leader or all', async () => {
    const c = await makeContainer();
    // A second process of the machine: a child of the leader's tree is found through /proc.
    assert.equal((await d.ctl(['register', 'term', '--leader', String(c.pid)])).code, 0);
    assert.equal((await d.ctl(['kill', 'term', '--whom', 'leader', '--signal', 'SIGCONT'])).code, 0);
    assert.equal((await d.ctl(['kill', 'term', '--signal', 'NOPE'])).code, 2);
    let r = await d.ctl(['kill', 'term', '--whom', 'nobody']);
    assert.equal(r.code, 2);
    r = await d.ctl(['kill', 'nosuch', '--signal', '9']);
    assert.equal(r.stderr, "mymachinesctl: no machine 'nosuch' known\n");
    assert.equal((await d.ctl(['terminate', 'term'])).code, 0);
    await waitFor('terminated', async () => ((await listJson(d)).some((m) => m.name === 'term') ? undefined : true), 3000);
    await c.remove();
  });

  test('terminate: SIGTERM to all, SIGKILL after the timeout to what is left, also once the leader is gone', async () => {
    const l = await leaderWithChild(true);
    assert.equal((await d.ctl(['register', 'stubborn', '--leader', String(l.pid)])).code, 0);
    const t0 = Date.now();
    assert.equal((await d.ctl(['terminate', 'stubborn'])).code, 0);
    // Its child ignores SIGTERM (asked at once: SIGKILL follows the terminate timeout, 1 s here)...
    assert.equal(alive(l.child), true, 'the child ignores SIGTERM');
    // ... while the leader (sh) dies of it and the machine goes...
    await waitFor('the machine gone', async () => ((await listJson(d)).some((m) => m.name === 'stubborn') ? undefined : true), 3000);
    // ... until the terminate timeout (1 s here) sends SIGKILL.
    await waitFor('the child killed', () => (alive(l.child) ? undefined : true), 5000);
    assert.ok(Date.now() - t0 >= 900, 'SIGKILL came before the timeout');
  });

  test('kill: --whom leader reaches the leader only, --whom all its children too', async () => {
    const a = await leaderWithChild(false);
    assert.equal((await d.ctl(['register', 'kill-leader', '--leader', String(a.pid)])).code, 0);
    assert.equal((await d.ctl(['kill', 'kill-leader', '--whom', 'leader', '--signal', 'SIGKILL'])).code, 0);
    await waitFor('the leader killed', () => (alive(a.pid) ? undefined : true));
    await sleep(100);
    assert.equal(alive(a.child), true, 'the child was not signalled');
    a.kill();
    const b = await leaderWithChild(false);
    assert.equal((await d.ctl(['register', 'kill-all', '--leader', String(b.pid)])).code, 0);
    assert.equal((await d.ctl(['kill', 'kill-all', '--whom', 'all', '--signal', 'SIGKILL'])).code, 0);
    await waitFor('both killed', () => (alive(b.pid) || alive(b.child) ? undefined : true));
  });

  test('List by pid; vSockCid, sshAddress and the UID shift of a user namespace through Varlink; oneway', async () => {
    const c = await makeContainer({ idMap: [{ base: 0, shift: 300000, range: 65536 }] });
    const l = newLeader();
    const v = await VarlinkClient.connect(d.socket);
    try {
      await v.call('io.systemd.Machine.Register', { name: 'ns1', class: 'container', leader: c.pid });
      await v.call('io.systemd.Machine.Register', { name: 'vm7', class: 'vm', leader: l.pid, vSockCid: 7, sshAddress: 'vsock/7', id: '0'.repeat(32) });
      const byPid = (await v.call('io.systemd.Machine.List', { pid: { pid: c.pid }, acquireMetadata: 'yes' })) as any;
      assert.equal(byPid.name, 'ns1');
      assert.equal(byPid.UIDShift, 300000);
      const vm = (await v.call('io.systemd.Machine.List', { pid: { pid: l.pid } })) as any;
      assert.deepEqual([vm.name, vm.vSockCid, vm.sshAddress, vm.id], ['vm7', 7, 'vsock/7', undefined]);
      await assert.rejects(v.call('io.systemd.Machine.List', { pid: { pid: process.pid } }), { name: 'io.systemd.Machine.NoSuchMachine' });
      await assert.rejects(v.call('io.systemd.Machine.List', { name: 'vm7', pid: { pid: c.pid } }), { name: 'io.systemd.Machine.NoSuchMachine' });
      // oneway: done, and not answered (the next call's answer is the next message).
      v.oneway('io.systemd.Machine.Unregister', { name: 'vm7' });
      await assert.rejects(v.call('io.systemd.Machine.List', { name: 'vm7' }), { name: 'io.systemd.Machine.NoSuchMachine' });
      await v.call('io.systemd.Machine.Unregister', { name: 'ns1' });
    } finally {
      await v.close();
      await c.remove();
    }
  });

  test('a Watch sent after the client stopped writing ends, and its connection closes', async () => {
    const s = connect(d.socket);
    await new Promise((r) => s.once('connect', r));
    const closed = new Promise((r) => s.once('close', r));
    s.on('data', () => {});
    s.on('error', () => {});
    s.end('{"method":"io.systemd.Machine.List","parameters":{"name":".host","acquireMetadata":"yes"}}\0{"method":"io.systemd.Machine.Watch","more":true}\0');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('still open')), 3000)))]);
    clearTimeout(timer);
  });

  test('create puts the leader into machine.slice/machine-NAME.scope; ps shows the machine', async () => {
    const l = newLeader();
    const r = await d.ctl(['register', 'made-1', '--leader', String(l.pid), '--create']);
    assert.equal(r.code, 0, r.stderr);
    const cg = readFileSync(`/proc/${l.pid}/cgroup`, 'utf8');
    assert.match(cg, /^0::\/machine\.slice\/machine-made\\x2d1\.scope$/m);
    const m = (await listJson(d)).find((x) => x.name === 'made-1');
    assert.equal(m.unit, 'machine-made\\x2d1.scope');
    assert.equal(readlinkSync(join(d.stateDir, 'unit:machine-made\\x2d1.scope')), 'made-1', 'the unit: link names the state file');
    // ps asks sd-login, which reads /run/systemd/machines: show it our state directory privately.
    const ps = await run('unshare', ['-m', 'sh', '-c', `mount --bind ${d.stateDir} /run/systemd/machines 2>/dev/null || { mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/machines && mount --bind ${d.stateDir} /run/systemd/machines; }; exec ps -o machine= -p ${l.pid}`]);
    assert.equal(ps.stdout.trim(), 'made-1', ps.stderr);
    const mount = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((x) => x.includes(' - cgroup2 '))!.split(' ')[4];
    const dir = join(mount, 'machine.slice', 'machine-made\\x2d1.scope');
    assert.ok(existsSync(dir));
    l.kill();
    await waitFor('cgroup removed', () => (existsSync(dir) ? undefined : true), 3000);
    assert.equal(existsSync(join(d.stateDir, 'unit:machine-made\\x2d1.scope')), false);
  });

  test('watch streams the machines there now, then changes', async () => {
    const c = await VarlinkClient.connect(d.socket);
    const events: any[] = [];
    const done = (async () => {
      for await (const e of c.callMore('io.systemd.Machine.Watch', {})) {
        events.push(e);
        if (e.event === 'removed') break;
      }
    })();
    await waitFor('the current list', () => (events.length >= 1 ? true : undefined));
    assert.deepEqual([events[0].event, events[0].machine.name], ['added', '.host']);
    const initial = events.length;
    const l = newLeader();
    await d.ctl(['register', 'watched', '--leader', String(l.pid)]);
    await d.ctl(['terminate', 'watched']);
    await done;
    assert.deepEqual(events.slice(initial).map((e) => [e.event, e.machine.name, e.machine.state]),
      [['added', 'watched', 'running'], ['changed', 'watched', 'closing'], ['removed', 'watched', 'closing']]);
    await c.close();
  });

  test('an address change inside a container shows', async () => {
    // How soon is measured in bench/freshness.ts (goal: within a second); here, that it shows at all.
    const c = await makeContainer({ ipv4: { host: '10.77.3.1', inside: '10.77.3.2' } });
    await d.ctl(['register', 'fresh', '--leader', String(c.pid)]);
    await c.exec(['ip', 'addr', 'add', '10.77.3.9/24', 'dev', 'host0']);
    await waitFor('the new address', async () => {
      const v = await d.ctl(['show', 'fresh', '-p', 'Addresses', '--value']);
      return v.stdout.includes('10.77.3.9') ? true : undefined;
    }, 10_000);
    await c.exec(['ip', 'addr', 'del', '10.77.3.2/24', 'dev', 'host0']);
    await waitFor('the old address gone', async () => {
      const v = await d.ctl(['show', 'fresh', '-p', 'Addresses', '--value']);
      return v.stdout.includes('10.77.3.2 ') ? undefined : true;
    }, 10_000);
    await d.ctl(['unregister', 'fresh']);
    await c.remove();
  });

  test('garbage, oversized and stalled clients never stop the daemon serving others', async () => {
    const raw = (data: Buffer | string) =>
      new Promise<string>((resolve) => {
        const s = connect(d.socket);
        let got = '';
        s.on('data', (x) => (got += x));
        s.on('close', () => resolve(got));
        s.on('error', () => resolve(got));
        s.write(data);
        setTimeout(() => s.destroy(), 1000);
      });
    await raw('this is not json\0');
    await raw(Buffer.alloc(1 << 20, 'x'));
    await raw('{"method":"io.systemd.Machine.List","parameters":[]}\0');
    const stalled = connect(d.socket);
    stalled.write('{"method":"io.systemd.Machi');
    const r = await d.ctl(['list', '--json']);
    assert.equal(r.code, 0);
    stalled.destroy();
    const c = await VarlinkClient.connect(d.socket);
    await assert.rejects(c.call('io.systemd.Machine.List', { name: 'x', bogus: 1 }), { name: 'org.varlink.service.InvalidParameter' });
    await assert.rejects(c.call('io.systemd.Machine.Register', { name: 'x', class: 'container', leader: 'one' }), (e: any) => e.parameters.parameter === 'leader');
    await assert.rejects(c.call('io.systemd.Machine.Nope', {}), { name: 'org.varlink.service.MethodNotFound' });
    await c.close();
  });
});

describe('daemon life cycle', () => {
  test('refuses a second daemon on a live socket; SIGTERM removes the socket, keeps state; restart takes machines back', async () => {
    const d = await startDaemon();
    const l = leader();
    try {
      assert.equal((await d.ctl(['register', 'keep', '--leader', String(l.pid)])).code, 0);
      const second = await run(join(process.cwd(), 'bin/mymachinesd'), ['--runtime-dir', d.runtimeDir, '--state-dir', d.stateDir, '--userdb-dir', '', '--resolve-hook-dir', '', '--machine-dir', '', '--bus', 'none']);
      assert.deepEqual([second.code, second.stderr], [1, `mymachinesd: another mymachinesd (PID ${d.proc.pid}) is already running on the runtime directory ${d.runtimeDir}\n`]);
      assert.equal(await d.stop(), 0);
      assert.equal(existsSync(d.socket), false);
      assert.ok(existsSync(join(d.stateDir, 'keep')));
      const d2 = await d.restart();
      try {
        const m = JSON.parse((await d2.ctl(['list', '--json'])).stdout).find((x: any) => x.name === 'keep');
        assert.equal(m.leader, l.pid);
      } finally {
        await d2.stop();
      }
    } finally {
      l.kill();
      await d.stop();
      d.cleanup();
    }
  });

  test('kill -9 during a burst of registrations: every answered one is back, dead leaders dropped', async () => {
    const d = await startDaemon();
    const ls = Array.from({ length: 60 }, () => leader());
    const answered: string[] = [];
    try {
      const burst = (async () => {
        const c = await VarlinkClient.connect(d.socket);
        for (let i = 0; i < ls.length; i++) {
          try {
            await c.call('io.systemd.Machine.Register', { name: `burst${i}`, class: 'container', leader: ls[i].pid });
            answered.push(`burst${i}`);
          } catch {
            break;
          }
        }
      })();
      await waitFor('some registrations', () => (answered.length >= 20 ? true : undefined));
      await d.kill();
      await burst;
      assert.ok(answered.length >= 20 && answered.length < ls.length + 1);
      // Two leaders die while the daemon is down; one is replaced by a stale file of a reused PID.
      ls[0].kill();
      ls[1].kill();
      await Promise.all([ls[0].exited, ls[1].exited]);
      const d2 = await d.restart();
      try {
        const names = new Set(JSON.parse((await d2.ctl(['list', '--json'])).stdout).map((m: any) => m.name));
        for (const n of answered.slice(2)) assert.ok(names.has(n), `${n} is back`);
        assert.equal(names.has('burst0'), false);
        assert.equal(names.has('burst1'), false);
        assert.equal(existsSync(join(d.stateDir, 'burst0')), false);
        assert.deepEqual(readdirSync(d.stateDir).filter((f) => f.startsWith('.#')), [], 'no temporary files left');
      } finally {
        await d2.stop();
      }
    } finally {
      for (const l of ls) l.kill();
      await d.stop();
      d.cleanup();
    }
  });

  test('at start, a state file whose PID now names another process is dropped; one of machined (no start time) is taken', async () => {
    const d = await startDaemon();
    const [reused, fromMachined] = [leader(), leader()];
    try {
      await d.stop();
      const file = (name: string, pid: number, extra: string) =>
        `# This is private data. Do not parse.\nNAME=${name}\nLEADER=${pid}\nCLASS=container\nREALTIME=1\nMONOTONIC=1\n${extra}`;
      writeFileSync(join(d.stateDir, 'reused'), file('reused', reused.pid, 'LEADER_STARTTIME=1\n'));
      writeFileSync(join(d.stateDir, 'machined'), file('machined', fromMachined.pid, ''));
      const d2 = await d.restart();
      try {
        const names = JSON.parse((await d2.ctl(['list', '--json'])).stdout).map((m: any) => m.name);
        assert.deepEqual(names, ['machined']);
        assert.equal(existsSync(join(d.stateDir, 'reused')), false);
        assert.match(readFileSync(join(d.stateDir, 'machined'), 'utf8'), /\nLEADER_STARTTIME=\d+\n/);
      } finally {
        await d2.stop();
      }
    } finally {
      reused.kill();
      fromMachined.kill();
      d.cleanup();
    }
  });

  test('a stale socket file is taken over', async () => {
    const d = await startDaemon();
    await d.kill();
    assert.ok(existsSync(d.socket), 'SIGKILL leaves the socket file');
    const d2 = await d.restart();
    assert.equal((await d2.ctl(['list', '--json'])).code, 0);
    await d2.stop();
    d.cleanup();
  });

  test('usage errors exit 2, help exits 0', async () => {
    const ctl = join(process.cwd(), 'bin/mymachinesctl');
    let r = await run(ctl, ['frobnicate']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "mymachinesctl: unknown command 'frobnicate'\nTry 'mymachinesctl --help'.\n");
    r = await run(ctl, ['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: mymachinesctl/);
    r = await run(ctl, ['register', 'x']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /register needs --leader PID/);
    r = await run(ctl, ['list', '--socket', '/nonexistent/sock']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'mymachinesctl: cannot reach mymachinesd at /nonexistent/sock: no such socket (is it running?)\n');
    r = await run(join(process.cwd(), 'bin/mymachinesd'), ['--bogus']);
    assert.equal(r.code, 2);
    r = await run(join(process.cwd(), 'bin/mymachinesd'), ['--bus', 'nonsense']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "mymachinesd: invalid --bus 'nonsense': expected system, session, none or a D-Bus address such as unix:path=/run/dbus/system_bus_socket\nTry 'mymachinesd --help'.\n");
    r = await run(join(process.cwd(), 'bin/mymachinesd'), ['--bus', 'session'], { env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: '' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--bus session needs DBUS_SESSION_BUS_ADDRESS/);
    r = await run(join(process.cwd(), 'bin/mymachinesd'), ['--resolve-hook-dir', 'relative']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "mymachinesd: --resolve-hook-dir must be an absolute path or ''\nTry 'mymachinesd --help'.\n");
    r = await run(join(process.cwd(), 'bin/mymachinesd'), ['--machine-dir', 'relative']);
    assert.deepEqual([r.code, r.stderr], [2, "mymachinesd: --machine-dir must be an absolute path or ''\nTry 'mymachinesd --help'.\n"]);
    r = await run(join(process.cwd(), 'bin/mymachinesd'), ['--user', '--bus', 'none'], { env: { ...process.env, XDG_RUNTIME_DIR: 'run/user/0' } });
    assert.deepEqual([r.code, r.stderr], [2, "mymachinesd: --user needs $XDG_RUNTIME_DIR, the absolute path of the user's runtime directory (e.g. /run/user/1000)\nTry 'mymachinesd --help'.\n"]);
    r = await run(join(process.cwd(), 'bin/mymachinesd'), ['--help']);
    assert.match(r.stdout, /--runtime-dir DIR/);
    assert.match(r.stdout, /--resolve-hook-dir DIR +where to put the resolve hook socket/);
    assert.match(r.stdout, /--machine-dir DIR +where to put machined's sockets io\.systemd\.Machine and\n +io\.systemd\.MachineImage/);
    assert.match(r.stdout, /--user +a registry of the calling user's own machines/);
    await sleep(0);
  });
});

/** Whether this kernel gives pidfds IDs of their own (pidfs). */
function pidfdsHaveIds(): boolean {
  const fd = libc.pidfd_open(process.pid, 0);
  try {
    return pidfdId(fd) > 0;
  } finally {
    libc.close(fd);
  }
}
