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
  const destination = options.file
    ? pino.destination({ dest: options.file, mkdir: true, sync: true })
    : pino.destination({ fd: 1, sync: true });
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
