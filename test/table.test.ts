// The lookup table (src/table) against the daemon's own Varlink methods, which other clients
// (nss-systemd, userdbctl, resolved-style callers) keep using: on many random machines, every entry
// point of our NSS module (called directly, test/helpers/nss-query.c) gives what io.systemd.Resolve and
// io.systemd.UserDatabase give, also after many changes (which the table publishes as deltas, merged
// deltas and rebuilt bases). Then the table's write errors: a full, read-only or removed runtime
// directory gives the caller of a change a named error, leaves no temporary file, and the daemon
// serves on and recovers. Addresses: 10.201.0.0/16, 169.254.201.0/24, fd77:201::/64.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { VarlinkClient } from '../src/varlink/client.js';
import { VarlinkError } from '../src/varlink/errors.js';
import { makeContainer, removeAllContainers } from './helpers/container.js';
import { ROOT, startDaemon, type Daemon } from './helpers/daemon.js';
import { MODULE, makeNssEnv, type NssEnv } from './helpers/nss-env.js';
import { must, run, waitFor } from './helpers/run.js';
import { sleepingLeaders } from './helpers/leaders.js';

const SERVICE = 'io.systemd.Machine';

/** A small deterministic random generator (mulberry32): a failure says its seed. */
function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { int: (n: number) => Math.floor(next() * n), chance: (p: number) => next() < p };
}

/** Our module, asked directly: one process, a query a line, an answer a line. */
class Module {
  private readonly p: ChildProcess;
  private readonly lines: string[] = [];
  private waiting: (() => void) | undefined;

  constructor(program: string, socket: string) {
    this.p = spawn(program, [MODULE], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, MYMACHINES_SOCKET: socket } });
    createInterface({ input: this.p.stdout! }).on('line', (l) => {
      this.lines.push(l);
      this.waiting?.();
    });
  }

  async ask(queries: string[]): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < queries.length; i += 500) {
      const chunk = queries.slice(i, i + 500);
      this.p.stdin!.write(chunk.join('\n') + '\n');
      const deadline = Date.now() + 30_000;
      while (this.lines.length < chunk.length) {
        if (Date.now() > deadline || this.p.exitCode !== null) throw new Error(`nss-query gave ${this.lines.length} of ${chunk.length} answers (exit ${this.p.exitCode})`);
        await new Promise<void>((r) => {
          this.waiting = r;
          setTimeout(r, 1000);
        });
      }
      out.push(...this.lines.splice(0, chunk.length));
    }
    return out;
  }

  close(): void {
    this.p.stdin!.end();
  }
}

const hex = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
const addr = (family: number, bytes: number[]) => `${family === 2 ? 4 : 6}:${hex(bytes)}`;
const linkLocal6 = (family: number, bytes: number[]) => family === 10 && bytes[0] === 0xfe && (bytes[1] & 0xc0) === 0x80;

/** What the module must answer, from the daemon's Varlink methods. */
async function expected(c: VarlinkClient, query: string): Promise<string> {
  const [what, arg, af] = query.split(' ');
  const call = async (method: string, params: object) => {
    try {
      return await c.call(method, params);
    } catch (e) {
      if (e instanceof VarlinkError) return { error: e.name };
      throw e;
    }
  };
  if (what === 'h4' || what === 'h3') {
    const family = what === 'h4' ? undefined : af === '6' ? 10 : 2;
    const r = await call('io.systemd.Resolve.ResolveHostname', family ? { name: arg, family } : { name: arg });
    if (r.error) return 'NOTFOUND';
    const list = (r.addresses as { family: number; address: number[]; ifindex?: number }[]).filter((a) => what === 'h4' || !linkLocal6(a.family, a.address));
    if (list.length === 0) return 'NOTFOUND';
    return `OK ${r.name} ${list.map((a) => addr(a.family, a.address) + (what === 'h4' && a.ifindex ? `%${a.ifindex}` : '')).join(' ')}`;
  }
  if (what === 'a') {
    const family = arg[0] === '4' ? 2 : 10;
    const bytes = arg.slice(2).match(/../g)!.map((h) => parseInt(h, 16));
    const r = await call('io.systemd.Resolve.ResolveAddress', { family, address: bytes });
    return r.error ? 'NOTFOUND' : `OK ${(r.names as { name: string }[]).map((n) => n.name).join(' ')}`;
  }
  const user = what[0] === 'p';
  const byName = what[1] === 'n';
  const params = byName ? { [user ? 'userName' : 'groupName']: arg } : { [user ? 'uid' : 'gid']: Number(arg) };
  const r = await call(`io.systemd.UserDatabase.${user ? 'GetUserRecord' : 'GetGroupRecord'}`, { ...params, service: SERVICE });
  if (r.error) return 'NOTFOUND';
  const x = r.record;
  return user ? `OK ${x.userName}:x:${x.uid}:${x.gid}:${x.realName}:${x.homeDirectory}:${x.shell}` : `OK ${x.groupName}:x:${x.gid}:`;
}

