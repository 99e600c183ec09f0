// The registry: the only place that knows machines. Front ends (Varlink, D-Bus) call it; the resolver
// and userdb read it and follow its events. It imports no other part of mymachines.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { RegistryError, SystemError, invalid, noSuchMachine } from './errors.js';
import { AF_INET, AF_INET6, type Address, RT_SCOPE_HOST, parseAddress, sortAddresses } from './address.js';
import * as c from './linux/libc.js';
import { type Leader, openLeader, pidfdId, processPidfdId } from './linux/leader.js';
import { LeaderWatch } from './linux/leader-watch.js';
import { NetnsWatcher } from './linux/netns.js';
import { readOsRelease } from './linux/os-release.js';
import { RootReadError, RootReader } from './linux/root-reader.js';
import { type IdMapLine, processTree, readCgroupPath, readIdMap, readIdMaps, readNamespace, readProcStat, unitOfCgroupPath } from './linux/proc.js';
import type { Machine, MachineSpec } from './machine.js';
import type { ScopeAllocator, ScopeProperty } from './scope.js';
export type { ScopeAllocator, ScopeProperty, ScopeRequest } from './scope.js';
import { StateFiles, parseState } from './state-files.js';
import { type RegisterRequest, validateRequest } from './validate.js';

export interface Logger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  debug(o: object, msg: string): void;
}

export interface RegistryOptions {
  stateDir: string;
  /** Where Create puts leaders; without one, Create is refused as not supported (but see adoptUnscoped). */
  scopes?: ScopeAllocator;
  /** Without scopes, Create adopts the leader where it is, as Register does, rather than refusing: a
   *  per-user registry may make no cgroups, yet vmspawn --user asks it for a scope. */
  adoptUnscoped?: boolean;
  terminateTimeoutMs?: number;
  /** How often leaders are checked for exit; a machine goes within this much after its leader. */
  sweepMs?: number;
  /** How long a read from a machine's root directory may take (default 2 s). */
  rootReadTimeoutMs?: number;
  /** Whether there is the `.host` pseudo machine (default true); a per-user registry has none, as
   *  machined 258+ run per user. */
  hostMachine?: boolean;
  log: Logger;
}

export interface RegistryEvents {
  added: [machine: Machine];
  removed: [machine: Machine];
  /** Addresses, ID maps or state changed: `machine` replaces `previous` (Machines are read-only). */
  changed: [machine: Machine, previous: Machine];
}

const MAX_SIGNAL = 64;
const FIRST_ADDRESSES_WAIT_MS = 1000;

/** What the registry keeps of one machine. Linked into the indexes by insert() and out by remove(),
 *  and nowhere else. */
interface Entry {
  /** Replaced, never changed (update()). */
  machine: Machine;
  /** Names the leader for good: its exit makes it readable (LeaderWatch). */
  readonly pidfd: number;
  /** The NetnsWatcher watch of a container's addresses. */
  netWatch: number | undefined;
  /** SIGKILL after Terminate; it outlives the entry (the leader may exit first). */
  killTimer: NodeJS.Timeout | undefined;
  /** A container's uid_map or gid_map was still empty: a user namespace may get its maps written after
   *  its leader registered (and the two maps are two writes). The sweep reads them again. */
  pendingMaps: boolean;
}

export class Registry extends EventEmitter<RegistryEvents> {
  private readonly byName = new Map<string, Entry>();
  /** Names are unique ignoring case. */
  private readonly byLowerName = new Map<string, Entry>();
  private readonly byLeader = new Map<number, Entry>();
  /** The unit that holds a machine (the unit: link names one machine). */
  private readonly byUnit = new Map<string, Entry>();
  private readonly leaderWatch = new LeaderWatch<Entry>();
  /** Lower-cased name -> name, and leaders, of registrations (and state files) still being checked: a
   *  racing request for the same name or leader is refused. */
  private readonly reservedNames = new Map<string, string>();
  private readonly reservedLeaders = new Set<number>();
  /** Cgroups of removed machines that still held processes; removed once empty. Kept in the state
   *  directory, so that a restart goes on with them. */
  private readonly staleCgroups = new Set<string>();
  private readonly netns = new NetnsWatcher();
  /** Reads from machines' roots, which may stall. */
  private readonly roots: RootReader;
  private readonly files: StateFiles;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private stopped = false;
  private host: Machine | undefined;

