// The D-Bus front end of the registry: org.freedesktop.machine1 as systemd-machined 252 serves it
// (reference §1-§3), with what 262 added (RegisterMachineEx, CreateMachineEx, SSH info, the new
// properties): the Manager, one Machine object per machine (and `self`), the Manager's signals.
// It only translates between D-Bus and Registry calls.
import { existsSync } from 'node:fs';
import type dbus from 'dbus-next';
import { RegistryError, type RegistryErrorKind, SystemError, SystemdError } from './errors.js';
import { type IdKind, mapFromMachine, mapToMachine } from './id-mapping.js';
import { close as closeFd } from './linux/libc.js';
import { pidOfPidfd } from './linux/leader.js';
import { type Machine, uidShift } from './machine.js';
import { type MachineOperations, OperationError } from './machine-ops.js';
import type { Registry, ScopeProperty } from './registry.js';
import type { RegisterRequest } from './validate.js';
import { busLabelEscape, busLabelUnescape } from '../dbus/bus-label.js';
import { BusError, type BusObject, type BusService, type Caller, E, type InterfaceDef, type MethodDef, type ObjectTree, type PropertyDef, errnoErrorName } from '../dbus/bus-service.js';

export const BUS_NAME = 'org.freedesktop.machine1';
const MANAGER_PATH = '/org/freedesktop/machine1';
const MANAGER = 'org.freedesktop.machine1.Manager';
const MACHINE = 'org.freedesktop.machine1.Machine';
const MACHINE_PREFIX = '/org/freedesktop/machine1/machine/';
/** VMADDR_CID_ANY: machined's VSockCID when a machine has none. */
const VSOCK_CID_ANY = 0xffffffff;

/** machined's D-Bus error for each registry error kind (reference §1.4); the one place they are named.
 *  System errors are named by their errno, as sd-bus names them. */
const ERROR_NAMES: Record<Exclude<RegistryErrorKind, 'System'>, string> = {
  NoSuchMachine: 'org.freedesktop.machine1.NoSuchMachine',
  MachineExists: 'org.freedesktop.machine1.MachineExists',
  NoMachineForPID: 'org.freedesktop.machine1.NoMachineForPID',
  NoPrivateNetworking: 'org.freedesktop.machine1.NoPrivateNetworking',
  NoSuchUserMapping: 'org.freedesktop.machine1.NoSuchUserMapping',
  NoSuchGroupMapping: 'org.freedesktop.machine1.NoSuchGroupMapping',
  InvalidParameter: E.InvalidArgs,
  NotSupported: E.NotSupported,
  NoOSRelease: E.Failed,
  Failed: E.Failed,
};

export function toBusError(e: unknown): BusError | undefined {
  // systemd's own errors (and JobFailed) go on with their names, as machined passes them on.
  if (e instanceof SystemdError) return new BusError(e.busName, e.message);
  // machined 252 has no D-Bus names for these: a user that is not there is an argument at fault, a
  // container without a getty is one where it cannot be done.
  if (e instanceof OperationError) return new BusError(e.operation === 'NoSuchUser' ? E.InvalidArgs : E.NotSupported, e.message);
  // A leader's pidfd ID that names no process (any more): machined cannot pin it (ESRCH), named so.
  if (e instanceof RegistryError && e.field === 'leaderPidfdId') return new BusError('org.freedesktop.DBus.Error.UnixProcessIdUnknown', e.message);
  if (e instanceof SystemError) return new BusError(errnoErrorName(e.code), e.message);
  return e instanceof RegistryError && e.kind !== 'System' ? new BusError(ERROR_NAMES[e.kind], e.message) : undefined;
}

function machinePath(name: string): string {
  const path = MACHINE_PREFIX + busLabelEscape(name);
  // Escaping only makes [A-Za-z0-9_]; checked anyway, as a bad path would break the whole reply.
  if (!/^(\/[A-Za-z0-9_]+)+$/.test(path)) throw new BusError(E.Failed, `Cannot make an object path for machine '${name}'`);
  return path;
}

function idFromBytes(id: Buffer): string {
  if (id.length !== 0 && id.length !== 16) throw new BusError(E.InvalidArgs, 'Invalid machine ID parameter: expected 0 or 16 bytes');
  return id.every((b) => b === 0) ? '' : id.toString('hex');
}

