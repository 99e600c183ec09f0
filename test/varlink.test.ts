// src/varlink over real Unix sockets: the protocol, its limits, peer credentials and socket file handling.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { VarlinkClient } from '../src/varlink/client.js';
import { VarlinkError, expectedMore } from '../src/varlink/errors.js';
import { describeInterface, t, validate, type InterfaceDef } from '../src/varlink/schema.js';
import { VarlinkServer, mapErrors, type CallContext, type VarlinkServerOptions } from '../src/varlink/server.js';

const tmp = fs.mkdtempSync(join(os.tmpdir(), 'varlink-test-'));
fs.chmodSync(tmp, 0o755); // the peer credentials test connects as uid 65534
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let socketCount = 0;
const socketPath = () => join(tmp, `s${++socketCount}`);

const TEST: InterfaceDef = {
  name: 'org.example.test',
  types: { Point: t.struct({ x: t.float, y: t.float }) },
  methods: {
    Echo: {
      in: {
        s: t.string, n: t.optional(t.int), tags: t.optional(t.array(t.string)),
        kind: t.optional(t.enum(['a', 'b'])), point: t.optional(t.ref('Point')), labels: t.optional(t.map(t.int)),
      },
      out: { s: t.string },
    },
    Count: { in: { n: t.int }, out: { i: t.int } },
    Sleep: { in: { ms: t.int }, out: { ms: t.int } },
    Record: { in: { v: t.int }, out: {} },
    Peer: { in: {}, out: { pid: t.int, uid: t.int, gid: t.int } },
    WaitAbort: { in: {}, out: {} },
    Flood: { in: {}, out: {} },
    Many: { in: { n: t.int }, out: {} },
    Fail: { in: {}, out: {} },
    Unserializable: { in: {}, out: {} },
    Unimplemented: { in: {}, out: {} },
  },
};

/** A server with the TEST interface on a fresh socket; closed when the test ends. */
async function startServer(t: TestContext, opts: Partial<VarlinkServerOptions> = {}) {
  const recorded: number[] = [];
  const warnings: string[] = [];
  const events = { aborted: [] as Promise<void>[], floodSent: 0 };
  const server = new VarlinkServer({
    vendor: 'Example', product: 'test', version: '1.0', url: 'https://example.org',
    log: { warn: (_o, msg) => warnings.push(msg), debug() {} },
    ...opts,
  });
  const whenAborted = (ctx: CallContext) => new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  server.addInterface(TEST, {
    Echo: (p) => p,
    Count: async (p: { n: number }, ctx) => {
      if (!ctx.more) throw expectedMore();
      for (let i = 0; i < p.n - 1; i++) ctx.notify({ i });
      return { i: p.n - 1 };
    },
    Sleep: async (p: { ms: number }) => {
      await sleep(p.ms);
      return { ms: p.ms };
    },
    Record: (p: { v: number }) => void recorded.push(p.v),
    Peer: (_p, ctx) => ctx.peer,
    WaitAbort: async (_p, ctx) => {
      const aborted = whenAborted(ctx);
      events.aborted.push(aborted);
      await aborted;
    },
    Flood: async (_p, ctx) => {
      const chunk = 'x'.repeat(64 * 1024);
      for (; events.floodSent < 200 && !ctx.signal.aborted; events.floodSent++) {
        ctx.notify({ chunk });
        await new Promise((resolve) => setImmediate(resolve));
      }
      events.aborted.push(whenAborted(ctx));
    },
    Many: async (p: { n: number }, ctx) => {
      const chunk = 'y'.repeat(8 * 1024);
      for (let i = 0; i < p.n; i++) {
        ctx.notify({ chunk });
        if (i % 16 === 15) await ctx.drain();
      }
    },
    Fail: () => { throw new Error('boom'); },
    Unserializable: () => ({ big: 10n }),
  });
  const path = socketPath();
  await server.listen(path);
  t.after(() => server.close());
  return { server, path, recorded, warnings, events };
}

async function client(t: TestContext, path: string): Promise<VarlinkClient> {
  const c = await VarlinkClient.connect(path);
  t.after(() => c.close());
  return c;
}

