// NOTIFY (RFC 1996) to the secondaries the operator lists (--dns-notify), so that they fetch a changed
// zone at once rather than at the SOA refresh. Coalesced: per secondary and zone one NOTIFY in flight and
// at most one every MIN_INTERVAL_MS, always for the newest serial, so that a registration storm sends a
// bounded number. Sent from the first --dns address of the secondary's family, which is the address a
// secondary knows its primary by (BIND and Knot take NOTIFY from their primaries' addresses only).
import { randomInt } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { dnsListenText, type DnsListen, type NotifyTarget } from './dns-config.js';
import { signRequest, tsigErrorName, verify, type TsigKey } from './dns-tsig.js';
import { soaRecord, type ZoneHead } from './dns-transfer.js';
import { AA, OPCODE, QR, RCODE, TYPE, header, messageTsig, questionBytes, records } from './dns-wire.js';
import type { Zone } from './dns-zones.js';

const MIN_INTERVAL_MS = 500;
/** The first retransmission waits this long, each later one twice as long as the one before. */
const RETRY_MS = 1000;
const MAX_TRIES = 5;

interface NotifyLogger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  debug(o: object, msg: string): void;
}

/** One secondary and one zone. */
interface Peer {
  target: NotifyTarget;
  zone: Zone;
  /** The serial the secondary should hear of. */
  wanted: number;
  inFlight?: { id: number; serial: number; message: Buffer; mac?: Buffer; tries: number; timer?: NodeJS.Timeout };
  /** When the last NOTIFY went. */
  lastSent: number;
  waiting?: NodeJS.Timeout;
}

export class Notifier {
  private readonly sockets = new Map<4 | 6, UdpSocket>();
  private readonly peers = new Map<string, Peer>();
  private closed = false;

  private constructor(
    private readonly targets: readonly NotifyTarget[],
    private readonly head: ZoneHead,
    private readonly keys: ReadonlyMap<string, TsigKey>,
    private readonly log: NotifyLogger,
  ) {}

