// The D-Bus front end of the image pool, as systemd-machined serves it: the Manager's image methods and
// pool properties, and one org.freedesktop.machine1.Image object per image at
// /org/freedesktop/machine1/image/<label>. It only translates between D-Bus and ImagePool calls.
import { busLabelEscape, busLabelUnescape } from '../dbus/bus-label.js';
import { BusError, type BusObject, type Caller, E, type InterfaceDef, type MethodDef, type PropertyDef, errnoErrorName } from '../dbus/bus-service.js';
import { ImageError, type ImageErrorKind } from './errors.js';
import type { Image, ImagePool } from './pool.js';

const IMAGE_PREFIX = '/org/freedesktop/machine1/image/';
const IMAGE = 'org.freedesktop.machine1.Image';
const UINT64_MAX = 0xffffffffffffffffn;

/** machined's D-Bus names of the pool's errors (System ones by their errno, as sd-bus names them). */
const ERROR_NAMES: Record<Exclude<ImageErrorKind, 'System'>, string> = {
  NoSuchImage: 'org.freedesktop.machine1.NoSuchImage',
  InvalidParameter: E.InvalidArgs,
  NotSupported: E.NotSupported,
  TooManyOperations: 'org.freedesktop.DBus.Error.LimitsExceeded',
};

export function imageBusError(e: unknown): BusError | undefined {
  if (!(e instanceof ImageError)) return undefined;
  return new BusError(e.kind === 'System' ? errnoErrorName(e.code) : ERROR_NAMES[e.kind], e.message);
}

export function imagePath(name: string): string {
  return IMAGE_PREFIX + busLabelEscape(name);
}

const u64 = (n: number | undefined) => (n === undefined ? UINT64_MAX : BigInt(n));

function cleanMode(mode: string): 'all' | 'hidden' {
  if (mode !== 'all' && mode !== 'hidden') throw new BusError(E.InvalidArgs, `Unknown mode '${mode}'.`);
  return mode;
}

const pairs = (m: Map<string, string>) => [Object.fromEntries(m)];

/** What the Manager and an Image object both do to one image, by name: [member on the Image, member on
 *  the Manager, in (after the Manager's name), out, call]. */
function imageMethods(pool: ImagePool): [string, string, string, string, (name: string, c: Caller, ...a: any[]) => Promise<unknown[] | void>][] {
  // The image is looked up first, then the caller checked, as machined does.
  const change = (f: (name: string, ...a: any[]) => Promise<unknown>) => async (name: string, c: Caller, ...a: any[]) => {
    await pool.get(name);
    await c.mayChange('images');
    await f(name, ...a);
  };
  return [
    ['Remove', 'RemoveImage', '', '', change((n) => pool.remove(n))],
    ['Rename', 'RenameImage', 'new_name:s', '', change((n, to: string) => pool.rename(n, to))],
    ['Clone', 'CloneImage', 'new_name:s read_only:b', '', change((n, to: string, ro: boolean) => pool.clone(n, to, ro))],
    ['MarkReadOnly', 'MarkImageReadOnly', 'read_only:b', '', change((n, ro: boolean) => pool.markReadOnly(n, ro))],
    ['SetLimit', 'SetImageLimit', 'size:t', '', change((n, size: bigint) => pool.setLimit(n, Number(size)))],
    ['GetHostname', 'GetImageHostname', '', 'hostname:s', async (n) => [(await pool.metadata(n)).hostname]],
    ['GetMachineID', 'GetImageMachineID', '', 'id:ay', async (n) => {
      const id = (await pool.metadata(n)).machineId;
      return [id ? Buffer.from(id, 'hex') : Buffer.alloc(0)];
    }],
    ['GetMachineInfo', 'GetImageMachineInfo', '', 'machine_info:a{ss}', async (n) => pairs((await pool.metadata(n)).machineInfo)],
    ['GetOSRelease', 'GetImageOSRelease', '', 'os_release:a{ss}', async (n) => pairs((await pool.metadata(n)).osRelease)],
  ];
}