interface Vm {
  name: string;
  addresses: string[];
  ifIndices: number[];
}

describe('the lookup table agrees with io.systemd.Resolve and io.systemd.UserDatabase', () => {
  let d: Daemon;
  let client: VarlinkClient;
  let module: Module;
  let leaders: Awaited<ReturnType<typeof sleepingLeaders>>;
  let work: string;

  before(async () => {
    d = await startDaemon({ args: ['--log-level', 'info'] });
    client = await VarlinkClient.connect(d.socket);
    leaders = await sleepingLeaders(2200);
    work = mkdtempSync(join(tmpdir(), 'mymachines-table-test-'));
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', join(ROOT, 'test/helpers/nss-query.c'), '-ldl', '-o', join(work, 'nss-query')]);
    module = new Module(join(work, 'nss-query'), d.socket);
  });
  after(async () => {
    module?.close();
    client?.close();
    await removeAllContainers();
    await leaders?.stop();
    await d?.stop();
    d?.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('on 1,500 random VMs and 10 random containers, after registration and after many changes', { timeout: 300_000 }, async (t) => {
    const seed = Number(process.env.TABLE_TEST_SEED ?? Date.now() % 1_000_000);
    t.diagnostic(`seed ${seed} (TABLE_TEST_SEED=${seed} repeats this run)`);
    const rnd = random(seed);
    const taken = new Set<string>();
    const label = () => {
      const n = 1 + rnd.int(8);
      let s = 'abcdefghijklmnopqrstuvwxyz'[rnd.int(26)];
      for (let i = 1; i < n; i++) s += rnd.chance(0.1) && i < n - 1 ? '-' : 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'[rnd.int(62)];
      return s;
    };
    /** A name no machine has yet, ignoring case (the registry refuses a clash); with a dot now and then. */
    const name = (dots = true) => {
      for (;;) {
        const n = dots && rnd.chance(0.1) ? `${label()}.${label()}` : label();
        if (!taken.has(n.toLowerCase())) {
          taken.add(n.toLowerCase());
          return n;
        }
      }
    };
    const vm = (): Vm => {
      const ifIndices = rnd.chance(0.3) ? [2 + rnd.int(4)] : rnd.chance(0.1) ? [2, 3] : [];
      const addresses = new Set<string>();
      for (let i = rnd.int(4); i > 0; i--) {
        const k = rnd.int(10);
        if (k < 5) addresses.add(`10.201.${rnd.int(4)}.${1 + rnd.int(250)}`); // shared now and then
        else if (k < 8) addresses.add(`fd77:201::${(1 + rnd.int(1000)).toString(16)}`);
        else if (ifIndices.length === 1) addresses.add(k === 8 ? `fe80::${(1 + rnd.int(300)).toString(16)}` : `169.254.201.${1 + rnd.int(250)}`);
      }
      return { name: name(), addresses: [...addresses], ifIndices };
    };
    const pids = [...leaders.pids];
    const register = async (m: Vm) => {
      await client.call(`${SERVICE}.Register`, { name: m.name, class: 'vm', leader: pids.pop(), addresses: m.addresses, ifIndices: m.ifIndices });
    };
    const vms: Vm[] = [];
    for (let i = 0; i < 1500; i++) {
      const m = vm();
      vms.push(m);
      await register(m);
    }
    // Containers with user namespaces: maps of one or two lines, ranges that sometimes overlap.
    const containers: { name: string; lines: { base: number; shift: number; range: number }[] }[] = [];
    for (let i = 0; i < 10; i++) {
      const shift = 0x100000 + 0x10000 * rnd.int(12);
      const range = rnd.chance(0.5) ? 65536 : 1 + rnd.int(5000);
      const lines = rnd.chance(0.3) ? [{ base: 0, shift, range: 1000 }, { base: 1000, shift: shift + 0x30000, range: 1000 }] : [{ base: 0, shift, range }];
      const c = await makeContainer({ idMap: lines, hostNetwork: true });
      // No dot: vu-/vg- names with one are not synthesized.
      const n = name(false);
      await client.call(`${SERVICE}.Register`, { name: n, class: 'container', leader: c.pid });
      containers.push({ name: n, lines });
    }

    const queries = () => {
      const q: string[] = [];
      const caseOf = (n: string) => (rnd.chance(0.5) ? n : n.toUpperCase());
      for (const m of vms) {
        q.push(`h4 ${caseOf(m.name)}`, `h3 ${m.name} 4`, `h3 ${caseOf(m.name)} 6`);
      }
      for (const text of new Set(vms.flatMap((m) => m.addresses))) {
        const v4 = !text.includes(':');
        const bytes = v4 ? text.split('.').map(Number) : ipv6Bytes(text);
        q.push(`a ${addr(v4 ? 2 : 10, bytes)}`);
      }
      for (let i = 0; i < 50; i++) q.push(`h4 nomachine${i}`, `a 4:0ac9${hex([rnd.int(256), rnd.int(256)])}`);
      for (const c of containers) {
        for (const l of c.lines) {
          for (const inner of [l.base, l.base + l.range - 1, l.base + l.range, l.base + rnd.int(l.range)]) {
            q.push(`pn vu-${c.name}-${inner}`, `gn vg-${c.name}-${inner}`);
          }
          for (const id of [l.shift, l.shift + l.range - 1, l.shift + l.range, l.shift - 1, l.shift + rnd.int(l.range)]) {
            if (id !== 65535) q.push(`pu ${id}`, `gg ${id}`);
          }
        }
        q.push(`h4 ${c.name}`, `pn vu-${c.name.toUpperCase()}-0`);
      }
      return q;
    };
    const compare = async (phase: string) => {
      const q = queries();
      const got = await module.ask(q);
      const wrong: string[] = [];
      for (let i = 0; i < q.length; i++) {
        const want = await expected(client, q[i]);
        if (got[i] !== want) wrong.push(`${q[i]}\n    module:  ${got[i]}\n    Varlink: ${want}`);
      }
      assert.deepEqual(wrong.slice(0, 20), [], `${phase}: ${wrong.length} of ${q.length} answers differ (seed ${seed})`);
      t.diagnostic(`${phase}: ${q.length} answers agree`);
    };
    t.diagnostic(`${vms.length} VMs and ${containers.length} containers registered`);
    await compare('after registering');

    // Changes: a third unregistered, some of them registered again with other addresses, new ones.
    for (let i = 0; i < 600; i++) {
      const k = rnd.int(vms.length);
      const m = vms[k];
      await client.call(`${SERVICE}.Unregister`, { name: m.name });
      if (rnd.chance(0.5)) {
        const again = { ...vm(), name: m.name };
        vms[k] = again;
        await register(again);
      } else {
        vms.splice(k, 1);
      }
      if (i % 3 === 0) {
        const n = vm();
        vms.push(n);
        await register(n);
      }
      if (i === 20 || i === 200) await compare(`after ${i} changes`);
    }
    await compare('after 600 changes');
  });
});

function ipv6Bytes(text: string): number[] {
  const [head, tail] = text.split('::');
  const parts = (s: string) => (s ? s.split(':').map((h) => parseInt(h, 16)) : []);
  const h = parts(head);
  const tl = parts(tail ?? '');
  const words = [...h, ...Array(8 - h.length - tl.length).fill(0), ...tl];
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}

/** Fills the file system of dir to its last byte with a file of its own; gives the file's path. */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  try {
    for (const size of [1 << 20, 65536, 4096, 512, 1]) {
      const chunk = Buffer.alloc(size);
      for (;;) {
        try {
          if (writeSync(fd, chunk) < size) break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

describe('write errors of the table: a named error that says what and where, no temporary file, the daemon serves on and recovers', () => {
  let d: Daemon;
  let dir: string;
  let client: VarlinkClient;
  let env: NssEnv;
  let leaders: Awaited<ReturnType<typeof sleepingLeaders>>;
  let records: Module;
  const mounts: string[] = [];
  const mount = async (args: string[], at: string) => {
    await must('mount', [...args, at]);
    mounts.push(at);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mymachines-table-faults-'));
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'run'));
    // A small tmpfs as the runtime directory: the table's pages are the only thing that grows there.
    await mount(['-t', 'tmpfs', '-o', 'size=3m,mode=0755', 'tmpfs'], join(dir, 'run'));
    d = await startDaemon({ dir });
    client = await VarlinkClient.connect(d.socket);
    env = makeNssEnv({ socket: d.socket, hosts: 'mymachines files', etcHosts: ['10.201.9.99\tfiles201'] });
    leaders = await sleepingLeaders(400);
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', join(ROOT, 'test/helpers/nss-query.c'), '-ldl', '-o', join(dir, 'nss-query')]);
    records = new Module(join(dir, 'nss-query'), d.socket);
  });
  after(async () => {
    records?.close();
    client?.close();
    await removeAllContainers();
    await d?.stop();
    for (const m of mounts.reverse()) await run('umount', [m]);
    await leaders?.stop();
    env?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const lookup = async (name: string) => (await env.run(env.lookupProgram(), ['once', name])).stdout.split(' ')[0];
  const failure = async (call: Promise<unknown>) => {
    try {
      await call;
      return undefined;
    } catch (e) {
      if (!(e instanceof VarlinkError)) throw e;
      return { name: e.name, message: (e.parameters as { message?: string }).message ?? '' };
    }
  };
  let next = 0;
  const register = (name: string, address: string) => client.call(`${SERVICE}.Register`, { name, class: 'vm', leader: leaders.pids[next++], addresses: [address] });

  test('a full runtime directory (ENOSPC): the registration that cannot be published is refused and undone; an Unregister withdraws the table; freeing space recovers', { timeout: 120_000 }, async () => {
    const table = join(d.runtimeDir, 'nss-table');
    await register('keep201', '10.201.9.1');
    assert.equal(await lookup('keep201'), 'found');
    const filler = fill(d.runtimeDir);
    try {
      // The table grows into pages the full file system no longer has: the first registration that
      // needs one is refused (until then they fit in pages the table has).
      let refused: { name: string; message: string } | undefined;
      let n = 0;
      for (; n < 300 && !refused; n++) refused = await failure(register(`full201-${n}`, `10.201.10.${n % 250}`));
      const last = `full201-${n - 1}`;
      assert.ok(refused, 'no registration was refused on a full file system');
      assert.deepEqual(refused, {
        name: 'io.systemd.System',
        message: `cannot write the lookup table ${table}: no space left on device (ENOSPC); machine '${last}' was not registered`,
      });
      // Undone: not in the registry, no state file, no answer, no temporary file; the rest is served.
      assert.deepEqual(await failure(client.call(`${SERVICE}.List`, { name: last })), { name: 'io.systemd.Machine.NoSuchMachine', message: `No machine '${last}' known` });
      assert.equal(existsSync(join(d.stateDir, last)), false);
      assert.equal(await lookup(last), 'failed');
      assert.deepEqual(readdirSync(d.runtimeDir).sort(), ['filler', 'io.systemd.Machine', 'nss-table']);
      assert.equal(await lookup('keep201'), 'found');
      assert.equal(await lookup('full201-0'), 'found');
      // The CLI says so too, with the message.
      const cli = await d.ctl(['register', 'cli201', '--class', 'vm', '--leader', String(leaders.pids[next++]), '--address', '10.201.11.1']);
      assert.deepEqual([cli.code, cli.stderr], [1, `mymachinesctl: cannot write the lookup table ${table}: no space left on device (ENOSPC); machine 'cli201' was not registered\n`]);

      // An Unregister cannot be undone: the table that still has the machine is withdrawn.
      let withdrawn: { name: string; message: string } | undefined;
      let k = 0;
      for (; k < n - 1 && !withdrawn; k++) withdrawn = await failure(client.call(`${SERVICE}.Unregister`, { name: `full201-${k}` }));
      assert.deepEqual(withdrawn, {
        name: 'io.systemd.System',
        message: `machine 'full201-${k - 1}' was unregistered, but cannot write the lookup table ${table}: no space left on device (ENOSPC): NSS lookups fail until it can be written`,
      });
      assert.equal(await lookup(`full201-${k - 1}`), 'failed');
      assert.equal(await lookup('keep201'), 'failed', 'withdrawn: UNAVAIL for every name');
      assert.equal((await env.run('getent', ['hosts', 'files201'])).stdout, '10.201.9.99     files201\n', 'files answers meanwhile');
      assert.match(d.output(), /"msg":"lookup table withdrawn until it can be written: NSS lookups fail meanwhile"/);
      assert.deepEqual((await client.call(`${SERVICE}.List`, { name: 'keep201' })).name, 'keep201', 'the daemon serves on');
    } finally {
      rmSync(filler);
    }
    // Space again: the table is written again within a second or so (retried), and is right.
    await waitFor('the table back', async () => ((await lookup('keep201')) === 'found' ? true : undefined), 5000);
    assert.equal(await lookup('full201-0'), 'failed');
    await register('after201', '10.201.9.2');
    assert.equal(await lookup('after201'), 'found');
    assert.match(d.output(), /"msg":"lookup table up to date again"/);
  });

  test('a read-only runtime directory (EROFS) and a removed one (ENOENT): refused and undone; recovered when it is back', { timeout: 120_000 }, async () => {
    const table = join(d.runtimeDir, 'nss-table');
    // Read-only over the daemon: deltas still go into the open file; a new file (here: two
    // containers whose ID maps overlap make a new base) cannot be made.
    await mount(['--bind', d.runtimeDir], d.runtimeDir);
    await must('mount', ['-o', 'remount,ro,bind', d.runtimeDir]);
    const a = await makeContainer({ idMap: [{ base: 0, shift: 0x300000, range: 65536 }], hostNetwork: true });
    const b = await makeContainer({ idMap: [{ base: 0, shift: 0x308000, range: 65536 }], hostNetwork: true });
    await client.call(`${SERVICE}.Register`, { name: 'ro201a', class: 'container', leader: a.pid });
    assert.deepEqual(await failure(client.call(`${SERVICE}.Register`, { name: 'ro201b', class: 'container', leader: b.pid })), {
      name: 'io.systemd.System',
      message: `cannot create the lookup table ${table}: read-only file system (EROFS); machine 'ro201b' was not registered`,
    });
    const user = async (name: string) => (await records.ask([`pn ${name}`]))[0];
    assert.equal(await user('vu-ro201b-40000'), 'NOTFOUND');
    assert.equal(await user('vu-ro201a-0'), 'OK vu-ro201a-0:x:3145728:65534:UID 0 of Container ro201a:/:/usr/sbin/nologin');
    await must('umount', ['-l', d.runtimeDir]); // lazily: lookups have the table mapped through it
    mounts.pop();
    await client.call(`${SERVICE}.Register`, { name: 'ro201b', class: 'container', leader: b.pid });
    // (Its first IDs are ro201a's: the range that starts first keeps the IDs both claim.)
    assert.equal(await user('vu-ro201b-40000'), 'OK vu-ro201b-40000:x:3218496:65534:UID 40000 of Container ro201b:/:/usr/sbin/nologin');
    assert.equal(await user('vu-ro201b-0'), 'NOTFOUND');

    // Removed, with everything in it (the socket too: the client's connection goes on). The tmpfs is
    // let go of lazily: the daemon still has its table open there.
    await must('umount', ['-l', d.runtimeDir]);
    mounts.pop();
    rmSync(d.runtimeDir, { recursive: true });
    assert.deepEqual(await failure(register('gone201', '10.201.9.3')), {
      name: 'io.systemd.System',
      message: `cannot create the lookup table ${table}: no such file or directory (ENOENT); machine 'gone201' was not registered`,
    });
    // Back: the next change writes a whole table again.
    mkdirSync(d.runtimeDir);
    await register('gone201', '10.201.9.3');
    assert.deepEqual(readdirSync(d.runtimeDir), ['nss-table']);
    assert.equal(await lookup('gone201'), 'found');
    assert.equal(await user('vu-ro201a-0'), 'OK vu-ro201a-0:x:3145728:65534:UID 0 of Container ro201a:/:/usr/sbin/nologin');
  });
});
