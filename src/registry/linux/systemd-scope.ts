// Scopes for Create where systemd is PID 1: asked of PID 1 with StartTransientUnit, as machined does
// (reference §2.6), since systemd owns the cgroup tree there and would undo cgroups made behind its back.
//
// How a Create goes:
// - StartTransientUnit("machine-<name>.scope", "fail") with machined's properties (Slice, Description,
//   PIDs, Delegate, CollectMode, AddRef, TasksMax), then the caller's scope_properties, as machined appends
//   them. systemd's own errors keep their names and messages (SystemdError).
// - Then the start job's JobRemoved: "done" is success, any other result is org.freedesktop.systemd1.JobFailed.
//   JobRemoved can come in the same read as the StartTransientUnit reply, so before the job's path is known
//   here: every JobRemoved for the unit is kept by job path from before the call, and looked up after it.
// - One deadline covers the whole Create (connecting included: dbus-next never times a call out). On a
//   failure after systemd answered, the job is cancelled and the leader put back where it was.
// - AddRef pins the unit while our connection lives; UnrefUnit when the machine goes (as machined).
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import dbus from 'dbus-next';
import { cgroupPlaceOf, killSubtree, moveBack, subtreeProcesses } from './cgroup.js';
import { RegistryError, SystemdError, failed } from '../errors.js';
import { scopeUnitName } from '../names.js';
import { readCgroupPath } from './proc.js';
import type { ScopeAllocator, ScopeRequest } from '../scope.js';

const { Message, Variant } = dbus;
const SIGNAL = dbus.MessageType.SIGNAL;
const SYSTEMD = 'org.freedesktop.systemd1';
const SYSTEMD_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const JOB_TIMEOUT_MS = 30_000;

/** The leader's cgroup2 path when it is in the unit's scope (wherever that scope is); else undefined. */
function scopeOfLeader(leader: number, unit: string): string | undefined {
  const now = readCgroupPath(leader);
  return now?.endsWith(`/${unit}`) ? now : undefined;
}

interface Connection {
  bus: dbus.MessageBus;
  /** Rejects when the connection breaks; raced with every call, which dbus-next would leave pending. */
  lost: Promise<never>;
}

/** One Create waiting for its start job: JobRemoved results of its unit, by job path. */
interface Waiter {
  job?: string;
  results: Map<string, string>;
  done?: (result: string) => void;
}

/** Opens a connection to the bus where systemd is, as the daemon's D-Bus library does (openBus): onLost
 *  is called once, with the connection closed, when it breaks, when the bus refuses it, or when answered()
 *  is not called within timeoutMs. The daemon passes it in, so that the registry imports no protocol
 *  library (DESIGN.md). */
export type OpenSystemdBus = (
  onLost: (why: string) => void,
  opts: { timeoutMs: number; timeoutWhy: string },
) => { bus: dbus.MessageBus; answered(): void; close(): void };

export class SystemdScopes implements ScopeAllocator {
  private conn: Promise<Connection> | undefined;
  /** By unit name: the registry lets one Create per machine name run at a time. */
  private readonly waiters = new Map<string, Waiter>();
  /** Units that our AddRef pins. */
  private readonly referenced = new Set<string>();

  constructor(
    private readonly cgroupMount: string,
    /** Where a refused Create's leader is also put back: the legacy mount of findCgroupMounts. */
    private readonly legacyMount: string | undefined,
    /** The daemon's: the system bus (DBUS_SYSTEM_BUS_ADDRESS honoured); tests pass their own bus. */
    private readonly openSystemdBus: OpenSystemdBus,
    /** For tests, as close() is: the daemon waits for PID 1 for JOB_TIMEOUT_MS. */
    private readonly opts: { jobTimeoutMs?: number } = {},
  ) {}

