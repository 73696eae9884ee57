/**
 * The copy's request target: APISIX's path modes, the path percent-encoded, then the query.
 * Used on the RPC thread, and in a dispatch worker for a copy whose target is built there from
 * the call's bytes (uriOfCall): the RPC thread then decodes neither the path nor the args.
 */
import type { TextPair } from '../plugin-api/index.js';
import { HttpReqCallMessage } from '../protocol/messages.js';
import { rebuildExactQuery } from './query-rebuild.js';

/** How a conf makes a copy's target from the request's path and args. */
export interface UriRule {
  /** The conf's `path`, undefined: the request's. */
  readonly path: string | undefined;
  readonly pathConcatMode: 'replace' | 'prefix';
  /** proxy-mirror's `query` (only `auto` and `rebuilt` can be built from the args alone). */
  readonly query: 'auto' | 'raw' | 'rebuilt';
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
  conf: Pick<UriRule, 'path' | 'pathConcatMode'>,
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

/**
 * The target of a copy of the HTTPReqCall whose payload is `payload`, by `rule`: what the RPC
 * thread's mirrorUri(rule, req.path, query) gives when no plugin edited the path or the args,
 * the query being rebuilt from the args (`auto`: rebuildExactQuery; `rebuilt`: encodeArgs).
 * Undefined when the args cannot give the query (`auto` with args that literalArgs refuses,
 * `raw` with args): the RPC thread never hands such a copy over without its target.
 */
export function uriOfCall(payload: Buffer, rule: UriRule): string | undefined {
  const call = new HttpReqCallMessage(payload);
  const args = call.args;
  const query = queryOfArgs(rule, args);
  if (query === undefined && args.length > 0) return undefined;
  return mirrorUri(rule, call.path, query);
}

/**
 * The query the args give by `rule` (`auto`: rebuildExactQuery; `rebuilt`: encodeArgs; `raw`:
 * none), undefined without args or when they do not give it.
 */
export function queryOfArgs(rule: Pick<UriRule, 'query'>, args: readonly TextPair[]): string | undefined {
  if (args.length === 0) return undefined;
  if (rule.query === 'rebuilt') return encodeArgs(args);
  return rule.query === 'auto' ? rebuildExactQuery(args) : undefined;
}
