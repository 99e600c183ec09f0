// What the daemon wires: the resolver and its Varlink front end.
export { Resolver } from './resolver.js';
export { resolveHandlers, resolveInterface } from './varlink-resolve.js';
