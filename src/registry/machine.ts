// The machine model: what the registry holds for each machine. A Machine is read-only: the registry
// replaces it with a new object when anything about the machine changes, and says so ('changed').
import type { Address } from './address.js';
import type { IdMapLine } from './linux/proc.js';

export type MachineClass = 'container' | 'vm' | 'host';
export type MachineState = 'running' | 'closing';

/** What a registrant asks for, validated (see validate.ts). */
export interface MachineSpec {
  readonly name: string;
  /** 32 lowercase hex digits, or '' for none. */
  readonly id: string;
  readonly service: string;
  readonly class: 'container' | 'vm';
  readonly leader: number;
  readonly rootDirectory: string;
  readonly ifIndices: readonly number[];
  /** Addresses given by the registrant: they win over what is read from the leader. */
  readonly addresses: readonly Address[];
  readonly vSockCid?: number;
  readonly sshAddress?: string;
  /** Where the registrant keeps the private key for sshAddress (machined 256+). */
  readonly sshPrivateKeyPath?: string;
  /** The Varlink socket through which the machine itself is controlled (machined 262's controlAddress,
   *  io.systemd.MachineInstance: vmspawn's QMP bridge); machinectl 262 powers off and terminates
   *  through it. */
  readonly controlAddress?: string;
  /** The process that registered the machine when it is not the leader (machined 258+'s supervisor):
   *  its PID and its pidfd's inode number (0 when unknown). */
  readonly supervisor?: { pid: number; pidfdId: number };
  /** The UID of the user who registered the machine (machined 258+); 0: root. */
  readonly uid: number;
  /** Create (true) also puts the leader into a scope cgroup of its own; Register (false) adopts it. */
  readonly allocateUnit: boolean;
}

export interface Machine extends Omit<MachineSpec, 'class'> {
  readonly class: MachineClass;
  /** The leader's start time from /proc/PID/stat: a reused PID never passes for the leader. */
  readonly leaderStartTime: string;
  /** The inode number of the leader's pidfd (machined's LeaderPIDFDId; 0 where pidfds have none). */
  readonly leaderPidfdId: number;
  /** The unit that holds the leader: the scope made by Create, or the unit the leader was found in. */
  readonly unit: string;
  /** The cgroup2 path that Create made, removed with the machine. */
  readonly ownCgroup: string;
  readonly timestamp: { readonly realtime: number; readonly monotonic: number };
  /** 'closing' once terminated, until the leader exits. */
  readonly state: MachineState;
  /** Read from the leader's network namespace; undefined until read or when the leader shares ours. */
  readonly netAddresses: readonly Address[] | undefined;
  readonly privateNetwork: boolean;
  /** The leader's network namespace when it registered ("net:[INODE]"; '' for VMs): kept in the state
   *  file, so that a restart need not look again for every machine. */
  readonly netns: string;
  readonly uidMap: readonly IdMapLine[];
  readonly gidMap: readonly IdMapLine[];
}

/** The addresses a machine answers with: the given ones if any, else those of its network namespace. */
export function machineAddresses(m: Machine): readonly Address[] {
  return m.addresses.length > 0 ? m.addresses : (m.netAddresses ?? []);
}

/** The UID shift as machined's GetMachineUIDShift: 0 without a user namespace, the shift of a single
 *  0-based line covering at least 65534 IDs, undefined for anything more complex. */
export function uidShift(m: Machine): number | undefined {
  if (m.class === 'host') return 0;
  const u = m.uidMap;
  const g = m.gidMap;
  if (u.length === 0) return 0;
  if (u.length !== 1 || g.length !== 1) return undefined;
  if (u[0].base !== 0 || u[0].range < 65534) return undefined;
  if (g[0].base !== u[0].base || g[0].shift !== u[0].shift || g[0].range !== u[0].range) return undefined;
  return u[0].shift;
}
