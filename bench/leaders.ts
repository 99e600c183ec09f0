// Cheap machine leaders for benchmarks (bench/leaders.c): one process forking many children that sleep.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../test/helpers/daemon.js';
import { must } from '../test/helpers/run.js';

/** Starts n sleeping leaders (compiled into dir); stop() ends them all. */
export async function leaders(n: number, dir: string): Promise<{ pids: number[]; stop(): void }> {
  const bin = join(dir, 'leaders');
  await must('gcc', ['-O2', '-o', bin, join(ROOT, 'bench/leaders.c')]);
  const p = spawn(bin, [String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  for await (const chunk of p.stdout!) {
    out += chunk;
    if (out.split('\n').length > n) break;
  }
  return { pids: out.trim().split('\n').map(Number), stop: () => p.stdin!.end() };
}
