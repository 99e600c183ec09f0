// mymachinesctl: the registry from the command line, over the daemon's Varlink socket.
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { VarlinkClient } from '../varlink/client.js';
import { VarlinkError } from '../varlink/errors.js';
import { listTable, properties, statusText, type MachineJson } from './format.js';

const DEFAULT_SOCKET = '/run/mymachines/io.systemd.Machine';
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

Options:
  --socket PATH    the daemon's socket (default: $MYMACHINES_SOCKET or ${DEFAULT_SOCKET})
  -h, --help       show this help (also after a command)

Exit status: 0 on success, 1 on failure, 2 on a usage error.
`;

class UsageError extends Error {}
class Failure extends Error {}

interface Verb {
  usage: string;
  options: ParseArgsConfig['options'];
  minArgs: number;
  maxArgs: number;
  run(client: () => Promise<VarlinkClient>, args: string[], v: Record<string, any>): Promise<void>;
}

const out = (s: string) => process.stdout.write(s);

async function all(c: VarlinkClient, metadata: boolean): Promise<MachineJson[]> {
  const list: MachineJson[] = [];
  for await (const m of c.callMore(`${M}.List`, metadata ? { acquireMetadata: true } : {})) list.push(m as MachineJson);
  return list.sort((a, b) => a.name.localeCompare(b.name));
}

async function one(c: VarlinkClient, name: string, metadata = false): Promise<MachineJson> {
  return (await c.call(`${M}.List`, metadata ? { name, acquireMetadata: true } : { name })) as MachineJson;
}

function leaderComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function signalNumber(s: string): number {
  if (/^\d+$/.test(s)) return Number(s);
  const name = (s.toUpperCase().startsWith('SIG') ? s.toUpperCase() : `SIG${s.toUpperCase()}`) as keyof typeof constants.signals;
  const n = constants.signals[name];
  if (n === undefined) throw new UsageError(`unknown signal '${s}'`);
  return n;
}

function intArg(flag: string, s: string): number {
  if (!/^\d+$/.test(s)) throw new UsageError(`${flag} expects a number, got '${s}'`);
  return Number(s);
}

const verbs: Record<string, Verb> = {
  list: {
    usage: 'list [--all] [--json]',
    options: { all: { type: 'boolean' }, json: { type: 'boolean' } },
    minArgs: 0,
    maxArgs: 0,
    async run(client, _a, v) {
      const c = await client();
      const list = (await all(c, !v.json)).filter((m) => v.all || !m.name.startsWith('.'));
      out(v.json ? JSON.stringify(list, null, 2) + '\n' : listTable(list));
    },
  },
  status: {
    usage: 'status NAME...',
    options: {},
    minArgs: 1,
    maxArgs: Infinity,
    async run(client, args) {
      const c = await client();
      const texts: string[] = [];
      for (const name of args) {
        const m = await one(c, name, true);
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
    async run(client, [name], v) {
      const m = await one(await client(), name);
      if (v.json) return void out(JSON.stringify(m, null, 2) + '\n');
      let props = properties(m);
      const wanted: string[] | undefined = v.property?.flatMap((p: string) => p.split(','));
      if (wanted) {
        const known = new Set(props.map(([k]) => k));
        const unknown = wanted.find((p) => !known.has(p));
        if (unknown) throw new UsageError(`unknown property '${unknown}'; known: ${[...known].join(', ')}`);
        props = props.filter(([k]) => wanted.includes(k));
      }
      out(props.map(([k, val]) => (v.value ? val : `${k}=${val}`)).join('\n') + '\n');
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
    async run(client, [name], v) {
      if (v.leader === undefined) throw new UsageError('register needs --leader PID');
      const params: Record<string, unknown> = { name, class: v.class ?? 'container', leader: intArg('--leader', v.leader) };
      if (v.service !== undefined) params.service = v.service;
      if (v.root !== undefined) params.rootDirectory = v.root;
      if (v.id !== undefined) params.id = v.id;
      if (v.netif) params.ifIndices = v.netif.map((n: string) => intArg('--netif', n));
      if (v.address) params.addresses = v.address;
      if (v.create) params.allocateUnit = true;
      await (await client()).call(`${M}.Register`, params);
    },
  },
  unregister: {
    usage: 'unregister NAME...',
    options: {},
    minArgs: 1,
    maxArgs: Infinity,
    async run(client, args) {
      const c = await client();
      for (const name of args) await c.call(`${M}.Unregister`, { name });
    },
  },
  terminate: {
    usage: 'terminate NAME...',
    options: {},
    minArgs: 1,
    maxArgs: Infinity,
    async run(client, args) {
      const c = await client();
      for (const name of args) await c.call(`${M}.Terminate`, { name });
    },
  },
  kill: {
    usage: 'kill NAME [--whom leader|all] [--signal SIG]',
    options: { whom: { type: 'string' }, signal: { type: 'string', short: 's' } },
    minArgs: 1,
    maxArgs: 1,
    async run(client, [name], v) {
      const whom = v.whom ?? 'all';
      if (whom !== 'leader' && whom !== 'all') throw new UsageError(`--whom must be 'leader' or 'all', not '${whom}'`);
      await (await client()).call(`${M}.Kill`, { name, whom, signal: signalNumber(v.signal ?? 'SIGTERM') });
    },
  },
  watch: {
    usage: 'watch [--json]',
    options: { json: { type: 'boolean' } },
    minArgs: 0,
    maxArgs: 0,
    async run(client, _a, v) {
      for await (const e of (await client()).callMore(`${M}.Watch`, {})) {
        const { event, machine } = e as { event: string; machine: MachineJson };
        if (v.json) out(JSON.stringify(e) + '\n');
        else out(`${event.padEnd(8)} ${machine.name} ${machine.class} ${machine.state} ${(machine.addresses ?? []).length} address(es)\n`);
      }
    },
  },
};

/** "Machine 'x' already exists" -> "machine 'x' already exists"; acronyms such as PID stay. */
function lowerFirst(s: string): string {
  return /^[A-Z][a-z]/.test(s) ? s.charAt(0).toLowerCase() + s.slice(1) : s;
}

/** The daemon's errors as one line that names the cause. */
function describe(e: unknown, socket: string): string {
  if (e instanceof VarlinkError) {
    const p = e.parameters as Record<string, unknown>;
    if (e.name === 'org.varlink.service.PermissionDenied') return 'permission denied: changing the registry needs root';
    if (typeof p.message === 'string') return lowerFirst(p.message);
    if (e.name === 'org.varlink.service.InvalidParameter') return `invalid parameter '${p.parameter}'`;
    return e.name;
  }
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') return `cannot reach mymachinesd at ${socket}: ${err.code === 'ENOENT' ? 'no such socket' : 'connection refused'} (is it running?)`;
  return err.message ?? String(e);
}

async function main(argv: string[]): Promise<number> {
  const global = parseArgs({
    args: argv,
    options: { socket: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  // Global options stand before the command; the rest belongs to the command.
  const first = global.tokens!.find((t) => t.kind === 'positional');
  const cut = first ? first.index : argv.length;
  const pre = parseArgs({ args: argv.slice(0, cut), options: { socket: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  const socket = pre.values.socket ?? (process.env.MYMACHINES_SOCKET || DEFAULT_SOCKET);
  if (!first) {
    if (pre.values.help) return out(HELP), 0;
    throw new UsageError('no command given');
  }
  const name = argv[cut];
  const verb = verbs[name];
  if (!verb) throw new UsageError(`unknown command '${name}'`);
  const { values, positionals } = (() => {
    try {
      return parseArgs({ args: argv.slice(cut + 1), options: { ...verb.options, help: { type: 'boolean', short: 'h' }, socket: { type: 'string' } }, strict: true, allowPositionals: true });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  })();
  if (values.help || pre.values.help) return out(`Usage: mymachinesctl [--socket PATH] ${verb.usage}\n`), 0;
  const sock = (values.socket as string | undefined) ?? socket;
  if (positionals.length < verb.minArgs) throw new UsageError(`${name}: missing argument; usage: ${verb.usage}`);
  if (positionals.length > verb.maxArgs) throw new UsageError(`${name}: too many arguments; usage: ${verb.usage}`);
  let client: VarlinkClient | undefined;
  try {
    await verb.run(async () => (client = await VarlinkClient.connect(sock, { timeoutMs: 30_000 })), positionals, values);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new Failure(describe(e, sock));
  } finally {
    client?.close();
  }
  return 0;
}

main(process.argv.slice(2)).then(
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
