// A small D-Bus object server on dbus-next's message API, and a bus connection that comes back after the
// bus goes away.
//
// Why not dbus-next's own service classes (Interface with configureMembers, which DESIGN.md names)? They
// cannot serve machined's interfaces as machined does:
// - their method handlers never see the message, so not the sender: the UID check of every change, PID 0
//   (the caller's own PID) and the `self` object path all need it;
// - they serve one exported object per path, where machine objects come and go with the registry, as
//   machined's fallback vtable and node enumerator serve them;
// - they answer an exception that is not a DBusError with a stack trace, and need decorators or
//   configureMembers per class.
// So every method call is dispatched here (MessageBus.addMethodHandler), from plain tables of interfaces;
// dbus-next is used for the connection and the wire format only.
import { EventEmitter } from 'node:events';
import { closeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import dbus from 'dbus-next';
import { errnoOf, errnoText } from '../errno.js';

const { Message, Variant } = dbus;
const METHOD_CALL = dbus.MessageType.METHOD_CALL;
const SIGNAL = dbus.MessageType.SIGNAL;
const ERROR = dbus.MessageType.ERROR;
const NO_REPLY_EXPECTED = 1;
const BUS_CALL_TIMEOUT_MS = 5000;
const RECONNECT_MS = 1000;

export const E = {
  Failed: 'org.freedesktop.DBus.Error.Failed',
  InvalidArgs: 'org.freedesktop.DBus.Error.InvalidArgs',
  NotSupported: 'org.freedesktop.DBus.Error.NotSupported',
  AccessDenied: 'org.freedesktop.DBus.Error.AccessDenied',
  FileNotFound: 'org.freedesktop.DBus.Error.FileNotFound',
  UnknownObject: 'org.freedesktop.DBus.Error.UnknownObject',
  UnknownMethod: 'org.freedesktop.DBus.Error.UnknownMethod',
  UnknownInterface: 'org.freedesktop.DBus.Error.UnknownInterface',
  UnknownProperty: 'org.freedesktop.DBus.Error.UnknownProperty',
  PropertyReadOnly: 'org.freedesktop.DBus.Error.PropertyReadOnly',
} as const;

/** An error that leaves as a D-Bus error reply with this name and message. */
export class BusError extends Error {
  constructor(
    readonly busName: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Caller {
  sender: string;
  /** The sender's UID and PID, asked of the bus (once per call). */
  creds(): Promise<{ uid: number; pid: number }>;
  /** Throws AccessDenied ("only root may change <what>") unless the sender is root or the service's
   *  owner (BusService's `owner`: the user of a per-user registry). */
  mayChange(what: string): Promise<void>;
}

/** in and out: "name:type" pairs separated by spaces, e.g. "name:s id:ay". */
export interface MethodDef<T> {
  in: string;
  out: string;
  call(target: T, caller: Caller, ...args: any[]): unknown[] | void | Promise<unknown[] | void>;
}

export interface PropertyDef<T> {
  type: string;
  get(target: T, caller: Caller): unknown;
  set?(target: T, caller: Caller, value: any): void | Promise<void>;
  /** Readable by Get only: absent from introspection and GetAll (sd-bus's SD_BUS_VTABLE_HIDDEN). */
  hidden?: boolean;
  /** org.freedesktop.DBus.Property.EmitsChangedSignal. */
  emits: 'const' | 'false' | 'true';
}

export interface InterfaceDef<T> {
  name: string;
  methods: Record<string, MethodDef<T>>;
  properties: Record<string, PropertyDef<T>>;
  signals: Record<string, string>;
}

export interface BusObject {
  target: any;
  interfaces: InterfaceDef<any>[];
}

export interface ObjectTree {
  /** The object at path, or undefined when there is none. */
  find(path: string, caller: Caller): BusObject | undefined | Promise<BusObject | undefined>;
  /** Every object path: introspection lists the children of a path from these. */
  paths(): string[];
  /** Turns an exception of the object's own code into a BusError (else it is logged, answered Failed). */
  mapError(e: unknown): BusError | undefined;
}

export interface BusLog {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  debug(o: object, msg: string): void;
}

const signatureOf = (args: string) => parseArgs(args).map((a) => a.type).join('');

function parseArgs(args: string): { name: string; type: string }[] {
  return args
    .split(' ')
    .filter(Boolean)
    .map((a) => {
      const i = a.indexOf(':');
      return { name: a.slice(0, i), type: a.slice(i + 1) };
    });
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const STANDARD_INTERFACES = `<interface name="org.freedesktop.DBus.Peer">
  <method name="Ping"/>
  <method name="GetMachineId"><arg type="s" name="machine_uuid" direction="out"/></method>
 </interface>
 <interface name="org.freedesktop.DBus.Introspectable">
  <method name="Introspect"><arg name="xml_data" type="s" direction="out"/></method>
 </interface>
 <interface name="org.freedesktop.DBus.Properties">
  <method name="Get"><arg name="interface_name" direction="in" type="s"/><arg name="property_name" direction="in" type="s"/><arg name="value" direction="out" type="v"/></method>
  <method name="GetAll"><arg name="interface_name" direction="in" type="s"/><arg name="props" direction="out" type="a{sv}"/></method>
  <method name="Set"><arg name="interface_name" direction="in" type="s"/><arg name="property_name" direction="in" type="s"/><arg name="value" direction="in" type="v"/></method>
  <signal name="PropertiesChanged"><arg type="s" name="interface_name"/><arg type="a{sv}" name="changed_properties"/><arg type="as" name="invalidated_properties"/></signal>
 </interface>
`;

function introspectInterface(i: InterfaceDef<unknown>): string {
  const arg = (dir: string) => (a: { name: string; type: string }) => `<arg type="${a.type}" name="${a.name}"${dir ? ` direction="${dir}"` : ''}/>`;
  let x = ` <interface name="${i.name}">\n`;
  for (const [name, m] of Object.entries(i.methods)) {
    x += `  <method name="${name}">${parseArgs(m.in).map(arg('in')).join('')}${parseArgs(m.out).map(arg('out')).join('')}</method>\n`;
  }
  for (const [name, args] of Object.entries(i.signals)) x += `  <signal name="${name}">${parseArgs(args).map(arg('')).join('')}</signal>\n`;
  for (const [name, p] of Object.entries(i.properties)) {
    if (p.hidden) continue;
    x += `  <property name="${name}" type="${p.type}" access="${p.set ? 'readwrite' : 'read'}"><annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="${p.emits}"/></property>\n`;
  }
  return x + ' </interface>\n';
}

/** The direct children of path among all object paths. */
function childNodes(path: string, all: string[]): string[] {
  const prefix = path === '/' ? '/' : path + '/';
  const out = new Set<string>();
  for (const p of all) if (p.startsWith(prefix) && p.length > prefix.length) out.add(p.slice(prefix.length).split('/')[0]);
  return [...out].sort();
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new BusError(E.Failed, `Timed out: ${what}`)), BUS_CALL_TIMEOUT_MS);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}

/** sd-bus's names for errnos that have a standard D-Bus error (errno_to_bus_error_const); every other errno
 *  is System.Error.<ERRNO>. */
const ERRNO_ERRORS: Record<string, string> = {
  ENOMEM: 'org.freedesktop.DBus.Error.NoMemory',
  EPERM: E.AccessDenied,
  EACCES: E.AccessDenied,
  EINVAL: E.InvalidArgs,
  ESRCH: 'org.freedesktop.DBus.Error.UnixProcessIdUnknown',
  ENOENT: 'org.freedesktop.DBus.Error.FileNotFound',
  EEXIST: 'org.freedesktop.DBus.Error.FileExists',
  ETIMEDOUT: 'org.freedesktop.DBus.Error.Timeout',
  ETIME: 'org.freedesktop.DBus.Error.Timeout',
  EIO: 'org.freedesktop.DBus.Error.IOError',
  ENETRESET: 'org.freedesktop.DBus.Error.Disconnected',
  ECONNABORTED: 'org.freedesktop.DBus.Error.Disconnected',
  ECONNRESET: 'org.freedesktop.DBus.Error.Disconnected',
  EOPNOTSUPP: E.NotSupported,
  ENOTSUP: E.NotSupported, // libuv's name for EOPNOTSUPP (the same number on Linux)
  EADDRNOTAVAIL: 'org.freedesktop.DBus.Error.BadAddress',
  ENOBUFS: 'org.freedesktop.DBus.Error.LimitsExceeded',
  EADDRINUSE: 'org.freedesktop.DBus.Error.AddressInUse',
  EBADMSG: 'org.freedesktop.DBus.Error.InconsistentMessage',
};

/** The D-Bus error name sd-bus gives a method's -errno (code: the errno's name, e.g. ENOSPC). */
export function errnoErrorName(code: string): string {
  return ERRNO_ERRORS[code] ?? `System.Error.${code}`;
}

/** A Node system error (one with an errno code such as EBUSY) as sd-bus sends a method's -errno. */
function errnoBusError(e: unknown): BusError | undefined {
  const en = errnoOf(e);
  if (!en) return undefined;
  // A number without a name has no System.Error name either. Node's message names libuv's code, which
  // for an errno libuv does not know is UNKNOWN: then the errno's own words.
  const text = (e as NodeJS.ErrnoException).code === en.name && (e as Error).message ? (e as Error).message : errnoText(e);
  return new BusError(/^E[A-Z0-9]+$/.test(en.name) ? errnoErrorName(en.name) : E.Failed, text);
}

/** A connection error in words: "connect: no such file or directory (ENOENT)" for a system error (the
 *  socket library's own message names its source file and line, which says nothing to an administrator). */
function errorText(e: unknown): string {
  const syscall = (e as NodeJS.ErrnoException | undefined)?.syscall;
  return errnoOf(e) ? `${syscall ? `${syscall}: ` : ''}${errnoText(e)}` : ((e as Error | undefined)?.message ?? String(e));
}

/** The top-level 'h' values of a reply (a method's out descriptors: OpenMachinePTY's "hs"). */
function outFds(sig: string, body: unknown[]): number[] {
  const fds: number[] = [];
  let i = 0;
  for (let pos = 0; pos < sig.length; i++) {
    const end = completeType(sig, pos);
    if (sig[pos] === 'h' && typeof body[i] === 'number') fds.push(body[i] as number);
    pos = end;
  }
  return fds;
}

/** The end of the single complete type that starts at `pos`. */
function completeType(sig: string, pos: number): number {
  const c = sig[pos];
  if (c === 'a') return completeType(sig, pos + 1);
  if (c !== '(' && c !== '{') return pos + 1;
  let depth = 0;
  for (let p = pos; p < sig.length; p++) {
    if (sig[p] === '(' || sig[p] === '{') depth++;
    else if ((sig[p] === ')' || sig[p] === '}') && --depth === 0) return p + 1;
  }
  return sig.length;
}

function closeFds(fds: number[]): void {
  for (const fd of fds) closeSync(fd);
}

/** dbus-next hands a message's descriptors to the socket when it writes it, which may be later than
 *  send() when earlier messages wait: the descriptors are closed once nothing waits any more. */
function closeWhenSent(bus: dbus.MessageBus, fds: number[], tries = 0): void {
  if (fds.length === 0) return;
  const stream = (bus as unknown as { _connection?: { stream?: { writableLength?: number; destroyed?: boolean } } })._connection?.stream;
  if (!stream || stream.destroyed || !stream.writableLength || tries > 1000) return closeFds(fds);
  setTimeout(() => closeWhenSent(bus, fds, tries + 1), 10);
}

/** A connection made by openBus. */
export interface OpenedBus {
  bus: dbus.MessageBus;
  /** The bus has answered what the caller waited for first (Hello at least): the answer timer stops. */
  answered(): void;
  /** Disconnects; onLost is not called after it. */
  close(): void;
}

/** Connects to the bus at `address` (see busAddress; undefined: dbus-next's session bus) and watches the
 *  connection: onLost(why) is called once, with the connection closed by then, when it breaks, when the
 *  bus refuses Hello, or when answered() is not called within timeoutMs (a bus that accepts but never
 *  answers). Throws at once for an address dbus-next cannot use (malformed, or `session` without
 *  DBUS_SESSION_BUS_ADDRESS). */
export function openBus(
  address: string | undefined,
  onLost: (why: string) => void,
  { timeoutMs = BUS_CALL_TIMEOUT_MS, timeoutWhy = `no answer from the bus within ${timeoutMs / 1000} s` }: { timeoutMs?: number; timeoutWhy?: string } = {},
): OpenedBus {
  // Unix fds: RegisterMachineEx passes the leader as a pidfd; a bus refuses such a message to a
  // connection that did not ask for them.
  const bus = dbus.sessionBus({ busAddress: address, negotiateUnixFd: true } as dbus.SessionBusOptions);
  let done = false;
  const close = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    try {
      bus.disconnect();
    } catch {
      /* already closed */
    }
  };
  const lost = (why: string) => {
    if (done) return;
    close();
    onLost(why);
  };
  // dbus-next answers an error reply to Hello with an 'error' event and then a rejected promise that
  // nobody can catch (an unhandled rejection ends the process): its handler (the only one pending yet)
  // is wrapped so that an error reply only counts as a lost bus.
  const handlers = (bus as unknown as { _methodReturnHandlers: Record<string, (m: dbus.Message) => void> })._methodReturnHandlers;
  for (const serial of Object.keys(handlers)) {
    const hello = handlers[serial];
    handlers[serial] = (reply) => ((reply.type as number) === ERROR ? lost(`the bus refused Hello: ${reply.errorName}`) : hello(reply));
  }
  const timer = setTimeout(() => lost(timeoutWhy), timeoutMs);
  bus.on('error', (e: Error) => lost(errorText(e)));
  // dbus-next does not pass on the end of the stream; without this a closed bus would go unnoticed
  // ('close' too: a stream closed while still authenticating may end without an 'end').
  const conn = (bus as unknown as { _connection: NodeJS.EventEmitter })._connection;
  for (const ev of ['end', 'close']) conn.on(ev, () => lost('the bus closed the connection'));
  return { bus, answered: () => clearTimeout(timer), close };
}

export interface BusServiceEvents {
  /** The name is ours (first acquired, or again after the bus came back). */
  acquired: [];
}

/** A connection to one bus that owns a name and serves an object tree there; it warns when the bus
 *  cannot be reached and connects again when it can, and never throws for it. */
export class BusService extends EventEmitter<BusServiceEvents> {
  /** The connection while there is one (a bus that never answers Hello is given up and tried again). */
  private opened: OpenedBus | undefined;
  private connected = false;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Warn once per outage, not on every retry. */
  private warned = false;

  constructor(
    /** owner: a UID besides root whose calls may change things (a per-user registry's user). */
    private readonly opts: { address: string | undefined; name: string; tree: ObjectTree; log: BusLog; owner?: number },
  ) {
    super();
  }

  start(): void {
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.drop();
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** Broadcasts a signal; dropped while there is no bus, as nobody could receive it. */
  signal(path: string, iface: string, member: string, args: string, body: unknown[]): void {
    if (!this.connected || !this.opened) return;
    try {
      this.opened.bus.send(Message.newSignal(path, iface, member, signatureOf(args), body));
    } catch (e) {
      this.opts.log.warn({ error: (e as Error).message, member }, 'cannot send a D-Bus signal');
    }
  }

  private connect(): void {
    const { log, address, name } = this.opts;
    let opened: OpenedBus;
    try {
      opened = openBus(address, (why) => this.lost(opened.bus, why));
    } catch (e) {
      this.lost(undefined, `cannot connect: ${(e as Error).message}`);
      return;
    }
    this.opened = opened;
    const { bus } = opened;
    bus.addMethodHandler((msg: dbus.Message) => {
      if ((msg.type as number) !== METHOD_CALL) return false;
      void this.dispatch(bus, msg);
      return true;
    });
    bus.on('message', (msg: dbus.Message) => {
      // Granted later, after RequestName queued us behind another owner.
      if ((msg.type as number) === SIGNAL && msg.sender === 'org.freedesktop.DBus' && msg.member === 'NameAcquired' && msg.body?.[0] === name && this.opened?.bus === bus && this.connected) {
        this.acquired();
      }
    });
    bus.on('connect', () => {
      opened.answered();
      withTimeout(bus.requestName(name, 0), 'RequestName')
        .then((reply) => {
          if (this.opened?.bus !== bus) return;
          this.connected = true;
          this.warned = false;
          if (reply === dbus.RequestNameReply.PRIMARY_OWNER || reply === dbus.RequestNameReply.ALREADY_OWNER) {
            log.info({ bus: address, name }, 'serving on D-Bus');
            this.acquired();
          } else log.warn({ bus: address, name }, 'another process owns the D-Bus name; queued for it');
        })
        .catch((e: Error) => this.lost(bus, `cannot own ${name}: ${e.message}`));
    });
  }

  private acquired(): void {
    try {
      this.emit('acquired');
    } catch (e) {
      this.opts.log.warn({ error: String((e as Error)?.stack ?? e) }, 'D-Bus name acquired: a listener failed');
    }
  }

  /** The connection `bus` broke or could not be made (undefined: not even started): drop it, warn, and
   *  try again shortly. News of a connection already replaced is ignored. */
  private lost(bus: dbus.MessageBus | undefined, why: string): void {
    const { log, address, name } = this.opts;
    if (bus !== this.opened?.bus) return;
    const was = this.connected;
    this.drop();
    if (was) log.warn({ bus: address, why }, 'lost the D-Bus connection; reconnecting');
    else if (!this.warned) log.warn({ bus: address, why }, `cannot reach the D-Bus bus; ${name} is not served until it can be reached`);
    else log.debug({ bus: address, why }, 'D-Bus still unreachable');
    this.warned = true;
    clearTimeout(this.retry);
    if (!this.stopped) this.retry = setTimeout(() => this.connect(), RECONNECT_MS);
  }

  private drop(): void {
    const opened = this.opened;
    this.opened = undefined;
    this.connected = false;
    opened?.close();
  }

  private caller(bus: dbus.MessageBus, msg: dbus.Message): Caller {
    let creds: Promise<{ uid: number; pid: number }> | undefined;
    const owner = this.opts.owner || undefined;
    const caller: Caller = {
      sender: msg.sender,
      async mayChange(what) {
        const { uid } = await caller.creds();
        if (uid !== 0 && uid !== owner) throw new BusError(E.AccessDenied, `Access denied: only ${owner === undefined ? 'root' : `root and UID ${owner}`} may change ${what}.`);
      },
      creds: () =>
        (creds ??= withTimeout(
          bus.call(
            new Message({
              destination: 'org.freedesktop.DBus',
              path: '/org/freedesktop/DBus',
              interface: 'org.freedesktop.DBus',
              member: 'GetConnectionCredentials',
              signature: 's',
              body: [msg.sender],
            }),
          ),
          'GetConnectionCredentials',
        ).then((reply) => {
          const c = reply!.body[0] as Record<string, dbus.Variant>;
          if (!c.UnixUserID || !c.ProcessID) throw new BusError(E.AccessDenied, 'Cannot tell who the caller is');
          return { uid: Number(c.UnixUserID.value), pid: Number(c.ProcessID.value) };
        })),
    };
    return caller;
  }

  /** Answers a method call that came in on `bus`, on that connection only. */
  private async dispatch(bus: dbus.MessageBus, msg: dbus.Message): Promise<void> {
    const { log } = this.opts;
    const wantsReply = !(msg.flags & NO_REPLY_EXPECTED);
    // After a reconnect, unique names and serials start again: a late reply on the new connection could
    // reach another client as the answer to its own call. So a reply whose connection is gone is dropped.
    const send = (reply: dbus.Message) => {
      if (this.opened?.bus !== bus) return log.debug({ member: msg.member }, 'D-Bus reply dropped: its connection is gone');
      bus.send(reply);
    };
    let err: BusError;
    try {
      const { sig, body } = await this.handle(msg, this.caller(bus, msg));
      // Descriptors in the reply are handed over: ours are closed once they have been sent.
      const fds = outFds(sig, body);
      if (!wantsReply) return closeFds(fds);
      try {
        send(Message.newMethodReturn(msg, sig, body));
        closeWhenSent(bus, fds);
        return;
      } catch (e) {
        closeFds(fds);
        // Nothing was written (dbus-next marshals before it writes): the caller gets an error, not silence.
        log.warn({ error: (e as Error).message, path: msg.path, member: msg.member }, 'D-Bus reply cannot be sent');
        err = new BusError(E.Failed, `Cannot send the reply to ${msg.interface ?? ''}.${msg.member}(): ${(e as Error).message}`);
      }
    } catch (e) {
      err = this.toBusError(e, msg);
    }
    if (!wantsReply) return;
    try {
      send(Message.newError(msg as unknown as string, err.busName, err.message));
    } catch (e) {
      log.debug({ error: (e as Error).message, member: msg.member }, 'cannot send a D-Bus error reply');
    }
  }

  /** Every exception as a named D-Bus error, never a stack trace to the caller. */
  private toBusError(e: unknown, msg: dbus.Message): BusError {
    if (e instanceof BusError) return e;
    const mapped = this.opts.tree.mapError(e);
    if (mapped) return mapped;
    // Not raised on purpose: worth a warning. A system error still goes out named, as sd-bus names it.
    const system = errnoBusError(e);
    this.opts.log.warn({ error: system ? (e as Error).message : String((e as Error)?.stack ?? e), path: msg.path, member: msg.member }, 'D-Bus method failed');
    if (system) return system;
    return new BusError(E.Failed, 'Internal error');
  }

  private async handle(msg: dbus.Message, caller: Caller): Promise<{ sig: string; body: unknown[] }> {
    const { path, member } = msg;
    const iface = msg.interface ?? '';
    const sig = msg.signature ?? '';
    const body = msg.body ?? [];
    const expect = (want: string) => {
      if (sig !== want) throw new BusError(E.InvalidArgs, `Invalid arguments '${sig}' to call ${iface}.${member}(), expecting '${want}'.`);
    };
    const reply = (s: string, b: unknown[]) => ({ sig: s, body: b });
    if (iface === 'org.freedesktop.DBus.Peer') {
      if (member === 'Ping') return expect(''), reply('', []);
      if (member === 'GetMachineId') return expect(''), reply('s', [await this.machineId()]);
    }
    const obj = await this.opts.tree.find(path, caller);
    if (iface === 'org.freedesktop.DBus.Introspectable' && member === 'Introspect') {
      expect('');
      const nodes = childNodes(path, this.opts.tree.paths());
      if (!obj && nodes.length === 0) throw unknownObject(path);
      const ifaces = obj ? obj.interfaces.map(introspectInterface).join('') : '';
      const xml =
        '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n' +
        `<node>\n ${STANDARD_INTERFACES}${ifaces}${nodes.map((n) => ` <node name="${xmlEscape(n)}"/>\n`).join('')}</node>\n`;
      return reply('s', [xml]);
    }
    if (!obj) throw unknownObject(path);
    if (iface === 'org.freedesktop.DBus.Properties') {
      const find = (ifaceName: string, prop: string) => {
        const p = obj.interfaces.find((i) => i.name === ifaceName)?.properties[prop];
        if (!p) throw new BusError(E.UnknownProperty, `Unknown property or interface.`);
        return p;
      };
      if (member === 'Get') {
        expect('ss');
        const p = find(body[0], body[1]);
        return reply('v', [new Variant(p.type, await p.get(obj.target, caller))]);
      }
      if (member === 'GetAll') {
        expect('s');
        const ifaces = body[0] === '' ? obj.interfaces : obj.interfaces.filter((i) => i.name === body[0]);
        if (ifaces.length === 0) throw new BusError(E.UnknownInterface, `Unknown interface '${body[0]}'.`);
        const all: Record<string, dbus.Variant> = {};
        for (const i of ifaces) {
          for (const [name, p] of Object.entries(i.properties)) if (!p.hidden) all[name] = new Variant(p.type, await p.get(obj.target, caller));
        }
        return reply('a{sv}', [all]);
      }
      if (member === 'Set') {
        expect('ssv');
        const p = find(body[0], body[1]);
        if (!p.set) throw new BusError(E.PropertyReadOnly, `Property '${body[1]}' is not writable.`);
        const v = body[2] as dbus.Variant;
        if (v.signature !== p.type) throw new BusError(E.InvalidArgs, `Invalid type '${v.signature}' for property '${body[1]}', expecting '${p.type}'.`);
        await p.set(obj.target, caller, v.value);
        return reply('', []);
      }
    }
    // Without an interface, the first one with that member answers (the D-Bus specification allows this).
    const candidates = iface ? obj.interfaces.filter((i) => i.name === iface) : obj.interfaces;
    const def = candidates.find((i) => i.methods[member]);
    if (!def) throw new BusError(E.UnknownMethod, `Unknown method ${member} or interface ${iface}.`);
    const m = def.methods[member];
    expect(signatureOf(m.in));
    const out = (await m.call(obj.target, caller, ...body)) ?? [];
    return reply(signatureOf(m.out), out);
  }

  private machineIdText: string | undefined;
  private async machineId(): Promise<string> {
    this.machineIdText ??= (await readFile('/etc/machine-id', 'utf8').catch(() => '')).trim();
    return this.machineIdText;
  }
}

/** The address for --bus: system (DBUS_SYSTEM_BUS_ADDRESS or the standard socket), session (left to
 *  dbus-next: DBUS_SESSION_BUS_ADDRESS), or an address as is. */
export function busAddress(bus: string, env: NodeJS.ProcessEnv): string | undefined {
  if (bus === 'system') return env.DBUS_SYSTEM_BUS_ADDRESS || 'unix:path=/run/dbus/system_bus_socket';
  if (bus === 'session') return env.DBUS_SESSION_BUS_ADDRESS;
  return bus;
}

const unknownObject = (path: string) => new BusError(E.UnknownObject, `Unknown object '${path}'.`);
