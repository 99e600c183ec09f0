// The demo's name resolution part: the container by name and by address through glibc and our NSS
// module (nsswitch.conf "hosts: files mymachines"), and ping by name. Lookups run in a private mount
// namespace (bench/nss-env.ts): the host's nsswitch.conf and libraries stay as they are.
import { makeNssEnv } from '../test/helpers/nss-env.js';
import type { DemoContext } from './transcript.js';

export async function showResolution(ctx: DemoContext): Promise<void> {
  const env = makeNssEnv({ socket: ctx.socket });
  const show = (cmd: string[]) => {
    const [u, ...args] = env.argv(cmd[0], cmd.slice(1));
    return ctx.sh(u, args, cmd.join(' '), { ...process.env, MYMACHINES_SOCKET: ctx.socket });
  };
  try {
    ctx.say(`${ctx.name} resolves by name through glibc (nsswitch.conf "hosts: files mymachines")`);
    await show(['getent', 'hosts', ctx.name]);
    await show(['getent', 'ahostsv4', ctx.name]);
    ctx.say('And back, by address');
    await show(['getent', 'hosts', ctx.ipv4]);
    await show(['getent', 'hosts', ctx.ipv6]);
    ctx.say('Any program that uses getaddrinfo can use the name');
    await show(['ping', '-c1', '-W2', ctx.name]);
  } finally {
    env.close();
  }
}