/** The Manager's image methods and pool properties, for dbus-machine1's Manager interface. */
export function imageManagerMembers(pool: ImagePool): { methods: Record<string, MethodDef<null>>; properties: Record<string, PropertyDef<null>> } {
  const methods: Record<string, MethodDef<null>> = {
    GetImage: { in: 'name:s', out: 'image:o', call: async (_t, _c, name: string) => [imagePath((await pool.get(name)).name)] },
    ListImages: {
      in: '',
      out: 'images:a(ssbttto)',
      call: async () => [(await pool.list()).map((i) => [i.name, i.type, i.readOnly, u64(i.crtime), u64(i.mtime), u64(i.usage), imagePath(i.name)])],
    },
    SetPoolLimit: {
      in: 'size:t',
      out: '',
      call: async (_t, c, size: bigint) => {
        await c.mayChange('images');
        await pool.setLimit(undefined, Number(size));
      },
    },
    CleanPool: {
      in: 'mode:s',
      out: 'images:a(st)',
      call: async (_t, c, mode: string) => {
        const m = cleanMode(mode);
        await c.mayChange('images');
        return [(await pool.clean(m)).map((r) => [r.name, u64(r.usageExclusive)])];
      },
    },
  };
  for (const [, member, args, out, call] of imageMethods(pool)) {
    methods[member] = { in: `name:s${args ? ` ${args}` : ''}`, out, call: (_t, c, name: string, ...a) => call(name, c, ...a) };
  }
  return {
    methods,
    properties: {
      PoolPath: { type: 's', emits: 'false', get: () => pool.path },
      // Known on btrfs quotas only, as machined's; unknown (UINT64_MAX) elsewhere.
      PoolUsage: { type: 't', emits: 'false', get: () => UINT64_MAX },
      PoolLimit: { type: 't', emits: 'false', get: () => UINT64_MAX },
    },
  };
}

function imageInterface(pool: ImagePool): InterfaceDef<Image> {
  const methods: Record<string, MethodDef<Image>> = {};
  for (const [member, , args, out, call] of imageMethods(pool)) methods[member] = { in: args, out, call: (img, c, ...a) => call(img.name, c, ...a) };
  return {
    name: IMAGE,
    methods,
    properties: {
      Name: { type: 's', emits: 'false', get: (i) => i.name },
      Path: { type: 's', emits: 'false', get: (i) => i.path },
      Type: { type: 's', emits: 'false', get: (i) => i.type },
      ReadOnly: { type: 'b', emits: 'false', get: (i) => i.readOnly },
      CreationTimestamp: { type: 't', emits: 'false', get: (i) => u64(i.crtime) },
      ModificationTimestamp: { type: 't', emits: 'false', get: (i) => u64(i.mtime) },
      Usage: { type: 't', emits: 'false', get: (i) => u64(i.usage) },
      Limit: { type: 't', emits: 'false', get: (i) => u64(i.limit) },
      UsageExclusive: { type: 't', emits: 'false', get: (i) => u64(i.usageExclusive) },
      LimitExclusive: { type: 't', emits: 'false', get: (i) => u64(i.limitExclusive) },
    },
    signals: {},
  };
}

/** The image objects, for dbus-machine1's object tree. */
export function imageObjects(pool: ImagePool) {
  const iface = imageInterface(pool);
  return {
    async find(path: string): Promise<BusObject | undefined> {
      if (!path.startsWith(IMAGE_PREFIX)) return undefined;
      const name = busLabelUnescape(path.slice(IMAGE_PREFIX.length));
      if (name === undefined) return undefined;
      const img = await pool.get(name).catch(() => undefined);
      return img && { target: img, interfaces: [iface] };
    },
    paths: () => pool.cachedNames().map(imagePath),
  };
}
