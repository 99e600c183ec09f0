// The registry's errors. Each front end maps `kind` to its protocol's error name, in one place.
import { errnoOf } from '../errno.js';

export type RegistryErrorKind =
  | 'NoSuchMachine'
  | 'MachineExists'
  | 'InvalidParameter'
  | 'NoMachineForPID'
  | 'NoPrivateNetworking'
  | 'NotSupported'
  | 'NoSuchUserMapping'
  | 'NoSuchGroupMapping'
  | 'NoOSRelease'
  | 'Failed'
  /** A system call failed for the registry (a state file could not be written): SystemError. */
  | 'System';

export class RegistryError extends Error {
  constructor(
    readonly kind: RegistryErrorKind,
    message: string,
    /** For InvalidParameter: the field at fault. */
    readonly field?: string,
  ) {
    super(message);
  }
}

export const invalid = (field: string, message: string) => new RegistryError('InvalidParameter', message, field);
export const noSuchMachine = (name: string) => new RegistryError('NoSuchMachine', `No machine '${name}' known`);
export const failed = (message: string) => new RegistryError('Failed', message);

/** An error answered by systemd (or machined's JobFailed for a failed start job): D-Bus callers get its
 *  name and message unchanged, as machined passes them on; other front ends see a registry 'Failed'. */
export class SystemdError extends RegistryError {
  constructor(
    readonly busName: string,
    message: string,
  ) {
    super('Failed', message);
  }
}

/** A system call that failed for the registry, with the errno's name (ENOSPC) and number: machined
 *  answers such failures with the errno, and so do we (D-Bus System.Error.ENOSPC, Varlink
 *  io.systemd.System). The message says what failed and where. */
export class SystemError extends RegistryError {
  constructor(
    readonly code: string,
    readonly errno: number,
    message: string,
  ) {
    super('System', message);
  }
}

/** A Node.js system error (one with an errno code) as a SystemError whose message starts with `what`
 *  ("Cannot write state file /run/systemd/machines/web1: no space left on device (ENOSPC)"); any other
 *  exception as it is. */
export function systemError(what: string, e: unknown): unknown {
  const en = errnoOf(e);
  return en ? new SystemError(en.name, en.errno, `${what}: ${en.text} (${en.name})`) : e;
}
