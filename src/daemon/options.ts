// mymachinesd's command line.
import { parseArgs } from 'node:util';
import { dnsListenText, parseDnsListen, parseDnsZone, type DnsListen } from '../resolver/dns-config.js';

export interface DaemonOptions {
  runtimeDir: string;
  stateDir: string;
  /** '' turns the userdb listener off. */
  userdbDir: string;
  bus: string;
  logLevel: string;
  terminateTimeoutMs: number;
  /** Where the DNS server listens (UDP and TCP); none: no DNS server. */
  dns: DnsListen[];
  /** Zones the DNS server owns, lower case, without the trailing dot. */
  dnsZones: string[];
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export const HELP = `Usage: mymachinesd [OPTIONS]

The mymachines registry daemon: container and VM managers register their machines with it; it answers
for them by name (libnss_mymachines, io.systemd.Resolve), as users and groups (io.systemd.UserDatabase),
and over machined's interfaces.

Options:
  --runtime-dir DIR        directory of the daemon socket io.systemd.Machine and of the lookup
                           table nss-table (default: $MYMACHINES_RUNTIME_DIR or /run/mymachines)
  --state-dir DIR          machine state files, machined's format (default: /run/systemd/machines)
  --userdb-dir DIR         where to put the userdb socket for nss-systemd and userdbctl
                           (default: /run/systemd/userdb; '' turns it off)
  --bus system|session|none|ADDRESS
                           D-Bus bus for org.freedesktop.machine1 (default: system)
  --log-level LEVEL        fatal, error, warn, info, debug or trace (default: info)
  --terminate-timeout SEC  seconds from SIGTERM to SIGKILL when terminating a machine (default: 10)
  --dns ADDR[:PORT]        serve machine names over DNS, UDP and TCP, on this address (repeatable;
                           port 53 if none; IPv6 in brackets: [::1]:5353). Default: no DNS server
  --dns-zone ZONE          answer <machine>.ZONE too, e.g. 'machine' (repeatable; the first one names
                           PTR answers). A reverse zone (3.0.10.in-addr.arpa) makes unknown addresses
                           in it NXDOMAIN instead of REFUSED. Bare machine names are always answered
  -h, --help               show this help
  --version                show the version

Signals: SIGTERM or SIGINT stops the daemon; registered machines and their state files stay.
`;

export class UsageError extends Error {}

/** A D-Bus server address: TRANSPORT:KEY=VALUE,... entries separated by ';' (the D-Bus specification). */
function isBusAddress(s: string): boolean {
  return s.split(';').every((e) => /^[a-z][a-z0-9-]*:([a-z][a-z0-9_-]*=[^,;=]*(,[a-z][a-z0-9_-]*=[^,;=]*)*)?$/i.test(e));
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): DaemonOptions | 'help' | 'version' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'runtime-dir': { type: 'string' },
        'state-dir': { type: 'string' },
        'userdb-dir': { type: 'string' },
        bus: { type: 'string' },
        'log-level': { type: 'string' },
        'terminate-timeout': { type: 'string' },
        dns: { type: 'string', multiple: true },
        'dns-zone': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.version) return 'version';
  const logLevel = v['log-level'] ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`invalid --log-level '${logLevel}': expected one of ${LOG_LEVELS.join(', ')}`);
  const timeout = Number(v['terminate-timeout'] ?? '10');
  if (!Number.isFinite(timeout) || timeout < 0 || timeout > 86400) throw new UsageError(`invalid --terminate-timeout '${v['terminate-timeout']}': expected seconds, 0..86400`);
  const runtimeDir = v['runtime-dir'] ?? (env.MYMACHINES_RUNTIME_DIR || '/run/mymachines');
  const stateDir = v['state-dir'] ?? '/run/systemd/machines';
  for (const [flag, dir] of [['--runtime-dir', runtimeDir], ['--state-dir', stateDir]]) {
    if (!dir.startsWith('/')) throw new UsageError(`${flag} must be an absolute path`);
  }
  const userdbDir = v['userdb-dir'] ?? '/run/systemd/userdb';
  if (userdbDir !== '' && !userdbDir.startsWith('/')) throw new UsageError("--userdb-dir must be an absolute path or ''");
  const dns: DnsListen[] = [];
  for (const text of v.dns ?? []) {
    let l: DnsListen;
    try {
      l = parseDnsListen(text);
    } catch (e) {
      throw new UsageError(`invalid --dns ${(e as Error).message}`);
    }
    if (!dns.some((d) => dnsListenText(d) === dnsListenText(l))) dns.push(l);
  }
  const dnsZones: string[] = [];
  for (const text of v['dns-zone'] ?? []) {
    let z: string;
    try {
      z = parseDnsZone(text);
    } catch (e) {
      throw new UsageError(`invalid --dns-zone ${(e as Error).message}`);
    }
    if (!dnsZones.includes(z)) dnsZones.push(z);
  }
  if (dnsZones.length > 0 && dns.length === 0) throw new UsageError('--dns-zone needs --dns ADDR[:PORT]');
  const bus = v.bus ?? 'system';
  if (!['system', 'session', 'none'].includes(bus) && !isBusAddress(bus)) {
    throw new UsageError(`invalid --bus '${bus}': expected system, session, none or a D-Bus address such as unix:path=/run/dbus/system_bus_socket`);
  }
  if (bus === 'session' && !env.DBUS_SESSION_BUS_ADDRESS) throw new UsageError('--bus session needs DBUS_SESSION_BUS_ADDRESS');
  return {
    runtimeDir,
    stateDir,
    userdbDir,
    bus,
    logLevel,
    terminateTimeoutMs: Math.round(timeout * 1000),
    dns,
    dnsZones,
  };
}
