// A container's os-release, read from the leader's root directory through the RootReader (bounded in
// time and size; symlinks resolved within that root, so a container cannot make us read a host file).
import { RootReader } from './root-reader.js';

const MAX_BYTES = 64 * 1024;

/** The os-release pairs of the process's root, in file order; undefined when it has none. Throws a
 *  RootReadError when the root cannot be read (in time). */
export async function readOsRelease(roots: RootReader, pid: number): Promise<Map<string, string> | undefined> {
  const file = await roots.read(pid, ['etc/os-release', 'usr/lib/os-release'], MAX_BYTES);
  return file && parseOsRelease(file.text);
}

/** os-release(5): KEY=value lines, values optionally quoted with shell-like escapes. */
export function parseOsRelease(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2];
    const q = v[0];
    if ((q === '"' || q === "'") && v.endsWith(q) && v.length >= 2) {
      v = v.slice(1, -1);
      if (q === '"') v = v.replace(/\\([\\"$`])/g, '$1');
    }
    out.set(m[1], v);
  }
  return out;
}