  constructor(private readonly opts: RegistryOptions) {
    super();
    this.setMaxListeners(0); // every Watch client and front end listens
    this.files = new StateFiles(opts.stateDir);
    this.roots = new RootReader({ timeoutMs: opts.rootReadTimeoutMs });
    this.host = opts.hostMachine === false ? undefined : hostMachine('');
  }

  /** Loads the state files (dropping machines whose leader is gone), then watches the leaders. */
  async start(): Promise<void> {
    c.raiseFileLimit();
    this.files.init();
    if (this.host) this.host = hostMachine(await readFile('/etc/machine-id', 'utf8').then((s) => s.trim(), () => ''));
    if (this.opts.scopes) for (const path of this.files.readStaleScopes()) this.staleCgroups.add(path);
    // In name order: of two files that claim one leader (or one name, ignoring case), the first is taken.
    await Promise.all(this.files.names().sort().map((name) => this.reload(name)));
    this.files.removeLeftovers(new Set(this.byName.keys()));
    this.sweepTimer = setInterval(() => void this.sweep(), this.opts.sweepMs ?? 300);
    this.sweepTimer.unref();
  }

  /** Stops watching; machines and their state files stay for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweepTimer);
    for (const e of this.byName.values()) {
      clearTimeout(e.killTimer);
      c.close(e.pidfd);
    }
    this.byName.clear();
    this.leaderWatch.close();
    await Promise.all([this.netns.close(), this.roots.close()]);
  }

  get(name: string): Machine | undefined {
    return this.host && name === this.host.name ? this.host : this.byName.get(name)?.machine;
  }

  mustGet(name: string): Machine {
    const m = this.get(name);
    if (!m) throw noSuchMachine(name);
    return m;
  }

  /** `.host` first (where there is one), then the machines in the order they came. */
  list(): Machine[] {
    const out = this.host ? [this.host] : [];
    for (const e of this.byName.values()) out.push(e.machine);
    return out;
  }

  /** The machine that holds a process: its leader, else the machine of the unit the process is in. */
  async byPid(pid: number): Promise<Machine> {
    const led = this.byLeader.get(pid);
    if (led) return led.machine;
    const path = readCgroupPath(pid);
    const unit = path === undefined ? '' : unitOfCgroupPath(path);
    const e = unit ? this.byUnit.get(unit) : undefined;
    if (e) return e.machine;
    throw new RegistryError('NoMachineForPID', `PID ${pid} does not belong to any known machine`);
  }

