/**
 * GatewayEmulator — a TEST INSTRUMENT, not a gateway. An HTTP server on 127.0.0.1 that, for
 * each client request, does what APISIX does for a route with `ext-plugin-pre-req`,
 * `ext-plugin-post-req` and `ext-plugin-post-resp` (following apisix/plugins/ext-plugin/init.lua
 * and ext-plugin-post-resp.lua), talking to a real runner through ApisixClient, and proxies to
 * the route's upstream with undici. It exists so the runner can be tested end to end on a
 * machine without APISIX; the same scenarios run against real APISIX in test/e2e/apisix.test.ts.
 *
 * What it emulates (each piece names its APISIX / nginx source where it is implemented; the
 * table in docs/testing.md says which were also observed on APISIX 3.18):
 * - route match by path prefix (longest first); 404 when none matches;
 * - HTTPReqCall built like init.lua: decoded, normalised path (`$uri`) in pre-req, the upstream
 *   URI (percent-encoded, query moved to args) once a Rewrite set one; args as
 *   ngx.req.get_uri_args (valueless = no value, repeated = repeated); headers lower case,
 *   repeated kept, `host` replaced by the upstream host; src_ip as `$binary_remote_addr`;
 * - ExtraInfo: ReqBody, RespBody (post-resp) and vars as apisix/core/ctx.lua and apisix/init.lua
 *   serve them (`request_uri` normalised, `real_request_uri` raw, cookie_*, http_*, arg_*...);
 * - Stop (status 0 → 200, lower-cased headers, repeated names add, empty body = no body);
 * - Rewrite (path re-escaped like nginx, header set/delete, `host` sets the upstream host,
 *   arg delete/multi-value, body replace, resp_headers minus APISIX's excluded list);
 * - CONF_TOKEN_NOT_FOUND retries, 503 vs `allow_degradation`;
 * - post-resp as init.lua's HTTPRespCall handler and ext-plugin-post-resp.lua's `before_proxy`
 *   apply the answer (`applyRespCallAnswer`);
 * - the client response written with nginx's framing (nginx-response.ts), so a stale
 *   content-length or a doubled transfer-encoding reaches the client as it would through nginx.
 *
 * What it does not: other APISIX plugins, load balancing, TLS, streaming (bodies are buffered),
 * keep-alive to the client (it closes after each response); upstream header names reach
 * HTTPRespCall lower-cased (undici lower-cases them; APISIX keeps the upstream's spelling).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request as undiciRequest } from 'undici';
import { ApisixClient, type Entry, type ReqCallOutcome, type RespCallOutcome, type RouteConf } from './apisix-client.js';
import { encodeArgs, normalizedUri, parseArgs, uriSafeEncode, type ArgValue } from './nginx-uri.js';
import { nginxWire } from './nginx-response.js';

export type ExtPhase = 'ext-plugin-pre-req' | 'ext-plugin-post-req' | 'ext-plugin-post-resp';

/** One ext-plugin-* plugin's conf on a route, as users write it in APISIX. */
export interface ExtPluginConf {
  readonly conf?: readonly { readonly name: string; readonly value: string }[];
  readonly allow_degradation?: boolean;
}

export interface GatewayRoute {
  readonly id: string;
  /** Path prefix this route serves. */
  readonly uri: string;
  /** Bumped on every change, like etcd's modifiedIndex: it is part of the PrepareConf key. */
  readonly version?: number;
  /** Upstream origin, e.g. `http://127.0.0.1:8080`. */
  readonly upstream: string;
  /** APISIX `pass_host`: `pass` (client's Host, default), `node` (upstream's host:port) or `rewrite` with upstreamHost. */
  readonly passHost?: 'pass' | 'node' | 'rewrite';
  readonly upstreamHost?: string;
  readonly plugins: Partial<Record<ExtPhase, ExtPluginConf>>;
  /** Custom nginx variables this route defines (answered to ExtraInfo Var). */
  readonly vars?: Readonly<Record<string, string>>;
}

export interface GatewayOptions {
  readonly socketPath: string;
  readonly routes: readonly GatewayRoute[];
  /** ApisixClient read timeout (APISIX: 60 s). */
  readonly readTimeoutMs?: number;
  /** Worker id and first counter of call ids (to reproduce recorded ids). */
  readonly workerId?: number;
  readonly initialCounter?: number;
}