/** machined's copy flags (CopyFromMachineWithFlags, CopyToMachineWithFlags): only REPLACE. */
const COPY_REPLACE = 1n;
function copyFlags(flags: bigint | number): boolean {
  const f = BigInt(flags);
  if (f & ~COPY_REPLACE) throw new BusError(E.InvalidArgs, `Invalid copy flags 0x${f.toString(16)}`);
  return f === COPY_REPLACE;
}

/** The Manager's and the Machine object's PTY, shell, copy, bind and root directory methods, on
 *  MachineOperations: Manager methods take the machine's name first, the Machine's are on `m`. Only root
 *  (and a per-user registry's user) may call them (machined asks polkit, which refuses an unprivileged
 *  caller without an agent). */
function operations(reg: Registry, ops: MachineOperations, prefix: 'manager' | 'machine'): Record<string, MethodDef<any>> {
  const nameArg = prefix === 'manager' ? 'name:s ' : '';
  const target = async (t: Machine | null, c: Caller, args: any[]): Promise<[string, any[]]> => {
    const name = prefix === 'manager' ? (args.shift() as string) : t!.name;
    return [(await changeable(reg, c, name)).name, args];
  };
  const pty = (open: (name: string, a: any[]) => Promise<{ fd: number; path: string }>) => async (t: Machine | null, c: Caller, ...a: any[]) => {
    const [name, rest] = await target(t, c, a);
    const { fd, path } = await open(name, rest);
    return [fd, path];
  };
  const member = (manager: string, machine: string) => (prefix === 'manager' ? manager : machine);
  const copy = (direction: 'to' | 'from', withFlags: boolean) => async (t: Machine | null, c: Caller, ...a: any[]) => {
    const [name, [source, destination, flags]] = await target(t, c, a);
    await ops.copy(name, direction, { source, destination, replace: withFlags ? copyFlags(flags) : false });
  };
  return {
    [member('OpenMachinePTY', 'OpenPTY')]: { in: nameArg.trim(), out: 'pty:h pty_path:s', call: pty((n) => ops.openPty(n, 'tty')) },
    [member('OpenMachineLogin', 'OpenLogin')]: { in: nameArg.trim(), out: 'pty:h pty_path:s', call: pty((n) => ops.openPty(n, 'login')) },
    [member('OpenMachineShell', 'OpenShell')]: {
      in: `${nameArg}user:s path:s args:as environment:as`,
      out: 'pty:h pty_path:s',
      call: pty((n, [user, path, args, environment]) => ops.openPty(n, 'shell', { user, path, args, environment })),
    },
    [member('BindMountMachine', 'BindMount')]: {
      in: `${nameArg}source:s destination:s read_only:b mkdir:b`,
      out: '',
      call: async (t, c, ...a) => {
        const [name, [source, destination, readOnly, mkdir]] = await target(t, c, a);
        await ops.bindMount(name, { source, destination, readOnly, mkdir });
      },
    },
    [member('CopyFromMachine', 'CopyFrom')]: { in: `${nameArg}source:s destination:s`, out: '', call: copy('from', false) },
    [member('CopyToMachine', 'CopyTo')]: { in: `${nameArg}source:s destination:s`, out: '', call: copy('to', false) },
    [member('CopyFromMachineWithFlags', 'CopyFromWithFlags')]: { in: `${nameArg}source:s destination:s flags:t`, out: '', call: copy('from', true) },
    [member('CopyToMachineWithFlags', 'CopyToWithFlags')]: { in: `${nameArg}source:s destination:s flags:t`, out: '', call: copy('to', true) },
    [member('OpenMachineRootDirectory', 'OpenRootDirectory')]: {
      in: nameArg.trim(),
      out: 'fd:h',
      call: async (t, c, ...a) => [ops.openRootDirectory((await target(t, c, a))[0])],
    },
  };
}

function mapTo(reg: Registry, kind: IdKind, outer: number): unknown[] {
  const { machine, id } = mapToMachine(reg, kind, outer);
  return [machine.name, machinePath(machine.name), id];
}

function uidShiftOf(m: Machine): number {
  if (m.class !== 'container' && m.class !== 'host') throw new BusError(E.NotSupported, 'UID/GID shift may only be determined for container machines.');
  const shift = uidShift(m);
  if (shift === undefined) throw new BusError(E.NotSupported, 'Machine uses a complex UID/GID mapping, cannot determine shift');
  return shift;
}

