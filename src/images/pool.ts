// The image pool: the OS images in one directory (machined's /var/lib/machines), as machined's
// discover-image.c sees them: directories (btrfs subvolumes where the file system is btrfs) and raw disk
// images (NAME.raw), plus the host's own image `.host`. Names starting with '.' are hidden: not listed,
// except to CleanPool's hidden mode. Changes are made so that nothing is ever half done: a clone is made
// under a hidden temporary name and renamed into place only when whole (a failed or interrupted clone
// leaves no image, and its temporary tree is removed); a removal first renames the image away.
// Copies and removals of trees run in child processes (cp, rm), so the daemon goes on answering.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RootReadError, RootReader } from '../registry/linux/root-reader.js';
import { isValidMachineName } from '../registry/names.js';
import { ImageError, fromNodeError, noSuchImage, systemError } from './errors.js';
import { readImageMetadata, type ImageMetadata } from './image-files.js';
import { BTRFS_SUPER_MAGIC, fsType, isImmutable, renameNoReplace, setImmutable } from './linux.js';

const run = promisify(execFile);

export type ImageType = 'directory' | 'subvolume' | 'raw';

export interface Image {
  readonly name: string;
  readonly path: string;
  readonly type: ImageType;
  /** machined 262's image class: everything in the pool is a machine image. */
  readonly class: 'machine';
  readonly readOnly: boolean;
  /** µs since the epoch; 0 when unknown. */
  readonly crtime: number;
  readonly mtime: number;
  /** Bytes; undefined when unknown (machined: UINT64_MAX), as for directories outside btrfs quotas. */
  readonly usage?: number;
  readonly usageExclusive?: number;
  readonly limit?: number;
  readonly limitExclusive?: number;
}

/** At most this many clones and removals at once, as machined's operation limit. */
const MAX_OPERATIONS = 64;
const HOST = '.host';

export interface PoolOptions {
  path: string;
  /** Whether a running machine uses the image at this path (its root directory is in it). */
  inUse(path: string): boolean;
  log: { warn(o: object, msg: string): void; info(o: object, msg: string): void };
}

/** A host name, hidden ones ('.' first) too; never one of our temporary names ('.#'). */
const isImageName = (name: string) => !name.startsWith('.#') && isValidMachineName(name.startsWith('.') ? name.slice(1) : name);

const µs = (ms: number) => Math.round(ms * 1000);

/** Text of a failed cp or rm as the errno it names (ENOSPC for "No space left on device"). */
function errnoOfMessage(text: string): string {
  const known: [RegExp, string][] = [
    [/No space left on device/, 'ENOSPC'],
    [/Disk quota exceeded/, 'EDQUOT'],
    [/Read-only file system/, 'EROFS'],
    [/Permission denied/, 'EACCES'],
    [/Operation not permitted/, 'EPERM'],
    [/No such file or directory/, 'ENOENT'],
    [/Input\/output error/, 'EIO'],
  ];
  return known.find(([re]) => re.test(text))?.[1] ?? 'EIO';
}

export class ImagePool {
  private operations = 0;
  /** Names being made (clones, renames), so that two at once cannot both take one. */
  private readonly reserved = new Set<string>();
  /** What the last listing found: the D-Bus object tree lists image objects from it. */
  private known: string[] = [HOST];

  /** Image metadata is read through it (2 s at most): an image on a file system that stops answering
   *  costs a worker thread and a timeout, never Node's thread pool. */
  private readonly roots = new RootReader();

  constructor(private readonly opts: PoolOptions) {}

  get path(): string {
    return this.opts.path;
  }

  /** The names the last listing found (.host first). */
  cachedNames(): readonly string[] {
    return this.known;
  }

  private hostImage(): Image {
    return { name: HOST, path: '/', type: 'directory', class: 'machine', readOnly: true, crtime: 0, mtime: 0 };
  }

  /** An image name as machined allows it: a valid host name, which no path component can be. */
  checkName(name: unknown, field = 'name'): string {
    if (typeof name !== 'string' || !isImageName(name)) throw new ImageError('InvalidParameter', `Invalid image name '${String(name).slice(0, 80)}'`, field);
    return name;
  }

