// The registry: the only place that knows machines. Front ends (Varlink, D-Bus) call it; the resolver
// and userdb read it and follow its events. It imports no other part of mymachines.
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { RegistryError, invalid, noSuchMachine } from './errors.js';
import { AF_INET, AF_INET6, type Address, RT_SCOPE_HOST, parseAddress, sortAddresses } from './address.js';
import * as c from './linux/libc.js';
import { type Leader, openLeader } from './linux/leader.js';
import { LeaderWatch } from './linux/leader-watch.js';
import { NetnsWatcher } from './linux/netns.js';
import { readOsRelease } from './linux/os-release.js';
import { type IdMapLine, processTree, readCgroupPath, readIdMap, readIdMaps, readNamespace, readProcStat, unitOfCgroupPath } from './linux/proc.js';
import type { Machine, MachineSpec } from './machine.js';
import type { ScopeAllocator, ScopeProperty } from './scope.js';
export type { ScopeAllocator, ScopeProperty, ScopeRequest } from './scope.js';
import { StateFiles } from './state-files.js';
import { type RegisterRequest, validateRequest } from './validate.js';

export interface Logger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  debug(o: object, msg: string): void;
}

export interface RegistryOptions {
  stateDir: string;
  /** Where Create puts leaders; without one, Create is refused as not supported. */
  scopes?: ScopeAllocator;
  terminateTimeoutMs?: number;
  /** How often leaders are checked for exit; a machine goes within this much after its leader. */
  sweepMs?: number;
  log: Logger;
}

export type Whom = 'leader' | 'all';

export interface RegistryEvents {
  added: [Machine];
  removed: [Machine];
  /** Addresses, ID maps or state changed. */
  changed: [Machine];
}

const MAX_SIGNAL = 64;
const FIRST_ADDRESSES_WAIT_MS = 1000;

export class Registry extends EventEmitter<RegistryEvents> {
  private readonly machines = new Map<string, Machine>();
  /** Lower-cased names of registered and half-registered machines: names are unique ignoring case. */
  private readonly lowerNames = new Map<string, string>();
  private readonly leaders = new Set<number>();
  private readonly pidfds = new Map<string, number>();
  private readonly leaderWatch = new LeaderWatch<Machine>();
  /** Containers whose uid_map or gid_map was still empty: a user namespace may get its maps written
   *  after its leader registered (and the two maps are two writes). */
  private readonly pendingMaps = new Set<Machine>();
  private readonly netWatches = new Map<string, number>();
  /** SIGKILL timers of terminated machines; they outlive the machine (its leader may exit first). */
  private readonly killTimers = new Map<Machine, NodeJS.Timeout>();
  private sweeping = false;
  /** Cgroups of removed machines that still held processes; removed once empty. */
  private readonly staleCgroups = new Set<string>();
  private readonly netns = new NetnsWatcher();
  private readonly files: StateFiles;
  private sweepTimer: NodeJS.Timeout | undefined;
  readonly host: Machine;

  constructor(private readonly opts: RegistryOptions) {
    super();
    this.setMaxListeners(0); // every Watch client and front end listens
    this.files = new StateFiles(opts.stateDir);
    this.host = hostMachine();
  }

  /** Loads the state files (dropping machines whose leader is gone), then watches the leaders. */
  async start(): Promise<void> {
    c.raiseFileLimit();
    this.files.init();
    this.host.id = await readFile('/etc/machine-id', 'utf8').then((s) => s.trim(), () => '');
    this.machines.set(this.host.name, this.host);
    this.lowerNames.set(this.host.name, this.host.name);
    await Promise.all(this.files.names().map((name) => this.reload(name)));
    this.files.removeLeftovers(new Set(this.machines.keys()));
    this.sweepTimer = setInterval(() => void this.sweep(), this.opts.sweepMs ?? 300);
    this.sweepTimer.unref();
  }

