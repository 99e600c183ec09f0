// mymachinesctl: the registry from the command line, over the daemon's Varlink socket.
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { isAbsolute } from 'node:path';
import { parseArgs } from 'node:util';
import { VarlinkClient } from '../varlink/client.js';
import { VarlinkError } from '../varlink/errors.js';
import { imageVerbs } from './image-verbs.js';
import type { Action, Options, Verb } from './verb.js';
import { PROPERTY_NAMES, fromList, jsonView, listTable, properties, statusText, type MachineJson } from './format.js';

const DEFAULT_SOCKET = '/run/mymachines/io.systemd.Machine';
const DEFAULT_TIMEOUT_S = 25; // as sd-bus's method call timeout
const M = 'io.systemd.Machine';

const HELP = `Usage: mymachinesctl [--socket PATH] COMMAND [OPTIONS]

Lists, registers and controls the machines known to mymachinesd.

Commands:
  list [--all] [--json]            list the machines (--all: with .host)
  status NAME...                   show the state of machines
  show NAME [-p PROP]... [--value] [--json]
                                   show a machine's properties
  register NAME --leader PID [--class container|vm] [--service S] [--root DIR] [--id HEX]
           [--netif IFINDEX]... [--address ADDR]... [--create]
                                   register a machine (--create: in a scope cgroup of its own)
  unregister NAME...               forget machines; their processes go on
  terminate NAME...                stop every process of machines (SIGTERM, then SIGKILL)
  kill NAME [--whom leader|all] [--signal SIG]
                                   send a signal (default SIGTERM to all)
  watch [--json]                   print machines as they come, change and go
  images [--all] [--json]          list the OS images of the pool (--all: hidden ones and .host)
  clone NAME NEW-NAME [--read-only]  copy an image
  rename NAME NEW-NAME             rename an image
  remove NAME...                   remove images
  read-only NAME [BOOL]            mark an image read-only (or writable: no)
  doctor [--state-dir DIR]         check the setup that lookups of machines need, and say how to
                                   fix what is wrong (exit status 0 only when all is well)

Options:
  --socket PATH    the daemon's socket (default: $MYMACHINES_SOCKET or ${DEFAULT_SOCKET})
  -h, --help       show this help (also after a command)
  --version        show the version

Environment:
  MYMACHINESCTL_TIMEOUT=SEC   how long to wait for the daemon to accept and to answer (default: ${DEFAULT_TIMEOUT_S})

Exit status: 0 on success, 1 on failure, 2 on a usage error.
`;

class UsageError extends Error {}
class Failure extends Error {}

const out = (s: string) => void process.stdout.write(s);
// A reader that went away (`mymachinesctl watch | head -1`) ends us quietly, as it would a C program.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

/** User input, fit for a one-line message. */
const esc = (s: string) => s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

// Addresses, UID shift and os-release come as List's metadata; 'graceful': those a machine has.
async function all(c: VarlinkClient): Promise<MachineJson[]> {
  const list: MachineJson[] = [];
  try {
    for await (const m of c.callMore(`${M}.List`, { acquireMetadata: 'graceful' })) list.push(fromList(m));
  } catch (e) {
    // An empty registry (a user's has no .host) answers NoSuchMachine, as machined 262's.
    if (!(e instanceof VarlinkError && e.name === `${M}.NoSuchMachine`)) throw e;
  }
  return list.sort((a, b) => a.name.localeCompare(b.name));
}

async function one(c: VarlinkClient, name: string): Promise<MachineJson> {
  return fromList(await c.call(`${M}.List`, { name, acquireMetadata: 'graceful' }));
}

function leaderComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

const SIGNALS = constants.signals as Record<string, number>;

/** TERM, SIGTERM, term or 15; signals go up to 64 on Linux. */
function signalNumber(s: string): number {
  const name = s.toUpperCase().replace(/^(SIG)?/, 'SIG');
  if (/^\d+$/.test(s) && Number(s) >= 1 && Number(s) <= 64) return Number(s);
  if (Object.hasOwn(SIGNALS, name)) return SIGNALS[name];
  throw new UsageError(`invalid signal '${esc(s)}': expected a name such as TERM or SIGKILL, or a number from 1 to 64`);
}

