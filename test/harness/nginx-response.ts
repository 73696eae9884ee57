/**
 * The bytes nginx puts on the wire for a response whose headers were set through `ngx.header`
 * (lua-nginx-module), as the gateway emulator needs them to expose framing mistakes the way a
 * real client would see them. Models nginx's src/http/ngx_http_header_filter_module.c
 * (`ngx_http_header_filter`) and src/http/modules/ngx_http_chunked_filter_module.c
 * (`ngx_http_chunked_header_filter`), plus lua-nginx-module's ngx_http_lua_headers_out.c, where
 * `Content-Length` is a built-in header (it becomes `content_length_n`) and any other name, even
 * `Transfer-Encoding` or `Connection`, is written as given:
 * - no body for HEAD, 204, 304 and 1xx; 204 also loses content-type and content-length;
 * - a body without a content-length is sent chunked (HTTP/1.1), and the chunked filter adds its
 *   own `Transfer-Encoding: chunked` even when one was set through ngx.header;
 * - a content-length is sent as set: nginx does not check it against the body.
 * Differences, on purpose: the emulator ends every response with `Connection: close` and closes
 * the connection (nginx keeps it alive), so a content-length larger than the body fails the client
 * at once instead of after its timeout, and one longer is seen as a truncated body.
 */

/** The response state when nginx sends the header: status, `ngx.header` (names lower case), body. */
export interface NginxResponse {
  readonly method: string;
  readonly status: number;
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly body: Buffer | undefined;
}

/** What is written: the header lines (for tests to inspect) and the whole byte string. */
export interface NginxWire {
  readonly headerLines: readonly string[];
  readonly bytes: Buffer;
}

const REASONS: Readonly<Record<number, string>> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 301: 'Moved Permanently', 302: 'Moved Temporarily',
  304: 'Not Modified', 400: 'Bad Request', 404: 'Not Found', 500: 'Internal Server Error', 502: 'Bad Gateway',
  503: 'Service Temporarily Unavailable',
};

/** Builds the response bytes nginx would send (see the module comment for what is modelled). */
export function nginxWire(r: NginxResponse): NginxWire {
  const headerOnly = r.method === 'HEAD' || r.status === 204 || r.status === 304 || (r.status >= 100 && r.status < 200);
  const lines: string[] = [];
  let contentLength: string | undefined;
  for (const [name, values] of r.headers) {
    if (name === 'content-length') {
      // Built-in header: one value, the last one set.
      contentLength = values.at(-1);
      continue;
    }
    if (r.status === 204 && name === 'content-type') continue;
    for (const v of values) lines.push(`${canonical(name)}: ${v}`);
  }
  if (contentLength !== undefined && r.status !== 204) lines.push(`Content-Length: ${contentLength}`);
  const chunked = !headerOnly && contentLength === undefined;
  if (chunked) lines.push('Transfer-Encoding: chunked');
  lines.push('Connection: close');
  const head = `HTTP/1.1 ${r.status} ${REASONS[r.status] ?? 'Unknown'}\r\n${lines.join('\r\n')}\r\n\r\n`;
  const parts: Buffer[] = [Buffer.from(head, 'latin1')];
  const body = r.body ?? Buffer.alloc(0);
  if (!headerOnly) {
    if (chunked) {
      if (body.length > 0) parts.push(Buffer.from(`${body.length.toString(16)}\r\n`, 'latin1'), body, Buffer.from('\r\n'));
      parts.push(Buffer.from('0\r\n\r\n'));
    } else {
      parts.push(body);
    }
  }
  return { headerLines: lines, bytes: Buffer.concat(parts) };
}

/** `content-type` → `Content-Type` (nginx writes the name as the Lua code spelled it; APISIX lower-cases). */
function canonical(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}
