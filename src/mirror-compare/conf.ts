/**
 * The `compare` block of a proxy-mirror conf: its JSON Schema (to be embedded in proxy-mirror's
 * schema as `properties.compare`) and the parser that turns it into what the room uses. Parsing
 * happens once per PrepareConf, never per request. Defaults are documented in docs/compare.md.
 */
import { createRequire } from 'node:module';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { JsonSchema } from '../plugin-api/index.js';
import { ConfError } from '../plugin-api/index.js';
// Durations are written as in proxy-mirror's timeouts (and APISIX's plugin_attr).
import { DURATION_PATTERN, parseDuration } from '../plugins/proxy-mirror/duration.js';
import { parseIgnorePattern, type IgnorePattern } from './json-pointer-pattern.js';

/**
 * Response headers not compared by default: they differ between any two instances or any two
 * answers (dates, ids, tracing, caching validators, framing) without saying anything about the
 * candidate's behaviour. `set-cookie` is not in the list: its cookie names are compared, its
 * values (session ids) never are. `content-length` is left out because the body is compared
 * itself and gzip output of equal content may differ in length.
 */
export const DEFAULT_IGNORED_HEADERS: readonly string[] = [
  'date', 'server', 'x-request-id', 'x-correlation-id', 'request-id',
  'content-length', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te',
  'trailer', 'upgrade', 'age', 'etag', 'last-modified', 'expires', 'via', 'alt-svc',
  'traceparent', 'tracestate', 'x-trace-id', 'x-b3-traceid', 'x-b3-spanid', 'x-amzn-trace-id',
  'x-cloud-trace-context', 'cf-ray', 'x-runtime', 'x-response-time', 'x-served-by',
  'x-cache', 'x-cache-hits', 'x-timer', 'x-envoy-upstream-service-time', 'x-powered-by',
  'nel', 'report-to', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'ratelimit-remaining', 'ratelimit-reset',
];

export const DEFAULT_BODY_MAX_BYTES = 1_048_576;
export const DEFAULT_NOISE_MIN_SAMPLES = 20;
export const DEFAULT_NOISE_MIN_RATE = 0.05;
export const DEFAULT_MAX_PENDING = 10_000;
export const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_AGE_MS = 30_000;
export const DEFAULT_EXAMPLES = 20;

const HEADER_NAME_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
const headerList: JsonSchema = {
  type: 'array',
  items: { type: 'string', minLength: 1, maxLength: 256, pattern: HEADER_NAME_PATTERN },
  uniqueItems: true,
  maxItems: 256,
};
const duration: JsonSchema = {
  oneOf: [
    { type: 'number', exclusiveMinimum: 0, maximum: 3_600_000 },
    { type: 'string', pattern: DURATION_PATTERN },
  ],
};

/** JSON Schema of the `compare` block. */
export const compareSchema: JsonSchema = {
  type: 'object',
  properties: {
    // The name both phases file the request under (default: derived from APISIX's conf key).
    route: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[^\\s]+$' },
    status: { type: 'boolean', default: true },
    headers: {
      oneOf: [
        { type: 'boolean' },
        { type: 'object', properties: { ignore: headerList }, additionalProperties: false },
        { type: 'object', properties: { include: headerList }, required: ['include'], additionalProperties: false },
      ],
      default: true,
    },
    body: {
      oneOf: [
        { type: 'boolean' },
        {
          type: 'object',
          properties: {
            ignore: {
              type: 'array',
              items: { type: 'string', pattern: '^(/([^/]|~[01])*)*$', maxLength: 1024 },
              uniqueItems: true,
              maxItems: 256,
            },
            max_bytes: { type: 'integer', minimum: 0, maximum: 16_776_191 },
          },
          additionalProperties: false,
        },
      ],
      default: true,
    },
    secondary: { type: 'string', pattern: '^https?://([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?$' },
    noise_min_samples: { type: 'integer', minimum: 1, maximum: 1_000_000, default: DEFAULT_NOISE_MIN_SAMPLES },
    noise_min_rate: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: DEFAULT_NOISE_MIN_RATE },
    max_pending: { type: 'integer', minimum: 1, maximum: 10_000_000, default: DEFAULT_MAX_PENDING },
    max_pending_bytes: { type: 'integer', minimum: 1024, default: DEFAULT_MAX_PENDING_BYTES },
    max_age: duration,
    examples: { type: 'integer', minimum: 0, maximum: 1000, default: DEFAULT_EXAMPLES },
  },
  additionalProperties: false,
};