/** A connection that speaks raw bytes, to send what a well-behaved client would not. */
class Raw {
  readonly messages: unknown[] = [];
  readonly closed: Promise<void>;
  private buf = Buffer.alloc(0);
  private waiter?: () => void;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (let nul; (nul = this.buf.indexOf(0)) !== -1; this.buf = this.buf.subarray(nul + 1)) {
        this.messages.push(JSON.parse(this.buf.subarray(0, nul).toString()));
      }
      this.waiter?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', () => {
      resolve();
      this.waiter?.();
    }));
  }

  static async open(t: TestContext, path: string): Promise<Raw> {
    const socket = net.connect(path);
    t.after(() => socket.destroy());
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new Raw(socket);
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until `n` messages have arrived (or the connection closed) and returns them. */
  async received(n: number): Promise<unknown[]> {
    while (this.messages.length < n && !this.socket.closed) await new Promise<void>((r) => { this.waiter = r; });
    return this.messages;
  }
}

const msg = (o: object) => `${JSON.stringify(o)}\0`;

async function rejectsWith(p: Promise<unknown>, name: string, parameters: object) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof VarlinkError);
    assert.equal(err.name, name);
    assert.deepEqual(err.parameters, parameters);
    return true;
  });
}

/** Resolves when the peer closes `raw`, and fails the test if that takes longer than `ms`. */
async function closesWithin(raw: Raw, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    raw.closed,
    new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('connection not closed')), ms); }),
  ]);
  clearTimeout(timer);
}

test('describeInterface prints Varlink IDL', () => {
  const sample: InterfaceDef = {
    name: 'org.example.sample',
    doc: 'An example service.\nSecond line.',
    types: {
      Point: t.struct({ x: t.float, y: t.float }),
      Color: t.enum(['red', 'green', 'blue']),
      Empty: t.struct({}),
    },
    methods: {
      Find: {
        doc: 'Finds shapes.',
        in: {
          name: t.string, limit: t.optional(t.int), colors: t.array(t.ref('Color')), labels: t.map(t.string),
          origin: t.optional(t.ref('Point')), options: t.struct({ strict: t.bool, any: t.object }),
        },
        out: { points: t.array(t.ref('Point')), total: t.int },
      },
      Ping: { in: {}, out: {} },
    },
    errors: { NotFound: { name: t.string }, Busy: {} },
  };
  assert.equal(describeInterface(sample), `# An example service.
# Second line.
interface org.example.sample

type Point (
  x: float,
  y: float
)

type Color (red, green, blue)

type Empty ()

# Finds shapes.
method Find(name: string, limit: ?int, colors: []Color, labels: [string]string, origin: ?Point, options: (strict: bool, any: object)) -> (points: []Point, total: int)

method Ping() -> ()

error NotFound (name: string)

error Busy ()
`);
  assert.throws(() => describeInterface({ name: 'x.y', types: { Bad: t.string }, methods: {} }), /struct or an enum/);
  assert.throws(() => describeInterface({ name: 'x.y', methods: { M: { in: { p: t.ref('Nope') }, out: {} } } }), /unknown type Nope/);
});

test('validate names the first bad key', () => {
  const check = (params: Record<string, unknown>) => {
    try {
      validate(TEST, 'Echo', params);
      return undefined;
    } catch (err) {
      assert.ok(err instanceof VarlinkError);
      assert.equal(err.name, 'org.varlink.service.InvalidParameter');
      return (err.parameters as { parameter: string }).parameter;
    }
  };
  assert.equal(check({ s: 'x' }), undefined);
  assert.equal(check({ s: 'x', n: null, tags: null }), undefined);
  assert.equal(check({ s: 'x', n: -5, tags: ['a'], kind: 'b', point: { x: 1.5, y: 2 }, labels: { a: 1 } }), undefined);
  assert.equal(check({}), 's');
  assert.equal(check({ s: 1 }), 's');
  assert.equal(check({ s: 'x', n: 1.5 }), 'n');
  assert.equal(check({ s: 'x', n: 2 ** 53 }), 'n');
  assert.equal(check({ s: 'x', n: '1' }), 'n');
  assert.equal(check({ s: 'x', tags: ['a', 1] }), 'tags');
  assert.equal(check({ s: 'x', kind: 'c' }), 'kind');
  assert.equal(check({ s: 'x', point: { x: 1 } }), 'point');
  assert.equal(check({ s: 'x', point: { x: 1, y: 2, z: 3 } }), 'point');
  assert.equal(check({ s: 'x', labels: { a: 'one' } }), 'labels');
  assert.equal(check({ s: 'x', labels: [] }), 'labels');
  // Keys in the order sent, missing ones after them.
  assert.equal(check({ n: 1.5, bogus: 1 }), 'n');
  assert.equal(check({ bogus: 1 }), 'bogus');
  assert.equal(check(JSON.parse('{"s":"x","__proto__":1}')), '__proto__');
});