  /** Stops watching; machines and their state files stay for the next start. */
  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    for (const t of this.killTimers.values()) clearTimeout(t);
    for (const fd of this.pidfds.values()) c.close(fd);
    this.pidfds.clear();
    this.leaderWatch.close();
    await this.netns.close();
  }

  get(name: string): Machine | undefined {
    return this.machines.get(name);
  }

  /** By name, ignoring case, as DNS does. */
  lookup(name: string): Machine | undefined {
    const exact = this.lowerNames.get(name.toLowerCase());
    return exact === undefined ? undefined : this.machines.get(exact);
  }

  mustGet(name: string): Machine {
    const m = this.machines.get(name);
    if (!m) throw noSuchMachine(name);
    return m;
  }

  list(): Machine[] {
    return [...this.machines.values()];
  }

  /** The machine that holds a process: its leader, else the machine of the unit the process is in. */
  async byPid(pid: number): Promise<Machine> {
    for (const m of this.machines.values()) if (m.leader === pid && m.class !== 'host') return m;
    const path = readCgroupPath(pid);
    const unit = path === undefined ? '' : unitOfCgroupPath(path);
    if (unit) for (const m of this.machines.values()) if (m.unit === unit && m.class !== 'host') return m;
    throw new RegistryError('NoMachineForPID', `PID ${pid} does not belong to any known machine`);
  }

  async register(req: RegisterRequest, scopeProperties: ScopeProperty[] = []): Promise<Machine> {
    const spec = validateRequest(req);
    if (spec.leader === process.pid) throw invalid('leader', `Invalid leader PID ${spec.leader}: that is the registry daemon itself`);
    const lower = spec.name.toLowerCase();
    const clash = this.lowerNames.get(lower);
    if (clash !== undefined) {
      throw new RegistryError('MachineExists', clash === spec.name ? `Machine '${spec.name}' already exists` : `Machine '${spec.name}' clashes with machine '${clash}': names must differ in more than letter case`);
    }
    if (this.leaders.has(spec.leader)) {
      const other = this.list().find((m) => m.leader === spec.leader);
      throw invalid('leader', `Invalid leader PID ${spec.leader}: it already leads ${other ? `machine '${other.name}'` : 'another machine'}`);
    }
    if (spec.allocateUnit && !this.opts.scopes) throw new RegistryError('NotSupported', 'Creating a scope is not supported here: no cgroup2 hierarchy found');
    // Reserve name and leader while the asynchronous checks run, so that a racing request is refused.
    this.lowerNames.set(lower, spec.name);
    this.leaders.add(spec.leader);
    let pidfd = -1;
    let ownCgroup = '';
    let abandonScope: (() => Promise<void>) | undefined;
    try {
      const leader = openLeader(spec.leader);
      if (!leader) throw invalid('leader', `Invalid leader PID ${spec.leader}: no such process`);
      const { fd, startTime, id: leaderPidfdId } = leader;
      pidfd = fd;
      if (req.leaderPidfdId !== undefined && leaderPidfdId !== 0 && req.leaderPidfdId !== leaderPidfdId) {
        throw invalid('leaderPidfdId', `Invalid leader pidfd ID ${req.leaderPidfdId}: PID ${spec.leader} is another process now`);
      }
      let unit = '';
      if (spec.allocateUnit) {
        ({ path: ownCgroup, unit, abandon: abandonScope } = await this.opts.scopes!.create(spec.name, spec.leader, { class: spec.class, properties: scopeProperties, log: this.opts.log }));
      } else {
        const path = readCgroupPath(spec.leader);
        unit = path === undefined ? '' : unitOfCgroupPath(path);
        // A unit names one machine (the unit: link); a second machine in the same unit goes without.
        if (unit && this.list().some((m) => m.unit === unit)) unit = '';
      }
      const m = this.makeMachine(spec, startTime, leaderPidfdId, unit, ownCgroup);
      const firstAddresses = this.watchAddresses(m);
      if (firstAddresses) await firstAddresses;
      this.files.write(m);
      this.insert(m, pidfd);
      this.opts.log.info({ machine: m.name, leader: m.leader, class: m.class, unit: m.unit }, 'machine registered');
      return m;
    } catch (e) {
      if (!this.machines.has(spec.name)) {
        this.unwatchAddresses(spec.name);
        this.lowerNames.delete(lower);
        this.leaders.delete(spec.leader);
        if (pidfd >= 0) c.close(pidfd);
        // The leader goes back where it was: a refused request changes nothing.
        await abandonScope?.();
        this.files.remove({ name: spec.name, unit: '' });
      }
      throw e;
    }
  }

  /** Forgets a machine; its processes go on. */
  async unregister(name: string): Promise<void> {
    const m = this.mustRegistered(name);
    await this.remove(m, 'unregistered');
  }

  /** SIGTERM to every process of the machine, SIGKILL to those left after the timeout, even when the
   *  leader has exited (and the machine is gone) by then. The machine goes when its leader exits. */
  async terminate(name: string): Promise<void> {
    const m = this.mustRegistered(name);
    const victims = await this.processes(m);
    await this.signal(m, 'leader', 15);
    signalAll(victims, m.leader, 15);
    if (m.state !== 'closing' && this.machines.get(m.name) === m) {
      m.state = 'closing';
      this.emit('changed', m);
    }
    if (this.killTimers.has(m)) return;
    const t = setTimeout(async () => {
      this.killTimers.delete(m);
      const registered = this.machines.get(m.name) === m;
      // Who is there now (its scope, or while the leader lives its descendants; never the tree of a
      // PID that may have been reused), and who was there at SIGTERM and is still the same process.
      if (m.ownCgroup && (await this.opts.scopes!.kill(m.ownCgroup))) return signalAll(victims, m.leader, 9);
      const now = m.ownCgroup || registered ? await this.processes(m).catch(() => []) : [];
      if (registered) await this.signal(m, 'leader', 9).catch(() => {});
      signalAll([...victims, ...now], m.leader, 9);
    }, this.opts.terminateTimeoutMs ?? 10_000);
    t.unref();
    this.killTimers.set(m, t);
  }

  async kill(name: string, whom: string, signal: number): Promise<void> {
    const m = this.mustRegistered(name);
    if (whom !== 'leader' && whom !== 'all' && whom !== '') throw invalid('whom', `Invalid whom '${whom}': expected 'leader' or 'all'`);
    if (!Number.isSafeInteger(signal) || signal <= 0 || signal > MAX_SIGNAL) throw invalid('signal', `Invalid signal ${signal}: expected 1..${MAX_SIGNAL}`);
    await this.signal(m, whom === 'leader' ? 'leader' : 'all', signal);
  }

  /** The addresses read from a container's own network namespace (machined's GetMachineAddresses). */
  netAddresses(name: string): Address[] {
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
    const os = await readOsRelease(pid);
    if (!os) throw new RegistryError('NoOSRelease', 'Machine does not contain OS release information');
    return os;
  }

  private mustRegistered(name: string): Machine {
    const m = this.mustGet(name);
    if (m.class === 'host') throw new RegistryError('NotSupported', 'The host cannot be unregistered, terminated or killed through the registry');
    return m;
  }

  /** `known`: what a state file says of the leader's namespaces, if anything (else they are read). */
  private makeMachine(spec: MachineSpec, leaderStartTime: string, leaderPidfdId: number, unit: string, ownCgroup: string,
    known: { netns: string; uidMap: IdMapLine[]; gidMap: IdMapLine[] } = { netns: '', uidMap: [], gidMap: [] }): Machine {
    const container = spec.class === 'container';
    const maps = known.uidMap.length > 0 && known.gidMap.length > 0 ? { uid: known.uidMap, gid: known.gidMap } : container ? readIdMaps(spec.leader) : { uid: [], gid: [] };
    const { uid: uidMap, gid: gidMap } = maps;
    const netns = !container ? '' : known.netns || (readNamespace(spec.leader, 'net') ?? '');
    // Field by field: a spread with more fields after it is slow in V8 (microseconds per object), and a
    // restart makes thousands.
    return {
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
      supervisor: spec.supervisor,
      uid: spec.uid,
      allocateUnit: spec.allocateUnit,
      leaderStartTime,
      leaderPidfdId,
      unit,
      ownCgroup,
      timestamp: now(),
      state: 'running',
      netAddresses: undefined,
      privateNetwork: false,
      netns,
      uidMap,
      gidMap,
    };
  }

  private insert(m: Machine, pidfd: number): void {
    this.machines.set(m.name, m);
    this.lowerNames.set(m.name.toLowerCase(), m.name);
    this.leaders.add(m.leader);
    this.pidfds.set(m.name, pidfd);
    this.leaderWatch.add(pidfd, m);
    if (m.class === 'container' && (m.uidMap.length === 0 || m.gidMap.length === 0)) this.pendingMaps.add(m);
    this.emit('added', m);
  }

  /** Follows a container's addresses. Waits (a bounded time) for the first list before the machine is
   *  inserted, so that it resolves as soon as its registration is answered; later changes are events.
   *  Returns undefined when there is nothing to wait for (no private network namespace: answered at once). */
  private watchAddresses(m: Machine): Promise<void> | undefined {
    if (m.class !== 'container') return undefined;
    let first: (() => void) | undefined;
    let answered = false;
    const id = this.netns.watch(m.leader, m.netns, (u) => {
      answered = true;
      first?.();
      const privateNetwork = 'addresses' in u || u.error === 'failed';
      const netAddresses = 'addresses' in u ? u.addresses : undefined;
      if ('error' in u && u.error === 'failed') this.opts.log.warn({ machine: m.name, error: u.message }, 'cannot read addresses');
      // The worker posts only lists that differ from its last one; the first answer is no change.
      const changed = privateNetwork !== m.privateNetwork || netAddresses !== m.netAddresses;
      m.privateNetwork = privateNetwork;
      m.netAddresses = netAddresses;
      if (changed && this.machines.get(m.name) === m) this.emit('changed', m);
    });
    this.netWatches.set(m.name, id);
    if (answered) return undefined;
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, FIRST_ADDRESSES_WAIT_MS);
      first = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private unwatchAddresses(name: string): void {
    const id = this.netWatches.get(name);
    if (id !== undefined) this.netns.unwatch(id);
    this.netWatches.delete(name);
  }

  private async remove(m: Machine, why: string): Promise<void> {
    if (this.machines.get(m.name) !== m) return;
    this.machines.delete(m.name);
    this.lowerNames.delete(m.name.toLowerCase());
    this.leaders.delete(m.leader);
    const fd = this.pidfds.get(m.name);
    if (fd !== undefined) {
      this.leaderWatch.delete(fd);
      c.close(fd);
    }
    this.pidfds.delete(m.name);
    this.pendingMaps.delete(m);
    this.unwatchAddresses(m.name);
    this.files.remove(m);
    this.opts.log.info({ machine: m.name, why }, 'machine removed');
    // Before anything that waits: readers (resolver, userdb) must stop answering for it now.
    this.emit('removed', m);
    if (m.ownCgroup && !(await this.opts.scopes!.remove(m.ownCgroup))) this.staleCgroups.add(m.ownCgroup);
  }

  /** The processes of a machine with their start times: its scope's, else the leader and its descendants. */
  private async processes(m: Machine): Promise<Victim[]> {
    return withStartTimes(m.ownCgroup ? await this.opts.scopes!.processes(m.ownCgroup) : processTree(m.leader));
  }

  private async signal(m: Machine, whom: Whom, sig: number): Promise<void> {
    if (whom === 'all' && sig === 9 && m.ownCgroup && (await this.opts.scopes!.kill(m.ownCgroup))) return;
    // Found before the leader is signalled: once it is dead its children are no longer its own.
    const others = whom === 'all' ? await this.processes(m) : [];
    const fd = this.pidfds.get(m.name);
    if (fd !== undefined && this.machines.get(m.name) === m && c.pidfd_send_signal(fd, sig, null, 0) !== 0 && c.errno() !== c.ESRCH) {
      throw new RegistryError('Failed', `Failed to signal the leader of '${m.name}': errno ${c.errno()}`);
    }
    signalAll(others, m.leader, sig);
  }

  /** Removes machines whose leader exited, and reads the ID maps that were not there yet. */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      for (const m of this.leaderWatch.exited()) await this.remove(m, 'leader exited');
      for (const m of this.pendingMaps) {
        const u = m.uidMap.length ? m.uidMap : readIdMap(m.leader, 'uid');
        const g = m.gidMap.length ? m.gidMap : readIdMap(m.leader, 'gid');
        if (u === m.uidMap && g === m.gidMap) continue;
        if (u.length > 0 && g.length > 0) this.pendingMaps.delete(m);
        if (u.length === m.uidMap.length && g.length === m.gidMap.length) continue;
        m.uidMap = u;
        m.gidMap = g;
        this.files.write(m);
        this.emit('changed', m);
      }
      for (const path of this.staleCgroups) if (await this.opts.scopes!.remove(path)) this.staleCgroups.delete(path);
    } finally {
      this.sweeping = false;
    }
  }

  /** Takes back a machine from its state file if its leader is still the same process. */
  private async reload(name: string): Promise<void> {
    const r = this.files.read(name);
    if (!r) {
      this.opts.log.info({ machine: name }, 'unreadable state file removed at start');
      return this.files.removeFile(name);
    }
    let leader: Leader | undefined;
    const drop = async (why: string) => {
      if (leader) c.close(leader.fd);
      this.opts.log.info({ machine: r.name, why }, 'machine dropped at start');
      this.files.remove({ name: r.name, unit: r.unit });
      if (r.ownCgroup && this.opts.scopes) await this.opts.scopes.remove(r.ownCgroup);
    };
    if (r.class !== 'container' && r.class !== 'vm') return drop(`invalid class '${r.class}'`);
    leader = openLeader(r.leader);
    if (!leader) return drop('leader gone');
    if (r.leaderStartTime && r.leaderStartTime !== leader.startTime) return drop('leader PID reused by another process');
    if (this.leaders.has(r.leader) || this.lowerNames.has(r.name.toLowerCase())) return drop('duplicate');
    // Reserved now: the other files are reloaded meanwhile, and a duplicate among them must see this one.
    this.lowerNames.set(r.name.toLowerCase(), r.name);
    this.leaders.add(r.leader);
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
      supervisor: r.supervisor,
      uid: r.uid,
      allocateUnit: r.allocateUnit,
    };
    // The leader is the same process (its start time says so): its namespaces are those it registered
    // with, and ID maps never change once written.
    const m = this.makeMachine(spec, leader.startTime, leader.id, r.unit, r.ownCgroup, { netns: r.netns, uidMap: r.uidMap, gidMap: r.gidMap });
    m.timestamp = { realtime: r.realtime, monotonic: r.monotonic };
    const firstAddresses = this.watchAddresses(m);
    if (firstAddresses) await firstAddresses;
    // Rewritten only when it changes (a file from machined gains our keys): a restart stays fast.
    if (this.files.serialize(m) !== r.text) this.files.write(m);
    this.insert(m, leader.fd);
  }
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
function hostMachine(): Machine {
  const t = now();
  return {
    name: '.host',
    id: '',
    service: '',
    class: 'host',
    leader: 1,
    rootDirectory: '/',
    ifIndices: [],
    addresses: [],
    uid: 0,
    allocateUnit: false,
    leaderStartTime: '',
    leaderPidfdId: 0,
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
  };
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