/** A number as the daemon takes it: decimal digits (its value is the daemon's to judge, with its message). */
function integer(what: string, s: string): number {
  if (!/^\d{1,15}$/.test(s)) throw new UsageError(`invalid ${what} '${esc(s)}': expected a decimal number`);
  return Number(s);
}

const justCall = (method: string, params: object): Action => async (c) => void (await c.call(method, params));

/** A verb that calls METHOD{name} for each NAME given, in order, stopping at the first failure. */
const eachName = (verb: string, method: string): Verb => ({
  usage: `${verb} NAME...`,
  options: {},
  minArgs: 1,
  maxArgs: Infinity,
  prepare: (args) => async (c) => {
    for (const name of args) await c.call(`${M}.${method}`, { name });
  },
});

export const verbs: Record<string, Verb> = {
  list: {
    usage: 'list [--all] [--json]',
    options: { all: { type: 'boolean' }, json: { type: 'boolean' } },
    minArgs: 0,
    maxArgs: 0,
    prepare: (_a, v) => async (c) => {
      const list = (await all(c)).filter((m) => v.all || !m.name.startsWith('.'));
      out(v.json ? JSON.stringify(list.map(jsonView), null, 2) + '\n' : listTable(list));
    },
  },
  status: {
    usage: 'status NAME...',
    options: {},
    minArgs: 1,
    maxArgs: Infinity,
    prepare: (args) => async (c) => {
      const texts: string[] = [];
      for (const name of args) {
        const m = await one(c, name);
        texts.push(statusText(m, leaderComm(m.leader)));
      }
      out(texts.join('\n'));
    },
  },
  show: {
    usage: 'show NAME [-p PROP]... [--value] [--json]',
    options: { property: { type: 'string', short: 'p', multiple: true }, value: { type: 'boolean' }, json: { type: 'boolean' } },
    minArgs: 1,
    maxArgs: 1,
    prepare([name], v) {
      const wanted: string[] | undefined = v.property?.flatMap((p: string) => p.split(','));
      const unknown = wanted?.find((p) => !PROPERTY_NAMES.includes(p));
      if (unknown !== undefined) throw new UsageError(`unknown property '${esc(unknown)}'; known: ${PROPERTY_NAMES.join(', ')}`);
      return async (c) => {
        const m = await one(c, name);
        if (v.json) return out(JSON.stringify(jsonView(m), null, 2) + '\n');
        const props = properties(m).filter(([k]) => !wanted || wanted.includes(k));
        out(props.map(([k, val]) => (v.value ? val : `${k}=${val}`)).join('\n') + '\n');
      };
    },
  },
  register: {
    usage: 'register NAME --leader PID [--class container|vm] [--service S] [--root DIR] [--id HEX] [--netif IFINDEX]... [--address ADDR]... [--create]',
    options: {
      leader: { type: 'string' },
      class: { type: 'string' },
      service: { type: 'string' },
      root: { type: 'string' },
      id: { type: 'string' },
      netif: { type: 'string', multiple: true },
      address: { type: 'string', multiple: true },
      create: { type: 'boolean' },
    },
    minArgs: 1,
    maxArgs: 1,
    prepare([name], v) {
      if (v.leader === undefined) throw new UsageError('register needs --leader PID');
      // Only the syntax is checked here: names, classes, IDs, paths and addresses are the daemon's to
      // judge, and its refusal (exit 1) names the field and the rule.
      const params: Record<string, unknown> = { name, class: v.class ?? 'container', leader: integer('leader PID', v.leader) };
      if (v.service !== undefined) params.service = v.service;
      if (v.root !== undefined) params.rootDirectory = v.root;
      if (v.id !== undefined) params.id = v.id;
      if (v.netif) params.ifIndices = v.netif.map((n: string) => integer('network interface index', n));
      if (v.address) params.addresses = v.address;
      if (v.create) params.allocateUnit = true;
      return justCall(`${M}.Register`, params);
    },
  },
  unregister: eachName('unregister', 'Unregister'),
  terminate: eachName('terminate', 'Terminate'),
  kill: {
    usage: 'kill NAME [--whom leader|all] [--signal SIG]',
    options: { whom: { type: 'string' }, signal: { type: 'string', short: 's' } },
    minArgs: 1,
    maxArgs: 1,
    prepare([name], v) {
      const whom = v.whom ?? 'all';
      if (whom !== 'leader' && whom !== 'all') throw new UsageError(`--whom must be 'leader' or 'all', not '${esc(whom)}'`);
      return justCall(`${M}.Kill`, { name, whom, signal: signalNumber(v.signal ?? 'SIGTERM') });
    },
  },
  watch: {
    usage: 'watch [--json]',
    options: { json: { type: 'boolean' } },
    minArgs: 0,
    maxArgs: 0,
    prepare: (_a, v) => async (c) => {
      for await (const e of c.callMore(`${M}.Watch`, {})) {
        const { event, machine: wire } = e as { event?: string; machine: unknown };
        if (event === undefined) break; // the final reply of a daemon that shuts down
        const machine = jsonView(fromList(wire));
        if (v.json) out(JSON.stringify({ event, machine }) + '\n');
        else out(`${event.padEnd(8)} ${machine.name} ${machine.class} ${machine.state} ${(machine.addresses ?? []).length} address(es)\n`);
      }
      throw Object.assign(new Error('the watch ended'), { code: 'ECONNRESET' }); // only the daemon ends it
    },
  },
  doctor: {
    usage: 'doctor [--state-dir DIR]',
    options: { 'state-dir': { type: 'string' } },
    minArgs: 0,
    maxArgs: 0,
    prepare(_a, v) {
      const stateDir: string = v['state-dir'] ?? '/run/systemd/machines';
      if (!isAbsolute(stateDir)) throw new UsageError(`invalid --state-dir '${esc(stateDir)}': must be an absolute path`);
      // Its own connections: an unreachable daemon is one of the findings, not a failure to start.
      return {
        standalone: async (socket, timeoutMs) => {
          // Loaded for this verb only: it brings koffi and dbus-next, which no other verb needs.
          const { doctor, report } = await import('./doctor.js');
          const checks = await doctor({ socket, stateDir, timeoutMs, env: process.env });
          out(report(checks));
          return checks.every((c) => c.ok) ? 0 : 1;
        },
      };
    },
  },
};

