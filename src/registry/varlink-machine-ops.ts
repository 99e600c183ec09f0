// io.systemd.Machine's Open, BindMount, CopyFrom, CopyTo and OpenRootDirectory with machined 262's
// parameters, replies and errors, on MachineOperations: a table of method definitions and handlers for the
// io.systemd.Machine interface (varlink-machine.ts) to take in. It only translates between Varlink and
// MachineOperations calls; descriptors go with the reply (ctx.pushFd), named by index.
import { VarlinkError, errorTable, invalidParameter, permissionDenied, systemError } from '../varlink/errors.js';
import { t, type InterfaceDef, type MethodDef, type VType } from '../varlink/schema.js';
import type { CallContext, Handler } from '../varlink/server.js';
import { RegistryError, SystemError } from './errors.js';
import type { Machine } from './machine.js';
import { type MachineOperations, OperationError } from './machine-ops.js';
import type { Registry } from './registry.js';

const IFACE = 'io.systemd.Machine';

/** machined 262's errors that these methods raise (no parameters there; a message for people here). */
const withMessage = { message: t.optional(t.string) };
export const machineOpsErrors = errorTable(IFACE, {
  NoSuchMachine: withMessage,
  NotSupported: withMessage,
  NoSuchUser: withMessage,
  NoIPC: withMessage,
});

/** The types these methods use, as machined 262 names them. */
export const machineOpsTypes: Record<string, VType> = {
  ProcessId: t.struct({ pid: t.int, pidfdId: t.optional(t.int), bootId: t.optional(t.string) }),
  MachineOpenMode: t.enum(['tty', 'login', 'shell']),
};

const select = { name: t.optional(t.string), pid: t.optional(t.ref('ProcessId')), allowInteractiveAuthentication: t.optional(t.bool) };

export const machineOpsMethods: Record<string, MethodDef> = {
  Open: {
    doc: 'Allocates a pseudo TTY in the container in various modes',
    in: {
      ...select,
      mode: t.ref('MachineOpenMode'),
      user: t.optional(t.string),
      path: t.optional(t.string),
      args: t.optional(t.array(t.string)),
      environment: t.optional(t.array(t.string)),
    },
    out: { ptyFileDescriptor: t.int, ptyPath: t.string },
  },
  BindMount: {
    doc: 'Bind mounts a file or directory from the host into the container',
    in: { ...select, source: t.string, destination: t.optional(t.string), readOnly: t.optional(t.bool), mkdir: t.optional(t.bool) },
    out: {},
  },
  CopyFrom: {
    doc: 'Copy files or directories from a container into the host',
    in: { ...select, source: t.string, destination: t.optional(t.string), replace: t.optional(t.bool) },
    out: {},
  },
  CopyTo: {
    doc: 'Copy files or directories from the host into a container',
    in: { ...select, source: t.string, destination: t.optional(t.string), replace: t.optional(t.bool) },
    out: {},
  },
  OpenRootDirectory: {
    doc: "Opens machine's root directory",
    in: { ...select },
    out: { fileDescriptor: t.int },
  },
};

/** These methods alone as an interface: what the tests serve until io.systemd.Machine takes them in. */
export const machineOpsInterface: InterfaceDef = {
  name: IFACE,
  types: machineOpsTypes,
  methods: machineOpsMethods,
  errors: machineOpsErrors.defs,
};

/** Our errors as machined 262's Varlink errors. */
function toVarlinkError(e: unknown): unknown {
  if (e instanceof VarlinkError) return e;
  if (e instanceof OperationError) return machineOpsErrors.make(e.operation, { message: e.message }, e.message);
  if (!(e instanceof RegistryError)) return e;
  if (e.kind === 'InvalidParameter') return new VarlinkError('org.varlink.service.InvalidParameter', { parameter: e.field, message: e.message }, e.message);
  if (e instanceof SystemError) return systemError(e.errno, e.code, e.message);
  if (e.kind === 'NoSuchMachine' || e.kind === 'NoMachineForPID') return machineOpsErrors.make('NoSuchMachine', { message: e.message }, e.message);
  if (e.kind === 'NotSupported') return machineOpsErrors.make('NotSupported', { message: e.message }, e.message);
  return e;
}

interface Selector {
  name?: string;
  pid?: { pid: number; pidfdId?: number };
}

/** The machine by name, or by a process in it (pid 0: the caller's), as machined 262 selects it. */
async function machineOf(reg: Registry, p: Selector, ctx: CallContext): Promise<Machine> {
  if (p.name !== undefined) return reg.mustGet(p.name);
  if (p.pid !== undefined) return reg.byPid(p.pid.pid === 0 ? ctx.peer.pid : p.pid.pid);
  throw invalidParameter('name');
}

/** Looked up first, then the caller checked, as machined (its polkit refuses callers who are not root). */
async function changeable(reg: Registry, p: Selector, ctx: CallContext): Promise<Machine> {
  const m = await machineOf(reg, p, ctx);
  if (ctx.peer.uid !== 0) throw permissionDenied();
  return m;
}

export function machineOpsHandlers(reg: Registry, ops: MachineOperations): Record<string, Handler> {
  const handlers: Record<string, Handler> = {
    async Open(p: Selector & { mode: 'tty' | 'login' | 'shell'; user?: string; path?: string; args?: string[]; environment?: string[] }, ctx) {
      const m = await changeable(reg, p, ctx);
      // "Valid only when mode='shell'."
      if (p.mode !== 'shell') for (const k of ['user', 'path', 'args', 'environment'] as const) if (p[k] !== undefined) throw invalidParameter(k);
      const pty = await ops.openPty(m.name, p.mode, { user: p.user, path: p.path, args: p.args, environment: p.environment });
      return { ptyFileDescriptor: ctx.pushFd(pty.fd), ptyPath: pty.path };
    },
    async BindMount(p: Selector & { source: string; destination?: string; readOnly?: boolean; mkdir?: boolean }, ctx) {
      const m = await changeable(reg, p, ctx);
      await ops.bindMount(m.name, p);
      return {};
    },
    async CopyFrom(p: Selector & { source: string; destination?: string; replace?: boolean }, ctx) {
      const m = await changeable(reg, p, ctx);
      await ops.copy(m.name, 'from', p);
      return {};
    },
    async CopyTo(p: Selector & { source: string; destination?: string; replace?: boolean }, ctx) {
      const m = await changeable(reg, p, ctx);
      await ops.copy(m.name, 'to', p);
      return {};
    },
    async OpenRootDirectory(p: Selector, ctx) {
      const m = await changeable(reg, p, ctx);
      return { fileDescriptor: ctx.pushFd(ops.openRootDirectory(m.name)) };
    },
  };
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
