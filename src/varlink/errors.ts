// Varlink errors: a VarlinkError crosses the wire as {"error": name, "parameters": {...}}.
import type { VType } from './schema.js';

export class VarlinkError extends Error {
  readonly parameters: Record<string, unknown>;

  /** `name` is the full error name, e.g. io.systemd.Machine.NoSuchMachine. */
  constructor(name: string, parameters: object = {}, message?: string) {
    const params = parameters as Record<string, unknown>;
    // No stack trace: these are answers (a lookup that misses is one), never sent with a trace, and
    // capturing one costs more than the rest of the call.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message ?? (Object.keys(params).length ? `${name} ${JSON.stringify(params)}` : name));
    Error.stackTraceLimit = limit;
    this.name = name;
    this.parameters = params;
  }
}

const SERVICE = 'org.varlink.service';

export const methodNotFound = (method: string) => new VarlinkError(`${SERVICE}.MethodNotFound`, { method });
export const interfaceNotFound = (iface: string) => new VarlinkError(`${SERVICE}.InterfaceNotFound`, { interface: iface });
/** `message`, for people, goes along as a parameter of ours beside the specification's `parameter`. */
export const invalidParameter = (parameter: string, message?: string) =>
  new VarlinkError(`${SERVICE}.InvalidParameter`, message === undefined ? { parameter } : { parameter, message }, message);
const permissionDenied = () => new VarlinkError(`${SERVICE}.PermissionDenied`);
/** PermissionDenied unless the peer (SO_PEERCRED's UID) is root or `owner` (a per-user registry's user;
 *  as D-Bus's Caller.mayChange). */
export function requireRootOr(peerUid: number, owner: number | undefined): void {
  if (peerUid !== 0 && peerUid !== owner) throw permissionDenied();
}
export const expectedMore = () => new VarlinkError(`${SERVICE}.ExpectedMore`);
export const methodNotImplemented = (method: string) => new VarlinkError(`${SERVICE}.MethodNotImplemented`, { method });

/** Ours, for what the server itself refuses: a request that breaks the protocol (not JSON, not a
 *  request, too long, never finished), answered just before the connection is closed; and a handler
 *  that failed unexpectedly (logged; the client learns nothing more). */
const PROTOCOL_ERROR = 'io.mymachines.ProtocolError';
export const INTERNAL_ERROR = 'io.mymachines.InternalError';
export const protocolError = (message: string) => new VarlinkError(PROTOCOL_ERROR, { message }, message);
/** Ours, for a failure that has no errno to name it (systemd refused to make a scope): the message says
 *  what failed. */
export const FAILED_ERROR = 'io.mymachines.Failed';

/** systemd's error for a failed system call (sd-varlink's io.systemd.System): the errno's number and
 *  name; `message` says what failed, for people. */
export const systemError = (errno: number, errnoName: string, message: string) =>
  new VarlinkError('io.systemd.System', { origin: 'linux', errno, errnoName, message }, message);

/** The parameters of each error of one interface, by its short name (IDL `error NAME (...)`). */
export type ErrorDefs = Record<string, Record<string, VType>>;

/** The errors of one interface, typed: the table an InterfaceDef's `errors` is, and the one place their
 *  full names (`INTERFACE.NAME`) are made. */
export interface ErrorTable<D extends ErrorDefs> {
  readonly defs: D;
  /** The full name of an error of the table. */
  name(error: keyof D & string): string;
  make(error: keyof D & string, parameters?: object, message?: string): VarlinkError;
}

export function errorTable<const D extends ErrorDefs>(iface: string, defs: D): ErrorTable<D> {
  return {
    defs,
    name: (error) => `${iface}.${error}`,
    make: (error, parameters = {}, message) => new VarlinkError(`${iface}.${error}`, parameters, message),
  };
}
