// The DNS front end of the resolver: UDP and TCP on each --dns address, for clients that bypass NSS
// (static binaries, Go's netgo resolver, musl) and for a dnsmasq or unbound that forwards a zone to us.
// Every answer comes from DnsResponder, synchronously, from memory: a query never waits for anything.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { dnsListenText, type DnsListen } from './dns-config.js';
import { DnsResponder, type DnsSource } from './dns-responder.js';

interface DnsLogger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  debug(o: object, msg: string): void;
}

export interface DnsServerOptions {
  listen: readonly DnsListen[];
  /** As parseDnsZone gives them. */
  zones: readonly string[];
  log: DnsLogger;
}

/** A TCP connection is closed when no complete query came for this long. */
const TCP_IDLE_MS = 10_000;
/** TCP connections open at once, in all. */
const MAX_TCP_CONNECTIONS = 256;
/** TCP connections open at once from one client address. */
const MAX_TCP_PER_CLIENT = 32;
/** Responses a TCP client may leave unread before it is disconnected. */
const MAX_TCP_OUTPUT_BYTES = 1 << 20;

export class DnsServer {
  private readonly responder: DnsResponder;
  private readonly udp: UdpSocket[] = [];
  private readonly tcp: Server[] = [];
  private readonly conns = new Set<Socket>();
  private readonly perClient = new Map<string, number>();

  private constructor(
    source: DnsSource,
    private readonly opts: DnsServerOptions,
  ) {
    this.responder = new DnsResponder(source, opts.zones);
  }

  /** Listens on every address (UDP and TCP); rejects, with nothing left open, if one cannot be had. */
  static async start(resolver: DnsSource, opts: DnsServerOptions): Promise<DnsServer> {
    const s = new DnsServer(resolver, opts);
    try {
      for (const l of opts.listen) {
        await s.listenUdp(l);
        await s.listenTcp(l);
      }
    } catch (e) {
      await s.close();
      throw e;
    }
    opts.log.info({ dns: opts.listen.map(dnsListenText), zones: opts.zones }, 'dns server listening');
    return s;
  }

  async close(): Promise<void> {
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
          const reply = this.answer(msg, 'udp');
          if (reply) u.send(reply, rinfo.port, rinfo.address, () => {});
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
  private answer(msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    try {
      return this.responder.respond(msg, transport);
    } catch (err) {
      this.opts.log.warn({ err, transport }, 'dns query failed');
      return undefined;
    }
  }

  /** One TCP connection: 2-byte length framing (RFC 1035 4.2.2), any number of queries answered in order. */
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
    const idle = setTimeout(() => c.destroy(), TCP_IDLE_MS);
    c.on('data', (chunk: Buffer) => {
      buffered.push(chunk);
      length += chunk.length;
      if (length < 2) return;
      const data = buffered.length === 1 ? buffered[0] : Buffer.concat(buffered, length);
      let off = 0;
      const replies: Buffer[] = [];
      while (data.length - off >= 2) {
        const size = data.readUInt16BE(off);
        if (data.length - off - 2 < size) break;
        const reply = this.answer(data.subarray(off + 2, off + 2 + size), 'tcp');
        off += 2 + size;
        if (!reply) {
          // Nothing to say to this message (no header, or not a query): nothing more to talk about.
          if (replies.length > 0) c.end(joined(replies));
          else c.destroy();
          return;
        }
        const framed = Buffer.allocUnsafe(2 + reply.length);
        framed.writeUInt16BE(reply.length);
        reply.copy(framed, 2);
        replies.push(framed);
      }
      // What is left of a partial message: kept as it is when nothing was consumed, else copied, so as
      // not to hold on to the bytes of the messages answered.
      buffered = off === 0 ? [data] : off < data.length ? [Buffer.from(data.subarray(off))] : [];
      length = data.length - off;
      if (replies.length > 0) {
        idle.refresh();
        c.write(joined(replies));
        // A client that asks and never reads is dropped rather than buffered for without end.
        if (c.writableLength > MAX_TCP_OUTPUT_BYTES) c.destroy();
      }
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
}

function joined(buffers: Buffer[]): Buffer {
  return buffers.length === 1 ? buffers[0] : Buffer.concat(buffers);
}

function listenError(l: DnsListen, proto: string, err: NodeJS.ErrnoException): Error {
  return new Error(`cannot listen for DNS on ${dnsListenText(l)} (${proto}): ${err.code ?? err.message}`);
}
