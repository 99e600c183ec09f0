// The main thread's side of netns-worker.ts: a watcher of container addresses.
import { Worker } from 'node:worker_threads';
import type { Address } from './machine.js';
import type { WorkerReply } from './netns-worker.js';

export type AddressUpdate =
  | { addresses: Address[] }
  | { error: 'no-private-network' | 'gone' | 'failed'; message?: string };

export class NetnsWatcher {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly listeners = new Map<number, (u: AddressUpdate) => void>();

  /** Watches the network namespace of `pid`; `listener` gets the first list and every change. */
  watch(pid: number, listener: (u: AddressUpdate) => void): number {
    const id = this.nextId++;
    this.listeners.set(id, listener);
    this.start().postMessage({ op: 'watch', id, pid });
    return id;
  }

  unwatch(id: number): void {
    if (this.listeners.delete(id)) this.worker?.postMessage({ op: 'unwatch', id });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }

  private start(): Worker {
    if (!this.worker) {
      this.worker = new Worker(new URL('./netns-worker.js', import.meta.url));
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
