// What a command of mymachinesctl is: its usage, its options, and what it does once its arguments
// are checked.
import type { ParseArgsConfig } from 'node:util';
import type { VarlinkClient } from '../varlink/client.js';

export type Options = NonNullable<ParseArgsConfig['options']>;
/** What a command does once connected. */
export type Action = (c: VarlinkClient) => Promise<void>;
/** What a command that connects (or not) by itself does; gives the exit status. */
export type Standalone = (socket: string, timeoutMs: number) => Promise<number>;

export interface Verb {
  usage: string;
  options: Options;
  minArgs: number;
  maxArgs: number;
  /** Checks the arguments, throwing a usage error, before anything is sent; returns what to do then. */
  prepare(args: string[], v: Record<string, any>): Action | { standalone: Standalone };
}
