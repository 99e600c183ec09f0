// The registry's errors. Each front end maps `kind` to its protocol's error name, in one place.

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
  | 'Failed';

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
