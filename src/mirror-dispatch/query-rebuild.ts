/**
 * When the copy's query can be rebuilt exactly from the args APISIX already sent in the
 * HTTPReqCall, so the copy costs no `Var args` ExtraInfo round trip.
 *
 * APISIX builds the call's args with `core.request.get_uri_args(ctx)`
 * (apisix/plugins/ext-plugin/init.lua, the RPC_HTTP_REQ_CALL handler), i.e. lua-nginx-module's
 * `ngx.req.get_uri_args` (ngx_http_lua_args.c, ngx_http_lua_ffi_req_get_uri_args): the raw query
 * is split on `&`, each piece at its first `=`, name and value are unescaped (`%XX` and `+`),
 * pieces with an empty name are dropped, a piece without `=` becomes a value-less arg, and the
 * result is a Lua table, so the order of *different* names is lost (values of one name keep
 * theirs). Decoding is many-to-one, so a raw query is recoverable only when nothing in it was
 * escaped and only one name occurs:
 *
 * - exactly one distinct name, fewer than 100 args (the Lua side may cap the count);
 * - the name made only of characters a query carries literally (RFC 3986 unreserved, sub-delims
 *   except `&`, `=`, `+`, plus `:`, `@`, `/`, `?`), values the same plus `=`; no `%`, `+`, space,
 *   `#` or non-ASCII, whose raw spelling the runner cannot know.
 *
 * For such args the rebuilt query decodes to exactly the same args, and equals the client's
 * bytes unless the client escaped a character that needs no escaping (`%61` for `a`) or sent
 * empty pieces (`a=1&&a=2`, `&=x`), which APISIX's decoding does not report.
 * test/plugins/proxy-mirror/query-rebuild.test.ts proves both with property tests.
 *
 * It lives with the dispatch engine because a dispatch worker rebuilds the query too: a copy
 * sent from a worker carries the call's bytes, and the worker builds its request target from
 * them (copy-uri.ts). The RPC thread then only checks, on the bytes, that the query is
 * rebuildable (literalArgs below).
 */
import type { TextPair } from '../plugin-api/index.js';

const LITERAL_NAME = /^[A-Za-z0-9\-._~!$'()*,;:@/?]+$/;
const LITERAL_VALUE = /^[A-Za-z0-9\-._~!$'()*,;:@/?=]*$/;

/** Args at or above this count may have been cut by the Lua side: never rebuilt. */
export const MAX_REBUILT_ARGS = 100;

/** The exact query for these args, or undefined when it must be asked from APISIX. */
export function rebuildExactQuery(args: readonly TextPair[]): string | undefined {
  const n = args.length;
  if (n === 0 || n >= MAX_REBUILT_ARGS) return undefined;
  const name = args[0]!.name;
  if (!LITERAL_NAME.test(name)) return undefined;
  let out = '';
  for (let i = 0; i < n; i++) {
    const a = args[i]!;
    if (a.name !== name) return undefined;
    if (i > 0) out += '&';
    if (a.value === undefined) {
      out += name;
    } else {
      if (!LITERAL_VALUE.test(a.value)) return undefined;
      out += `${name}=${a.value}`;
    }
  }
  return out;
}

// The two character sets above as byte tables, for literalArgs.
const NAME_BYTE = new Uint8Array(128);
const VALUE_BYTE = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  NAME_BYTE[c] = LITERAL_NAME.test(ch) ? 1 : 0;
  VALUE_BYTE[c] = LITERAL_VALUE.test(ch) ? 1 : 0;
}

/**
 * `rebuildExactQuery(args) !== undefined` for the args whose UTF-8 bytes `spans` locate in
 * `b` (four numbers per arg: name start, end, value start, end; -1, -1 for no value), decided
 * on the bytes, without decoding a string. Both sets are ASCII, where decoding is the identity,
 * and any byte ≥ 0x80 is refused; so is a name that differs from the first name by a byte,
 * which (the first being ASCII) is exactly a name that differs once decoded.
 * query-rebuild.test.ts checks the equality on generated args, invalid UTF-8 included.
 */
export function literalArgs(b: Uint8Array, spans: ArrayLike<number>): boolean {
  const n = spans.length >> 2;
  if (n === 0 || n >= MAX_REBUILT_ARGS) return false;
  const s0 = spans[0]!;
  const e0 = spans[1]!;
  const len = e0 - s0;
  if (len <= 0) return false;
  for (let k = s0; k < e0; k++) {
    const c = b[k]!;
    if (c >= 128 || NAME_BYTE[c] === 0) return false;
  }
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    if (i > 0) {
      const s = spans[o]!;
      if (spans[o + 1]! - s !== len) return false;
      for (let k = 0; k < len; k++) if (b[s + k] !== b[s0 + k]) return false;
    }
    const vs = spans[o + 2]!;
    if (vs < 0) continue;
    const ve = spans[o + 3]!;
    for (let k = vs; k < ve; k++) {
      const c = b[k]!;
      if (c >= 128 || VALUE_BYTE[c] === 0) return false;
    }
  }
  return true;
}
