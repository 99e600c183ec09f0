// The few libc calls that Node does not offer, through koffi. Loaded once per thread that imports it.
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

export const pidfd_open = libc.func('int pidfd_open(int pid, unsigned int flags)');
export const pidfd_send_signal = libc.func('int pidfd_send_signal(int pidfd, int sig, void *info, unsigned int flags)');
export const poll = libc.func('int poll(_Inout_ void *fds, unsigned long nfds, int timeout)');
export const close = libc.func('int close(int fd)');
export const open = libc.func('int open(const char *path, int flags)');
export const setns = libc.func('int setns(int fd, int nstype)');
export const socket = libc.func('int socket(int domain, int type, int protocol)');
export const bind = libc.func('int bind(int fd, const void *addr, uint32_t len)');
export const send = libc.func('long send(int fd, const void *buf, unsigned long len, int flags)');
export const recv = libc.func('long recv(int fd, _Out_ void *buf, unsigned long len, int flags)');
export const epoll_create1 = libc.func('int epoll_create1(int flags)');
export const epoll_ctl = libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)');
export const epoll_wait = libc.func('int epoll_wait(int epfd, _Out_ void *events, int maxevents, int timeout)');
export const eventfd = libc.func('int eventfd(unsigned int initval, int flags)');
export const read = libc.func('long read(int fd, _Out_ void *buf, unsigned long count)');
export const write = libc.func('long write(int fd, const void *buf, unsigned long count)');
export const setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)');
export const fstatfs = libc.func('int fstatfs(int fd, _Out_ void *buf)');
const getrlimit = libc.func('int getrlimit(int resource, _Out_ void *rlim)');
const setrlimit = libc.func('int setrlimit(int resource, const void *rlim)');
/** openat2(2) has no glibc wrapper on Debian 12: call it by number (x86_64 and aarch64 share 437). */
export const syscall4 = libc.func('long syscall(long nr, int dirfd, const char *path, const void *how, unsigned long size)');
export const SYS_openat2 = 437;

export function errno(): number {
  return koffi.errno();
}

export const O_RDONLY = 0;
export const O_CLOEXEC = 0o2000000;
export const O_DIRECTORY = 0o200000;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLLIN = 1;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const CLONE_NEWNET = 0x40000000;
export const POLLIN = 1;
export const ESRCH = 3;
export const EINVAL = 22;
export const EAGAIN = 11;
export const EINTR = 4;
export const ENOSYS = 38;
const RLIMIT_NOFILE = 7;
/** statfs f_type of pidfs, where each process has an inode of its own (Linux 6.9+). */
export const PIDFS_MAGIC = 0x50494446;

/** Raise the soft limit of open files to the hard limit: every machine holds a pidfd and, for a
 *  container, a netlink socket. */
export function raiseFileLimit(): number {
  const buf = Buffer.alloc(16);
  if (getrlimit(RLIMIT_NOFILE, buf) !== 0) return -1;
  const hard = buf.readBigUInt64LE(8);
  buf.writeBigUInt64LE(hard, 0);
  setrlimit(RLIMIT_NOFILE, buf);
  return Number(hard);
}

export const flock = libc.func('int flock(int fd, int operation)');
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const EWOULDBLOCK = 11;

export const socketpair = libc.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)');
export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
