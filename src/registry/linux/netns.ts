// The main thread's side of netns-worker.ts: a watcher of container addresses.
import { Worker } from 'node:worker_threads';
import * as c from './libc.js';
import type { Address } from '../address.js';
import { readNamespace } from './proc.js';
import type { WorkerReply, WorkerRequest } from './netns-worker.js';

export type AddressUpdate =
  | { addresses: Address[] }
  | { error: 'no-private-network' | 'gone' | 'failed'; message?: string };

export class NetnsWatcher {
  private worker: Worker | undefined;
  /** An eventfd that the worker polls beside its netlink sockets: written after each message, so that
   *  a message never waits for the worker's poll() to time out. */
  private wakeFd = -1;
  private readonly one = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);
  private nextId = 1;
  private readonly listeners = new Map<number, (u: AddressUpdate) => void>();
  readonly ownNetns = readNamespace('self', 'net');

  /** Watches the network namespace `ns` of `pid` (readNamespace); `listener` gets the first list and
   *  every change. A leader that is gone, or in our own namespace, is answered at once without the worker. */
  watch(pid: number, ns: string | undefined, listener: (u: AddressUpdate) => void): number {
    const id = this.nextId++;
    if (ns === undefined || ns === '' || ns === this.ownNetns) {
      listener({ error: ns === undefined ? 'gone' : 'no-private-network' });
      return id;
    }
    this.listeners.set(id, listener);
    this.post({ op: 'watch', id, pid });
    return id;
  }

  unwatch(id: number): void {
    if (this.listeners.delete(id)) this.post({ op: 'unwatch', id });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
    if (this.wakeFd >= 0) c.close(this.wakeFd);
    this.wakeFd = -1;
  }

  private post(m: WorkerRequest): void {
    this.start().postMessage(m);
    c.write(this.wakeFd, this.one, 8);
  }

  private start(): Worker {
    if (!this.worker) {
      if (this.wakeFd < 0) this.wakeFd = c.eventfd(0, c.EFD_CLOEXEC | c.EFD_NONBLOCK);
      if (this.wakeFd < 0) throw new Error(`eventfd: errno ${c.errno()}`);
      this.worker = new Worker(new URL('./netns-worker.js', import.meta.url), { workerData: { wakeFd: this.wakeFd } });
      this.worker.unref();
      this.worker.on('message', (m: WorkerReply) => {
        const { id, ...update } = m;
        this.listeners.get(id)?.(update as AddressUpdate);
      });
      this.worker.on('error', (e) => {
        // Never expected; without the worker no addresses would update, so fail loudly.
        throw e;
      });
    }
    return this.worker;
  }
}
