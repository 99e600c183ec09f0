// The Varlink front end of the registry: io.systemd.Machine as systemd-machined 262 defines it (its
// methods, parameters, reply fields, types and error names, in its order; the descriptions in our words),
// so that machinectl, nspawn, vmspawn and varlinkctl 262 and our own clients speak one interface. Four
// additions of ours, which no 262 client sends or reads: Register's `addresses` (a VM's IP addresses),
// List's `ifIndices`, `state` and `osReleaseError`, and the method Watch. It only translates between Varlink and Registry
// calls; the five methods whose work is another module's (Open, BindMount, CopyFrom, CopyTo,
// OpenRootDirectory) are handed that module's operations by the daemon.
import { readFileSync } from 'node:fs';
import { RawJson, mapErrors, type CallContext, type Handler } from '../varlink/server.js';
import { t, type InterfaceDef, type VType } from '../varlink/schema.js';
import { FAILED_ERROR, VarlinkError, errorTable, expectedMore, invalidParameter, requireRootOr, systemError } from '../varlink/errors.js';
import { RegistryError, type RegistryErrorKind, SystemError } from './errors.js';
import { OperationError } from './machine-ops.js';
import { HOST_ID_RANGE, type IdKind, findOwner, outerId, validId } from './id-mapping.js';
import { type Machine, uidShift } from './machine.js';
import { isValidMachineName } from './names.js';
import type { Registry } from './registry.js';
import { type RegisterRequest, isNormalizedPath, printable, validateRequest } from './validate.js';

const IFACE = 'io.systemd.Machine';

/** machined 262's errors, which carry no parameters there; ours add a `message` for people. */
const errors = errorTable(IFACE, {
  NoSuchMachine: {},
  MachineExists: {},
  NoPrivateNetworking: {},
  NoOSReleaseInformation: {},
  NoUIDShift: {},
  NotAvailable: {},
  NotSupported: {},
  NoIPC: {},
  NoSuchUser: {},
  NoSuchGroup: {},
  UserInHostRange: {},
  GroupInHostRange: {},
});
type ErrorName = keyof typeof errors.defs;

/** The Varlink error of each registry error kind: the one place they meet. A SystemError is
 *  io.systemd.System with its errno; a failure without one (systemd refused a scope) is ours. */
const ERROR_OF: Record<RegistryErrorKind, string> = {
  NoSuchMachine: errors.name('NoSuchMachine'),
  NoMachineForPID: errors.name('NoSuchMachine'),
  MachineExists: errors.name('MachineExists'),
  NoPrivateNetworking: errors.name('NoPrivateNetworking'),
  NotSupported: errors.name('NotSupported'),
  NoSuchUserMapping: errors.name('NoSuchUser'),
  NoSuchGroupMapping: errors.name('NoSuchGroup'),
  NoOSRelease: errors.name('NoOSReleaseInformation'),
  InvalidParameter: 'org.varlink.service.InvalidParameter',
  System: 'io.systemd.System',
  Failed: FAILED_ERROR,
};

/** A registry error as the Varlink error that names it; the message goes along for people. */
export function toVarlinkError(e: unknown): unknown {
  if (!(e instanceof RegistryError)) return e;
  if (e instanceof OperationError) return errors.make(e.operation, { message: e.message }, e.message);
  if (e instanceof SystemError) return systemError(e.errno, e.code, e.message);
  if (e.kind === 'InvalidParameter') return invalidParameter(e.field ?? '', e.message);
  return new VarlinkError(ERROR_OF[e.kind], { message: e.message }, e.message);
}

const fail = (name: ErrorName, message: string) => errors.make(name, { message }, message);

// ---- The interface ----

const opt = t.optional;
/** How a method names its machine: by name, or by a process in it (pid 0: the caller's). */
const selector = { name: opt(t.string), pid: opt(t.ref('ProcessId')), allowInteractiveAuthentication: opt(t.bool) };

