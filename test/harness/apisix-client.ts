/**
 * A test client that talks to a runner the way one APISIX worker's ext-plugin code does
 * (apisix/plugins/ext-plugin/init.lua):
 * - a keep-alive pool of Unix-socket connections (up to 32 idle, 180 s idle timeout);
 *   connect timeout 1 s, read timeout 60 s by default;
 * - strictly one RPC at a time per connection; a failed RPC closes its connection;
 * - PrepareConf once per key, on its own connection, behind APISIX's two token caches
 *   (init.lua `rpc_handlers` + `store_token`/`fetch_token`): a per-worker lrucache whose entry
 *   lives `ttl` from when it was filled, in front of the `ext-plugin` shared dict (shared by all
 *   workers) whose entry lives 0.9 × `ttl` from the PrepareConf. A worker that fills its
 *   lrucache from the dict just before the dict entry expires can use that token until about
 *   1.9 × ttl after the PrepareConf, while the runner keeps confs 1.2 × ttl: it then gets
 *   CONF_TOKEN_NOT_FOUND and re-prepares. Concurrent callers share one PrepareConf (the lock);
 * - HTTPReqCall / HTTPRespCall with ExtraInfo questions answered from the request context;
 * - CONF_TOKEN_NOT_FOUND: flush the token cache, PrepareConf again, retry (3 tries in all);
 *   any other error, a closed connection, a timeout or a malformed reply is an error outcome
 *   (APISIX answers 503 unless the route allows degradation).
 */
import { RawConnection, type Frame } from './raw-connection.js';
import {
  RPC,
  MalformedReplyError,
  decodeRunnerFrame,
  encodeExtraInfoResp,
  encodeHttpReqCallReq,
  encodeHttpRespCallReq,
  encodePrepareConfReq,
  ipToBytes,
  type Entry,
  type ExtraInfoQuestion,
  type RewriteReply,
  type StopReply,
} from './apisix-codec.js';

export { RawConnection } from './raw-connection.js';
export type { Entry, ExtraInfoQuestion, RewriteReply, StopReply } from './apisix-codec.js';

/** Messages APISIX logs for each Err code; `conf token not found` triggers the retry. */
export const ERR_MESSAGES: Readonly<Record<number, string>> = {
  0: 'bad request',
  1: 'service unavailable',
  2: 'conf token not found',
};

export interface ApisixClientOptions {
  readonly socketPath: string;
  /** Read timeout per frame awaited (APISIX: 60 s). */
  readonly readTimeoutMs?: number;
  /** Connect timeout (APISIX: 1 s). */
  readonly connectTimeoutMs?: number;
  /** Idle connections kept per client (APISIX: 32 per worker). */
  readonly maxIdle?: number;
  /** Idle connections are closed after this long (APISIX: 180 s). */
  readonly idleTimeoutMs?: number;
  /** Worker id used in call ids (`worker_id << 22 | counter`). */
  readonly workerId?: number;
  /** First counter value of call ids (tests reproducing a recorded id). */
  readonly initialCounter?: number;
  /** APISIX's conf token cache time in seconds (helper.get_conf_token_cache_time: 3600). */
  readonly confTokenTtlSeconds?: number;
  /** The `ext-plugin` shared dict; pass one instance to several clients to model workers. */
  readonly sharedTokens?: SharedTokenDict;
  /** Clock in ms (Date.now by default), for cache expiry. */
  readonly now?: () => number;
}

/**
 * APISIX's `ngx.shared["ext-plugin"]` token store: key → token, each entry with its own expiry.
 * Shared by every worker (ApisixClient) given the same instance.
 */
export class SharedTokenDict {
  private readonly entries = new Map<string, { token: number; expiresAt: number }>();

  /** dict:get — the token, or undefined when absent or expired. */
  get(key: string, now: number): number | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e.token;
  }

  /** dict:set with an expiry in ms. */
  set(key: string, token: number, expiresAt: number): void {
    this.entries.set(key, { token, expiresAt });
  }

  /** dict:flush_all. */
  flush(): void {
    this.entries.clear();
  }
}

