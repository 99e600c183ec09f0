// Starting a shell or a getty through a container's own systemd, as machined does: on the container's
// system bus, reached through mymachines-enter's bridge (it connects from inside the container's user and
// mount namespaces, so the container's bus sees its own root calling), StartTransientUnit of a
// container-shell@N.service with the PTY as its terminal, or StartUnit of container-getty@N.service.
import dbus from 'dbus-next';

const { Message, Variant } = dbus;
const CALL_TIMEOUT_MS = 10_000;

export interface ServiceShell {
  user: string;
  /** The program and its argv (from argv[0]). */
  path: string;
  args: string[];
  environment: string[];
}

/** Why the container's service manager could not be asked (no bus there, no answer). */
export class NoServiceManager extends Error {}

function busOf(helper: string, leader: number): dbus.MessageBus {
  const address = `unixexec:path=${helper},arg1=bridge,arg2=${leader},arg3=/run/dbus/system_bus_socket`;
  return dbus.sessionBus({ busAddress: address } as dbus.SessionBusOptions);
}

async function withBus<T>(helper: string, leader: number, f: (bus: dbus.MessageBus) => Promise<T>): Promise<T> {
  const bus = busOf(helper, leader);
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new NoServiceManager('no answer from the machine\'s system bus')), CALL_TIMEOUT_MS);
      bus.once('connect', () => resolve());
      bus.once('error', (e: Error) => reject(new NoServiceManager(`cannot reach the machine's system bus: ${e.message}`)));
    });
    return await f(bus);
  } finally {
    clearTimeout(timer);
    try {
      bus.disconnect();
    } catch {
      /* gone already */
    }
  }
}

function call(bus: dbus.MessageBus, member: string, signature: string, body: unknown[]): Promise<dbus.Message | null> {
  return bus.call(new Message({ destination: 'org.freedesktop.systemd1', path: '/org/freedesktop/systemd1', interface: 'org.freedesktop.systemd1.Manager', member, signature, body }));
}

const ptyNumber = (pty: string) => pty.replace(/^\/dev\/pts\//, '');

/** A transient container-shell@N.service on the PTY, with machined's properties. */
export function startServiceShell(helper: string, leader: number, pty: string, s: ServiceShell): Promise<void> {
  const n = ptyNumber(pty);
  const props: [string, dbus.Variant][] = [
    ['Description', new Variant('s', `Shell for User ${s.user}`)],
    ['StandardInput', new Variant('s', 'tty')],
    ['StandardOutput', new Variant('s', 'tty')],
    ['StandardError', new Variant('s', 'tty')],
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
  return withBus(helper, leader, async (bus) => {
    await call(bus, 'StartTransientUnit', 'ssa(sv)a(sa(sv))', [`container-shell@${n}.service`, 'fail', props, []]);
  });
}

/** The container's own getty on the PTY (container-getty@N.service), as machined's OpenMachineLogin. */
export function startServiceGetty(helper: string, leader: number, pty: string): Promise<void> {
  return withBus(helper, leader, async (bus) => {
    await call(bus, 'StartUnit', 'ss', [`container-getty@${ptyNumber(pty)}.service`, 'replace']);
  });
}
