/**
 * What APISIX puts in HTTPReqCall's args for a raw query, modelled for property tests:
 * - lua-nginx-module `ngx_http_lua_ffi_req_get_uri_args` (src/ngx_http_lua_args.c): split on
 *   `&`, then at the first `=`; name and value unescaped with `ngx_http_lua_unescape_uri`
 *   (NGX_UNESCAPE_URI_COMPONENT: `%XX` decoded, `+` → space, a `%` not followed by two hex
 *   digits kept as is); pieces with an empty name dropped; a piece without `=` is `true`.
 * - apisix/plugins/ext-plugin/init.lua, the RPC_HTTP_REQ_CALL handler: `pairs(args)` emits one
 *   entry per value, a value-less entry for `true`, the values of one name in order. The
 *   order of different names is Lua's table order (unspecified); the model uses first use.
 */
import type { TextPair } from '../../../src/plugin-api/index.js';

const hex = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1);

/** ngx_http_lua_unescape_uri with NGX_UNESCAPE_URI_COMPONENT, over UTF-8 bytes. */
export function unescapeComponent(s: string): string {
  const src = Buffer.from(s, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === 0x2b) {
      out.push(0x20);
    } else if (c === 0x25 && i + 2 < src.length + 0 && hex(src[i + 1]!) >= 0 && hex(src[i + 2]!) >= 0) {
      out.push(hex(src[i + 1]!) * 16 + hex(src[i + 2]!));
      i += 2;
    } else {
      out.push(c);
    }
  }
  return Buffer.from(out).toString('utf8');
}

/** The args APISIX sends for a raw query (see above). */
export function getUriArgs(raw: string): TextPair[] {
  const byName = new Map<string, (string | undefined)[]>();
  for (const piece of raw.split('&')) {
    const eq = piece.indexOf('=');
    const name = unescapeComponent(eq < 0 ? piece : piece.slice(0, eq));
    if (name === '') continue;
    const value = eq < 0 ? undefined : unescapeComponent(piece.slice(eq + 1));
    let values = byName.get(name);
    if (!values) byName.set(name, (values = []));
    values.push(value);
  }
  const out: TextPair[] = [];
  for (const [name, values] of byName) for (const value of values) out.push({ name, value });
  return out;
}
