// userdb benchmark: getpwnam_r of a vu- name in one process: through our NSS module alone (`passwd:
// mymachines`: it answers from the daemon's table) against a name in /etc/passwd through nss_files alone,
// the baseline, in the same run; through our module after files (`files mymachines`, a host's usual
// order); and through Debian's nss-systemd, asking our daemon's userdb socket and, as the yardstick,
// the real systemd-machined (with a private system bus, in a private mount namespace) about the same
// container. Each lookup is timed on its own by bench/userdb-lookup.c; the sources take turns over
// several rounds so that other load on the host hits them alike, and the table gives the median of the
// rounds' medians and of their p99s.
// Goals: our module at or below nss_files' median (issue 9); nss-systemd asking us no slower than asking
// machined.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeContainer, removeAllContainers } from '../test/helpers/container.js';
import { startDaemon } from '../test/helpers/daemon.js';
import { run, type RunResult } from '../test/helpers/run.js';
import { compile } from './compile.js';
import { ROOT } from '../test/helpers/daemon.js';
import { makeUserdbEnv } from '../test/helpers/userdb-env.js';
import { median } from './stats.js';

const ROUNDS = Number(process.env.USERDB_BENCH_ROUNDS ?? 5);
const COUNT = Number(process.env.USERDB_BENCH_COUNT ?? 4000);
const MACHINED = '/lib/systemd/systemd-machined';
const NAME = 'vu-bench1-1000';

// Runs "$@" where nss-systemd finds only the real machined: a tmpfs over /run/systemd and /run/dbus, a
// private system bus, a state file for the container ($1 is its leader), `passwd: files systemd`.
const WITH_MACHINED = `set -e
leader=$1; nss=$2; shift 2
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/dbus /run/systemd/machines
mount -t tmpfs tmpfs /run/dbus
printf 'NAME=bench1\\nSCOPE=bench1.scope\\nLEADER=%s\\nCLASS=container\\n' "$leader" > /run/systemd/machines/bench1
bus=$(dbus-daemon --system --fork --nopidfile --print-pid)
${MACHINED} >/dev/null 2>&1 &
machined=$!
for i in $(seq 100); do [ -S /run/systemd/userdb/io.systemd.Machine ] && break; sleep 0.05; done
mount --bind "$nss" /etc/nsswitch.conf
status=0
"$@" || status=$?
kill "$machined" "$bus"
exit $status
`;

interface Source {
  what: string;
  name: string;
  goalMedianUs?: number;
  lookups(program: string): Promise<RunResult>;
}

interface Row {
  what: string;
  name: string;
  medianUs: number;
  p99Us: number;
  goalMedianUs?: number;
}

const d = await startDaemon({ args: ['--log-level', 'info'] });
const env = makeUserdbEnv({ socket: d.socket, userdbSocket: join(d.userdbDir, 'io.systemd.Machine') });
// The lookup program and the nsswitch.conf files live here, removed at the end.
const work = mkdtempSync(join(tmpdir(), 'mymachines-bench-userdb-'));
try {
  const program = await compile('userdb-lookup', work);
  const c = await makeContainer({ idMap: [{ base: 0, shift: 100000, range: 65536 }], hostNetwork: true });
  await d.ctl(['register', 'bench1', '--leader', String(c.pid)]);
  const nsswitch = (source: string) => {
    const path = join(work, `nsswitch.${source}`);
    writeFileSync(path, `passwd: files ${source}\ngroup: files ${source}\n`);
    return path;
  };
  const withMachined = (source: string, program: string, env?: NodeJS.ProcessEnv) =>
    run('unshare', ['-m', '--propagation', 'private', '--', 'sh', '-c', WITH_MACHINED, 'sh', String(c.pid), nsswitch(source), program, NAME, String(COUNT)], { env });

  const sources: Source[] = [
    { what: 'our module (passwd: mymachines)', name: NAME, lookups: (p) => env.run('mymachines-only', [p, NAME, String(COUNT)]) },
    { what: 'nss_files, /etc/passwd', name: 'root', lookups: (p) => env.run('files', [p, 'root', String(COUNT)]) },
    { what: 'our module after files', name: NAME, lookups: (p) => env.run('mymachines', [p, NAME, String(COUNT)]) },
    { what: 'nss-systemd -> mymachinesd', name: NAME, goalMedianUs: 200, lookups: (p) => env.run('systemd', [p, NAME, String(COUNT)]) },
  ];
  if (existsSync(MACHINED)) sources.push({ what: 'nss-systemd -> systemd-machined', name: NAME, lookups: (p) => withMachined('systemd', p) });

  const load = loadavg()[0];
  const rounds = new Map<Source, { median: number[]; p99: number[] }>(sources.map((s) => [s, { median: [], p99: [] }]));
  for (let i = 0; i < ROUNDS; i++) {
    for (const s of sources) {
      const r = await s.lookups(program);
      const [ok, failed, med, p99] = r.stdout.trim().split(' ');
      if (r.code !== 0 || ok !== 'ok' || failed !== '0') throw new Error(`${s.what}: ${r.stdout} ${r.stderr}`);
      rounds.get(s)!.median.push(Number(med) / 1000);
      rounds.get(s)!.p99.push(Number(p99) / 1000);
    }
  }
  const rows: Row[] = sources.map((s) => ({
    what: s.what, name: s.name, medianUs: median(rounds.get(s)!.median), p99Us: median(rounds.get(s)!.p99), goalMedianUs: s.goalMedianUs,
  }));
  // The goals are figures of the same run: nss_files' for our module, machined's through nss-systemd.
  rows[0].goalMedianUs = Number(rows[1].medianUs.toFixed(1));
  const viaMachined = rows.find((r) => r.what === 'nss-systemd -> systemd-machined');
  if (viaMachined) rows.find((r) => r.what === 'nss-systemd -> mymachinesd')!.goalMedianUs = Number(viaMachined.medianUs.toFixed(1));

  console.log(`getpwnam_r in one process: ${ROUNDS} rounds of ${COUNT} lookups per source (load average ${load.toFixed(1)} on ${availableParallelism()} CPUs)\n`);
  console.log(`${'through'.padEnd(34)}${'name'.padEnd(16)}${'median µs'.padStart(10)}${'p99 µs'.padStart(10)}  goal`);
  for (const r of rows) {
    const goal = r.goalMedianUs === undefined ? '' : `<= ${r.goalMedianUs}: ${r.medianUs <= r.goalMedianUs ? 'met' : 'MISSED'}`;
    console.log(`${r.what.padEnd(34)}${r.name.padEnd(16)}${r.medianUs.toFixed(1).padStart(10)}${r.p99Us.toFixed(1).padStart(10)}  ${goal}`);
  }
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/userdb.json'), JSON.stringify({ rounds: ROUNDS, count: COUNT, loadAverage: load, rows }, null, 2) + '\n');
} finally {
  rmSync(work, { recursive: true, force: true });
  env.close();
  await removeAllContainers();
  await d.stop();
  d.cleanup();
}
