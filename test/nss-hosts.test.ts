// libnss_mymachines.so.2 for hosts, as real programs use it through glibc: getent, ping, a threaded and a
// forking C program, valgrind. Each command runs in a mount namespace of its own with a private
// nsswitch.conf and /etc/hosts and our module where glibc looks for it (bench/nss-env.ts).
// Addresses: 10.77.31.0/24 and fd77:31::/64; VMs (given addresses, no network) 10.77.32.0-10.77.41.255.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeNssEnv, type NssEnv } from './helpers/nss-env.js';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { ROOT, startDaemon, type Daemon } from './helpers/daemon.js';
import { must, run, waitFor } from './helpers/run.js';
import { endSleepingLeaders, sleepingLeaderPid, sleepingLeaders } from './helpers/leaders.js';
import { VarlinkClient } from '../src/varlink/client.js';

const V4 = '10.77.31.2';
const V6 = 'fd77:31::2';
const FILES_NAME = 'files31';
const FILES_ADDR = '10.77.31.99';

/** getent hosts: one line per address, as getent prints them. */
const hostsLines = (name: string, addrs: string[]) => addrs.map((a) => `${a.padEnd(15)} ${name}\n`).join('');
/** getent ahosts*: three socket types per address; the canonical name on the first line only. */
const ahostsLines = (canon: string, addrs: string[]) =>
  addrs.flatMap((a, i) => ['STREAM', 'DGRAM', 'RAW'].map((t, j) => `${a.padEnd(15)} ${t.padEnd(6)} ${i === 0 && j === 0 ? canon : ''}\n`)).join('');

/** The link-local address of an interface once usable (not tentative): getaddrinfo orders addresses by
 *  the source addresses the host has for them, and an unusable one puts the link-local address last. */
async function linkLocal(exec: (args: string[]) => Promise<string>, dev: string): Promise<string> {
  return waitFor(`the link-local address of ${dev}`, async () => {
    const out = JSON.parse(await exec(['ip', '-j', '-6', 'addr', 'show', 'dev', dev, 'scope', 'link']));
    const a = out[0]?.addr_info.find((i: { local?: string }) => i.local);
    return a && !a.tentative ? (a.local as string) : undefined;
  });
}

