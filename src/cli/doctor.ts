// mymachinesctl doctor: the setup mistakes that make lookups of machines fail without a word, each
// checked on this host as glibc and the clients see it, and each with how to fix it.
import { accessSync, constants, existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import koffi from 'koffi';
import dbus from 'dbus-next';
import { busAddress, openBus } from '../dbus/bus-service.js';
import { VarlinkClient } from '../varlink/client.js';

export interface Check {
  /** What holds when the check passes. */
  what: string;
  ok: boolean;
  /** What was found. */
  detail: string;
  /** How to fix it (failed checks). */
  fix?: string;
}

export interface DoctorOptions {
  socket: string;
  stateDir: string;
  timeoutMs: number;
  env: NodeJS.ProcessEnv;
}

const NSSWITCH = '/etc/nsswitch.conf';
const MODULE = 'libnss_mymachines.so.2';
const USERDB_SOCKET = '/run/systemd/userdb/io.systemd.Machine'; // where nss-systemd looks, fixed
const BUS_NAME = 'org.freedesktop.machine1';
const MACHINED_COMM = 'systemd-machine'; // /proc/PID/comm keeps 15 characters of systemd-machined

/** A database's line of nsswitch.conf as glibc reads it: sources, each with the actions after it. */
export interface NssLine {
  items: { source: string; actions: string[] }[];
}

function nssLine(text: string, db: string): NssLine | undefined {
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '');
    const m = /^\s*([a-z_]+)\s*:(.*)$/i.exec(line);
    if (!m || m[1] !== db) continue;
    const items: NssLine['items'] = [];
    for (const tok of m[2].match(/\[[^\]]*\]|[^\s[]+/g) ?? []) {
      if (tok.startsWith('[')) items.at(-1)?.actions.push(tok);
      else items.push({ source: tok, actions: [] });
    }
    return { items };
  }
  return undefined;
}

/** Whether an action item such as [NOTFOUND=return] or [!UNAVAIL=return] makes a NOTFOUND answer end
 *  the lookup. */
function returnsOnNotFound(action: string): boolean {
  let returns = false;
  for (const m of action.slice(1, -1).matchAll(/(!?)\s*([a-z]+)\s*=\s*([a-z]+)/gi)) {
    const [, not, status, act] = m;
    const covers = (status.toLowerCase() === 'notfound') !== (not === '!');
    if (covers) returns = act.toLowerCase() === 'return';
  }
  return returns;
}

function checkHosts(text: string | undefined): Check {
  const what = `${NSSWITCH} asks mymachines for hosts, before dns`;
  const example = 'hosts: files mymachines dns';
  if (text === undefined) return { what, ok: false, detail: `${NSSWITCH} cannot be read`, fix: `create it with a line such as '${example}'` };
  const line = nssLine(text, 'hosts');
  if (!line) return { what, ok: false, detail: 'it has no hosts: line', fix: `add '${example}'` };
  const shown = `'hosts: ${line.items.map((i) => [i.source, ...i.actions].join(' ')).join(' ')}'`;
  const at = line.items.findIndex((i) => i.source === 'mymachines');
  if (at < 0) return { what, ok: false, detail: `${shown} has no mymachines`, fix: `add mymachines after files and before resolve and dns: '${example}'` };
  const dns = line.items.findIndex((i) => i.source === 'dns');
  if (dns >= 0 && dns < at) return { what, ok: false, detail: `${shown} asks dns first: machine names go to the DNS servers, and a server that answers them hides the machine`, fix: 'move mymachines before dns' };
  const stop = line.items.slice(0, at).find((i) => i.actions.some(returnsOnNotFound));
  if (stop) {
    const action = stop.actions.find(returnsOnNotFound)!;
    return { what, ok: false, detail: `${shown}: ${action} after ${stop.source} ends every lookup that ${stop.source} does not find, so mymachines is never asked`, fix: `move mymachines before ${stop.source}, or remove ${action}` };
  }
  return { what, ok: true, detail: shown };
}

/** The library glibc's dlopen finds for a name, as NSS loads its modules; its path from our own maps. */
function findLibrary(name: string): { path?: string; error?: string } {
  try {
    koffi.load(name);
  } catch (e) {
    return { error: (e as Error).message };
  }
  const maps = readFileSync('/proc/self/maps', 'utf8').split('\n');
  const line = maps.find((l) => l.endsWith('/' + name));
  return { path: line?.slice(line.indexOf('/')) ?? name };
}

