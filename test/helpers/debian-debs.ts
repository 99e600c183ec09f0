// Debian packages that tests install into a throwaway root or unpack, never onto this machine: fetched
// once with apt-get download into build/debs of the checkout, and taken from there afterwards.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './daemon.js';
import { run } from './run.js';

export const DEBS_DIR = join(ROOT, 'build/debs');

/** The path of NAME's .deb (the candidate version of this machine's apt sources). */
export async function debianDeb(name: string): Promise<string> {
  mkdirSync(DEBS_DIR, { recursive: true });
  const find = () => readdirSync(DEBS_DIR).find((f) => f.startsWith(`${name}_`) && f.endsWith('.deb'));
  let f = find();
  if (!f) {
    let r = await run('apt-get', ['download', name], { cwd: DEBS_DIR, timeoutMs: 120_000 });
    if (r.code !== 0) {
      // Lists too old for the archive (a machine set up long ago): refresh them once.
      await run('apt-get', ['update', '-qq'], { timeoutMs: 300_000 });
      r = await run('apt-get', ['download', name], { cwd: DEBS_DIR, timeoutMs: 120_000 });
    }
    f = find();
    if (r.code !== 0 || !f) throw new Error(`apt-get download ${name} failed: ${r.stderr.trim()}`);
  }
  return join(DEBS_DIR, f);
}

/** Unpacks a .deb's files into dir (dpkg-deb -x: no maintainer scripts, nothing installed). */
export async function unpackDeb(deb: string, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const r = await run('dpkg-deb', ['-x', deb, dir]);
  if (r.code !== 0 || !existsSync(dir)) throw new Error(`dpkg-deb -x ${deb}: ${r.stderr.trim()}`);
}
