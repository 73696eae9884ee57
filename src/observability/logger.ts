import pino from 'pino';

export type RunnerLogger = pino.Logger;

export interface LoggerOptions {
  /** pino level: fatal, error, warn, info, debug, trace, silent. */
  readonly level?: string;
  /** Write to this file instead of stdout (APISIX copies stdout into its error log at warn). */
  readonly file?: string | undefined;
}

/** Header values that must never reach a log line, wherever they appear in a logged object. */
const REDACTED_PATHS = [
  'headers.authorization',
  'headers.cookie',
  'headers["proxy-authorization"]',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers["proxy-authorization"]',
  'body',
  '*.body',
];

/** Builds the runner's JSON logger. */
export function createLogger(options: LoggerOptions = {}): RunnerLogger {
  const destination = options.file
    ? pino.destination({ dest: options.file, mkdir: true, sync: true })
    : pino.destination({ fd: 1, sync: true });
  return pino(
    {
      name: 'apisix-ts-plugin-runner',
      level: options.level ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    destination,
  );
}
