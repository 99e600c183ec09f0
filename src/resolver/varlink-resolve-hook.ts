// The resolve hook: io.systemd.Resolve.Hook as machined 259+ serves it, on a socket in
// /run/systemd/resolve.hook/ where systemd-resolved 259+ finds it. resolved asks it before anything else
// about every name below the domains that QueryFilter names (here: every machine's name), and so answers
// machine names for nss-resolve, its D-Bus and Varlink APIs and its DNS stub on 127.0.0.53, even for
// programs that bypass NSS.
//
// Answers, as machined's: A and AAAA records (TTL 0) of a machine's name with rcode 0 (an empty answer
// when it has no address of that family); for any other name an empty reply, which tells resolved to go
// on as usual. Unlike machined 261 (systemd#43783), a name below a machine's name is not NXDOMAIN: a
// container named `ai` must not hide the `ai` top-level domain. Unlike machined, names ignore ASCII case
// (as our other front ends), and IPv6 link-local addresses are left out, as in DNS (no scope can go along).
import type dnsPacket from 'dns-packet';
import { AF_INET, AF_INET6 } from '../registry/address.js';
import { invalidParameter } from '../varlink/errors.js';
import { t, type InterfaceDef } from '../varlink/schema.js';
import type { CallContext, Handler } from '../varlink/server.js';
import { inDns, type Resolver } from './resolver.js';

type RecordCodec = { encode(a: dnsPacket.Answer): Buffer };
let rrCodec: RecordCodec | undefined;
/** dns-packet's encoder of one record (its types omit it), loaded at the first answer, not at every start. */
async function recordCodec(): Promise<RecordCodec> {
  return (rrCodec ??= ((await import('dns-packet')).default as unknown as { answer: RecordCodec }).answer);
}

const TYPE_A = 1;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
const RCODE_SUCCESS = 0;
/** A question of more keys than this is no lookup resolved makes. */
const MAX_KEYS = 64;
const MAX_NAME = 253;

const resourceKey = t.struct({ class: t.optional(t.int), type: t.int, name: t.string });

// resolved's ResourceRecord type, field for field (only key and address are ever filled in here).
const rrFields: Record<string, ReturnType<typeof t.optional>> = {};
for (const [names, type] of [
  ['priority weight port', t.int],
  ['name cpu os', t.string],
  ['items', t.array(t.string)],
  ['address', t.array(t.int)],
  ['mname rname', t.string],
  ['serial refresh retry expire minimum', t.int],
  ['exchange', t.string],
  ['version size horiz_pre vert_pre latitude longitude altitude keyTag algorithm digestType', t.int],
  ['digest', t.string],
  ['fptype', t.int],
  ['fingerprint', t.string],
  ['flags protocol', t.int],
  ['dnskey signer', t.string],
  ['typeCovered labels originalTtl expiration inception', t.int],
  ['signature nextDomain', t.string],
  ['types', t.array(t.int)],
  ['iterations', t.int],
  ['salt hash', t.string],
  ['certUsage selector matchingType', t.int],
  ['data tag value target', t.string],
  ['svcparams', t.object],
  ['order preference', t.int],
  ['naptrFlags services regexp replacement', t.string],
] as const) {
  for (const n of names.split(' ')) rrFields[n] = t.optional(type);
}

export const resolveHookInterface: InterfaceDef = {
  name: 'io.systemd.Resolve.Hook',
  doc: 'Generic interface for implementing a domain name resolution hook.',
  types: {
    Answer: t.struct({ rr: t.optional(t.ref('ResourceRecord')), raw: t.string }),
    Question: t.struct({ key: t.ref('ResourceKey') }),
    ResourceKey: resourceKey,
    ResourceRecord: t.struct({ key: t.ref('ResourceKey'), ...rrFields }),
  },
  methods: {
    QueryFilter: {
      doc: "The domains this hook answers: the names of the machines. With 'more', a new list follows each\nchange.",
      in: {},
      out: { filterDomains: t.optional(t.array(t.string)), filterLabelsMin: t.optional(t.int), filterLabelsMax: t.optional(t.int) },
    },
    ResolveRecord: {
      doc: 'Answers A and AAAA questions for a machine\'s name; an empty reply for other names.',
      in: { question: t.array(t.ref('Question')) },
      out: { rcode: t.optional(t.int), answer: t.optional(t.array(t.ref('Answer'))) },
    },
  },
};