Object.assign(verbs, imageVerbs);

export const GLOBAL: Options = { socket: { type: 'string' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } };

function version(): string {
  return JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;
}

/** parseArgs, with every mistake a UsageError in our words. */
function parse(args: string[], options: Options): { values: Record<string, any>; positionals: string[] } {
  const { values, positionals, tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const type = Object.hasOwn(options, t.name) ? options[t.name].type : undefined;
    if (!type) throw new UsageError(`unknown option '${esc(t.rawName)}'`);
    if (type === 'string' && (t.value === undefined || (!t.inlineValue && t.value.startsWith('-')))) throw new UsageError(`option ${t.rawName} needs a value`);
    if (type === 'boolean' && t.value !== undefined) throw new UsageError(`option ${t.rawName} takes no value`);
  }
  return { values, positionals };
}

function timeoutMs(): number {
  const s = process.env.MYMACHINESCTL_TIMEOUT || String(DEFAULT_TIMEOUT_S);
  const sec = /^\d+(\.\d+)?$/.test(s) ? Number(s) : 0;
  if (!(sec > 0)) throw new UsageError(`invalid MYMACHINESCTL_TIMEOUT '${esc(s)}': expected seconds > 0`);
  return sec * 1000;
}

/** "Machine 'x' already exists" -> "machine 'x' already exists"; acronyms such as PID stay. */
function lowerFirst(s: string): string {
  return /^[A-Z][a-z]/.test(s) ? s.charAt(0).toLowerCase() + s.slice(1) : s;
}

