// The few system calls the image pool needs that Node does not offer: the immutable flag (machined marks
// directory images read-only with it), renameat2 without replacing, the file system's type.
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const open = libc.func('int open(const char *path, int flags)');
const close = libc.func('int close(int fd)');
const ioctl = libc.func('int ioctl(int fd, unsigned long request, _Inout_ int *arg)');
const renameat2 = libc.func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)');
const statfs = libc.func('int statfs(const char *path, _Out_ void *buf)');

const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;
const AT_FDCWD = -100;
const RENAME_NOREPLACE = 1;
const FS_IOC_GETFLAGS = 0x80086601;
const FS_IOC_SETFLAGS = 0x40086602;
const FS_IMMUTABLE_FL = 0x10;
export const BTRFS_SUPER_MAGIC = 0x9123683e;

export const errno = () => koffi.errno();

function withFd<T>(path: string, f: (fd: number) => T): T | undefined {
  const fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return undefined;
  try {
    return f(fd);
  } finally {
    close(fd);
  }
}

/** Whether the inode at path has the immutable flag (false where the file system has no such flags). */
export function isImmutable(path: string): boolean {
  return withFd(path, (fd) => {
    const flags = new Int32Array(1);
    return ioctl(fd, FS_IOC_GETFLAGS, flags) === 0 && (flags[0] & FS_IMMUTABLE_FL) !== 0;
  }) ?? false;
}

/** Sets or clears the immutable flag; 0, or the errno. */
export function setImmutable(path: string, on: boolean): number {
  return withFd(path, (fd) => {
    const flags = new Int32Array(1);
    if (ioctl(fd, FS_IOC_GETFLAGS, flags) !== 0) return errno();
    const want = on ? flags[0] | FS_IMMUTABLE_FL : flags[0] & ~FS_IMMUTABLE_FL;
    if (want === flags[0]) return 0;
    flags[0] = want;
    return ioctl(fd, FS_IOC_SETFLAGS, flags) === 0 ? 0 : errno();
  }) ?? errno();
}

/** rename(2) that fails with EEXIST rather than replace; 0, or the errno. */
export function renameNoReplace(from: string, to: string): number {
  return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) === 0 ? 0 : errno();
}

/** The f_type of the file system at path, or undefined. */
export function fsType(path: string): number | undefined {
  const buf = Buffer.alloc(120);
  return statfs(path, buf) === 0 ? Number(buf.readBigInt64LE(0)) : undefined;
}
