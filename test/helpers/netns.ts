// A private network namespace for tests of servers that talk to each other on loopback addresses
// (127.0.0.x): its own lo, with the addresses asked for put on it, so that servers which only listen on
// addresses of an interface (BIND) find them, and no port of the host is taken. Held by a process of its
// own; commands join it with nsenter, which execs them: the PID a test gets is the server's.
import { spawn, type ChildProcess } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { must, run, waitFor, type RunResult } from './run.js';

export interface NetNs {
  /** The argv prefix that runs a command inside the namespace. */
  prefix: string[];
  run(cmd: string, args: string[]): Promise<RunResult>;
  /** Ends the holder (the test ends its own servers first). */
  remove(): Promise<void>;
}

export async function makeNetns(addresses: readonly string[]): Promise<NetNs> {
  const holder: ChildProcess = spawn('unshare', ['--net', '--', 'sh', '-c', 'read _; exec sleep infinity'], { stdio: ['pipe', 'ignore', 'inherit'] });
  const pid = holder.pid!;
  const prefix = ['nsenter', '-t', String(pid), '-n', '--'];
  const ns: NetNs = {
    prefix,
    run: (cmd, args) => run(prefix[0], [...prefix.slice(1), cmd, ...args]),
    async remove() {
      if (holder.exitCode === null && holder.signalCode === null) {
        const exited = new Promise((r) => holder.once('exit', r));
        holder.kill('SIGKILL');
        await exited;
      }
    },
  };
  try {
    // unshare has made the namespace once it runs the shell that waits for us.
    const host = readlinkSync('/proc/self/ns/net');
    await waitFor('the network namespace', () => {
      try {
        return readlinkSync(`/proc/${pid}/ns/net`) !== host ? true : undefined;
      } catch {
        return undefined;
      }
    });
    await must(prefix[0], [...prefix.slice(1), 'ip', 'link', 'set', 'lo', 'up']);
    for (const a of addresses) await must(prefix[0], [...prefix.slice(1), 'ip', 'addr', 'add', a.includes(':') ? `${a}/128` : `${a}/32`, 'dev', 'lo']);
  } catch (e) {
    await ns.remove();
    throw e;
  }
  return ns;
}