const addresses = (reg: Registry, m: Machine) => [reg.netAddresses(m.name).map((a) => [a.family, a.bytes])];
const osRelease = async (reg: Registry, m: Machine) => [Object.fromEntries(await reg.osRelease(m.name))];

type BusProperty = [string, dbus.Variant];

/** What a registration carries besides its name, as the front end hands it to the registry. */
type Registration = Omit<RegisterRequest, 'name' | 'leader' | 'supervisor' | 'uid' | 'allocateUnit'> & { leader?: number };

/** Registers (allocateUnit: creates) a machine for a caller, who must be root (or a per-user registry's
 *  user). The leader defaults to the caller; a caller that is not the leader is the machine's
 *  supervisor, as machined 258+ records. */
async function register(reg: Registry, caller: Caller, allocateUnit: boolean, name: string, r: Registration, scope: BusProperty[] = []) {
  await caller.mayChange('machines');
  const { pid, uid } = await caller.creds();
  const leader = r.leader || pid;
  // As machined, which pins the leader first: no such process is ESRCH, named so on the bus.
  if (!existsSync(`/proc/${leader}`)) throw new BusError('org.freedesktop.DBus.Error.UnixProcessIdUnknown', `Failed to pin process ${leader}: No such process`);
  const properties: ScopeProperty[] = scope.map(([n, v]) => ({ name: n, signature: v.signature, value: v.value }));
  const m = await reg.register({ ...r, name, leader, supervisor: pid, uid, allocateUnit }, properties);
  return [machinePath(m.name)];
}

const classic = (id: Buffer, service: string, cls: string, leader: number, rootDirectory: string, ifIndices: number[] = []): Registration => ({
  id: idFromBytes(id),
  service,
  class: cls,
  leader,
  rootDirectory,
  ifIndices,
});

/** The properties of RegisterMachineEx and CreateMachineEx (machined 259+), by key: their D-Bus type. */
const EX_PROPERTIES: Record<string, string> = {
  Id: 'ay',
  Service: 's',
  Class: 's',
  LeaderPID: 'u',
  LeaderPIDFD: 'h',
  LeaderPIDFDID: 't',
  RootDirectory: 's',
  NetworkInterfaces: 'ai',
  VSockCID: 'u',
  SSHAddress: 's',
  SSHPrivateKeyPath: 's',
};

/** The file descriptors a list of properties brought along: the caller's copies, closed once the call is done. */
function passedFds(props: BusProperty[]): number[] {
  return props.filter(([, v]) => v?.signature === 'h' && Number.isInteger(v.value)).map(([, v]) => v.value as number);
}

/** RegisterMachineEx's properties as a registration, checked as machined checks them: an unknown key or a
 *  value of another type is InvalidArgs; the leader is LeaderPIDFD (LeaderPID, if given too, must name
 *  the same process), else LeaderPID and LeaderPIDFDID together, else the caller. */
function exRegistration(props: BusProperty[]): Registration {
  const v: Record<string, any> = {};
  for (const [key, variant] of props) {
    const type = EX_PROPERTIES[key];
    if (!type) throw new BusError(E.InvalidArgs, `Unknown property '${key}'`);
    if (variant.signature !== type) throw new BusError(E.InvalidArgs, `Invalid type '${variant.signature}' of property '${key}', expecting '${type}'`);
    v[key] = variant.value;
  }
  if (v.NetworkInterfaces) for (const i of v.NetworkInterfaces as number[]) if (i <= 0) throw new BusError(E.InvalidArgs, `Invalid network interface index ${i}`);
  if (v.VSockCID !== undefined && (v.VSockCID < 3 || v.VSockCID === VSOCK_CID_ANY)) throw new BusError(E.InvalidArgs, `Invalid VSockCID ${v.VSockCID}: not a regular VSOCK CID`);
  const pidfdId = v.LeaderPIDFDID === undefined ? undefined : Number(v.LeaderPIDFDID);
  let leader: number | undefined;
  if (v.LeaderPIDFD !== undefined) {
    leader = pidOfPidfd(v.LeaderPIDFD);
    if (leader === undefined) throw new BusError(E.InvalidArgs, `Failed to parse PIDFD ${v.LeaderPIDFD}: not a pidfd of a living process`);
    if (v.LeaderPID && v.LeaderPID !== leader) throw new BusError(E.InvalidArgs, 'LeaderPID and LeaderPIDFD refer to different processes');
  } else if (v.LeaderPID || pidfdId) {
    if (!v.LeaderPID || !pidfdId) throw new BusError(E.InvalidArgs, 'Both LeaderPID and LeaderPIDFDID must be specified to identify the leader process by PIDFDID');
    leader = v.LeaderPID;
  }
  return {
    id: v.Id ? idFromBytes(v.Id) : '',
    service: v.Service,
    class: v.Class,
    leader,
    leaderPidfdId: pidfdId || undefined,
    rootDirectory: v.RootDirectory,
    ifIndices: v.NetworkInterfaces,
    vSockCid: v.VSockCID,
    // Empty means none, as machined stores it.
    sshAddress: v.SSHAddress || undefined,
    sshPrivateKeyPath: v.SSHPrivateKeyPath || undefined,
  };
}