/** Why connecting failed, in a few words. */
function connectCause(e: unknown, ms: number): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return 'no such socket (is it running?)';
  if (err.code === 'ECONNREFUSED') return 'connection refused (is it running?)';
  if (err.code === 'EACCES') return 'permission denied';
  if (err.code === 'ETIMEDOUT') return `not accepted within ${ms / 1000} s`;
  return err.message ?? String(e);
}

/** A failed call as one line that names the cause. */
function describe(e: unknown, socket: string, ms: number): string {
  if (e instanceof VarlinkError) {
    const p = e.parameters as Record<string, unknown>;
    if (e.name === 'org.varlink.service.PermissionDenied') return 'permission denied: changing the registry needs root';
    if (typeof p.message === 'string') return lowerFirst(p.message);
    if (e.name === 'org.varlink.service.InvalidParameter') return `invalid parameter '${p.parameter}'`;
    return e.name;
  }
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ETIMEDOUT') return `mymachinesd at ${socket} did not answer within ${ms / 1000} s`;
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return `mymachinesd at ${socket} closed the connection`;
  return `mymachinesd at ${socket}: ${err.message ?? String(e)}`;
}

async function main(argv: string[]): Promise<number> {
  // Global options stand before the command; the rest belongs to the command.
  const { tokens } = parseArgs({ args: argv, options: GLOBAL, strict: false, allowPositionals: true, tokens: true });
  const first = tokens.find((t) => t.kind === 'positional');
  const cut = first ? first.index : argv.length;
  const pre = parse(argv.slice(0, cut), GLOBAL).values;
  if (!first) {
    if (pre.help) return out(HELP), 0;
    if (pre.version) return out(`mymachinesctl ${version()}\n`), 0;
    throw new UsageError('no command given');
  }
  const name = argv[cut];
  const verb = Object.hasOwn(verbs, name) ? verbs[name] : undefined;
  if (!verb) throw new UsageError(`unknown command '${esc(name)}'`);
  const { values, positionals } = parse(argv.slice(cut + 1), { ...verb.options, ...GLOBAL });
  if (values.help || pre.help) return out(`Usage: mymachinesctl [--socket PATH] ${verb.usage}\n`), 0;
  if (positionals.length < verb.minArgs) throw new UsageError(`${name}: missing argument; usage: ${verb.usage}`);
  if (positionals.length > verb.maxArgs) throw new UsageError(`${name}: too many arguments; usage: ${verb.usage}`);
  let action: ReturnType<Verb['prepare']>;
  try {
    action = verb.prepare(positionals, values);
  } catch (e) {
    if ((e as { usage?: boolean }).usage) throw new UsageError(`${name}: ${(e as Error).message}`);
    throw e;
  }
  const ms = timeoutMs();
  const socket: string = values.socket ?? pre.socket ?? (process.env.MYMACHINES_SOCKET || DEFAULT_SOCKET);
  if (socket === '') throw new UsageError('option --socket needs a value');
  if ('standalone' in action) return action.standalone(socket, ms);
  let client: VarlinkClient;
  try {
    client = await VarlinkClient.connect(socket, { timeoutMs: ms, callTimeoutMs: ms });
  } catch (e) {
    throw new Failure(`cannot reach mymachinesd at ${socket}: ${connectCause(e, ms)}`);
  }
  try {
    await action(client);
  } catch (e) {
    throw new Failure(describe(e, socket, ms));
  } finally {
    client.close();
  }
  return 0;
}

/** Runs mymachinesctl with these arguments (bin/mymachinesctl); sets the exit status. */
export function runCli(argv: string[]): void {
  main(argv).then(
    (code) => (process.exitCode = code),
    (e) => {
      if (e instanceof UsageError) {
        process.stderr.write(`mymachinesctl: ${e.message}\nTry 'mymachinesctl --help'.\n`);
        process.exitCode = 2;
      } else {
        process.stderr.write(`mymachinesctl: ${e instanceof Failure ? e.message : (e as Error).message}\n`);
        process.exitCode = 1;
      }
    },
  );
}
