// The D-Bus object server (src/registry/dbus-service.ts) on its own, in this process, with a small object
// tree of its own on a private bus: what it answers when a reply cannot be sent, how it names system
// errors, on which connection replies go out, and what it does with an address that cannot work.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BusService, type BusLog, type InterfaceDef, type ObjectTree } from '../src/dbus/bus-service.js';
import { sleep, waitFor } from './helpers/run.js';
import { type Bus, busClient, startBus } from './helpers/dbus.js';

const NAME = 'io.mymachines.Test';
const PATH = '/io/mymachines/Test';
const IFACE = 'io.mymachines.Test';

/** Calls that wait until the test lets them answer, by key. */
const gates = new Map<string, () => void>();

const iface: InterfaceDef<null> = {
  name: IFACE,
  methods: {
    Echo: { in: 'text:s', out: 'text:s', call: (_t, _c, text: string) => [text] },
    /** Answers its key once the test opens the gate of that key. */
    Slow: { in: 'key:s', out: 'key:s', call: async (_t, _c, key: string) => (await new Promise<void>((r) => gates.set(key, r)), [key]) },
    /** A bug: a string where the signature says u. */
    BadReply: { in: '', out: 'n:u', call: () => ['not a number'] },
    /** A Node error with this code and errno escaping a method (errno 0: none, as Node's own errors). */
    Throw: {
      in: 'code:s errno:i',
      out: '',
      call: (_t, _c, code: string, errno: number) => {
        throw Object.assign(new Error(`${code}: something failed, stat '/x'`), { code, ...(errno ? { errno } : {}) });
      },
    },
  },
  properties: {},
  signals: {},
};

const tree: ObjectTree = {
  find: (path) => (path === PATH ? { target: null, interfaces: [iface] } : undefined),
  paths: () => [PATH],
  mapError: () => undefined,
};

function recordingLog(): BusLog & { lines: string[]; has(re: RegExp): boolean } {
  const lines: string[] = [];
  const rec = (level: string) => (o: object, msg: string) => void lines.push(`${level} ${msg} ${JSON.stringify(o)}`);
  return { lines, info: rec('info'), warn: rec('warn'), debug: rec('debug'), has: (re) => lines.some((l) => re.test(l)) };
}

let dir: string;
let bus: Bus;
let service: BusService;
let log: ReturnType<typeof recordingLog>;
let client: Awaited<ReturnType<typeof busClient>>;
const services: BusService[] = [];

async function serve(b: Bus | { address: string }, l = recordingLog()) {
  const s = new BusService({ address: b.address, name: NAME, tree, log: l });
  services.push(s);
  let acquired = 0;
  s.on('acquired', () => acquired++);
  s.start();
  return { s, log: l, acquired: () => acquired };
}

/** The reply body, or the error (a DBusError: .type is its name, .text its message). */
const call = (member: string, signature = '', body: unknown[] = []) => destinationCall(client, member, signature, body).catch((e) => e);
const destinationCall = async (c: Awaited<ReturnType<typeof busClient>>, member: string, signature: string, body: unknown[]) => {
  const dbus = (await import('dbus-next')).default;
  const reply = await c.conn.call(new dbus.Message({ destination: NAME, path: PATH, interface: IFACE, member, signature, body }));
  return reply!.body;
};

const uniqueName = (c: Awaited<ReturnType<typeof busClient>>) => (c.conn as unknown as { name: string }).name;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mymachines-dbus-service-'));
  chmodSync(dir, 0o755);
  bus = await startBus(join(dir, 'bus'), { policy: 'open' });
  const served = await serve(bus);
  service = served.s;
  log = served.log;
  await waitFor('the service on the bus', () => (service.isConnected && served.acquired() === 1 ? true : undefined));
  client = await busClient(bus);
});