test('GetInfo and GetInterfaceDescription', async (t) => {
  const { path } = await startServer(t);
  const c = await client(t, path);
  assert.deepEqual(await c.call('org.varlink.service.GetInfo'), {
    vendor: 'Example', product: 'test', version: '1.0', url: 'https://example.org',
    interfaces: ['org.varlink.service', 'org.example.test'],
  });
  assert.deepEqual(await c.call('org.varlink.service.GetInterfaceDescription', { interface: 'org.example.test' }),
    { description: describeInterface(TEST) });
  const { description } = await c.call('org.varlink.service.GetInterfaceDescription', { interface: 'org.varlink.service' });
  assert.equal(description, `# The Varlink Service Interface is provided by every varlink service. It
# describes the service and the interfaces it implements.
interface org.varlink.service

# Get a list of all the interfaces a service provides and information
# about the implementation.
method GetInfo() -> (vendor: string, product: string, version: string, url: string, interfaces: []string)

# Get the description of an interface that is implemented by this service.
method GetInterfaceDescription(interface: string) -> (description: string)

error InterfaceNotFound (interface: string)

error MethodNotFound (method: string)

error MethodNotImplemented (method: string)

error InvalidParameter (parameter: string)

error PermissionDenied ()

error ExpectedMore ()
`);
  await rejectsWith(c.call('org.varlink.service.GetInterfaceDescription', { interface: 'org.nope' }),
    'org.varlink.service.InterfaceNotFound', { interface: 'org.nope' });
  await rejectsWith(c.call('org.varlink.service.GetInfo', { extra: 1 }),
    'org.varlink.service.InvalidParameter', { parameter: 'extra' });
});

test('parameters are validated before the handler runs', async (t) => {
  const { path, recorded } = await startServer(t);
  const c = await client(t, path);
  const invalid = (parameter: string) => ['org.varlink.service.InvalidParameter', { parameter }] as const;
  await rejectsWith(c.call('org.example.test.Echo', {}), ...invalid('s'));
  await rejectsWith(c.call('org.example.test.Echo', { s: 'x', bogus: true }), ...invalid('bogus'));
  await rejectsWith(c.call('org.example.test.Echo', { s: 42 }), ...invalid('s'));
  await rejectsWith(c.call('org.example.test.Echo', { s: 'x', n: 1.5 }), ...invalid('n'));
  await rejectsWith(c.call('org.example.test.Record', { v: 0.25 }), ...invalid('v'));
  assert.deepEqual(recorded, []);
  // Optional keys given as null reach the handler as absent.
  assert.deepEqual(await c.call('org.example.test.Echo', { s: 'x', n: null, kind: 'a' }), { s: 'x', kind: 'a' });
});

test('unknown interfaces and methods, unimplemented methods, handler failures', async (t) => {
  const { path, warnings } = await startServer(t);
  const c = await client(t, path);
  await rejectsWith(c.call('org.nope.Method'), 'org.varlink.service.InterfaceNotFound', { interface: 'org.nope' });
  await rejectsWith(c.call('NoDot'), 'org.varlink.service.InterfaceNotFound', { interface: '' });
  await rejectsWith(c.call('org.example.test.Nope'), 'org.varlink.service.MethodNotFound', { method: 'org.example.test.Nope' });
  await rejectsWith(c.call('org.example.test.constructor'), 'org.varlink.service.MethodNotFound',
    { method: 'org.example.test.constructor' });
  await rejectsWith(c.call('org.example.test.Unimplemented'), 'org.varlink.service.MethodNotImplemented',
    { method: 'org.example.test.Unimplemented' });
  await rejectsWith(c.call('org.example.test.Fail'), 'io.mymachines.InternalError', {});
  await rejectsWith(c.call('org.example.test.Unserializable'), 'io.mymachines.InternalError', {});
  assert.deepEqual(warnings, ['varlink handler failed', 'varlink reply cannot be serialized']);
  assert.deepEqual(await c.call('org.example.test.Echo', { s: 'still here' }), { s: 'still here' });
});