  async register(req: RegisterRequest, scopeProperties: ScopeProperty[] = []): Promise<Machine> {
    let spec = validateRequest(req);
    if (spec.supervisor) spec = { ...spec, supervisor: { pid: spec.supervisor.pid, pidfdId: processPidfdId(spec.supervisor.pid) } };
    if (spec.allocateUnit && !this.opts.scopes && this.opts.adoptUnscoped) {
      this.opts.log.info({ machine: spec.name }, 'no scopes can be made here: the leader is adopted where it is');
      spec = { ...spec, allocateUnit: false };
    }
    if (spec.leader === process.pid) throw invalid('leader', `Invalid leader PID ${spec.leader}: that is the registry daemon itself`);
    const lower = spec.name.toLowerCase();
    const clash = this.byLowerName.get(lower)?.machine.name ?? this.reservedNames.get(lower);
    if (clash !== undefined) {
      throw new RegistryError('MachineExists', clash === spec.name ? `Machine '${spec.name}' already exists` : `Machine '${spec.name}' clashes with machine '${clash}': names must differ in more than letter case`);
    }
    if (this.byLeader.has(spec.leader) || this.reservedLeaders.has(spec.leader)) {
      const other = this.byLeader.get(spec.leader)?.machine.name;
      throw invalid('leader', `Invalid leader PID ${spec.leader}: it already leads ${other ? `machine '${other}'` : 'another machine'}`);
    }
    if (spec.allocateUnit && !this.opts.scopes) throw new RegistryError('NotSupported', 'Creating a scope is not supported here: no cgroup2 hierarchy found');
    // Reserved while the asynchronous checks run, so that a racing request is refused.
    this.reserve(spec.name, spec.leader);
    let entry: Entry | undefined;
    let written = false;
    let abandonScope: (() => Promise<void>) | undefined;
    try {
      const leader = openLeader(spec.leader);
      if (!leader) throw invalid('leader', `Invalid leader PID ${spec.leader}: no such process`);
      if (req.leaderPidfdId !== undefined && leader.id !== 0 && req.leaderPidfdId !== leader.id) {
        c.close(leader.fd);
        throw invalid('leaderPidfdId', `Invalid leader pidfd ID ${req.leaderPidfdId}: PID ${spec.leader} is another process now`);
      }
      let unit = '';
      let ownCgroup = '';
      try {
        if (spec.allocateUnit) {
          ({ path: ownCgroup, unit, abandon: abandonScope } = await this.opts.scopes!.create(spec.name, spec.leader, { class: spec.class, properties: scopeProperties, log: this.opts.log }));
        } else {
          const path = readCgroupPath(spec.leader);
          unit = path === undefined ? '' : unitOfCgroupPath(path);
          // A unit names one machine (the unit: link); a second machine in the same unit goes without.
          if (this.byUnit.has(unit)) unit = '';
        }
      } catch (e) {
        c.close(leader.fd);
        throw e;
      }
      entry = newEntry(makeMachine(spec, leader.startTime, leader.id, unit, ownCgroup), leader.fd);
      await this.watchAddresses(entry);
      this.files.write(entry.machine, true);
      written = true;
      this.insert(entry);
      const m = entry.machine;
      this.opts.log.info({ machine: m.name, leader: m.leader, class: m.class, unit: m.unit }, 'machine registered');
      return m;
    } catch (e) {
      if (entry && this.byName.get(spec.name) !== entry) {
        this.unwatchAddresses(entry);
        c.close(entry.pidfd);
        if (written) {
          try {
            this.files.remove(entry.machine);
          } catch {
            /* a state directory that took the file and cannot lose it: a restart drops it (no leader) */
          }
        }
      }
      // The leader goes back where it was: a refused request changes nothing.
      await abandonScope?.();
      throw e;
    } finally {
      this.unreserve(spec.name, spec.leader);
    }
  }

  /** Forgets a machine; its processes go on. */
  async unregister(name: string): Promise<void> {
    // Refused, with the machine kept, when its state file cannot be removed: else it would come back
    // after a restart.
    await this.remove(this.mustRegistered(name), 'unregistered', true);
  }

  /** SIGTERM to every process of the machine, SIGKILL to those left after the timeout, even when the
   *  leader has exited (and the machine is gone) by then. The machine goes when its leader exits. */
  async terminate(name: string): Promise<void> {
    const e = this.mustRegistered(name);
    const m = e.machine;
    const victims = await this.processes(m);
    await this.signal(e, 'leader', 15);
    signalAll(victims, m.leader, 15);
    if (e.machine.state !== 'closing' && this.byName.get(m.name) === e) this.update(e, { state: 'closing' });
    if (e.killTimer) return;
    e.killTimer = setTimeout(async () => {
      if (this.stopped) return;
      const registered = this.byName.get(m.name) === e;
      // Who is there now (its scope, or while the leader lives its descendants; never the tree of a
      // PID that may have been reused), and who was there at SIGTERM and is still the same process.
      if (m.ownCgroup && (await this.opts.scopes!.kill(m.ownCgroup))) return signalAll(victims, m.leader, 9);
      const now = m.ownCgroup || registered ? await this.processes(m).catch(() => []) : [];
      if (registered) await this.signal(e, 'leader', 9).catch(() => {});
      signalAll([...victims, ...now], m.leader, 9);
    }, this.opts.terminateTimeoutMs ?? 10_000);
    e.killTimer.unref();
  }

  async kill(name: string, whom: string, signal: number): Promise<void> {
    const e = this.mustRegistered(name);
    if (whom !== 'leader' && whom !== 'supervisor' && whom !== 'all' && whom !== '') throw invalid('whom', `Invalid whom '${whom}': expected 'leader', 'supervisor' or 'all'`);
    if (!Number.isSafeInteger(signal) || signal <= 0 || signal > MAX_SIGNAL) throw invalid('signal', `Invalid signal ${signal}: expected 1..${MAX_SIGNAL}`);
    if (whom === 'supervisor') return signalSupervisor(e.machine, signal);
    await this.signal(e, whom === 'leader' ? 'leader' : 'all', signal);
  }