/** What happened to one client request, for tests to inspect. */
export interface GatewayEvent {
  readonly routeId: string | undefined;
  readonly status: number;
  readonly phases: { readonly phase: ExtPhase; readonly outcome: ReqCallOutcome | RespCallOutcome; readonly degraded: boolean }[];
  /** The response header lines written to the client, as nginx would write them. */
  readonly headerLines: readonly string[];
}

// apisix/plugins/ext-plugin/init.lua, `exclude_resp_header`: ignored in a Rewrite's
// resp_headers, and left out when the HTTPRespCall handler copies the upstream's headers because
// the runner's answer had none.
const EXT_PLUGIN_EXCLUDED = new Set([
  'connection', 'content-length', 'transfer-encoding', 'location', 'server', 'www-authenticate',
  'content-encoding', 'content-type', 'content-location', 'content-language',
]);

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

const UNAVAILABLE_BODY = '<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>APISIX gateway emulator</center>\r\n</body>\r\n</html>\r\n';

/** The mutable state of one request as it goes through the phases (APISIX's ctx). */
interface RequestState {
  readonly route: GatewayRoute;
  readonly method: string;
  /** The client's raw request line target: nginx `$request_uri`, APISIX's `real_request_uri`. */
  readonly requestUri: string;
  /** APISIX's `request_uri`: normalised, decoded `uri` + `is_args` + `args` (apisix/init.lua, http_access_phase). */
  readonly normalizedRequestUri: string;
  readonly remoteAddr: string;
  readonly remotePort: number;
  /** nginx `$request_id` (ngx_http_variables.c, ngx_http_variable_request_id): 16 random bytes as 32 hex digits. */
  readonly requestId: string;
  /** `$uri`. */
  uri: string;
  /** `$upstream_uri`, '' until something sets it. */
  upstreamUri: string;
  /** `$upstream_host`. */
  upstreamHost: string;
  /** The query as a list (ngx.req.get_uri_args order). */
  args: Map<string, ArgValue[]>;
  /** `$args`: undefined when the request had no query. */
  rawArgs: string | undefined;
  /** Request headers, names lower case, in arrival order. */
  headers: Map<string, string[]>;
  body: Buffer | undefined;
  /** Response headers set by a Rewrite or a Stop, applied to whatever answers the client. */
  respHeaders: Map<string, string[]>;
}

export class GatewayEmulator {
  private routes: GatewayRoute[];
  private readonly server: Server;
  private readonly agent = new Agent({ keepAliveTimeout: 10_000, connections: 64 });
  /** The APISIX-side ext-plugin client (one per "worker"). */
  readonly client: ApisixClient;
  /** Last requests (bounded), newest last. */
  readonly events: GatewayEvent[] = [];
  private port = 0;