test('more: replies carry continues except the last', async (t) => {
  const { path } = await startServer(t);
  const raw = await Raw.open(t, path);
  raw.send(msg({ method: 'org.example.test.Count', parameters: { n: 3 }, more: true }));
  assert.deepEqual(await raw.received(3), [
    { parameters: { i: 0 }, continues: true },
    { parameters: { i: 1 }, continues: true },
    { parameters: { i: 2 } },
  ]);
  const c = await client(t, path);
  const got = [];
  for await (const r of c.callMore('org.example.test.Count', { n: 4 })) got.push(r);
  assert.deepEqual(got, [{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }]);
  // A method that wants `more` may refuse a plain call; one that does not ignores `more`.
  await rejectsWith(c.call('org.example.test.Count', { n: 2 }), 'org.varlink.service.ExpectedMore', {});
  const echoed = [];
  for await (const r of c.callMore('org.example.test.Echo', { s: 'once' })) echoed.push(r);
  assert.deepEqual(echoed, [{ s: 'once' }]);
  await assert.rejects(async () => {
    for await (const _ of c.callMore('org.example.test.Nope')) assert.fail('no reply expected');
  }, { name: 'org.varlink.service.MethodNotFound' });
});

test('oneway calls get no reply, not even an error', async (t) => {
  const { path, recorded } = await startServer(t);
  const raw = await Raw.open(t, path);
  raw.send(msg({ method: 'org.example.test.Record', parameters: { v: 1 }, oneway: true }));
  raw.send(msg({ method: 'org.example.test.Nope', oneway: true }));
  raw.send(msg({ method: 'org.example.test.Echo', parameters: { s: 'after' } }));
  assert.deepEqual(await raw.received(1), [{ parameters: { s: 'after' } }]);
  assert.deepEqual(recorded, [1]);
  // A oneway call followed at once by a hang-up is still carried out.
  const c = await VarlinkClient.connect(path);
  await c.oneway('org.example.test.Record', { v: 2 });
  await c.oneway('org.example.test.Record', { v: 3 });
  await c.close();
  for (let i = 0; i < 50 && recorded.length < 3; i++) await sleep(10);
  assert.deepEqual(recorded, [1, 2, 3]);
});

test('pipelined requests are answered in order', async (t) => {
  const { path } = await startServer(t);
  const raw = await Raw.open(t, path);
  raw.send(msg({ method: 'org.example.test.Sleep', parameters: { ms: 80 } }) +
    msg({ method: 'org.example.test.Echo', parameters: { s: 'fast' } }) +
    msg({ method: 'org.example.test.Sleep', parameters: { ms: 0 } }));
  assert.deepEqual(await raw.received(3),
    [{ parameters: { ms: 80 } }, { parameters: { s: 'fast' } }, { parameters: { ms: 0 } }]);

  const c = await client(t, path);
  const order: string[] = [];
  await Promise.all([
    c.call('org.example.test.Sleep', { ms: 50 }).then(() => order.push('slow')),
    c.call('org.example.test.Echo', { s: 'x' }).then(() => order.push('fast')),
  ]);
  assert.deepEqual(order, ['slow', 'fast']);
});

test('many pipelined requests beyond the input limit are all answered, in order', async (t) => {
  const { path } = await startServer(t, { maxMessageBytes: 1024 });
  const raw = await Raw.open(t, path);
  const n = 2000;
  raw.send(Array.from({ length: n }, (_, i) => msg({ method: 'org.example.test.Echo', parameters: { s: String(i) } })).join(''));
  const replies = await raw.received(n);
  assert.deepEqual(replies, Array.from({ length: n }, (_, i) => ({ parameters: { s: String(i) } })));
});

