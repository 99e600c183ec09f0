// Runs mymachines-enter (helper/), the small C program that does what needs a single-threaded process
// inside a container: entering its namespaces, allocating PTYs there, starting a program on one,
// bind mounts and copies. It answers on a socket pair (fd 3): one message "ok TEXT" or "error NAME
// MESSAGE", with the PTY master passed along as SCM_RIGHTS.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import usocket from 'usocket';
import { errnoName } from '../../errno.js';
import { AF_UNIX, SOCK_CLOEXEC, SOCK_STREAM, close, errno, socketpair } from './libc.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../../..');
/** In the source tree (make) or installed beside dist/ (make install). */
const CANDIDATES = [join(ROOT, 'helper/build/mymachines-enter'), join(ROOT, 'libexec/mymachines-enter')];

function helperPath(): string {
  const found = process.env.MYMACHINES_ENTER || CANDIDATES.find((p) => existsSync(p));
  if (!found) throw new HelperError('ENOENT', `mymachines-enter is not built (looked in ${CANDIDATES.join(', ')})`);
  return found;
}

/** What the helper refused: `name` is an errno name (ENOENT, EEXIST, ENOSPC) or one of its own
 *  (NoSuchUser, NoIPC). */
export class HelperError extends Error {
  constructor(
    override readonly name: string,
    message: string,
  ) {
    super(message);
  }
}

export interface HelperAnswer {
  text: string;
  /** Descriptors passed with the answer: the caller owns them. */
  fds: number[];
  /** The helper's exit status (shell and login: the program's; 128+N for signal N). */
  exited: Promise<number>;
  child: ChildProcess;
}

const ANSWER_TIMEOUT_MS = 15_000;

/** Runs the helper and waits for its answer (not for its exit: shell and login go on). A helper that
 *  does not answer in time (a container whose files stall it) is killed. */
export async function runHelper(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = ANSWER_TIMEOUT_MS): Promise<HelperAnswer> {
  const helper = helperPath();
  const sv = new Int32Array(2);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) !== 0) {
    const e = errno();
    throw new HelperError(errnoName(e), `socketpair: ${errnoName(e)}`);
  }
  const [ours, theirs] = [sv[0], sv[1]];
  let child: ChildProcess;
  try {
    // Its own process group: a shell outlives a daemon that is stopped with Ctrl-C.
    child = spawn(helper, args, { stdio: ['ignore', 'ignore', 'pipe', theirs], env, detached: true });
  } catch (e) {
    close(ours);
    throw e;
  } finally {
    close(theirs);
  }
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
    child.once('error', () => resolve(127));
  });
  const sock = new usocket.USocket({ fd: ours });
  const chunks: Buffer[] = [];
  const fds: number[] = [];
  sock.on('fds', (got: number[]) => fds.push(...got));
  sock.on('data', (d: Buffer) => chunks.push(d));
  const done = new Promise<void>((resolve) => {
    sock.once('end', resolve);
    sock.once('close', resolve);
    sock.once('error', resolve);
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    done.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
  ]);
  clearTimeout(timer);
  sock.destroy();
  // Descriptors of the usocket's own buffer are in `fds` already; none of the reads above keeps any.
  if (timedOut) {
    for (const fd of fds) close(fd);
    killGroup(child);
    throw new HelperError('ETIMEDOUT', `the machine did not answer within ${timeoutMs / 1000} s`);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.startsWith('ok')) return { text: text.slice(3), fds, exited, child };
  for (const fd of fds) close(fd);
  const m = /^error (\S+) ([\s\S]*)$/.exec(text);
  if (m) throw new HelperError(m[1], m[2]);
  // No answer at all: the helper died (its stderr says why).
  const status = await exited;
  throw new HelperError('EIO', `mymachines-enter failed (exit status ${status})${stderr ? `: ${stderr.trim()}` : ''}`);
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
}
