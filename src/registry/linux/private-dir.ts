// Directories that must be the daemon's alone: its state directory and its runtime directory.
import { statSync } from 'node:fs';
import { systemError } from '../errors.js';

/** Refuses a directory that another user could plant or block files in: owned by someone else, or
 *  writable by group or others. */
export function checkPrivateDirectory(dir: string, what: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    throw systemError(`Cannot use the ${what} ${dir}`, e);
  }
  const uid = process.geteuid?.() ?? 0;
  if (st.uid !== uid) {
    throw new Error(`the ${what} ${dir} is owned by UID ${st.uid}, not by the daemon's (${uid}): another user could plant or block files in it`);
  }
  if (st.mode & 0o022) {
    throw new Error(`the ${what} ${dir} is writable by ${st.mode & 0o002 ? 'everyone' : 'its group'} (mode ${(st.mode & 0o7777).toString(8)}): another user could plant or block files in it`);
  }
}
