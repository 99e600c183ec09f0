// File systems that fail on demand, for the faults of a real disk that root's capabilities would
// otherwise bypass or that this kernel cannot make (no device mapper, no quotas): a directory whose
// writes fail with a chosen errno (test/helpers/faulty-fs.c, a FUSE file system over a backing
// directory), and a FUSE mount that never answers.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './daemon.js';
import { endChild, run, shellQuote, waitFor } from './run.js';

export type FaultyOp = 'create' | 'write' | 'rename' | 'unlink' | 'mkdir' | 'symlink' | 'setattr';

export interface FaultyFs {
  /** Where the file system is mounted. */
  mountpoint: string;
  /** The directory that holds what was written through it: what a failed operation left is seen here. */
  backing: string;
  /** From now on `ops` fail with `errno`. */
  inject(errno: number, ops: FaultyOp[]): void;
  /** Nothing fails any more. */
  heal(): void;
  unmount(): Promise<void>;
}

/** The compiled file system, built once per test process into `dir`. */
function program(dir: string): string {
  const out = join(dir, 'faulty-fs');
  if (!existsSync(out)) {
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-I/usr/include/fuse3', join(ROOT, 'test/helpers/faulty-fs.c'), '-o', out, '-lfuse3', '-lpthread']);
  }
  return out;
}

/** Mounts a faulty file system at `mountpoint` (made if need be; root's, mode 0755, as a state
 *  directory must be), its backing directory and control file beside it in `dir`. */
export async function mountFaultyFs(dir: string, mountpoint: string): Promise<FaultyFs> {
  const backing = join(dir, 'faulty-backing');
  const control = join(dir, 'faulty-control');
  mkdirSync(backing, { recursive: true });
  chmodSync(backing, 0o755);
  mkdirSync(mountpoint, { recursive: true });
  writeFileSync(control, '');
  const fs: ChildProcess = spawn(program(dir), [backing, control, mountpoint], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  fs.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise((r) => fs.once('exit', r));
  const mounted = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mountpoint && l.includes(' fuse.faulty '));
  const gone = () => fs.exitCode !== null || fs.signalCode !== null;
  await waitFor('the faulty file system', () => (mounted() ? true : gone() ? Promise.reject(new Error(`faulty-fs exited: ${stderr}`)) : undefined)).catch(async (e) => {
    await endChild(fs);
    throw e;
  });
  return {
    mountpoint,
    backing,
    inject: (errno, ops) => writeFileSync(control, `${errno} ${ops.join(',')}\n`),
    heal: () => writeFileSync(control, ''),
    async unmount() {
      writeFileSync(control, '');
      if (mounted()) await run('umount', ['-l', mountpoint]);
      if (!gone()) {
        // Unmounted, it exits by itself.
        const t = setTimeout(() => fs.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

export interface StallingFuse {
  /** The descriptor to give the mount command as its fd 3. */
  fd: number;
  /** The shell command that mounts it at `at` (with the descriptor as fd 3). */
  mount(at: string): string;
  /** Aborts the mount: every read waiting in it returns. */
  close(): void;
}

/** The kernel's side of a FUSE mount whose file system never reads its requests: every lookup below
 *  the mount waits, until close(). */
export function stallingFuse(): StallingFuse {
  const fd = openSync('/dev/fuse', 'r+');
  let open = true;
  return {
    fd,
    // -i: no mount.fuse helper, which would take the source for a program to run.
    mount: (at) => `mount -i -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 stall ${shellQuote(at)}`,
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}