  /** The addresses read from a container's own network namespace (machined's GetMachineAddresses). */
  netAddresses(name: string): readonly Address[] {
    const m = this.mustGet(name);
    if (m.class === 'host') return hostAddresses();
    if (m.class !== 'container') throw new RegistryError('NotSupported', 'Requesting IP address data is only supported on container machines.');
    if (!m.privateNetwork) throw new RegistryError('NoPrivateNetworking', `Machine '${name}' does not use private networking`);
    return m.netAddresses ?? [];
  }

  async osRelease(name: string): Promise<Map<string, string>> {
    const m = this.mustGet(name);
    if (m.class === 'vm') throw new RegistryError('NotSupported', 'Requesting OS release data is only supported on container machines.');
    const pid = m.class === 'host' ? process.pid : m.leader;
    let os: Map<string, string> | undefined;
    try {
      os = await readOsRelease(this.roots, pid);
    } catch (e) {
      if (!(e instanceof RootReadError)) throw e;
      const why = `Cannot read the OS release of machine '${name}': ${e.message}`;
      throw new RegistryError(e.why === 'timeout' || e.why === 'stalled' || e.why === 'failed' ? 'Failed' : 'NoOSRelease', why);
    }
    if (!os) throw new RegistryError('NoOSRelease', 'Machine does not contain OS release information');
    return os;
  }

  private mustRegistered(name: string): Entry {
    const e = this.byName.get(name);
    if (e) return e;
    if (name === this.host?.name) throw new RegistryError('NotSupported', 'The host cannot be unregistered, terminated or killed through the registry');
    throw noSuchMachine(name);
  }

  private reserve(name: string, leader: number): void {
    this.reservedNames.set(name.toLowerCase(), name);
    this.reservedLeaders.add(leader);
  }

  private unreserve(name: string, leader: number): void {
    this.reservedNames.delete(name.toLowerCase());
    this.reservedLeaders.delete(leader);
  }

  /** Links an entry into every index and announces it. */
  private insert(e: Entry): void {
    const m = e.machine;
    this.leaderWatch.add(e.pidfd, e); // first: it is the one that can fail
    this.byName.set(m.name, e);
    this.byLowerName.set(m.name.toLowerCase(), e);
    this.byLeader.set(m.leader, e);
    if (m.unit) this.byUnit.set(m.unit, e);
    // A scope left by a machine before is this one's now (Create takes an empty or its own one over).
    if (m.ownCgroup && this.staleCgroups.delete(m.ownCgroup)) this.saveStaleCgroups();
    this.emit('added', m);
  }

  /** Unlinks an entry from every index, closes what it holds and removes its state file. `strict`: a
   *  state file that cannot be removed refuses it (a SystemError), else that is only logged. */
  private async remove(e: Entry, why: string, strict = false): Promise<void> {
    const m = e.machine;
    if (this.byName.get(m.name) !== e) return;
    try {
      this.files.remove(m);
    } catch (err) {
      if (strict) throw err;
      this.opts.log.warn({ machine: m.name, error: (err as Error).message }, 'state file not removed');
    }
    this.byName.delete(m.name);
    this.byLowerName.delete(m.name.toLowerCase());
    this.byLeader.delete(m.leader);
    if (this.byUnit.get(m.unit) === e) this.byUnit.delete(m.unit);
    this.leaderWatch.delete(e.pidfd);
    c.close(e.pidfd);
    this.unwatchAddresses(e);
    this.opts.log.info({ machine: m.name, why }, 'machine removed');
    // Before anything that waits: readers (resolver, userdb) must stop answering for it now.
    this.emit('removed', m);
    if (m.ownCgroup && !(await this.opts.scopes!.remove(m.ownCgroup))) this.addStaleCgroup(m.ownCgroup);
  }

  /** Replaces the machine of an entry; a registered one is announced as changed. */
  private update(e: Entry, change: Partial<Machine>): void {
    const previous = e.machine;
    e.machine = Object.freeze({ ...previous, ...change });
    if (this.byName.get(previous.name) === e) this.emit('changed', e.machine, previous);
  }

