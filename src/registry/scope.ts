// What the registry asks of whoever makes the scope cgroups of machines made by Create: the cgroup2
// hierarchy itself (linux/cgroup.ts) or systemd (linux/systemd-scope.ts).

/** A unit property for a machine's scope, as D-Bus a(sv) carries it (CreateMachine's scope_properties). */
export interface ScopeProperty {
  name: string;
  /** The D-Bus signature of the value. */
  signature: string;
  value: unknown;
}

export interface ScopeRequest {
  class: 'container' | 'vm';
  /** Given to systemd after machined's own properties; without systemd, applied where they map onto a
   *  cgroup file, and the rest named in a warning. */
  properties: ScopeProperty[];
  log: { warn(o: object, msg: string): void };
}

/** Makes and removes the scope of a machine made by Create. */
export interface ScopeAllocator {
  /** Moves the leader into a new scope. Fails with a RegistryError, leaving the leader where it was.
   *  abandon() undoes it for a request refused after it: the scope's processes go back where the leader
   *  came from, and the scope is removed. abandon() never throws. */
  create(machine: string, leader: number, req: ScopeRequest): Promise<{ path: string; unit: string; abandon(): Promise<void> }>;
  /** Every process in the scope and in the cgroups below it. */
  processes(path: string): Promise<number[]>;
  /** SIGKILL to all of them at once; false when that cannot be done (then they are killed one by one). */
  kill(path: string): Promise<boolean>;
  /** True once gone; false while processes remain. */
  remove(path: string): Promise<boolean>;
}