async function registerEx(reg: Registry, caller: Caller, allocateUnit: boolean, name: string, props: BusProperty[], scope: BusProperty[] = []) {
  try {
    return await register(reg, caller, allocateUnit, name, exRegistration(props), scope);
  } finally {
    for (const fd of passedFds(props)) closeFd(fd);
  }
}

/** machined's GetSSHInfo: both the address and the key path, or ENOENT (FileNotFound) as machined sends it. */
function sshInfo(m: Machine): string[] {
  if (!m.sshAddress || !m.sshPrivateKeyPath) throw new BusError(E.FileNotFound, `Machine '${m.name}' has no SSH address and private key path`);
  return [m.sshAddress, m.sshPrivateKeyPath];
}

/** Looks a machine up first, then checks the caller, as machined does for Terminate/Kill/Unregister. */
async function changeable(reg: Registry, caller: Caller, name: string): Promise<Machine> {
  const m = reg.mustGet(name);
  await caller.mayChange('machines');
  return m;
}

function managerInterface(reg: Registry, ops: MachineOperations, more: ManagerMembers): InterfaceDef<null> {
  const get = (name: string) => reg.mustGet(name);
  return {
    name: MANAGER,
    methods: {
      GetMachine: { in: 'name:s', out: 'machine:o', call: (_t, _c, name) => [machinePath(get(name).name)] },
      GetMachineByPID: {
        in: 'pid:u',
        out: 'machine:o',
        call: async (_t, c, pid: number) => [machinePath((await reg.byPid(pid === 0 ? (await c.creds()).pid : pid)).name)],
      },
      ListMachines: { in: '', out: 'machines:a(ssso)', call: () => [reg.list().map((m) => [m.name, m.class, m.service, machinePath(m.name)])] },
      CreateMachine: {
        in: 'name:s id:ay service:s class:s leader:u root_directory:s scope_properties:a(sv)',
        out: 'path:o',
        call: (_t, c, name, id, service, cls, leader, root, scope) => register(reg, c, true, name, classic(id, service, cls, leader, root), scope),
      },
      CreateMachineWithNetwork: {
        in: 'name:s id:ay service:s class:s leader:u root_directory:s ifindices:ai scope_properties:a(sv)',
        out: 'path:o',
        call: (_t, c, name, id, service, cls, leader, root, ifs, scope) => register(reg, c, true, name, classic(id, service, cls, leader, root, ifs), scope),
      },
      CreateMachineEx: {
        in: 'name:s properties:a(sv) scope_properties:a(sv)',
        out: 'path:o',
        call: (_t, c, name, props, scope) => registerEx(reg, c, true, name, props, scope),
      },
      RegisterMachine: {
        in: 'name:s id:ay service:s class:s leader:u root_directory:s',
        out: 'path:o',
        call: (_t, c, name, id, service, cls, leader, root) => register(reg, c, false, name, classic(id, service, cls, leader, root)),
      },
      RegisterMachineWithNetwork: {
        in: 'name:s id:ay service:s class:s leader:u root_directory:s ifindices:ai',
        out: 'path:o',
        call: (_t, c, name, id, service, cls, leader, root, ifs) => register(reg, c, false, name, classic(id, service, cls, leader, root, ifs)),
      },
      RegisterMachineEx: {
        in: 'name:s properties:a(sv)',
        out: 'path:o',
        call: (_t, c, name, props) => registerEx(reg, c, false, name, props),
      },
      UnregisterMachine: { in: 'name:s', out: '', call: async (_t, c, name) => void (await reg.unregister((await changeable(reg, c, name)).name)) },
      TerminateMachine: { in: 'id:s', out: '', call: async (_t, c, name) => void (await reg.terminate((await changeable(reg, c, name)).name)) },
      KillMachine: {
        in: 'name:s who:s signal:i',
        out: '',
        call: async (_t, c, name, who, sig) => void (await reg.kill((await changeable(reg, c, name)).name, who, sig)),
      },
      GetMachineAddresses: { in: 'name:s', out: 'addresses:a(iay)', call: (_t, _c, name) => addresses(reg, get(name)) },
      GetMachineSSHInfo: { in: 'name:s', out: 'ssh_address:s ssh_private_key_path:s', call: (_t, _c, name) => sshInfo(get(name)) },
      GetMachineOSRelease: { in: 'name:s', out: 'fields:a{ss}', call: (_t, _c, name) => osRelease(reg, get(name)) },
      ...operations(reg, ops, 'manager'),
      ...more.methods,
      GetMachineUIDShift: { in: 'name:s', out: 'shift:u', call: (_t, _c, name) => [uidShiftOf(get(name))] },
      MapFromMachineUser: { in: 'name:s uid_inner:u', out: 'uid_outer:u', call: (_t, _c, name, uid) => [mapFromMachine(reg, 'user', name, uid)] },
      MapToMachineUser: { in: 'uid_outer:u', out: 'machine_name:s machine_path:o uid_inner:u', call: (_t, _c, uid) => mapTo(reg, 'user', uid) },
      MapFromMachineGroup: { in: 'name:s gid_inner:u', out: 'gid_outer:u', call: (_t, _c, name, gid) => [mapFromMachine(reg, 'group', name, gid)] },
      MapToMachineGroup: { in: 'gid_outer:u', out: 'machine_name:s machine_path:o gid_inner:u', call: (_t, _c, gid) => mapTo(reg, 'group', gid) },
    },
    properties: { ...more.properties },
    signals: { MachineNew: 'machine:s path:o', MachineRemoved: 'machine:s path:o' },
  };
}

