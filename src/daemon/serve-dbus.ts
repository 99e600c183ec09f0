// Wiring for D-Bus: org.freedesktop.machine1 (the registry's D-Bus front end) and LogControl1, served on
// one bus connection for as long as the daemon runs.
import { BusService, type BusLog } from '../dbus/bus-service.js';
import { LOG_CONTROL_PATH, type LevelLogger, logControlObject } from '../dbus/log-control.js';
import { BUS_NAME, announceMachines, machine1Tree } from '../registry/dbus-machine1.js';
import { imageBusError, imageManagerMembers, imageObjects } from '../images/dbus-image1.js';
import type { ImagePool } from '../images/pool.js';
import type { MachineOperations } from '../registry/machine-ops.js';
import type { Registry } from '../registry/registry.js';

/** Serves org.freedesktop.machine1 and LogControl1 on the bus at `address` (see busAddress), for as long
 *  as the daemon runs: the bus may come and go. Changes are taken from root and from `owner` (the user of
 *  a per-user registry; 0 for the system's). */
export function serveMachine1(reg: Registry, ops: MachineOperations, pool: ImagePool, log: BusLog & LevelLogger, address: string | undefined, owner: number): BusService {
  const images = { ...imageManagerMembers(pool), ...imageObjects(pool), mapError: imageBusError };
  const tree = machine1Tree(reg, { [LOG_CONTROL_PATH]: logControlObject(log, 'mymachinesd') }, ops, images);
  const service = new BusService({ address, name: BUS_NAME, tree, log, owner });
  announceMachines(reg, service);
  service.start();
  return service;
}