  /** Every image, `.host` first, then by name. Hidden ones too if asked. */
  async list(hidden = false): Promise<Image[]> {
    const out: Image[] = [this.hostImage()];
    let entries: string[] = [];
    try {
      entries = await fs.readdir(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fromNodeError(`Cannot read the image pool ${this.path}`, e);
    }
    for (const entry of entries.sort()) {
      if (entry.startsWith('.#')) continue; // our temporary names, never images
      const name = entry.endsWith('.raw') ? entry.slice(0, -4) : entry;
      if (!isImageName(name) || (!hidden && name.startsWith('.'))) continue;
      const img = await this.inspect(name, join(this.path, entry)).catch(() => undefined);
      if (img) out.push(img);
    }
    if (!hidden) this.known = out.map((i) => i.name);
    return out;
  }

  /** The image of that name, or NoSuchImage. */
  async get(name: string): Promise<Image> {
    if (name === HOST) return this.hostImage();
    this.checkName(name);
    for (const path of [join(this.path, name), join(this.path, `${name}.raw`)]) {
      const img = await this.inspect(name, path).catch(() => undefined);
      if (img) return img;
    }
    throw noSuchImage(name);
  }

  private async inspect(name: string, path: string): Promise<Image | undefined> {
    const st = await fs.lstat(path, { bigint: false });
    const times = { crtime: µs(st.birthtimeMs || 0), mtime: µs(st.mtimeMs) };
    if (st.isDirectory()) {
      const btrfs = fsType(path) === BTRFS_SUPER_MAGIC;
      const subvolume = btrfs && st.ino === 256;
      const readOnly = subvolume ? await this.subvolumeReadOnly(path) : isImmutable(path) || (await this.onReadOnlyFs(path));
      return { name, path, type: subvolume ? 'subvolume' : 'directory', class: 'machine', readOnly, ...times };
    }
    if (st.isFile() && path.endsWith('.raw')) {
      const usage = st.blocks * 512;
      const readOnly = (st.mode & 0o222) === 0 || isImmutable(path) || (await this.onReadOnlyFs(path));
      return { name, path, type: 'raw', class: 'machine', readOnly, ...times, usage, usageExclusive: usage, limit: st.size, limitExclusive: st.size };
    }
    return undefined;
  }

  private async onReadOnlyFs(path: string): Promise<boolean> {
    return fs.access(path, fsConstants.W_OK).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'EROFS');
  }

  private async subvolumeReadOnly(path: string): Promise<boolean> {
    const r = await run('btrfs', ['property', 'get', '-ts', path, 'ro']).catch(() => undefined);
    return r?.stdout.trim() === 'ro=true';
  }

  /** A running machine's root is in the image: it cannot be renamed, removed or marked. */
  private notInUse(img: Image): void {
    if (this.opts.inUse(img.path)) throw systemError('EBUSY', `Image '${img.name}' is in use by a running machine`);
  }

  private changeable(img: Image): void {
    if (img.name === HOST) throw systemError('EROFS', 'The host image cannot be changed');
  }

  private async operation<T>(f: () => Promise<T>): Promise<T> {
    if (this.operations >= MAX_OPERATIONS) throw new ImageError('TooManyOperations', 'Too many ongoing operations');
    this.operations++;
    try {
      return await f();
    } finally {
      this.operations--;
    }
  }

  private async reserve<T>(name: string, f: () => Promise<T>): Promise<T> {
    if (this.reserved.has(name)) throw systemError('EBUSY', `An image '${name}' is being made`);
    this.reserved.add(name);
    try {
      return await f();
    } finally {
      this.reserved.delete(name);
    }
  }

  /** Whether an image of that name exists (callers hold the name's reservation). */
  private async taken(name: string): Promise<boolean> {
    return this.get(name).then(() => true, () => false);
  }

  private fileName(img: Image, name: string): string {
    return join(this.path, img.type === 'raw' ? `${name}.raw` : name);
  }

  /** A copy of the image under a new name (reflinks where the file system has them), read-only if asked. */
  async clone(name: string, newName: string, readOnly: boolean): Promise<void> {
    const img = await this.get(name);
    this.checkName(newName, 'newName');
    if (img.name === HOST) throw new ImageError('NotSupported', 'Cloning the host image is not supported');
    await this.operation(() =>
      this.reserve(newName, async () => {
        if (await this.taken(newName)) throw systemError('EEXIST', `An image '${newName}' exists already`);
        const final = this.fileName(img, newName);
        const temp = join(this.path, `.#clone-${newName}-${randomBytes(4).toString('hex')}${img.type === 'raw' ? '.raw' : ''}`);
        try {
          if (img.type === 'subvolume') await run('btrfs', ['subvolume', 'snapshot', img.path, temp]);
          else await run('cp', ['-a', '--reflink=auto', '--no-target-directory', img.path, temp], { maxBuffer: 1 << 20 });
          // A clone of a read-only image is writable unless asked, as machined's.
          if (img.type === 'directory') setImmutable(temp, false);
          if (img.type === 'raw') await fs.chmod(temp, (await fs.stat(img.path)).mode & 0o7777 | (readOnly ? 0 : 0o200));
          if (readOnly) await this.setReadOnly({ ...img, path: temp }, true);
          const err = renameNoReplace(temp, final);
          if (err) throw systemError(err === 17 ? 'EEXIST' : 'EIO', `Cannot rename the clone into place as ${final}`);
        } catch (e) {
          await this.removeTree(temp);
          const text = (e as { stderr?: string }).stderr;
          if (text !== undefined) throw systemError(errnoOfMessage(text), `Cannot clone image '${name}': ${text.trim().split('\n').pop()}`);
          throw fromNodeError(`Cannot clone image '${name}'`, e);
        }
        this.opts.log.info({ image: name, clone: newName }, 'image cloned');
      }),
    );
  }

