/**
 * The header entries of an HTTPReqCall as bytes, for a built-in plugin that copies them without
 * decoding them (proxy-mirror builds its copy's request head straight from these bytes). Not
 * part of the plugin API: a request view that does not offer them (a test double, or a call
 * whose headers a plugin edited) gives undefined and the caller uses headerEntries().
 */
import type { HeaderBytes } from '../mirror-dispatch/copy-head.js';
import type { HttpRequest } from '../plugin-api/index.js';

export const RAW_HEADERS: unique symbol = Symbol('apisix-runner.raw-headers');

/** The call's bytes and where each header entry is in them. */
export type RawHeaders = HeaderBytes;

interface WithRawHeaders {
  [RAW_HEADERS]?: () => RawHeaders | undefined;
}

/** The request's header bytes, or undefined when it has none to offer (see above). */
export function rawHeadersOf(req: HttpRequest): RawHeaders | undefined {
  const read = (req as HttpRequest & WithRawHeaders)[RAW_HEADERS];
  return read ? read.call(req) : undefined;
}
