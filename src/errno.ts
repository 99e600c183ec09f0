// What a failed system call's Node.js error says, in the words every part gives it: the errno's name
// (ENOSPC) and text ("no space left on device"). Node.js names only the errnos libuv knows; any other
// comes as code 'UNKNOWN' or 'Unknown system error -122', which must not reach an administrator or a
// D-Bus error name so: EDQUOT of a full quota is one, ESTALE of NFS another. A leaf module, imported by
// any part: it imports nothing but Node.js.
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

/** Linux errnos of failing storage that os.constants.errno leaves out. */
const MORE_NAMES: [string, number][] = [['EUCLEAN', 117], ['EREMOTEIO', 121], ['ENOMEDIUM', 123], ['EMEDIUMTYPE', 124]];
const NAMES = new Map([...Object.entries(constants.errno), ...MORE_NAMES].map(([name, n]) => [n, name]));

const NUMBERS = new Map([...NAMES].map(([n, name]) => [name, n]));
/** libuv's names and words by -errno: Node.js builds a new map at every getSystemErrorMap(). */
let uvErrors: Map<number, [string, string]> | undefined;

/** The number of an errno name (EDQUOT: 122), or undefined. */
export const errnoNumber = (name: string): number | undefined => NUMBERS.get(name);

/** glibc's words (lower case, as libuv's) for the errnos libuv has none for. */
const MORE_TEXTS: Record<string, string> = {
  EDQUOT: 'disk quota exceeded',
  ESTALE: 'stale file handle',
  EBADMSG: 'bad message',
  ENOLCK: 'no locks available',
  EDEADLK: 'resource deadlock avoided',
  ECHILD: 'no child processes',
  ENOEXEC: 'exec format error',
  EINPROGRESS: 'operation now in progress',
  ETIME: 'timer expired',
  EUCLEAN: 'structure needs cleaning',
  EREMOTEIO: 'remote I/O error',
  ENOMEDIUM: 'no medium found',
  EMEDIUMTYPE: 'wrong medium type',
};

export interface Errno {
  /** ENOSPC; `errno N` for a number Linux has no name for here. */
  name: string;
  errno: number;
  /** no space left on device */
  text: string;
}

/** The errno of a Node.js system error (one that carries the errno's number), or undefined. */
export function errnoOf(e: unknown): Errno | undefined {
  const n = (e as NodeJS.ErrnoException | undefined)?.errno;
  // libuv's own codes (getaddrinfo's, from -3000 down) are no errnos.
  if (typeof n !== 'number' || !Number.isInteger(n) || n === 0 || Math.abs(n) > 4095) return undefined;
  const errno = Math.abs(n);
  // libuv's name first, as Node's codes give it (ENOTSUP, not its alias EOPNOTSUPP).
  const uv = (uvErrors ??= getSystemErrorMap()).get(-errno);
  const name = uv?.[0] ?? NAMES.get(errno) ?? `errno ${errno}`;
  return { name, errno, text: uv?.[1] ?? MORE_TEXTS[name] ?? `errno ${errno}` };
}

/** The name of errno `n` (ENOSPC), or `errno N`. */
export const errnoName = (n: number): string => errnoOf({ errno: n })?.name ?? `errno ${n}`;

/** "no space left on device (ENOSPC)" for a system error, its message for any other. */
export function errnoText(e: unknown): string {
  const en = errnoOf(e);
  return en ? `${en.text} (${en.name})` : e instanceof Error ? e.message : String(e);
}