/** List's reply, in machined 262's order, then ours. */
const machineFields: Record<string, VType> = {
  name: t.string,
  id: opt(t.string),
  service: opt(t.string),
  class: t.ref('MachineClass'),
  leader: opt(t.ref('ProcessId')),
  supervisor: opt(t.ref('ProcessId')),
  rootDirectory: opt(t.string),
  unit: opt(t.string),
  timestamp: opt(t.ref('Timestamp')),
  vSockCid: opt(t.int),
  sshAddress: opt(t.string),
  sshPrivateKeyPath: opt(t.string),
  controlAddress: opt(t.string),
  addresses: opt(t.array(t.ref('Address'))),
  OSRelease: opt(t.array(t.string)),
  UIDShift: opt(t.int),
  subgroup: opt(t.string),
  UID: opt(t.int),
  ifIndices: opt(t.array(t.int)),
  state: opt(t.string),
  /** Ours, with acquireMetadata graceful: why the OS release could not be read (a root that does not
   *  answer in time), where machined would leave it out without a word. */
  osReleaseError: opt(t.string),
};

export const machineInterface: InterfaceDef = {
  name: IFACE,
  types: {
    MachineClass: t.enum(['container', 'vm', 'host']),
    KillWhom: t.enum(['leader', 'supervisor', 'all']),
    AcquireMetadata: t.enum(['no', 'yes', 'graceful']),
    MachineOpenMode: t.enum(['tty', 'login', 'shell']),
    ProcessId: t.struct({ pid: t.int, pidfdId: opt(t.int), bootId: opt(t.string) }),
    Timestamp: t.struct({ realtime: opt(t.int), monotonic: opt(t.int) }),
    Address: t.struct({ ifindex: opt(t.int), family: t.int, address: t.array(t.int) }),
  },
  methods: {
    Register: {
      doc: 'Registers a machine: root only (in a per-user registry, its user). The leader is leaderProcessId\n' +
        'or leader (the same process if both are given), else the caller; the caller is its supervisor.\n' +
        'allocateUnit: also put the leader into a scope machine.slice/machine-NAME.scope of its own.\n' +
        'supervisor and supervisorProcessId are ignored, as by machined. addresses (ours): IP addresses\n' +
        'to answer with instead of those read from the leader (VMs).',
      in: {
        name: t.string,
        id: opt(t.string),
        service: opt(t.string),
        class: t.ref('MachineClass'),
        leader: opt(t.int),
        leaderProcessId: opt(t.ref('ProcessId')),
        supervisor: opt(t.int),
        supervisorProcessId: opt(t.ref('ProcessId')),
        rootDirectory: opt(t.string),
        ifIndices: opt(t.array(t.int)),
        vSockCid: opt(t.int),
        sshAddress: opt(t.string),
        sshPrivateKeyPath: opt(t.string),
        controlAddress: opt(t.string),
        allocateUnit: opt(t.bool),
        allowInteractiveAuthentication: opt(t.bool),
        addresses: opt(t.array(t.string)),
      },
      out: {},
    },
    Unregister: { doc: 'Forgets a machine, by name or by a process in it; its processes go on.', in: selector, out: {} },
    Terminate: { doc: 'SIGTERM to every process of the machine, SIGKILL to those left after a timeout.', in: selector, out: {} },
    Kill: {
      doc: 'Sends a signal (1..64) to the leader, the supervisor or all processes of the machine (default all).',
      in: { ...selector, whom: opt(t.ref('KillWhom')), signal: t.int },
      out: {},
    },
    List: {
      doc: 'One machine (name or pid given), or with more all of them. acquireMetadata yes adds the\n' +
        'addresses, OSRelease and UIDShift (an error if one cannot be had), graceful adds those it can.\n' +
        'ifIndices and state are ours.',
      in: { ...selector, acquireMetadata: opt(t.ref('AcquireMetadata')) },
      out: machineFields,
    },
    Open: {
      doc: 'A pseudo terminal in the machine: tty, a login prompt (login), or a program run as a user (shell).',
      in: { ...selector, mode: t.ref('MachineOpenMode'), user: opt(t.string), path: opt(t.string), args: opt(t.array(t.string)), environment: opt(t.array(t.string)) },
      out: { ptyFileDescriptor: t.int, ptyPath: t.string },
    },
    MapFrom: {
      doc: 'The host UID and GID of a UID and GID inside a container.',
      in: { ...selector, uid: opt(t.int), gid: opt(t.int) },
      out: { uid: opt(t.int), gid: opt(t.int) },
    },
    MapTo: {
      doc: 'The container whose user namespace holds a host UID or GID, and the ID inside it.',
      in: { uid: opt(t.int), gid: opt(t.int) },
      out: { uid: opt(t.int), gid: opt(t.int), machineName: opt(t.string) },
    },
    BindMount: {
      doc: 'Bind mounts a host path into a container (destination: the same path if not given).',
      in: { ...selector, source: t.string, destination: opt(t.string), readOnly: opt(t.bool), mkdir: opt(t.bool) },
      out: {},
    },
    CopyFrom: {
      doc: 'Copies a path from a container to the host.',
      in: { ...selector, source: t.string, destination: opt(t.string), replace: opt(t.bool) },
      out: {},
    },
    CopyTo: {
      doc: 'Copies a path from the host into a container.',
      in: { ...selector, source: t.string, destination: opt(t.string), replace: opt(t.bool) },
      out: {},
    },
    OpenRootDirectory: {
      doc: "A descriptor of the machine's root directory.",
      in: selector,
      out: { fileDescriptor: t.int },
    },
    Watch: {
      doc: 'Ours. With more: an event for each machine there now ("added"), then one for each machine added,\n' +
        'removed or changed, until the client hangs up. machine is as List answers with acquireMetadata\n' +
        'graceful, without OSRelease.',
      in: {},
      out: { event: t.enum(['added', 'removed', 'changed']), machine: t.object },
    },
  },
  errors: errors.defs,
};

