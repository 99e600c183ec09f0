// File descriptors with a Varlink message (SCM_RIGHTS), as sd-varlink passes them: net.Socket cannot, so
// the first byte of the message goes out through sendmsg(2) on the socket's descriptor, with them.
import { closeSync } from 'node:fs';
import type { Socket } from 'node:net';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
koffi.struct('varlink_iovec', { base: 'void *', len: 'size_t' });
koffi.struct('varlink_msghdr', { name: 'void *', namelen: 'uint32', iov: 'varlink_iovec *', iovlen: 'size_t', control: 'void *', controllen: 'size_t', flags: 'int' });
const sendmsg = libc.func('long sendmsg(int fd, const varlink_msghdr *msg, int flags)');

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const EAGAIN = 11;
/** At most this many descriptors with one message, as sd-varlink's limit. */
const MAX_FDS = 253;

/** Sends `data` (a byte or a few) with `fds` on the socket; the number of bytes sent, 'again' when the
 *  socket's buffer is full, or -errno. The descriptors stay the caller's. */
export function sendWithFds(socket: Socket, data: Buffer, fds: number[]): number | 'again' {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return -9;
  if (fds.length > MAX_FDS) return -7;
  // struct cmsghdr { size_t len; int level; int type; } then the ints, padded to 8 bytes.
  const len = 16 + 4 * fds.length;
  const control = Buffer.alloc((len + 7) & ~7);
  control.writeBigUInt64LE(BigInt(len), 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  fds.forEach((f, i) => control.writeInt32LE(f, 16 + 4 * i));
  const n = Number(sendmsg(fd, { name: null, namelen: 0, iov: [{ base: data, len: data.length }], iovlen: 1, control, controllen: control.length, flags: 0 }, MSG_DONTWAIT | MSG_NOSIGNAL));
  if (n >= 0) return n;
  const e = koffi.errno();
  return e === EAGAIN ? 'again' : -e;
}

export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      /* gone already */
    }
  }
}
