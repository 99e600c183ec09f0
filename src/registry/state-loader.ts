// Reading the state files at start, with their leaders: the part of a restart that costs (a file read
// and a few /proc reads per machine). (Half of it in a worker thread was tried: slower here, the two
// threads contend in the kernel.)
import { type Leader, openLeader } from './leader.js';
import { type StateRecord, readState } from './state-files.js';

export interface Loaded {
  name: string;
  /** undefined: the file is unreadable or not a state file. */
  record?: StateRecord;
  /** undefined: the leader is gone. */
  leader?: Leader;
}

/** The state files `names` of `dir`, in that order, with their leaders opened. */
export function loadStates(dir: string, names: string[]): Loaded[] {
  return names.map((name) => {
    const record = readState(dir, name);
    return { name, record, leader: record ? openLeader(record.leader) : undefined };
  });
}
