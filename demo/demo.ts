// `npm run demo`: the main job end to end. Starts mymachinesd on private directories, makes a real
// container (its own network and user namespaces, a veth pair with IPv4 and IPv6), registers it, shows
// it, resolves it, then removes everything it made. Needs root.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeContainer, removeAllContainers } from '../test/helpers/container.js';
import { CTL, DAEMON } from '../test/helpers/daemon.js';
import { run, waitFor } from '../test/helpers/run.js';
import { showResolution } from './resolve-demo.js';
import { say, sh, type DemoContext } from './transcript.js';
import { showUserRecords } from './userdb-demo.js';

const NAME = 'web1';
const IPV4 = { host: '10.77.200.1', inside: '10.77.200.2' };
const IPV6 = { host: 'fd77:200::1', inside: 'fd77:200::2' };

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo makes namespaces and veth pairs: run it as root');
  const dir = mkdtempSync(join(tmpdir(), 'mymachines-demo-'));
  const runtimeDir = join(dir, 'run');
  const stateDir = join(dir, 'machines');
  const userdbDir = join(dir, 'userdb');
  const socket = join(runtimeDir, 'io.systemd.Machine');
  say(`Starting mymachinesd with private directories under ${dir}`);
  const daemon = spawn(DAEMON, ['--runtime-dir', runtimeDir, '--state-dir', stateDir, '--userdb-dir', userdbDir, '--resolve-hook-dir', '', '--machine-dir', '', '--bus', 'none', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const stopped = new Promise((r) => daemon.once('exit', r));
  try {
    await waitFor('the daemon socket', () => (existsSync(socket) ? true : undefined), 10_000);
    say(`Making container ${NAME}: network and user namespaces (UIDs 0-65535 -> 100000-165535), veth pair ${IPV4.host} <-> ${IPV4.inside}, ${IPV6.host} <-> ${IPV6.inside}`);
    const c = await makeContainer({ idMap: [{ base: 0, shift: 100000, range: 65536 }], ipv4: IPV4, ipv6: IPV6 });
    const ctl = (args: string[]) => sh(CTL, ['--socket', socket, ...args], `mymachinesctl ${args.join(' ')}`);
    say('Register it, as a container manager would (over Varlink; machinectl-compatible tools use D-Bus)');
    await ctl(['register', NAME, '--leader', String(c.pid), '--service', 'demo', '--netif', String(c.hostIfIndex)]);
    await ctl(['list']);
    await ctl(['status', NAME]);
    const ctx: DemoContext = { name: NAME, pid: c.pid, ipv4: IPV4.inside, ipv6: IPV6.inside, socket, stateDir, userdbDir, sh, say };
    await showResolution(ctx);
    await showUserRecords(ctx);
    say('Its leader exits: the machine goes with it');
    await c.remove();
    await waitFor('the machine to go', async () => (run(CTL, ['--socket', socket, 'list', '--json']).then((r) => (r.stdout.includes(`"${NAME}"`) ? undefined : true))), 3000);
    await ctl(['list']);
  } finally {
    await removeAllContainers();
    daemon.kill('SIGTERM');
    await stopped;
    rmSync(dir, { recursive: true, force: true });
    say('Removed everything the demo made.');
  }
}

main().catch((e) => {
  process.stderr.write(`demo: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
