// io.systemd.Resolve end to end: the real daemon, real containers, raw Varlink; plus the hosts policy alone.
// Addresses: 10.77.30.0/24 and fd77:30::/64.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Address6 } from 'ip-address';
import { VarlinkClient } from '../src/varlink/client.js';
import { VarlinkError } from '../src/varlink/errors.js';
import { hostsAddresses } from '../src/resolver/resolver.js';
import type { Address } from '../src/registry/address.js';
import { makeContainer, removeAllContainers, type Container } from './helpers/container.js';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { waitFor } from './helpers/run.js';

const v6 = (s: string) => new Address6(s).toUnsignedByteArray();
const WEB_V4 = [10, 77, 30, 2];
const WEB_V6 = v6('fd77:30::2');

/** The link-local address the kernel gives host0 inside the container (once the link has carrier). */
function linkLocal(c: Container): Promise<number[]> {
  return waitFor('the link-local address of host0', async () => {
    const out = JSON.parse(await c.exec(['ip', '-j', '-6', 'addr', 'show', 'dev', 'host0', 'scope', 'link']));
    const local = out[0]?.addr_info.find((i: { local?: string }) => i.local)?.local;
    return local === undefined ? undefined : v6(local);
  });
}

/** The error a call fails with (name and parameters), or the reply if it does not fail. */
async function outcome(cl: VarlinkClient, method: string, params: object): Promise<unknown> {
  try {
    return await cl.call(method, params);
  } catch (e) {
    if (!(e instanceof VarlinkError)) throw e;
    return { error: e.name, parameters: e.parameters };
  }
}

const NXDOMAIN = { error: 'io.systemd.Resolve.DNSError', parameters: { rcode: 3 } };
const NO_RECORD = { error: 'io.systemd.Resolve.NoSuchResourceRecord', parameters: {} };
const invalid = (parameter: string) => ({ error: 'org.varlink.service.InvalidParameter', parameters: { parameter } });

