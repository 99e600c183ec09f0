// The DNS servers of Debian's packages that the DNS tests put in front of mymachinesd: BIND 9 (named) and
// Knot (knotd) as secondaries of its zones, unbound and dnsmasq forwarding to it. Each runs in the
// foreground in the test's network namespace, with its configuration and files in a directory of the
// test's, and is ended by its PID (stop()).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dig } from './dig.js';
import type { NetNs } from './netns.js';
import { waitFor } from './run.js';

export interface ServerProcess {
  pid: number;
  /** What it wrote on stdout and stderr. */
  output(): string;
  /** SIGTERM, and SIGKILL if it has not exited 5 s later; waits for the exit. */
  stop(): Promise<void>;
}

export interface TsigSecret {
  name: string;
  /** base64 */
  secret: string;
}

export function makeTsigSecret(name: string): TsigSecret {
  return { name, secret: randomBytes(32).toString('base64') };
}

/** The key in BIND's format (what tsig-keygen writes, and what --dns-tsig-key reads). */
export function bindKeyText(k: TsigSecret): string {
  return `key "${k.name}" {\n\talgorithm hmac-sha256;\n\tsecret "${k.secret}";\n};\n`;
}

function start(ns: NetNs, cmd: string, args: string[]): ServerProcess {
  const p: ChildProcess = spawn(ns.prefix[0], [...ns.prefix.slice(1), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  return {
    pid: p.pid!,
    output: () => out,
    async stop() {
      if (p.exitCode !== null || p.signalCode !== null) return;
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Waits until the server answers a query over UDP (any answer at all); one that does not is stopped
 *  (the caller never gets its handle to stop it). */
async function answering(ns: NetNs, s: ServerProcess, address: string, name: string): Promise<void> {
  await waitFor(
    `${name} to answer on ${address}`,
    async () => {
      try {
        await dig(address, 53, ['.', 'SOA'], ns.prefix);
        return true;
      } catch {
        if (s.output().includes('exiting') || s.output().includes('fatal')) throw new Error(`${name} did not start:\n${s.output()}`);
        return undefined;
      }
    },
    15_000,
  ).catch(async (e) => {
    await s.stop();
    throw e;
  });
}

export interface Secondary {
  zone: string;
  /** The primary: address and port, and the key its transfers and NOTIFY are signed with. */
  primary: string;
  port: number;
  key?: string;
}

/** BIND 9 as secondary of the zones, listening on address:53. */
export async function startBind(ns: NetNs, dir: string, address: string, zones: Secondary[], keys: TsigSecret[]): Promise<ServerProcess> {
  mkdirSync(dir, { recursive: true });
  const conf = `options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  session-keyfile "${dir}/session.key";
  managed-keys-directory "${dir}";
  listen-on port 53 { ${address}; };
  listen-on-v6 { none; };
  // From its own address, as from another host (on lo the kernel would pick the primary's).
  transfer-source ${address};
  query-source address ${address};
  recursion no;
  dnssec-validation no;
  notify no;
  // BIND starts the refreshes a NOTIFY asks for in ticks of 10/rate s (20 a second: half a second
  // apart, so that a host's second zone follows half a second after its first); 100: a tenth.
  serial-query-rate 100;
};
controls { };
${keys.map(bindKeyText).join('')}
${zones
  .map(
    (z, i) => `zone "${z.zone}" {
  type secondary;
  file "zone${i}.db";
  primaries port ${z.port} { ${z.primary}${z.key ? ` key ${z.key}` : ''}; };
};
`,
  )
  .join('')}`;
  writeFileSync(join(dir, 'named.conf'), conf);
  const s = start(ns, 'named', ['-c', join(dir, 'named.conf'), '-g', '-n', '1']);
  await answering(ns, s, address, 'named');
  return s;
}

/** Knot as secondary of the zones, listening on address:53; NOTIFY taken from each primary's address
 *  (signed with its key, when it has one). */
export async function startKnot(ns: NetNs, dir: string, address: string, zones: Secondary[], keys: TsigSecret[]): Promise<ServerProcess> {
  mkdirSync(dir, { recursive: true });
  const conf = `server:
    rundir: ${dir}
    listen: ${address}@53
log:
  - target: stderr
    any: info
database:
    storage: ${dir}
${keys.length > 0 ? `key:\n${keys.map((k) => `  - id: ${k.name}\n    algorithm: hmac-sha256\n    secret: ${k.secret}\n`).join('')}` : ''}remote:
${zones.map((z, i) => `  - id: primary${i}\n    address: ${z.primary}@${z.port}\n    via: ${address}\n${z.key ? `    key: ${z.key}\n` : ''}`).join('')}acl:
${zones.map((z, i) => `  - id: notify${i}\n    address: ${z.primary}\n    action: notify\n${z.key ? `    key: ${z.key}\n` : ''}`).join('')}template:
  - id: default
    storage: ${dir}
    zonefile-sync: -1
    zonefile-load: none
    journal-content: all
zone:
${zones.map((z, i) => `  - domain: ${z.zone}\n    master: primary${i}\n    acl: notify${i}\n`).join('')}`;
  writeFileSync(join(dir, 'knot.conf'), conf);
  const s = start(ns, 'knotd', ['-c', join(dir, 'knot.conf')]);
  await answering(ns, s, address, 'knotd');
  return s;
}

/** unbound on address:53, a stub zone for each zone pointing at mymachinesd, and `local-zone: transparent`
 *  for each: else a zone under one of unbound's default local zones (test., the private reverse zones such
 *  as 10.in-addr.arpa.) is answered NXDOMAIN by unbound itself. (`nodefault` works only on the default
 *  zone's own name, which then turns it off whole.) */
export async function startUnbound(ns: NetNs, dir: string, address: string, zones: string[], to: string, port: number, localZones = true): Promise<ServerProcess> {
  mkdirSync(dir, { recursive: true });
  const conf = `server:
  interface: ${address}
  port: 53
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "${dir}"
  pidfile: "${dir}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  do-not-query-localhost: no
${localZones ? zones.map((z) => `  local-zone: "${z}." transparent\n`).join('') : ''}remote-control:
  control-enable: no
${zones.map((z) => `stub-zone:\n  name: "${z}."\n  stub-addr: ${to}@${port}\n`).join('')}`;
  writeFileSync(join(dir, 'unbound.conf'), conf);
  const s = start(ns, 'unbound', ['-d', '-c', join(dir, 'unbound.conf')]);
  await answering(ns, s, address, 'unbound');
  return s;
}

/** dnsmasq on address:53, forwarding each zone to mymachinesd (--server=/zone/addr#port) and nothing else. */
export async function startDnsmasq(ns: NetNs, dir: string, address: string, zones: string[], to: string, port: number): Promise<ServerProcess> {
  mkdirSync(dir, { recursive: true });
  const s = start(ns, 'dnsmasq', [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--bind-interfaces',
    `--listen-address=${address}`,
    '--port=53',
    `--pid-file=${dir}/dnsmasq.pid`,
    '--log-facility=-',
    ...zones.map((z) => `--server=/${z}/${to}#${port}`),
  ]);
  await answering(ns, s, address, 'dnsmasq');
  return s;
}