/** How headers are selected for comparison. */
export type HeaderSelection =
  | { readonly mode: 'off' }
  | { readonly mode: 'ignore'; readonly names: ReadonlySet<string> }
  | { readonly mode: 'include'; readonly names: ReadonlySet<string> };

/** The parsed `compare` block. */
export interface CompareConf {
  /** The route name given in the conf; undefined: the wiring derives one both phases share. */
  readonly route: string | undefined;
  readonly status: boolean;
  readonly headers: HeaderSelection;
  /** Undefined when bodies are not compared (post-resp then needs no RespBody round trip). */
  readonly body: { readonly ignore: readonly IgnorePattern[]; readonly maxBytes: number } | undefined;
  /** `http(s)://host[:port]` of another instance of the serving version, for noise learning. */
  readonly secondary: string | undefined;
  readonly noiseMinSamples: number;
  readonly noiseMinRate: number;
  readonly maxPending: number;
  readonly maxPendingBytes: number;
  readonly maxAgeMs: number;
  /** Recent examples kept per route for the report. */
  readonly examples: number;
}

// Compiled with the first `compare` block, not at import: a runner whose routes never compare
// does not pay for a second Ajv instance and its meta-schema (docs/performance.md, idle RSS).
// compareSchema is ours and fixed, so compiling it late cannot turn into a late start error.
let compiled: ValidateFunction | undefined;
function compareValidator(): ValidateFunction {
  if (!compiled) {
    // ajv itself is required here, with the first compare block: a runner without one never loads it.
    const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
    compiled = new Ajv({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false }).compile(compareSchema);
  }
  return compiled;
}

function firstError(errors: ErrorObject[] | null | undefined): ErrorObject | undefined {
  // oneOf reports each branch; the most specific message is the deepest path.
  return [...(errors ?? [])].sort((a, b) => b.instancePath.length - a.instancePath.length)[0];
}

/**
 * Validates and parses a `compare` block. `at` is where the block sits in the whole conf
 * (`/compare`), so errors name the field an operator has to fix.
 */
export function parseCompareConf(raw: unknown, at = '/compare'): CompareConf {
  const value: unknown = raw === undefined ? {} : structuredClone(raw);
  const validate = compareValidator();
  if (!validate(value)) {
    const e = firstError(validate.errors);
    throw new ConfError(`${at}${e?.instancePath ?? ''}`, e?.message ?? 'invalid');
  }
  const v = value as Record<string, unknown>;
  return {
    route: typeof v.route === 'string' ? v.route : undefined,
    status: v.status !== false,
    headers: parseHeaders(v.headers),
    body: parseBody(v.body, at),
    secondary: typeof v.secondary === 'string' ? v.secondary : undefined,
    noiseMinSamples: v.noise_min_samples as number,
    noiseMinRate: v.noise_min_rate as number,
    maxPending: v.max_pending as number,
    maxPendingBytes: v.max_pending_bytes as number,
    maxAgeMs: v.max_age === undefined ? DEFAULT_MAX_AGE_MS : parseDuration(v.max_age, `${at}/max_age`),
    examples: v.examples as number,
  };
}

function lowerSet(names: unknown): Set<string> {
  return new Set(Array.isArray(names) ? names.map((n) => String(n).toLowerCase()) : []);
}

function parseHeaders(h: unknown): HeaderSelection {
  if (h === false) return { mode: 'off' };
  if (typeof h === 'object' && h !== null && 'include' in h) {
    return { mode: 'include', names: lowerSet((h as { include: unknown }).include) };
  }
  const extra = typeof h === 'object' && h !== null ? lowerSet((h as { ignore?: unknown }).ignore) : new Set<string>();
  return { mode: 'ignore', names: new Set([...DEFAULT_IGNORED_HEADERS, ...extra]) };
}

function parseBody(b: unknown, at: string): CompareConf['body'] {
  if (b === false) return undefined;
  const o = (typeof b === 'object' && b !== null ? b : {}) as { ignore?: string[]; max_bytes?: number };
  const ignore = (o.ignore ?? []).map((p, i) => {
    try {
      return parseIgnorePattern(p);
    } catch (err) {
      throw new ConfError(`${at}/body/ignore/${i}`, (err as Error).message);
    }
  });
  return { ignore, maxBytes: o.max_bytes ?? DEFAULT_BODY_MAX_BYTES };
}