/** A route's ext-plugin setup: the PrepareConf key and its conf entries. */
export interface RouteConf {
  /** APISIX's key: `conf_type#conf_id#plugin_name#conf_version`. */
  readonly key: string;
  /** The plugin's `conf` array; undefined = no conf (sent without the field). */
  readonly conf?: readonly { readonly name: string; readonly value: string }[] | undefined;
}

/** What APISIX can answer an ExtraInfo question from. */
export interface CallContext {
  /** nginx variables (`ngx.var`), a map or a lookup function; numbers travel as text. */
  readonly vars?: Readonly<Record<string, string | number | undefined>> | ((name: string) => string | number | undefined);
  /** The request body (ExtraInfo ReqBody); undefined = no body. */
  readonly body?: Uint8Array | string | undefined;
}

export interface ReqCallRequest extends CallContext {
  readonly method: string;
  /** Decoded path without query (nginx `$uri`), or an upstream URI path. */
  readonly path: string;
  readonly args: readonly Entry[];
  /** Names lower case; `host` already set to the upstream host. */
  readonly headers: readonly Entry[];
  /** Text address or its 4/16 bytes. */
  readonly srcIp: string | Uint8Array;
}

export interface RespCallRequest extends CallContext {
  /** Upstream status and headers (names as the upstream spelled them). */
  readonly status: number;
  readonly headers: readonly Entry[];
  /** The upstream response body (ExtraInfo RespBody). */
  readonly respBody?: Uint8Array | string | undefined;
}

interface OutcomeBase {
  /** ExtraInfo questions the runner asked, in order (over all tries). */
  readonly extraInfoAsked: ExtraInfoQuestion[];
  /** HTTPReqCall/HTTPRespCall attempts made (1..3). */
  readonly tries: number;
}

/** APISIX's view of a failed call: it answers 503 (or skips the runner with allow_degradation). */
export interface ErrorOutcome extends OutcomeBase {
  readonly kind: 'error';
  readonly status: 503;
  /** The message APISIX would log. */
  readonly error: string;
  /** Err.Resp code when the runner answered an error frame. */
  readonly errCode?: number | undefined;
}

export type ReqCallOutcome =
  | (OutcomeBase & { readonly kind: 'none' })
  | (OutcomeBase & { readonly kind: 'stop'; readonly stop: StopReply })
  | (OutcomeBase & { readonly kind: 'rewrite'; readonly rewrite: RewriteReply })
  | ErrorOutcome;

export type RespCallOutcome =
  | (OutcomeBase & {
      readonly kind: 'respCall';
      readonly status: number;
      readonly headers?: Entry[] | undefined;
      readonly body?: Buffer | undefined;
    })
  | ErrorOutcome;

/** An RPC failure, carrying the runner's Err code when there was one. */
export class RpcError extends Error {
  constructor(message: string, readonly errCode?: number) {
    super(message);
  }
}

const MAX_CALL_ID_COUNT = 1 << 22;

export class ApisixClient {
  private readonly socketPath: string;
  private readonly readTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxIdle: number;
  private readonly idleTimeoutMs: number;
  private readonly workerId: number;
  private readonly idle: { conn: RawConnection; timer: NodeJS.Timeout }[] = [];
  private readonly busy = new Set<RawConnection>();
  /** This worker's lrucache: key → token and the time the entry stops being used. */
  private tokens = new Map<string, { token: number; expiresAt: number }>();
  private readonly dict: SharedTokenDict;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly preparing = new Map<string, Promise<number>>();
  private counter = 0;
  private closing = false;

  /** Counters for tests: connections opened, PrepareConf RPCs sent, token cache flushes. */
  readonly stats = { connectionsOpened: 0, prepareConfSent: 0, tokenFlushes: 0, sharedDictHits: 0 };

