// The zones of the DNS server as a secondary sees them, asked with dig and with raw messages: AXFR and
// IXFR (incremental, up to date, history gone, odd serials, over UDP), who may transfer, TSIG (good,
// wrong, unknown, truncated, huge, late), malformed requests, NOTIFY coalescing, the serials' file in the
// state directory, and a zone of thousands of machines sent to a client that stalls while others are
// served. The daemon listens on 127.0.0.1 (clients also use 127.0.0.2 as their source address).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { VarlinkClient } from '../src/varlink/client.js';
import { DAEMON, startDaemon, type Daemon } from './helpers/daemon.js';
import { dig, digText, parseTransfer } from './helpers/dig.js';
import { bindKeyText, makeTsigSecret } from './helpers/dns-servers.js';
import { endSleepingLeaders, sleepingLeaderPid, sleepingLeaders } from './helpers/leaders.js';
import { freePort } from './helpers/ports.js';
import { eachStep, run, sleep, waitFor } from './helpers/run.js';

const ZONE = 'zone.test';

/** A TCP client that sends its requests, reads nothing (a 4 KiB receive buffer) until its stdin ends,
 *  then reads to the end and says how it ended. */
const STALLED_CLIENT = `
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(('127.0.0.1', int(sys.argv[1])))
s.sendall(bytes.fromhex(sys.argv[2]))
print('connected', flush=True)
sys.stdin.read()
s.settimeout(3)
n = 0
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        n += len(b)
    print('closed after %d bytes' % n, flush=True)
except Exception as e:
    print('still open: %s' % e, flush=True)
`;
const REV4 = '90.77.10.in-addr.arpa';

// A TSIG signer of the test's own (RFC 8945), independent of the daemon's, for requests dig cannot make.
function nameWire(name: string): Buffer {
  return Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
}
function be(n: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  b.writeUIntBE(n, 0, bytes);
  return b;
}
function sign(msg: Buffer, key: { name: string; secret: string }, o: { time?: number; macBytes?: number; mac?: Buffer } = {}): Buffer {
  const time = o.time ?? Math.floor(Date.now() / 1000);
  const alg = nameWire('hmac-sha256');
  const vars = Buffer.concat([nameWire(key.name), be(255, 2), be(0, 4), alg, be(time, 6), be(300, 2), be(0, 2), be(0, 2)]);
  const full = createHmac('sha256', Buffer.from(key.secret, 'base64')).update(msg).update(vars).digest();
  const mac = o.mac ?? full.subarray(0, o.macBytes ?? 32);
  const rdata = Buffer.concat([alg, be(time, 6), be(300, 2), be(mac.length, 2), mac, msg.subarray(0, 2), be(0, 2), be(0, 2)]);
  const out = Buffer.concat([msg, nameWire(key.name), be(250, 2), be(255, 2), be(0, 4), be(rdata.length, 2), rdata]);
  out.writeUInt16BE(msg.readUInt16BE(10) + 1, 10);
  return out;
}

function query(id: number, name: string, type: string, extra: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: 0, questions: [{ type: type as dnsPacket.RecordType, name, class: 'IN' }], ...extra });
}
function ixfr(id: number, serial: number): Buffer {
  const soa = { type: 'SOA' as const, name: ZONE, ttl: 0, data: { mname: 'a', rname: 'b', serial, refresh: 0, retry: 0, expire: 0, minimum: 0 } };
  return query(id, ZONE, 'IXFR', { authorities: [soa] });
}
const rcodeOf = (m: Buffer) => m.readUInt16BE(2) & 0xf;
/** The TSIG error of a response (its last record), or undefined. */
function tsigError(m: Buffer): number | undefined {
  const t = dnsPacket.decode(m).additionals?.find((a) => (a.type as string) === 'TSIG') as unknown as { data: Buffer } | undefined;
  if (!t) return undefined;
  const d = t.data;
  const macSize = d.readUInt16BE(13 + 8);
  return d.readUInt16BE(13 + 10 + macSize + 2);
}

/** Sends framed messages over one TCP connection (from `from`) and collects the replies until `n` came
 *  or the server closed. */
async function tcpAsk(port: number, msgs: Buffer[], n: number, from = '127.0.0.2'): Promise<{ replies: Buffer[]; closed: boolean }> {
  const c = connect({ host: '127.0.0.1', port, localAddress: from });
  await new Promise<void>((r, j) => (c.once('connect', () => r()), c.once('error', j)));
  const replies: Buffer[] = [];
  let buf = Buffer.alloc(0);
  let closed = false;
  c.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
  });
  c.on('error', () => {});
  c.on('close', () => (closed = true));
  for (const m of msgs) c.write(Buffer.concat([be(m.length, 2), m]));
  const end = Date.now() + 3000;
  while (replies.length < n && !closed && Date.now() < end) await sleep(10);
  c.destroy();
  return { replies, closed };
}

