// What machinectl does to a running container beyond the registry: PTYs, logins and shells, bind mounts,
// copies and its root directory (machined's machine-dbus.c operations), as model-level calls that the
// D-Bus and Varlink front ends translate. The work inside the container is done by mymachines-enter
// (linux/enter.ts); which way a shell is started is chosen here (see shellWay).
import { posix } from 'node:path';
import { errnoName, errnoNumber } from '../errno.js';
import { RegistryError, SystemError, invalid } from './errors.js';
import { findCgroupMounts, cgroupPlaceOf } from './linux/cgroup.js';
import { hasServiceManager } from './linux/container-root.js';
import { NoServiceManager, startServiceGetty, startServiceShell } from './linux/container-systemd.js';
import { HelperError, runHelper } from './linux/enter.js';
import { O_CLOEXEC, O_DIRECTORY, O_RDONLY, close, errno, open } from './linux/libc.js';
import { type Machine, uidShift } from './machine.js';
import type { Registry } from './registry.js';
import { isNormalizedPath } from './validate.js';

/** Refusals of an operation that machined names apart (Varlink 262: io.systemd.Machine.NoSuchUser,
 *  NoIPC); other front ends see a registry 'Failed' with the message. */
export type OperationErrorKind = 'NoSuchUser' | 'NoIPC';

export class OperationError extends RegistryError {
  constructor(
    readonly operation: OperationErrorKind,
    message: string,
  ) {
    super('Failed', message);
  }
}

export type OpenMode = 'tty' | 'login' | 'shell';

export interface ShellRequest {
  /** '' or undefined: root. */
  user?: string;
  /** Absolute; '' or undefined: the user's login shell, as a login shell. */
  path?: string;
  /** argv, from argv[0]; empty: [path]. */
  args?: readonly string[];
  /** KEY=VALUE strings. */
  environment?: readonly string[];
}

export interface OpenedPty {
  /** The PTY's master: the caller owns it (passes it on, then closes it). */
  fd: number;
  /** Its path inside the container (/dev/pts/N). */
  path: string;
}

/** How a shell or login reaches a container: through its own service manager where it runs one, as
 *  machined does; otherwise started directly in all of the leader's namespaces (machined cannot). */
export type ShellWay = 'service-manager' | 'direct';