  private constructor(options: GatewayOptions) {
    this.routes = [...options.routes];
    this.client = new ApisixClient({
      socketPath: options.socketPath,
      readTimeoutMs: options.readTimeoutMs,
      workerId: options.workerId,
      initialCounter: options.initialCounter,
    });
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`gateway emulator failure: ${err instanceof Error ? err.message : String(err)}\n`);
        } else {
          res.destroy();
        }
      });
    });
  }

  /** Starts the emulator on 127.0.0.1 (port 0 = any free port). */
  static async start(options: GatewayOptions, port = 0): Promise<GatewayEmulator> {
    const gw = new GatewayEmulator(options);
    await new Promise<void>((resolve, reject) => {
      gw.server.once('error', reject);
      gw.server.listen(port, '127.0.0.1', () => resolve());
    });
    gw.port = (gw.server.address() as AddressInfo).port;
    return gw;
  }

  /** Base URL of the emulator, e.g. `http://127.0.0.1:41234`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Replaces the route table (bump a route's version to make APISIX send a new PrepareConf). */
  setRoutes(routes: readonly GatewayRoute[]): void {
    this.routes = [...routes];
  }

  /** Stops the HTTP server, the upstream agent and the runner connections. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.client.close();
    await this.agent.close();
  }

  private record(event: GatewayEvent): void {
    this.events.push(event);
    if (this.events.length > 1000) this.events.shift();
  }

  private match(uri: string): GatewayRoute | undefined {
    let best: GatewayRoute | undefined;
    for (const r of this.routes) if (uri.startsWith(r.uri) && (!best || r.uri.length > best.uri.length)) best = r;
    return best;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestUri = req.url ?? '/';
    const q = requestUri.indexOf('?');
    const rawPath = q < 0 ? requestUri : requestUri.slice(0, q);
    const rawArgs = q < 0 ? undefined : requestUri.slice(q + 1);
    const uri = normalizedUri(rawPath);
    const route = this.match(uri);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (!route) {
      const headerLines = send(res, req.method ?? 'GET', 404, new Map([['content-type', ['text/plain; charset=utf-8']]]), Buffer.from('{"error_msg":"404 Route Not Found"}\n'));
      this.record({ routeId: undefined, status: 404, phases: [], headerLines });
      return;
    }
    const headers = new Map<string, string[]>();
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!.toLowerCase();
      const list = headers.get(name);
      if (list) list.push(req.rawHeaders[i + 1]!);
      else headers.set(name, [req.rawHeaders[i + 1]!]);
    }
    const upstream = new URL(route.upstream);
    const clientHost = headers.get('host')?.[0] ?? '';
    const state: RequestState = {
      route,
      method: req.method ?? 'GET',
      requestUri,
      normalizedRequestUri: `${uri}${rawArgs === undefined ? '' : `?${rawArgs}`}`,
      remoteAddr: req.socket.remoteAddress ?? '127.0.0.1',
      remotePort: req.socket.remotePort ?? 0,
      requestId: randomBytes(16).toString('hex'),
      uri,
      upstreamUri: '',
      upstreamHost: route.passHost === 'node' ? upstream.host : route.passHost === 'rewrite' ? route.upstreamHost ?? upstream.host : clientHost,
      args: parseArgs(rawArgs),
      rawArgs,
      headers,
      body: chunks.length ? Buffer.concat(chunks) : undefined,
      respHeaders: new Map(),
    };
    const phases: GatewayEvent['phases'] = [];
    const finish = (status: number, hdrs: Map<string, string[]>, body: Buffer | undefined): void => {
      const headerLines = send(res, state.method, status, hdrs, body);
      this.record({ routeId: route.id, status, phases, headerLines });
    };
    // `ngx.header` as APISIX's plugins leave it: Rewrite resp_headers first, then what answers.
    const withRespHeaders = (hdrs: Map<string, string[]>): Map<string, string[]> => new Map([...state.respHeaders, ...hdrs]);

    // rewrite phase (ext-plugin-pre-req), then access phase (ext-plugin-post-req)
    for (const phase of ['ext-plugin-pre-req', 'ext-plugin-post-req'] as const) {
      const conf = route.plugins[phase];
      if (!conf) continue;
      const outcome = await this.client.httpReqCall(routeConf(route, phase, conf), this.reqCallInput(state));
      const degraded = outcome.kind === 'error' && conf.allow_degradation === true;
      phases.push({ phase, outcome, degraded });
      if (outcome.kind === 'error') {
        if (degraded) continue;
        return finish(503, withRespHeaders(new Map([['content-type', ['text/html']]])), Buffer.from(UNAVAILABLE_BODY));
      }
      if (outcome.kind === 'stop') {
        const hdrs = withRespHeaders(new Map());
        setHeaders(hdrs, outcome.stop.headers ?? []);
        const body = outcome.stop.body && outcome.stop.body.length ? outcome.stop.body : undefined;
        return finish(outcome.stop.status || 200, hdrs, body);
      }
      if (outcome.kind === 'rewrite') this.applyRewrite(state, outcome);
    }

    const postResp = route.plugins['ext-plugin-post-resp'];
    const upstreamRes = await this.fetchUpstream(state);
    if (!upstreamRes) return finish(502, withRespHeaders(new Map([['content-type', ['text/plain']]])), Buffer.from('502 Bad Gateway\n'));
    if (!postResp) {
      // nginx proxy module: the upstream's headers minus hop-by-hop ones, its content-length kept.
      const hdrs = new Map<string, string[]>();
      for (const [name, values] of upstreamRes.headers) if (!HOP_BY_HOP.has(name)) hdrs.set(name, values);
      // A Rewrite's resp_headers win over the upstream's of the same name (not checked on nginx).
      return finish(upstreamRes.status, new Map([...hdrs, ...state.respHeaders]), upstreamRes.body);
    }

    // ext-plugin-post-resp (apisix/plugins/ext-plugin-post-resp.lua, `before_proxy`): APISIX
    // fetches the upstream itself and hands its answer to the runner before the client sees it.
    const upstreamEntries: Entry[] = [];
    for (const [name, values] of upstreamRes.headers) for (const v of values) upstreamEntries.push({ name, value: toRunner(v) });
    const outcome = await this.client.httpRespCall(routeConf(route, 'ext-plugin-post-resp', postResp), {
      status: upstreamRes.status,
      headers: upstreamEntries,
      respBody: upstreamRes.body,
      body: state.body,
      vars: (name) => this.variable(state, name),
    });
    const degraded = outcome.kind === 'error' && postResp.allow_degradation === true;
    phases.push({ phase: 'ext-plugin-post-resp', outcome, degraded });
    const applied = applyRespCallAnswer(state.respHeaders, upstreamRes, outcome, degraded);
    return finish(applied.status, applied.headers, applied.body);
  }

  /** The HTTPReqCall input for the current state, as apisix/plugins/ext-plugin/init.lua's RPC_HTTP_REQ_CALL handler (`rpc_handlers`) builds it. */
  private reqCallInput(state: RequestState): Parameters<ApisixClient['httpReqCall']>[1] {
    let path = state.uri;
    if (state.upstreamUri !== '') {
      // An upstream URI set earlier: its query becomes the args (init.lua calls set_uri_args).
      const q = state.upstreamUri.indexOf('?');
      path = q < 0 ? state.upstreamUri : state.upstreamUri.slice(0, q);
      if (q >= 0) {
        state.rawArgs = state.upstreamUri.slice(q + 1);
        state.args = parseArgs(state.rawArgs);
      }
    }
    const args: Entry[] = [];
    for (const [name, values] of state.args) for (const v of values) args.push(v === true ? { name } : { name, value: v });
    const headers: Entry[] = [];
    for (const [name, values] of state.headers) for (const v of values) headers.push({ name, value: toRunner(name === 'host' ? state.upstreamHost : v) });
    return {
      method: state.method,
      path,
      args,
      headers,
      srcIp: state.remoteAddr,
      body: state.body,
      vars: (name) => this.variable(state, name),
    };
  }

  /**
   * `ctx.var[name]` for the request (undefined = nil): apisix/core/ctx.lua's var metatable
   * (`__index`: method, cookie_*, http_*, route_id / service_id / consumer_name, else `ngx.var`),
   * with the values apisix/init.lua (`http_access_phase`) overrides: `request_uri` becomes the
   * normalised uri + args and the raw one moves to `real_request_uri`. Not modelled: uri_param_*,
   * graphql_*, post_arg_* and variables registered by other plugins (the emulator has none).
   */
  private variable(state: RequestState, name: string): string | undefined {
    if (state.route.vars && Object.hasOwn(state.route.vars, name)) return state.route.vars[name];
    switch (name) {
      case 'uri': return state.uri;
      case 'args': return state.rawArgs;
      case 'is_args': return state.rawArgs === undefined ? '' : '?';
      case 'request_uri': return state.normalizedRequestUri;
      case 'real_request_uri': return state.requestUri;
      case 'remote_addr': return state.remoteAddr.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
      case 'remote_port': return String(state.remotePort);
      case 'server_addr': return '127.0.0.1';
      case 'server_port': return String(this.port);
      case 'host': return (state.headers.get('host')?.[0] ?? '127.0.0.1').replace(/:\d+$/, '').toLowerCase();
      case 'request_method': return state.method;
      // ctx.lua: `method` is ngx.req.get_method(), not an nginx variable.
      case 'method': return state.method;
      case 'scheme': return 'http';
      case 'server_protocol': return 'HTTP/1.1';
      case 'upstream_host': return state.upstreamHost;
      case 'upstream_uri': return state.upstreamUri;
      case 'content_type': return state.headers.get('content-type')?.[0];
      case 'content_length': return state.headers.get('content-length')?.[0];
      case 'route_id': return state.route.id;
      case 'request_id': return state.requestId;
      case 'service_id': case 'consumer_name': case 'consumer_id': return undefined;
      default:
        if (name.startsWith('cookie_')) return cookieValue(state.headers.get('cookie') ?? [], name.slice(7));
        if (name.startsWith('http_')) {
          // ctx.lua lower-cases and turns '-' into '_'; nginx (>= 1.23) joins repeated headers
          // with ", " (cookie with "; ").
          const header = name.slice(5).toLowerCase().replace(/_/g, '-');
          const values = state.headers.get(header);
          return values === undefined ? undefined : toRunner(values.join(header === 'cookie' ? '; ' : ', '));
        }
        if (name.startsWith('arg_')) return rawArg(state.rawArgs, name.slice(4));
        return undefined;
    }
  }

  /** Applies a Rewrite as apisix/plugins/ext-plugin/init.lua's RPC_HTTP_REQ_CALL handler (`rpc_handlers`) does. */
  private applyRewrite(state: RequestState, outcome: Extract<ReqCallOutcome, { kind: 'rewrite' }>): void {
    const rw = outcome.rewrite;
    const path = rw.path !== undefined ? uriSafeEncode(rw.path) : undefined;
    if (path !== undefined) state.upstreamUri = path;
    for (const h of rw.headers ?? []) {
      const name = h.name.toLowerCase();
      if (h.value === undefined) state.headers.delete(name);
      else state.headers.set(name, [fromRunner(h.value)]);
      if (name === 'host' && h.value !== undefined) state.upstreamHost = fromRunner(h.value);
    }
    if (rw.args && rw.args.length > 0) {
      const changed = new Set<string>();
      for (const a of rw.args) {
        if (a.value === undefined) {
          state.args.delete(a.name);
        } else if (changed.has(a.name)) {
          state.args.get(a.name)!.push(a.value);
        } else {
          state.args.set(a.name, [a.value]);
          changed.add(a.name);
        }
      }
      state.rawArgs = encodeArgs(state.args);
      if (path !== undefined) state.upstreamUri = `${path}?${state.rawArgs}`;
    }
    if (rw.body && rw.body.length > 0) {
      state.body = rw.body;
      state.headers.delete('transfer-encoding');
      state.headers.set('content-length', [String(rw.body.length)]);
    }
    const seen = new Set<string>();
    for (const h of rw.respHeaders ?? []) {
      const name = h.name.toLowerCase();
      if (EXT_PLUGIN_EXCLUDED.has(name) || h.value === undefined) continue;
      if (seen.has(name)) state.respHeaders.get(name)!.push(fromRunner(h.value));
      else { state.respHeaders.set(name, [fromRunner(h.value)]); seen.add(name); }
    }
  }

  /**
   * Sends the request upstream (nginx `proxy_pass $upstream_uri` with `$upstream_host`);
   * undefined when the upstream cannot be reached (502). For post-resp APISIX fetches it with
   * lua-resty-http instead (ext-plugin-post-resp.lua, `get_response`); not told apart here.
   */
  private async fetchUpstream(state: RequestState): Promise<{ status: number; headers: Map<string, string[]>; body: Buffer } | undefined> {
    let target = state.upstreamUri;
    if (target === '') {
      // Nothing rewrote the URI: the client's raw path, with the (possibly changed) query.
      const q = state.requestUri.indexOf('?');
      target = q < 0 ? state.requestUri : state.requestUri.slice(0, q);
      if (state.rawArgs !== undefined) target += `?${state.rawArgs}`;
    } else if (!target.includes('?') && state.rawArgs !== undefined) {
      // A rewritten path keeps the original query unless args changed it.
      target += `?${state.rawArgs}`;
    }
    const flat: string[] = [];
    for (const [name, values] of state.headers) {
      if (HOP_BY_HOP.has(name) || name === 'host' || name === 'content-length') continue;
      for (const v of values) flat.push(name, v);
    }
    flat.push('host', state.upstreamHost || new URL(state.route.upstream).host);
    const hasBody = state.body !== undefined && state.body.length > 0;
    if (hasBody) flat.push('content-length', String(state.body!.length));
    try {
      const res = await undiciRequest(new URL(target, state.route.upstream), {
        method: state.method as 'GET',
        headers: flat,
        body: hasBody ? state.body : undefined,
        dispatcher: this.agent,
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      const headers = new Map<string, string[]>();
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined) continue;
        headers.set(name, Array.isArray(value) ? value : [value]);
      }
      return { status: res.statusCode, headers, body };
    } catch {
      return undefined;
    }
  }
}

