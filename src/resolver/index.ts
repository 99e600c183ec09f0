// What the daemon wires: the resolver and its front ends (Varlink io.systemd.Resolve, DNS).
export { Resolver } from './resolver.js';
export { resolveHandlers, resolveInterface } from './varlink-resolve.js';
export { DnsServer } from './dns-server.js';
export { parseDnsListen, parseDnsZone, dnsListenText, type DnsListen } from './dns-config.js';
