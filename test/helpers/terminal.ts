// machinectl in a real terminal, as people use it: each session gets a tmux server of its own (a fresh
// socket in the test's directory, which the test removes), and the server is waited for after kill-server. One shared name raced: kill-server returns
// before the server has gone, and the next session's new-session met the dying server ("server exited
// unexpectedly").
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bus } from './dbus.js';
import { alive, must, run, shellQuote as quote, waitFor } from './run.js';

export interface Terminal {
  screen(): Promise<string>;
  keys(...keys: string[]): Promise<string>;
}

let sessions = 0;

/** Runs `machinectl ARGS` on a terminal of 120x30 in a private mount namespace that shows `stateDir` as
 *  /run/systemd/machines, talking to `bus`; `body` reads the screen and types. */
export async function withMachinectlTerminal<T>(bus: Bus, stateDir: string, dir: string, args: string[], body: (t: Terminal) => Promise<T>): Promise<T> {
  const server = `mm-${process.pid}-${++sessions}`;
  const script = join(dir, `${server}.sh`);
  writeFileSync(script, [
    'mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd',
    `mkdir -p /run/systemd/system /run/systemd/machines && mount --bind ${quote(stateDir)} /run/systemd/machines`,
    `exec machinectl ${args.map(quote).join(' ')}`,
  ].join('\n'));
  const socket = join(dir, `${server}.tmux`);
  const tmux = (...a: string[]) => must('tmux', ['-S', socket, '-f', '/dev/null', ...a]);
  await tmux('new-session', '-d', '-s', 'test', '-x', '120', '-y', '30', '-e', `DBUS_SYSTEM_BUS_ADDRESS=${bus.address}`, `unshare --mount --propagation private -- sh ${script}; sleep 30`);
  let pid = 0;
  try {
    pid = Number((await tmux('display-message', '-p', '#{pid}')).trim());
    return await body({ screen: () => tmux('capture-pane', '-p', '-t', 'test'), keys: (...k) => tmux('send-keys', '-t', 'test', ...k) });
  } finally {
    await run('tmux', ['-S', socket, 'kill-server']);
    if (pid > 0) await waitFor(`tmux server ${pid} to exit`, () => (alive(pid) ? undefined : true), 10_000);
  }
}
