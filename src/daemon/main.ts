// mymachinesd: wires the registry and its front ends, starts and stops them.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { findCgroupMounts, systemdIsPid1, Cgroups } from '../registry/linux/cgroup.js';
import { Registry, type ScopeAllocator } from '../registry/registry.js';
import { machineHandlers, machineInterface } from '../registry/varlink-machine.js';
import { Resolver } from '../resolver/resolver.js';
import { resolveHandlers, resolveInterface } from '../resolver/varlink-resolve.js';
import { publishedRegistry } from '../table/published-registry.js';
import { TABLE_NAME, TablePublisher } from '../table/publisher.js';
// D-Bus (dbus-next) and DNS (dns-packet) code is loaded only when it is used, and D-Bus only once the
// daemon socket is up: a daemon without them starts sooner, and one with them is not ready later.
import { UserRecords } from '../userdb/records.js';
import { userDatabaseHandlers, userDatabaseInterface } from '../userdb/varlink-userdb.js';
import { VarlinkServer, isLive } from '../varlink/server.js';
import { makeLogger } from './logging.js';
import { HELP, parseOptions, UsageError, type DaemonOptions } from './options.js';

export const SOCKET_NAME = 'io.systemd.Machine';

function version(): string {
  return JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;
}

async function run(opts: DaemonOptions): Promise<void> {
  const log = makeLogger(opts.logLevel);
  let registry: Registry | undefined;
  let server: VarlinkServer | undefined;
  let bus: { stop(): void } | undefined;
  let dns: { close(): Promise<void> } | undefined;
  let table: TablePublisher | undefined;
  // Installed first, so that a SIGTERM during start-up still stops the daemon cleanly.
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    bus?.stop();
    await dns?.close();
    await server?.close();
    await registry?.stop();
    table?.close();
    log.flush?.();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  const socketPath = join(opts.runtimeDir, SOCKET_NAME);
  if (await isLive(socketPath)) {
    log.fatal({ socket: socketPath }, 'another mymachinesd already serves this socket');
    process.exit(1);
  }
  const { v2: mount, legacy } = await findCgroupMounts();
  if (!mount) log.warn({}, 'no cgroup2 hierarchy: creating machines (allocateUnit) is not supported');
  let scopes: ScopeAllocator | undefined;
  // Where systemd is PID 1 it owns the cgroup tree: scopes are asked of it, as machined does.
  if (mount && systemdIsPid1()) scopes = new (await import('../registry/linux/systemd-scope.js')).SystemdScopes(mount, legacy);
  else if (mount) scopes = new Cgroups(mount, legacy);
  registry = new Registry({
    stateDir: opts.stateDir,
    scopes,
    terminateTimeoutMs: opts.terminateTimeoutMs,
    log,
  });
  await registry.start();
  if (stopping) return;

  server = new VarlinkServer({
    vendor: 'mymachines',
    product: 'mymachinesd',
    version: version(),
    url: '',
    log,
  });
  const resolver = new Resolver(registry);
  const users = new UserRecords(registry);
  // The NSS module answers from this table; published before the socket answers, and before every
  // answer to a change (published registry), so that a lookup never sees an older one.
  table = new TablePublisher(join(opts.runtimeDir, TABLE_NAME), { resolver, users, events: registry }, log);
  table.start();
  const served = publishedRegistry(registry, table);
  server.addInterface(machineInterface, machineHandlers(served));
  server.addInterface(resolveInterface, resolveHandlers(resolver));
  server.addInterface(userDatabaseInterface, userDatabaseHandlers(users));
  // DNS for clients that bypass NSS; an address that cannot be had stops the start (exit 1).
  if (opts.dns.length > 0) {
    const { DnsServer } = await import('../resolver/dns-server.js');
    dns = await DnsServer.start(resolver, { listen: opts.dns, zones: opts.dnsZones, log });
  }
  if (stopping) return;
  // Where nss-systemd and userdbctl look for userdb services; the socket's name is the service name.
  // Before the daemon socket: once that answers, the daemon is wholly up.
  if (opts.userdbDir !== '') {
    const userdbSocket = join(opts.userdbDir, SOCKET_NAME);
    // A live machined may own it: then its records are served there, and ours on the daemon socket only.
    // Only the userdb interface there, as machined's socket of that name.
    await server.listen(userdbSocket, 0o666, [userDatabaseInterface.name]).catch((err) => log.warn({ err, socket: userdbSocket }, 'userdb socket not served'));
  }
  await server.listen(socketPath, 0o666).catch((err) => {
    if (!stopping) throw err; // else close() came first: stop() is ending the process
  });
  if (stopping) return;
  // D-Bus is optional: an unreachable bus is warned about and retried, never fatal.
  if (opts.bus !== 'none') {
    const [{ serveMachine1 }, { busAddress }] = await Promise.all([import('./serve-dbus.js'), import('../dbus/bus-service.js')]);
    if (!stopping) bus = serveMachine1(served, log, busAddress(opts.bus, process.env));
  }
  log.info({ socket: socketPath, stateDir: opts.stateDir, machines: registry.list().length - 1 }, 'ready');
}

try {
  const opts = parseOptions(process.argv.slice(2), process.env);
  if (opts === 'help') process.stdout.write(HELP);
  else if (opts === 'version') process.stdout.write(`mymachinesd ${version()}\n`);
  else await run(opts);
} catch (e) {
  if (e instanceof UsageError) {
    process.stderr.write(`mymachinesd: ${e.message}\nTry 'mymachinesd --help'.\n`);
    process.exit(2);
  }
  process.stderr.write(`mymachinesd: ${(e as Error).message}\n`);
  process.exit(1);
}
