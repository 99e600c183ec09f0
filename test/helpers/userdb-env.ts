// A private world for passwd/group lookups through glibc, shared by the userdb tests, benchmark and demo.
// Each command runs in a mount namespace of its own (unshare -m) where
//  - a tmpfs over /run/systemd holds only the daemon's userdb socket in /run/systemd/userdb, which is all
//    nss-systemd and userdbctl ask (they connect to every socket there);
//  - a private nsswitch.conf is bound over the host's: `files systemd`, `files mymachines`, `files` or
//    `mymachines` alone (source mymachines-only, for the benchmark);
//  - our module is found through LD_LIBRARY_PATH (before a distribution's libnss_mymachines) and reads the
//    table beside the daemon socket given in MYMACHINES_SOCKET.
// The host's own files are never touched. Not a benchmark itself: it prints nothing when run.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './daemon.js';
import { run, type RunResult } from './run.js';

export const NSS_LIB_DIR = join(ROOT, 'nss-module/build');

export type PasswdSource = 'systemd' | 'mymachines' | 'files' | 'mymachines-only';

export interface UserdbEnv {
  /** Runs a command in the private world with `passwd:` and `group:` set to `files <source>`. */
  run(source: PasswdSource, cmd: string[]): Promise<RunResult>;
  /** What run() spawns (for showing a command while running it this way). */
  command(source: PasswdSource, cmd: string[]): { cmd: string; args: string[]; env: NodeJS.ProcessEnv };
  close(): void;
}

/** `socket`: the daemon socket (for our module); `userdbSocket`: its userdb listener (for nss-systemd). */
export function makeUserdbEnv(o: { socket: string; userdbSocket: string }): UserdbEnv {
  const dir = mkdtempSync(join(tmpdir(), 'mymachines-userdb-'));
  for (const s of ['systemd', 'mymachines', 'files', 'mymachines-only']) {
    const line = s === 'files' ? 'files' : s === 'mymachines-only' ? 'mymachines' : `files ${s}`;
    writeFileSync(join(dir, `nsswitch.${s}`), `passwd: ${line}\ngroup: ${line}\n`);
  }
  const command = (source: PasswdSource, cmd: string[]) => {
    const script = [
      'mount -t tmpfs tmpfs /run/systemd',
      'mkdir -p /run/systemd/userdb',
      'touch /run/systemd/userdb/io.systemd.Machine',
      'mount --bind "$USERDB_SOCKET" /run/systemd/userdb/io.systemd.Machine',
      'mount --bind "$NSSWITCH" /etc/nsswitch.conf',
      // nscd would answer from its cache instead of asking the modules.
      'if [ -d /var/run/nscd ]; then mount -t tmpfs none /var/run/nscd; fi',
      'exec "$@"',
    ].join(' && ');
    const env = {
      ...process.env,
      USERDB_SOCKET: o.userdbSocket,
      NSSWITCH: join(dir, `nsswitch.${source}`),
      LD_LIBRARY_PATH: NSS_LIB_DIR,
      MYMACHINES_SOCKET: o.socket,
    };
    return { cmd: 'unshare', args: ['-m', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', ...cmd], env };
  };
  return {
    command,
    run(source, cmd) {
      const c = command(source, cmd);
      return run(c.cmd, c.args, { env: c.env });
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}
