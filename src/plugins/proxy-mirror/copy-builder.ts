/**
 * Builds the copy of a request: method, URI (path modes, raw query), headers (hop-by-hop
 * removed, Host as APISIX gave it, edits, marker, correlation id, Content-Length) and body.
 * Pure functions: everything they need is passed in.
 */
import type { HttpMethod } from '../../plugin-api/index.js';
import type { RawCopy } from '../../mirror-dispatch/copy-head.js';

// The header and URI rules live with the dispatch engine, which applies them in a worker too.
export { HOP_BY_HOP, buildCopyHeaders, type CopyHeaderContext, type HeadEdits } from '../../mirror-dispatch/copy-headers.js';
export { encodeArgs, encodeMirrorPath, mirrorUri } from '../../mirror-dispatch/copy-uri.js';

/**
 * One request copy, ready for the dispatcher. Every builder below makes the same shape (all
 * fields present, in one order): the dispatcher reads them per copy, and one shape keeps those
 * reads monomorphic.
 */
export interface MirrorCopy {
  readonly method: HttpMethod;
  /** Path plus `?query` when the request had args. */
  readonly uri: string;
  /** Header entries, names lower case, repeated names kept in order. */
  readonly headers: readonly (readonly [string, string])[];
  /** Undefined = no body sent. */
  readonly body: Buffer | undefined;
  /** Rough memory held by the copy, for the queue's byte bound. */
  readonly sizeBytes: number;
  /** The request head built from the call's bytes (copy-head.ts); `headers` is then empty. */
  readonly head: Buffer | undefined;
  /** The call's header bytes and the edits, for a head built in a dispatch worker; `headers` is then empty. */
  readonly raw: RawCopy | undefined;
}

/** The header list of a copy whose head is bytes (built, or built in a worker): one frozen empty list, not one per copy. */
const NO_HEADERS: readonly (readonly [string, string])[] = Object.freeze([]);

/** A MirrorCopy whose head was built from the call's bytes (copy-head.ts). */
export function copyWithHead(method: HttpMethod, uri: string, head: Buffer, body: Buffer | undefined): MirrorCopy {
  return { method, uri, headers: NO_HEADERS, body, sizeBytes: head.length + 64 + (body ? body.length : 0), head, raw: undefined };
}

/**
 * A MirrorCopy whose head a dispatch worker builds from the call's bytes. Its size counts the
 * whole buffer those bytes are a view of (what a queued copy keeps in memory).
 */
export function copyWithRaw(method: HttpMethod, uri: string, raw: RawCopy, body: Buffer | undefined): MirrorCopy {
  return { method, uri, headers: NO_HEADERS, body, sizeBytes: raw.bytes.buffer.byteLength + uri.length + 64 + (body ? body.length : 0), head: undefined, raw };
}

/** Assembles a MirrorCopy. */
export function buildCopy(
  method: HttpMethod,
  uri: string,
  headers: [string, string][],
  body: Buffer | undefined,
): MirrorCopy {
  let size = uri.length + 64;
  for (const [n, v] of headers) size += n.length + v.length + 4;
  if (body) size += body.length;
  return { method, uri, headers, body, sizeBytes: size, head: undefined, raw: undefined };
}
