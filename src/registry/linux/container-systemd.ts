// Starting a shell or a getty through a container's own systemd, as machined does: on the container's
// system bus, reached through mymachines-enter's bridge (it connects from inside the container's user and
// mount namespaces, so the container's bus sees its own root calling; an abstract socket joins it to us), StartTransientUnit of a
// container-shell@N.service with the PTY as its terminal, or StartUnit of container-getty@N.service.
import { randomBytes } from 'node:crypto';
import type dbus from 'dbus-next';
import { failed as failedError } from '../errors.js';
import { runHelper } from './enter.js';

const CALL_TIMEOUT_MS = 10_000;
/** dbus-next, loaded when a shell or login first asks a container's systemd (not at every start). */
const dbusNext = async () => (await import('dbus-next')).default;

export interface ServiceShell {
  user: string;
  /** The program and its argv (from argv[0]). */
  path: string;
  args: string[];
  environment: string[];
}

/** Why the container's service manager could not be asked (no bus there, no answer). */
export class NoServiceManager extends Error {}

/** The container's system bus through a bridge of mymachines-enter's, on an abstract socket of a random
 *  name that only this process may use. */
async function busOf(leader: number): Promise<dbus.MessageBus> {
  const name = `mymachines-bridge-${randomBytes(12).toString('hex')}`;
  await runHelper(['bridge', String(leader), '/run/dbus/system_bus_socket', name]).catch((e: Error) => {
    throw new NoServiceManager(`cannot reach the machine's system bus: ${e.message}`);
  });
  // Descriptors pass through the bridge: the shell's terminal goes to the container's systemd.
  return (await dbusNext()).sessionBus({ busAddress: `unix:abstract=${name}`, negotiateUnixFd: true } as dbus.SessionBusOptions);
}

async function withBus<T>(leader: number, what: string, f: (bus: dbus.MessageBus) => Promise<T>): Promise<T> {
  const bus = await busOf(leader);
  let timer: NodeJS.Timeout | undefined;
  let connected = false;
  // One deadline for connecting and for the call: dbus-next never times a call out, and a container's
  // systemd that accepts and never answers must not hold the caller (and the PTY) for good.
  const failed = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(connected ? failedError(`The machine's service manager did not answer ${what} within ${CALL_TIMEOUT_MS / 1000} s`) : new NoServiceManager("no answer from the machine's system bus")),
      CALL_TIMEOUT_MS,
    );
    // Kept to the end: an 'error' with no listener would be thrown out of the emitter.
    bus.on('error', (e: Error) => reject(connected ? failedError(`The machine's system bus failed during ${what}: ${e.message}`) : new NoServiceManager(`cannot reach the machine's system bus: ${e.message}`)));
  });
  failed.catch(() => {}); // rejected after the end too (a late error): nobody waits for it then
  try {
    await Promise.race([new Promise<void>((resolve) => bus.once('connect', () => resolve())), failed]);
    connected = true;
    return await Promise.race([f(bus), failed]);
  } finally {
    clearTimeout(timer);
    try {
      bus.disconnect();
    } catch {
      /* gone already */
    }
  }
}

async function call(bus: dbus.MessageBus, member: string, signature: string, body: unknown[]): Promise<dbus.Message | null> {
  const { Message } = await dbusNext();
  return bus.call(new Message({ destination: 'org.freedesktop.systemd1', path: '/org/freedesktop/systemd1', interface: 'org.freedesktop.systemd1.Manager', member, signature, body }));
}

const ptyNumber = (pty: string) => pty.replace(/^\/dev\/pts\//, '');

/** A transient container-shell@N.service on the PTY, with machined's properties. */
/** `slave`: the PTY's other end, opened in the container: its systemd connects the program to it, as
 *  machined passes it (no path to look up in the unit's namespace). */
export async function startServiceShell(leader: number, pty: string, slave: number, s: ServiceShell): Promise<void> {
  const { Variant } = await dbusNext();
  const n = ptyNumber(pty);
  const props: [string, dbus.Variant][] = [
    ['Description', new Variant('s', `Shell for User ${s.user}`)],
    ['StandardInputFileDescriptor', new Variant('h', slave)],
    ['StandardOutputFileDescriptor', new Variant('h', slave)],
    ['StandardErrorFileDescriptor', new Variant('h', slave)],
    ['TTYPath', new Variant('s', pty)],
    ['SendSIGHUP', new Variant('b', true)],
    ['IgnoreSIGPIPE', new Variant('b', false)],
    ['KillMode', new Variant('s', 'mixed')],
    ['TTYReset', new Variant('b', true)],
    ['UtmpIdentifier', new Variant('s', `pts/${n}`)],
    ['UtmpMode', new Variant('s', 'user')],
    ['PAMName', new Variant('s', 'login')],
    ['WorkingDirectory', new Variant('s', '-~')],
    ['User', new Variant('s', s.user)],
    ...(s.environment.length ? [['Environment', new Variant('as', s.environment)] as [string, dbus.Variant]] : []),
    ['ExecStart', new Variant('a(sasb)', [[s.path, s.args, false]])],
  ];
  return withBus(leader, 'StartTransientUnit', async (bus) => {
    await call(bus, 'StartTransientUnit', 'ssa(sv)a(sa(sv))', [`container-shell@${n}.service`, 'fail', props, []]);
  });
}

/** The container's own getty on the PTY (container-getty@N.service), as machined's OpenMachineLogin. */
export function startServiceGetty(leader: number, pty: string): Promise<void> {
  return withBus(leader, 'StartUnit', async (bus) => {
    await call(bus, 'StartUnit', 'ss', [`container-getty@${ptyNumber(pty)}.service`, 'replace']);
  });
}