async function udpAsk(port: number, msg: Buffer, from = '127.0.0.2'): Promise<Buffer | undefined> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, from, () => r()));
  const got = new Promise<Buffer | undefined>((r) => {
    s.once('message', (m) => r(m));
    setTimeout(() => r(undefined), 1500);
  });
  s.send(msg, port, '127.0.0.1');
  const m = await got;
  s.close();
  return m;
}

describe('DNS zones: flags and key files', () => {
  test('bad zone flags are usage errors that name the flag', async () => {
    const dns = ['--dns', '127.0.0.1:53'];
    const cases: [string[], string][] = [
      [[...dns, '--dns-reverse-zone', '10.77.80.0/20'], "mymachinesd: invalid --dns-reverse-zone '10.77.80.0/20': reverse zones are cut at octet boundaries; give /16 or /24 prefixes (one zone each)"],
      [[...dns, '--dns-reverse-zone', 'fd77:84::/30'], "mymachinesd: invalid --dns-reverse-zone 'fd77:84::/30': reverse zones are cut at nibble boundaries; give /28 or /32 prefixes (one zone each)"],
      [[...dns, '--dns-reverse-zone', '10.77.86.5/24'], "mymachinesd: invalid --dns-reverse-zone '10.77.86.5/24': bits are set past the prefix length (the range starts at 10.77.86.0/24)"],
      [[...dns, '--dns-reverse-zone', '10.77.86.0'], "mymachinesd: invalid --dns-reverse-zone '10.77.86.0': give the prefix length, e.g. 10.77.86.0/24"],
      [[...dns, '--dns-reverse-zone', 'machine'], "mymachinesd: invalid --dns-reverse-zone 'machine': not a reverse zone (in-addr.arpa or ip6.arpa) nor an address prefix"],
      [[...dns, '--dns-zone', 'm', '--dns-transfer-allow', 'key='], "mymachinesd: invalid --dns-transfer-allow 'key=': key= names a key, a DNS name (letters, digits, '-', '_', labels of 1..63)"],
      [[...dns, '--dns-zone', 'm', '--dns-notify', '127.0.0.5,key=a..b'], "mymachinesd: invalid --dns-notify '127.0.0.5,key=a..b': key= names a key, a DNS name (letters, digits, '-', '_', labels of 1..63)"],
      [[...dns, '--dns-zone', 'm', '--dns-transfer-allow', 'somehost'], "mymachinesd: invalid --dns-transfer-allow 'somehost': expected an address or a prefix such as 10.77.0.0/16 or fd77::/48"],
      [[...dns, '--dns-zone', 'm', '--dns-transfer-allow', '10.0.0.0/33'], "mymachinesd: invalid --dns-transfer-allow '10.0.0.0/33': the prefix length must be 0..32"],
      [[...dns, '--dns-zone', 'm', '--dns-transfer-allow', 'key=a,key=b'], "mymachinesd: invalid --dns-transfer-allow 'key=a,key=b': one key per rule (give several rules for several keys)"],
      [[...dns, '--dns-zone', 'm', '--dns-notify', '127.0.0.5:53,tsig=x'], "mymachinesd: invalid --dns-notify '127.0.0.5:53,tsig=x': expected ADDR[:PORT] or ADDR[:PORT],key=NAME"],
      [[...dns, '--dns-zone-ttl=-1'], "mymachinesd: invalid --dns-zone-ttl '-1': expected seconds, 0..604800"],
      [[...dns, '--dns-zone-ttl', '604801'], "mymachinesd: invalid --dns-zone-ttl '604801': expected seconds, 0..604800"],
      [[...dns, '--dns-tsig-key', 'keys/xfr.key'], "mymachinesd: invalid --dns-tsig-key 'keys/xfr.key': give an absolute path"],
      [[...dns, '--dns-transfer-allow', '127.0.0.2'], 'mymachinesd: --dns-transfer-allow needs a zone (--dns-zone or --dns-reverse-zone)'],
      [['--dns-reverse-zone', '10.77.86.0/24'], 'mymachinesd: --dns-reverse-zone needs --dns ADDR[:PORT]'],
    ];
    for (const [args, stderr] of cases) {
      const r = await run(DAEMON, args);
      assert.deepEqual({ code: r.code, stderr: r.stderr.split('\n')[0] }, { code: 2, stderr }, args.join(' '));
    }
  });

  test('bad key files stop the start with exit 1 and say what is wrong where', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mymachines-dnskeys-'));
    const port = await freePort();
    try {
      const k = (name: string, text: string) => {
        writeFileSync(join(dir, name), text);
        return join(dir, name);
      };
      const secret = randomBytes(32).toString('base64');
      const cases: [string[], string][] = [
        [['--dns-tsig-key', join(dir, 'missing.key')], `mymachinesd: --dns-tsig-key ${join(dir, 'missing.key')}: ENOENT`],
        [['--dns-tsig-key', k('md5.key', `key "x" { algorithm hmac-md5; secret "${secret}"; };`)], `mymachinesd: --dns-tsig-key ${join(dir, 'md5.key')}: key 'x': algorithm hmac-md5 is not supported (only hmac-sha256)`],
        [['--dns-tsig-key', k('b64.key', 'key "x" { algorithm hmac-sha256; secret "not base64!"; };')], `mymachinesd: --dns-tsig-key ${join(dir, 'b64.key')}: key 'x': the secret is not base64`],
        [['--dns-tsig-key', k('short.key', 'key "x" { algorithm hmac-sha256; secret "c2hvcnQ="; };')], `mymachinesd: --dns-tsig-key ${join(dir, 'short.key')}: key 'x': the secret has 5 bytes, at least 16 are needed (tsig-keygen makes 32)`],
        [['--dns-tsig-key', k('cut.key', `key "x" { algorithm hmac-sha256; secret "${secret}";`)], `mymachinesd: --dns-tsig-key ${join(dir, 'cut.key')}: the file ends where '}' should be`],
        [['--dns-tsig-key', k('empty.key', '# nothing\n')], `mymachinesd: --dns-tsig-key ${join(dir, 'empty.key')}: no key in the file`],
        [['--dns-tsig-key', k('ok.key', bindKeyText({ name: 'x', secret })), '--dns-transfer-allow', 'key=y'], "mymachinesd: --dns-transfer-allow: key 'y' is in no --dns-tsig-key file"],
      ];
      for (const [args, stderr] of cases) {
        const r = await run(DAEMON, ['--runtime-dir', join(dir, 'run'), '--state-dir', join(dir, 'm'), '--userdb-dir', '', '--resolve-hook-dir', '', '--machine-dir', '', '--bus', 'none', '--dns', `127.0.0.1:${port}`, '--dns-zone', ZONE, ...args]);
        assert.deepEqual({ code: r.code, stderr: r.stderr }, { code: 1, stderr: `${stderr}\n` }, args.join(' '));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--help names every zone flag', async () => {
    const r = await run(DAEMON, ['--help']);
    for (const flag of ['--dns-reverse-zone PREFIX', '--dns-ns NAME', '--dns-zone-ttl SEC', '--dns-transfer-allow ADDR', '--dns-notify ADDR', '--dns-tsig-key FILE']) {
      assert.ok(r.stdout.includes(`  ${flag}`), flag);
    }
  });
});

describe('DNS zones: transfers', () => {
  let d: Daemon;
  let port: number;
  let notifyPort: number;
  let dir: string;
  const key = makeTsigSecret('xfr');
  const notifies: { serial: number; at: number }[] = [];
  /** While true, the test's secondary notes NOTIFYs but answers none (as one that is down). */
  let silent = false;
  const secondary = createSocket('udp4');
  const q = (args: string[], from = '127.0.0.2') => dig('127.0.0.1', port, ['-b', from, ...args]);
  const serial = async () => Number((await q([ZONE, 'SOA'])).answer[0][4].split(' ')[2]);
  const xfr = async (args: string[], from = '127.0.0.2') => parseTransfer(await digText('127.0.0.1', port, ['-b', from, ...args]));
  const soa = (s: number, ttl = '60') => [`${ZONE}.`, ttl, 'IN', 'SOA', `ns1.example.org. hostmaster.${ZONE}. ${s} 3600 600 86400 60`];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mymachines-dnszones-'));
    writeFileSync(join(dir, 'xfr.key'), bindKeyText(key), { mode: 0o600 });
    port = await freePort();
    // A secondary of the test's own: it answers every NOTIFY and notes its serial.
    await new Promise<void>((r) => secondary.bind(0, '127.0.0.1', () => r()));
    notifyPort = secondary.address().port;
    secondary.on('message', (m, rinfo) => {
      const p = dnsPacket.decode(m);
      const a = p.answers?.[0];
      if (p.questions?.[0]?.name === ZONE && a?.type === 'SOA') notifies.push({ serial: a.data.serial ?? 0, at: Date.now() });
      if (silent) return;
      const reply = Buffer.from(m);
      reply.writeUInt16BE(m.readUInt16BE(2) | 0x8000, 2);
      secondary.send(reply, rinfo.port, rinfo.address);
    });
    mkdirSync(join(dir, 'd'));
    d = await startDaemon({
      dir: join(dir, 'd'),
      args: [
        '--dns', `127.0.0.1:${port}`, '--dns-zone', ZONE, '--dns-reverse-zone', '10.77.90.0/24', '--dns-reverse-zone', 'fd77:90::/32',
        '--dns-zone-ttl', '60', '--dns-ns', 'ns1.example.org', '--dns-ns', 'ns2.example.org',
        '--dns-tsig-key', join(dir, 'xfr.key'), '--dns-transfer-allow', '127.0.0.2', '--dns-transfer-allow', 'key=xfr',
        '--dns-notify', `127.0.0.1:${notifyPort}`,
      ],
    });
    assert.equal((await d.ctl(['register', 'web', '--class', 'vm', '--leader', String(sleepingLeaderPid()), '--address', '10.77.90.10', '--address', 'fd77:90::10'])).code, 0);
    await waitFor('web in the zone', async () => ((await xfr([ZONE, 'AXFR'])).records.length === 6 ? true : undefined));
  });

  after(() =>
    eachStep([
      () => secondary.close(),
      () => endSleepingLeaders(),
      async () => d && assert.equal(await d.stop(), 0),
      () => dir && rmSync(dir, { recursive: true, force: true }),
    ]));

  test('AXFR: SOA, NS, the records, SOA, with the zone TTL; direct answers keep TTL 0', async () => {
    const s = await serial();
    const ns = (n: string) => [`${ZONE}.`, '60', 'IN', 'NS', `${n}.`];
    assert.deepEqual(await xfr([ZONE, 'AXFR']), {
      records: [soa(s), ns('ns1.example.org'), ns('ns2.example.org'), [`web.${ZONE}.`, '60', 'IN', 'A', '10.77.90.10'], [`web.${ZONE}.`, '60', 'IN', 'AAAA', 'fd77:90::10'], soa(s)],
    });
    const rev = await xfr([REV4, 'AXFR']);
    assert.deepEqual(rev.records[3], [`10.${REV4}.`, '60', 'IN', 'PTR', `web.${ZONE}.`]);
    const rev6 = await xfr(['0.9.0.0.7.7.d.f.ip6.arpa', 'AXFR']);
    assert.deepEqual(rev6.records[3], ['0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.0.0.7.7.d.f.ip6.arpa.', '60', 'IN', 'PTR', `web.${ZONE}.`]);
    assert.deepEqual((await q([`web.${ZONE}`, 'A'])).answer, [[`web.${ZONE}.`, '0', 'IN', 'A', '10.77.90.10']]);
    assert.deepEqual((await q([ZONE, 'NS'])).answer, [ns('ns1.example.org').map((x, i) => (i === 1 ? '0' : x)), ns('ns2.example.org').map((x, i) => (i === 1 ? '0' : x))]);
    assert.deepEqual((await q([ZONE, 'SOA'])).answer, [soa(s, '0')]);
  });

  test('who may transfer: the listed address, or anyone with the key; others REFUSED; a wrong or unknown key NOTAUTH', async () => {
    assert.equal((await xfr([ZONE, 'AXFR'], '127.0.0.2')).records.length, 6);
    assert.equal((await xfr(['-k', join(dir, 'xfr.key'), ZONE, 'AXFR'], '127.0.0.1')).records.length, 6);
    const refused = await tcpAsk(port, [query(1, ZONE, 'AXFR')], 1, '127.0.0.1');
    assert.deepEqual(refused.replies.map(rcodeOf), [5]);
    const wrong = { name: 'xfr', secret: randomBytes(32).toString('base64') };
    const badsig = await tcpAsk(port, [sign(query(2, ZONE, 'AXFR'), wrong)], 1, '127.0.0.2');
    assert.deepEqual(badsig.replies.map((m) => [rcodeOf(m), tsigError(m)]), [[9, 16]], 'NOTAUTH, BADSIG: even from an allowed address');
    const badkey = await tcpAsk(port, [sign(query(3, ZONE, 'AXFR'), { name: 'other', secret: key.secret })], 1);
    assert.deepEqual(badkey.replies.map((m) => [rcodeOf(m), tsigError(m)]), [[9, 17]]);
    const logged = d.logLines('dns request with a bad TSIG signature refused').map((l) => [l.client, l.key, l.error]);
    assert.deepEqual(logged.slice(-2), [['127.0.0.2', 'xfr', 'BADSIG'], ['127.0.0.2', 'other', 'BADKEY']]);
    // dig's own view of a wrong key.
    const out = await digText('127.0.0.1', port, ['-b', '127.0.0.1', '-y', `hmac-sha256:xfr:${wrong.secret}`, ZONE, 'AXFR']);
    assert.match(out, /; Transfer failed\./);
    // Queries from anyone are answered, signed ones signed.
    assert.equal((await q([`web.${ZONE}`, 'A'], '127.0.0.1')).status, 'NOERROR');
    const signed = await digText('127.0.0.1', port, ['-k', join(dir, 'xfr.key'), `web.${ZONE}`, 'A']);
    assert.match(signed, /^xfr\.\s+0\s+ANY\s+TSIG\s+hmac-sha256\. \d+ 300 32 \S+ \d+ NOERROR 0/m);
    assert.doesNotMatch(signed, /Couldn't verify|tsig indicates error|expected a TSIG/);
  });

  test('IXFR: incremental from a recent serial, the SOA alone when up to date or newer, the whole zone when the history is gone', async () => {
    const s0 = await serial();
    assert.equal((await d.ctl(['register', 'db', '--class', 'vm', '--leader', String(sleepingLeaderPid()), '--address', '10.77.90.11'])).code, 0);
    await waitFor('a new serial', async () => ((await serial()) !== s0 ? true : undefined));
    const s1 = await serial();
    assert.equal((await d.ctl(['unregister', 'web'])).code, 0);
    await waitFor('a new serial', async () => ((await serial()) !== s1 ? true : undefined));
    const s2 = await serial();
    // From s0: web went, db came (condensed into one difference).
    assert.deepEqual((await xfr([ZONE, `IXFR=${s0}`])).records, [
      soa(s2), soa(s0), [`web.${ZONE}.`, '60', 'IN', 'A', '10.77.90.10'], [`web.${ZONE}.`, '60', 'IN', 'AAAA', 'fd77:90::10'], soa(s2), [`db.${ZONE}.`, '60', 'IN', 'A', '10.77.90.11'], soa(s2),
    ]);
    assert.deepEqual((await xfr([ZONE, `IXFR=${s1}`])).records, [soa(s2), soa(s1), [`web.${ZONE}.`, '60', 'IN', 'A', '10.77.90.10'], [`web.${ZONE}.`, '60', 'IN', 'AAAA', 'fd77:90::10'], soa(s2), soa(s2)]);
    assert.deepEqual((await xfr([ZONE, `IXFR=${s2}`])).records, [soa(s2)]);
    // A serial ahead of ours (RFC 1982) is up to date too; one we never had gets the whole zone.
    assert.deepEqual((await xfr([ZONE, `IXFR=${(s2 + 1000) >>> 0}`])).records, [soa(s2)]);
    const full = (await xfr([ZONE, `IXFR=${(s2 - 100000) >>> 0}`])).records;
    assert.deepEqual([full[0], full.at(-1), full.length], [soa(s2), soa(s2), 5]);
    // Over UDP: the SOA alone (the client then asks over TCP); AXFR over UDP is refused.
    const u = await udpAsk(port, ixfr(7, s0));
    assert.deepEqual(dnsPacket.decode(u!).answers!.map((a) => [a.type, a.type === 'SOA' && a.data.serial]), [['SOA', s2]]);
    assert.equal(rcodeOf((await udpAsk(port, query(8, ZONE, 'AXFR')))!), 5);
    const log = d.logLines('dns zone transfer sent').filter((l) => l.type === 'IXFR');
    assert.deepEqual(log.slice(-5).map((l) => [l.from, l.incremental]), [[s0, true], [s1, true], [s2, false], [(s2 + 1000) >>> 0, false], [(s2 - 100000) >>> 0, false]]);
  });

  test('malformed transfer requests and TSIG records get FORMERR, NOTAUTH or REFUSED, and change nothing', async () => {
    const s = await serial();
    const noSoa = query(11, ZONE, 'IXFR');
    const badSoa = Buffer.from(ixfr(12, s).subarray(0, ixfr(12, s).length - 3));
    const notOurs = query(13, 'other.test', 'AXFR');
    const below = query(14, `web.${ZONE}`, 'AXFR');
    const signed = sign(query(15, ZONE, 'AXFR'), key);
    const truncated = Buffer.from(signed.subarray(0, signed.length - 5));
    const hugeMac = sign(query(16, ZONE, 'AXFR'), key, { mac: randomBytes(300) });
    const shortMac = sign(query(17, ZONE, 'AXFR'), key, { macBytes: 8 });
    const cutMac = sign(query(18, ZONE, 'AXFR'), key, { macBytes: 20 });
    const late = sign(query(19, ZONE, 'AXFR'), key, { time: Math.floor(Date.now() / 1000) - 3600 });
    // A TSIG record followed by another record.
    const tsigFirst = Buffer.concat([sign(query(20, ZONE, 'AXFR'), key), Buffer.from(dnsPacket.encode({ type: 'query', id: 0, additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] }).subarray(12))]);
    tsigFirst.writeUInt16BE(tsigFirst.readUInt16BE(10) + 1, 10);
    const cases: [string, Buffer, [number, number | undefined]][] = [
      ['IXFR without the SOA', noSoa, [1, undefined]],
      ['IXFR with a cut SOA', badSoa, [1, undefined]],
      ['AXFR of a zone not ours', notOurs, [9, undefined]],
      ['AXFR of a name in the zone', below, [9, undefined]],
      ['a truncated TSIG record', truncated, [1, undefined]],
      ['a TSIG MAC of 300 bytes', hugeMac, [1, undefined]],
      ['a TSIG MAC of 8 bytes', shortMac, [1, undefined]],
      ['a TSIG MAC cut to 20 bytes (BADTRUNC)', cutMac, [9, 22]],
      ['a signature an hour old (BADTIME)', late, [9, 18]],
      ['a TSIG record that is not the last', tsigFirst, [1, undefined]],
    ];
    for (const [what, msg, want] of cases) {
      const r = await tcpAsk(port, [msg], 1, '127.0.0.2');
      assert.deepEqual(r.replies.map((m) => [rcodeOf(m), tsigError(m)]), [want], what);
    }
    // The good one still works, and nothing changed.
    const ok = await tcpAsk(port, [signed], 1, '127.0.0.1');
    assert.equal(rcodeOf(ok.replies[0]), 0);
    assert.equal(await serial(), s);
    assert.equal(d.proc.exitCode, null);
  });

  test('NOTIFY: a registration storm sends a bounded number, the last with the final serial', async () => {
    await sleep(1000);
    const n0 = notifies.length;
    const t0 = Date.now();
    const leaders = await sleepingLeaders(300);
    const c = await VarlinkClient.connect(d.socket);
    try {
      await Promise.all(
        leaders.pids.map((pid, i) => c.call('io.systemd.Machine.Register', { name: `storm${i}`, class: 'vm', leader: pid, addresses: [`10.77.90.${100 + (i % 150)}`] })),
      );
      const stormMs = Date.now() - t0;
      const final = await waitFor('the storm in the zone', async () => {
        await sleep(300);
        const s = await serial();
        return (await xfr([ZONE, 'AXFR'])).records.length === 305 ? s : undefined;
      }, 10_000);
      await waitFor('the last NOTIFY', () => (notifies.at(-1)?.serial === final ? true : undefined), 3000);
      const sent = notifies.slice(n0);
      const spanMs = sent.at(-1)!.at - t0;
      assert.ok(sent.length <= Math.ceil(spanMs / 500) + 2, `${sent.length} NOTIFYs in ${spanMs} ms (storm ${stormMs} ms)`);
      assert.ok(sent.length >= 1);
      const versions = d.logLines('dns zone changed').filter((l) => l.zone === ZONE && (l.time as number) >= t0);
      assert.ok(versions.length <= Math.ceil(spanMs / 200) + 2, `${versions.length} versions in ${spanMs} ms`);
    } finally {
      await Promise.all(leaders.pids.map((_, i) => c.call('io.systemd.Machine.Unregister', { name: `storm${i}` }).catch(() => {})));
      c.close();
      await leaders.stop();
    }
  });

  test('NOTIFY: a newer serial replaces one the secondary has not answered, whose retransmissions then stop', async () => {
    await sleep(1000);
    silent = true;
    const n0 = notifies.length;
    try {
      const s0 = await serial();
      assert.equal((await d.ctl(['register', 'late1', '--class', 'vm', '--leader', String(sleepingLeaderPid()), '--address', '10.77.90.31'])).code, 0);
      // The zone's new version may follow the answer (versions coalesce for up to 200 ms).
      const s1 = await waitFor('the first change in the zone', async () => {
        const s = await serial();
        return s > s0 ? s : undefined;
      });
      await waitFor(`a NOTIFY of ${s1}`, () => (notifies.slice(n0).some((n) => n.serial === s1) ? true : undefined), 5000);
      assert.equal((await d.ctl(['register', 'late2', '--class', 'vm', '--leader', String(sleepingLeaderPid()), '--address', '10.77.90.32'])).code, 0);
      const s2 = await waitFor('the second change in the zone', async () => {
        const s = await serial();
        return s > s1 ? s : undefined;
      });
      silent = false;
      // Unanswered, s1 would be sent again for 31 s before s2 went at all.
      await waitFor(`a NOTIFY of ${s2}`, () => (notifies.slice(n0).some((n) => n.serial === s2) ? true : undefined), 5000);
      // Past s1's next two retransmissions (1 s and 2 s after its first): none comes after s2.
      await sleep(3500);
      const serials = notifies.slice(n0).map((n) => n.serial);
      const firstS2 = serials.indexOf(s2);
      assert.deepEqual(serials.slice(firstS2).filter((x) => x !== s2), [], `NOTIFYs seen: ${serials.join(' ')}`);
      assert.ok(serials.slice(0, firstS2).every((x) => x === s1), `NOTIFYs seen: ${serials.join(' ')}`);
    } finally {
      silent = false;
      for (const name of ['late1', 'late2']) await d.ctl(['unregister', name]);
    }
  });

  test('the serials live in .mymachines-dns-zones in the state directory: written atomically, never taken for a machine, kept over a restart', async () => {
    const file = join(d.stateDir, '.mymachines-dns-zones');
    // Once the zone is still (the test before ends with a storm of removals, coalesced into versions).
    const { stored, s } = await waitFor('the zone to settle', async () => {
      const before = await serial();
      await sleep(500);
      const now = await serial();
      const kept = JSON.parse(readFileSync(file, 'utf8'));
      return before === now && kept.zones[ZONE].serial === now ? { stored: kept, s: now } : undefined;
    }, 10_000);
    assert.equal(stored.zones[ZONE].serial, s);
    assert.deepEqual(Object.keys(stored.zones), [ZONE, REV4, '0.9.0.0.7.7.d.f.ip6.arpa']);
    assert.deepEqual(readdirSync(d.stateDir).filter((n) => n.startsWith('.#')), [], 'no temporary file left');
    assert.equal(await d.stop(), 0);
    d = await d.restart();
    assert.ok(existsSync(file), 'the registry left it at start');
    assert.equal(await serial(), s);
    const list = JSON.parse((await d.ctl(['list', '--json'])).stdout) as { name: string }[];
    assert.deepEqual(list.map((m) => m.name).sort(), ['db']);
    assert.doesNotMatch(d.output(), /mymachines-dns-zones.*(state file|unreadable)/);
  });

  test('a store that cannot be read or written is a warning: the zone goes on, its serial still rises', async () => {
    assert.equal(await d.stop(), 0);
    const file = join(d.stateDir, '.mymachines-dns-zones');
    rmSync(file);
    mkdirSync(file); // a directory where the file should be: open gives EISDIR, rename EISDIR
    d = await d.restart();
    const s0 = await serial();
    assert.equal((await d.ctl(['register', 'web2', '--class', 'vm', '--leader', String(sleepingLeaderPid()), '--address', '10.77.90.12'])).code, 0);
    await waitFor('a new serial', async () => ((await serial()) !== s0 ? true : undefined));
    assert.ok((await serial()) > s0);
    const warnings = [...d.logLines('dns zone serials not read: starting them afresh'), ...d.logLines('dns zone serials not saved')].map((l) => [l.msg, l.error]);
    assert.deepEqual(warnings, [['dns zone serials not read: starting them afresh', 'not a regular file of at most 1 MiB'], ['dns zone serials not saved', 'illegal operation on a directory (EISDIR)']], 'each said once');
    assert.deepEqual(readdirSync(d.stateDir).filter((n) => n.startsWith('.#')), [], 'no temporary file left');
    rmSync(file, { recursive: true });
  });
});