  /** The connection to systemd, made at the first use and again after it broke. */
  private connection(): Promise<Connection> {
    if (this.conn) return this.conn;
    const p: Promise<Connection> = new Promise((resolve, reject) => {
      let failLost: (e: Error) => void = () => {};
      const lost = new Promise<never>((_, r) => (failLost = r));
      lost.catch(() => {}); // nobody may be racing it when it breaks
      let owner = '';
      const broken = (why: string) => {
        const e = failed(`Lost the connection to systemd: ${why}`);
        if (this.conn === p) this.conn = undefined;
        failLost(e);
        reject(e);
        opened.close();
      };
      // May throw at once for a bad address: the executor turns that into a rejection. A bus that never
      // answers (Hello, AddMatch, Subscribe) must not hold every later Create too.
      const opened = this.openSystemdBus(broken, {
        timeoutMs: this.opts.jobTimeoutMs ?? JOB_TIMEOUT_MS,
        timeoutWhy: 'no answer from the bus',
      });
      const { bus } = opened;
      bus.on('message', (msg: dbus.Message) => {
        if ((msg.type as number) !== SIGNAL || msg.member !== 'JobRemoved' || msg.interface !== MANAGER || msg.sender !== owner) return;
        const [, job, unit, result] = msg.body as [number, string, string, string];
        const w = this.waiters.get(unit);
        if (!w) return;
        w.results.set(job, result);
        if (w.job === job) w.done?.(result);
      });
      bus.on('connect', () => {
        const rule = `type='signal',sender='${SYSTEMD}',path='${SYSTEMD_PATH}',interface='${MANAGER}',member='JobRemoved'`;
        const conn = { bus, lost };
        bus
          .call(new Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: [rule] }))
          // JobRemoved is only sent while someone is subscribed; the reply names systemd's connection, the
          // only sender whose JobRemoved counts.
          .then(() => bus.call(new Message({ destination: SYSTEMD, path: SYSTEMD_PATH, interface: MANAGER, member: 'Subscribe' })))
          .then((reply) => {
            owner = reply!.sender;
            opened.answered();
            resolve(conn);
          })
          .catch((e: Error) => broken(`cannot subscribe to systemd's signals: ${(e as dbus.DBusError).text ?? e.message}`));
      });
    });
    this.conn = p;
    p.catch(() => {
      if (this.conn === p) this.conn = undefined;
    });
    return p;
  }

  /** A method call to systemd; its errors are SystemdErrors with systemd's name and message. */
  private async call(member: string, signature = '', body: unknown[] = [], path = SYSTEMD_PATH, iface = MANAGER, conn?: Connection): Promise<any[]> {
    const { bus, lost } = conn ?? (await this.connection());
    try {
      const reply = await Promise.race([bus.call(new Message({ destination: SYSTEMD, path, interface: iface, member, signature, body })), lost]);
      return reply?.body ?? [];
    } catch (e) {
      if (e instanceof dbus.DBusError) throw new SystemdError(e.type, e.text || e.message);
      throw e instanceof RegistryError ? e : failed(`${member} failed: ${(e as Error).message}`);
    }
  }

  /** The scope's abandon() puts its processes back where the leader came from; the scope, empty, is
   *  then stopped and collected by systemd. */
  async create(machine: string, leader: number, req: ScopeRequest): Promise<{ path: string; unit: string; abandon(): Promise<void> }> {
    const unit = scopeUnitName(machine);
    const origin = cgroupPlaceOf(leader);
    const timeoutMs = this.opts.jobTimeoutMs ?? JOB_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(failed(`Start job for unit ${unit} did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    deadline.catch(() => {}); // raced below; a deadline that passes unraced must not be an unhandled rejection
    const waiter: Waiter = { results: new Map() };
    this.waiters.set(unit, waiter);
    const properties: [string, dbus.Variant][] = [
      ['Slice', new Variant('s', 'machine.slice')],
      ['Description', new Variant('s', `${req.class === 'vm' ? 'Virtual Machine' : 'Container'} ${machine}`)],
      ['PIDs', new Variant('au', [leader])],
      ['Delegate', new Variant('b', true)],
      ['CollectMode', new Variant('s', 'inactive-or-failed')],
      ['AddRef', new Variant('b', true)],
      ['TasksMax', new Variant('t', 16384n)],
      ...req.properties.map((p): [string, dbus.Variant] => [p.name, new Variant(p.signature, p.value)]),
    ];
    let started: Promise<any[]> | undefined;
    try {
      const conn = await Promise.race([this.connection(), deadline]);
      started = this.call('StartTransientUnit', 'ssa(sv)a(sa(sv))', [unit, 'fail', properties, []], SYSTEMD_PATH, MANAGER, conn);
      const [job] = (await Promise.race([started, deadline])) as [string];
      waiter.job = job;
      this.referenced.add(unit);
      const result = waiter.results.get(job) ?? (await Promise.race([new Promise<string>((resolve) => (waiter.done = resolve)), deadline, conn.lost]));
      if (result !== 'done') throw new SystemdError('org.freedesktop.systemd1.JobFailed', `Start job for unit ${unit} failed with '${result}'`);
      // The scope's cgroup, read rather than assumed: under a user manager it is below the manager's own.
      const path = scopeOfLeader(leader, unit) ?? `/machine.slice/${unit}`;
      const abandon = async () => {
        await moveBack(this.cgroupMount, this.legacyMount, path, origin);
        this.unref(unit);
      };
      return { path, unit, abandon };
    } catch (e) {
      // Nothing may stay of a refused Create: a pending job is cancelled, our reference dropped, and a
      // leader already moved goes back. Also when systemd answers only after the deadline.
      const answered = waiter.job !== undefined;
      const undo = async () => {
        const now = scopeOfLeader(leader, unit);
        if (now) await moveBack(this.cgroupMount, this.legacyMount, now, origin);
      };
      void started
        ?.then(async ([job]) => {
          await this.call('Cancel', '', [], job, 'org.freedesktop.systemd1.Job').catch(() => {});
          if (!answered) {
            await this.call('UnrefUnit', 's', [unit]).catch(() => {});
            await undo();
          }
        })
        .catch(() => {});
      this.unref(unit);
      await undo();
      throw e;
    } finally {
      clearTimeout(timer);
      this.waiters.delete(unit);
    }
  }

  /** Drops our AddRef (once), so that systemd collects the unit when it is inactive. Not waited for: a
   *  stuck systemd must not stall the registry. */
  private unref(unit: string): void {
    if (this.referenced.delete(unit)) void this.call('UnrefUnit', 's', [unit]).catch(() => {});
  }

  /** Closes the connection to systemd; AddRef pins go with it. For tests: the daemon's connection goes
   *  with its process. */
  close(): void {
    const conn = this.conn;
    this.conn = undefined;
    void conn?.then(
      ({ bus }) => bus.disconnect(),
      () => {},
    );
  }

  async processes(path: string): Promise<number[]> {
    return subtreeProcesses(join(this.cgroupMount, path));
  }

  kill(path: string): Promise<boolean> {
    return killSubtree(join(this.cgroupMount, path));
  }

  /** systemd collects the scope itself once it is empty (CollectMode); it is gone when its cgroup is. */
  async remove(path: string): Promise<boolean> {
    this.unref(basename(path));
    return !existsSync(join(this.cgroupMount, path));
  }
}