  /** Follows a container's addresses. Waits (a bounded time) for the first list before the machine is
   *  inserted, so that it resolves as soon as its registration is answered; later changes are events.
   *  Resolves at once when there is nothing to wait for (no private network namespace). */
  private watchAddresses(e: Entry): Promise<void> {
    const m = e.machine;
    if (m.class !== 'container') return Promise.resolve();
    let first: (() => void) | undefined;
    let answered = false;
    e.netWatch = this.netns.watch(m.leader, m.netns, (u) => {
      answered = true;
      first?.();
      const privateNetwork = 'addresses' in u || u.error === 'failed';
      const netAddresses = 'addresses' in u ? u.addresses : undefined;
      if ('error' in u && u.error === 'failed') this.opts.log.warn({ machine: m.name, error: u.message }, 'cannot read addresses');
      // The worker posts only lists that differ from its last one; the first answer is no change.
      if (privateNetwork !== e.machine.privateNetwork || netAddresses !== e.machine.netAddresses) this.update(e, { privateNetwork, netAddresses });
    });
    if (answered) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, FIRST_ADDRESSES_WAIT_MS);
      first = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private unwatchAddresses(e: Entry): void {
    if (e.netWatch !== undefined) this.netns.unwatch(e.netWatch);
    e.netWatch = undefined;
  }

  /** The processes of a machine with their start times: its scope's, else the leader and its descendants. */
  private async processes(m: Machine): Promise<Victim[]> {
    return withStartTimes(m.ownCgroup ? await this.opts.scopes!.processes(m.ownCgroup) : processTree(m.leader));
  }

  private async signal(e: Entry, whom: 'leader' | 'all', sig: number): Promise<void> {
    const m = e.machine;
    if (whom === 'all' && sig === 9 && m.ownCgroup && (await this.opts.scopes!.kill(m.ownCgroup))) return;
    // Found before the leader is signalled: once it is dead its children are no longer its own.
    const others = whom === 'all' ? await this.processes(m) : [];
    // Through the pidfd only while the entry holds it (it is closed when the machine goes).
    if (this.byName.get(m.name) === e && c.pidfd_send_signal(e.pidfd, sig, null, 0) !== 0 && c.errno() !== c.ESRCH) {
      throw new RegistryError('Failed', `Failed to signal the leader of '${m.name}': errno ${c.errno()}`);
    }
    signalAll(others, m.leader, sig);
  }

