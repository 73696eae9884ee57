/**
 * The bits of nginx / ngx_lua URI handling the gateway emulator needs: `$uri` (decoded and
 * normalised path), query args as `ngx.req.get_uri_args` returns them, `ngx.encode_args`,
 * and the escaping APISIX applies to a runner's Rewrite path (`core.utils.uri_safe_encode`).
 */

/** An arg as ngx_lua sees it: `true` stands for a valueless arg (`?flag`). */
export type ArgValue = string | true;

/** Percent-decodes to bytes, then reads them as UTF-8 (nginx keeps bytes; we need a string). */
export function percentDecode(text: string, plusAsSpace = false): string {
  const bytes: number[] = [];
  const src = Buffer.from(text, 'utf8');
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === 0x25 && i + 2 < src.length && /^[0-9a-fA-F]{2}$/.test(String.fromCharCode(src[i + 1]!, src[i + 2]!))) {
      bytes.push(parseInt(String.fromCharCode(src[i + 1]!, src[i + 2]!), 16));
      i += 2;
    } else if (plusAsSpace && c === 0x2b) {
      bytes.push(0x20);
    } else {
      bytes.push(c);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** nginx `$uri`: the decoded path with `//` merged and `.`/`..` segments resolved. */
export function normalizedUri(rawPath: string): string {
  const decoded = percentDecode(rawPath).replace(/\/{2,}/g, '/');
  const out: string[] = [];
  const segments = decoded.split('/');
  segments.forEach((seg, i) => {
    if (seg === '.') { if (i === segments.length - 1) out.push(''); return; }
    if (seg === '..') { if (out.length > 1) out.pop(); if (i === segments.length - 1) out.push(''); return; }
    out.push(seg);
  });
  const joined = out.join('/');
  return joined.startsWith('/') ? joined : `/${joined}`;
}

/**
 * `ngx.req.get_uri_args()` as an ordered list: names in first-appearance order, repeated
 * names' values consecutive (APISIX walks a Lua table, whose order is unspecified anyway).
 */
export function parseArgs(query: string | undefined): Map<string, ArgValue[]> {
  const args = new Map<string, ArgValue[]>();
  if (!query) return args;
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = percentDecode(eq < 0 ? part : part.slice(0, eq), true);
    if (name === '') continue;
    const value: ArgValue = eq < 0 ? true : percentDecode(part.slice(eq + 1), true);
    const list = args.get(name);
    if (list) list.push(value);
    else args.set(name, [value]);
  }
  return args;
}

/** `ngx.encode_args`: valueless args as bare names, repeated names repeated. */
export function encodeArgs(args: ReadonlyMap<string, readonly ArgValue[]>): string {
  const parts: string[] = [];
  for (const [name, values] of args) {
    for (const v of values) parts.push(v === true ? escapeArg(name) : `${escapeArg(name)}=${escapeArg(v)}`);
  }
  return parts.join('&');
}

function escapeArg(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

// nginx NGX_ESCAPE_URI set (recent nginx): controls, space, " # % < > ? \ ^ ` { | } DEL and >= 0x80.
const URI_UNSAFE = new Set([0x20, 0x22, 0x23, 0x25, 0x3c, 0x3e, 0x3f, 0x5c, 0x5e, 0x60, 0x7b, 0x7c, 0x7d, 0x7f]);

/** What APISIX does to a Rewrite `path` before using it as the upstream URI. */
export function uriSafeEncode(path: string): string {
  let out = '';
  for (const b of Buffer.from(path, 'utf8')) {
    out += b < 0x20 || b >= 0x80 || URI_UNSAFE.has(b) ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  }
  return out;
}