// ---- Machines as JSON ----

/** This boot's ID as sd-id128 writes it (32 hex digits), for ProcessId objects. */
let bootIdText: string | undefined;
function bootId(): string {
  bootIdText ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '');
  return bootIdText;
}

/** A 128-bit ID given as 32 hex digits or in UUID form (as sd-id128 reads both), as 32 lower-case digits. */
function id128(s: string): string {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s) ? s.replace(/-/g, '').toLowerCase() : s;
}

function processId(pid: number, pidfdId: number): object {
  // As machined: the inode number of the pidfd where pidfs has one, and then the boot it belongs to.
  return pidfdId > 0 ? { pid, pidfdId, bootId: bootId() } : { pid };
}

/** How many machines' metadata List reads at once. */
const METADATA_READS = 16;

/** f over items, at most `n` at a time, results in order. */
async function mapConcurrently<T, R>(items: readonly T[], n: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, run));
  return out;
}

interface Metadata {
  addresses?: object[];
  OSRelease?: string[];
  UIDShift?: number;
  osReleaseError?: string;
}

function machineJson(m: Machine, meta: Metadata = {}): Record<string, unknown> {
  // Plain assignments rather than conditional spreads: List builds one of these per machine.
  const j: Record<string, unknown> = { name: m.name };
  if (m.id) j.id = m.id;
  j.class = m.class;
  if (m.service) j.service = m.service;
  if (m.rootDirectory) j.rootDirectory = m.rootDirectory;
  if (m.unit) j.unit = m.unit;
  j.leader = processId(m.leader, m.leaderPidfdId);
  if (m.supervisor) j.supervisor = processId(m.supervisor.pid, m.supervisor.pidfdId);
  j.timestamp = m.timestamp;
  if (m.vSockCid !== undefined) j.vSockCid = m.vSockCid;
  if (m.sshAddress) j.sshAddress = m.sshAddress;
  if (m.sshPrivateKeyPath) j.sshPrivateKeyPath = m.sshPrivateKeyPath;
  if (m.controlAddress) j.controlAddress = m.controlAddress;
  if (meta.addresses?.length) j.addresses = meta.addresses;
  if (meta.OSRelease?.length) j.OSRelease = meta.OSRelease;
  if (meta.UIDShift !== undefined) j.UIDShift = meta.UIDShift;
  j.UID = m.uid;
  if (m.ifIndices.length > 0) j.ifIndices = m.ifIndices;
  j.state = m.state;
  if (meta.osReleaseError) j.osReleaseError = meta.osReleaseError;
  return j;
}

/** What machined 262 answers when a piece of metadata does not apply to the class of machine. */
function notAvailable(e: unknown): unknown {
  return e instanceof RegistryError && e.kind === 'NotSupported' ? fail('NotAvailable', e.message) : e;
}