/** APISIX's PrepareConf key (core.lrucache.plugin_ctx_id: conf type, id, plugin, conf version) and conf for a route's ext-plugin phase. */
export function routeConf(route: GatewayRoute, phase: ExtPhase, conf: ExtPluginConf): RouteConf {
  return { key: `route#${route.id}#${phase}#${route.version ?? 1}`, conf: conf.conf };
}

/**
 * Applies the runner's HTTPRespCall answer as APISIX does, to the response `ngx.header` already
 * holds (`current`, e.g. a pre-req Rewrite's resp_headers):
 * - apisix/plugins/ext-plugin/init.lua, the RPC_HTTP_RESP_CALL handler: a non-empty header list is
 *   set entry by entry (lower-cased; first of a name sets, a valueless one unsets, repeats add),
 *   nothing filtered and none of the upstream's; an empty list copies the upstream's headers
 *   minus `exclude_resp_header`. A zero-length body is no body; status 0 becomes the upstream's
 *   when there is a body, else stays unset.
 * - apisix/plugins/ext-plugin-post-resp.lua, `before_proxy`: with a body, the plugin returns
 *   (code, body) and APISIX exits with them; without one, `send_response` streams the upstream's
 *   body with status `code or res.status`. On an error answer `communicate` returns 503 (no body)
 *   or, with allow_degradation, nothing: either way the header handler never ran, so the client
 *   gets the upstream's body, status 503 or the upstream's, and none of the upstream's headers.
 */
