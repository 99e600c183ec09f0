// Many cheap leader processes for tests and benchmarks that register many machines
// (test/helpers/sleepers.c: spawning thousands of `sleep` costs seconds); stop() ends them all, and so does the end of the test process
// (they go when their parent's standard input closes).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './daemon.js';

export async function sleepingLeaders(n: number): Promise<{ pids: number[]; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'mymachines-sleepers-'));
  const program = join(dir, 'sleepers');
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', join(ROOT, 'test/helpers/sleepers.c'), '-o', program]);
  const p = spawn(program, [String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((r) => p.once('exit', r));
  let out = '';
  for await (const chunk of p.stdout!) {
    out += chunk;
    if (out.split('\n').length > n) break;
  }
  rmSync(dir, { recursive: true, force: true });
  return {
    pids: out.trim().split('\n').map(Number),
    async stop() {
      p.stdin!.end();
      await exited;
    },
  };
}

const sleeping = new Set<ChildProcess>();

/** One leader of the test's own (a sleeping process, for a VM or a machine that needs no namespaces);
 *  endSleepingLeaders() ends those still running, by their PIDs. */
export function sleepingLeader(): ChildProcess {
  const p = spawn('sleep', ['3600'], { stdio: 'ignore' });
  sleeping.add(p);
  p.once('exit', () => sleeping.delete(p));
  return p;
}

/** The PID of a new sleepingLeader(). */
export const sleepingLeaderPid = (): number => sleepingLeader().pid!;

export function endSleepingLeaders(): void {
  for (const p of sleeping) p.kill('SIGKILL');
  sleeping.clear();
}