interface Key {
  class?: number | null;
  type: number;
  name: string;
}

function answerFor(codec: RecordCodec, name: string, family: number, bytes: number[]) {
  const text = family === AF_INET ? bytes.join('.') : Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] << 8) | bytes[2 * i + 1]).toString(16)).join(':');
  const raw = codec.encode({ type: family === AF_INET ? 'A' : 'AAAA', class: 'IN', name, ttl: 0, data: text });
  return { rr: { key: { class: CLASS_IN, type: family === AF_INET ? TYPE_A : TYPE_AAAA, name }, address: bytes }, raw: raw.toString('base64') };
}

/** The machine names resolved should ask about, sorted (so that a change is told once, and only then). */
function filterDomains(resolver: Resolver): string[] {
  return resolver.names().sort();
}

export function resolveHookHandlers(resolver: Resolver): Record<string, Handler> {
  return {
    async QueryFilter(_p, ctx: CallContext) {
      const first = filterDomains(resolver);
      if (!ctx.more) return { filterDomains: first };
      ctx.notify({ filterDomains: first });
      // Subscribed: a new list whenever the set of machines that resolve changes, until the client hangs
      // up. Most changes (addresses, ID maps) leave it as it is: only a name coming or going is told.
      let listed = new Set(first);
      const update = (name: string) => {
        if (listed.has(name) === (resolver.lookup(name)?.name === name)) return;
        const now = filterDomains(resolver);
        listed = new Set(now);
        ctx.notify({ filterDomains: now });
      };
      resolver.on('changed', update);
      const { signal } = ctx;
      if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      resolver.off('changed', update);
      return {};
    },
    // resolved asks the hook before every lookup of the host: answered at once (no promise) unless a
    // machine's records must be encoded before dns-packet is loaded.
    ResolveRecord(p) {
      const keys: Key[] = (p.question as { key: Key }[]).map((q) => q.key);
      if (keys.length === 0 || keys.length > MAX_KEYS) throw invalidParameter('question');
      for (const k of keys) {
        if (k.name.length === 0 || k.name.length > MAX_NAME + 1 || !Number.isSafeInteger(k.type) || k.type < 0 || k.type > 0xffff) throw invalidParameter('question');
      }
      let found = false;
      const records: [name: string, family: number, bytes: number[]][] = [];
      for (const k of keys) {
        const name = k.name.endsWith('.') ? k.name.slice(0, -1) : k.name;
        const entry = resolver.lookup(name);
        if (!entry) continue;
        found = true;
        if ((k.class ?? CLASS_IN) !== CLASS_IN || (k.type !== TYPE_A && k.type !== TYPE_AAAA)) continue;
        const family = k.type === TYPE_A ? AF_INET : AF_INET6;
        // The name as asked: resolved (and a DNS client behind its stub) matches answers to questions.
        for (const a of entry.addresses) if (a.family === family && inDns(a)) records.push([k.name, a.family, a.bytes]);
      }
      // Not a machine: an empty reply lets resolved go on (DNS, LLMNR, ...), also below a machine's name.
      if (!found) return {};
      const reply = (codec: RecordCodec) => ({ rcode: RCODE_SUCCESS, answer: records.map(([n, f, b]) => answerFor(codec, n, f, b)) });
      return rrCodec ? reply(rrCodec) : recordCodec().then(reply);
    },
  };
}