function machineInterface(reg: Registry, ops: MachineOperations): InterfaceDef<Machine> {
  return {
    name: MACHINE,
    methods: {
      Terminate: { in: '', out: '', call: async (m, c) => void (await reg.terminate((await changeable(reg, c, m.name)).name)) },
      Kill: { in: 'who:s signal:i', out: '', call: async (m, c, who, sig) => void (await reg.kill((await changeable(reg, c, m.name)).name, who, sig)) },
      GetAddresses: { in: '', out: 'addresses:a(iay)', call: (m) => addresses(reg, reg.mustGet(m.name)) },
      GetOSRelease: { in: '', out: 'fields:a{ss}', call: (m) => osRelease(reg, reg.mustGet(m.name)) },
      GetUIDShift: { in: '', out: 'shift:u', call: (m) => [uidShiftOf(m)] },
      GetSSHInfo: { in: '', out: 'ssh_address:s ssh_private_key_path:s', call: (m) => sshInfo(m) },
      ...operations(reg, ops, 'machine'),
    },
    properties: {
      Name: { type: 's', emits: 'const', get: (m) => m.name },
      // An unset ID is an empty array, as machined sends it.
      Id: { type: 'ay', emits: 'const', get: (m) => (m.id ? Buffer.from(m.id, 'hex') : Buffer.alloc(0)) },
      Timestamp: { type: 't', emits: 'const', get: (m) => BigInt(m.timestamp.realtime) },
      TimestampMonotonic: { type: 't', emits: 'const', get: (m) => BigInt(m.timestamp.monotonic) },
      Service: { type: 's', emits: 'const', get: (m) => m.service },
      Unit: { type: 's', emits: 'const', get: (m) => m.unit },
      Scope: { type: 's', emits: 'const', hidden: true, get: (m) => m.unit },
      Leader: { type: 'u', emits: 'const', get: (m) => m.leader },
      Class: { type: 's', emits: 'const', get: (m) => m.class },
      RootDirectory: { type: 's', emits: 'const', get: (m) => m.rootDirectory },
      NetworkInterfaces: { type: 'ai', emits: 'const', get: (m) => m.ifIndices },
      State: { type: 's', emits: 'false', get: (m) => m.state },
      // machined 256+
      VSockCID: { type: 'u', emits: 'const', get: (m) => m.vSockCid ?? VSOCK_CID_ANY },
      SSHAddress: { type: 's', emits: 'const', get: (m) => m.sshAddress ?? '' },
      SSHPrivateKeyPath: { type: 's', emits: 'const', get: (m) => m.sshPrivateKeyPath ?? '' },
      // machined 258+. No subgroups here: a machine is its whole unit (or scope).
      Subgroup: { type: 's', emits: 'const', get: () => '' },
      LeaderPIDFDId: { type: 't', emits: 'const', get: (m) => BigInt(m.leaderPidfdId) },
      Supervisor: { type: 'u', emits: 'const', get: (m) => m.supervisor?.pid ?? 0 },
      SupervisorPIDFDId: { type: 't', emits: 'const', get: (m) => BigInt(m.supervisor?.pidfdId ?? 0) },
      UID: { type: 'u', emits: 'const', get: (m) => m.uid },
    },
    signals: {},
  };
}

