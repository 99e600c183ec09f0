// The Varlink front end of the image pool: io.systemd.MachineImage as systemd-machined 262 defines it
// (List, Update, Clone, Remove, SetPoolLimit, CleanPool), served on <machine-dir>/io.systemd.MachineImage.
// It only translates between Varlink and ImagePool calls.
import { errorTable, expectedMore, invalidParameter, requireRootOr, systemError, VarlinkError } from '../varlink/errors.js';
import { t, type InterfaceDef } from '../varlink/schema.js';
import { mapErrors, type CallContext, type Handler } from '../varlink/server.js';
import { ImageError } from './errors.js';
import type { Image, ImagePool } from './pool.js';

const IFACE = 'io.systemd.MachineImage';
export const MACHINE_IMAGE_SOCKET = IFACE;

/** machined's errors carry no parameters; ours add a message for people, as io.systemd.Machine's do here. */
const withMessage = { message: t.optional(t.string) };
const errors = errorTable(IFACE, { NoSuchImage: withMessage, TooManyOperations: withMessage, NotSupported: withMessage });
const auth = { allowInteractiveAuthentication: t.optional(t.bool) };

export const machineImageInterface: InterfaceDef = {
  name: IFACE,
  types: {
    AcquireMetadata: t.enum(['no', 'yes', 'graceful']),
    CleanPoolMode: t.enum(['all', 'hidden']),
  },
  methods: {
    List: {
      doc: "List images\n[Supports 'more' flag]",
      in: { name: t.optional(t.string), acquireMetadata: t.optional(t.ref('AcquireMetadata')), ...auth },
      out: {
        name: t.string,
        path: t.optional(t.string),
        type: t.string,
        class: t.string,
        readOnly: t.bool,
        creationTimestamp: t.optional(t.int),
        modificationTimestamp: t.optional(t.int),
        usage: t.optional(t.int),
        usageExclusive: t.optional(t.int),
        limit: t.optional(t.int),
        limitExclusive: t.optional(t.int),
        hostname: t.optional(t.string),
        machineId: t.optional(t.string),
        machineInfo: t.optional(t.array(t.string)),
        OSRelease: t.optional(t.array(t.string)),
      },
    },
    Update: {
      doc: 'Update image allowing to rename, toggle read-only flag, or set a limit',
      in: { name: t.string, ...auth, newName: t.optional(t.string), readOnly: t.optional(t.bool), limit: t.optional(t.int) },
      out: {},
    },
    Clone: { doc: 'Clone image', in: { name: t.string, ...auth, newName: t.string, readOnly: t.optional(t.bool) }, out: {} },
    Remove: { doc: 'Remove image', in: { name: t.string, ...auth }, out: {} },
    SetPoolLimit: { doc: 'Sets an overall quota limit on the pool of images', in: { ...auth, limit: t.int }, out: {} },
    CleanPool: {
      doc: "Clean unused images depending on the specified mode.\n[Requires 'more' flag]",
      in: { ...auth, mode: t.ref('CleanPoolMode') },
      out: { name: t.string, usageExclusive: t.optional(t.int) },
    },
  },
  errors: errors.defs,
};

/** A pool error as the Varlink error that names it. */
function toVarlinkError(e: unknown): unknown {
  if (!(e instanceof ImageError)) return e;
  switch (e.kind) {
    case 'InvalidParameter':
      return invalidParameter(e.code || 'name');
    case 'System':
      return systemError(e.errno, e.code, e.message);
    default:
      return errors.make(e.kind, { message: e.message }, e.message);
  }
}

/** Root, and `owner` (a per-user registry's user), may change images, as io.systemd.Machine. */
const requireChanger = (ctx: CallContext, owner: number) => requireRootOr(ctx.peer.uid, owner);

const pairs = (m: Map<string, string>) => [...m].map(([k, v]) => `${k}=${v}`);

async function imageJson(pool: ImagePool, img: Image, metadata: 'no' | 'yes' | 'graceful'): Promise<Record<string, unknown>> {
  const j: Record<string, unknown> = {
    name: img.name,
    path: img.path,
    type: img.type,
    class: img.class,
    readOnly: img.readOnly,
    creationTimestamp: img.crtime || undefined,
    modificationTimestamp: img.mtime || undefined,
    usage: img.usage,
    usageExclusive: img.usageExclusive,
    limit: img.limit,
    limitExclusive: img.limitExclusive,
  };
  if (metadata !== 'no' && img.name !== '.host') {
    try {
      const md = await pool.metadata(img.name);
      Object.assign(j, { hostname: md.hostname || undefined, machineId: md.machineId || undefined, machineInfo: pairs(md.machineInfo), OSRelease: pairs(md.osRelease) });
    } catch (e) {
      if (metadata === 'yes') throw e;
    }
  }
  return j; // undefined fields are left out by the server's JSON.stringify
}

export function machineImageHandlers(pool: ImagePool, owner: number): Record<string, Handler> {
  const handlers: Record<string, Handler> = {
    async List(p: { name?: string; acquireMetadata?: 'no' | 'yes' | 'graceful' }, ctx) {
      const md = p.acquireMetadata ?? 'no';
      if (p.name !== undefined) return imageJson(pool, await pool.get(p.name), md);
      if (!ctx.more) throw expectedMore();
      const all = await pool.list();
      for (const img of all.slice(0, -1)) {
        ctx.notify(await imageJson(pool, img, md));
        await ctx.drain();
      }
      return imageJson(pool, all[all.length - 1], md);
    },
    async Update(p: { name: string; newName?: string; readOnly?: boolean; limit?: number }, ctx) {
      await pool.get(p.name);
      requireChanger(ctx, owner);
      // Checked before anything is done: one bad part changes nothing.
      if (p.newName !== undefined) pool.checkName(p.newName, 'newName');
      if (p.limit !== undefined && (p.limit < 0 || !Number.isSafeInteger(p.limit))) throw invalidParameter('limit');
      if (p.limit !== undefined) await pool.setLimit(p.name, p.limit);
      if (p.readOnly !== undefined) await pool.markReadOnly(p.name, p.readOnly);
      if (p.newName !== undefined && p.newName !== p.name) await pool.rename(p.name, p.newName);
      return {};
    },
    async Clone(p: { name: string; newName: string; readOnly?: boolean }, ctx) {
      await pool.get(p.name);
      requireChanger(ctx, owner);
      await pool.clone(p.name, p.newName, p.readOnly ?? false);
      return {};
    },
    async Remove(p: { name: string }, ctx) {
      await pool.get(p.name);
      requireChanger(ctx, owner);
      await pool.remove(p.name);
      return {};
    },
    async SetPoolLimit(p: { limit: number }, ctx) {
      requireChanger(ctx, owner);
      if (p.limit < 0 || !Number.isSafeInteger(p.limit)) throw invalidParameter('limit');
      await pool.setLimit(undefined, p.limit);
      return {};
    },
    async CleanPool(p: { mode: 'all' | 'hidden' }, ctx) {
      if (!ctx.more) throw expectedMore();
      requireChanger(ctx, owner);
      const removed = await pool.clean(p.mode);
      // machined answers one reply per image removed; none removed: an empty final reply.
      for (const r of removed.slice(0, -1)) ctx.notify(r);
      const last = removed[removed.length - 1];
      return last ?? {};
    },
  };
  return mapErrors(handlers, (e) => (e instanceof VarlinkError ? e : toVarlinkError(e)));
}
