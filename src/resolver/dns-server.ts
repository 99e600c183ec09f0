// The DNS front end of the resolver: UDP and TCP on each --dns address, for clients that bypass NSS
// (static binaries, Go's netgo resolver, musl), for a dnsmasq or unbound that forwards a zone to us, and
// for the secondaries (BIND, Knot) that copy our zones (AXFR, IXFR) and hear of changes by NOTIFY.
// Every answer comes from DnsResponder, synchronously, from memory: a query never waits for anything. A
// zone transfer is sent a message at a time, the loop free between two, at the pace its client reads.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { dnsListenText, isReverseZone, transferRuleText, type DnsListen, type DnsZoneOptions } from './dns-config.js';
import { Notifier } from './dns-notify.js';
import { DnsResponder, type DnsSource, type Transfer } from './dns-responder.js';
import type { ZoneHead } from './dns-transfer.js';
import { readKeyFiles, type TsigKey } from './dns-tsig.js';
import { ZoneStore } from './dns-zone-store.js';
import { ZoneSet, type ZoneSource } from './dns-zones.js';

interface DnsLogger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  debug(o: object, msg: string): void;
}

export interface DnsServerOptions {
  listen: readonly DnsListen[];
  /** As parseDnsZone gives them (with the reverse zones of --dns-reverse-zone). */
  zones: readonly string[];
  zoneOptions: DnsZoneOptions;
  /** Where the zones' serials are kept (the state directory); none: they start from the clock. */
  stateDir?: string;
  log: DnsLogger;
}

/** A TCP connection is closed when no complete query came for this long, or a transfer's client has
 *  read nothing for this long. */
const TCP_IDLE_MS = 10_000;
/** TCP connections open at once, in all. */
const MAX_TCP_CONNECTIONS = 256;
/** TCP connections open at once from one client address. */
const MAX_TCP_PER_CLIENT = 32;
/** Responses a TCP client may leave unread before it is disconnected (transfers wait for the reader instead). */
const MAX_TCP_OUTPUT_BYTES = 1 << 20;

export class DnsServer {
  private readonly responder: DnsResponder;
  private readonly zones: ZoneSet;
  private notifier: Notifier | undefined;
  private readonly keys: ReadonlyMap<string, TsigKey>;
  private readonly head: ZoneHead;
  private readonly udp: UdpSocket[] = [];
  private readonly tcp: Server[] = [];
  private readonly conns = new Set<Socket>();
  private readonly perClient = new Map<string, number>();

  private constructor(
    source: DnsSource & ZoneSource,
    private readonly opts: DnsServerOptions,
  ) {
    const z = opts.zoneOptions;
    const keys = readKeyFiles(z.tsigKeyFiles);
    for (const [flag, key] of [...z.transferAllow.map((r) => ['--dns-transfer-allow', r.key] as const), ...z.notify.map((t) => ['--dns-notify', t.key] as const)]) {
      if (key !== undefined && !keys.has(key)) throw new Error(`${flag}: key '${key}' is in no --dns-tsig-key file`);
    }
    this.keys = keys;
    this.head = { ns: z.ns, ttl: z.zoneTtl };
    const store = opts.stateDir ? new ZoneStore(opts.stateDir, opts.log) : undefined;
    this.zones = new ZoneSet(source, opts.zones, opts.zones.find((n) => !isReverseZone(n)) ?? '', store, opts.log);
    this.responder = new DnsResponder(source, { zones: this.zones, head: this.head, transferAllow: z.transferAllow, keys, log: opts.log });
  }