function checkModule(): Check {
  const what = `glibc finds our ${MODULE}`;
  const install = "install mymachines' module: the mymachines package, or make install";
  const found = findLibrary(MODULE);
  if (!found.path) return { what, ok: false, detail: `not found where glibc looks (${found.error})`, fix: install };
  // Ours reads MYMACHINES_SOCKET; systemd's (Debian's libnss-mymachines) asks systemd-machined on D-Bus.
  const bytes = readFileSync(found.path);
  if (!bytes.includes('MYMACHINES_SOCKET')) {
    const whose = bytes.includes(BUS_NAME) ? "systemd's nss-mymachines (Debian's libnss-mymachines), which asks systemd-machined" : 'not the mymachines module';
    return { what, ok: false, detail: `${found.path} is ${whose}`, fix: `${install} (it replaces that file)` };
  }
  return { what, ok: true, detail: found.path };
}

async function varlinkProduct(socket: string, ms: number): Promise<string> {
  const c = await VarlinkClient.connect(socket, { timeoutMs: ms, callTimeoutMs: ms });
  try {
    return String(((await c.call('org.varlink.service.GetInfo', {})) as { product?: string }).product);
  } finally {
    c.close();
  }
}

async function checkDaemon(o: DoctorOptions): Promise<Check> {
  const what = `mymachinesd answers on ${o.socket}`;
  const fix = 'start it: systemctl start mymachinesd, rc-service mymachinesd start or /etc/init.d/mymachinesd start';
  try {
    const product = await varlinkProduct(o.socket, o.timeoutMs);
    if (product !== 'mymachinesd') return { what, ok: false, detail: `${product} answers there, not mymachinesd`, fix };
    return { what, ok: true, detail: 'it answers' };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such socket' : err.code === 'ECONNREFUSED' ? 'connection refused' : err.code === 'ETIMEDOUT' ? `no answer within ${o.timeoutMs / 1000} s` : err.message;
    return { what, ok: false, detail: why, fix };
  }
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Whether PID runs mymachinesd: node with bin/mymachinesd as its script. */
function isMymachinesd(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, 2).some((a) => basename(a) === 'mymachinesd');
  } catch {
    return false;
  }
}

type Owner = { pid: number } | { none: true } | { unreachable: string };

/** Who owns org.freedesktop.machine1 on the system bus. */
function busOwner(env: NodeJS.ProcessEnv, ms: number): Promise<Owner> {
  return new Promise((resolve) => {
    let opened: ReturnType<typeof openBus>;
    try {
      opened = openBus(busAddress('system', env), (why) => resolve({ unreachable: why }), { timeoutMs: ms });
    } catch (e) {
      return resolve({ unreachable: (e as Error).message });
    }
    const call = (member: string, body: string[]) =>
      opened.bus.call(new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member, signature: 's', body }));
    opened.bus.on('connect', () => {
      opened.answered();
      call('GetNameOwner', [BUS_NAME])
        .then(async (owner) => resolve({ pid: Number((await call('GetConnectionUnixProcessID', [owner!.body[0]]))!.body[0]) }))
        .catch((e: { type?: string; message?: string }) => resolve(e.type === 'org.freedesktop.DBus.Error.NameHasNoOwner' ? { none: true } : { unreachable: e.message ?? String(e) }))
        .finally(() => opened.close());
    });
  });
}

async function checkMachined(o: DoctorOptions): Promise<Check> {
  const what = `systemd-machined is not running and does not own ${BUS_NAME}`;
  const fix = 'stop and mask it: systemctl disable --now systemd-machined.service && systemctl mask systemd-machined.service';
  const running = readdirSync('/proc').filter((p) => /^\d+$/.test(p) && commOf(Number(p)) === MACHINED_COMM);
  if (running.length > 0) return { what, ok: false, detail: `systemd-machined runs (PID ${running.join(', ')})`, fix };
  const owner = await busOwner(o.env, o.timeoutMs);
  if ('unreachable' in owner) return { what, ok: true, detail: `no systemd-machined process; no system bus answers at ${busAddress('system', o.env)}, so nobody owns ${BUS_NAME}` };
  if ('none' in owner) return { what, ok: true, detail: `no systemd-machined process; nobody owns ${BUS_NAME}` };
  if (!isMymachinesd(owner.pid)) {
    return { what, ok: false, detail: `${BUS_NAME} is owned by PID ${owner.pid} (${commOf(owner.pid) || 'gone'}), not by mymachinesd`, fix: `stop that process; mymachinesd then takes the name` };
  }
  return { what, ok: true, detail: `mymachinesd (PID ${owner.pid}) owns ${BUS_NAME}` };
}