export function applyRespCallAnswer(
  current: ReadonlyMap<string, string[]>,
  upstream: { readonly status: number; readonly headers: ReadonlyMap<string, string[]>; readonly body: Buffer },
  outcome: RespCallOutcome,
  degraded: boolean,
): { status: number; headers: Map<string, string[]>; body: Buffer } {
  const headers = new Map([...current].map(([k, v]) => [k, [...v]] as [string, string[]]));
  if (outcome.kind === 'error') return { status: degraded ? upstream.status : 503, headers, body: upstream.body };
  if (outcome.headers && outcome.headers.length > 0) {
    setHeaders(headers, outcome.headers);
  } else {
    for (const [name, values] of upstream.headers) if (!EXT_PLUGIN_EXCLUDED.has(name.toLowerCase())) headers.set(name.toLowerCase(), [...values]);
  }
  const body = outcome.body && outcome.body.length > 0 ? outcome.body : undefined;
  if (body) return { status: outcome.status || upstream.status, headers, body };
  return { status: outcome.status || upstream.status, headers, body: upstream.body };
}

/**
 * core.response.set_header / add_header as init.lua uses them for Stop and HTTPRespCall
 * headers: the first entry of a name sets it (a valueless one unsets it), later ones add.
 */
function setHeaders(target: Map<string, string[]>, entries: readonly Entry[]): void {
  const seen = new Set<string>();
  for (const e of entries) {
    const name = e.name.toLowerCase();
    if (seen.has(name)) {
      if (e.value !== undefined) (target.get(name) ?? target.set(name, []).get(name)!).push(fromRunner(e.value));
      continue;
    }
    seen.add(name);
    if (e.value === undefined) target.delete(name);
    else target.set(name, [fromRunner(e.value)]);
  }
}