describe('NSS hosts through glibc', () => {
  let d: Daemon;
  let env: NssEnv;
  let web: Container;
  let ll: string;
  const getent = (...args: string[]) => env.run('getent', args);

  before(async () => {
    d = await startDaemon();
    env = makeNssEnv({ socket: d.socket, etcHosts: [`${FILES_ADDR}\t${FILES_NAME}`] });
    web = await makeContainer({ ipv4: { host: '10.77.31.1', inside: V4 }, ipv6: { host: 'fd77:31::1', inside: V6 } });
    ll = await linkLocal(web.exec, 'host0');
    await linkLocal((args) => must(args[0], args.slice(1)), web.hostIf);
    const r = await d.ctl(['register', 'web31', '--leader', String(web.pid), '--netif', String(web.hostIfIndex)]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    endSleepingLeaders();
    await removeAllContainers();
    await d?.stop();
    d?.cleanup();
    env?.close();
  });

  test('getent hosts, ahosts, ahostsv4, ahostsv6 for a container on a veth pair', async () => {
    // gethostbyname2/3 (hosts, ahostsv6) answer with a hostent, which has no room for a scope: the
    // link-local address is left out there, and given by gethostbyname4 (ahosts) only.
    assert.deepEqual(await getent('hosts', 'web31'), { code: 0, signal: null, stdout: hostsLines('web31', [V6]), stderr: '' }, 'IPv6 first (gethostbyname2)');
    // getaddrinfo orders by RFC 6724: link-local (with its scope, the host-side interface), ULA, IPv4.
    assert.equal((await getent('ahosts', 'web31')).stdout, ahostsLines('web31', [`${ll}%${web.hostIfIndex}`, V6, V4]));
    assert.equal((await getent('ahostsv4', 'web31')).stdout, ahostsLines('web31', [V4]));
    assert.equal((await getent('ahostsv6', 'web31')).stdout, ahostsLines('web31', [V6]));
  });

  test('a machine whose only IPv6 address is link-local: left out of hostent answers, kept with its scope by getaddrinfo(AF_UNSPEC)', async () => {
    const c = await makeContainer({ ipv4: { host: '10.77.31.21', inside: '10.77.31.22' } });
    const cll = await linkLocal(c.exec, 'host0');
    await linkLocal((args) => must(args[0], args.slice(1)), c.hostIf);
    try {
      assert.equal((await d.ctl(['register', 'll31', '--leader', String(c.pid), '--netif', String(c.hostIfIndex)])).code, 0);
      assert.equal((await getent('ahosts', 'll31')).stdout, ahostsLines('ll31', [`${cll}%${c.hostIfIndex}`, '10.77.31.22']));
      assert.equal((await getent('hosts', 'll31')).stdout, hostsLines('ll31', ['10.77.31.22']), 'no AAAA: the IPv4 address');
      assert.equal((await getent('ahostsv6', 'll31')).stdout, ahostsLines('ll31', ['::ffff:10.77.31.22']), 'no AAAA: IPv4-mapped');
      // ping -6 (iputils) resolves through gethostbyname4_r, which gives the address with its scope.
      const p6 = await env.run('ping', ['-6', '-c1', '-W2', 'll31']);
      assert.equal(p6.code, 0, p6.stdout + p6.stderr);
      assert.match(p6.stdout, new RegExp(`${cll}%${c.hostIf}.*\\n[^]*1 received`));
    } finally {
      await d.ctl(['unregister', 'll31']);
      await c.remove();
    }
  });

  test('reverse lookups for both families and the link-local address', async () => {
    assert.equal((await getent('hosts', V4)).stdout, hostsLines('web31', [V4]));
    assert.equal((await getent('hosts', V6)).stdout, hostsLines('web31', [V6]));
    assert.equal((await getent('hosts', ll)).stdout, hostsLines('web31', [ll]));
    assert.equal((await getent('hosts', '10.77.31.1')).code, 2, 'the host side is no machine\'s');
  });

  test('ping -4 and ping -6 by name', async () => {
    const p4 = await env.run('ping', ['-4', '-c1', '-W2', 'web31']);
    assert.equal(p4.code, 0, p4.stdout + p4.stderr);
    assert.match(p4.stdout, new RegExp(`bytes from .*\\(?${V4.replace(/\./g, '\\.')}\\)?`));
    const p6 = await env.run('ping', ['-6', '-c1', '-W2', 'web31']);
    assert.equal(p6.code, 0, p6.stdout + p6.stderr);
    assert.match(p6.stdout, /1 received/);
  });

  test('a VM registered with given addresses', async () => {
    const r = await d.ctl(['register', 'vm31', '--class', 'vm', '--leader', String(sleepingLeaderPid()), '--address', '10.77.31.60', '--address', 'fd77:31::60']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await getent('hosts', 'vm31')).stdout, hostsLines('vm31', ['fd77:31::60']));
    assert.equal((await getent('ahostsv4', 'vm31')).stdout, ahostsLines('vm31', ['10.77.31.60']));
    assert.equal((await getent('hosts', '10.77.31.60')).stdout, hostsLines('vm31', ['10.77.31.60']));
  });

  test('an unprivileged process resolves from the same table', async () => {
    const nobody = ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--'];
    assert.equal((await env.run('setpriv', [...nobody, 'getent', 'hosts', 'web31'])).stdout, hostsLines('web31', [V6]));
    assert.equal((await env.run('setpriv', [...nobody, 'getent', 'hosts', V4])).stdout, hostsLines('web31', [V4]));
  });

  test('names in any letter case; the canonical name is the registered one', async () => {
    assert.equal((await getent('hosts', 'WEB31')).stdout, hostsLines('web31', [V6]));
    assert.equal((await getent('ahostsv4', 'Web31')).stdout, ahostsLines('web31', [V4]));
  });

  test('a name that is no machine falls through to files; one that is nowhere is not found', async () => {
    const first = makeNssEnv({ socket: d.socket, hosts: 'mymachines files', etcHosts: [`${FILES_ADDR}\t${FILES_NAME}`] });
    try {
      assert.equal((await first.run('getent', ['hosts', FILES_NAME])).stdout, hostsLines(FILES_NAME, [FILES_ADDR]));
      assert.equal((await first.run('getent', ['ahostsv4', FILES_NAME])).stdout, ahostsLines(FILES_NAME, [FILES_ADDR]));
      assert.equal((await first.run('getent', ['hosts', FILES_ADDR])).stdout, hostsLines(FILES_NAME, [FILES_ADDR]), 'reverse too');
      assert.equal((await first.run('getent', ['hosts', 'web31'])).stdout, hostsLines('web31', [V6]));
    } finally {
      first.close();
    }
    assert.equal((await getent('hosts', FILES_NAME)).stdout, hostsLines(FILES_NAME, [FILES_ADDR]));
    const none = await getent('hosts', 'nomachine31');
    assert.deepEqual([none.code, none.stdout], [2, '']);
  });

  test('an address added inside the container resolves, and stops when removed', async () => {
    // How soon is measured in bench/freshness.ts (goal: within a second); here, that it shows at all.
    await web.exec(['ip', 'addr', 'add', '10.77.31.3/24', 'dev', 'host0']);
    await waitFor('the new address', async () => ((await getent('ahostsv4', 'web31')).stdout.includes('10.77.31.3 ') ? true : undefined), 10_000);
    assert.equal((await getent('ahostsv4', 'web31')).stdout, ahostsLines('web31', [V4, '10.77.31.3']));
    assert.equal((await getent('hosts', '10.77.31.3')).stdout, hostsLines('web31', ['10.77.31.3']));
    await web.exec(['ip', 'addr', 'del', '10.77.31.3/24', 'dev', 'host0']);
    await waitFor('the address gone', async () => ((await getent('hosts', '10.77.31.3')).code === 2 ? true : undefined), 10_000);
    assert.equal((await getent('ahostsv4', 'web31')).stdout, ahostsLines('web31', [V4]));
  });

  test('an unregistered machine stops resolving, by name and by address', async () => {
    const c = await makeContainer({ ipv4: { host: '10.77.31.9', inside: '10.77.31.10' } });
    assert.equal((await d.ctl(['register', 'gone31', '--leader', String(c.pid)])).code, 0);
    assert.equal((await getent('ahostsv4', 'gone31')).stdout, ahostsLines('gone31', ['10.77.31.10']));
    assert.equal((await d.ctl(['unregister', 'gone31'])).code, 0);
    assert.equal((await getent('hosts', 'gone31')).code, 2);
    assert.equal((await getent('hosts', '10.77.31.10')).code, 2);
    await c.remove();
  });

  test('16 threads x 1,000 lookups in one process', async () => {
    const r = await env.run(env.lookupProgram(), ['threads', 'web31', V4, '16', '1000'], { timeoutMs: 120_000 });
    assert.deepEqual([r.code, r.stdout], [0, 'ok 16000\n'], r.stderr);
  });

  test('lookups before fork(), then in the child and the parent', async () => {
    const r = await env.run(env.lookupProgram(), ['fork', 'web31', V6]);
    assert.deepEqual([r.code, r.stdout], [0, 'parent before fork: ok\nchild: ok\nparent after fork: ok\n'], r.stderr);
  });

  test('the module\'s sockets are close-on-exec: a program that looks up, then execs, leaks none', async () => {
    // Sockets among the descriptors 3 and up that `ls` inherits, with and without a lookup before the exec
    // (the test runner may hand down descriptors of its own: those are in both).
    const sockets = (out: string) => out.split('\n').filter((l) => / (\d\d+|[3-9]) -> socket:/.test(l)).map((l) => l.replace(/^.* (\d+) -> /, '$1 -> '));
    const base = await env.run('ls', ['-l', '/proc/self/fd/']);
    assert.equal(base.code, 0, base.stderr);
    const r = await env.run(env.lookupProgram(), ['exec', 'web31', 'ls', '-l', '/proc/self/fd/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^found\n/);
    assert.deepEqual(sockets(r.stdout), sockets(base.stdout), r.stdout);
  });

  test('valgrind finds no leak or error in getent (forward, reverse, miss)', async () => {
    for (const args of [['hosts', 'web31'], ['ahosts', 'web31'], ['hosts', V4], ['hosts', 'nomachine31']]) {
      const r = await env.run('valgrind', ['--leak-check=full', '--error-exitcode=99', '-q', 'getent', ...args], { timeoutMs: 120_000 });
      assert.notEqual(r.code, 99, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, '', args.join(' '));
    }
  });

  test('the table reader survives its fuzz target', async (t) => {
    if (!existsSync(join(ROOT, 'nss-module/fuzz/run.sh'))) return t.skip('nss-module provides no fuzz/run.sh');
    await must('make', ['-C', join(ROOT, 'nss-module'), 'fuzz']);
    const r = await run(join(ROOT, 'nss-module/fuzz/run.sh'), ['20'], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stdout.slice(-2000) + r.stderr.slice(-2000));
  });
});

describe('NSS hosts from the daemon\'s table: fresh in every process, whatever the daemon does', () => {
  let d: Daemon;
  let env: NssEnv;
  let client: VarlinkClient;
  let leaders: Awaited<ReturnType<typeof sleepingLeaders>>;
  before(async () => {
    d = await startDaemon();
    env = makeNssEnv({ socket: d.socket, hosts: 'mymachines files', etcHosts: [`${FILES_ADDR}\t${FILES_NAME}`] });
    client = await VarlinkClient.connect(d.socket);
    leaders = await sleepingLeaders(1100);
  });
  after(async () => {
    client?.close();
    endSleepingLeaders();
    if (d && d.proc.exitCode === null && d.proc.signalCode === null) process.kill(d.proc.pid!, 'SIGCONT');
    await d?.stop();
    d?.cleanup();
    env?.close();
    await leaders?.stop();
  });

  test('register, then look up from another process at once: 1,000 times, never missed; unregister: never answered afterwards', async () => {
    const server = env.lookupServer();
    try {
      assert.equal(await server.lookup('fresh31-0'), 'failed');
      const missed: string[] = [];
      for (let i = 0; i < 1000; i++) {
        const address = `10.77.${32 + (i >> 8)}.${i & 255}`;
        await client.call('io.systemd.Machine.Register', { name: `fresh31-${i}`, class: 'vm', leader: leaders.pids[i], addresses: [address] });
        if ((await server.lookup(`fresh31-${i}`)) !== 'found') missed.push(`fresh31-${i}`);
        if ((await server.lookup(`addr=${address}`)) !== 'found') missed.push(address);
        // Now and then from a new process too (it maps the table afresh).
        if (i % 100 === 99 && (await env.run('getent', ['hosts', `fresh31-${i}`])).stdout !== hostsLines(`fresh31-${i}`, [address])) missed.push(`getent fresh31-${i}`);
      }
      assert.deepEqual(missed, []);
      const answered: string[] = [];
      for (let i = 0; i < 1000; i += 3) {
        await client.call('io.systemd.Machine.Unregister', { name: `fresh31-${i}` });
        if ((await server.lookup(`fresh31-${i}`)) !== 'failed') answered.push(`fresh31-${i}`);
        if ((await server.lookup(`addr=10.77.${32 + (i >> 8)}.${i & 255}`)) !== 'failed') answered.push(`address of fresh31-${i}`);
      }
      assert.deepEqual(answered, []);
      assert.equal(await server.lookup('fresh31-1'), 'found');
    } finally {
      server.close();
    }
  });

  test('a leader that exits: once the daemon has seen it, no process gets an answer for the machine', async () => {
    const server = env.lookupServer();
    try {
      const victims = leaders.pids.slice(1000, 1020);
      for (const [i, pid] of victims.entries()) {
        await client.call('io.systemd.Machine.Register', { name: `exit31-${i}`, class: 'vm', leader: pid, addresses: [`10.77.40.${i + 1}`] });
        assert.equal(await server.lookup(`exit31-${i}`), 'found');
      }
      for (const pid of victims) process.kill(pid, 'SIGKILL');
      const answered: string[] = [];
      for (const i of victims.keys()) {
        // The registry's word (over Varlink) first, then the module in another process at once.
        await waitFor(`exit31-${i} gone`, () => client.call('io.systemd.Resolve.ResolveHostname', { name: `exit31-${i}` }).then(() => undefined, () => true));
        if ((await server.lookup(`exit31-${i}`)) !== 'failed') answered.push(`exit31-${i}`);
        if ((await server.lookup(`addr=10.77.40.${i + 1}`)) !== 'failed') answered.push(`10.77.40.${i + 1}`);
      }
      assert.deepEqual(answered, []);
    } finally {
      server.close();
    }
  });

  test('threads and fork() while machines come and go', async () => {
    let stop = false;
    const churn = (async () => {
      let n = 0;
      while (!stop) {
        const name = `churn31-${n % 50}`;
        await client.call('io.systemd.Machine.Register', { name, class: 'vm', leader: leaders.pids[1020 + (n % 50)], addresses: [`10.77.41.${(n % 50) + 1}`] });
        await client.call('io.systemd.Machine.Unregister', { name });
        n++;
      }
      return n;
    })();
    let replaced = 0;
    try {
      assert.deepEqual(await client.call('io.systemd.Machine.Register', { name: 'steady31', class: 'vm', leader: leaders.pids[1090], addresses: ['10.77.41.200'] }), {});
      const threads = await env.run(env.lookupProgram(), ['threads', 'steady31', '10.77.41.200', '16', '2000'], { timeoutMs: 120_000 });
      assert.deepEqual([threads.code, threads.stdout], [0, 'ok 32000\n'], threads.stderr);
      for (let i = 0; i < 10; i++) {
        const forked = await env.run(env.lookupProgram(), ['fork', 'steady31', '10.77.41.200']);
        assert.deepEqual([forked.code, forked.stdout], [0, 'parent before fork: ok\nchild: ok\nparent after fork: ok\n'], forked.stderr);
      }
    } finally {
      stop = true;
      replaced = await churn;
    }
    assert.ok(replaced > 10, 'the table was replaced meanwhile');
  });

  test('a table the daemon did not write is refused: another owner, or writable by others', async () => {
    assert.deepEqual(await client.call('io.systemd.Machine.Register', { name: 'own31', class: 'vm', leader: leaders.pids[1091], addresses: ['10.77.41.201'] }), {});
    const table = join(d.runtimeDir, 'nss-table');
    assert.equal((await env.run('getent', ['hosts', 'own31'])).stdout, hostsLines('own31', ['10.77.41.201']));
    try {
      chownSync(table, 65534, 65534);
      const r = await env.run(env.lookupProgram(), ['once', 'own31']);
      assert.match(r.stdout, /^failed /);
      // Nor by another user: only root's table, or the caller's own (a per-user registry), is believed.
      const other = await env.run('setpriv', ['--reuid', '1000', '--regid', '1000', '--clear-groups', env.lookupProgram(), 'once', 'own31']);
      assert.match(other.stdout, /^failed /);
      chownSync(table, 0, 0);
      chmodSync(table, 0o666);
      assert.match((await env.run(env.lookupProgram(), ['once', 'own31'])).stdout, /^failed /);
    } finally {
      chownSync(table, 0, 0);
      chmodSync(table, 0o644);
    }
    assert.equal((await env.run('getent', ['hosts', 'own31'])).stdout, hostsLines('own31', ['10.77.41.201']));
  });

  test('stopped (SIGSTOP): hit, miss and reverse answered at once; killed: UNAVAIL at once, files answer; restarted: its table is used', async () => {
    assert.equal((await d.ctl(['register', 'stop31', '--class', 'vm', '--leader', String(sleepingLeaderPid()), '--address', '10.77.31.70'])).code, 0);
    assert.equal((await env.run('getent', ['hosts', 'stop31'])).stdout, hostsLines('stop31', ['10.77.31.70']));

    // getaddrinfo/getnameinfo timed inside the process (test/helpers/nss-lookup.c), after one untimed
    // lookup, so that starting it, loading the modules and reading nsswitch.conf do not count. Gives
    // the fastest and the slowest of `count` timed lookups.
    const warm = async (name: string, count: number) => {
      const r = await env.run(env.lookupProgram(), ['warm', name, String(count)], { timeoutMs: 20_000 });
      const [what, min, max] = r.stdout.trim().split(' ');
      return { what, minMs: Number(min) / 1e6, maxMs: Number(max) / 1e6, out: r.stdout + r.stderr };
    };
    process.kill(d.proc.pid!, 'SIGSTOP');
    let hit, miss, rev, viaGetent, fresh;
    try {
      hit = await warm('stop31', 50);
      miss = await warm('nomachine31', 50);
      rev = await warm('addr=10.77.31.70', 50);
      viaGetent = await env.run('getent', ['ahosts', 'stop31'], { timeoutMs: 10_000 });
      fresh = await env.run(env.lookupProgram(), ['once', 'stop31'], { timeoutMs: 10_000 });
    } finally {
      process.kill(d.proc.pid!, 'SIGCONT');
    }
    // A lookup never waits for the daemon: none of them comes near the 500 ms that the socket client
    // waited before (the bound tells a wait from none, with room for a loaded 2-core machine; how long a
    // lookup takes is measured in bench/nss-hosts.ts).
    for (const [what, r, want] of [['hit', hit, 'found'], ['miss', miss, 'failed'], ['reverse', rev, 'found']] as const) {
      assert.equal(r.what, want, `${what}: ${r.out}`);
      assert.ok(r.maxMs < 250, `${what} with the daemon stopped took up to ${r.maxMs} ms`);
    }
    assert.equal(viaGetent.stdout, ahostsLines('stop31', ['10.77.31.70']));
    assert.match(fresh.stdout, /^found /, 'a new process maps the stopped daemon\'s table');

    await d.kill(); // SIGKILL: the table file stays, nobody holds it
    assert.ok(existsSync(join(d.runtimeDir, 'nss-table')));
    const dead = await warm('stop31', 20);
    assert.equal(dead.what, 'failed', dead.out);
    assert.ok(dead.minMs < 250, `took at least ${dead.minMs} ms`);
    // UNAVAIL, so the next source answers (hosts: mymachines files).
    assert.equal((await env.run('getent', ['hosts', FILES_NAME])).stdout, hostsLines(FILES_NAME, [FILES_ADDR]));
    assert.equal((await env.run('getent', ['hosts', 'stop31'])).code, 2);

    d = await d.restart();
    assert.equal((await env.run('getent', ['hosts', 'stop31'])).stdout, hostsLines('stop31', ['10.77.31.70']), 'the machine again, from the new daemon\'s table');
    assert.equal((await d.ctl(['register', 'new31', '--class', 'vm', '--leader', String(sleepingLeaderPid()), '--address', '10.77.31.71'])).code, 0);
    assert.equal((await env.run('getent', ['hosts', 'new31'])).stdout, hostsLines('new31', ['10.77.31.71']));

    await d.stop(); // SIGTERM: the table goes with the daemon
    assert.equal(existsSync(join(d.runtimeDir, 'nss-table')), false);
    const gone = await warm('stop31', 20);
    assert.equal(gone.what, 'failed', gone.out);
    assert.ok(gone.minMs < 250, `took at least ${gone.minMs} ms`);
  });
});