test('protocol errors and garbage get a named error saying what is wrong, then the connection is closed', async (t) => {
  const { path, warnings } = await startServer(t);
  const bad: [string | Buffer, string][] = [
    [msg({ method: 'org.example.test.Echo', parameters: { s: 'x' }, extra: 1 }), "unknown key 'extra' in the request"],
    [msg({ method: 5 }), "the request's method is not a string"],
    [msg({}), "the request's method is not a string"],
    [msg({ method: 'org.example.test.Echo', parameters: null }), "the request's parameters are not an object"],
    [msg({ method: 'org.example.test.Echo', parameters: ['s'] }), "the request's parameters are not an object"],
    [msg({ method: 'org.example.test.Echo', oneway: 'yes' }), "the request's oneway and more must be booleans"],
    [msg({ method: 'org.example.test.Echo', more: 1 }), "the request's oneway and more must be booleans"],
    [msg({ method: 'org.example.test.Record', parameters: { v: 1 }, oneway: true, more: true }), 'a request cannot be both oneway and more'],
    ['not json\0', 'the message is not JSON text in UTF-8'],
    ['[1,2]\0', 'the message is not a JSON object'],
    ['"string"\0', 'the message is not a JSON object'],
    ['null\0', 'the message is not a JSON object'],
    [Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0]), 'the message is not JSON text in UTF-8'], // invalid UTF-8
    [`${'['.repeat(60000)}${']'.repeat(60000)}\0`, 'the message is not a JSON object'],
    [Buffer.alloc(200000), 'the message is not JSON text in UTF-8'], // NUL flood: empty messages
  ];
  for (const [data, message] of bad) {
    const raw = await Raw.open(t, path);
    raw.send(data);
    await closesWithin(raw, 2000);
    assert.deepEqual(raw.messages, [{ error: 'io.mymachines.ProtocolError', parameters: { message } }], `the reply to ${String(data).slice(0, 60)}`);
  }
  const c = await client(t, path);
  assert.equal((await c.call('org.varlink.service.GetInfo')).product, 'test');
  // Logged once for the first of a cause, then every 100th: a flood does not flood the log.
  assert.equal(warnings.filter((w) => w === 'varlink: connection closed: protocol error').length, 1);
});

test('an oversized message gets a named error, then the connection is closed', async (t) => {
  const { path } = await startServer(t, { maxMessageBytes: 1024 });
  const big = (len: number) => msg({ method: 'org.example.test.Echo', parameters: { s: 'x'.repeat(len) } });
  const ok = await Raw.open(t, path);
  ok.send(big(900));
  assert.equal((await ok.received(1)).length, 1);
  const tooLong = [{ error: 'io.mymachines.ProtocolError', parameters: { message: 'the message is longer than 1024 bytes' } }];

  const unterminated = await Raw.open(t, path);
  unterminated.send('{"method":"org.example.test.Echo","parameters":{"s":"' + 'x'.repeat(2000));
  await closesWithin(unterminated, 2000);
  assert.deepEqual(unterminated.messages, tooLong);

  const terminated = await Raw.open(t, path);
  terminated.send(big(2000));
  await closesWithin(terminated, 2000);
  assert.deepEqual(terminated.messages, tooLong);
});

test('a stalled partial message is dropped while other clients are served', async (t) => {
  const { path } = await startServer(t, { partialTimeoutMs: 300 });
  const idle = await Raw.open(t, path);
  const stalled = await Raw.open(t, path);
  const started = Date.now();
  stalled.send('{"method":"org.example.test.Ec');
  let closedAt = 0;
  void stalled.closed.then(() => { closedAt = Date.now(); });
  const c = await client(t, path);
  let served = 0;
  while (!closedAt && Date.now() - started < 3000) {
    assert.deepEqual(await c.call('org.example.test.Echo', { s: 'busy' }), { s: 'busy' });
    served++;
    await sleep(20);
  }
  assert.ok(closedAt, 'stalled connection closed');
  assert.deepEqual(stalled.messages, [{ error: 'io.mymachines.ProtocolError', parameters: { message: 'no complete message within 0.3 s' } }]);
  assert.ok(closedAt - started >= 250, `closed after ${closedAt - started} ms`);
  assert.ok(served > 3);
  // A connection without a partial message is kept, however long it is idle.
  await sleep(200);
  assert.equal(idle.socket.closed, false);
  idle.send(msg({ method: 'org.example.test.Echo', parameters: { s: 'idle' } }));
  assert.deepEqual(await idle.received(1), [{ parameters: { s: 'idle' } }]);
});

test('connections per UID are capped: the least recently used idle one makes room, busy ones do not', async (t) => {
  const { path } = await startServer(t, { maxConnectionsPerUid: 2 });
  const first = await Raw.open(t, path);
  const second = await Raw.open(t, path);
  first.send(msg({ method: 'org.varlink.service.GetInfo' }));
  await first.received(1);
  second.send(msg({ method: 'org.varlink.service.GetInfo' }));
  await second.received(1);
  // Both idle: the third closes the first (used least recently) and is served.
  const third = await client(t, path);
  assert.equal((await third.call('org.varlink.service.GetInfo')).product, 'test');
  await closesWithin(first, 2000);
  assert.equal(second.socket.closed, false);
  // Both busy (a call each in progress): a fourth is refused and nobody is closed.
  second.send(msg({ method: 'org.example.test.WaitAbort' }));
  const busy = third.call('org.example.test.WaitAbort').catch(() => {});
  await sleep(50);
  const fourth = await Raw.open(t, path);
  fourth.send(msg({ method: 'org.varlink.service.GetInfo' }));
  await closesWithin(fourth, 2000);
  assert.deepEqual(fourth.messages, []);
  assert.equal(second.socket.closed, false);
  third.close();
  await busy;
});