/**
 * Header values inside the emulator are byte strings (one char per byte, as Node's HTTP parser
 * and undici give them), like nginx's. Text to and from the runner is UTF-8 (FlatBuffers
 * strings), so values are converted at that boundary: a runner's `é` reaches the wire as the
 * bytes C3 A9, as it does through nginx.
 */
function toRunner(byteString: string): string {
  return Buffer.from(byteString, 'latin1').toString('utf8');
}

function fromRunner(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** nginx `$cookie_NAME`: the first cookie of that name, as sent. */
function cookieValue(cookieHeaders: readonly string[], name: string): string | undefined {
  for (const header of cookieHeaders) {
    for (const part of header.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

/** nginx `$arg_NAME` (ngx_http_arg): the first arg of that name, case-insensitive, value as sent (not decoded). */
function rawArg(rawArgs: string | undefined, name: string): string | undefined {
  if (rawArgs === undefined) return undefined;
  const wanted = name.toLowerCase();
  for (const part of rawArgs.split('&')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (key.toLowerCase() === wanted) return eq < 0 ? '' : part.slice(eq + 1);
  }
  return undefined;
}

/** Writes the response as nginx would (see nginx-response.ts) and closes the connection; returns the header lines. */
function send(res: ServerResponse, method: string, status: number, headers: ReadonlyMap<string, readonly string[]>, body: Buffer | undefined): readonly string[] {
  const wire = nginxWire({ method, status, headers, body });
  const socket = res.socket;
  if (socket) socket.end(wire.bytes);
  return wire.headerLines;
}
