// A Varlink client on a Unix socket. Requests are written at once (pipelined); the server answers them in
// order, so each reply belongs to the oldest call still waiting.

import { closeSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { VarlinkError } from './errors.js';

const MAX_MESSAGE_BYTES = 16 * 1024 * 1024; // as systemd's client

interface Reply { parameters: Record<string, unknown>; continues: boolean; error?: string; fds: number[] }

interface Pending {
  reply(r: Reply): void;
  fail(err: Error): void;
  timer?: NodeJS.Timeout; // until the first reply, when a call timeout is set
}

export interface ConnectOptions {
  /** How long connecting may take (default 5000 ms). */
  timeoutMs?: number;
  /** How long a call may wait for its (first) reply; none by default. Later replies of a `more` call
   *  (Watch) come at the server's pace. As replies come in order, a call that times out fails the
   *  connection, and every call on it, with an error of code ETIMEDOUT. */
  callTimeoutMs?: number;
  /** Take file descriptors that replies carry (SCM_RIGHTS), for callWithFds; other calls close them. */
  acceptFds?: boolean;
}

/** The connection's socket: a net.Socket, or a usocket one where descriptors are taken. */
type Conn = Duplex & { closed?: boolean };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function parseReply(raw: Buffer): Reply | undefined {
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(v)) return undefined;
  const { parameters = {}, continues = false, error } = v;
  if (!isObject(parameters) || typeof continues !== 'boolean' || (error !== undefined && typeof error !== 'string')) {
    return undefined;
  }
  return { parameters, continues, error, fds: [] };
}

const closeAll = (fds: number[]) => {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      /* not ours any more */
    }
  }
};

const connectionError = (message: string, code: string) => Object.assign(new Error(message), { code });

export class VarlinkClient {
  private readonly pending: Pending[] = []; // calls waiting for replies, oldest first
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private failure?: Error; // set once the connection is gone
  /** Descriptors that came with the message still incomplete: they go with it when it ends. */
  private fds: number[] = [];
  /** Those of the last read: the kernel ends a read with the bytes they came with, so they belong to
   *  the message that holds the last byte read. */
  private fresh: number[] = [];

  private constructor(private readonly socket: Conn, private readonly callTimeoutMs?: number) {
    socket.on('fds', (fds: number[]) => this.fresh.push(...fds));
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(connectionError('varlink connection closed', 'ECONNRESET')));
  }

  static async connect(path: string, opts: ConnectOptions = {}): Promise<VarlinkClient> {
    // usocket (a native addon) only where descriptors are taken: mymachinesctl never loads it.
    const USocket = opts.acceptFds ? (await import('usocket')).default.USocket : undefined;
    return new Promise((resolve, reject) => {
      const socket: Conn = USocket ? new USocket({ path }) : net.connect(path);
      const failed = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => failed(connectionError(`varlink: connecting to ${path} timed out`, 'ETIMEDOUT')), opts.timeoutMs ?? 5000);
      socket.once('error', failed);
      socket.once(opts.acceptFds ? 'connected' : 'connect', () => {
        clearTimeout(timer);
        socket.off('error', failed);
        resolve(new VarlinkClient(socket, opts.callTimeoutMs));
      });
    });
  }

  /** The parameters of the reply; an error reply is thrown as VarlinkError. */
  async call(method: string, params: object = {}): Promise<any> {
    const r = await this.callWithFds(method, params);
    closeAll(r.fds);
    return r.parameters;
  }

  /** The reply's parameters and the descriptors it carried (the caller owns them; connect with
   *  acceptFds). Parameters name them by index, as sd-varlink's (ptyFileDescriptor: 0). */
  callWithFds(method: string, params: object = {}): Promise<{ parameters: any; fds: number[] }> {
    return new Promise((resolve, reject) => {
      this.send({ method, parameters: params }, {
        reply: (r) => {
          if (r.error !== undefined || r.continues) closeAll(r.fds);
          if (r.error !== undefined) reject(new VarlinkError(r.error, r.parameters));
          else if (!r.continues) resolve({ parameters: r.parameters, fds: r.fds });
        },
        fail: reject,
      });
    });
  }

  /** The parameters of each reply of a `more` call; an error reply is thrown by the iteration. */
  callMore(method: string, params: object = {}): AsyncIterable<any> {
    // The request goes out now, not at the first next(), to keep its place in the order of calls.
    const items: { value?: unknown; error?: Error; last?: boolean }[] = [];
    let wake: (() => void) | undefined;
    const push = (item: (typeof items)[number]) => {
      items.push(item);
      wake?.();
    };
    try {
      this.send({ method, parameters: params, more: true }, {
        reply: (r) => {
          closeAll(r.fds);
          push(r.error !== undefined ? { error: new VarlinkError(r.error, r.parameters) } : { value: r.parameters, last: !r.continues });
        },
        fail: (error) => push({ error }),
      });
    } catch (error) {
      push({ error: error as Error });
    }
    return {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          while (!items.length) await new Promise<void>((resolve) => { wake = resolve; });
          const item = items.shift()!;
          if (item.error) throw item.error;
          yield item.value;
          if (item.last) return;
        }
      },
    };
  }

  /** Sends a call that gets no reply. */
  async oneway(method: string, params: object = {}): Promise<void> {
    this.send({ method, parameters: params, oneway: true });
  }

  /** Hangs up after the requests already written; calls still waiting fail if their reply is not in by then. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.closed) return resolve();
      const timer = setTimeout(() => this.socket.destroy(), 1000);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end();
    });
  }

  private send(request: object, pending?: Pending): void {
    if (this.failure) throw this.failure;
    this.socket.write(`${JSON.stringify(request)}\0`);
    if (!pending) return;
    const ms = this.callTimeoutMs;
    if (ms !== undefined) {
      const method = (request as { method: string }).method;
      pending.timer = setTimeout(() => this.fail(connectionError(`varlink: no reply to ${method} within ${ms} ms`, 'ETIMEDOUT')), ms);
    }
    this.pending.push(pending);
  }

  private receive(chunk: Buffer): void {
    let start = 0;
    for (let nul = chunk.indexOf(0); nul !== -1 && !this.failure; nul = chunk.indexOf(0, start)) {
      const piece = chunk.subarray(start, nul);
      const raw = this.partialBytes ? Buffer.concat([...this.partial, piece]) : piece;
      this.partial = [];
      this.partialBytes = 0;
      start = nul + 1;
      const reply = parseReply(raw);
      const call = this.pending[0];
      if (!reply || !call) return this.fail(connectionError('varlink: protocol error in reply', 'EPROTO'));
      reply.fds = this.fds.splice(0);
      if (start === chunk.length) reply.fds.push(...this.fresh.splice(0));
      clearTimeout(call.timer);
      // An error ends a call even if it claims to continue.
      if (!reply.continues || reply.error !== undefined) this.pending.shift();
      call.reply(reply);
    }
    // Descriptors of an incomplete message wait for its end.
    this.fds.push(...this.fresh.splice(0));
    if (start < chunk.length && !this.failure) {
      this.partial.push(chunk.subarray(start));
      this.partialBytes += chunk.length - start;
      if (this.partialBytes > MAX_MESSAGE_BYTES) this.fail(connectionError('varlink: reply too long', 'EMSGSIZE'));
    }
  }

  /** The connection is unusable: every waiting call fails with `err`. */
  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.socket.destroy();
    closeAll(this.fds.splice(0));
    closeAll(this.fresh.splice(0));
    for (const call of this.pending.splice(0)) {
      clearTimeout(call.timer);
      call.fail(err);
    }
  }
}