test('an idle connection is closed after the idle timeout; one with a call in progress is not', async (t) => {
  const { path } = await startServer(t, { idleTimeoutMs: 300 });
  const idle = await Raw.open(t, path);
  idle.send(msg({ method: 'org.varlink.service.GetInfo' }));
  await idle.received(1);
  const busy = await Raw.open(t, path);
  busy.send(msg({ method: 'org.example.test.WaitAbort' }));
  const started = Date.now();
  await closesWithin(idle, 2000);
  assert.ok(Date.now() - started >= 250, 'closed before the timeout');
  await sleep(400);
  assert.equal(busy.socket.closed, false);
});

test('a listener may serve only some interfaces', async (t) => {
  const { server } = await startServer(t);
  const only = socketPath();
  await server.listen(only, 0o666, []);
  const c = await client(t, only);
  assert.deepEqual((await c.call('org.varlink.service.GetInfo')).interfaces, ['org.varlink.service']);
  await rejectsWith(c.call('org.example.test.Echo', { s: 'x' }), 'org.varlink.service.InterfaceNotFound', { interface: 'org.example.test' });
  await rejectsWith(c.call('org.varlink.service.GetInterfaceDescription', { interface: 'org.example.test' }),
    'org.varlink.service.InterfaceNotFound', { interface: 'org.example.test' });
  await assert.rejects(server.listen(socketPath(), 0o666, ['org.example.nope']), /unknown interface/);
});

test("mapErrors: a handler's thrown and rejected errors are mapped; an answer at once stays one", async () => {
  const mapped = (e: unknown) => new VarlinkError('org.example.test.Mapped', { was: (e as Error).message });
  const h = mapErrors({
    Now: () => ({ at: 'once' }),
    Throws: () => {
      throw new Error('sync');
    },
    Rejects: async () => {
      throw new Error('async');
    },
    Later: async () => ({ at: 'later' }),
  }, mapped);
  const ctx = {} as CallContext;
  assert.deepEqual(h.Now({}, ctx), { at: 'once' });
  assert.throws(() => h.Throws({}, ctx), { name: 'org.example.test.Mapped', parameters: { was: 'sync' } });
  await assert.rejects(h.Rejects({}, ctx) as Promise<object>, { name: 'org.example.test.Mapped', parameters: { was: 'async' } });
  assert.deepEqual(await h.Later({}, ctx), { at: 'later' });
});

test('a handler that sends many replies waits for a slow reader instead of cutting it off', async (t) => {
  const { path } = await startServer(t, { maxOutputBytes: 256 * 1024 });
  const raw = await Raw.open(t, path);
  raw.socket.pause(); // reads nothing for a while: 100 replies of 8 KiB are far over the 256 KiB cap
  raw.send(msg({ method: 'org.example.test.Many', parameters: { n: 100 }, more: true }));
  await sleep(300);
  assert.equal(raw.socket.closed, false);
  raw.socket.resume();
  const got = await raw.received(101);
  assert.equal(got.length, 101);
  assert.deepEqual(got[100], { parameters: {} });
});

test('peer credentials of a process running as uid 65534', { skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
  const { path } = await startServer(t);
  const script = `
    const s = require('net').connect(process.argv[1]);
    let buf = '';
    s.on('data', (d) => { buf += d; if (buf.includes('\\0')) { process.stdout.write(buf.split('\\0')[0]); s.end(); } });
    s.write(JSON.stringify({ method: 'org.example.test.Peer' }) + '\\0');`;
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, '-e', script, path],
      { timeout: 10000 }, (err, out) => (err ? reject(err) : resolve(out)));
  });
  const { parameters } = JSON.parse(stdout);
  assert.equal(parameters.uid, 65534);
  assert.equal(parameters.gid, 65534);
  assert.ok(Number.isInteger(parameters.pid) && parameters.pid > 0 && parameters.pid !== process.pid);
  const c = await client(t, path);
  assert.deepEqual(await c.call('org.example.test.Peer'), { pid: process.pid, uid: 0, gid: 0 });
});