after(async () => {
  for (const s of services) s.stop();
  client?.close();
  await bus?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('the service answers on its name', async () => {
  assert.deepEqual(await destinationCall(client, 'Echo', 's', ['hi']), ['hi']);
});

test('a reply that cannot be marshalled goes out as org.freedesktop.DBus.Error.Failed, not as silence', async () => {
  const e = await call('BadReply');
  assert.equal(e.type, 'org.freedesktop.DBus.Error.Failed');
  assert.match(e.text, /^Cannot send the reply to io\.mymachines\.Test\.BadReply\(\): /);
  assert.ok(log.has(/^warn D-Bus reply cannot be sent/));
  // The connection is fine afterwards.
  assert.deepEqual(await destinationCall(client, 'Echo', 's', ['still here']), ['still here']);
});

test('Node system errors are named as sd-bus names an errno, with their message', async () => {
  for (const [code, name] of [
    ['EBUSY', 'System.Error.EBUSY'],
    ['EISDIR', 'System.Error.EISDIR'],
    ['EACCES', 'org.freedesktop.DBus.Error.AccessDenied'],
    ['EPERM', 'org.freedesktop.DBus.Error.AccessDenied'],
    ['ENOENT', 'org.freedesktop.DBus.Error.FileNotFound'],
    ['EEXIST', 'org.freedesktop.DBus.Error.FileExists'],
    ['EINVAL', 'org.freedesktop.DBus.Error.InvalidArgs'],
    ['ESRCH', 'org.freedesktop.DBus.Error.UnixProcessIdUnknown'],
    ['ENOTSUP', 'org.freedesktop.DBus.Error.NotSupported'],
  ]) {
    const e = await call('Throw', 'si', [code, -(constants.errno as Record<string, number>)[code]]);
    assert.equal(e.type, name, code);
    assert.equal(e.text, `${code}: something failed, stat '/x'`);
  }
  // An errno libuv has no name for comes as UNKNOWN: it is named by its number.
  const quota = await call('Throw', 'si', ['UNKNOWN', -122]);
  assert.deepEqual([quota.type, quota.text], ['System.Error.EDQUOT', 'disk quota exceeded (EDQUOT)']);
  // Anything else is a bug: logged, and answered without its stack.
  const e = await call('Throw', 'si', ['ERR_SOMETHING', 0]);
  assert.equal(e.type, 'org.freedesktop.DBus.Error.Failed');
  assert.equal(e.text, 'Internal error');
});

test('a reply goes out on the connection its call came in on, never on the one after a reconnect', async () => {
  // A bus of its own: unique names there are predictable.
  const other = await startBus(join(dir, 'bus2'), { policy: 'open' });
  const served = await serve(other);
  try {
    await waitFor('the service on the second bus', () => (served.acquired() === 1 ? true : undefined));
    const a = await busClient(other);
    const aName = uniqueName(a);
    void destinationCall(a, 'Slow', 's', ['a']).catch(() => {}); // never answered: its bus goes away
    await waitFor('the call of A to arrive', () => (gates.has('a') ? true : undefined));
    // The bus restarts: the service reconnects, and unique names and serials start again.
    await other.stop();
    await other.start();
    await waitFor('the service back on the bus', () => (served.acquired() === 2 ? true : undefined), 10_000);
    const b = await busClient(other);
    try {
      assert.equal(uniqueName(b), aName, 'B has the unique name that A had, and its call the same serial');
      const answer = destinationCall(b, 'Slow', 's', ['b']);
      await waitFor('the call of B to arrive', () => (gates.has('b') ? true : undefined));
      // A's call ends now: its reply must not reach B as the answer to B's call.
      gates.get('a')!();
      await sleep(200);
      assert.ok(served.log.has(/^debug D-Bus reply dropped: its connection is gone/), served.log.lines.join('\n'));
      gates.get('b')!();
      assert.deepEqual(await answer, ['b']);
    } finally {
      a.close();
      b.close();
    }
  } finally {
    served.s.stop();
    await other.stop();
  }
});

test('an address that cannot work is warned about and tried again, never thrown', async () => {
  for (const address of ['garbage', 'unix:', `unix:path=${join(dir, 'nothing-here')}`]) {
    const served = await serve({ address });
    await waitFor(`the warning for ${address}`, () => (served.log.has(/^warn cannot reach the D-Bus bus; io\.mymachines\.Test is not served until it can be reached/) ? true : undefined));
    await waitFor(`a second try for ${address}`, () => (served.log.has(/^debug D-Bus still unreachable/) ? true : undefined), 3000);
    assert.equal(served.s.isConnected, false);
    served.s.stop();
  }
});