function checkStateDir(dir: string): Check {
  const what = `the state directory ${dir} is writable`;
  // The daemon makes it if need be: then the nearest directory that exists must be writable.
  let d = dir;
  while (!existsSync(d) && d !== dirname(d)) d = dirname(d);
  try {
    accessSync(d, constants.W_OK);
    return { what, ok: true, detail: d === dir ? 'writable' : `${d} is writable, where the daemon makes it` };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EROFS' ? 'on a read-only file system' : err.code === 'EACCES' ? 'permission denied' : err.message;
    return { what, ok: false, detail: `${d}: ${why}`, fix: `registrations fail until it is: run the daemon as root, with ${dir} on a writable tmpfs such as /run (mount -o remount,rw), or choose another with mymachinesd --state-dir` };
  }
}

async function checkUserRecords(text: string | undefined, ms: number): Promise<Check> {
  const what = 'nss-systemd (or our module) gives the vu-/vg- users and groups';
  const lines = { passwd: text && nssLine(text, 'passwd'), group: text && nssLine(text, 'group') };
  const has = (db: 'passwd' | 'group', s: string) => !!lines[db] && lines[db].items.some((i) => i.source === s);
  if (has('passwd', 'mymachines') && has('group', 'mymachines')) return { what, ok: true, detail: 'passwd: and group: ask mymachines' };
  const missing = (['passwd', 'group'] as const).filter((db) => !has(db, 'systemd') && !has(db, 'mymachines'));
  if (missing.length > 0) return { what, ok: false, detail: `${missing.map((db) => `${db}:`).join(' and ')} ask${missing.length === 1 ? 's' : ''} neither systemd nor mymachines`, fix: `add systemd (nss-systemd) after files on the ${missing.map((db) => `${db}:`).join(' and ')} line${missing.length === 1 ? '' : 's'} of ${NSSWITCH}, or mymachines on hosts without nss-systemd` };
  const needsSystemd = (['passwd', 'group'] as const).filter((db) => !has(db, 'mymachines'));
  const mod = findLibrary('libnss_systemd.so.2');
  if (!mod.path) return { what, ok: false, detail: `${needsSystemd.map((db) => `${db}:`).join(' and ')} ask systemd, but libnss_systemd.so.2 is not installed`, fix: 'install it: apt-get install libnss-systemd (or put mymachines in place of systemd there)' };
  // nss-systemd finds machine records on this socket only; a live systemd-machined would serve its own.
  const fix = "start mymachinesd without --userdb-dir '' (its default is /run/systemd/userdb)";
  try {
    const product = await varlinkProduct(USERDB_SOCKET, ms);
    if (product !== 'mymachinesd') return { what, ok: false, detail: `${product} answers on ${USERDB_SOCKET}, not mymachinesd`, fix };
  } catch (e) {
    return { what, ok: false, detail: `nss-systemd is there, but nothing answers on ${USERDB_SOCKET} (${(e as Error).message})`, fix };
  }
  return { what, ok: true, detail: `nss-systemd (${mod.path}) asks mymachinesd on ${USERDB_SOCKET}` };
}

export async function doctor(o: DoctorOptions): Promise<Check[]> {
  let text: string | undefined;
  try {
    text = readFileSync(NSSWITCH, 'utf8');
  } catch {
    text = undefined;
  }
  return [checkHosts(text), checkModule(), await checkDaemon(o), await checkMachined(o), checkStateDir(o.stateDir), await checkUserRecords(text, o.timeoutMs)];
}

export function report(checks: Check[]): string {
  return checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.what}: ${c.detail}\n${c.fix ? `     fix: ${c.fix}\n` : ''}`).join('');
}
