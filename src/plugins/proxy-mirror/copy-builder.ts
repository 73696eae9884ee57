/**
 * Builds the copy of a request: method, URI (path modes, raw query), headers (hop-by-hop
 * removed, Host as APISIX gave it, edits, marker, correlation id, Content-Length) and body.
 * Pure functions: everything they need is passed in.
 */
import type { HttpMethod, TextPair } from '../../plugin-api/index.js';
import type { ProxyMirrorConf } from './conf.js';
import type { RawCopy } from '../../mirror-dispatch/copy-head.js';

// The header rules live with the dispatch engine, which applies them in a worker too.
export { HOP_BY_HOP, buildCopyHeaders, type CopyHeaderContext, type HeadEdits } from '../../mirror-dispatch/copy-headers.js';

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

const PCHAR = /[A-Za-z0-9\-._~!$&'()*+,;=:@/]/;
const ALL_PCHAR = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;
const HEX2 = /^[0-9A-Fa-f]{2}$/;

/**
 * Percent-encodes a path for the request line. APISIX hands pre-req plugins the decoded path
 * (`/a b`) and post-req plugins an already encoded upstream URI (`/a%20b`), so a `%` that
 * starts a valid escape is kept and everything outside RFC 3986 `pchar` is encoded.
 */
export function encodeMirrorPath(path: string): string {
  // The common path needs no escape: one test instead of one per character.
  if (ALL_PCHAR.test(path)) return path;
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const ch = path[i]!;
    if (ch === '%') {
      out += HEX2.test(path.slice(i + 1, i + 3)) ? '%' : '%25';
    } else if (PCHAR.test(ch)) {
      out += ch;
    } else {
      const cp = path.codePointAt(i)!;
      const s = String.fromCodePoint(cp);
      if (s.length === 2) i++;
      for (const b of Buffer.from(s, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return out;
}

/** Encodes parsed args back into a query string (used only when APISIX cannot give the raw one). */
export function encodeArgs(args: readonly TextPair[]): string {
  return args
    .map((a) => (a.value === undefined ? encodeURIComponent(a.name) : `${encodeURIComponent(a.name)}=${encodeURIComponent(a.value)}`))
    .join('&');
}

/** The copy's URI: APISIX's path modes, then `?` and the raw query when there is one. */
export function mirrorUri(
  conf: Pick<ProxyMirrorConf, 'path' | 'pathConcatMode'>,
  requestPath: string,
  rawQuery: string | undefined,
): string {
  const reqPath = encodeMirrorPath(requestPath || '/');
  let path: string;
  if (conf.path === undefined) path = reqPath;
  else if (conf.pathConcatMode === 'prefix') path = conf.path + reqPath;
  else path = conf.path;
  return rawQuery !== undefined && rawQuery !== '' ? `${path}?${rawQuery}` : path;
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