  constructor(options: ApisixClientOptions) {
    this.socketPath = options.socketPath;
    this.readTimeoutMs = options.readTimeoutMs ?? 60_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 1000;
    this.maxIdle = options.maxIdle ?? 32;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 180_000;
    this.workerId = options.workerId ?? 0;
    this.counter = (options.initialCounter ?? 0) % MAX_CALL_ID_COUNT;
    this.ttlMs = (options.confTokenTtlSeconds ?? 3600) * 1000;
    this.dict = options.sharedTokens ?? new SharedTokenDict();
    this.now = options.now ?? Date.now;
  }

  /** Idle pooled connections right now. */
  get idleConnections(): number {
    return this.idle.length;
  }

  /**
   * Forgets cached conf tokens as init.lua's `recreate_lrucache` does (on CONF_TOKEN_NOT_FOUND
   * and when the runner exits): the shared dict is flushed for every worker, and this worker
   * gets a new, empty lrucache.
   */
  flushTokens(): void {
    this.dict.flush();
    this.tokens = new Map();
    this.stats.tokenFlushes++;
  }

  /** The token this worker would use for a key now (its lrucache), if any. */
  cachedToken(key: string): number | undefined {
    const e = this.tokens.get(key);
    return e && e.expiresAt > this.now() ? e.token : undefined;
  }

  private nextId(): number {
    const id = ((this.workerId << 22) >>> 0) + this.counter;
    this.counter = (this.counter + 1) % MAX_CALL_ID_COUNT;
    return id;
  }

  private async acquire(): Promise<RawConnection> {
    if (this.closing) throw new RpcError('client is closed');
    while (this.idle.length) {
      const { conn, timer } = this.idle.pop()!;
      clearTimeout(timer);
      // A pooled connection the runner closed (or wrote to while idle) cannot be reused.
      if (conn.isClosed || conn.pendingFrames) { conn.close(); continue; }
      conn.ref();
      this.busy.add(conn);
      return conn;
    }
    const conn = await RawConnection.connect(this.socketPath, this.connectTimeoutMs);
    this.stats.connectionsOpened++;
    this.busy.add(conn);
    return conn;
  }

  private release(conn: RawConnection): void {
    this.busy.delete(conn);
    if (this.closing || conn.isClosed || this.idle.length >= this.maxIdle) { conn.close(); return; }
    const timer = setTimeout(() => {
      const i = this.idle.findIndex((e) => e.conn === conn);
      if (i >= 0) this.idle.splice(i, 1);
      conn.close();
    }, this.idleTimeoutMs);
    timer.unref();
    conn.unref();
    this.idle.push({ conn, timer });
  }

  private discard(conn: RawConnection): void {
    this.busy.delete(conn);
    conn.close();
  }

  /** Runs one RPC on a pooled connection; a failure closes the connection. */
  private async withConnection<T>(rpc: (conn: RawConnection) => Promise<T>): Promise<T> {
    const conn = await this.acquire();
    try {
      const result = await rpc(conn);
      this.release(conn);
      return result;
    } catch (err) {
      this.discard(conn);
      throw err;
    }
  }

  private async read(conn: RawConnection): Promise<Frame> {
    const frame = await conn.readFrame(this.readTimeoutMs);
    if (frame.type === RPC.ERROR) {
      const reply = decodeRunnerFrame(frame.type, frame.payload);
      const code = reply.type === 'error' ? reply.code : -1;
      throw new RpcError(ERR_MESSAGES[code] ?? `unknown err ${code}`, code);
    }
    return frame;
  }

