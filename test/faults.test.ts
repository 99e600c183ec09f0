// Faults of the daemon's surroundings (issue 10): special files in the state directory, a state
// directory that another user could write, a full or read-only state file system, a state directory
// removed under the daemon. Each with the real daemon and mymachinesctl; every mount is this test's own
// (test/run-all runs in a private mount namespace) and undone.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCgroupMounts } from '../src/registry/linux/cgroup.js';
import { VarlinkClient } from '../src/varlink/client.js';
import { VarlinkError } from '../src/varlink/errors.js';
import { DAEMON, startDaemon, type Daemon } from './helpers/daemon.js';
import { mountFaultyFs, stallingFuse } from './helpers/faulty-fs.js';
import { must, run, waitFor } from './helpers/run.js';
import { endSleepingLeaders, sleepingLeaderPid } from './helpers/leaders.js';

const leader = sleepingLeaderPid;

const mounts: string[] = [];
async function mountTmpfs(at: string, size: string): Promise<void> {
  mkdirSync(at, { recursive: true });
  await must('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'mymachines-faults', at]);
  mounts.push(at);
}

async function cleanup(): Promise<void> {
  endSleepingLeaders();
  for (const m of mounts.splice(0).reverse()) await run('umount', ['-l', m]);
}
after(cleanup);

/** Fills the file system at `dir` to its last byte. */
async function fill(dir: string): Promise<void> {
  const r = await run('dd', ['if=/dev/zero', `of=${join(dir, '.filler')}`, 'bs=1024']);
  assert.match(r.stderr, /No space left on device/);
}

const names = async (d: Daemon) => JSON.parse((await d.ctl(['list', '--json'])).stdout).map((m: { name: string }) => m.name);

describe('state directory faults', () => {
  let base: string;
  before(() => {
    base = mkdtempSync(join(tmpdir(), 'mymachines-faults-'));
    chmodSync(base, 0o755);
  });
  after(async () => {
    await cleanup();
    rmSync(base, { recursive: true, force: true });
  });

  test('a FIFO, a link to /dev/zero and a huge file among the state files are skipped with a warning; SIGTERM still stops the daemon', async () => {
    const dir = join(base, 'special');
    const stateDir = join(dir, 'machines');
    mkdirSync(stateDir, { recursive: true });
    await must('mkfifo', [join(stateDir, 'fifo1')]);
    symlinkSync('/dev/zero', join(stateDir, 'zero1'));
    writeFileSync(join(stateDir, 'huge1'), 'NAME=huge1\n'.padEnd(100_000, '#'));
    const l = leader();
    writeFileSync(join(stateDir, 'good1'), `NAME=good1\nLEADER=${l}\nCLASS=container\n`);
    const d = await startDaemon({ dir });
    try {
      assert.deepEqual(await names(d), ['good1']);
      const log = d.output();
      assert.match(log, new RegExp(`state file ${stateDir}/fifo1 skipped: not a regular file \\(a FIFO\\)`));
      assert.match(log, new RegExp(`state file ${stateDir}/zero1 skipped: a symbolic link`));
      assert.match(log, new RegExp(`state file ${stateDir}/huge1 skipped: larger than 65536 bytes`));
      assert.equal(await d.stop(), 0);
    } finally {
      await d.kill();
    }
  });

  test('a state directory another user could write in is refused with a message', async () => {
    for (const [mode, owner, why] of [
      [0o1777, 65534, 'is owned by UID 65534, not by the daemon\'s \\(0\\)'],
      [0o777, 0, 'is writable by everyone \\(mode 777\\)'],
      [0o775, 0, 'is writable by its group \\(mode 775\\)'],
    ] as const) {
      const dir = mkdtempSync(join(base, 'open-'));
      chmodSync(dir, 0o755);
      const stateDir = join(dir, 'machines');
      mkdirSync(stateDir);
      chownSync(stateDir, owner, owner);
      chmodSync(stateDir, mode);
      const r = await run(DAEMON, ['--runtime-dir', join(dir, 'run'), '--state-dir', stateDir, '--userdb-dir', '', '--resolve-hook-dir', '', '--machine-dir', '', '--bus', 'none']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^mymachinesd: the state directory ${stateDir} ${why}: another user could plant or block files in it\\n$`));
      assert.equal(existsSync(join(dir, 'run', 'io.systemd.Machine')), false, 'nothing was served');
    }
  });

  test('a full state file system: a named error with a message, no temporary file, the registry as it was; it works again once space is freed', async () => {
    const dir = join(base, 'full');
    const stateDir = join(dir, 'machines');
    await mountTmpfs(stateDir, '64k');
    const d = await startDaemon({ dir });
    try {
      assert.equal((await d.ctl(['register', 'before', '--leader', String(leader())])).code, 0);
      await fill(stateDir);
      const r = await d.ctl(['register', 'web1', '--leader', String(leader())]);
      assert.deepEqual([r.code, r.stderr], [1, `mymachinesctl: cannot write state file ${stateDir}/web1: no space left on device (ENOSPC)\n`]);
      // The Varlink error is systemd's for a failed system call, with the errno.
      const c = await VarlinkClient.connect(d.socket);
      const err = await c.call('io.systemd.Machine.Register', { name: 'web1', class: 'container', leader: leader() }).catch((e) => e);
      c.close();
      assert.ok(err instanceof VarlinkError);
      assert.deepEqual([err.name, err.parameters], ['io.systemd.System', { origin: 'linux', errno: 28, errnoName: 'ENOSPC', message: `Cannot write state file ${stateDir}/web1: no space left on device (ENOSPC)` }]);
      assert.deepEqual(readdirSync(stateDir).sort(), ['.filler', 'before']);
      assert.deepEqual(await names(d), ['before']);
      assert.match(d.output(), /"level":30[^\n]*"msg":"ready"/);
      assert.doesNotMatch(d.output(), /at .*\.js:\d+/, 'no stack trace in the log');
      rmSync(join(stateDir, '.filler'));
      assert.equal((await d.ctl(['register', 'web1', '--leader', String(leader())])).code, 0);
      assert.deepEqual(await names(d), ['before', 'web1']);
    } finally {
      await d.stop();
    }
  });

  test('a state file system made read-only under the daemon: registrations and unregistrations refused, named; nothing changes', async () => {
    const dir = join(base, 'ro');
    const stateDir = join(dir, 'machines');
    await mountTmpfs(stateDir, '1m');
    const d = await startDaemon({ dir });
    try {
      assert.equal((await d.ctl(['register', 'web1', '--leader', String(leader())])).code, 0);
      await must('mount', ['-o', 'remount,ro', stateDir]);
      let r = await d.ctl(['register', 'web2', '--leader', String(leader())]);
      assert.deepEqual([r.code, r.stderr], [1, `mymachinesctl: cannot write state file ${stateDir}/web2: read-only file system (EROFS)\n`]);
      r = await d.ctl(['unregister', 'web1']);
      assert.deepEqual([r.code, r.stderr], [1, `mymachinesctl: cannot remove state file ${stateDir}/web1: read-only file system (EROFS)\n`]);
      assert.deepEqual(await names(d), ['web1']);
      assert.deepEqual(readdirSync(stateDir), ['web1']);
      await must('mount', ['-o', 'remount,rw', stateDir]);
      assert.equal((await d.ctl(['unregister', 'web1'])).code, 0);
      assert.deepEqual(readdirSync(stateDir), []);
    } finally {
      await d.stop();
    }
  });

  test('a failing disk, a full quota, a refused write (EIO, EDQUOT, EACCES): named errors, no temporary file, the registry as it was', async () => {
    const dir = join(base, 'faulty');
    mkdirSync(dir);
    const faulty = await mountFaultyFs(dir, join(dir, 'machines'));
    let d: Daemon | undefined;
    try {
      d = await startDaemon({ dir });
      const file = (name: string) => join(d!.stateDir, name);
      assert.equal((await d.ctl(['register', 'before', '--leader', String(leader())])).code, 0);
      // Each fault where a disk meets it: the new file, its content, the rename over the old name.
      for (const [errno, errnoName, op, words] of [
        [122, 'EDQUOT', 'write', 'disk quota exceeded'],
        [5, 'EIO', 'rename', 'i/o error'],
        [13, 'EACCES', 'create', 'permission denied'],
      ] as const) {
        faulty.inject(errno, [op]);
        const text = `${words} (${errnoName})`;
        const r = await d.ctl(['register', 'web1', '--leader', String(leader())]);
        assert.deepEqual([r.code, r.stderr], [1, `mymachinesctl: cannot write state file ${file('web1')}: ${text}\n`], `${errnoName} at ${op}`);
        const c = await VarlinkClient.connect(d.socket);
        const err = await c.call('io.systemd.Machine.Register', { name: 'web1', class: 'container', leader: leader() }).catch((e) => e);
        c.close();
        assert.ok(err instanceof VarlinkError);
        assert.deepEqual([err.name, err.parameters], ['io.systemd.System', { origin: 'linux', errno, errnoName, message: `Cannot write state file ${file('web1')}: ${text}` }]);
        assert.deepEqual(readdirSync(faulty.backing), ['before'], 'no temporary file, no new file');
        assert.deepEqual(await names(d), ['before']);
      }
      // A file that cannot be removed stays, and so does its machine.
      faulty.inject(13, ['unlink']);
      const r = await d.ctl(['unregister', 'before']);
      assert.deepEqual([r.code, r.stderr], [1, `mymachinesctl: cannot remove state file ${file('before')}: permission denied (EACCES)\n`]);
      assert.deepEqual(await names(d), ['before']);
      assert.doesNotMatch(d.output(), /at .*\.js:\d+/, 'no stack trace in the log');
      faulty.heal();
      assert.equal((await d.ctl(['register', 'web1', '--leader', String(leader())])).code, 0);
      assert.equal((await d.ctl(['unregister', 'before'])).code, 0);
      assert.deepEqual(readdirSync(faulty.backing), ['web1']);
      assert.deepEqual(await names(d), ['web1']);
    } finally {
      await d?.stop();
      await faulty.unmount();
    }
  });

  test('a state directory removed under the daemon is made again at the next registration', async () => {
    mkdirSync(join(base, 'removed'));
    const d = await startDaemon({ dir: join(base, 'removed') });
    try {
      rmSync(d.stateDir, { recursive: true });
      assert.equal((await d.ctl(['register', 'web1', '--leader', String(leader())])).code, 0);
      assert.deepEqual(readdirSync(d.stateDir), ['web1']);
      await waitFor('the machine listed', async () => ((await names(d)).includes('web1') ? true : undefined));
    } finally {
      await d.stop();
    }
  });
});

describe('one daemon per runtime directory', () => {
  test('two daemons started at the same moment, 20 times: one serves every socket, the other names it and leaves everything alone', async () => {
    for (let round = 0; round < 20; round++) {
      const dir = mkdtempSync(join(tmpdir(), 'mymachines-race-'));
      chmodSync(dir, 0o755);
      const args = ['--runtime-dir', join(dir, 'run'), '--state-dir', join(dir, 'machines'), '--userdb-dir', join(dir, 'userdb'), '--resolve-hook-dir', '', '--machine-dir', join(dir, 'machine'), '--bus', 'none'];
      const procs = [0, 1].map(() => spawn(DAEMON, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
      const outputs = procs.map((p) => {
        let err = '';
        p.stderr!.on('data', (b) => (err += b));
        p.stdout!.resume();
        return () => err;
      });
      try {
        // One of them exits; the other answers on both sockets.
        const loser = await Promise.race(procs.map((p, i) => new Promise<number>((r) => p.once('exit', () => r(i)))));
        const winner = procs[1 - loser];
        assert.equal(procs[loser].exitCode, 1, `round ${round}: ${outputs[loser]()}`);
        await waitFor('the winner\'s sockets', async () => {
          for (const s of ['run', 'userdb']) {
            const client = await VarlinkClient.connect(join(dir, s, 'io.systemd.Machine')).catch(() => undefined);
            if (!client) return undefined;
            client.close();
          }
          return true;
        }, 20_000);
        assert.equal(winner.exitCode, null, `round ${round}: the winner runs`);
        assert.match(outputs[loser](), new RegExp(`^mymachinesd: another mymachinesd \\(PID ${winner.pid}\\) is already running on the (runtime directory ${dir}/run|state directory ${dir}/machines)\\n$`), `round ${round}`);
        winner.kill('SIGTERM');
        await new Promise((r) => (winner.exitCode === null ? winner.once('exit', r) : r(null)));
        assert.equal(winner.exitCode, 0);
      } finally {
        for (const p of procs) p.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  test('a daemon on another runtime directory but the same state directory is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mymachines-race-'));
    chmodSync(dir, 0o755);
    const d = await startDaemon({ dir });
    try {
      const r = await run(DAEMON, ['--runtime-dir', join(dir, 'run2'), '--state-dir', d.stateDir, '--userdb-dir', '', '--resolve-hook-dir', '', '--machine-dir', '', '--bus', 'none']);
      assert.deepEqual([r.code, r.stderr], [1, `mymachinesd: another mymachinesd (PID ${d.proc.pid}) is already running on the state directory ${d.stateDir}\n`]);
      assert.deepEqual(readdirSync(join(dir, 'run2')), [], 'nothing served there');
    } finally {
      await d.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('run as another user than root: it says it needs root', async () => {
    const r = await run('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, DAEMON, '--bus', 'none']);
    assert.deepEqual([r.code, r.stderr], [1, "mymachinesd: must run as root: it enters network namespaces, reads the leaders' /proc files, writes cgroups and owns /run/mymachines; for a registry of your own machines, start it with --user\n"]);
  });
});

describe('silent failures', () => {
  test('out of file descriptors: logged once, not per connection; served again once descriptors are free', async () => {
    const d = await startDaemon({ prefix: ['prlimit', '--nofile=64:64', '--'] });
    const held: import('node:net').Socket[] = [];
    try {
      const { connect } = await import('node:net');
      for (let i = 0; i < 80; i++) {
        const s = connect(d.socket);
        s.on('error', () => {});
        held.push(s);
      }
      await waitFor('the log line', () => (/out of file descriptors \(EMFILE\): new connections are closed unanswered/.test(d.output()) ? true : undefined), 5000);
      for (const s of held) s.destroy();
      const info = await waitFor('the daemon to answer again', async () => {
        const c = await VarlinkClient.connect(d.socket).catch(() => undefined);
        const r = await c?.call('org.varlink.service.GetInfo').catch(() => undefined);
        c?.close();
        return r;
      }, 5000);
      assert.equal(info.product, 'mymachinesd');
      assert.equal(d.output().match(/"msg":"varlink: out of file descriptors/g)?.length, 1, "one line, not one a second");
    } finally {
      for (const s of held) s.destroy();
      await d.stop();
      d.cleanup();
    }
  });
});

describe('scopes across a restart', () => {
  test('a scope that still held processes when its machine went is removed by the next daemon once empty', async (t) => {
    const { v2: mount } = await findCgroupMounts();
    if (!mount) return t.skip('no cgroup2 hierarchy mounted');
    const scope = join(mount, 'machine.slice', 'machine-kept.scope');
    const d = await startDaemon();
    const lead = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const other = spawn('sleep', ['1000'], { stdio: 'ignore' });
    try {
      assert.equal((await d.ctl(['register', 'kept', '--leader', String(lead.pid), '--create'])).code, 0);
      writeFileSync(join(scope, 'cgroup.procs'), `${other.pid}\n`);
      assert.equal((await d.ctl(['unregister', 'kept'])).code, 0);
      assert.equal(existsSync(scope), true, 'the scope stays while it holds processes');
      assert.equal(await d.stop(), 0);
      const d2 = await d.restart();
      try {
        lead.kill('SIGKILL');
        other.kill('SIGKILL');
        await waitFor('the scope removed by the new daemon', () => (existsSync(scope) ? undefined : true), 3000);
        await waitFor('nothing left to remember', () => (existsSync(join(d.stateDir, '.mymachines-stale-scopes')) ? undefined : true), 3000);
      } finally {
        await d2.stop();
        d2.cleanup();
      }
    } finally {
      lead.kill('SIGKILL');
      other.kill('SIGKILL');
      if (existsSync(scope)) await run('rmdir', [scope]);
    }
  });
});

describe('container roots that stall', () => {
  /** A leader whose /etc is a FUSE mount that never answers (its INIT is never read: every lookup there
   *  waits), in a mount namespace of its own. Closing the descriptor aborts the mount. */
  async function stalledLeader(): Promise<{ pid: number; end(): void }> {
    const fuse = stallingFuse();
    // busybox is static: nothing it execs reads /etc (ld.so.cache would wait too).
    const p = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${fuse.mount('/etc')} && echo mounted && exec /bin/busybox sleep 1000`],
      { stdio: ['ignore', 'pipe', 'inherit', fuse.fd] });
    await new Promise<void>((resolve, reject) => {
      p.stdout!.once('data', () => resolve());
      p.once('exit', (code) => reject(new Error(`the stalled leader exited with ${code}`)));
    }).catch((e) => {
      fuse.close();
      throw e;
    });
    return { pid: p.pid!, end: () => (p.kill('SIGKILL'), fuse.close()) };
  }

  test('a stalled root delays neither another machine\'s answers nor the daemon\'s own files; its reads fail with a message', async (t) => {
    const { v2: mount } = await findCgroupMounts();
    const d = await startDaemon();
    const stalled: { pid: number; end(): void }[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        stalled.push(await stalledLeader());
        assert.equal((await d.ctl(['register', `stalled${i}`, '--leader', String(stalled[i].pid)])).code, 0);
      }
      assert.equal((await d.ctl(['register', 'fine', '--leader', String(leader())])).code, 0);
      const order: string[] = [];
      // A connection each: one connection's calls are answered one after the other.
      const list = async (name: string) => {
        const own = await VarlinkClient.connect(d.socket);
        try {
          const m = (await own.call('io.systemd.Machine.List', { name, acquireMetadata: 'graceful' })) as { name: string; OSRelease?: string[]; osReleaseError?: string };
          order.push(name);
          return m;
        } finally {
          own.close();
        }
      };
      // Four reads stalled at once (as many as Node's thread pool has threads) ...
      const slow = [0, 1, 2, 3].map((i) => list(`stalled${i}`));
      // ... and meanwhile another machine's metadata, and a registration that makes a cgroup (file
      // operations of the daemon's own).
      const fine = await list('fine');
      assert.equal(fine.OSRelease?.some((kv) => kv.startsWith('ID=')), true);
      // Answered before any stalled one, which answers only at its 2 s limit.
      assert.deepEqual(order, ['fine'], 'the stalled reads are still under way');
      if (mount) {
        const r = await d.ctl(['register', 'made', '--leader', String(leader()), '--create']);
        assert.equal(r.code, 0, r.stderr);
      } else t.diagnostic('no cgroup2: the registration with a scope is left out');
      for (const m of await Promise.all(slow)) {
        assert.deepEqual([m.OSRelease, m.osReleaseError], [undefined, `Cannot read the OS release of machine '${m.name}': its root directory did not answer within 2 s`]);
      }
      // Named, with the reason, where the answer is the metadata itself; and at once for a root still stalled.
      const r = await d.ctl(['status', 'stalled0']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /OS: \(cannot be read: its root directory did not answer within 2 s, and has not since\)/);
    } finally {
      for (const s of stalled) s.end();
      await d.stop();
      d.cleanup();
      if (mount && existsSync(join(mount, 'machine.slice/machine-made.scope'))) await run('rmdir', [join(mount, 'machine.slice/machine-made.scope')]);
    }
  });
});
