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