  /** Returns the conf token of `route`, sending PrepareConf only when the key is not cached. */
  prepareConf(route: RouteConf): Promise<number>;
  prepareConf(key: string, conf?: RouteConf['conf']): Promise<number>;
  prepareConf(keyOrRoute: string | RouteConf, conf?: RouteConf['conf']): Promise<number> {
    const route: RouteConf = typeof keyOrRoute === 'string' ? { key: keyOrRoute, conf } : keyOrRoute;
    const cached = this.cachedToken(route.key);
    if (cached !== undefined) return Promise.resolve(cached);
    // lrucache miss: init.lua's PrepareConf handler first looks in the shared dict.
    const shared = this.dict.get(route.key, this.now());
    if (shared !== undefined) {
      this.stats.sharedDictHits++;
      this.tokens.set(route.key, { token: shared, expiresAt: this.now() + this.ttlMs });
      return Promise.resolve(shared);
    }
    let pending = this.preparing.get(route.key);
    if (!pending) {
      pending = this.sendPrepareConf(route).finally(() => this.preparing.delete(route.key));
      this.preparing.set(route.key, pending);
    }
    return pending;
  }

  private sendPrepareConf(route: RouteConf): Promise<number> {
    return this.withConnection(async (conn) => {
      this.stats.prepareConfSent++;
      await conn.send(RPC.PREPARE_CONF, encodePrepareConfReq({ key: route.key, conf: route.conf }));
      const frame = await this.read(conn).catch((err: Error) => {
        throw new RpcError(`failed to receive RPC_PREPARE_CONF: ${err.message}`, err instanceof RpcError ? err.errCode : undefined);
      });
      if (frame.type !== RPC.PREPARE_CONF) throw new RpcError(`failed to receive RPC_PREPARE_CONF: unexpected type ${frame.type}`);
      const reply = decodeRunnerFrame(frame.type, frame.payload);
      if (reply.type !== 'prepareConf') throw new MalformedReplyError('unexpected PrepareConf reply');
      // store_token: the dict entry expires early (0.9 × ttl); the lrucache entry lives ttl from now.
      const now = this.now();
      this.dict.set(route.key, reply.confToken, now + this.ttlMs * 0.9);
      this.tokens.set(route.key, { token: reply.confToken, expiresAt: now + this.ttlMs });
      return reply.confToken;
    });
  }

  /** Answers ExtraInfo questions until the final reply of `expectType` arrives. */
  private async exchange(conn: RawConnection, expectType: number, ctx: CallContext & { respBody?: Uint8Array | string | undefined }, asked: ExtraInfoQuestion[], allowRespBody: boolean): Promise<Frame> {
    for (;;) {
      const frame = await this.read(conn);
      if (frame.type !== RPC.EXTRA_INFO) {
        if (frame.type !== expectType) throw new RpcError(`unexpected type ${frame.type}`);
        return frame;
      }
      const reply = decodeRunnerFrame(frame.type, frame.payload);
      if (reply.type !== 'extraInfo') throw new MalformedReplyError('bad ExtraInfo question');
      const q = reply.question;
      asked.push(q);
      let answer: Uint8Array | string | number | undefined;
      if (q.kind === 'var') {
        answer = typeof ctx.vars === 'function' ? ctx.vars(q.name) : ctx.vars?.[q.name];
      } else if (q.kind === 'reqBody') {
        answer = ctx.body;
      } else {
        // Only the post-resp flow has an upstream body to give.
        if (!allowRespBody) throw new RpcError(`failed to handle RPC_EXTRA_INFO: unsupported info type ${reply.infoType}`);
        answer = ctx.respBody;
      }
      await conn.send(RPC.EXTRA_INFO, encodeExtraInfoResp(answer));
    }
  }

