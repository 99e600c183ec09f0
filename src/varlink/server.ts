// A Varlink server on Unix sockets: NUL-terminated JSON messages, requests of a connection handled one after
// the other, replies in request order. Everything a client sends is untrusted: bad input closes its
// connection or gets an error reply, and never throws out of the server.

import { closeSync, openSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import { INTERNAL_ERROR, VarlinkError, interfaceNotFound, methodNotFound, methodNotImplemented, protocolError } from './errors.js';
import { peerCredentials, type PeerCredentials } from './peercred.js';
import { closeFds, sendWithFds } from './fd-passing.js';
import { describeInterface, t, validate, type InterfaceDef } from './schema.js';

export interface CallContext {
  method: string;
  more: boolean;
  oneway: boolean;
  peer: PeerCredentials;
  /** In a `more` call: one reply with continues:true. */
  notify(params: object): void;
  /** Resolves once the replies sent so far have mostly left (at once if they have): a handler that
   *  sends many replies waits on it now and then, so that a slow reader is not cut off as a stalled one. */
  drain(): Promise<void>;
  /** The interfaces served on this call's connection (a listener may serve only some). */
  interfaces: readonly string[];
  /** Aborted when the client goes away (or stops sending) or the server closes. */
  signal: AbortSignal;
  /** Hands a file descriptor to the client with the next reply of this call (SCM_RIGHTS, as
   *  sd_varlink_push_fd); returns its index in that reply's descriptors, which the parameters name.
   *  The descriptor is the server's from then on: closed once sent, or when it cannot be. */
  pushFd(fd: number): number;
}

/** Reply parameters already serialized: a handler that sends the same object often (List's machines)
 *  keeps its JSON text and hands it over as it is. `text` must be a JSON object. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** The returned object is the final reply ({} when void); a thrown VarlinkError is an error reply. */
export type Handler = (params: any, ctx: CallContext) => object | void | Promise<object | void>;

/** The handlers with every exception of theirs passed through `map` (a part's own errors as the Varlink
 *  errors that name them); what `map` gives back is thrown. A handler that answers at once still does
 *  (no promise is made for it). */
export function mapErrors(handlers: Record<string, Handler>, map: (e: unknown) => unknown): Record<string, Handler> {
  return Object.fromEntries(
    Object.entries(handlers).map(([k, h]) => [
      k,
      (p: any, ctx: CallContext) => {
        let r: ReturnType<Handler>;
        try {
          r = h(p, ctx);
        } catch (e) {
          throw map(e);
        }
        return r instanceof Promise ? r.catch((e: unknown) => Promise.reject(map(e))) : r;
      },
    ]),
  );
}

export interface VarlinkLogger {
  warn(o: object, msg: string): void;
  debug(o: object, msg: string): void;
}

export interface VarlinkServerOptions {
  vendor: string;
  product: string;
  version: string;
  url: string;
  /** Longest message accepted; a longer one closes the connection. Default 128 KiB. */
  maxMessageBytes?: number;
  /** How long a connection may hold an incomplete message. Default 5000 ms. */
  partialTimeoutMs?: number;
  /** Connections per peer UID (default 1024) and in all (default 4096), as sd-varlink. At the cap the
   *  least recently used idle connection (of that UID) is closed to make room; if none is idle, the new
   *  one is refused. */
  maxConnectionsPerUid?: number;
  maxConnections?: number;
  /** A connection with no call, nothing queued and no partial message is closed after this long.
   *  Default 60 s. Clients that keep connections (the NSS module) reconnect when they need one. */
  idleTimeoutMs?: number;
  /** Replies a client may leave unread before it is disconnected. Default 4 MiB. */
  maxOutputBytes?: number;
  log?: VarlinkLogger;
}

const CLOSE_GRACE_MS = 3000;

const SERVICE_DEF: InterfaceDef = {
  name: 'org.varlink.service',
  doc: 'The Varlink Service Interface is provided by every varlink service. It\ndescribes the service and the interfaces it implements.',
  methods: {
    GetInfo: {
      doc: 'Get a list of all the interfaces a service provides and information\nabout the implementation.',
      in: {},
      out: { vendor: t.string, product: t.string, version: t.string, url: t.string, interfaces: t.array(t.string) },
    },
    GetInterfaceDescription: {
      doc: 'Get the description of an interface that is implemented by this service.',
      in: { interface: t.string },
      out: { description: t.string },
    },
  },
  errors: {
    InterfaceNotFound: { interface: t.string },
    MethodNotFound: { method: t.string },
    MethodNotImplemented: { method: t.string },
    InvalidParameter: { parameter: t.string },
    PermissionDenied: {},
    ExpectedMore: {},
  },
};

interface Request { method: string; parameters: Record<string, unknown>; oneway: boolean; more: boolean }

interface Interface { def: InterfaceDef; handlers: Record<string, Handler>; description: string }

interface Connection {
  socket: net.Socket;
  peer: PeerCredentials;
  /** The interfaces this connection may call (its listener's); undefined: all. */
  interfaces: Set<string> | undefined;
  lastActive: number;
  /** A reply was written in this tick (further ones are corked until the next). */
  sentThisTick: boolean;
  partial: Buffer[]; // the start of a message whose NUL has not arrived yet
  partialBytes: number;
  partialTimer?: NodeJS.Timeout;
  queue: Buffer[]; // complete requests waiting for the one in progress
  queuedBytes: number;
  call?: { done: Promise<void>; abort(): void };
  ended: boolean; // the client sent EOF: it will send nothing more
  closed: boolean;
  /** While a reply with descriptors waits for the replies before it to leave, what follows waits here. */
  held?: { text: string; fds: number[] }[];
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const REQUEST_KEYS = new Set(['method', 'parameters', 'oneway', 'more']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The request in a message, or what is wrong with it (anything the protocol does not allow). */
function parseRequest(raw: Buffer): Request | string {
  let v: unknown;
  try {
    v = JSON.parse(utf8.decode(raw));
  } catch {
    return 'the message is not JSON text in UTF-8';
  }
  if (!isObject(v)) return 'the message is not a JSON object';
  const unknown = Object.keys(v).find((k) => !REQUEST_KEYS.has(k));
  if (unknown !== undefined) return `unknown key '${unknown.slice(0, 64)}' in the request`;
  const { method, parameters = {}, oneway = false, more = false } = v;
  if (typeof method !== 'string') return "the request's method is not a string";
  if (!isObject(parameters)) return "the request's parameters are not an object";
  if (typeof oneway !== 'boolean' || typeof more !== 'boolean') return "the request's oneway and more must be booleans";
  if (oneway && more) return 'a request cannot be both oneway and more';
  return { method, parameters, oneway, more };
}

/** Log the first of a kind of event, then every EVERY_NTH: a flood of them must not flood the log. */
const EVERY_NTH = 100;
const FD_PROBE_MS = 1000;

const errnoError = (message: string, code: string) => Object.assign(new Error(message), { code });

/** Whether a server accepts connections on the socket at `path` (one too busy to accept within a
 *  second counts as alive). */
export function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    const done = (live: boolean) => {
      clearTimeout(timer);
      probe.destroy();
      resolve(live);
    };
    // A server too busy to accept within a second is still alive.
    const timer = setTimeout(() => done(true), 1000);
    probe.once('connect', () => done(true));
    probe.once('error', (err: NodeJS.ErrnoException) => done(err.code !== 'ECONNREFUSED' && err.code !== 'ENOENT'));
  });
}

