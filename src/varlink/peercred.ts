// The credentials of the process at the other end of a Unix socket, from the kernel (SO_PEERCRED):
// they cannot be forged by the client, which is what the registry's permission checks rely on.

import type { Socket } from 'node:net';
import koffi from 'koffi';

const SOL_SOCKET = 1;
const SO_PEERCRED = 17; // Linux on x86, arm, arm64 and riscv

// Plain buffers rather than a koffi struct: converting one to an object costs more than the system call,
// and this runs for every connection (nss-systemd makes one per lookup).
const libc = koffi.load('libc.so.6');
const getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ void *len)');
const UCRED_SIZE = 12; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
const value = Buffer.alloc(UCRED_SIZE);
const len = Buffer.alloc(4);

export interface PeerCredentials { pid: number; uid: number; gid: number }

export function peerCredentials(socket: Socket): PeerCredentials {
  // net.Socket does not expose its descriptor; the libuv handle does.
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('peerCredentials: socket has no file descriptor');
  len.writeUInt32LE(UCRED_SIZE, 0);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, value, len) !== 0 || len.readUInt32LE(0) !== UCRED_SIZE) {
    const errno = koffi.errno();
    throw Object.assign(new Error(`getsockopt(SO_PEERCRED) failed: errno ${errno}`), { errno });
  }
  return { pid: value.readInt32LE(0), uid: value.readUInt32LE(4), gid: value.readUInt32LE(8) };
}
