// The Varlink front end of the registry: interface io.systemd.Machine, modelled on systemd's (field names
// as systemd's where it has them). It only translates between Varlink and Registry calls.
import { RawJson, type CallContext, type Handler } from '../varlink/server.js';
import { t, type InterfaceDef } from '../varlink/schema.js';
import { VarlinkError, errorTable, expectedMore, invalidParameter, permissionDenied, systemError } from '../varlink/errors.js';
import { RegistryError, type RegistryErrorKind, SystemError } from './errors.js';
import { mapFromMachine, mapToMachine } from './id-mapping.js';
import { type Machine, machineAddresses, uidShift } from './machine.js';
import type { Registry } from './registry.js';

/** Each comes with a message for people. */
const withMessage = { message: t.optional(t.string) };
const IFACE = 'io.systemd.Machine';
const errors = errorTable(IFACE, {
  NoSuchMachine: withMessage,
  MachineExists: withMessage,
  NoPrivateNetworking: withMessage,
  NotSupported: withMessage,
  NoOSRelease: withMessage,
  NoSuchUserMapping: withMessage,
  NoSuchGroupMapping: withMessage,
  Failed: withMessage,
});

/** The Varlink error for each registry error kind (InvalidParameter is org.varlink.service's, System
 *  io.systemd.System). */
const ERROR_OF: Record<Exclude<RegistryErrorKind, 'InvalidParameter' | 'System'>, keyof typeof errors.defs> = {
  NoSuchMachine: 'NoSuchMachine',
  NoMachineForPID: 'NoSuchMachine',
  MachineExists: 'MachineExists',
  NoPrivateNetworking: 'NoPrivateNetworking',
  NotSupported: 'NotSupported',
  NoOSRelease: 'NoOSRelease',
  NoSuchUserMapping: 'NoSuchUserMapping',
  NoSuchGroupMapping: 'NoSuchGroupMapping',
  Failed: 'Failed',
};

const machineFields = {
  name: t.string,
  id: t.optional(t.string),
  service: t.optional(t.string),
  class: t.string,
  leader: t.int,
  rootDirectory: t.optional(t.string),
  unit: t.optional(t.string),
  timestamp: t.ref('Timestamp'),
  ifIndices: t.optional(t.array(t.int)),
  addresses: t.optional(t.array(t.ref('Address'))),
  uidShift: t.optional(t.int),
  state: t.string,
  vSockCid: t.optional(t.int),
  sshAddress: t.optional(t.string),
  osRelease: t.optional(t.map(t.string)),
  /** acquireMetadata asked, and the machine's root could not be read (it did not answer in time). */
  osReleaseError: t.optional(t.string),
};