/** Members that other parts add to the Manager (the image pool's methods and properties). */
export interface ManagerMembers {
  methods: Record<string, MethodDef<null>>;
  properties: Record<string, PropertyDef<null>>;
}

/** Objects that other parts serve below machine1's paths (the images). */
export interface MoreObjects {
  find(path: string): Promise<BusObject | undefined>;
  paths(): readonly string[];
  mapError(e: unknown): BusError | undefined;
}

/** The objects of org.freedesktop.machine1, plus `extra` objects at fixed paths (LogControl1). */
export function machine1Tree(reg: Registry, extra: Record<string, BusObject>, ops: MachineOperations, more: ManagerMembers & MoreObjects): ObjectTree {
  const manager: BusObject = { target: null, interfaces: [managerInterface(reg, ops, more)] };
  const machine = machineInterface(reg, ops);
  return {
    async find(path, caller) {
      if (path === MANAGER_PATH) return manager;
      if (extra[path]) return extra[path];
      if (!path.startsWith(MACHINE_PREFIX)) return more.find(path);
      const label = path.slice(MACHINE_PREFIX.length);
      let m: Machine | undefined;
      // `self`: the caller's own machine (machined shadows a machine really named "self" the same way).
      if (label === 'self') m = await reg.byPid((await caller.creds()).pid).catch(() => undefined);
      else {
        const name = busLabelUnescape(label);
        m = name === undefined ? undefined : reg.get(name);
      }
      return m && { target: m, interfaces: [machine] };
    },
    paths: () => [MANAGER_PATH, ...Object.keys(extra), ...reg.list().map((m) => machinePath(m.name)), ...more.paths()],
    mapError: (e) => toBusError(e) ?? more.mapError(e),
  };
}

/** MachineNew and MachineRemoved, as the registry adds and removes machines. While the name is not ours
 *  (before the bus is first reached, during an outage) signals cannot go out; when it is acquired, the
 *  listeners are told what they missed: MachineNew for every machine not yet announced (so, at the first
 *  acquisition, every machine reloaded at start or registered meanwhile, as machined announces reloaded
 *  machines, reference §2.8), MachineRemoved for announced ones that are gone. */
export function announceMachines(reg: Registry, service: BusService): void {
  const announced = new Map<string, Machine>();
  const send = (member: string, m: Machine) => service.signal(MANAGER_PATH, MANAGER, member, 'machine:s path:o', [m.name, machinePath(m.name)]);
  reg.on('added', (m) => {
    if (!service.isConnected) return;
    announced.set(m.name, m);
    send('MachineNew', m);
  });
  // A machine that changes is a new object: the announced one is followed.
  reg.on('changed', (m, previous) => {
    if (announced.get(m.name) === previous) announced.set(m.name, m);
  });
  reg.on('removed', (m) => {
    if (!service.isConnected || announced.get(m.name) !== m) return;
    announced.delete(m.name);
    send('MachineRemoved', m);
  });
  service.on('acquired', () => {
    for (const [name, m] of announced) {
      if (reg.get(name) === m) continue;
      announced.delete(name);
      send('MachineRemoved', m);
    }
    for (const m of reg.list()) {
      if (m.class === 'host' || announced.get(m.name) === m) continue;
      announced.set(m.name, m);
      send('MachineNew', m);
    }
  });
}
