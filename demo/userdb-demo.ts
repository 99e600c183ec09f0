// The demo's userdb part: the container's UIDs as vu-/vg- names, through Debian's nss-systemd (as a
// Debian host has it: `passwd: files systemd`) and through our NSS module, and a file the container owns
// shown by name. Lookups run in a private mount namespace (bench/userdb-env.ts): the host's
// nsswitch.conf and /run/systemd stay as they are.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeUserdbEnv, type PasswdSource } from '../test/helpers/userdb-env.js';
import { VarlinkClient } from '../src/varlink/client.js';
import type { DemoContext } from './transcript.js';

const INNER_ID = 1000;

export async function showUserRecords(ctx: DemoContext): Promise<void> {
  const env = makeUserdbEnv({ socket: ctx.socket, userdbSocket: join(ctx.userdbDir, 'io.systemd.Machine') });
  const dir = mkdtempSync(join(tmpdir(), 'mymachines-demo-files-'));
  const show = (source: PasswdSource, cmd: string[]) => {
    const c = env.command(source, cmd);
    return ctx.sh(c.cmd, c.args, cmd.join(' '), c.env);
  };
  try {
    ctx.say(`The container's UIDs have names: vu-${ctx.name}-UID (through nss-systemd, nsswitch.conf "passwd: files systemd")`);
    await show('systemd', ['getent', 'passwd', `vu-${ctx.name}-0`]);
    await show('systemd', ['getent', 'group', `vg-${ctx.name}-0`]);
    ctx.say('The same through our module, for hosts without nss-systemd ("passwd: files mymachines")');
    await show('mymachines', ['getent', 'passwd', `vu-${ctx.name}-0`]);

    const client = await VarlinkClient.connect(ctx.socket);
    const { uid } = (await client.call('io.systemd.Machine.MapFrom', { name: ctx.name, uid: INNER_ID })) as { uid: number };
    client.close();
    // Written by a process inside the container's user namespace, as UID 1000 there.
    chmodSync(dir, 0o777);
    const file = join(dir, 'written-in-the-container');
    ctx.say(`UID ${INNER_ID} inside ${ctx.name} writes a file; on the host it is UID ${uid} (io.systemd.Machine.MapFrom)`);
    await ctx.sh('nsenter', ['-t', String(ctx.pid), '-U', '-S', String(INNER_ID), '-G', String(INNER_ID), '--', 'sh', '-c', `echo hello > ${file}`],
      `nsenter -t ${ctx.pid} -U -S ${INNER_ID} -G ${INNER_ID} -- sh -c 'echo hello > ${file}'`);
    ctx.say('On the host: by number, then by name');
    await show('systemd', ['ls', '-ln', file]);
    await show('systemd', ['ls', '-l', file]);
  } finally {
    env.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