test('a client that goes away mid-call: the call is aborted, nothing breaks', async (t) => {
  const { path, events } = await startServer(t);
  const raw = await Raw.open(t, path);
  raw.send(msg({ method: 'org.example.test.WaitAbort' }) + msg({ method: 'org.example.test.Echo', parameters: { s: 'x' } }));
  while (!events.aborted.length) await sleep(5);
  raw.socket.destroy();
  await events.aborted[0]; // the test times out if the signal is never aborted
  const c = await client(t, path);
  assert.deepEqual(await c.call('org.example.test.Echo', { s: 'alive' }), { s: 'alive' });
});

test('a client that does not read its replies is disconnected', async (t) => {
  const { path, events } = await startServer(t, { maxOutputBytes: 256 * 1024 });
  const raw = await Raw.open(t, path);
  raw.socket.pause();
  raw.send(msg({ method: 'org.example.test.Flood', more: true }));
  while (!events.aborted.length) await sleep(10);
  await events.aborted[0];
  assert.ok(events.floodSent < 200, `sent ${events.floodSent} chunks`);
  raw.socket.resume();
  await closesWithin(raw, 2000);
});

test('listen() refuses a live socket and takes over a stale one', async (t) => {
  const { path } = await startServer(t);
  const rival = new VarlinkServer({ vendor: 'v', product: 'rival', version: '1', url: 'u' });
  t.after(() => rival.close());
  await assert.rejects(rival.listen(path), { code: 'EADDRINUSE' });
  const c = await client(t, path);
  assert.equal((await c.call('org.varlink.service.GetInfo')).product, 'test');

  // A server killed with SIGKILL leaves its socket file behind.
  const stale = socketPath();
  const child = spawn(process.execPath,
    ['-e', 'require("net").createServer().listen(process.argv[1], () => console.log("up"))', stale]);
  t.after(() => child.kill('SIGKILL'));
  await new Promise((resolve) => child.stdout.once('data', resolve));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  assert.ok(fs.statSync(stale).isSocket());
  await rival.listen(stale);
  const c2 = await client(t, stale);
  assert.equal((await c2.call('org.varlink.service.GetInfo')).product, 'rival');

  // Anything but a socket is left alone.
  const file = socketPath();
  fs.writeFileSync(file, 'data');
  await assert.rejects(rival.listen(file), { code: 'EEXIST' });
  assert.equal(fs.readFileSync(file, 'utf8'), 'data');
});

test('listen() creates the directory and sets the mode', async (t) => {
  const server = new VarlinkServer({ vendor: 'v', product: 'p', version: '1', url: 'u' });
  t.after(() => server.close());
  const dir = join(tmp, 'deep', 'er');
  await server.listen(join(dir, 'public'));
  await server.listen(join(dir, 'private'), 0o600);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o755);
  assert.equal(fs.statSync(join(dir, 'public')).mode & 0o777, 0o666);
  assert.equal(fs.statSync(join(dir, 'private')).mode & 0o777, 0o600);
  const c = await client(t, join(dir, 'private'));
  assert.equal((await c.call('org.varlink.service.GetInfo')).product, 'p');
});

test('close() finishes calls in flight, aborts waiting ones and unlinks its sockets', async (t) => {
  const { server, path, events } = await startServer(t);
  const second = socketPath();
  await server.listen(second);
  const c = await client(t, path);
  const idle = await Raw.open(t, second);
  const slow = c.call('org.example.test.Sleep', { ms: 200 });
  const waiting = await client(t, path);
  const waited = waiting.call('org.example.test.WaitAbort');
  while (!events.aborted.length) await sleep(5);
  const started = Date.now();
  await server.close();
  assert.deepEqual(await slow, { ms: 200 });
  assert.deepEqual(await waited, {});
  assert.ok(Date.now() - started < 2000, 'close() did not wait out its grace period');
  assert.equal(fs.existsSync(path), false);
  assert.equal(fs.existsSync(second), false);
  await closesWithin(idle, 1000);
  await assert.rejects(c.call('org.varlink.service.GetInfo'), { code: 'ECONNRESET' });
  await server.close(); // a second close() is harmless
  await assert.rejects(VarlinkClient.connect(path), { code: 'ENOENT' });
});