/** A machine's addresses as List's metadata: those it was registered with, else its network namespace's. */
function addressesOf(reg: Registry, m: Machine): object[] {
  const given = m.addresses.length > 0;
  let list;
  try {
    list = given ? m.addresses : reg.netAddresses(m.name);
  } catch (e) {
    throw notAvailable(e);
  }
  // The interface index (inside the container) as machined gives it; none for given addresses.
  return list.map((a) => (a.ifindex > 0 ? { ifindex: a.ifindex, family: a.family, address: a.bytes } : { family: a.family, address: a.bytes }));
}

async function osReleaseOf(reg: Registry, m: Machine): Promise<string[]> {
  try {
    return [...(await reg.osRelease(m.name))].map(([k, v]) => `${k}=${v}`);
  } catch (e) {
    throw notAvailable(e);
  }
}

function uidShiftOf(m: Machine): number {
  if (m.class === 'vm') throw fail('NotAvailable', 'A UID shift is only known for containers');
  const shift = uidShift(m);
  if (shift === undefined) throw fail('NoUIDShift', `Machine '${m.name}' has a user namespace with more than one ID map line: no single UID shift`);
  return shift;
}

/** List's metadata in machined's order; `yes` fails on the first that cannot be had, `graceful` leaves
 *  those out. */
async function metadata(reg: Registry, m: Machine, mode: 'yes' | 'graceful'): Promise<Metadata> {
  const meta: Metadata = {};
  const get = async <T>(f: () => T | Promise<T>): Promise<T | undefined> => {
    try {
      return await f();
    } catch (e) {
      if (mode === 'graceful') return undefined;
      throw e;
    }
  };
  meta.addresses = await get(() => addressesOf(reg, m));
  meta.OSRelease = await get(() =>
    osReleaseOf(reg, m).catch((e) => {
      // Not that the machine has none: that its root could not be read. Said, even when graceful.
      if (mode === 'graceful' && e instanceof RegistryError && e.kind === 'Failed') meta.osReleaseError = e.message;
      throw e;
    }),
  );
  meta.UIDShift = await get(() => uidShiftOf(m));
  return meta;
}

// ---- Handlers ----

/** The calls of io.systemd.Machine whose work is another module's (PTYs, bind mounts, copies, root
 *  directories). Each is handed the machine the call names, its parameters already checked as machined
 *  checks them, and the call; for Open and OpenRootDirectory the caller may change the registry, and
 *  the machine is no VM; for the others it is a container (the caller's rights are checked after that,
 *  as machined does). Without one, the call answers NotSupported. */
export interface OperationHandlers {
  Open?(m: Machine, p: OpenParams, ctx: CallContext): Promise<object>;
  BindMount?(m: Machine, p: BindMountParams, ctx: CallContext): Promise<object>;
  CopyFrom?(m: Machine, p: CopyParams, ctx: CallContext): Promise<object>;
  CopyTo?(m: Machine, p: CopyParams, ctx: CallContext): Promise<object>;
  OpenRootDirectory?(m: Machine, p: object, ctx: CallContext): Promise<object>;
}

export interface OpenParams { mode: 'tty' | 'login' | 'shell'; user?: string; path?: string; args?: string[]; environment?: string[] }
export interface BindMountParams { source: string; destination?: string; readOnly?: boolean; mkdir?: boolean }
export interface CopyParams { source: string; destination?: string; replace?: boolean }

export interface MachineHandlerOptions {
  /** Besides root, the one user who may change the registry: a per-user registry's user. */
  owner?: number;
  operations?: OperationHandlers;
}

interface ProcessIdParam { pid: number; pidfdId?: number; bootId?: string }
interface Selector { name?: string; pid?: ProcessIdParam }

/** An absolute path in plain form ('..', '.' and '//' refused), as machined's json_dispatch_path. */
function checkPath(field: string, p: string | undefined): void {
  if (p === undefined) return;
  if (!isNormalizedPath(p)) {
    throw invalidParameter(field, `Invalid ${field} '${printable(p)}': must be an absolute path`);
  }
}

function checkSignal(signal: number): void {
  if (signal < 1 || signal > 64) throw invalidParameter('signal', `Invalid signal ${signal}: expected 1..64`);
}