  /** Listens on every address (UDP and TCP); rejects, with nothing left open, if one cannot be had. */
  static async start(resolver: DnsSource & ZoneSource, opts: DnsServerOptions): Promise<DnsServer> {
    const s = new DnsServer(resolver, opts);
    try {
      s.zones.start();
      for (const l of opts.listen) {
        await s.listenUdp(l);
        await s.listenTcp(l);
      }
      const { notify } = opts.zoneOptions;
      if (notify.length > 0) {
        const n = (s.notifier = await Notifier.start(notify, opts.listen, s.head, s.keys, opts.log));
        s.zones.on('version', (zone) => n.changed(zone));
        // A restart may have brought a new serial: the secondaries hear of every zone once.
        for (const zone of s.zones.zones) n.changed(zone);
      }
    } catch (e) {
      await s.close();
      throw e;
    }
    const z = opts.zoneOptions;
    opts.log.info(
      { dns: opts.listen.map(dnsListenText), zones: opts.zones, transferAllow: z.transferAllow.map(transferRuleText), notify: z.notify.map(dnsListenText), zoneTtl: z.zoneTtl },
      'dns server listening',
    );
    return s;
  }

  async close(): Promise<void> {
    this.zones.close();
    this.notifier?.close();
    for (const c of this.conns) c.destroy();
    await Promise.all([
      ...this.udp.map((u) => new Promise<void>((r) => u.close(() => r()))),
      ...this.tcp.filter((t) => t.listening).map((t) => new Promise<void>((r) => t.close(() => r()))),
    ]);
    this.udp.length = 0;
    this.tcp.length = 0;
  }

  private listenUdp(l: DnsListen): Promise<void> {
    const u = createSocket(l.family === 6 ? { type: 'udp6', ipv6Only: true } : { type: 'udp4' });
    this.udp.push(u);
    return new Promise((resolve, reject) => {
      u.once('error', (err) => reject(listenError(l, 'udp', err)));
      u.bind({ address: l.host, port: l.port, exclusive: true }, () => {
        u.removeAllListeners('error');
        u.on('error', (err) => this.opts.log.warn({ err, dns: dnsListenText(l) }, 'dns udp socket error'));
        u.on('message', (msg, rinfo) => {
          if (rinfo.port === 0) return;
          const reply = this.answer(msg, 'udp', rinfo.address);
          if (Buffer.isBuffer(reply)) u.send(reply, rinfo.port, rinfo.address, () => {});
        });
        resolve();
      });
    });
  }

  private listenTcp(l: DnsListen): Promise<void> {
    const t = createServer({ noDelay: true }, (c) => this.accept(c));
    this.tcp.push(t);
    return new Promise((resolve, reject) => {
      t.once('error', (err) => reject(listenError(l, 'tcp', err)));
      t.listen({ host: l.host, port: l.port, ipv6Only: true, exclusive: true }, () => {
        t.removeAllListeners('error');
        t.on('error', (err) => this.opts.log.warn({ err, dns: dnsListenText(l) }, 'dns tcp listener error'));
        resolve();
      });
    });
  }

  /** The response to one message; a failure is logged and the message dropped, never thrown. */
  private answer(msg: Buffer, transport: 'udp' | 'tcp', client: string): Buffer | Transfer | undefined {
    try {
      return this.responder.respond(msg, transport, client);
    } catch (err) {
      this.opts.log.warn({ err, transport }, 'dns query failed');
      return undefined;
    }
  }

