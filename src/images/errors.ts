// The image pool's errors. Each front end maps `kind` to its protocol's name, in one place (dbus-image1.ts,
// varlink-machine-image.ts).
import { errnoNumber, errnoOf } from '../errno.js';

export type ImageErrorKind =
  | 'NoSuchImage'
  | 'InvalidParameter'
  | 'NotSupported'
  | 'TooManyOperations'
  /** A system call failed, or machined's errno answer (EEXIST, EBUSY, EROFS, ENOSPC): `code` names it. */
  | 'System';

export class ImageError extends Error {
  constructor(
    readonly kind: ImageErrorKind,
    message: string,
    /** The errno name for 'System' (ENOSPC), the field for 'InvalidParameter'. */
    readonly code = '',
  ) {
    super(message);
  }

  /** The errno's number, for 'System'. */
  get errno(): number {
    return errnoNumber(this.code) ?? 5;
  }
}

export const noSuchImage = (name: string) => new ImageError('NoSuchImage', `No image '${name}' known`);
export const systemError = (code: string, message: string) => new ImageError('System', message, code);

/** A Node system error as an ImageError naming what failed ("...: disk quota exceeded (EDQUOT)");
 *  anything else as it is. */
export function fromNodeError(what: string, e: unknown): unknown {
  const en = errnoOf(e);
  return en ? systemError(en.name, `${what}: ${en.text} (${en.name})`) : e;
}
