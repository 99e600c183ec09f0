// The registry as its front ends (Varlink, D-Bus) see it: a change they make (Register, Unregister,
// Terminate) returns only once the lookup table holding it is published, so that every lookup that
// starts after the answer sees it, in every process. When the table cannot be written, the caller gets
// the registry's named error for a failed system call (its errno) with a message that says what failed and where: a registration is
// then undone (the table and the registry stay without it); an Unregister or Terminate cannot be, and
// the old table is withdrawn (lookups fail, UNAVAIL) until the table can be written again.
import { errnoNumber } from '../errno.js';
import { SystemError } from '../registry/errors.js';
import type { Registry } from '../registry/registry.js';
import type { TablePublisher } from './publisher.js';
import { TableWriteError } from './table-file.js';

/** The table's write error as the registry's named error for a failed system call, as a state file's
 *  (D-Bus System.Error.<ERRNO>, Varlink io.systemd.System with the errno). */
function systemFailure(e: TableWriteError, message: string): SystemError {
  return new SystemError(e.code, errnoNumber(e.code) ?? 5, message);
}

export function publishedRegistry(registry: Registry, table: TablePublisher): Registry {
  const publish = (): TableWriteError | undefined => {
    try {
      table.publish();
      return undefined;
    } catch (e) {
      if (e instanceof TableWriteError) return e;
      throw e;
    }
  };
  const register: Registry['register'] = async (...args) => {
    const m = await registry.register(...args);
    const e = publish();
    if (e) {
      // Undone: then the table on disk (which never had it) is right again, unless other changes wait.
      await registry.unregister(m.name).catch(() => {});
      if (publish()) table.withdrawIfStale();
      throw systemFailure(e, `${e.message}; machine '${m.name}' was not registered`);
    }
    return m;
  };
  const afterwards = (method: 'unregister' | 'terminate', done: string) => async (name: string) => {
    await registry[method](name);
    const e = publish();
    if (e) {
      table.withdrawIfStale();
      throw systemFailure(e, `machine '${name}' ${done}, but ${e.message}: NSS lookups fail until it can be written`);
    }
  };
  const overrides: Partial<Registry> = { register, unregister: afterwards('unregister', 'was unregistered'), terminate: afterwards('terminate', 'is being terminated') };
  return new Proxy(registry, {
    get(target, prop) {
      if (prop in overrides) return overrides[prop as keyof typeof overrides];
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
