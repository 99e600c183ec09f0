// org.freedesktop.LogControl1 (systemd's standard interface for daemons): reads and changes the log
// level at run time. Levels are systemd's names, mapped onto the logger's (pino) levels.
import { BusError, type BusObject, E } from './bus-service.js';

export const LOG_CONTROL_PATH = '/org/freedesktop/LogControl1';

/** The part of a pino logger that this needs: its level can be read and set. */
export interface LevelLogger {
  level: string;
}

const TO_PINO: Record<string, string> = {
  emerg: 'fatal',
  alert: 'fatal',
  crit: 'fatal',
  err: 'error',
  warning: 'warn',
  notice: 'info',
  info: 'info',
  debug: 'debug',
};
/** systemd's log targets (log_target_from_string); only console (and auto, which is console here) are kept. */
const LOG_TARGETS = ['console', 'console-prefixed', 'kmsg', 'journal', 'journal-or-kmsg', 'syslog', 'syslog-or-kmsg', 'auto', 'null'];
const FROM_PINO: Record<string, string> = { fatal: 'crit', error: 'err', warn: 'warning', info: 'info', debug: 'debug', trace: 'debug', silent: 'emerg' };

export function logControlObject(log: LevelLogger, identifier: string): BusObject {
  return {
    target: log,
    interfaces: [
      {
        name: 'org.freedesktop.LogControl1',
        methods: {},
        signals: {},
        properties: {
          LogLevel: {
            type: 's',
            emits: 'false',
            get: () => FROM_PINO[log.level] ?? 'info',
            async set(_t, caller, value: string) {
              await caller.mayChange('logging');
              const level = TO_PINO[value];
              if (!level) throw new BusError(E.InvalidArgs, `Invalid log level '${value}': expected one of ${Object.keys(TO_PINO).join(', ')}`);
              log.level = level;
            },
          },
          LogTarget: {
            type: 's',
            emits: 'false',
            // JSON lines on stdout: the console (or the journal, when a service manager collects stdout).
            get: () => 'console',
            async set(_t, caller, value: string) {
              await caller.mayChange('logging');
              if (!LOG_TARGETS.includes(value)) throw new BusError(E.InvalidArgs, `Invalid log target '${value}': expected one of ${LOG_TARGETS.join(', ')}`);
              if (value !== 'console' && value !== 'auto') throw new BusError(E.NotSupported, `Log target '${value}' is not supported: mymachinesd logs to its standard output (console) only`);
            },
          },
          SyslogIdentifier: { type: 's', emits: 'false', get: () => identifier },
        },
      },
    ],
  };
}
