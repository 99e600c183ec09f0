// A private world for host lookups through glibc with our NSS module, shared by the NSS tests, the
// benchmark and the demo. Each command runs in a mount namespace of its own (unshare -m) where
//  - a private nsswitch.conf and /etc/hosts are bound over the host's,
//  - the multiarch library directory is an overlay (upper layer on a tmpfs) that holds our
//    libnss_mymachines.so.2, so that every program finds it where glibc looks, with or without
//    LD_LIBRARY_PATH (ping has file capabilities) and whether or not a distribution module is installed,
//  - nscd's socket directory is hidden, so that glibc asks the modules itself.
// The host's own files are never touched. Not a benchmark itself: it prints nothing when run.
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './daemon.js';
import { run, type RunResult } from './run.js';

export const MODULE = join(ROOT, 'nss-module/build/libnss_mymachines.so.2');
export const LOOKUP_SOURCE = join(ROOT, 'test/helpers/nss-lookup.c');

export interface NssEnvOptions {
  /** The daemon socket the module asks (MYMACHINES_SOCKET). */
  socket: string;
  /** The hosts line of nsswitch.conf. */
  hosts?: string;
  /** Extra lines for the private /etc/hosts (after localhost). */
  etcHosts?: string[];
}

export interface NssEnv {
  dir: string;
  /** Runs a command inside the private world (opts.env may override MYMACHINES_SOCKET). */
  run(cmd: string, args: string[], opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<RunResult>;
  /** The argv that does so (for spawning by hand). */
  argv(cmd: string, args: string[]): string[];
  /** Compiles test/helpers/nss-lookup.c once; gives its path. */
  lookupProgram(): string;
  /** One process inside the world that looks names up on request (`nss-lookup serve`: it keeps its
   *  modules and the table mapped); lookup() gives "found" or "failed". */
  lookupServer(): LookupServer;
  close(): void;
}

export interface LookupServer {
  lookup(name: string): Promise<string>;
  close(): void;
}

const ENTER = `#!/bin/sh
# enter.sh COMMAND...: sets up the private mounts (in a fresh mount namespace) and runs COMMAND.
set -e
d=$(dirname "$0")
lib=$(cat "$d/libdir")
mount -t tmpfs mymachines-nss "$d/mnt"
mkdir "$d/mnt/upper" "$d/mnt/work"
cp "$d/libnss_mymachines.so.2" "$d/mnt/upper/"
mount -t overlay mymachines-nss -o "lowerdir=$lib,upperdir=$d/mnt/upper,workdir=$d/mnt/work" "$lib"
mount --bind "$d/nsswitch.conf" /etc/nsswitch.conf
mount --bind "$d/hosts" /etc/hosts
if [ -d /var/run/nscd ]; then mount -t tmpfs none /var/run/nscd; fi
exec "$@"
`;

/** The directory where glibc looks for NSS modules: the multiarch one, with symlinks (/lib) resolved. */
function libDir(): string {
  const multiarch = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
  return realpathSync(multiarch ? `/lib/${multiarch}` : '/lib');
}

export function makeNssEnv(o: NssEnvOptions): NssEnv {
  const dir = mkdtempSync(join(tmpdir(), 'mymachines-nss-'));
  mkdirSync(join(dir, 'mnt'));
  writeFileSync(join(dir, 'enter.sh'), ENTER, { mode: 0o755 });
  writeFileSync(join(dir, 'libdir'), libDir());
  copyFileSync(MODULE, join(dir, 'libnss_mymachines.so.2'));
  writeFileSync(join(dir, 'nsswitch.conf'), `hosts: ${o.hosts ?? 'files mymachines'}\n`);
  writeFileSync(join(dir, 'hosts'), ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost', ...(o.etcHosts ?? [])].join('\n') + '\n');
  let program: string | undefined;
  const argv = (cmd: string, args: string[]) => ['unshare', '-m', '--propagation', 'private', '--', join(dir, 'enter.sh'), cmd, ...args];
  return {
    dir,
    argv,
    run(cmd, args, opts = {}) {
      const [u, ...rest] = argv(cmd, args);
      return run(u, rest, { timeoutMs: opts.timeoutMs, env: { ...process.env, MYMACHINES_SOCKET: o.socket, ...opts.env } });
    },
    lookupProgram() {
      if (program === undefined) {
        program = join(dir, 'nss-lookup');
        execFileSync('gcc', ['-O2', '-g', '-Wall', '-Wextra', '-Werror', '-pthread', LOOKUP_SOURCE, '-o', program]);
      }
      return program;
    },
    lookupServer() {
      const [u, ...rest] = argv(this.lookupProgram(), ['serve']);
      const p = spawn(u, rest, { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, MYMACHINES_SOCKET: o.socket } });
      const lines = createInterface({ input: p.stdout! })[Symbol.asyncIterator]();
      return {
        async lookup(name: string): Promise<string> {
          p.stdin!.write(`${name}\n`);
          return (await lines.next()).value as string;
        },
        close: () => p.stdin!.end(),
      };
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}