  /** Removes machines whose leader exited, and reads the ID maps that were not there yet. */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      for (const e of this.leaderWatch.exited()) await this.remove(e, 'leader exited');
      for (const e of this.byName.values()) if (e.pendingMaps) this.readPendingMaps(e);
      let removed = false;
      for (const path of this.staleCgroups) {
        if (await this.opts.scopes!.remove(path)) removed = this.staleCgroups.delete(path);
      }
      if (removed) this.saveStaleCgroups();
    } finally {
      this.sweeping = false;
    }
  }

  private addStaleCgroup(path: string): void {
    if (this.staleCgroups.has(path)) return;
    this.staleCgroups.add(path);
    this.saveStaleCgroups();
  }

  private saveStaleCgroups(): void {
    try {
      this.files.writeStaleScopes(this.staleCgroups);
    } catch (e) {
      this.opts.log.warn({ error: (e as Error).message }, 'scopes left to remove not saved: a restart will not remove them');
    }
  }

  private readPendingMaps(e: Entry): void {
    const m = e.machine;
    const uidMap = m.uidMap.length ? m.uidMap : readIdMap(m.leader, 'uid');
    const gidMap = m.gidMap.length ? m.gidMap : readIdMap(m.leader, 'gid');
    e.pendingMaps = uidMap.length === 0 || gidMap.length === 0;
    if (uidMap.length === m.uidMap.length && gidMap.length === m.gidMap.length) return;
    this.update(e, { uidMap, gidMap });
    this.saveQuietly(e.machine);
  }

  /** Rewrites a known machine's file; a failure is logged, not thrown: the machine is right in memory,
   *  and what its file lacks (our keys, its ID maps) is read from its leader again after a restart. */
  private saveQuietly(m: Machine): void {
    try {
      this.files.write(m, false);
    } catch (e) {
      this.opts.log.warn({ machine: m.name, error: (e as Error).message }, 'state file not updated');
    }
  }

  /** Takes back a machine from its state file if its leader is still the same process. */
  private async reload(name: string): Promise<void> {
    const file = this.files.read(name);
    if ('skipped' in file) {
      this.opts.log.warn({ file: join(this.files.dir, name), why: file.skipped }, `state file ${join(this.files.dir, name)} skipped: ${file.skipped}`);
      return;
    }
    const r = parseState(file.text);
    if (r?.name !== name) {
      this.opts.log.info({ machine: name }, 'unreadable state file removed at start');
      return this.files.removeFile(name);
    }
    let leader: Leader | undefined;
    /** shared: the unit and scope named in the file are another machine's too (its leader's), and stay. */
    const drop = async (why: string, shared = false) => {
      if (leader) c.close(leader.fd);
      this.opts.log.info({ machine: r.name, why }, 'machine dropped at start');
      this.files.removeFile(r.name);
      if (shared) return;
      if (r.unit) this.files.removeFile(`unit:${r.unit}`);
      if (r.ownCgroup && this.opts.scopes && !(await this.opts.scopes.remove(r.ownCgroup))) this.addStaleCgroup(r.ownCgroup);
    };
    if (r.class !== 'container' && r.class !== 'vm') return drop(`invalid class '${r.class}'`);
    try {
      leader = openLeader(r.leader);
    } catch (e) {
      return drop((e as Error).message);
    }
    if (!leader) return drop('leader gone');
    if (r.leaderStartTime && r.leaderStartTime !== leader.startTime) return drop('leader PID reused by another process');
    const lower = r.name.toLowerCase();
    // Another file's machine has this leader: its unit and scope, which this file names too, are kept.
    if (this.byLeader.has(r.leader) || this.reservedLeaders.has(r.leader)) return drop('duplicate: another machine has its leader', true);
    if (this.byLowerName.has(lower) || this.reservedNames.has(lower)) return drop('duplicate: another machine has its name');
    // Reserved now: the other files are reloaded meanwhile, and a duplicate among them must see this one.
    this.reserve(r.name, r.leader);
    try {
      const spec: MachineSpec = {
        name: r.name,
        id: /^[0-9a-f]{32}$/.test(r.id) ? r.id : '',
        service: r.service,
        class: r.class,
        leader: r.leader,
        rootDirectory: r.rootDirectory,
        ifIndices: r.ifIndices.filter((i) => Number.isSafeInteger(i) && i > 0),
        addresses: sortAddresses(r.addresses.map((a) => parseAddress(a)!)),
        vSockCid: r.vSockCid,
        sshAddress: r.sshAddress,
        sshPrivateKeyPath: r.sshPrivateKeyPath,
        controlAddress: r.controlAddress,
        supervisor: r.supervisor,
        uid: r.uid,
        allocateUnit: r.allocateUnit,
      };
      // The leader is the same process (its start time says so): its namespaces are those it registered
      // with, and ID maps never change once written.
      const e = newEntry(makeMachine(spec, leader.startTime, leader.id, r.unit, r.ownCgroup, { netns: r.netns, uidMap: r.uidMap, gidMap: r.gidMap }, { realtime: r.realtime, monotonic: r.monotonic }), leader.fd);
      leader = undefined; // the entry holds its pidfd now
      try {
        await this.watchAddresses(e);
        // Rewritten only when it changes (a file from machined gains our keys): a restart stays fast.
        if (this.files.serialize(e.machine) !== r.text) this.saveQuietly(e.machine);
        this.insert(e);
      } catch (err) {
        this.unwatchAddresses(e);
        c.close(e.pidfd);
        throw err;
      }
    } finally {
      this.unreserve(r.name, r.leader);
    }
  }
}

function newEntry(machine: Machine, pidfd: number): Entry {
  const pendingMaps = machine.class === 'container' && (machine.uidMap.length === 0 || machine.gidMap.length === 0);
  return { machine, pidfd, netWatch: undefined, killTimer: undefined, pendingMaps };
}