export const machineInterface: InterfaceDef = {
  name: IFACE,
  doc: 'The machine registry of mymachinesd: register, list and watch containers and VMs.',
  types: {
    Timestamp: t.struct({ realtime: t.int, monotonic: t.int }),
    Address: t.struct({ family: t.int, address: t.array(t.int) }),
    Machine: t.struct(machineFields),
  },
  methods: {
    Register: {
      doc: 'Registers a machine (root only). leader defaults to the caller. allocateUnit: also move the\nleader into a scope cgroup machine.slice/machine-NAME.scope (machined\'s CreateMachine).\naddresses: IP addresses to answer with instead of reading them from the leader (VMs).',
      in: {
        name: t.string,
        id: t.optional(t.string),
        service: t.optional(t.string),
        class: t.string,
        leader: t.optional(t.int),
        rootDirectory: t.optional(t.string),
        ifIndices: t.optional(t.array(t.int)),
        vSockCid: t.optional(t.int),
        sshAddress: t.optional(t.string),
        addresses: t.optional(t.array(t.string)),
        allocateUnit: t.optional(t.bool),
      },
      out: {},
    },
    Unregister: { doc: 'Forgets a machine; its processes go on (root only).', in: { name: t.string }, out: {} },
    Terminate: { doc: 'SIGTERM to every process of the machine, SIGKILL after a timeout (root only).', in: { name: t.string }, out: {} },
    Kill: {
      doc: 'Sends a signal to the leader or to all processes of the machine (root only).',
      in: { name: t.string, whom: t.optional(t.string), signal: t.int },
      out: {},
    },
    List: {
      doc: 'One machine (name or pid given), or all of them (with more). acquireMetadata adds osRelease.',
      in: { name: t.optional(t.string), pid: t.optional(t.int), acquireMetadata: t.optional(t.bool) },
      out: machineFields,
    },
    Watch: {
      doc: 'With more: an event for each machine there now ("added"), then one for each machine added,\nremoved or changed, until the client hangs up.',
      in: {},
      out: { event: t.enum(['added', 'removed', 'changed']), machine: t.ref('Machine') },
    },
    MapFromMachineUser: {
      doc: 'The host UID of UID uid inside container name (its uid_map), as machined\'s MapFromMachineUser.\nErrors: NoSuchMachine; NoSuchUserMapping when no map line holds uid; InvalidParameter for a VM.',
      in: { name: t.string, uid: t.int },
      out: { uid: t.int },
    },
    MapToMachineUser: {
      doc: 'The container whose user namespace holds host UID uid, and the UID inside it, as machined\'s\nMapToMachineUser. Errors: NoSuchUserMapping for a UID below 65536 (the host\'s) or owned by no container.',
      in: { uid: t.int },
      out: { machineName: t.string, uid: t.int },
    },
    MapFromMachineGroup: {
      doc: 'The host GID of GID gid inside container name (its gid_map). Errors as MapFromMachineUser,\nwith NoSuchGroupMapping.',
      in: { name: t.string, gid: t.int },
      out: { gid: t.int },
    },
    MapToMachineGroup: {
      doc: 'The container whose user namespace holds host GID gid, and the GID inside it. Errors as\nMapToMachineUser, with NoSuchGroupMapping.',
      in: { gid: t.int },
      out: { machineName: t.string, gid: t.int },
    },
  },
  errors: errors.defs,
};