export function machineHandlers(reg: Registry, opts: MachineHandlerOptions = {}): Record<string, Handler> {
  const ops = opts.operations ?? {};
  const requireChanger = (ctx: CallContext) => requireRootOr(ctx.peer.uid, opts.owner);
  /** The machine a call names, as machined 262 finds it: by name, by a process in it, or both (the same
   *  machine); NoSuchMachine when none is named or found. */
  const select = async (p: Selector, ctx: CallContext): Promise<Machine> => {
    let byName: Machine | undefined;
    if (p.name !== undefined) {
      if (!isValidMachineName(p.name) && p.name !== '.host') throw invalidParameter('name', `Invalid machine name '${printable(p.name)}'`);
      byName = reg.get(p.name);
      if (!byName) throw fail('NoSuchMachine', `No machine '${p.name}' known`);
    }
    let byPid: Machine | undefined;
    if (p.pid !== undefined) {
      const { pid, bootId: boot } = p.pid;
      if (pid < 0 || pid > 0x7fffffff) throw invalidParameter('pid', `Invalid PID ${pid}`);
      if (boot !== undefined && id128(boot).toLowerCase() !== bootId()) throw fail('NoSuchMachine', `PID ${pid} is of another boot (${printable(boot)})`);
      // PID 0: the machine of the caller.
      byPid = await reg.byPid(pid === 0 ? ctx.peer.pid : pid);
    }
    if (byName && byPid && byName !== byPid) throw fail('NoSuchMachine', `PID ${p.pid!.pid} does not belong to machine '${byName.name}'`);
    const m = byName ?? byPid;
    if (!m) throw fail('NoSuchMachine', 'No machine named: give name or pid');
    return m;
  };
  /** The host is no machine of the registry's: it cannot be unregistered, terminated or killed
   *  (machined: EOPNOTSUPP). */
  const notHost = (m: Machine, verb: string) => {
    if (m.class === 'host') throw systemError(95, 'EOPNOTSUPP', `The host cannot be ${verb} through the registry`);
  };
  const notSupported = (what: string) => fail('NotSupported', `${what} is not supported by this mymachinesd`);

  // Each machine's JSON as List sends it without metadata, kept as long as the machine: with thousands
  // of machines, building and serializing them was most of a List's time. Machines are read-only (a
  // machine that changes is a new object), so a text never goes stale.
  const texts = new WeakMap<Machine, RawJson>();
  const listed = async (m: Machine, mode: string | undefined): Promise<object> => {
    if (mode === 'yes' || mode === 'graceful') return machineJson(m, await metadata(reg, m, mode));
    let j = texts.get(m);
    if (!j) texts.set(m, (j = new RawJson(JSON.stringify(machineJson(m)))));
    return j;
  };
  // What Watch sends of a machine: a machine's addresses and a container's UID shift, but no os-release
  // (a file read per event), and none of the host's own addresses (they change without an event).
  const watched = (m: Machine) => {
    const meta: Metadata = {};
    if (m.class !== 'host') {
      try {
        meta.addresses = addressesOf(reg, m);
      } catch {
        /* none to give */
      }
    }
    if (m.class === 'container') meta.UIDShift = uidShift(m);
    return machineJson(m, meta);
  };

  return mapErrors({
    async Register(p, ctx) {
      const leader = leaderOf(p, ctx);
      // The caller is the supervisor (machined 262 takes it from the socket; the parameters are ignored).
      const req: RegisterRequest = {
        name: p.name,
        id: p.id === undefined ? undefined : id128(p.id),
        service: p.service,
        class: p.class,
        leader: leader.pid,
        leaderPidfdId: leader.pidfdId,
        rootDirectory: p.rootDirectory,
        ifIndices: p.ifIndices,
        vSockCid: p.vSockCid,
        sshAddress: p.sshAddress,
        sshPrivateKeyPath: p.sshPrivateKeyPath,
        controlAddress: p.controlAddress,
        addresses: p.addresses,
        allocateUnit: p.allocateUnit,
        // A caller in another PID namespace has no PID here (SO_PEERCRED gives 0): then there is none.
        supervisor: ctx.peer.pid > 0 ? ctx.peer.pid : undefined,
        uid: ctx.peer.uid,
      };
      try {
        // Bad input is named before rights are checked, as machined does.
        validateRequest(req);
        requireChanger(ctx);
        await reg.register(req);
      } catch (e) {
        // The leader given as leaderProcessId is named so.
        if (leader.field === 'leaderProcessId' && e instanceof RegistryError && (e.field === 'leader' || e.field === 'leaderPidfdId')) {
          throw invalidParameter('leaderProcessId', e.message);
        }
        throw e;
      }
      return {};
    },
    async Unregister(p, ctx) {
      const m = await select(p, ctx);
      requireChanger(ctx);
      notHost(m, 'unregistered');
      await reg.unregister(m.name);
      return {};
    },
    async Terminate(p, ctx) {
      const m = await select(p, ctx);
      requireChanger(ctx);
      notHost(m, 'terminated');
      await reg.terminate(m.name);
      return {};
    },
    async Kill(p, ctx) {
      checkSignal(p.signal);
      const m = await select(p, ctx);
      requireChanger(ctx);
      notHost(m, 'killed');
      await reg.kill(m.name, p.whom ?? 'all', p.signal);
      return {};
    },
    async List(p, ctx) {
      if (p.name !== undefined || p.pid !== undefined) return listed(await select(p, ctx), p.acquireMetadata);
      if (!ctx.more) throw expectedMore();
      const all = reg.list();
      if (all.length === 0) throw fail('NoSuchMachine', 'No machines registered');
      // Metadata of several machines at once: a root that stalls costs its own time limit, not one for
      // each machine after it.
      const replies = await mapConcurrently(all, METADATA_READS, (m) => listed(m, p.acquireMetadata));
      for (let i = 0; i < replies.length - 1; i++) {
        ctx.notify(replies[i]);
        // Thousands of replies: let a slow reader catch up rather than cut it off.
        if (i % 256 === 255) await ctx.drain();
      }
      return replies[replies.length - 1];
    },
    async Open(p, ctx) {
      checkPath('path', p.path);
      const bad = (p.environment ?? []).find((e: string) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(e) || e.includes('\0'));
      if (bad !== undefined) throw invalidParameter('environment', `Invalid environment assignment '${printable(bad)}': expected NAME=VALUE`);
      // "Valid only when mode='shell'", as machined 262 says of user, path, args and environment.
      if (p.mode !== 'shell') for (const k of ['user', 'path', 'args', 'environment']) if (p[k] !== undefined) throw invalidParameter(k, `${k} is valid only with mode 'shell'`);
      const m = await select(p, ctx);
      requireChanger(ctx);
      if (m.class === 'vm' || !ops.Open) throw notSupported(m.class === 'vm' ? 'Opening a terminal in a VM' : 'Opening a terminal in a machine');
      return ops.Open(m, p, ctx);
    },
    async MapFrom(p, ctx) {
      for (const f of ['uid', 'gid'] as const) if (p[f] !== undefined && !validId(p[f])) throw invalidParameter(f, `Invalid ${f === 'uid' ? 'UID' : 'GID'} ${p[f]}`);
      const m = await select(p, ctx);
      if (m.class !== 'container') throw fail('NotSupported', 'Mapping IDs is only supported for containers');
      const out: Record<string, number> = {};
      for (const [f, kind] of [['uid', 'user'], ['gid', 'group']] as const) {
        if (p[f] === undefined) continue;
        const host = outerId(m, kind, p[f]);
        if (host === undefined || !validId(host)) throw noMapping(kind, `Machine '${m.name}' maps no ${kind} ID ${p[f]}`);
        out[f] = host;
      }
      return out;
    },
    MapTo(p) {
      const given = [['uid', 'user'], ['gid', 'group']].filter(([f]) => p[f] !== undefined) as [('uid' | 'gid'), IdKind][];
      for (const [f, kind] of given) {
        if (!validId(p[f])) throw invalidParameter(f, `Invalid ${f === 'uid' ? 'UID' : 'GID'} ${p[f]}`);
        if (p[f] < HOST_ID_RANGE) throw fail(kind === 'user' ? 'UserInHostRange' : 'GroupInHostRange', `${kind === 'user' ? 'User' : 'Group'} ${p[f]} belongs to the host's range`);
      }
      const out: Record<string, unknown> = {};
      let owner: Machine | undefined;
      for (const [f, kind] of given) {
        const found = findOwner(reg.list(), kind, p[f]);
        if (!found) throw noMapping(kind, `No container's user namespace holds host ${kind} ID ${p[f]}`);
        if (owner && owner !== found.machine) throw fail('NoSuchMachine', `UID ${p.uid} and GID ${p.gid} belong to different machines`);
        owner = found.machine;
        out[f] = found.id;
      }
      if (!owner) throw fail('NoSuchMachine', 'No ID given: give uid or gid');
      out.machineName = owner.name;
      return out;
    },
    async BindMount(p, ctx) {
      checkPath('source', p.source);
      checkPath('destination', p.destination);
      const m = await select(p, ctx);
      if (m.class !== 'container') throw fail('NotSupported', 'Bind mounting is only supported for containers');
      requireChanger(ctx);
      if (!ops.BindMount) throw notSupported('Bind mounting');
      return ops.BindMount(m, p, ctx);
    },
    async CopyFrom(p, ctx) {
      return copy(p, ctx, 'CopyFrom');
    },
    async CopyTo(p, ctx) {
      return copy(p, ctx, 'CopyTo');
    },
    async OpenRootDirectory(p, ctx) {
      const m = await select(p, ctx);
      requireChanger(ctx);
      if (m.class === 'vm' || !ops.OpenRootDirectory) throw notSupported(m.class === 'vm' ? "Opening a VM's root directory" : "Opening a machine's root directory");
      return ops.OpenRootDirectory(m, {}, ctx);
    },
    async Watch(_p, ctx) {
      if (!ctx.more) throw expectedMore();
      for (const m of reg.list()) ctx.notify({ event: 'added', machine: watched(m) });
      const on = (event: 'added' | 'removed' | 'changed') => (m: Machine) => ctx.notify({ event, machine: watched(m) });
      const listeners = { added: on('added'), removed: on('removed'), changed: on('changed') };
      for (const [e, f] of Object.entries(listeners)) reg.on(e as 'added', f);
      // Until the client hangs up (it may have before this call even started).
      const { signal } = ctx;
      if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      for (const [e, f] of Object.entries(listeners)) reg.off(e as 'added', f);
      return {};
    },
  }, toVarlinkError);

  async function copy(p: CopyParams & Selector, ctx: CallContext, method: 'CopyFrom' | 'CopyTo'): Promise<object> {
    checkPath('source', p.source);
    checkPath('destination', p.destination);
    const m = await select(p, ctx);
    if (m.class !== 'container') throw fail('NotSupported', 'Copying files is only supported for containers');
    requireChanger(ctx);
    const op = ops[method];
    if (!op) throw notSupported('Copying files');
    return op(m, p, ctx);
  }
}

