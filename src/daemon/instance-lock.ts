// One daemon per runtime directory and per state directory: an exclusive flock(2) on the directory itself,
// taken before any socket or state file is touched there and held for the daemon's life (the kernel drops
// it when the process ends, however it ends). Locking the directory rather than a file in it creates
// nothing, and holds no file open for writing (a state directory can still be remounted read-only). A
// second daemon learns the holder's PID from /proc/locks, so that it can say who is in the way.
import { closeSync, constants, openSync, readFileSync, statSync } from 'node:fs';
import { errnoName } from '../errno.js';
import * as c from '../registry/linux/libc.js';

/** Locks `dir` for this process; throws an error naming the daemon that holds it. */
export function lockDirectory(dir: string, what: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  if (c.flock(fd, c.LOCK_EX | c.LOCK_NB) === 0) return; // held until we exit: the descriptor stays open
  const err = c.errno();
  closeSync(fd);
  if (err !== c.EWOULDBLOCK) throw new Error(`cannot lock the ${what} ${dir}: ${errnoName(err)}`);
  const holder = lockHolder(dir);
  throw new Error(`another mymachinesd${holder ? ` (PID ${holder})` : ''} is already running on the ${what} ${dir}`);
}

/** The PID of the process that holds a flock on `path`, from /proc/locks ("1: FLOCK ADVISORY WRITE PID
 *  MAJ:MIN:INODE 0 EOF", major and minor in hex); 0 when it cannot be told. */
function lockHolder(path: string): number {
  try {
    const st = statSync(path);
    const major = (st.dev >>> 8) & 0xfff;
    const minor = (st.dev & 0xff) | ((st.dev >>> 12) & 0xfff00);
    for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[1] !== 'FLOCK' || f[3] !== 'WRITE') continue;
      const [maj, min, ino] = (f[5] ?? '').split(':');
      if (parseInt(maj, 16) === major && parseInt(min, 16) === minor && Number(ino) === st.ino) return Number(f[4]);
    }
  } catch {
    /* not told */
  }
  return 0;
}