describe('io.systemd.Resolve', () => {
  let d: Daemon;
  let cl: VarlinkClient;
  let web: Container;
  let webLL: number[];
  const host = (name: string, family?: number) => outcome(cl, 'io.systemd.Resolve.ResolveHostname', family === undefined ? { name } : { name, family });
  const addr = (family: number, address: number[]) => outcome(cl, 'io.systemd.Resolve.ResolveAddress', { family, address });

  before(async () => {
    d = await startDaemon();
    web = await makeContainer({ ipv4: { host: '10.77.30.1', inside: '10.77.30.2' }, ipv6: { host: 'fd77:30::1', inside: 'fd77:30::2' } });
    webLL = await linkLocal(web);
    const r = await d.ctl(['register', 'Web30', '--leader', String(web.pid), '--netif', String(web.hostIfIndex)]);
    assert.equal(r.code, 0, r.stderr);
    cl = await VarlinkClient.connect(d.socket);
  });
  after(async () => {
    cl?.close();
    await removeAllContainers();
    await d?.stop();
    d?.cleanup();
  });

  test('ResolveHostname: a container, both families, machined\'s order, link-local with its scope', async () => {
    assert.deepEqual(await host('Web30'), {
      addresses: [
        { family: 2, address: WEB_V4 },
        { family: 10, address: WEB_V6 },
        { ifindex: web.hostIfIndex, family: 10, address: webLL },
      ],
      name: 'Web30',
      flags: 0,
    });
  });

  test('a link-local address on another inner interface gets no scope and is left out; the veth peer\'s keeps its own', async () => {
    // A second inner interface: a veth pair whose both ends are inside (no peer on the host).
    await web.exec(['ip', 'link', 'add', 'in7a', 'type', 'veth', 'peer', 'name', 'in7b']);
    try {
      for (const i of ['in7a', 'in7b']) await web.exec(['ip', 'link', 'set', i, 'up']);
      await web.exec(['ip', '-6', 'addr', 'add', 'fe80::77/64', 'dev', 'in7a', 'nodad']);
      // Read by the daemon (its machined-style address list holds it) ...
      await waitFor('the second link-local address read', async () => {
        const m = (await cl.call('io.systemd.Machine.List', { name: 'Web30', acquireMetadata: 'yes' })) as { addresses?: { address: number[] }[] };
        return m.addresses?.some((x) => x.address.join() === v6('fe80::77').join()) ? true : undefined;
      });
      // ... and not answered: it cannot be reached through the registered interface.
      assert.deepEqual(await host('Web30', 10), { addresses: [{ family: 10, address: WEB_V6 }, { ifindex: web.hostIfIndex, family: 10, address: webLL }], name: 'Web30', flags: 0 });
      assert.deepEqual(await addr(10, v6('fe80::77')), NXDOMAIN);
    } finally {
      await web.exec(['ip', 'link', 'del', 'in7a']);
    }
  });

  test('ResolveHostname: one family; family 0 is both', async () => {
    assert.deepEqual(await host('Web30', 2), { addresses: [{ family: 2, address: WEB_V4 }], name: 'Web30', flags: 0 });
    assert.deepEqual(await host('Web30', 10), {
      addresses: [{ family: 10, address: WEB_V6 }, { ifindex: web.hostIfIndex, family: 10, address: webLL }],
      name: 'Web30',
      flags: 0,
    });
    assert.deepEqual(((await host('Web30', 0)) as any).addresses.length, 3);
  });

  test('ResolveHostname: any letter case, answered with the registered name', async () => {
    for (const n of ['web30', 'WEB30', 'wEb30']) assert.equal(((await host(n)) as any).name, 'Web30', n);
  });

  test('ResolveHostname: no machine, .host, bad family, bad name', async () => {
    assert.deepEqual(await host('nomachine30'), NXDOMAIN);
    assert.deepEqual(await host('.host'), NXDOMAIN);
    assert.equal(((await host('Web30.')) as any).name, 'Web30', 'one trailing dot: the same name, as resolved');
    assert.deepEqual(await host('Web30..'), NXDOMAIN);
    assert.deepEqual(await host('W\u00c9b30'), NXDOMAIN, 'no Unicode case folding');
    assert.deepEqual(await host('Web30', 7), invalid('family'));
    assert.deepEqual(await host(''), invalid('name'));
    assert.deepEqual(await host('a'.repeat(254)), invalid('name'));
    assert.deepEqual(await outcome(cl, 'io.systemd.Resolve.ResolveHostname', { name: 'Web30', ifindex: -1 }), invalid('ifindex'));
  });

  test('ResolveAddress: both families and the link-local address map back to the name', async () => {
    assert.deepEqual(await addr(2, WEB_V4), { names: [{ name: 'Web30' }], flags: 0 });
    assert.deepEqual(await addr(10, WEB_V6), { names: [{ name: 'Web30' }], flags: 0 });
    assert.deepEqual(await addr(10, webLL), { names: [{ ifindex: web.hostIfIndex, name: 'Web30' }], flags: 0 });
  });

  test('ResolveAddress: no machine\'s address, loopback, bad length or family', async () => {
    assert.deepEqual(await addr(2, [10, 77, 30, 1]), NXDOMAIN, 'the host side of the veth is no machine\'s');
    assert.deepEqual(await addr(2, [127, 0, 0, 1]), NXDOMAIN);
    assert.deepEqual(await addr(10, v6('::1')), NXDOMAIN);
    assert.deepEqual(await addr(2, WEB_V6), invalid('address'));
    assert.deepEqual(await addr(10, WEB_V4), invalid('address'));
    assert.deepEqual(await addr(2, [10, 77, 30, 256]), invalid('address'));
    assert.deepEqual(await addr(7, WEB_V4), invalid('family'));
  });

  test('a VM with given addresses: link-local IPv6 without one interface is refused, IPv4 link-local beside others is left out', async () => {
    const leader = await makeContainer({ hostNetwork: true });
    // It could never be answered (no scope): refused rather than silently never given out.
    let r = await d.ctl(['register', 'vm30', '--class', 'vm', '--leader', String(leader.pid), '--address', 'fe80::30', '--address', '10.77.30.50']);
    assert.deepEqual([r.code, r.stderr], [1, "mymachinesctl: invalid address 'fe80::30': an IPv6 link-local address needs exactly one network interface (ifIndices) to give it a scope\n"]);
    r = await d.ctl(['register', 'vm30', '--class', 'vm', '--leader', String(leader.pid),
      '--address', '169.254.30.1', '--address', 'fd77:30::50', '--address', '10.77.30.50']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await host('vm30'), {
      addresses: [{ family: 2, address: [10, 77, 30, 50] }, { family: 10, address: v6('fd77:30::50') }],
      name: 'vm30',
      flags: 0,
    });
    assert.deepEqual(await addr(2, [10, 77, 30, 50]), { names: [{ name: 'vm30' }], flags: 0 });
    assert.deepEqual(await addr(2, [169, 254, 30, 1]), NXDOMAIN);
    assert.equal((await d.ctl(['unregister', 'vm30'])).code, 0);
    await leader.remove();
  });

  test('a VM with only IPv6 has no IPv4 record; one with only IPv4 link-local gives that', async () => {
    const a = await makeContainer({ hostNetwork: true });
    const b = await makeContainer({ hostNetwork: true });
    assert.equal((await d.ctl(['register', 'vm30b', '--class', 'vm', '--leader', String(a.pid), '--address', 'fd77:30::51'])).code, 0);
    assert.equal((await d.ctl(['register', 'vm30c', '--class', 'vm', '--leader', String(b.pid), '--address', '169.254.30.2'])).code, 0);
    assert.deepEqual(await host('vm30b', 2), NO_RECORD);
    assert.deepEqual(await host('vm30b', 10), { addresses: [{ family: 10, address: v6('fd77:30::51') }], name: 'vm30b', flags: 0 });
    assert.deepEqual(await host('vm30c'), { addresses: [{ family: 2, address: [169, 254, 30, 2] }], name: 'vm30c', flags: 0 });
    assert.deepEqual(await host('vm30c', 10), NO_RECORD);
    assert.deepEqual(await addr(2, [169, 254, 30, 2]), { names: [{ name: 'vm30c' }], flags: 0 });
    await d.ctl(['unregister', 'vm30b', 'vm30c']);
    await Promise.all([a.remove(), b.remove()]);
  });

  test('an address added inside the container resolves, and goes when removed', async () => {
    // How soon is measured in bench/freshness.ts (goal: within a second); here, that it shows at all.
    const extra = [10, 77, 30, 3];
    await web.exec(['ip', 'addr', 'add', '10.77.30.3/24', 'dev', 'host0']);
    await waitFor('the new address', async () => (((await host('Web30', 2)) as any).addresses?.length === 2 ? true : undefined), 10_000);
    assert.deepEqual(await host('Web30', 2), { addresses: [{ family: 2, address: WEB_V4 }, { family: 2, address: extra }], name: 'Web30', flags: 0 });
    assert.deepEqual(await addr(2, extra), { names: [{ name: 'Web30' }], flags: 0 });
    await web.exec(['ip', 'addr', 'del', '10.77.30.3/24', 'dev', 'host0']);
    await waitFor('the address gone', async () => ((await addr(2, extra)) as any).error ? true : undefined, 10_000);
    assert.deepEqual(await host('Web30', 2), { addresses: [{ family: 2, address: WEB_V4 }], name: 'Web30', flags: 0 });
  });

  test('an unregistered machine no longer resolves, either way', async () => {
    const c = await makeContainer({ ipv4: { host: '10.77.30.9', inside: '10.77.30.10' } });
    assert.equal((await d.ctl(['register', 'gone30', '--leader', String(c.pid)])).code, 0);
    assert.deepEqual(await host('gone30', 2), { addresses: [{ family: 2, address: [10, 77, 30, 10] }], name: 'gone30', flags: 0 });
    assert.equal((await d.ctl(['unregister', 'gone30'])).code, 0);
    assert.deepEqual(await host('gone30'), NXDOMAIN);
    assert.deepEqual(await addr(2, [10, 77, 30, 10]), NXDOMAIN);
    await c.remove();
  });

  test('the interface description names resolved\'s types and errors', async () => {
    const r = (await cl.call('org.varlink.service.GetInterfaceDescription', { interface: 'io.systemd.Resolve' })) as { description: string };
    assert.match(r.description, /method ResolveHostname\(ifindex: \?int, name: string, family: \?int, flags: \?int\) -> \(addresses: \[\]ResolvedAddress, name: string, flags: int\)/);
    assert.match(r.description, /method ResolveAddress\(ifindex: \?int, family: int, address: \[\]int, flags: \?int\) -> \(names: \[\]ResolvedName, flags: int\)/);
    assert.match(r.description, /error DNSError \(rcode: int\)/);
    assert.match(r.description, /error NoSuchResourceRecord \(\)/);
  });
});