/** Waits for `p`, but no longer than `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((resolve) => { timer = setTimeout(resolve, ms); })]);
  clearTimeout(timer);
}

export class VarlinkServer {
  private readonly interfaces = new Map<string, Interface>();
  private readonly listeners: net.Server[] = [];
  private readonly connections = new Set<Connection>();
  private readonly perUid = new Map<number, number>();
  private idleTimer?: NodeJS.Timeout;
  private readonly idleTimeoutMs: number;
  private readonly maxMessageBytes: number;
  private readonly partialTimeoutMs: number;
  private readonly maxOutputBytes: number;
  private readonly log: VarlinkLogger;
  private closing?: Promise<void>;
  /** How often each cause of a refused connection or failed accept happened (note()). */
  private readonly counts = new Map<string, number>();
  private fdProbe?: NodeJS.Timeout;

  constructor(private readonly opts: VarlinkServerOptions) {
    this.maxMessageBytes = opts.maxMessageBytes ?? 128 * 1024;
    this.partialTimeoutMs = opts.partialTimeoutMs ?? 5000;
    this.maxOutputBytes = opts.maxOutputBytes ?? 4 * 1024 * 1024;
    this.log = opts.log ?? { warn() {}, debug() {} };
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    this.addInterface(SERVICE_DEF, {
      GetInfo: (_p, ctx) => ({
        vendor: opts.vendor, product: opts.product, version: opts.version, url: opts.url,
        interfaces: [...ctx.interfaces],
      }),
      GetInterfaceDescription: (p: { interface: string }, ctx) => {
        const iface = this.interfaces.get(p.interface);
        if (!iface || !ctx.interfaces.includes(p.interface)) throw interfaceNotFound(p.interface);
        return { description: iface.description };
      },
    });
  }

  /** Serves `def`. A method of `def` without a handler answers MethodNotImplemented. */
  addInterface(def: InterfaceDef, handlers: Record<string, Handler>): void {
    if (this.interfaces.has(def.name)) throw new Error(`interface ${def.name} added twice`);
    for (const name of Object.keys(handlers)) {
      if (!Object.hasOwn(def.methods, name)) throw new Error(`${def.name}: handler for unknown method ${name}`);
    }
    // Describing it now also rejects a malformed definition at start-up rather than at the first call.
    this.interfaces.set(def.name, { def, handlers, description: describeInterface(def) });
  }

  /**
   * Listens on the Unix socket `path`. A socket file left by a dead server is replaced; one that a live
   * server answers on is not (rejects with code EADDRINUSE). `interfaces` limits what is served there
   * (org.varlink.service always is); by default every interface is.
   */
  async listen(path: string, mode = 0o666, interfaces?: readonly string[]): Promise<void> {
    if (this.closing) throw new Error('VarlinkServer is closed');
    await fs.mkdir(dirname(path), { recursive: true, mode: 0o755 });
    const st = await fs.lstat(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (st && !st.isSocket()) throw errnoError(`${path} exists and is not a socket`, 'EEXIST');
    if (st && await isLive(path)) throw errnoError(`${path} is in use by a running server`, 'EADDRINUSE');
    if (st) await fs.rm(path, { force: true });

    for (const i of interfaces ?? []) if (!this.interfaces.has(i)) throw new Error(`listen: unknown interface ${i}`);
    const only = interfaces && new Set([SERVICE_DEF.name, ...interfaces]);
    const server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket, only));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // Without a listener an accept error would be thrown and end the process; with one, a flood of them
    // is logged sparingly.
    server.on('error', (err: NodeJS.ErrnoException) => this.note(`cannot accept connections (${err.code ?? err.message})`, { path }, 'varlink'));
    // Out of descriptors, libuv accepts and closes new connections without a word (its EMFILE trick):
    // a probe once a second makes that seen.
    this.fdProbe ??= setInterval(() => this.probeDescriptors(), FD_PROBE_MS).unref();
    // Closing the server unlinks the socket file (libuv does that for a listening Unix socket).
    if (this.closing) {
      server.close(); // close() was called while we were binding
      throw new Error('VarlinkServer is closed');
    }
    this.listeners.push(server);
    if (!this.idleTimer && this.idleTimeoutMs > 0) {
      this.idleTimer = setInterval(() => this.closeIdle(), Math.max(100, this.idleTimeoutMs / 4));
      this.idleTimer.unref();
    }
    await fs.chmod(path, mode);
  }

  /** Stops accepting, lets calls in flight finish (a few seconds at most), closes connections and socket files. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    clearInterval(this.idleTimer);
    clearInterval(this.fdProbe);
    const stopped = Promise.all(this.listeners.map((s) => new Promise((resolve) => s.close(resolve))));
    const calls: Promise<void>[] = [];
    for (const c of this.connections) {
      c.call?.abort();
      if (c.call) calls.push(c.call.done);
    }
    await within(Promise.all(calls), CLOSE_GRACE_MS);
    // end() sends the replies still buffered before the FIN; a client that does not hang up is then cut off.
    for (const c of this.connections) c.socket.end();
    await within(stopped, 1000);
    for (const c of this.connections) this.finish(c);
    await stopped;
  }

  private accept(socket: net.Socket, only: Set<string> | undefined): void {
    if (this.closing) return void socket.destroy();
    let peer: PeerCredentials;
    try {
      peer = peerCredentials(socket);
    } catch (err) {
      this.log.warn({ err }, 'varlink: no peer credentials, connection refused');
      return void socket.destroy();
    }
    const perUidCap = this.opts.maxConnectionsPerUid ?? 1024;
    const cap = this.opts.maxConnections ?? 4096;
    if (((this.perUid.get(peer.uid) ?? 0) >= perUidCap && !this.evictIdle(peer.uid)) ||
        (this.connections.size >= cap && !this.evictIdle())) {
      this.log.warn({ peer, perUidCap, cap }, 'varlink: too many busy connections, connection refused');
      return void socket.destroy();
    }
    this.perUid.set(peer.uid, (this.perUid.get(peer.uid) ?? 0) + 1);
    const c: Connection = {
      socket, peer, interfaces: only, lastActive: Date.now(), sentThisTick: false,
      partial: [], partialBytes: 0, queue: [], queuedBytes: 0, ended: false, closed: false,
    };
    this.connections.add(c);
    socket.on('data', (chunk: Buffer) => this.receive(c, chunk));
    socket.on('end', () => this.endOfInput(c));
    socket.on('error', (err) => this.log.debug({ err, peer }, 'varlink connection error'));
    socket.on('close', () => this.finish(c));
  }

  private isIdle(c: Connection): boolean {
    return !c.call && c.queue.length === 0 && c.partialBytes === 0;
  }

  /** Closes the least recently used idle connection (of `uid`, if given); false when there is none. */
  private evictIdle(uid?: number): boolean {
    let lru: Connection | undefined;
    for (const c of this.connections) {
      if ((uid === undefined || c.peer.uid === uid) && this.isIdle(c) && (!lru || c.lastActive < lru.lastActive)) lru = c;
    }
    if (lru) this.finish(lru, 'idle connection closed to make room');
    return lru !== undefined;
  }

  private closeIdle(): void {
    const before = Date.now() - this.idleTimeoutMs;
    for (const c of this.connections) if (c.lastActive < before && this.isIdle(c)) this.finish(c, 'idle');
  }

  private receive(c: Connection, chunk: Buffer): void {
    c.lastActive = Date.now();
    let start = 0;
    for (let nul = chunk.indexOf(0); nul !== -1 && !c.closed; nul = chunk.indexOf(0, start)) {
      if (c.partialBytes + nul - start > this.maxMessageBytes) return this.refuse(c, 'message too long', `the message is longer than ${this.maxMessageBytes} bytes`);
      const piece = chunk.subarray(start, nul);
      const msg = c.partialBytes ? Buffer.concat([...c.partial, piece]) : piece;
      c.partial = [];
      c.partialBytes = 0;
      clearTimeout(c.partialTimer);
      c.partialTimer = undefined;
      c.queue.push(msg);
      c.queuedBytes += msg.length + 1; // the NUL counts, so that a flood of empty messages is bounded too
      start = nul + 1;
    }
    if (start < chunk.length && !c.closed) {
      c.partial.push(chunk.subarray(start));
      c.partialBytes += chunk.length - start;
      if (c.partialBytes > this.maxMessageBytes) return this.refuse(c, 'message too long', `the message is longer than ${this.maxMessageBytes} bytes`);
      this.armPartialTimer(c);
    }
    // Flow control for pipelined requests: stop reading while too much waits; pump() resumes.
    if (c.queuedBytes > this.maxMessageBytes) {
      c.socket.pause();
      clearTimeout(c.partialTimer); // the message is incomplete because we stopped reading, not the client
      c.partialTimer = undefined;
    }
    this.pump(c);
  }

  private armPartialTimer(c: Connection): void {
    if (c.partialBytes > 0 && !c.partialTimer && !c.socket.isPaused()) {
      c.partialTimer = setTimeout(() => this.refuse(c, 'incomplete message', `no complete message within ${this.partialTimeoutMs / 1000} s`), this.partialTimeoutMs);
    }
  }

  private endOfInput(c: Connection): void {
    // Requests already received are still answered (a client may send, shut down writing, then read), but
    // a call waiting for events has nobody left to wait for.
    c.ended = true;
    c.partial = [];
    c.partialBytes = 0;
    clearTimeout(c.partialTimer);
    c.call?.abort();
    this.pump(c);
  }

  /** Starts the next queued request unless one is in progress. */
  private pump(c: Connection): void {
    while (!c.call && !c.closed && !this.closing && c.queue.length) {
      const raw = c.queue.shift()!;
      c.queuedBytes -= raw.length + 1;
      this.dispatch(c, raw);
    }
    if (c.closed || c.call) return;
    if (c.ended && !c.queue.length) {
      c.socket.end(); // 'close' follows once the replies are written
    } else if (c.socket.isPaused() && c.queuedBytes <= this.maxMessageBytes) {
      c.socket.resume();
      this.armPartialTimer(c);
    }
  }

  private dispatch(c: Connection, raw: Buffer): void {
    const req = parseRequest(raw);
    if (typeof req === 'string') return this.refuse(c, 'protocol error', req);
    // The AbortController is made on first use: most calls never look at their signal, and making one
    // for every call is a good part of the cost of a lookup.
    let controller: AbortController | undefined;
    let aborted = c.ended || this.closing !== undefined;
    const abort = () => {
      aborted = true;
      controller?.abort();
    };
    let finished = false;
    let fds: number[] = [];
    const reply = (msg: object, last: boolean) => {
      const passed = fds;
      fds = [];
      if (finished || req.oneway) return closeFds(passed);
      finished = last;
      this.send(c, msg, last, passed);
    };
    const all = this.interfaces;
    const ctx: CallContext = {
      method: req.method, more: req.more, oneway: req.oneway, peer: c.peer,
      get interfaces() {
        return [...(c.interfaces ?? all.keys())];
      },
      drain: () => this.drain(c),
      get signal() {
        controller ??= new AbortController();
        if (aborted) controller.abort();
        return controller.signal;
      },
      notify: (params) => {
        if (!req.more) throw new Error(`${req.method}: notify() in a call without 'more'`);
        reply({ parameters: params, continues: true }, false);
      },
      pushFd: (fd) => fds.push(fd) - 1,
    };
    let result: ReturnType<Handler>;
    try {
      result = this.run(c, req, ctx);
    } catch (err) {
      closeFds(fds.splice(0));
      return reply(this.errorReply(req.method, err), true);
    }
    // A handler that answers at once is answered at once: no promise, and the next request follows in pump().
    if (!(result instanceof Promise)) return reply({ parameters: result ?? {} }, true);
    const done = result.then(
      (r) => reply({ parameters: r ?? {} }, true),
      (err) => {
        closeFds(fds.splice(0)); // an error reply carries none
        reply(this.errorReply(req.method, err), true);
      },
    ).finally(() => {
      finished = true; // a notify() after the final reply is dropped
      c.call = undefined;
      this.pump(c);
    });
    c.call = { done, abort };
  }

  private run(c: Connection, req: Request, ctx: CallContext): ReturnType<Handler> {
    const dot = req.method.lastIndexOf('.');
    const ifaceName = dot < 0 ? '' : req.method.slice(0, dot);
    const name = req.method.slice(dot + 1);
    const iface = this.interfaces.get(ifaceName);
    if (!iface || (c.interfaces && !c.interfaces.has(ifaceName))) throw interfaceNotFound(ifaceName);
    if (!Object.hasOwn(iface.def.methods, name)) throw methodNotFound(req.method);
    if (!Object.hasOwn(iface.handlers, name)) throw methodNotImplemented(req.method);
    validate(iface.def, name, req.parameters);
    // Optional keys may come as null; drop them so that handlers only have to test for undefined.
    for (const k in req.parameters) if (req.parameters[k] === null) delete req.parameters[k];
    return iface.handlers[name]!(req.parameters, ctx);
  }

  private errorReply(method: string, err: unknown): object {
    if (err instanceof VarlinkError) return { error: err.name, parameters: err.parameters };
    this.log.warn({ err, method }, 'varlink handler failed');
    return { error: INTERNAL_ERROR, parameters: {} };
  }

  private drain(c: Connection): Promise<void> {
    if (c.closed || c.socket.writableLength < this.maxOutputBytes / 2) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        c.socket.off('drain', done);
        c.socket.off('close', done);
        resolve();
      };
      c.socket.on('drain', done);
      c.socket.on('close', done);
    });
  }

  private send(c: Connection, msg: object, last: boolean, fds: number[] = []): void {
    if (c.closed) return closeFds(fds); // the client went away: its replies are dropped
    c.lastActive = Date.now();
    let text: string;
    try {
      const { parameters, continues } = msg as { parameters?: unknown; continues?: boolean };
      text = parameters instanceof RawJson
        ? `{"parameters":${parameters.text}${continues ? ',"continues":true' : ''}}`
        : JSON.stringify(msg);
    } catch (err) {
      this.log.warn({ err }, 'varlink reply cannot be serialized');
      // An error reply ends a call, so it cannot stand in for an intermediate one.
      if (!last) return this.finish(c, 'unserializable reply');
      text = JSON.stringify({ error: INTERNAL_ERROR, parameters: {} });
    }
    if (fds.length || c.held) return this.sendHeld(c, `${text}\0`, fds);
    // The first reply of a tick is written at once; more replies in the same tick (a List's, or
    // pipelined calls') are corked and leave together in one writev rather than one write each.
    if (!c.sentThisTick) {
      c.sentThisTick = true;
      process.nextTick(() => {
        c.sentThisTick = false;
        if (c.socket.writableCorked) c.socket.uncork();
      });
    } else if (!c.socket.writableCorked) {
      c.socket.cork();
    }
    c.socket.write(`${text}\0`);
    if (c.socket.writableLength > this.maxOutputBytes) this.finish(c, 'client does not read its replies');
  }

  /** A reply with descriptors: once everything written before it has left (so that it keeps its place
   *  among the replies), its first byte goes out with the descriptors in one sendmsg, the rest as usual.
   *  What is sent meanwhile waits behind it. */
  private sendHeld(c: Connection, text: string, fds: number[]): void {
    const start = !c.held;
    (c.held ??= []).push({ text, fds });
    if (!start) return;
    if (c.socket.writableCorked) c.socket.uncork();
    const step = (tries: number) => {
      if (c.closed) {
        for (const h of c.held ?? []) closeFds(h.fds);
        c.held = undefined;
        return;
      }
      // Still leaving: wait, but not for ever (a client that reads nothing is cut off by send()).
      if (c.socket.writableLength > 0 && tries < 30_000) return void setTimeout(() => step(tries + 1), 1);
      while (c.held?.length) {
        const { text: t, fds: f } = c.held[0];
        if (f.length) {
          const buf = Buffer.from(t);
          const sent = sendWithFds(c.socket, buf.subarray(0, 1), f);
          if (sent === 'again' && tries < 30_000) return void setTimeout(() => step(tries + 1), 1);
          closeFds(f);
          if (sent !== 1) return this.finish(c, 'cannot pass file descriptors');
          c.held.shift();
          c.socket.write(buf.subarray(1));
          if (c.socket.writableLength > 0) return void setTimeout(() => step(0), 1);
        } else {
          c.held.shift();
          c.socket.write(t);
        }
      }
      c.held = undefined;
    };
    step(0);
  }

  /** Answers a client that broke the protocol with a named error saying how, then closes its
   *  connection (the reply is written first; one that is not read within a second is dropped). */
  private refuse(c: Connection, cause: string, message: string): void {
    if (c.closed) return;
    this.note(cause, { peer: c.peer, message }, 'varlink: connection closed');
    const socket = c.socket;
    const err = protocolError(message);
    this.finish(c, undefined, false);
    socket.end(`${JSON.stringify({ error: err.name, parameters: err.parameters })}\0`);
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  /** Opens and closes a descriptor: when that fails for want of descriptors, so do accepts. */
  private probeDescriptors(): void {
    try {
      closeSync(openSync('/dev/null', 'r'));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EMFILE' || code === 'ENFILE') this.note(`out of file descriptors (${code}): new connections are closed unanswered`, { connections: this.connections.size }, 'varlink');
    }
  }

  /** Logs the first event of a cause, and every EVERY_NTH after it, with the count so far. */
  private note(cause: string, o: object, msg: string): void {
    const n = (this.counts.get(cause) ?? 0) + 1;
    this.counts.set(cause, n);
    if (n === 1 || n % EVERY_NTH === 0) this.log.warn({ ...o, cause, count: n }, `${msg}: ${cause}`);
  }

  /** Closes the connection at once (idempotent); `reason` is given when the server decides it. With
   *  `destroy` false the socket is left to the caller (to write a last message and end it). */
  private finish(c: Connection, reason?: string, destroy = true): void {
    if (c.closed) return;
    c.closed = true;
    if (reason) this.log.debug({ peer: c.peer, reason }, 'varlink connection closed');
    clearTimeout(c.partialTimer);
    c.partial = [];
    c.queue = [];
    c.call?.abort();
    this.connections.delete(c);
    const n = this.perUid.get(c.peer.uid)! - 1;
    if (n) this.perUid.set(c.peer.uid, n);
    else this.perUid.delete(c.peer.uid);
    if (destroy) c.socket.destroy();
  }
}
