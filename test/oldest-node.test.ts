// The oldest Node.js the README and package.json's "engines" name (20.17.0, with its npm 10.8.2): `make`
// builds this tree with it from scratch (npm ci with engine-strict, usocket's addon compiled against its
// headers, tsc, the C parts), without a complaint about an engine; the daemon and the CLI so built then
// run on it: a registration over Varlink (koffi's libc calls), the machine on D-Bus (usocket), a clean
// stop. The tree is a copy of this checkout's files as they are (what git tracks or would track).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ROOT, startDaemon, type Daemon } from './helpers/daemon.js';
import { busClient, startBus, type Bus } from './helpers/dbus.js';
import { OLDEST_NODE, oldestNode } from './helpers/oldest-node.js';
import { must, run } from './helpers/run.js';

let dir: string;
let tree: string;
let env: NodeJS.ProcessEnv;
let nodeDir: string;

before(async () => {
  nodeDir = await oldestNode();
  dir = mkdtempSync(join(tmpdir(), 'mymachines-oldest-node-'));
  tree = join(dir, 'tree');
  // What git tracks or would track, as it is now (a file deleted but not yet committed is left out).
  const files = (await must('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT })).split('\0').filter((f) => f && existsSync(join(ROOT, f)));
  mkdirSync(tree);
  await must('xargs', ['-0', 'cp', '-a', '--parents', '-t', tree], { cwd: ROOT, input: files.join('\0') });
  env = { ...process.env, PATH: `${join(nodeDir, 'bin')}:${process.env.PATH}`, npm_config_nodedir: nodeDir };
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test(`make builds the tree from scratch with Node.js ${OLDEST_NODE} and its npm, and no engine is refused or warned of`, { timeout: 600_000 }, async () => {
  assert.equal((await must('node', ['--version'], { env })).trim(), `v${OLDEST_NODE}`);
  assert.equal((await must('npm', ['--version'], { env })).trim(), '10.8.2');
  const r = await run('make', ['build'], { cwd: tree, env, timeoutMs: 590_000 });
  const out = r.stdout + r.stderr;
  assert.equal(r.code, 0, out);
  assert.match(out, /npm ci --no-audit --no-fund/);
  assert.doesNotMatch(out, /EBADENGINE|[Uu]nsupported engine|npm warn/, out);
});

test(`the daemon and mymachinesctl built so run on Node.js ${OLDEST_NODE}: Varlink, D-Bus, a clean stop`, { timeout: 120_000 }, async () => {
  let bus: Bus | undefined;
  let d: Daemon | undefined;
  const leader = spawn('sleep', ['600'], { stdio: 'ignore' });
  try {
    bus = await startBus(join(dir, 'bus'));
    d = await startDaemon({ program: join(tree, 'bin/mymachinesd'), prefix: ['env', `PATH=${env.PATH}`], bus: bus.address });
    // env execs the daemon: its PID is the daemon's, and its program the old Node.js.
    assert.equal(readlinkSync(`/proc/${d.proc.pid}/exe`), join(nodeDir, 'bin/node'));
    const ctl = (args: string[]) => run(join(tree, 'bin/mymachinesctl'), ['--socket', d!.socket, ...args], { env });
    const reg = await ctl(['register', 'old1', '--class', 'vm', '--leader', String(leader.pid), '--address', '10.77.97.2']);
    assert.equal(reg.code, 0, reg.stderr);
    const list = await ctl(['list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout).map((m: { name: string; class: string; addresses: unknown }) => [m.name, m.class, m.addresses]), [['old1', 'vm', [{ family: 2, address: [10, 77, 97, 2] }]]]);
    const client = await busClient(bus);
    try {
      const [machines] = await client.call('/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager', 'ListMachines');
      assert.deepEqual((machines as unknown[][]).map((m) => m[0]).sort(), ['.host', 'old1']);
    } finally {
      client.close();
    }
    assert.equal(await d.stop(), 0);
  } finally {
    leader.kill('SIGKILL');
    await d?.stop();
    d?.cleanup();
    await bus?.stop();
  }
});
