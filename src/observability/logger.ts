import pino from 'pino';

export type RunnerLogger = pino.Logger;

export interface LoggerOptions {
  /** pino level: fatal, error, warn, info, debug, trace, silent. */
  readonly level?: string;
  /** Write to this file instead of stdout (APISIX copies stdout into its error log at warn). */
  readonly file?: string | undefined;
  /** An already opened target (openLogTarget), so the caller can reopen it on SIGHUP. */
  readonly target?: LogTarget;
}

/** Where log lines go, reopenable for log rotation. */
export interface LogTarget {
  readonly stream: pino.DestinationStream;
  /** Opens the file path again (after logrotate renamed it); a no-op for stdout. */
  reopen(): void;
}

/** The log file cannot be opened (missing permission, a directory in the way...). */
export class LogFileError extends Error {
  readonly code = 'A6_ERR_LOG_FILE';
}

/** Opens the log file (synchronously, so a bad path fails the start) or stdout. */
export function openLogTarget(file?: string): LogTarget {
  if (!file) return { stream: pino.destination({ fd: 1, sync: true }), reopen: () => undefined };
  let stream;
  try {
    stream = pino.destination({ dest: file, mkdir: true, sync: true });
  } catch (err) {
    throw new LogFileError(`cannot open log file ${file}: ${(err as Error).message}; fix --log-file (or logFile) or the permissions of its folder`);
  }
  return { stream, reopen: () => stream.reopen() };
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

const SENSITIVE_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization', 'set-cookie']);
const CENSOR = '[redacted]';
const MAX_SCRUB_DEPTH = 6;

/**
 * Catches what fixed redact paths cannot: credentials in a header entry list
 * (`[{name: 'Authorization', value}]`, as `req.headerEntries()` gives it), header keys in any
 * case, and bodies at any depth. Runs only for lines actually written, never per request.
 */
export function scrubLogObject(value: unknown, depth = 0): unknown {
  if (depth > MAX_SCRUB_DEPTH || value === null || typeof value !== 'object') return value;
  if (value instanceof Error || Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.map((v) => scrubLogObject(v, depth + 1));
  const obj = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const entryName = typeof obj['name'] === 'string' && 'value' in obj ? (obj['name'] as string).toLowerCase() : undefined;
  for (const [k, v] of Object.entries(obj)) {
    const key = k.toLowerCase();
    if (SENSITIVE_HEADERS.has(key) || key === 'body') out[k] = CENSOR;
    else if (k === 'value' && entryName !== undefined && SENSITIVE_HEADERS.has(entryName)) out[k] = CENSOR;
    else out[k] = scrubLogObject(v, depth + 1);
  }
  return out;
}

/** Builds the runner's JSON logger. */
export function createLogger(options: LoggerOptions = {}): RunnerLogger {
  const destination = (options.target ?? openLogTarget(options.file)).stream;
  return pino(
    {
      name: 'apisix-ts-plugin-runner',
      level: options.level ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: CENSOR },
      formatters: { log: (obj) => scrubLogObject(obj) as Record<string, unknown> },
    },
    destination,
  );
}
