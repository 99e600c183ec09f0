// pino JSON lines on stdout; human-readable when stdout is a terminal.
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export function makeLogger(level: string): Logger {
  const opts = { level, base: { pid: process.pid }, name: 'mymachinesd' };
  return process.stdout.isTTY ? pino(opts, pretty({ sync: true })) : pino(opts);
}
