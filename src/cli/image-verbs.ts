// mymachinesctl's image verbs (machinectl's list-images, clone, rename, remove, read-only), over
// io.systemd.MachineImage on the daemon socket. Syntax is checked here; the daemon's refusals speak for
// themselves.
import type { Verb } from './verb.js';
import { table } from './format.js';

const I = 'io.systemd.MachineImage';

export interface ImageJson {
  name: string;
  type: string;
  readOnly: boolean;
  usage?: number;
  creationTimestamp?: number;
  modificationTimestamp?: number;
}


const out = (s: string) => void process.stdout.write(s);

function bytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'K', 'M', 'G', 'T'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), i++;
  return i === 0 ? `${v}B` : `${v.toFixed(1)}${units[i]}`;
}

const when = (us: number | undefined) => (us ? new Date(us / 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '-');

function imageTable(images: ImageJson[]): string {
  const rows = images.map((i) => [i.name, i.type, i.readOnly ? 'yes' : 'no', bytes(i.usage), when(i.creationTimestamp), when(i.modificationTimestamp)]);
  const body = rows.length ? table(['NAME', 'TYPE', 'RO', 'USAGE', 'CREATED', 'MODIFIED'], rows) + '\n' : '';
  return `${body}${rows.length} image${rows.length === 1 ? '' : 's'} listed.\n`;
}

/** A yes/no word as machinectl takes it (read-only NAME [BOOL]). */
function bool(s: string | undefined, usage: string): boolean {
  if (s === undefined) return true;
  if (/^(1|yes|y|true|t|on)$/i.test(s)) return true;
  if (/^(0|no|n|false|f|off)$/i.test(s)) return false;
  throw Object.assign(new Error(`invalid boolean '${s}'; usage: ${usage}`), { usage: true });
}

export const imageVerbs: Record<string, Verb> = {
  images: {
    usage: 'images [--all] [--json]',
    options: { all: { type: 'boolean' }, json: { type: 'boolean' } },
    minArgs: 0,
    maxArgs: 0,
    prepare: (_a, v) => async (c) => {
      const list: ImageJson[] = [];
      for await (const i of c.callMore(`${I}.List`, {})) list.push(i as unknown as ImageJson);
      const shown = list.filter((i) => v.all || !i.name.startsWith('.'));
      out(v.json ? JSON.stringify(shown, null, 2) + '\n' : imageTable(shown));
    },
  },
  clone: {
    usage: 'clone NAME NEW-NAME [--read-only]',
    options: { 'read-only': { type: 'boolean' } },
    minArgs: 2,
    maxArgs: 2,
    prepare: ([name, newName], v) => async (c) => void (await c.call(`${I}.Clone`, { name, newName, readOnly: !!v['read-only'] })),
  },
  rename: {
    usage: 'rename NAME NEW-NAME',
    options: {},
    minArgs: 2,
    maxArgs: 2,
    prepare: ([name, newName]) => async (c) => void (await c.call(`${I}.Update`, { name, newName })),
  },
  remove: {
    usage: 'remove NAME...',
    options: {},
    minArgs: 1,
    maxArgs: Infinity,
    prepare: (names) => async (c) => {
      for (const name of names) await c.call(`${I}.Remove`, { name });
    },
  },
  'read-only': {
    usage: 'read-only NAME [BOOL]',
    options: {},
    minArgs: 1,
    maxArgs: 2,
    prepare: ([name, flag]) => {
      const readOnly = bool(flag, 'read-only NAME [BOOL]');
      return async (c) => void (await c.call(`${I}.Update`, { name, readOnly }));
    },
  },
};
