// The Varlink front end of the resolver: io.systemd.Resolve shaped as systemd-resolved's (method, type
// and error names, parameters), so that the NSS module and resolved's own clients can ask it.
import type { Handler } from '../varlink/server.js';
import { t, type InterfaceDef } from '../varlink/schema.js';
import { errorTable, invalidParameter } from '../varlink/errors.js';
import { AF_INET, AF_INET6 } from '../registry/address.js';
import type { Resolver } from './resolver.js';

const IFACE = 'io.systemd.Resolve';
const errors = errorTable(IFACE, {
  NoSuchResourceRecord: {},
  DNSError: { rcode: t.int },
});
/** DNS rcode NXDOMAIN: resolved's answer for a name that does not exist. */
const NXDOMAIN = 3;
/** The longest DNS name in text form. */
const MAX_NAME = 253;

export const resolveInterface: InterfaceDef = {
  name: IFACE,
  doc: 'Machine names to addresses and back, as systemd-resolved\'s interface of the same name.',
  types: {
    ResolvedAddress: t.struct({ ifindex: t.optional(t.int), family: t.int, address: t.array(t.int) }),
    ResolvedName: t.struct({ ifindex: t.optional(t.int), name: t.string }),
  },
  methods: {
    ResolveHostname: {
      doc: 'The addresses of a machine, by name (ignoring case). family: 2 (IPv4), 10 (IPv6), absent or 0\n(both). name in the reply is the registered name. ifindex is set on IPv6 link-local addresses only.\nThe ifindex and flags parameters are accepted, as resolved\'s, and do not change the answer.',
      in: { ifindex: t.optional(t.int), name: t.string, family: t.optional(t.int), flags: t.optional(t.int) },
      out: { addresses: t.array(t.ref('ResolvedAddress')), name: t.string, flags: t.int },
    },
    ResolveAddress: {
      doc: 'The machines whose names resolve to this address (ifindex: the scope of an IPv6 link-local one).',
      in: { ifindex: t.optional(t.int), family: t.int, address: t.array(t.int), flags: t.optional(t.int) },
      out: { names: t.array(t.ref('ResolvedName')), flags: t.int },
    },
  },
  errors: errors.defs,
};

const noSuchName = () => errors.make('DNSError', { rcode: NXDOMAIN });
const noSuchRecord = () => errors.make('NoSuchResourceRecord');

function checkIfindex(ifindex: unknown): void {
  if (ifindex != null && !(Number.isSafeInteger(ifindex) && (ifindex as number) >= 0)) throw invalidParameter('ifindex');
}

export function resolveHandlers(resolver: Resolver): Record<string, Handler> {
  return {
    ResolveHostname(p) {
      checkIfindex(p.ifindex);
      const family = p.family ?? 0;
      if (family !== 0 && family !== AF_INET && family !== AF_INET6) throw invalidParameter('family');
      if (p.name.length === 0 || p.name.length > MAX_NAME) throw invalidParameter('name');
      // One trailing dot (a fully qualified name) is accepted, as resolved does.
      const entry = resolver.lookup(p.name.endsWith('.') ? p.name.slice(0, -1) : p.name);
      if (!entry) throw noSuchName();
      const addresses = entry.addresses
        .filter((a) => family === 0 || a.family === family)
        .map((a) => (a.ifindex ? { ifindex: a.ifindex, family: a.family, address: a.bytes } : { family: a.family, address: a.bytes }));
      if (addresses.length === 0) throw noSuchRecord();
      return { addresses, name: entry.name, flags: 0 };
    },
    ResolveAddress(p) {
      checkIfindex(p.ifindex);
      if (p.family !== AF_INET && p.family !== AF_INET6) throw invalidParameter('family');
      const bytes: number[] = p.address;
      if (bytes.length !== (p.family === AF_INET ? 4 : 16) || !bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
        throw invalidParameter('address');
      }
      const names = resolver.reverse(p.family, bytes);
      if (names.length === 0) throw noSuchName();
      return { names, flags: 0 };
    },
  };
}
