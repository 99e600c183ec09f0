// io.systemd.Machine's Open, BindMount, CopyFrom, CopyTo and OpenRootDirectory on MachineOperations:
// varlink-machine.ts defines the methods (machined 262's), finds the machine and checks the parameters
// and the caller; this hands the call to the operations and descriptors back with the reply
// (ctx.pushFd, named by index). Their errors are named in varlink-machine.ts's table.
import type { MachineOperations } from './machine-ops.js';
import type { OperationHandlers } from './varlink-machine.js';

export function varlinkOperations(ops: MachineOperations): OperationHandlers {
  return {
    async Open(m, p, ctx) {
      const pty = await ops.openPty(m.name, p.mode, { user: p.user, path: p.path, args: p.args, environment: p.environment });
      return { ptyFileDescriptor: ctx.pushFd(pty.fd), ptyPath: pty.path };
    },
    async BindMount(m, p) {
      await ops.bindMount(m.name, p);
      return {};
    },
    async CopyFrom(m, p) {
      await ops.copy(m.name, 'from', p);
      return {};
    },
    async CopyTo(m, p) {
      await ops.copy(m.name, 'to', p);
      return {};
    },
    async OpenRootDirectory(m, _p, ctx) {
      return { fileDescriptor: ctx.pushFd(ops.openRootDirectory(m.name)) };
    },
  };
}
