// Ports for tests of servers on the host's loopback addresses.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/** A port free for UDP and TCP on 127.0.0.1 and ::1 (asked of the kernel, then let go). */
export async function freePort(): Promise<number> {
  for (;;) {
    const u = createSocket('udp4');
    const port = await new Promise<number>((r) => u.bind(0, '127.0.0.1', () => r(u.address().port)));
    const ok = await Promise.all(
      ['127.0.0.1', '::1'].map(
        (host) =>
          new Promise<boolean>((r) => {
            const s = createServer();
            s.once('error', () => r(false));
            s.listen({ host, port, ipv6Only: true }, () => s.close(() => r(true)));
          }),
      ),
    );
    const u6 = createSocket({ type: 'udp6', ipv6Only: true });
    const ok6 = await new Promise<boolean>((r) => {
      u6.once('error', () => r(false));
      u6.bind(port, '::1', () => r(true));
    });
    u6.close();
    u.close();
    if (ok.every(Boolean) && ok6) return port;
  }
}