  /** Opens a socket per family on that family's first --dns address; rejects, nothing left open, if one
   *  cannot be had or a target's family has no --dns address. */
  static async start(targets: readonly NotifyTarget[], listen: readonly DnsListen[], head: ZoneHead, keys: ReadonlyMap<string, TsigKey>, log: NotifyLogger): Promise<Notifier> {
    const n = new Notifier(targets, head, keys, log);
    try {
      for (const family of new Set(targets.map((t) => t.family))) {
        const source = listen.find((l) => l.family === family);
        if (!source) throw new Error(`--dns-notify ${dnsListenText(targets.find((t) => t.family === family)!)}: no --dns address of that family to send from`);
        const s = createSocket(family === 6 ? { type: 'udp6', ipv6Only: true } : { type: 'udp4' });
        n.sockets.set(family, s);
        await new Promise<void>((resolve, reject) => {
          s.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`cannot send NOTIFY from ${source.host}: ${err.code ?? err.message}`)));
          s.bind({ address: source.host, port: 0 }, () => {
            s.removeAllListeners('error');
            s.on('error', (err) => log.warn({ err }, 'dns notify socket error'));
            s.on('message', (m, rinfo) => n.answered(m, rinfo.address, rinfo.port));
            resolve();
          });
        });
      }
    } catch (e) {
      n.close();
      throw e;
    }
    return n;
  }

  close(): void {
    this.closed = true;
    for (const p of this.peers.values()) {
      clearTimeout(p.inFlight?.timer);
      clearTimeout(p.waiting);
    }
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }

  /** Tells every secondary that the zone has a new serial. */
  changed(zone: Zone): void {
    for (const target of this.targets) {
      const k = `${dnsListenText(target)} ${zone.name}`;
      let p = this.peers.get(k);
      if (!p) this.peers.set(k, (p = { target, zone, wanted: zone.serial, lastSent: 0 }));
      p.wanted = zone.serial;
      this.kick(p);
    }
  }

  /** Sends now, or once MIN_INTERVAL_MS after the last. A NOTIFY in flight for an older serial is given
   *  up for the newest (its retransmissions back off to 16 s: a secondary that was down and is back
   *  hears of the next change at once rather than at the next retransmission). */
  private kick(p: Peer): void {
    if (this.closed || p.waiting) return;
    if (p.inFlight) {
      if (p.inFlight.serial === p.wanted) return;
      clearTimeout(p.inFlight.timer);
      p.inFlight = undefined;
    }
    const wait = p.lastSent + MIN_INTERVAL_MS - Date.now();
    if (wait > 0) {
      p.waiting = setTimeout(() => {
        p.waiting = undefined;
        this.kick(p);
      }, wait);
      return;
    }
    const id = randomInt(0x10000);
    const serial = p.wanted;
    let message: Buffer = Buffer.concat([
      header(id, (OPCODE.NOTIFY << 11) | AA, 1, 1, 0, 0),
      questionBytes(p.zone.name, TYPE.SOA),
      records([soaRecord(p.zone, this.head, this.head.ttl, serial)], [], []),
    ]);
    let mac: Buffer | undefined;
    if (p.target.key) {
      const s = signRequest(message, this.keys.get(p.target.key)!, Math.floor(Date.now() / 1000));
      message = s.signed;
      mac = s.mac;
    }
    p.inFlight = { id, serial, message, mac, tries: 0 };
    this.send(p);
  }

  private send(p: Peer): void {
    const f = p.inFlight!;
    f.tries++;
    p.lastSent = Date.now();
    this.sockets.get(p.target.family)!.send(f.message, p.target.port, p.target.host, () => {});
    this.log.debug({ secondary: dnsListenText(p.target), zone: p.zone.name, serial: f.serial, try: f.tries }, 'dns notify sent');
    f.timer = setTimeout(() => {
      if (f.tries < MAX_TRIES) return this.send(p);
      this.log.warn({ secondary: dnsListenText(p.target), zone: p.zone.name, serial: f.serial, tries: f.tries }, 'dns notify unanswered: the secondary will see the change at its next SOA refresh');
      this.done(p);
    }, RETRY_MS << (f.tries - 1));
  }

  private done(p: Peer): void {
    const sent = p.inFlight?.serial;
    clearTimeout(p.inFlight?.timer);
    p.inFlight = undefined;
    if (sent !== p.wanted) this.kick(p);
  }

  /** A response from a secondary: the NOTIFY in flight to it with that ID is answered. */
  private answered(m: Buffer, address: string, port: number): void {
    if (m.length < 12 || !(m.readUInt16BE(2) & QR) || ((m.readUInt16BE(2) >> 11) & 0xf) !== OPCODE.NOTIFY) return;
    const id = m.readUInt16BE(0);
    const p = [...this.peers.values()].find((x) => x.inFlight?.id === id && x.target.host === address && x.target.port === port);
    if (!p) return;
    const f = p.inFlight!;
    const secondary = dnsListenText(p.target);
    const rcode = m.readUInt16BE(2) & 0xf;
    const t = messageTsig(m);
    if (f.mac && rcode === RCODE.NOERROR) {
      // A signed NOTIFY needs a signed answer (RFC 8945 5.3); one that is not is not taken.
      const v = typeof t === 'object' ? verify(m, t, this.keys, Math.floor(Date.now() / 1000), f.mac) : undefined;
      if (!v?.ok) {
        this.log.warn({ secondary, zone: p.zone.name, why: v ? v.why : typeof t === 'string' ? t : 'unsigned' }, 'dns notify answer without a good TSIG signature: ignored');
        return;
      }
    }
    if (rcode !== RCODE.NOERROR) {
      const tsigError = typeof t === 'object' && t.error ? ` (TSIG ${tsigErrorName(t.error)})` : '';
      this.log.warn({ secondary, zone: p.zone.name, rcode }, `dns notify refused by the secondary: rcode ${rcode}${tsigError}`);
    } else this.log.debug({ secondary, zone: p.zone.name, serial: f.serial }, 'dns notify answered');
    this.done(p);
  }
}