  async rename(name: string, newName: string): Promise<void> {
    const img = await this.get(name);
    this.changeable(img);
    this.checkName(newName, 'newName');
    this.notInUse(img);
    await this.reserve(newName, async () => {
      if (await this.taken(newName)) throw systemError('EEXIST', `An image '${newName}' exists already`);
      // An immutable directory cannot be renamed: the mark is taken off and put back.
      const immutable = img.type === 'directory' && isImmutable(img.path);
      if (immutable) setImmutable(img.path, false);
      const to = this.fileName(img, newName);
      const err = renameNoReplace(img.path, to);
      if (immutable) setImmutable(err ? img.path : to, true);
      if (err) throw systemError(err === 17 ? 'EEXIST' : 'EIO', `Cannot rename image '${name}' to '${newName}' (errno ${err})`);
    });
  }

  async remove(name: string): Promise<void> {
    const img = await this.get(name);
    this.changeable(img);
    this.notInUse(img);
    await this.operation(async () => {
      if (img.type === 'directory') setImmutable(img.path, false);
      // Gone from the pool at once; the tree is then removed at leisure.
      const away = join(this.path, `.#remove-${name}-${randomBytes(4).toString('hex')}`);
      const err = renameNoReplace(img.path, away);
      if (err) throw systemError('EIO', `Cannot remove image '${name}' (errno ${err})`);
      if (img.type === 'subvolume') await run('btrfs', ['subvolume', 'delete', away]).catch(() => undefined);
      await this.removeTree(away);
    });
  }

  private async removeTree(path: string): Promise<void> {
    await run('rm', ['-rf', '--one-file-system', '--', path]).catch((e: { stderr?: string }) => {
      this.opts.log.warn({ path, error: e.stderr?.trim() }, 'cannot remove a temporary image tree');
    });
  }

  async markReadOnly(name: string, readOnly: boolean): Promise<void> {
    const img = await this.get(name);
    this.changeable(img);
    await this.setReadOnly(img, readOnly);
  }

  private async setReadOnly(img: Image, readOnly: boolean): Promise<void> {
    if (img.type === 'subvolume') {
      await run('btrfs', ['property', 'set', '-ts', img.path, 'ro', String(readOnly)]).catch((e: { stderr?: string }) => {
        throw systemError(errnoOfMessage(e.stderr ?? ''), `Cannot mark image '${img.name}': ${e.stderr?.trim()}`);
      });
    } else if (img.type === 'directory') {
      const err = setImmutable(img.path, readOnly);
      if (err) throw systemError(err === 25 || err === 95 ? 'EOPNOTSUPP' : 'EPERM', `Cannot mark image '${img.name}' ${readOnly ? 'read-only' : 'writable'}: the file system has no immutable flag (errno ${err})`);
    } else {
      const mode = (await fs.stat(img.path)).mode & 0o7777;
      await fs.chmod(img.path, readOnly ? mode & ~0o222 : mode | 0o200).catch((e) => {
        throw fromNodeError(`Cannot mark image '${img.name}'`, e);
      });
    }
  }

  /** Quotas need btrfs (machined: "Quota is only supported on btrfs."). */
  async setLimit(name: string | undefined, limit: number): Promise<void> {
    const img = name === undefined ? undefined : await this.get(name);
    if (img) this.changeable(img);
    const path = img?.path ?? this.path;
    if (fsType(path) !== BTRFS_SUPER_MAGIC) throw new ImageError('NotSupported', 'Quota is only supported on btrfs.');
    await run('btrfs', ['qgroup', 'limit', limit >= Number.MAX_SAFE_INTEGER ? 'none' : String(limit), path]).catch((e: { stderr?: string }) => {
      throw systemError(errnoOfMessage(e.stderr ?? ''), `Cannot set the quota of ${path}: ${e.stderr?.trim()}`);
    });
  }

  /** Removes the images not in use and not read-only (only hidden ones in 'hidden' mode); what went. */
  async clean(mode: 'all' | 'hidden'): Promise<{ name: string; usageExclusive?: number }[]> {
    const removed: { name: string; usageExclusive?: number }[] = [];
    for (const img of await this.list(true)) {
      if (img.name === HOST || img.readOnly || this.opts.inUse(img.path)) continue;
      if (mode === 'hidden' && !img.name.startsWith('.')) continue;
      await this.remove(img.name).then(() => removed.push({ name: img.name, usageExclusive: img.usageExclusive }), () => undefined);
    }
    return removed;
  }

  async metadata(name: string): Promise<ImageMetadata> {
    const img = await this.get(name);
    if (img.type === 'raw') throw new ImageError('NotSupported', `Reading the metadata of raw image '${name}' is not supported`);
    return readImageMetadata(this.roots, img.path).catch((e) => {
      throw e instanceof RootReadError ? systemError('ETIMEDOUT', `Cannot read the metadata of image '${name}': ${e.message}`) : e;
    });
  }

  /** Ends the metadata reader's warm workers. */
  close(): Promise<void> {
    return this.roots.close();
  }
}