/** `known`: what a state file says of the leader's namespaces, if anything (else they are read). */
function makeMachine(spec: MachineSpec, leaderStartTime: string, leaderPidfdId: number, unit: string, ownCgroup: string,
  known: { netns: string; uidMap: readonly IdMapLine[]; gidMap: readonly IdMapLine[] } = { netns: '', uidMap: [], gidMap: [] },
  timestamp = now()): Machine {
  const container = spec.class === 'container';
  const maps = known.uidMap.length > 0 && known.gidMap.length > 0 ? { uid: known.uidMap, gid: known.gidMap } : container ? readIdMaps(spec.leader) : { uid: [], gid: [] };
  const netns = !container ? '' : known.netns || (readNamespace(spec.leader, 'net') ?? '');
  // Field by field: a spread with more fields after it is slow in V8 (microseconds per object), and a
  // restart makes thousands.
  return Object.freeze({
    name: spec.name,
    id: spec.id,
    service: spec.service,
    class: spec.class,
    leader: spec.leader,
    rootDirectory: spec.rootDirectory,
    ifIndices: spec.ifIndices,
    addresses: spec.addresses,
    vSockCid: spec.vSockCid,
    sshAddress: spec.sshAddress,
    sshPrivateKeyPath: spec.sshPrivateKeyPath,
    controlAddress: spec.controlAddress,
    supervisor: spec.supervisor,
    uid: spec.uid,
    allocateUnit: spec.allocateUnit,
    leaderStartTime,
    leaderPidfdId,
    unit,
    ownCgroup,
    timestamp,
    state: 'running',
    netAddresses: undefined,
    privateNetwork: false,
    netns,
    uidMap: maps.uid,
    gidMap: maps.gid,
  });
}

interface Victim {
  pid: number;
  startTime: string;
}

function withStartTimes(pids: number[]): Victim[] {
  const out: Victim[] = [];
  for (const pid of pids) {
    const st = readProcStat(pid);
    if (st) out.push({ pid, startTime: st.startTime });
  }
  return out;
}

/** Signals the process that registered a machine for its leader (whom 'supervisor'), if it is surely
 *  still that process (the same pidfd ID: without one a reused PID could not be told); ESRCH, as
 *  machined, when there is none or it is gone. */
function signalSupervisor(m: Machine, sig: number): void {
  const gone = () => new SystemError('ESRCH', c.ESRCH, `Machine '${m.name}' has no supervisor process (any more)`);
  const sup = m.supervisor;
  if (!sup?.pidfdId) throw gone();
  const fd = c.pidfd_open(sup.pid, 0);
  if (fd < 0) throw gone();
  try {
    if (pidfdId(fd) !== sup.pidfdId) throw gone();
    if (c.pidfd_send_signal(fd, sig, null, 0) !== 0) {
      if (c.errno() === c.ESRCH) throw gone();
      throw new RegistryError('Failed', `Failed to signal the supervisor of '${m.name}': errno ${c.errno()}`);
    }
  } finally {
    c.close(fd);
  }
}

/** Signals each process that is still the one seen (same start time), except the leader, which is
 *  signalled through its pidfd. */
function signalAll(victims: Victim[], leader: number, sig: number): void {
  for (const v of victims) {
    if (v.pid === leader || readProcStat(v.pid)?.startTime !== v.startTime) continue;
    try {
      process.kill(v.pid, sig);
    } catch {
      /* exited meanwhile */
    }
  }
}

function now(): { realtime: number; monotonic: number } {
  return {
    realtime: Math.floor((performance.timeOrigin + performance.now()) * 1000),
    monotonic: Number(process.hrtime.bigint() / 1000n),
  };
}

/** machined's `.host` pseudo machine (reference §2.3). */
function hostMachine(id: string): Machine {
  const t = now();
  return Object.freeze({
    name: '.host',
    id,
    service: '',
    class: 'host',
    leader: 1,
    rootDirectory: '/',
    ifIndices: [],
    addresses: [],
    // VMADDR_CID_LOCAL where there is AF_VSOCK, as machined 262 gives the host (a constant record).
    vSockCid: existsSync('/dev/vsock') ? 1 : undefined,
    uid: 0,
    allocateUnit: false,
    leaderStartTime: '',
    leaderPidfdId: processPidfdId(1),
    unit: '-.slice',
    ownCgroup: '',
    // Boot time: the monotonic clock starts (nearly) at boot.
    timestamp: { realtime: t.realtime - t.monotonic, monotonic: 0 },
    state: 'running',
    netAddresses: undefined,
    privateNetwork: false,
    netns: '',
    uidMap: [],
    gidMap: [],
  });
}

/** The host's own addresses, filtered and ordered as a container's. */
function hostAddresses(): Address[] {
  const out: Address[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) {
      if (i.internal) continue;
      const a = parseAddress(i.address.split('%')[0]);
      if (a && a.scope < RT_SCOPE_HOST) out.push({ ...a, ifindex: 0 });
    }
  }
  return sortAddresses(out.filter((a) => a.family === AF_INET || a.family === AF_INET6));
}
