// mymachinesd: wires the registry and its front ends, starts and stops them.
import { join } from 'node:path';
import { mkdirSync, readFileSync } from 'node:fs';
import { checkPrivateDirectory } from '../registry/linux/private-dir.js';
import { lockDirectory } from './instance-lock.js';
import { findCgroupMounts, systemdIsPid1, Cgroups } from '../registry/linux/cgroup.js';
import { ImagePool } from '../images/pool.js';
import { MACHINE_IMAGE_SOCKET, machineImageHandlers, machineImageInterface } from '../images/varlink-machine-image.js';
import { MachineOperations } from '../registry/machine-ops.js';
import { varlinkOperations } from '../registry/varlink-machine-ops.js';
import { Registry, type ScopeAllocator } from '../registry/registry.js';
import { machineHandlers, machineInterface } from '../registry/varlink-machine.js';
import { Resolver } from '../resolver/resolver.js';
import { resolveHandlers, resolveInterface } from '../resolver/varlink-resolve.js';
import { resolveHookHandlers, resolveHookInterface } from '../resolver/varlink-resolve-hook.js';
import { publishedRegistry } from '../table/published-registry.js';
import { TABLE_NAME, TablePublisher } from '../table/publisher.js';
// D-Bus (dbus-next) and DNS (dns-packet) code is loaded only when it is used, and D-Bus only once the
// daemon socket is up: a daemon without them starts sooner, and one with them is not ready later.
import { UserRecords } from '../userdb/records.js';
import { userDatabaseHandlers, userDatabaseInterface } from '../userdb/varlink-userdb.js';
import { VarlinkServer, isLive } from '../varlink/server.js';
import { makeLogger } from './logging.js';
import { HELP, parseOptions, UsageError, type DaemonOptions } from './options.js';
import { serviceManager } from './sd-notify.js';

const SOCKET_NAME = 'io.systemd.Machine';

function version(): string {
  return JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;
}

