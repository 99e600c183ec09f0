// dig (bind9-dnsutils) for the DNS tests: its answer read from its text.
import { run } from './run.js';

export interface Dig {
  status: string;
  flags: string[];
  answer: string[][];
  authority: string[][];
  /** The EDNS line of the response ("version: 0, flags:; udp: 1232"), undefined without OPT. */
  edns?: string;
}

/** dig's answer, read from its text: status, header flags, and the records of each section as
 *  [name, ttl, class, type, data]. */
export function parseDig(out: string): Dig {
  const status = /status: ([A-Z]+)/.exec(out)?.[1];
  if (!status) throw new Error(`dig gave no answer:\n${out}`);
  const flags = /;; flags:([^;]*);/.exec(out)![1].trim().split(/\s+/).filter(Boolean);
  const section = (title: string) => {
    const m = new RegExp(`;; ${title} SECTION:\\n((?:[^\\n]+\\n)*)`).exec(out);
    if (!m) return [];
    return m[1]
      .trim()
      .split('\n')
      .map((l) => {
        const [name, ttl, klass, type, ...data] = l.split(/\s+/);
        return [name, ttl, klass, type, data.join(' ')];
      });
  };
  return { status, flags, answer: section('ANSWER'), authority: section('AUTHORITY'), edns: /; EDNS: (.*)/.exec(out)?.[1] };
}

/** The records of a zone transfer (dig AXFR or IXFR=N), [name, ttl, class, type, data] each, and the
 *  line dig ends a failed one with (undefined when it worked). */
export function parseTransfer(out: string): { records: string[][]; failed?: string } {
  const records = out
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith(';'))
    .map((l) => {
      const [name, ttl, klass, type, ...data] = l.split(/\s+/);
      return [name, ttl, klass, type, data.join(' ')];
    })
    .filter((r) => r[3] !== 'TSIG');
  const failed = /^; (Transfer failed\.|.*failed.*)$/m.exec(out)?.[1];
  return failed ? { records, failed } : { records };
}

/** dig against a server (prefix: an argv that runs it elsewhere, e.g. in a network namespace). */
export async function dig(server: string, port: number, args: string[], prefix: string[] = []): Promise<Dig> {
  const argv = [...prefix, 'dig', `@${server}`, '-p', String(port), '+norec', '+tries=1', '+time=2', ...args];
  return parseDig((await run(argv[0], argv.slice(1))).stdout);
}

/** dig's raw output (for transfers). */
export async function digText(server: string, port: number, args: string[], prefix: string[] = []): Promise<string> {
  const argv = [...prefix, 'dig', `@${server}`, '-p', String(port), '+tries=1', '+time=3', ...args];
  const r = await run(argv[0], argv.slice(1));
  return r.stdout + r.stderr;
}