describe('DNS zones: a zone of thousands of machines', () => {
  let d: Daemon;
  let port: number;
  let dir: string;
  let leaders: Awaited<ReturnType<typeof sleepingLeaders>>;
  const key = makeTsigSecret('xfr');
  const N = 3000;

  before(async () => {
    port = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'mymachines-dnsbig-'));
    writeFileSync(join(dir, 'xfr.key'), bindKeyText(key));
    mkdirSync(join(dir, 'd'));
    d = await startDaemon({
      dir: join(dir, 'd'),
      args: ['--dns', `127.0.0.1:${port}`, '--dns-zone', ZONE, '--dns-reverse-zone', 'fd77:91::/32', '--dns-transfer-allow', '127.0.0.0/8', '--dns-tsig-key', join(dir, 'xfr.key')],
    });
    leaders = await sleepingLeaders(N);
    const c = await VarlinkClient.connect(d.socket);
    await Promise.all(
      leaders.pids.map((pid, i) => c.call('io.systemd.Machine.Register', { name: `m${i}`, class: 'vm', leader: pid, addresses: [`10.91.${i >> 8}.${i & 255}`, `fd77:91::${i.toString(16)}`] })),
    );
    c.close();
    await waitFor('every machine in the zone', async () => ((await dig('127.0.0.1', port, [`m${N - 1}.${ZONE}`, 'A'])).answer.length === 1 ? true : undefined), 10_000);
  });

  after(() =>
    eachStep([
      async () => d && assert.equal(await d.stop(), 0),
      () => leaders?.stop(),
      () => dir && rmSync(dir, { recursive: true, force: true }),
    ]));

  test('it is sent in many messages; a client that stops reading is closed and delays nobody', async () => {
    await waitFor('the zone to settle', async () => {
      const t = parseTransfer(await digText('127.0.0.1', port, [ZONE, 'AXFR']));
      return t.records.length === 2 * N + 3 ? true : undefined;
    }, 10_000);
    // The reverse zone (3000 PTR names of 73 bytes, some 300 KB), asked for 24 times in a row by a client
    // with a receive buffer of 4 KiB that reads nothing: more than the sockets hold (the kernel takes up
    // to 4 MiB into the daemon's send buffer).
    const m = query(31, '1.9.0.0.7.7.d.f.ip6.arpa', 'AXFR');
    const stalled = spawn('python3', ['-c', STALLED_CLIENT, String(port), Buffer.concat(Array.from({ length: 24 }, () => Buffer.concat([be(m.length, 2), m]))).toString('hex')], { stdio: ['pipe', 'pipe', 'inherit'] });
    let said = '';
    stalled.stdout!.on('data', (b) => (said += b));
    const done = new Promise<void>((r) => stalled.once('exit', () => r()));
    const t0 = Date.now();
    try {
      await sleep(300);
      // Meanwhile: queries, and a whole transfer to someone else.
      for (let i = 0; i < 5; i++) assert.deepEqual((await dig('127.0.0.1', port, [`m${i}.${ZONE}`, 'A'])).answer.length, 1);
      const other = await digText('127.0.0.1', port, [ZONE, 'AXFR']);
      assert.equal(parseTransfer(other).records.length, 2 * N + 3);
      const messages = Number(/XFR size: \d+ records \(messages (\d+)/.exec(other)?.[1]);
      assert.ok(messages > 5, `${messages} messages`);
      // The server gives up on it after 10 s without progress; the client, paused, sees that once it reads.
      await waitFor('the stalled transfer ended', () => d.logLines('dns zone transfer ended by the client, or stalled and closed').some((l) => l.zone === '1.9.0.0.7.7.d.f.ip6.arpa') || undefined, 15_000);
      assert.ok(Date.now() - t0 > 8000, `ended after ${Date.now() - t0} ms`);
      const sent = d.logLines('dns zone transfer sent').filter((l) => l.zone === '1.9.0.0.7.7.d.f.ip6.arpa').length;
      assert.ok(sent < 24, `${sent} of the 24 transfers sent whole`);
      // Once it reads again, it finds the connection closed.
      stalled.stdin!.end();
      await done;
      assert.match(said, /^connected\nclosed after \d+ bytes\n$/);
    } finally {
      if (stalled.exitCode === null) stalled.kill('SIGKILL');
    }
  });

  test('TSIG over a transfer of many messages: dig checks the signature of every one', async () => {
    const r = await run('dig', ['@127.0.0.1', '-p', String(port), '-k', join(dir, 'xfr.key'), '1.9.0.0.7.7.d.f.ip6.arpa', 'AXFR']);
    const t = parseTransfer(r.stdout + r.stderr);
    assert.deepEqual([t.failed, t.records.length], [undefined, N + 3]);
    const tsigs = r.stdout.split('\n').filter((l) => /\sTSIG\s/.test(l));
    const messages = Number(/XFR size: \d+ records \(messages (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(messages > 5, `${messages} messages`);
    assert.equal(tsigs.length, messages, 'every message signed');
    assert.doesNotMatch(r.stdout + r.stderr, /Couldn't verify|tsig indicates error|expected a TSIG/);
  });
});