async function run(opts: DaemonOptions): Promise<void> {
  // Who may change the registry besides root, over Varlink and D-Bus: the user of a --user registry.
  const owner = process.geteuid?.() ?? 0;
  if (owner !== 0 && !opts.user) {
    throw new Error('must run as root: it enters network namespaces, reads the leaders\' /proc files, writes cgroups and owns /run/mymachines; for a registry of your own machines, start it with --user');
  }
  // One daemon per runtime directory and state directory, decided before anything is touched there.
  takeDirectory(opts.runtimeDir, 'runtime directory');
  takeDirectory(opts.stateDir, 'state directory');
  const log = makeLogger(opts.logLevel);
  const manager = serviceManager(); // systemd's Type=notify: told when the sockets answer
  let registry: Registry | undefined;
  let pool: ImagePool | undefined;
  let server: VarlinkServer | undefined;
  let bus: { stop(): void } | undefined;
  let dns: { close(): Promise<void> } | undefined;
  let table: TablePublisher | undefined;
  // Installed first, so that a SIGTERM during start-up still stops the daemon cleanly.
  let stopping = false;
  /** What was opened goes (listening sockets are unlinked; the state files stay). */
  const closeAll = async () => {
    bus?.stop();
    await dns?.close();
    await server?.close();
    await registry?.stop();
    await pool?.close();
    table?.close();
  };
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    manager?.notify('STOPPING=1');
    manager?.close();
    await closeAll();
    log.flush?.();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // Node.js would exit on SIGHUP; there is no configuration file to reload (flags need a restart).
  process.on('SIGHUP', () => log.info({ signal: 'SIGHUP' }, 'nothing to reload: options are flags, which need a restart'));
  try {
    await start();
  } catch (e) {
    // The caller says why we stop.
    await closeAll();
    throw e;
  }

  async function start(): Promise<void> {
    const socketPath = join(opts.runtimeDir, SOCKET_NAME);
    // A user's sockets are the user's alone, as machined --user's.
    const socketMode = opts.user ? 0o600 : 0o666;
    // Another server of the socket that holds no lock (an older mymachinesd, systemd-machined's own).
    if (await isLive(socketPath)) throw new Error(`another server already answers on ${socketPath}`);
    let scopes: ScopeAllocator | undefined;
    // Per user there is no cgroup to make scopes in: a leader is adopted where it is (adoptUnscoped).
    if (!opts.user) {
      const { v2: mount, legacy } = await findCgroupMounts();
      if (!mount) log.warn({}, 'no cgroup2 hierarchy: creating machines (allocateUnit) is not supported');
      // Where systemd is PID 1 it owns the cgroup tree: scopes are asked of it, as machined does.
      if (mount && systemdIsPid1()) {
        const [{ SystemdScopes }, { busAddress, openBus }] = await Promise.all([import('../registry/linux/systemd-scope.js'), import('../dbus/bus-service.js')]);
        scopes = new SystemdScopes(mount, legacy, (onLost, o) => openBus(busAddress('system', process.env), onLost, o));
      }
      else if (mount) scopes = new Cgroups(mount, legacy);
    }
    registry = new Registry({
      stateDir: opts.stateDir,
      scopes,
      adoptUnscoped: opts.user,
      // A user's registry has no .host, as machined --user.
      hostMachine: !opts.user,
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
    // PTYs, shells, copies, bind mounts and root directories, for both transports.
    const ops = new MachineOperations(registry, log);
    server.addInterface(machineInterface, machineHandlers(served, { owner, operations: varlinkOperations(ops) }));
    server.addInterface(resolveInterface, resolveHandlers(resolver));
    server.addInterface(userDatabaseInterface, userDatabaseHandlers(users));
    server.addInterface(resolveHookInterface, resolveHookHandlers(resolver));
    const reg = registry;
    // A running machine's root in an image keeps it from being renamed, removed or cleaned.
    const inUse = (path: string) => reg.list().some((m) => m.class !== 'host' && m.rootDirectory !== '' && (m.rootDirectory === path || m.rootDirectory.startsWith(`${path}/`)));
    pool = new ImagePool({ path: opts.imagePool, inUse, log });
    server.addInterface(machineImageInterface, machineImageHandlers(pool, owner));
    // DNS for clients that bypass NSS; an address that cannot be had stops the start (exit 1).
    if (opts.dns.length > 0) {
      const { DnsServer } = await import('../resolver/dns-server.js');
      dns = await DnsServer.start(resolver, { listen: opts.dns, zones: opts.dnsZones, zoneOptions: opts.dnsZoneOptions, stateDir: opts.stateDir, log });
    }
    if (stopping) return;
    // Where nss-systemd and userdbctl look for userdb services; the socket's name is the service name.
    // Before the daemon socket: once that answers, the daemon is wholly up.
    if (opts.userdbDir !== '') {
      const userdbSocket = join(opts.userdbDir, SOCKET_NAME);
      // Only the userdb interface there, as machined's socket of that name. Not served, the daemon would run
      // half (vu-/vg- records silently gone for nss-systemd): it stops instead.
      await server.listen(userdbSocket, 0o666, [userDatabaseInterface.name]).catch((err) => {
        if (!stopping) throw new Error(`cannot serve the userdb socket ${userdbSocket}: ${(err as Error).message}; stop whatever holds it (systemd-machined?) or start with --userdb-dir ''`);
      });
    }
    // The resolve hook, where systemd-resolved 259+ asks hooks (only that interface there, as machined's).
    if (opts.resolveHookDir !== '') {
      const hookSocket = join(opts.resolveHookDir, SOCKET_NAME);
      await server.listen(hookSocket, 0o666, [resolveHookInterface.name]).catch((err) => {
        if (!stopping) throw new Error(`cannot serve the resolve hook socket ${hookSocket}: ${(err as Error).message}; stop whatever holds it (systemd-machined?) or start with --resolve-hook-dir ''`);
      });
    }
    // Where machined 258+ serves io.systemd.Machine and io.systemd.MachineImage, for machinectl, nspawn,
    // vmspawn and varlinkctl (each socket with its interface only).
    if (opts.machineDir !== '') {
      for (const [name, iface] of [[SOCKET_NAME, machineInterface.name], [MACHINE_IMAGE_SOCKET, machineImageInterface.name]]) {
        const socket = join(opts.machineDir, name);
        await server.listen(socket, socketMode, [iface]).catch((err) => {
          if (!stopping) throw new Error(`cannot serve ${socket}: ${(err as Error).message}; stop whatever holds it (systemd-machined?) or start with --machine-dir ''`);
        });
      }
    }
    await server.listen(socketPath, socketMode).catch((err) => {
      if (!stopping) throw new Error(`cannot serve ${socketPath}: ${(err as Error).message}`); // else stop() is ending the process
    });
    if (stopping) return;
    // D-Bus is optional: an unreachable bus is warned about and retried, never fatal.
    if (opts.bus !== 'none') {
      const [{ serveMachine1 }, { busAddress }] = await Promise.all([import('./serve-dbus.js'), import('../dbus/bus-service.js')]);
      if (!stopping) bus = serveMachine1(served, ops, pool!, log, busAddress(opts.bus, process.env), owner);
    }
    const machines = registry.list().filter((m) => m.class !== 'host').length;
    log.info({ socket: socketPath, stateDir: opts.stateDir, user: opts.user, machines }, 'ready');
    const failed = manager?.notify(`READY=1\nSTATUS=Serving ${machines} machine${machines === 1 ? '' : 's'} on ${socketPath}`);
    if (failed) log.warn({ error: failed.message }, 'cannot tell the service manager that the daemon is ready');
    manager?.startWatchdog();
  }
}

/** Makes a directory that must be the daemon's alone, refuses one that is not, and locks it for this
 *  daemon: before any socket or state file is touched there. */
function takeDirectory(dir: string, what: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new Error(`cannot make the ${what} ${dir}: ${(e as Error).message}`);
  }
  checkPrivateDirectory(dir, what);
  lockDirectory(dir, what);
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
