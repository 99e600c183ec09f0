// Resolvers that forward our zones to mymachinesd's --dns: Debian's dnsmasq (--server=/zone/addr#port)
// and unbound (stub-zone, with local-zone transparent), with the README's configuration. In a network
// namespace of the test's own, on loopback addresses:
//   127.0.0.2:5353  mymachinesd, zones h3.machines.test and 89.77.10.in-addr.arpa
//   127.0.0.3       dnsmasq, forwarding machines.test (more than our zone) and the reverse zone to it
//   127.0.0.4       unbound, a stub zone for each, and for machines.test
//   127.0.0.5       unbound the same, without the local-zone lines
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { dig } from './helpers/dig.js';
import { startDnsmasq, startUnbound, type ServerProcess } from './helpers/dns-servers.js';
import { makeNetns, type NetNs } from './helpers/netns.js';
import { eachStep, killPid } from './helpers/run.js';

const ZONE = 'h3.machines.test';
const REV = '89.77.10.in-addr.arpa';
const DNSMASQ = '127.0.0.3';
const UNBOUND = '127.0.0.4';
const UNBOUND_PLAIN = '127.0.0.5';

describe('dnsmasq and unbound forwarding to mymachinesd', () => {
  let ns: NetNs;
  let dir: string;
  let d: Daemon;
  const servers: ServerProcess[] = [];
  let leader: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mymachines-dns3-'));
    mkdirSync(join(dir, 'daemon'));
    ns = await makeNetns(['127.0.0.2', DNSMASQ, UNBOUND, UNBOUND_PLAIN]);
    d = await startDaemon({ prefix: ns.prefix, dir: join(dir, 'daemon'), args: ['--dns', '127.0.0.2:5353', '--dns-zone', ZONE, '--dns-reverse-zone', '10.77.89.0/24'] });
    const p = spawn('sleep', ['1089'], { stdio: 'ignore' });
    leader = p.pid!;
    assert.equal((await d.ctl(['register', 'web', '--class', 'vm', '--leader', String(leader), '--address', '10.77.89.10', '--address', 'fd77:89::10'])).code, 0);
    // machines.test is forwarded whole: names in it outside our zone reach us, and we refuse them.
    const zones = ['machines.test', REV];
    servers.push(await startDnsmasq(ns, join(dir, 'dnsmasq'), DNSMASQ, zones, '127.0.0.2', 5353));
    servers.push(await startUnbound(ns, join(dir, 'unbound'), UNBOUND, zones, '127.0.0.2', 5353));
    servers.push(await startUnbound(ns, join(dir, 'unbound-plain'), UNBOUND_PLAIN, zones, '127.0.0.2', 5353, false));
  });

  after(() =>
    eachStep([
      ...servers.map((s) => () => s.stop()),
      () => killPid(leader),
      async () => d && assert.equal(await d.stop(), 0),
      () => ns?.remove(),
      () => dir && rmSync(dir, { recursive: true, force: true }),
    ]));

  // Asked as a stub resolver asks (recursion desired).
  const ask = (server: string, args: string[]) => dig(server, 53, ['+rec', ...args], ns.prefix);

  for (const [name, server] of [['dnsmasq', DNSMASQ], ['unbound', UNBOUND]] as const) {
    test(`${name}: forward, reverse, NXDOMAIN for an unknown machine`, async () => {
      const a = await ask(server, [`web.${ZONE}`, 'A']);
      assert.deepEqual([a.status, a.answer], ['NOERROR', [[`web.${ZONE}.`, '0', 'IN', 'A', '10.77.89.10']]]);
      assert.deepEqual((await ask(server, [`web.${ZONE}`, 'AAAA'])).answer, [[`web.${ZONE}.`, '0', 'IN', 'AAAA', 'fd77:89::10']]);
      const ptr = await ask(server, ['-x', '10.77.89.10']);
      assert.deepEqual([ptr.status, ptr.answer], ['NOERROR', [[`10.${REV}.`, '0', 'IN', 'PTR', `web.${ZONE}.`]]]);
      assert.equal((await ask(server, [`nosuch.${ZONE}`, 'A'])).status, 'NXDOMAIN');
      assert.equal((await ask(server, ['-x', '10.77.89.99'])).status, 'NXDOMAIN');
    });
  }

  test('dnsmasq passes our REFUSED on for a name outside our zones', async () => {
    assert.equal((await ask(DNSMASQ, ['other.machines.test', 'A'])).status, 'REFUSED');
  });

  test('unbound answers SERVFAIL for a name outside our zones: it takes a REFUSED from a server as a lame one', async () => {
    assert.equal((await ask(UNBOUND, ['other.machines.test', 'A'])).status, 'SERVFAIL');
  });

  test('unbound without local-zone lines answers NXDOMAIN itself (test. and 10.in-addr.arpa. are its default local zones)', async () => {
    assert.equal((await ask(UNBOUND_PLAIN, [`web.${ZONE}`, 'A'])).status, 'NXDOMAIN');
    assert.equal((await ask(UNBOUND_PLAIN, ['-x', '10.77.89.10'])).status, 'NXDOMAIN');
  });

  test('a change shows through both at once: TTL 0, nothing cached', async () => {
    assert.equal((await d.ctl(['unregister', 'web'])).code, 0);
    for (const server of [DNSMASQ, UNBOUND]) assert.equal((await ask(server, [`web.${ZONE}`, 'A'])).status, 'NXDOMAIN', server);
  });
});
