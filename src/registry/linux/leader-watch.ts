// Which leaders have exited. Each machine's leader is held by a pidfd, which becomes readable when that
// process exits (zombies included) and names that process only, so a reused PID is never taken for
// the leader. The pidfds sit in one epoll set: asking which leaders exited costs one epoll_wait,
// however many machines there are.
import * as c from './libc.js';

/** struct epoll_event is packed on x86_64 (12 bytes), naturally aligned elsewhere (16 bytes). */
const EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
const DATA_OFFSET = process.arch === 'x64' ? 4 : 8;

export class LeaderWatch<T> {
  private readonly epfd: number;
  private readonly owners = new Map<number, T>();
  private events = Buffer.alloc(0);
  private readonly one = Buffer.alloc(EVENT_SIZE);

  constructor() {
    this.epfd = c.epoll_create1(c.EPOLL_CLOEXEC);
    if (this.epfd < 0) throw new Error(`epoll_create1: errno ${c.errno()}`);
  }

  /** Watches the pidfd `fd` for `owner`; the fd stays the caller's to close (after delete()). */
  add(fd: number, owner: T): void {
    const ev = this.one;
    ev.writeUInt32LE(c.EPOLLIN, 0);
    ev.writeInt32LE(fd, DATA_OFFSET);
    if (c.epoll_ctl(this.epfd, c.EPOLL_CTL_ADD, fd, ev) !== 0) throw new Error(`epoll_ctl: errno ${c.errno()}`);
    this.owners.set(fd, owner);
  }

  delete(fd: number): void {
    if (!this.owners.delete(fd)) return;
    c.epoll_ctl(this.epfd, c.EPOLL_CTL_DEL, fd, null);
  }

  /** The owners whose leader has exited, without waiting. They stay watched until delete(). */
  exited(): T[] {
    // Room for every watched pidfd, so that one call sees them all (level-triggered events would
    // come back again and again in a smaller batch).
    const max = Math.max(1, this.owners.size);
    if (this.events.length < max * EVENT_SIZE) this.events = Buffer.alloc(2 * max * EVENT_SIZE);
    const n = c.epoll_wait(this.epfd, this.events, this.events.length / EVENT_SIZE, 0);
    const out: T[] = [];
    for (let i = 0; i < n; i++) {
      const owner = this.owners.get(this.events.readInt32LE(i * EVENT_SIZE + DATA_OFFSET));
      if (owner !== undefined) out.push(owner);
    }
    return out;
  }

  close(): void {
    this.owners.clear();
    c.close(this.epfd);
  }
}
