// Many cheap machine leaders for tests that register thousands of machines: one python3 process forks
// `sleep` children and prints their PIDs; stop() makes it kill and reap them all.
import { spawn } from 'node:child_process';

const SCRIPT = `
import os, signal, sys
pids = []
for _ in range(int(sys.argv[1])):
    p = os.fork()
    if p == 0:
        os.execv('/bin/sleep', ['sleep', '10000'])
    pids.append(p)
print('\\n'.join(map(str, pids)), flush=True)
sys.stdin.read()
for p in pids:
    os.kill(p, signal.SIGKILL)
for p in pids:
    os.waitpid(p, 0)
`;

export async function sleepingLeaders(n: number): Promise<{ pids: number[]; stop(): Promise<void> }> {
  const p = spawn('python3', ['-c', SCRIPT, String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  let out = '';
  for await (const chunk of p.stdout!) {
    out += chunk;
    if (out.split('\n').length > n) break;
  }
  return {
    pids: out.trim().split('\n').map(Number),
    async stop() {
      p.stdin!.end();
      await exited;
    },
  };
}
