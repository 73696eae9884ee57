/**
 * JSON Schema of the `proxy-mirror` conf value. The APISIX fields (host, path,
 * path_concat_mode, sample_ratio) keep APISIX's names, patterns, defaults and limits; the
 * rest are the runner's optional extensions (see docs/proxy-mirror.md). Defaults that come
 * from the runner's settings (timeouts, size and queue limits) are filled in by parseConf,
 * not here, because a schema default cannot depend on the operator's configuration.
 */
import type { JsonSchema } from '../../plugin-api/index.js';
import { compareSchema } from '../../mirror-compare/conf.js';
import { DURATION_PATTERN } from './duration.js';

/** Largest body one ExtraInfo frame can carry: 2^24 - 1 minus room for the FlatBuffers table. */
export const MAX_FRAME_BODY_BYTES = 16_777_215 - 1024;

/** Methods APISIX can report (A6.Method). */
export const MIRROR_METHODS = [
  'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'MKCOL', 'COPY', 'MOVE', 'OPTIONS',
  'PROPFIND', 'PROPPATCH', 'LOCK', 'UNLOCK', 'PATCH', 'TRACE',
] as const;

// APISIX's own pattern, written for JavaScript (no `\/` escapes, valid with the `u` flag).
export const HOST_PATTERN = '^(http(s)?|grpc(s)?)://([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?$';
export const PATH_PATTERN = '^/[^?&]+$';
export { DURATION_PATTERN };
/** Largest weight of a node in a list of nodes. */
export const MAX_NODE_WEIGHT = 100;
const HEADER_NAME_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

const duration: JsonSchema = {
  oneOf: [
    { type: 'number', exclusiveMinimum: 0, maximum: 3_600_000 },
    { type: 'string', pattern: DURATION_PATTERN },
  ],
};

const headerName: JsonSchema = { type: 'string', minLength: 1, maxLength: 256, pattern: HEADER_NAME_PATTERN };

/** The conf schema handed to the runner (validated with ajv at PrepareConf, defaults applied). */
export const proxyMirrorSchema: JsonSchema = {
  type: 'object',
  properties: {
    // ---- APISIX's fields --------------------------------------------------------------
    // APISIX's string form, or (runner extension) a list of nodes with optional weights.
    host: {
      oneOf: [
        { type: 'string', pattern: HOST_PATTERN },
        {
          type: 'array',
          minItems: 1,
          maxItems: 64,
          items: {
            oneOf: [
              { type: 'string', pattern: HOST_PATTERN },
              {
                type: 'object',
                properties: {
                  host: { type: 'string', pattern: HOST_PATTERN },
                  weight: { type: 'integer', minimum: 1, maximum: MAX_NODE_WEIGHT },
                },
                required: ['host'],
                additionalProperties: false,
              },
            ],
          },
        },
      ],
    },
    path: { type: 'string', pattern: PATH_PATTERN },
    path_concat_mode: { type: 'string', enum: ['replace', 'prefix'], default: 'replace' },
    sample_ratio: { type: 'number', minimum: 0.00001, maximum: 1, default: 1 },
    // ---- the runner's extensions ------------------------------------------------------
    timeout: {
      type: 'object',
      properties: { connect: duration, read: duration, send: duration },
      additionalProperties: false,
    },
    sample_key: { type: 'string', pattern: '^(header|arg|var):[^\\s:]+$' },
    methods: {
      type: 'array',
      items: { type: 'string', enum: [...MIRROR_METHODS] },
      minItems: 1,
      uniqueItems: true,
    },
    headers: {
      type: 'object',
      properties: {
        set: {
          type: 'object',
          propertyNames: { pattern: HEADER_NAME_PATTERN },
          additionalProperties: { type: 'string', pattern: '^[^\\r\\n\\u0000]*$' },
        },
        remove: { type: 'array', items: headerName, uniqueItems: true },
      },
      additionalProperties: false,
    },
    mark_header: headerName,
    correlation_header: headerName,
    max_body_size: { type: 'integer', minimum: 0, maximum: MAX_FRAME_BODY_BYTES },
    body_over_limit: { type: 'string', enum: ['skip', 'send_without_body'], default: 'skip' },
    query: { type: 'string', enum: ['auto', 'raw', 'rebuilt'], default: 'auto' },
    grpc_methods: {
      type: 'array',
      items: { type: 'string', pattern: '^/[^/\\s]+/([^/\\s]+|\\*)$' },
      uniqueItems: true,
      default: [],
    },
    max_concurrency: { type: 'integer', minimum: 1, maximum: 10_000 },
    max_queue: { type: 'integer', minimum: 0, maximum: 1_000_000 },
    max_queue_bytes: { type: 'integer', minimum: 0 },
    tls_verify: { type: 'boolean', default: true },
    // Shadow comparison of the target's answers with the real ones (docs/compare.md).
    compare: compareSchema,
  },
  required: ['host'],
  // Like APISIX, unknown fields are accepted (parseConf logs them so a typo is visible).
};

/** The field names the schema knows, for the unknown-field warning. */
export const KNOWN_FIELDS: ReadonlySet<string> = new Set(
  Object.keys((proxyMirrorSchema as { properties: Record<string, unknown> }).properties),
);