/** A registry error as the Varlink error that names it; the message goes along for people. */
export function toVarlinkError(e: unknown): unknown {
  if (!(e instanceof RegistryError)) return e;
  if (e.kind === 'InvalidParameter') return new VarlinkError('org.varlink.service.InvalidParameter', { parameter: e.field, message: e.message }, e.message);
  if (e instanceof SystemError) return systemError(e.errno, e.code, e.message);
  if (e.kind === 'System') return errors.make('Failed', { message: e.message }, e.message);
  return errors.make(ERROR_OF[e.kind], { message: e.message }, e.message);
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

export function machineJson(m: Machine, osRelease?: Map<string, string> | string): Record<string, unknown> {
  // Plain assignments rather than conditional spreads: List builds one of these per machine.
  const j: Record<string, unknown> = { name: m.name };
  if (m.id) j.id = m.id;
  if (m.service) j.service = m.service;
  j.class = m.class;
  j.leader = m.leader;
  if (m.rootDirectory) j.rootDirectory = m.rootDirectory;
  if (m.unit) j.unit = m.unit;
  j.timestamp = m.timestamp;
  if (m.ifIndices.length > 0) j.ifIndices = m.ifIndices;
  // As machined's GetMachineAddresses: no interface (an index inside the container means nothing here).
  const addresses = m.class === 'host' ? [] : machineAddresses(m);
  if (addresses.length > 0) j.addresses = addresses.map((a) => ({ family: a.family, address: a.bytes }));
  const shift = m.class === 'container' ? uidShift(m) : undefined;
  if (shift !== undefined) j.uidShift = shift;
  j.state = m.state;
  if (m.vSockCid !== undefined) j.vSockCid = m.vSockCid;
  if (m.sshAddress) j.sshAddress = m.sshAddress;
  if (typeof osRelease === 'string') j.osReleaseError = osRelease;
  else if (osRelease) j.osRelease = Object.fromEntries(osRelease);
  return j;
}

function requireRoot(ctx: CallContext): void {
  if (ctx.peer.uid !== 0) throw permissionDenied();
}

/** Wraps handlers so that registry errors leave as their Varlink names. */
function mapped(handlers: Record<string, Handler>): Record<string, Handler> {
  return Object.fromEntries(
    Object.entries(handlers).map(([k, h]) => [
      k,
      async (p: any, ctx: CallContext) => {
        try {
          return await h(p, ctx);
        } catch (e) {
          throw toVarlinkError(e);
        }
      },
    ]),
  );
}

export function machineHandlers(reg: Registry): Record<string, Handler> {
  // Each machine's JSON as List sends it, kept as long as the machine: with thousands of machines,
  // building and serializing them was most of a List's time. Machines are read-only (a machine that
  // changes is a new object), so a text never goes stale.
  const texts = new WeakMap<Machine, RawJson>();
  const listed = (m: Machine): RawJson => {
    let j = texts.get(m);
    if (!j) texts.set(m, (j = new RawJson(JSON.stringify(machineJson(m)))));
    return j;
  };
  // The metadata, or why it could not be read (a root that does not answer); undefined for a VM or a
  // machine without os-release.
  const metadata = async (m: Machine): Promise<Map<string, string> | string | undefined> => {
    if (m.class === 'vm') return undefined;
    return reg.osRelease(m.name).catch((e) => (e instanceof RegistryError && e.kind === 'Failed' ? e.message : undefined));
  };
  return mapped({
    async Register(p, ctx) {
      requireRoot(ctx);
      p.leader ??= ctx.peer.pid;
      await reg.register(p);
      return {};
    },
    async Unregister(p, ctx) {
      requireRoot(ctx);
      await reg.unregister(p.name);
      return {};
    },
    async Terminate(p, ctx) {
      requireRoot(ctx);
      await reg.terminate(p.name);
      return {};
    },
    async Kill(p, ctx) {
      requireRoot(ctx);
      await reg.kill(p.name, p.whom ?? 'all', p.signal);
      return {};
    },
    async List(p, ctx) {
      let only: Machine | undefined;
      if (p.name != null) only = reg.mustGet(p.name);
      if (p.pid != null) {
        if (!Number.isSafeInteger(p.pid) || p.pid <= 0) throw invalidParameter('pid');
        const byPid = await reg.byPid(p.pid);
        if (only && only !== byPid) throw new RegistryError('NoSuchMachine', `PID ${p.pid} does not belong to machine '${only.name}'`);
        only = byPid;
      }
      if (only) return machineJson(only, p.acquireMetadata ? await metadata(only) : undefined);
      if (!ctx.more) throw expectedMore();
      const all = reg.list();
      // Several at once: a root that stalls costs its own time limit, not one for each machine after it.
      const metas = p.acquireMetadata ? await mapConcurrently(all, METADATA_READS, metadata) : [];
      for (let i = 0; i < all.length - 1; i++) {
        ctx.notify(p.acquireMetadata ? machineJson(all[i], metas[i]) : listed(all[i]));
        // Thousands of replies: let a slow reader catch up rather than cut it off.
        if (i % 256 === 255) await ctx.drain();
      }
      const last = all[all.length - 1];
      return p.acquireMetadata ? machineJson(last, metas[all.length - 1]) : listed(last);
    },
    async Watch(_p, ctx) {
      if (!ctx.more) throw expectedMore();
      for (const m of reg.list()) ctx.notify({ event: 'added', machine: machineJson(m) });
      const on = (event: 'added' | 'removed' | 'changed') => (m: Machine) => ctx.notify({ event, machine: machineJson(m) });
      const listeners = { added: on('added'), removed: on('removed'), changed: on('changed') };
      for (const [e, f] of Object.entries(listeners)) reg.on(e as 'added', f);
      // Until the client hangs up (it may have before this call even started).
      const { signal } = ctx;
      if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      for (const [e, f] of Object.entries(listeners)) reg.off(e as 'added', f);
      return {};
    },
    MapFromMachineUser: (p) => ({ uid: mapFromMachine(reg, 'user', p.name, p.uid) }),
    MapFromMachineGroup: (p) => ({ gid: mapFromMachine(reg, 'group', p.name, p.gid) }),
    MapToMachineUser(p) {
      const { machine, id } = mapToMachine(reg, 'user', p.uid);
      return { machineName: machine.name, uid: id };
    },
    MapToMachineGroup(p) {
      const { machine, id } = mapToMachine(reg, 'group', p.gid);
      return { machineName: machine.name, gid: id };
    },
  });
}