  /** Runs `attempt` up to 3 times, re-preparing the conf after CONF_TOKEN_NOT_FOUND (init.lua `_M.communicate`, `recreate_lrucache`). */
  private async withRetries<T>(route: RouteConf, asked: ExtraInfoQuestion[], attempt: (token: number) => Promise<T>): Promise<{ value: T; tries: number } | ErrorOutcome> {
    let lastError = '';
    let lastCode: number | undefined;
    for (let tries = 1; tries <= 3; tries++) {
      try {
        const token = await this.prepareConf(route);
        return { value: await attempt(token), tries };
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err);
        lastCode = err instanceof RpcError ? err.errCode : undefined;
        if (!lastError.includes('conf token not found')) return { kind: 'error', status: 503, error: lastError, errCode: lastCode, extraInfoAsked: asked, tries };
        this.flushTokens();
      }
    }
    return { kind: 'error', status: 503, error: lastError, errCode: lastCode, extraInfoAsked: asked, tries: 3 };
  }

  /** One HTTPReqCall as ext-plugin-pre-req / post-req makes it, with retries and ExtraInfo answers. */
  async httpReqCall(route: RouteConf, req: ReqCallRequest): Promise<ReqCallOutcome> {
    const asked: ExtraInfoQuestion[] = [];
    const srcIp = typeof req.srcIp === 'string' ? ipToBytes(req.srcIp) : req.srcIp;
    const result = await this.withRetries(route, asked, (token) =>
      this.withConnection(async (conn) => {
        const payload = encodeHttpReqCallReq({ id: this.nextId(), confToken: token, srcIp, method: req.method, path: req.path, args: req.args, headers: req.headers });
        await conn.send(RPC.HTTP_REQ_CALL, payload);
        const frame = await this.exchange(conn, RPC.HTTP_REQ_CALL, req, asked, false).catch((err: Error) => {
          throw new RpcError(`failed to receive RPC_HTTP_REQ_CALL: ${err.message}`, err instanceof RpcError ? err.errCode : undefined);
        });
        return decodeRunnerFrame(frame.type, frame.payload);
      }),
    );
    if ('kind' in result) return result;
    const reply = result.value;
    if (reply.type !== 'reqCall') throw new MalformedReplyError('unexpected reply');
    const base = { extraInfoAsked: asked, tries: result.tries };
    if (reply.action.kind === 'stop') return { ...base, kind: 'stop', stop: reply.action.stop };
    if (reply.action.kind === 'rewrite') return { ...base, kind: 'rewrite', rewrite: reply.action.rewrite };
    return { ...base, kind: 'none' };
  }

  /** One HTTPRespCall as ext-plugin-post-resp makes it. */
  async httpRespCall(route: RouteConf, resp: RespCallRequest): Promise<RespCallOutcome> {
    const asked: ExtraInfoQuestion[] = [];
    const result = await this.withRetries(route, asked, (token) =>
      this.withConnection(async (conn) => {
        await conn.send(RPC.HTTP_RESP_CALL, encodeHttpRespCallReq({ id: this.nextId(), status: resp.status, headers: resp.headers, confToken: token }));
        const frame = await this.exchange(conn, RPC.HTTP_RESP_CALL, resp, asked, true).catch((err: Error) => {
          throw new RpcError(`failed to receive RPC_HTTP_RESP_CALL: ${err.message}`, err instanceof RpcError ? err.errCode : undefined);
        });
        return decodeRunnerFrame(frame.type, frame.payload);
      }),
    );
    if ('kind' in result) return result;
    const reply = result.value;
    if (reply.type !== 'respCall') throw new MalformedReplyError('unexpected reply');
    return { kind: 'respCall', status: reply.status, headers: reply.headers, body: reply.body, extraInfoAsked: asked, tries: result.tries };
  }

  /** Closes the idle pooled connections (what APISIX's pool learns when the runner restarts). */
  closeIdle(): void {
    for (const { conn, timer } of this.idle.splice(0)) {
      clearTimeout(timer);
      conn.close();
    }
  }

  /** Closes every pooled and in-use connection. */
  async close(): Promise<void> {
    this.closing = true;
    const all = [...this.idle.map((e) => { clearTimeout(e.timer); return e.conn; }), ...this.busy];
    this.idle.length = 0;
    this.busy.clear();
    for (const c of all) c.close();
    await Promise.all(all.map((c) => c.closed));
  }
}