export interface OperationLog {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

const ENV_ENTRY = /^[A-Za-z_][A-Za-z0-9_]*=[^\0]*$/;

/** An absolute, normalized path (machined: path_is_absolute && path_is_normalized), as the registry's
 *  paths; a trailing '/' is dropped. */
function checkPath(field: string, p: unknown): string {
  if (typeof p !== 'string' || !p.startsWith('/')) throw invalid(field, `${field} must be an absolute path`);
  if (!isNormalizedPath(p)) throw invalid(field, `${field} must be an absolute and normalized path (no '.' or '..' components, no '//', no control characters)`);
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

/** A helper's refusal as a registry error: errno names as SystemErrors (machined answers those with the
 *  errno too), the rest by kind. */
function fromHelper(e: unknown, what: string): unknown {
  if (!(e instanceof HelperError)) return e;
  if (e.name === 'NoSuchUser' || e.name === 'NoIPC') return new OperationError(e.name, e.message);
  const n = errnoNumber(e.name);
  return n ? new SystemError(e.name, n, `${what}: ${e.message}`) : new RegistryError('Failed', `${what}: ${e.message}`);
}

export class MachineOperations {
  /** Shells and logins running, by the helper's PID: their exit statuses are logged. */
  private readonly sessions = new Set<number>();

  constructor(
    private readonly reg: Registry,
    private readonly log: OperationLog,
  ) {}

  /** A running container (or the host), as machined requires for all of these. */
  private container(name: string, what: string, host = true): Machine {
    const m = this.reg.mustGet(name);
    if (m.class !== 'container' && (m.class !== 'host' || !host)) throw new RegistryError('NotSupported', `${what} is only supported on container machines.`);
    return m;
  }

  private leader(m: Machine): number {
    return m.class === 'host' ? 1 : m.leader;
  }

  /** The way shells and logins take into this machine, and why. */
  private shellWay(m: Machine): ShellWay {
    return m.class === 'container' && hasServiceManager(m.leader) ? 'service-manager' : 'direct';
  }

  async openPty(name: string, mode: OpenMode, shell: ShellRequest = {}): Promise<OpenedPty> {
    const m = this.container(name, 'Opening PTYs');
    const req = mode === 'shell' ? this.checkShell(shell) : undefined;
    const leader = this.leader(m);
    // Chosen once: the PTY's shape depends on it (a container's systemd takes the terminal's other end
    // as the shell's standard input and output).
    const way = mode === 'tty' ? 'direct' : this.shellWay(m);
    const peer = mode === 'shell' && way === 'service-manager';
    const pty = await runHelper(['pty', String(leader), ...(peer ? ['peer'] : [])]).catch((e) => {
      throw fromHelper(e, `Cannot allocate a pseudo-terminal in machine '${name}'`);
    });
    const [fd, slave] = pty.fds;
    const path = pty.text.trim();
    if (fd === undefined || !path.startsWith('/dev/') || (peer && slave === undefined)) {
      for (const f of pty.fds) close(f);
      throw new RegistryError('Failed', `Cannot allocate a pseudo-terminal in machine '${name}': no descriptor came back`);
    }
    if (mode === 'tty') return { fd, path };
    try {
      await this.startOnPty(m, leader, path, mode, way, req, slave);
    } catch (e) {
      close(fd);
      throw e;
    } finally {
      if (slave !== undefined) close(slave);
    }
    return { fd, path };
  }

  private checkShell(s: ShellRequest): Required<ShellRequest> {
    const user = s.user || 'root';
    if (user.length > 255 || /[\s:/\0]/.test(user)) throw invalid('user', `Invalid user name '${user.slice(0, 64)}'`);
    const path = s.path ? checkShellPath(s.path) : '';
    const args = [...(s.args ?? [])];
    if (path && args.length === 0) args.push(path);
    if (!path && args.length) throw invalid('args', 'Arguments given without a program path');
    for (const a of args) if (typeof a !== 'string' || a.includes('\0')) throw invalid('args', 'Arguments must be strings without NUL');
    const environment = [...(s.environment ?? [])];
    for (const e of environment) if (typeof e !== 'string' || !ENV_ENTRY.test(e)) throw invalid('environment', `Invalid environment assignment '${String(e).slice(0, 64)}'`);
    return { user, path, args, environment };
  }

  /** Starts the getty (login) or the program (shell) on the PTY: through the container's systemd where
   *  it runs one (as machined), else directly; returns once it runs. */
  private async startOnPty(m: Machine, leader: number, pty: string, mode: 'login' | 'shell', way: ShellWay, req?: Required<ShellRequest>, slave?: number): Promise<void> {
    if (way === 'service-manager') {
      try {
        const r = req ?? { user: 'root', path: '', args: [], environment: [] };
        if (mode === 'login') await startServiceGetty(leader, pty);
        else await startServiceShell(leader, pty, slave!, { user: r.user, path: r.path || '/bin/sh', args: r.path ? [...r.args] : ['-sh'], environment: [...r.environment] });
        this.log.info({ machine: m.name, mode, pty, way: 'service-manager' }, `${mode} started in machine`);
        return;
      } catch (e) {
        // No bus to ask after all (it went, or never answers): the direct way still works.
        if (!(e instanceof NoServiceManager)) throw serviceError(e, m.name, mode);
        this.log.warn({ machine: m.name, error: e.message }, "the machine's service manager cannot be asked; starting directly");
      }
    }
    const cgroup = await this.cgroupDir(m);
    let args: string[];
    const env: NodeJS.ProcessEnv = { TERM: 'vt220' };
    if (mode === 'login') args = ['login', String(leader), cgroup, pty];
    else {
      const r = req!;
      for (const e of r.environment) {
        const i = e.indexOf('=');
        env[e.slice(0, i)] = e.slice(i + 1);
      }
      // No program: the user's login shell (the helper reads it inside), argv[0] "-sh" as login does.
      args = r.path ? ['shell', String(leader), cgroup, r.user, pty, r.path, ...r.args] : ['shell', String(leader), cgroup, r.user, pty, '', '-sh'];
    }
    const started = await runHelper(args, env).catch((e) => {
      throw fromHelper(e, `Cannot start ${mode === 'login' ? 'a login' : 'a shell'} in machine '${m.name}'`);
    });
    const pid = started.child.pid!;
    this.sessions.add(pid);
    this.log.info({ machine: m.name, mode, pty, pid: Number(started.text.trim()) || undefined, way: 'direct' }, `${mode} started in machine`);
    void started.exited.then((status) => {
      this.sessions.delete(pid);
      this.log.info({ machine: m.name, mode, pty, status }, `${mode} in machine ended`);
    });
  }

  /** The leader's cgroup2 directory, where the program joins the machine ('' where there is none). */
  private async cgroupDir(m: Machine): Promise<string> {
    if (m.class === 'host') return '';
    const { v2 } = await findCgroupMounts();
    const place = cgroupPlaceOf(m.leader).v2;
    return v2 && place ? posix.join(v2, place) : '';
  }

  async bindMount(name: string, o: { source: string; destination?: string; readOnly?: boolean; mkdir?: boolean }): Promise<void> {
    const m = this.container(name, 'Bind mounting', false);
    const source = checkPath('source', o.source);
    const destination = checkPath('destination', o.destination || o.source);
    await runHelper(['bind', String(m.leader), source, destination, o.readOnly ? 'ro' : 'rw', o.mkdir ? 'mkdir' : 'nomkdir']).catch((e) => {
      throw fromHelper(e, `Cannot bind mount ${source} on ${destination} in machine '${name}'`);
    });
  }

  /** Copies between the host and the container; IDs are mapped through the container's user
   *  namespace (host UID n is the container's n), so a file copied in as root shows as root inside. */
  async copy(name: string, direction: 'to' | 'from', o: { source: string; destination?: string; replace?: boolean }): Promise<void> {
    const m = this.container(name, 'Copying files');
    const source = checkPath('source', o.source);
    const destination = checkPath('destination', o.destination || o.source);
    if (source === '/' || destination === '/') throw invalid(source === '/' ? 'source' : 'destination', 'Cannot copy from or onto a root directory');
    let shift = 0;
    let range = 0xffffffff;
    if (m.class === 'container' && m.uidMap.length) {
      const s = uidShift(m);
      if (s === undefined) throw new RegistryError('NotSupported', 'Machine uses a complex UID/GID mapping, cannot copy files with ownership');
      shift = s;
      range = m.uidMap[0].range;
    }
    await runHelper(['copy', String(this.leader(m)), direction, source, destination, o.replace ? 'replace' : 'noreplace', String(shift), String(range)], {}, 3_600_000).catch((e) => {
      throw fromHelper(e, `Cannot copy ${source} ${direction === 'to' ? 'into' : 'from'} machine '${name}'`);
    });
  }

  /** A descriptor of the container's root directory: the caller owns it. */
  openRootDirectory(name: string): number {
    const m = this.container(name, 'Opening the root directory');
    const fd = open(`/proc/${this.leader(m)}/root`, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      const e = errno();
      throw new SystemError(errnoName(e), e, `Cannot open the root directory of machine '${name}': ${errnoName(e)}`);
    }
    return fd;
  }
}

/** A refusal of the container's systemd (a D-Bus error: no such user, a failed unit) with its name. */
function serviceError(e: unknown, machine: string, mode: string): unknown {
  const err = e as { type?: string; text?: string; message?: string };
  if (!err?.type) return e;
  return new RegistryError('Failed', `Cannot start ${mode === 'login' ? 'a login' : 'a shell'} in machine '${machine}': ${err.type}: ${err.text ?? err.message}`);
}

function checkShellPath(p: string): string {
  if (!p.startsWith('/') || p.includes('\0') || p.length > 4096) throw invalid('path', 'The program path must be absolute');
  return p;
}