function noMapping(kind: IdKind, message: string): VarlinkError {
  return fail(kind === 'user' ? 'NoSuchUser' : 'NoSuchGroup', message);
}

/** Register's leader: leaderProcessId or leader (the same PID if both are given), else the caller. */
function leaderOf(p: { leader?: number; leaderProcessId?: ProcessIdParam }, ctx: CallContext): { pid: number; pidfdId?: number; field: string } {
  const pidRef = p.leaderProcessId;
  if (pidRef === undefined) return { pid: p.leader ?? ctx.peer.pid, field: 'leader' };
  const bad = (why: string) => invalidParameter('leaderProcessId', `Invalid leaderProcessId: ${why}`);
  if (pidRef.pid <= 0) throw bad(`PID ${pidRef.pid}`);
  if (p.leader !== undefined && p.leader !== pidRef.pid) throw bad(`PID ${pidRef.pid} is not leader ${p.leader}`);
  if (pidRef.bootId !== undefined && id128(pidRef.bootId).toLowerCase() !== bootId()) throw bad(`PID ${pidRef.pid} is of another boot`);
  if (pidRef.pidfdId !== undefined && pidRef.pidfdId <= 0) throw bad(`pidfd ID ${pidRef.pidfdId}`);
  return { pid: pidRef.pid, pidfdId: pidRef.pidfdId, field: 'leaderProcessId' };
}
