// Shows commands and what they print, as a person would see them typed in a terminal.
import { run } from '../test/helpers/run.js';

export interface DemoContext {
  /** The demo container's machine name, leader PID and addresses inside it. */
  name: string;
  pid: number;
  ipv4: string;
  ipv6: string;
  /** The daemon's socket, state directory and userdb directory. */
  socket: string;
  stateDir: string;
  userdbDir: string;
  /** Runs and shows a command; `shown` is how it is printed when it differs from what runs. */
  sh(cmd: string, args: string[], shown?: string, env?: NodeJS.ProcessEnv): Promise<string>;
  say(text: string): void;
}

export function say(text: string): void {
  process.stdout.write(`\n# ${text}\n`);
}

export async function sh(cmd: string, args: string[], shown?: string, env?: NodeJS.ProcessEnv): Promise<string> {
  process.stdout.write(`$ ${shown ?? [cmd, ...args].join(' ')}\n`);
  const r = await run(cmd, args, { env: env ?? process.env });
  process.stdout.write(r.stdout + r.stderr);
  if (r.code !== 0) throw new Error(`${shown ?? cmd} failed with exit code ${r.code ?? r.signal}`);
  return r.stdout;
}
