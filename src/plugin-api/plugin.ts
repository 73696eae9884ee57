import type { HttpRequest } from './request.js';
import type { HttpResponse } from './response.js';

/** A JSON Schema object (draft 2020-12 / draft-07 subset understood by ajv). */
export type JsonSchema = Readonly<Record<string, unknown>>;

/**
 * What happens when a plugin's conf is invalid or the plugin throws:
 * - `closed`: the RPC is answered with an error, so APISIX answers 503 (or skips the runner
 *   when the route sets `allow_degradation`). Right for auth-like plugins.
 * - `open`: the plugin is left out (bad conf) or skipped (throw); the rest of the chain and
 *   the request go on. Right for observers such as proxy-mirror.
 */
export type FailurePolicy = 'open' | 'closed';

/** The subset of a pino logger that plugins use. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** Passed to `parseConf` (PrepareConf time). */
export interface ConfContext {
  /** APISIX's idempotency key of the route conf, e.g. `route#1#ext-plugin-pre-req#22`. */
  readonly routeKey: string;
  /** Position of this entry in the route's `conf` array. */
  readonly index: number;
  readonly logger: Logger;
}

/** Passed to `onRequest` / `onResponse`. */
export interface CallContext {
  /** APISIX's idempotency key of the route conf this call runs under. */
  readonly routeKey: string;
  readonly logger: Logger;
}

/** Thrown by `parseConf` to reject a conf with a message that names the field. */
export class ConfError extends Error {
  readonly code = 'A6_ERR_INVALID_CONF';
  constructor(
    /** JSON pointer-like path of the offending field, e.g. `/timeout/connect` ('' for the whole conf). */
    readonly field: string,
    message: string,
  ) {
    super(field ? `${field}: ${message}` : message);
  }
}

/**
 * A runner plugin. The runner validates each route's conf against `confSchema` once, at
 * PrepareConf time, turns it into `Conf` with `parseConf`, and then calls `onRequest`
 * (ext-plugin-pre-req / post-req) or `onResponse` (ext-plugin-post-resp) for every request
 * of that route. Plugins never see FlatBuffers: they read and edit views.
 */
export interface Plugin<Conf = unknown> {
  /** The name used in the route's `conf` entries (`{"name": "...", "value": "..."}`). */
  readonly name: string;
  /** JSON Schema of the conf value (the parsed JSON); defaults are applied. */
  readonly confSchema?: JsonSchema;
  /** Defaults to `closed`. */
  readonly failurePolicy?: FailurePolicy;
  /** Turns the validated JSON into the object handed to every call; may throw ConfError. */
  parseConf?(value: unknown, ctx: ConfContext): Conf;
  /** Called for HTTPReqCall; read the request, edit it, stop it, or do nothing. */
  onRequest?(conf: Conf, req: HttpRequest, ctx: CallContext): void | Promise<void>;
  /** Called for HTTPRespCall; read the upstream response and change it. */
  onResponse?(conf: Conf, res: HttpResponse, ctx: CallContext): void | Promise<void>;
  /** Called when a conf is evicted from the runner's cache (release timers, clients...). */
  releaseConf?(conf: Conf): void;
}

/** Helper that keeps the conf type of a plugin object literal. */
export function definePlugin<Conf>(plugin: Plugin<Conf>): Plugin<Conf> {
  return plugin;
}