describe('hosts policy', () => {
  const a = (family: 2 | 10, bytes: number[], scope: number, ifindex = 2): Address => ({ family, bytes, scope, ifindex });
  const ll6 = a(10, v6('fe80::1'), 253);
  const ll4 = a(2, [169, 254, 0, 1], 253);

  test('IPv6 link-local only with its scope: the registered veth peer of its interface; for a given address, the one registered interface', () => {
    const read = { ...ll6, peer: 7 };
    assert.deepEqual(hostsAddresses([read], [7]), [{ family: 10, bytes: ll6.bytes, ifindex: 7 }]);
    assert.deepEqual(hostsAddresses([read], [8, 7]), [{ family: 10, bytes: ll6.bytes, ifindex: 7 }]);
    assert.deepEqual(hostsAddresses([read], [8]), [], 'on the peer of an interface not registered');
    assert.deepEqual(hostsAddresses([ll6], [7]), [], 'on an inner interface with no peer on the host');
    const given = { ...ll6, ifindex: 0 };
    assert.deepEqual(hostsAddresses([given], [7]), [{ family: 10, bytes: ll6.bytes, ifindex: 7 }]);
    assert.deepEqual(hostsAddresses([given], []), []);
    assert.deepEqual(hostsAddresses([given], [7, 8]), []);
  });

  test('IPv4 link-local only without another IPv4 address; never loopback; duplicates once', () => {
    const g4 = a(2, [10, 0, 0, 1], 0);
    assert.deepEqual(hostsAddresses([ll4], []), [{ family: 2, bytes: ll4.bytes }]);
    assert.deepEqual(hostsAddresses([g4, ll4], []), [{ family: 2, bytes: g4.bytes }]);
    assert.deepEqual(hostsAddresses([a(2, [127, 0, 0, 1], 254), a(10, v6('::1'), 254)], [1]), []);
    assert.deepEqual(hostsAddresses([g4, { ...g4, ifindex: 3 }], []), [{ family: 2, bytes: g4.bytes }]);
  });
});
