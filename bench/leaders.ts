// Cheap machine leaders for benchmarks (bench/leaders.c): one process forking many children that sleep.
import { spawn } from 'node:child_process';
import { compile } from './compile.js';

/** Starts n sleeping leaders (compiled into dir); stop() ends them all. */
export async function leaders(n: number, dir: string): Promise<{ pids: number[]; stop(): void }> {
  const p = spawn(await compile('leaders', dir), [String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  for await (const chunk of p.stdout!) {
    out += chunk;
    if (out.split('\n').length > n) break;
  }
  return { pids: out.trim().split('\n').map(Number), stop: () => p.stdin!.end() };
}
