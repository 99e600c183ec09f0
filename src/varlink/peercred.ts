// The credentials of the process at the other end of a Unix socket, from the kernel (SO_PEERCRED):
// they cannot be forged by the client, which is what the registry's permission checks rely on.

import type { Socket } from 'node:net';
import koffi from 'koffi';

const SOL_SOCKET = 1;
const SO_PEERCRED = 17; // Linux on x86, arm, arm64 and riscv

// Anonymous struct: koffi's type names are global, and other parts may declare their own `ucred`.
const Ucred = koffi.struct({ pid: 'int32_t', uid: 'uint32_t', gid: 'uint32_t' });
const libc = koffi.load('libc.so.6');
const getsockopt = libc.func('getsockopt', 'int', [
  'int', 'int', 'int', koffi.out(koffi.pointer(Ucred)), koffi.inout(koffi.pointer('uint32_t')),
]);

export interface PeerCredentials { pid: number; uid: number; gid: number }

export function peerCredentials(socket: Socket): PeerCredentials {
  // net.Socket does not expose its descriptor; the libuv handle does.
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('peerCredentials: socket has no file descriptor');
  const cred = { pid: 0, uid: 0, gid: 0 };
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, [koffi.sizeof(Ucred)]) !== 0) {
    const errno = koffi.errno();
    throw Object.assign(new Error(`getsockopt(SO_PEERCRED) failed: errno ${errno}`), { errno });
  }
  return cred;
}
