/**
 * The header entries (and the path and args) of an HTTPReqCall as bytes, for a built-in plugin
 * that copies them without decoding them (proxy-mirror builds its copy's request head straight
 * from these bytes, and from a dispatch worker its request target too). Not part of the plugin
 * API: a request view that does not offer them (a test double, or a call whose headers, path or
 * args a plugin edited) gives undefined and the caller uses the decoded request.
 */
import type { HeaderBytes } from '../mirror-dispatch/copy-head.js';
import type { HttpRequest } from '../plugin-api/index.js';

export const RAW_HEADERS: unique symbol = Symbol('apisix-runner.raw-headers');
export const RAW_CALL: unique symbol = Symbol('apisix-runner.raw-call');

/** The call's bytes and where each header entry is in them. */
export type RawHeaders = HeaderBytes;

/** The call's bytes and where its args are in them, while no plugin has edited the path or an arg. */
export interface RawCall {
  readonly bytes: Buffer;
  /** Four numbers per arg: name start, end, value start, end (-1, -1: no value). */
  readonly argSpans: readonly number[];
}

/** What the runner's own request view (server/request-state.ts) offers beyond the plugin API. */
interface RequestInternals {
  [RAW_HEADERS]?: () => RawHeaders | undefined;
  [RAW_CALL]?: () => RawCall | undefined;
}

const internals = (req: HttpRequest): RequestInternals => req as HttpRequest & RequestInternals;

/** The request's header bytes, or undefined when it has none to offer (see above). */
export function rawHeadersOf(req: HttpRequest): RawHeaders | undefined {
  return internals(req)[RAW_HEADERS]?.call(req);
}

/**
 * The request's path and args as the call's bytes (a dispatch worker builds a copy's target
 * from them), or undefined when a plugin edited the path or the args, or the request view has
 * no bytes to offer.
 */
export function rawCallOf(req: HttpRequest): RawCall | undefined {
  return internals(req)[RAW_CALL]?.call(req);
}
