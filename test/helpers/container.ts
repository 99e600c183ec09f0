// Real containers for tests: a leader process in its own network namespace (and, if asked, its own user
// namespace with ID maps), joined to the host by a veth pair with IPv4 and IPv6 addresses.
// Everything made here is undone by remove(), and by removeAllContainers() when a test fails midway.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { must, run, waitFor } from './run.js';

export interface IdMap {
  base: number;
  shift: number;
  range: number;
}

export interface ContainerOptions {
  /** ID map lines for a user namespace (the same for users and groups); none: no user namespace. */
  idMap?: IdMap[];
  /** Give the container no network namespace of its own (it shares the host's). */
  hostNetwork?: boolean;
  /** Make a veth pair with these addresses (prefix lengths /24 and /64 are added). */
  ipv4?: { host: string; inside: string };
  ipv6?: { host: string; inside: string };
  /** A root directory of its own (with /bin/sh and /bin/sleep, e.g. makeBusyboxRoot's), in mount, UTS
   *  and IPC namespaces of its own. */
  root?: string;
}

export interface Container {
  pid: number;
  /** Host side of the veth pair and its ifindex, when there is one. */
  hostIf: string;
  hostIfIndex: number;
  /** Runs a command inside the container's network namespace. */
  exec(args: string[]): Promise<string>;
  remove(): Promise<void>;
}

const live = new Set<Container>();
let counter = 0;

export async function makeContainer(opts: ContainerOptions = {}): Promise<Container> {
  const ns = opts.hostNetwork ? [] : ['--net'];
  const user = opts.idMap ? ['--user'] : [];
  // The leader waits on stdin until its maps are written, then becomes `sleep` (same PID).
  const rooted = opts.root ? ['--mount', '--uts', '--ipc', `--root=${opts.root}`] : [];
  const child: ChildProcess = spawn('unshare', [...user, ...ns, ...rooted, '--', '/bin/sh', '-c', 'read _; exec sleep infinity'], {
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  const pid = child.pid!;
  // Unique among test processes running at once: the whole PID (at most 7 digits: 15 characters in all).
  const hostIf = opts.hostNetwork ? '' : `mmt${process.pid}x${counter++}`;
  const c: Container = {
    pid,
    hostIf,
    hostIfIndex: 0,
    exec: (args) => must('nsenter', ['-t', String(pid), '-n', '--', ...args]),
    async remove() {
      live.delete(c);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      if (hostIf) await run('ip', ['link', 'del', hostIf]);
    },
  };
  live.add(c);
  try {
    // unshare has made its namespaces once it has become the shell that waits for us.
    await waitFor('the container namespaces', () => {
      try {
        const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        return comm === 'sh' ? true : undefined;
      } catch {
        return undefined;
      }
    });
    if (opts.idMap) {
      const text = opts.idMap.map((l) => `${l.base} ${l.shift} ${l.range}`).join('\n') + '\n';
      await writeFile(`/proc/${pid}/uid_map`, text);
      await writeFile(`/proc/${pid}/gid_map`, text);
    }
    child.stdin!.end('go\n');
    await waitFor('the container leader', () => (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep' ? true : undefined));
    if (!opts.hostNetwork) {
      // No duplicate address detection inside: addresses are usable at once, never "tentative".
      await c.exec(['sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']);
      await must('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'host0', 'netns', String(pid)]);
      c.hostIfIndex = Number(readFileSync(`/sys/class/net/${hostIf}/ifindex`, 'utf8'));
      await must('ip', ['link', 'set', hostIf, 'up']);
      await c.exec(['ip', 'link', 'set', 'lo', 'up']);
      await c.exec(['ip', 'link', 'set', 'host0', 'up']);
      if (opts.ipv4) {
        await must('ip', ['addr', 'add', `${opts.ipv4.host}/24`, 'dev', hostIf]);
        await c.exec(['ip', 'addr', 'add', `${opts.ipv4.inside}/24`, 'dev', 'host0']);
      }
      if (opts.ipv6) {
        await must('ip', ['-6', 'addr', 'add', `${opts.ipv6.host}/64`, 'dev', hostIf, 'nodad']);
        await c.exec(['ip', '-6', 'addr', 'add', `${opts.ipv6.inside}/64`, 'dev', 'host0', 'nodad']);
      }
    }
    return c;
  } catch (e) {
    await c.remove();
    throw e;
  }
}

/** Removes every container still alive (for after() hooks, so that a failed test leaves nothing). */
export async function removeAllContainers(): Promise<void> {
  await Promise.all([...live].map((c) => c.remove()));
}
