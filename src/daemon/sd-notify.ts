// The service manager's notification protocol (sd_notify(3)): datagrams such as "READY=1" to the
// AF_UNIX socket named by $NOTIFY_SOCKET, and "WATCHDOG=1" every half $WATCHDOG_USEC. Node's dgram
// has no AF_UNIX, so the datagram goes through libc (koffi, as the other libc calls); the npm packages
// for this compile an addon against libsystemd for what is a socket, a sendto and a close.
import koffi from 'koffi';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const SUN_PATH_MAX = 108;

const libc = koffi.load('libc.so.6');
const socket = libc.func('int socket(int domain, int type, int protocol)');
const sendto = libc.func('long sendto(int fd, const void *buf, unsigned long len, int flags, const void *addr, uint32_t addrlen)');
const close = libc.func('int close(int fd)');

export interface Notifier {
  /** Sends one notification, e.g. "READY=1\nSTATUS=...". A failure is returned, never thrown: the
   *  daemon runs on whether or not a service manager listens. */
  notify(state: string): Error | undefined;
  /** Sends WATCHDOG=1 every half of the service manager's watchdog interval, if it set one for us. */
  startWatchdog(): void;
  close(): void;
}

/** struct sockaddr_un for a path, or for an abstract name written '@name' (as systemd writes them). */
function socketAddress(path: string): Buffer {
  const name = Buffer.from(path.startsWith('@') ? '\0' + path.slice(1) : path);
  if (name.length >= SUN_PATH_MAX) throw new Error(`NOTIFY_SOCKET is longer than ${SUN_PATH_MAX - 1} bytes`);
  const addr = Buffer.alloc(2 + name.length + (path.startsWith('@') ? 0 : 1));
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  return addr;
}

/** The notifier the environment asks for (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID), or undefined
 *  when no service manager waits for us. Takes the variables out of `env`: they are meant for this
 *  process, not for what it may start. */
export function serviceManager(env: NodeJS.ProcessEnv = process.env): Notifier | undefined {
  const path = env.NOTIFY_SOCKET;
  const usec = Number(env.WATCHDOG_USEC);
  const watchdogPid = env.WATCHDOG_PID;
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  delete env.WATCHDOG_PID;
  if (!path || (!path.startsWith('/') && !path.startsWith('@'))) return undefined;
  const addr = socketAddress(path);
  let fd = -1;
  let timer: NodeJS.Timeout | undefined;
  const notify = (state: string): Error | undefined => {
    if (fd < 0) fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return new Error(`socket(AF_UNIX) failed: errno ${koffi.errno()}`);
    const buf = Buffer.from(state);
    if (sendto(fd, buf, buf.length, MSG_DONTWAIT | MSG_NOSIGNAL, addr, addr.length) !== buf.length) return new Error(`sendto(${path}) failed: errno ${koffi.errno()}`);
    return undefined;
  };
  return {
    notify,
    startWatchdog() {
      // A watchdog set for another process (a wrapper's) is not ours to feed.
      if (!(usec > 0) || (watchdogPid !== undefined && Number(watchdogPid) !== process.pid) || timer) return;
      // Fed from the event loop: a daemon whose loop is stuck stops feeding it, and is restarted.
      timer = setInterval(() => notify('WATCHDOG=1'), Math.max(1, Math.floor(usec / 2000)));
      timer.unref();
    },
    close() {
      clearInterval(timer);
      if (fd >= 0) close(fd);
      fd = -1;
    },
  };
}