// File descriptors with replies (SCM_RIGHTS), as sd-varlink passes them: each lands with its own reply,
// in order with the replies before and after it, and none stays open in the server.
const FDS: InterfaceDef = {
  name: 'org.example.fds',
  methods: {
    Open: { in: { text: t.string, n: t.optional(t.int) }, out: { fileDescriptor: t.int, more: t.optional(t.array(t.int)) } },
    Stream: { in: { n: t.int }, out: { i: t.int, fileDescriptor: t.optional(t.int) } },
    Big: { in: { bytes: t.int }, out: { data: t.string } },
    OpenThenFail: { in: {}, out: {} },
  },
};

/** A descriptor of a file that holds `text` (already unlinked). */
function pipeWith(text: string): number {
  const dir = fs.mkdtempSync(join(tmp, 'fd-'));
  const path = join(dir, 'f');
  fs.writeFileSync(path, text);
  const fd = fs.openSync(path, 'r');
  fs.rmSync(dir, { recursive: true });
  return fd;
}

const openFds = () => fs.readdirSync('/proc/self/fd').length;

test('descriptors pass with replies: by index, in order among other replies, closed in the server', async (t) => {
  const server = new VarlinkServer({ vendor: 'Example', product: 'fds', version: '1', url: '' });
  server.addInterface(FDS, {
    Open: (p: { text: string; n?: number }, ctx) => {
      const fileDescriptor = ctx.pushFd(pipeWith(p.text));
      const more = Array.from({ length: p.n ?? 0 }, (_, i) => ctx.pushFd(pipeWith(`${p.text}${i}`)));
      return p.n ? { fileDescriptor, more } : { fileDescriptor };
    },
    Stream: async (p: { n: number }, ctx) => {
      for (let i = 0; i < p.n; i++) {
        // Every other reply carries a descriptor naming its number.
        if (i % 2) ctx.notify({ i, fileDescriptor: ctx.pushFd(pipeWith(String(i))) });
        else ctx.notify({ i });
      }
      return { i: p.n };
    },
    Big: (p: { bytes: number }) => ({ data: 'x'.repeat(p.bytes) }),
    OpenThenFail: (_p, ctx) => {
      ctx.pushFd(pipeWith('never'));
      throw new VarlinkError('org.example.fds.Failed');
    },
  });
  const path = socketPath();
  await server.listen(path);
  t.after(() => server.close());
  const base = openFds();
  const c = await VarlinkClient.connect(path, { acceptFds: true });
  const read = (fd: number) => {
    try {
      return fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  };
  const one = await c.callWithFds('org.example.fds.Open', { text: 'hello' });
  assert.deepEqual(one.parameters, { fileDescriptor: 0 });
  assert.equal(one.fds.length, 1);
  assert.equal(read(one.fds[0]), 'hello');
  // Several with one reply, in the order pushed.
  const three = await c.callWithFds('org.example.fds.Open', { text: 'm', n: 2 });
  assert.deepEqual(three.parameters, { fileDescriptor: 0, more: [1, 2] });
  assert.deepEqual(three.fds.map(read), ['m', 'm0', 'm1']);
  // Pipelined behind a large reply that is still leaving: each descriptor comes with its own reply.
  const big = c.callWithFds('org.example.fds.Big', { bytes: 3_000_000 });
  const after1 = c.callWithFds('org.example.fds.Open', { text: 'after big' });
  const after2 = c.callWithFds('org.example.fds.Big', { bytes: 10 });
  assert.equal((await big).fds.length, 0);
  assert.equal((await big).parameters.data.length, 3_000_000);
  const a1 = await after1;
  assert.equal(read(a1.fds[0]), 'after big');
  assert.deepEqual((await after2).fds, []);
  // A `more` call: the descriptors of the odd replies, none with the even ones (callMore closes what it gets).
  const stream = await VarlinkClient.connect(path, { acceptFds: true });
  const seen: number[] = [];
  for await (const r of stream.callMore('org.example.fds.Stream', { n: 6 })) seen.push(r.i);
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6]);
  await stream.close();
  // An error reply carries none: the descriptor pushed before the error is closed.
  await assert.rejects(c.call('org.example.fds.OpenThenFail'), { name: 'org.example.fds.Failed' });
  // A client that does not take descriptors still gets its reply (the kernel drops them).
  const plain = await VarlinkClient.connect(path);
  assert.deepEqual(await plain.call('org.example.fds.Open', { text: 'dropped' }), { fileDescriptor: 0 });
  await plain.close();
  await c.close();
  await sleep(100);
  assert.equal(openFds(), base, 'no descriptor stays open, in the server or in the client');
});