  /** One TCP connection: 2-byte length framing (RFC 1035 4.2.2), any number of queries answered in order;
   *  while a transfer is sent, the connection is not read. */
  private accept(c: Socket): void {
    const client = c.remoteAddress ?? '';
    const mine = this.perClient.get(client) ?? 0;
    if (this.conns.size >= MAX_TCP_CONNECTIONS || mine >= MAX_TCP_PER_CLIENT) {
      this.opts.log.debug({ client, open: this.conns.size }, 'dns tcp connection refused: too many');
      c.destroy();
      return;
    }
    this.conns.add(c);
    this.perClient.set(client, mine + 1);
    let buffered: Buffer[] = [];
    let length = 0;
    let streaming = false;
    const idle = setTimeout(() => c.destroy(), TCP_IDLE_MS);
    const serve = () => {
      if (streaming || length < 2) return;
      const data = buffered.length === 1 ? buffered[0] : Buffer.concat(buffered, length);
      let off = 0;
      const replies: Buffer[] = [];
      let transfer: Transfer | undefined;
      while (data.length - off >= 2 && !transfer) {
        const size = data.readUInt16BE(off);
        if (data.length - off - 2 < size) break;
        const reply = this.answer(data.subarray(off + 2, off + 2 + size), 'tcp', client);
        off += 2 + size;
        if (!reply) {
          // Nothing to say to this message (no header, or not a query): nothing more to talk about.
          if (replies.length > 0) c.end(joined(replies));
          else c.destroy();
          return;
        }
        if (Buffer.isBuffer(reply)) replies.push(framed(reply));
        else transfer = reply;
      }
      // What is left of a partial message: kept as it is when nothing was consumed, else copied, so as
      // not to hold on to the bytes of the messages answered.
      buffered = off === 0 ? [data] : off < data.length ? [Buffer.from(data.subarray(off))] : [];
      length = data.length - off;
      if (replies.length > 0) {
        idle.refresh();
        c.write(joined(replies));
        // A client that asks and never reads is dropped rather than buffered for without end.
        if (c.writableLength > MAX_TCP_OUTPUT_BYTES) return void c.destroy();
      }
      if (transfer) {
        streaming = true;
        c.pause();
        void this.stream(c, transfer, idle).then((ok) => {
          streaming = false;
          if (!ok) return;
          c.resume();
          serve();
        });
      }
    };
    c.on('data', (chunk: Buffer) => {
      buffered.push(chunk);
      length += chunk.length;
      serve();
    });
    c.on('error', () => {});
    c.once('close', () => {
      clearTimeout(idle);
      this.conns.delete(c);
      const n = (this.perClient.get(client) ?? 1) - 1;
      if (n > 0) this.perClient.set(client, n);
      else this.perClient.delete(client);
    });
  }

  /** Sends a transfer's messages, each when the client has read the one before (its socket drained), with
   *  the loop free between two; false when the connection went (a client that reads nothing for
   *  TCP_IDLE_MS is closed by the idle timer). */
  private async stream(c: Socket, t: Transfer, idle: NodeJS.Timeout): Promise<boolean> {
    const t0 = Date.now();
    let messages = 0;
    for (;;) {
      if (c.destroyed) break;
      let next: IteratorResult<Buffer>;
      try {
        next = t.messages.next();
      } catch (err) {
        this.opts.log.warn({ err, ...t.info }, 'dns zone transfer failed');
        c.destroy();
        break;
      }
      if (next.done) {
        this.opts.log.info({ ...t.info, messages, ms: Date.now() - t0 }, 'dns zone transfer sent');
        return true;
      }
      messages++;
      idle.refresh();
      if (c.write(framed(next.value))) await new Promise<void>((r) => setImmediate(r));
      else await drained(c);
    }
    this.opts.log.info({ ...t.info, messages, ms: Date.now() - t0 }, 'dns zone transfer ended by the client, or stalled and closed');
    return false;
  }
}

/** Resolves when the socket's output is drained or the socket is closed. */
function drained(c: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      c.off('drain', done);
      c.off('close', done);
      resolve();
    };
    c.on('drain', done);
    c.on('close', done);
  });
}

function framed(reply: Buffer): Buffer {
  const f = Buffer.allocUnsafe(2 + reply.length);
  f.writeUInt16BE(reply.length);
  reply.copy(f, 2);
  return f;
}

function joined(buffers: Buffer[]): Buffer {
  return buffers.length === 1 ? buffers[0] : Buffer.concat(buffers);
}

function listenError(l: DnsListen, proto: string, err: NodeJS.ErrnoException): Error {
  return new Error(`cannot listen for DNS on ${dnsListenText(l)} (${proto}): ${err.code ?? err.message}`);
}
