// mymachinesd's command line.
import { parseArgs } from 'node:util';
import { dnsListenText, parseDnsListen, parseDnsZone, parseDnsZoneOptions, parseReverseZone, type DnsListen, type DnsZoneOptions } from '../resolver/dns-config.js';

export interface DaemonOptions {
  /** A registry of one user's machines (machined --user): paths under $XDG_RUNTIME_DIR, no .host, and
   *  that user (and root) may change it. */
  user: boolean;
  runtimeDir: string;
  stateDir: string;
  /** Where io.systemd.Machine is served for systemd 258+ clients, as machined serves it; '' turns it off. */
  machineDir: string;
  /** '' turns the userdb listener off. */
  userdbDir: string;
  /** Where the resolve hook's socket goes (systemd-resolved 259+ looks there); '' turns it off. */
  resolveHookDir: string;
  bus: string;
  logLevel: string;
  terminateTimeoutMs: number;
  /** Where the DNS server listens (UDP and TCP); none: no DNS server. */
  dns: DnsListen[];
  /** Zones the DNS server owns, lower case, without the trailing dot (with those of --dns-reverse-zone). */
  dnsZones: string[];
  /** Their NS, TTL, transfers, NOTIFY and TSIG keys. */
  dnsZoneOptions: DnsZoneOptions;
  /** The image pool (machined's /var/lib/machines). */
  imagePool: string;
  /** Where io.systemd.MachineImage is served (machined 258+'s /run/systemd/machine); '' turns it off. */
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export const HELP = `Usage: mymachinesd [OPTIONS]

The mymachines registry daemon: container and VM managers register their machines with it; it answers
for them by name (libnss_mymachines, io.systemd.Resolve), as users and groups (io.systemd.UserDatabase),
and over machined's interfaces.

Options:
  --user                   a registry of the calling user's own machines, as systemd-machined --user:
                           no root needed, only that user (and root) may change it; the defaults
                           below marked (user) apply, and the userdb and resolve hook sockets are off
  --runtime-dir DIR        directory of the daemon socket io.systemd.Machine and of the lookup
                           table nss-table (default: $MYMACHINES_RUNTIME_DIR or /run/mymachines;
                           (user) $XDG_RUNTIME_DIR/mymachines)
  --state-dir DIR          machine state files, machined's format (default: /run/systemd/machines;
                           (user) $XDG_RUNTIME_DIR/systemd/machines)
  --machine-dir DIR        where to put machined's sockets io.systemd.Machine and
                           io.systemd.MachineImage, through which machinectl, nspawn, vmspawn and
                           varlinkctl 258+ reach the registry and the images
                           (default: /run/systemd/machine; (user) $XDG_RUNTIME_DIR/systemd/machine;
                           '' turns it off)
  --userdb-dir DIR         where to put the userdb socket for nss-systemd and userdbctl
                           (default: /run/systemd/userdb; '' turns it off)
  --resolve-hook-dir DIR   where to put the resolve hook socket through which systemd-resolved 259+
                           answers machine names (default: /run/systemd/resolve.hook; '' turns it off)
  --bus system|session|none|ADDRESS
                           D-Bus bus for org.freedesktop.machine1 (default: system; (user) the
                           session bus: $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus)
  --log-level LEVEL        fatal, error, warn, info, debug or trace (default: info)
  --terminate-timeout SEC  seconds from SIGTERM to SIGKILL when terminating a machine (default: 10)
  --dns ADDR[:PORT]        serve machine names over DNS, UDP and TCP, on this address (repeatable;
                           port 53 if none; IPv6 in brackets: [::1]:5353). Default: no DNS server
  --dns-zone ZONE          answer <machine>.ZONE too, e.g. 'machine' (repeatable; the first one names
                           PTR answers). A reverse zone (3.0.10.in-addr.arpa) makes unknown addresses
                           in it NXDOMAIN instead of REFUSED. Bare machine names are always answered.
                           Each zone is a whole zone too (SOA, NS, A/AAAA or PTR), for secondaries
  --dns-reverse-zone PREFIX
                           serve the reverse zone of an address range, e.g. 10.77.86.0/24 (the zone
                           86.77.10.in-addr.arpa) or fd77:86::/32, as --dns-zone with that zone does;
                           the prefix length must fall on a label boundary (IPv4 /8 /16 /24, IPv6 a
                           multiple of 4) (repeatable). Machines' addresses outside every reverse
                           zone still get PTR answers; other names there are REFUSED
  --dns-ns NAME            the name server named in the zones' NS records and SOA (repeatable;
                           default: the zone's own name)
  --dns-zone-ttl SEC       TTL of the records in zone transfers, which secondaries serve (default 0:
                           nothing behind them caches; direct queries always get TTL 0)
  --dns-transfer-allow ADDR[/LEN] | key=NAME | ADDR[/LEN],key=NAME
                           who may transfer the zones (AXFR over TCP, IXFR) (repeatable; a request
                           passes when one rule matches in full). Default: nobody; others get REFUSED
  --dns-notify ADDR[:PORT][,key=NAME]
                           send NOTIFY to this secondary when a zone changes, from the first --dns
                           address of its family, signed with the key if one is named (repeatable)
  --dns-tsig-key FILE      TSIG keys (hmac-sha256) in BIND's format, as tsig-keygen writes them
                           (repeatable); requests signed with them are checked, their answers signed
  --image-pool DIR         the directory of OS images that list-images, clone, rename, remove and
                           read-only work on (default: /var/lib/machines)
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
        user: { type: 'boolean' },
        'runtime-dir': { type: 'string' },
        'machine-dir': { type: 'string' },
        'state-dir': { type: 'string' },
        'userdb-dir': { type: 'string' },
        'resolve-hook-dir': { type: 'string' },
        bus: { type: 'string' },
        'log-level': { type: 'string' },
        'terminate-timeout': { type: 'string' },
        dns: { type: 'string', multiple: true },
        'dns-zone': { type: 'string', multiple: true },
        'dns-reverse-zone': { type: 'string', multiple: true },
        'dns-ns': { type: 'string', multiple: true },
        'dns-zone-ttl': { type: 'string' },
        'dns-transfer-allow': { type: 'string', multiple: true },
        'dns-notify': { type: 'string', multiple: true },
        'dns-tsig-key': { type: 'string', multiple: true },
        'image-pool': { type: 'string' },
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
  const user = v.user ?? false;
  // Per user, machined 262's paths under the user's runtime directory (runtime_directory_generic()).
  const xdg = env.XDG_RUNTIME_DIR ?? '';
  if (user && !xdg.startsWith('/')) throw new UsageError('--user needs $XDG_RUNTIME_DIR, the absolute path of the user\'s runtime directory (e.g. /run/user/1000)');
  const runtimeDir = v['runtime-dir'] ?? (env.MYMACHINES_RUNTIME_DIR || (user ? `${xdg}/mymachines` : '/run/mymachines'));
  const stateDir = v['state-dir'] ?? (user ? `${xdg}/systemd/machines` : '/run/systemd/machines');
  for (const [flag, dir] of [['--runtime-dir', runtimeDir], ['--state-dir', stateDir]]) {
    if (!dir.startsWith('/')) throw new UsageError(`${flag} must be an absolute path`);
  }
  const dirOrOff = (flag: string, systemDefault: string, userDefault: string) => {
    const dir = v[flag as 'userdb-dir'] ?? (user ? userDefault : systemDefault);
    if (dir !== '' && !dir.startsWith('/')) throw new UsageError(`--${flag} must be an absolute path or ''`);
    return dir;
  };
  const machineDir = dirOrOff('machine-dir', '/run/systemd/machine', `${xdg}/systemd/machine`);
  // machined serves userdb records and the resolve hook for the system only.
  const userdbDir = dirOrOff('userdb-dir', '/run/systemd/userdb', '');
  const resolveHookDir = dirOrOff('resolve-hook-dir', '/run/systemd/resolve.hook', '');
  const imagePool = v['image-pool'] ?? '/var/lib/machines';
  if (!imagePool.startsWith('/')) throw new UsageError('--image-pool must be an absolute path');
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
  for (const text of v['dns-reverse-zone'] ?? []) {
    let z: string;
    try {
      z = parseReverseZone(text);
    } catch (e) {
      throw new UsageError(`invalid --dns-reverse-zone ${(e as Error).message}`);
    }
    if (!dnsZones.includes(z)) dnsZones.push(z);
  }
  let dnsZoneOptions: DnsZoneOptions;
  try {
    dnsZoneOptions = parseDnsZoneOptions(v);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const zoneFlags = ['dns-zone', 'dns-reverse-zone', 'dns-ns', 'dns-zone-ttl', 'dns-transfer-allow', 'dns-notify', 'dns-tsig-key'] as const;
  const given = zoneFlags.find((f) => v[f] !== undefined);
  if (given && dns.length === 0) throw new UsageError(`--${given} needs --dns ADDR[:PORT]`);
  const needsZone = (['dns-transfer-allow', 'dns-notify'] as const).find((f) => v[f] !== undefined);
  if (needsZone && dnsZones.length === 0) throw new UsageError(`--${needsZone} needs a zone (--dns-zone or --dns-reverse-zone)`);
  const bus = v.bus ?? (!user ? 'system' : env.DBUS_SESSION_BUS_ADDRESS ? 'session' : `unix:path=${xdg}/bus`);
  if (!['system', 'session', 'none'].includes(bus) && !isBusAddress(bus)) {
    throw new UsageError(`invalid --bus '${bus}': expected system, session, none or a D-Bus address such as unix:path=/run/dbus/system_bus_socket`);
  }
  if (bus === 'session' && !env.DBUS_SESSION_BUS_ADDRESS) throw new UsageError('--bus session needs DBUS_SESSION_BUS_ADDRESS');
  return {
    user,
    runtimeDir,
    stateDir,
    machineDir,
    userdbDir,
    resolveHookDir,
    bus,
    logLevel,
    terminateTimeoutMs: Math.round(timeout * 1000),
    dns,
    dnsZones,
    dnsZoneOptions,
    imagePool,
  };
}
