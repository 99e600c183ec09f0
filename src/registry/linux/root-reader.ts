// Reads small files from a machine's root directory (its leader's /proc/PID/root) or an image's, bounded
// in size and time, without Node's thread pool: a root on a FUSE or NFS mount that stops answering would
// hold a pool thread for good, and four of them every file operation of the daemon.
//
// Each read runs in a worker thread of its own (from a few kept warm). One that does not answer within
// the time limit is given up: its thread is left to the stalled file system (it is killable, and ends
// with the daemon), the caller gets an error, and until that read returns every read from the same
// root fails at once rather than start another thread that would stall too. So a stalled root costs
// one thread, and delays neither other machines nor the daemon's own files.
import { Worker } from 'node:worker_threads';
import type { ReadReply, ReadRequest } from './root-reader-worker.js';

export class RootReadError extends Error {
  constructor(
    readonly why: 'timeout' | 'stalled' | 'no-root' | 'not-a-file' | 'too-large' | 'failed',
    message: string,
  ) {
    super(message);
  }
}

export interface RootReaderOptions {
  timeoutMs?: number;
  /** Idle workers kept for the next reads. */
  spare?: number;
}

interface Pending {
  resolve(r: ReadReply): void;
}

const DEFAULT_TIMEOUT_MS = 2000;

export class RootReader {
  private readonly idle: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  /** Roots (leader PIDs, directories) that did not answer in time: the read still under way. */
  private readonly stalled = new Set<number | string>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly opts: RootReaderOptions = {}) {}

  /** The first of `paths` (relative to the root: a leader PID's root directory, or a directory's path)
   *  that is a regular file of at most maxBytes, or undefined when none is there; a RootReadError when
   *  the root cannot be read, in time or at all. Symlinks resolve inside the root. */
  async read(root: number | string, paths: string[], maxBytes: number): Promise<{ path: string; text: string } | undefined> {
    const timeoutMs = this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (this.stalled.has(root)) throw new RootReadError('stalled', `its root directory did not answer within ${timeoutMs / 1000} s, and has not since`);
    // No queue: a read never waits behind another one (a stalled one would hold it). Callers that read
    // for many machines at once bound how many they start (Varlink List).
    const worker = this.idle.pop() ?? this.spawn();
    const id = this.nextId++;
    const reply = await new Promise<ReadReply | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      this.pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      });
      worker.postMessage({ id, root, paths, maxBytes } satisfies ReadRequest);
    });
    if (!reply) {
      // Given up: the worker stays with its read; when (if) it returns, the root is usable again.
      this.pending.set(id, {
        resolve: () => {
          this.pending.delete(id);
          this.finished(worker, root);
        },
      });
      this.stalled.add(root);
      throw new RootReadError('timeout', `its root directory did not answer within ${timeoutMs / 1000} s`);
    }
    this.pending.delete(id);
    this.release(worker);
    if ('text' in reply) return { path: reply.path, text: reply.text };
    if (reply.error === 'none') return undefined;
    const noRoot = typeof root === 'number' ? 'its leader has no root directory to read (it exited)' : `${root} cannot be opened as a directory`;
    const what = { 'no-root': noRoot, 'not-a-file': `${reply.message} is not a regular file`, 'too-large': `${reply.message} is larger than ${maxBytes} bytes`, failed: `reading failed: ${reply.message}` }[reply.error];
    throw new RootReadError(reply.error, what);
  }

  /** Ends the warm workers; stalled ones end with the process. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.idle.splice(0).map((w) => w.terminate()));
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./root-reader-worker.js', import.meta.url));
    w.unref();
    w.on('message', (r: ReadReply) => this.pending.get(r.id)?.resolve(r));
    // Never expected (the worker catches what it meets); a lost worker only loses its read.
    w.on('error', () => {});
    return w;
  }

  private release(worker: Worker): void {
    if (!this.closed && this.idle.length < (this.opts.spare ?? 2)) this.idle.push(worker);
    else void worker.terminate();
  }

  private finished(worker: Worker, root: number | string): void {
    this.stalled.delete(root);
    this.release(worker);
  }
}
