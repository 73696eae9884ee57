/**
 * The header entries of an HTTPReqCall as bytes, for a built-in plugin that copies them without
 * decoding them (proxy-mirror builds its copy's request head straight from these bytes). Not
 * part of the plugin API: a request view that does not offer them (a test double, or a call
 * whose headers a plugin edited) gives undefined and the caller uses headerEntries().
 */
import type { HttpRequest } from '../plugin-api/index.js';

export const RAW_HEADERS: unique symbol = Symbol('apisix-runner.raw-headers');

export interface RawHeaders {
  /** The call's bytes. */
  readonly bytes: Buffer;
  /** Four int32 per entry: name start, end, value start, end (-1, -1: no value). */
  readonly spans: Int32Array;
  /** Every name is ASCII. */
  readonly ascii: boolean;
}

interface WithRawHeaders {
  [RAW_HEADERS]?: () => RawHeaders | undefined;
}

/** The request's header bytes, or undefined when it has none to offer (see above). */
export function rawHeadersOf(req: HttpRequest): RawHeaders | undefined {
  const read = (req as HttpRequest & WithRawHeaders)[RAW_HEADERS];
  return read ? read.call(req) : undefined;
}
