/**
 * One HTTP/1.1 node of a target: a keep-alive undici Pool and the node's circuit breaker.
 * Requests go out with `dispatch` and a small handler (no body stream, no promise per request
 * inside undici); the answer is read and thrown away unless a sink asks for it.
 */
import { createHash, type Hash } from 'node:crypto';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { Dispatcher, Pool, buildConnector } from 'undici';
import { CircuitBreaker, CONNECT_FAILURE_CODES } from './circuit-breaker.js';
import type { DeadlineSweep } from './deadline-sweep.js';
import type { DispatchOutcome, DispatchRequest, NodeSpec, ResponseSink, TargetSpec } from './types.js';

type Undici = typeof import('undici');
let undici: Undici | undefined;
let loadingUndici: Promise<Undici> | undefined;
/**
 * Loads undici once, when the first HTTP node is created: its HTTP parser (WebAssembly) costs
 * about 20 MiB of RSS, which a runner without mirror targets, or whose copies are sent from
 * worker threads, never needs on its RPC thread.
 */
export function loadUndici(): Promise<Undici> {
  loadingUndici ??= import('undici').then((m) => (undici = m));
  return loadingUndici;
}

/** How much of an answer nobody reads is taken off the socket before it is cut off. */
const DISCARD_LIMIT_BYTES = 1024 * 1024;
/**
 * How much of an answer a sink reads (hashing what is over its cap, keeping only the cap), so
 * a body over the cap can still be compared by length and hash: as much as one ext-plugin
 * frame can carry, the most APISIX can hand the runner of the real answer (RespBody).
 */
const SINK_READ_LIMIT_BYTES = 16 * 1024 * 1024;

const TIMEOUT_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ABORT_TIMEOUT', 'MIRROR_DEADLINE',
]);

/** The code of an error (its own, or its cause's). */
export function errorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof e.code === 'string') return e.code;
    if (e.name === 'AbortError' || e.name === 'TimeoutError') return 'ABORT_TIMEOUT';
    if (e.cause) return errorCode(e.cause);
  }
  return 'UNKNOWN';
}

export function statusClass(status: number): DispatchOutcome {
  const cls = Math.floor(status / 100);
  return cls >= 1 && cls <= 5 ? (`${cls}xx` as DispatchOutcome) : 'error';
}

/** Called once per request with its outcome (and the error's code and message on failure). */
export type DoneCallback = (outcome: DispatchOutcome, code?: string, message?: string) => void;

/** The transport of one node, HTTP or gRPC. */
export interface NodeTransport {
  readonly spec: NodeSpec;
  readonly breaker: CircuitBreaker;
  send(req: DispatchRequest, sink: ResponseSink | undefined, done: DoneCallback): void;
  close(graceMs: number): Promise<void>;
}

/**
 * Reports a request's end to the node's breaker (only failures to reach the node count) and
 * returns the transition it caused, if any, so it is logged exactly once.
 */
export function settleBreaker(
  breaker: CircuitBreaker, code: string | undefined,
): { state: 'open'; retryInMs: number } | { state: 'closed' } | undefined {
  if (code !== undefined && CONNECT_FAILURE_CODES.has(code)) {
    // A failed probe keeps the node out with a longer delay, silently: only the transition
    // from taking copies to not taking them is reported (one log line per outage).
    const wasClosed = breaker.state === 'closed';
    const delay = breaker.failed();
    return delay === undefined || !wasClosed ? undefined : { state: 'open', retryInMs: Math.round(delay) };
  }
  if (code === 'TARGET_DOWN' || code === 'CLOSED') {
    breaker.released();
    return undefined;
  }
  return breaker.succeeded() ? { state: 'closed' } : undefined;
}

export class HttpNode implements NodeTransport {
  private pool: Pool | undefined;
  /** Requests that arrived before undici was loaded. */
  private waiting: [DispatchRequest, ResponseSink | undefined, DoneCallback][] = [];
  private readonly ready: Promise<void>;
  private closed = false;
  /** TLS name checked on the node's certificate: the target's host name, never the copied Host. */
  private readonly servername: string;
  private readonly deadlineSpan: number;

  constructor(
    readonly spec: NodeSpec,
    private readonly target: TargetSpec,
    readonly breaker: CircuitBreaker,
    private readonly sweep: DeadlineSweep,
    private readonly now: () => number,
    /** Name to verify TLS against when the node is an address resolved from a host name. */
    tlsName?: string,
  ) {
    const t = target.timeouts;
    this.servername = tlsName ?? spec.hostname;
    this.deadlineSpan = t.connectMs + t.sendMs + t.readMs;
    if (undici) {
      this.pool = this.createPool(undici);
      this.ready = Promise.resolve();
    } else {
      this.ready = loadUndici().then((u) => {
        if (this.closed) return;
        this.pool = this.createPool(u);
        for (const [req, sink, done] of this.waiting.splice(0)) this.send(req, sink, done);
      }, (err: unknown) => {
        for (const [, sink, done] of this.waiting.splice(0)) {
          sink?.onFailure('error', 'UNDICI_LOAD');
          done('error', 'UNDICI_LOAD', err instanceof Error ? err.message : String(err));
        }
      });
    }
  }

  private createPool(u: Undici): Pool {
    const t = this.target.timeouts;
    const name = this.servername;
    // undici derives SNI and the certificate name from the request's Host header (the client's
    // host here) and reconnects whenever it changes; a fixed servername per node avoids both.
    // For an IP no SNI is sent (RFC 6066) and the certificate is checked against the IP.
    const base = u.buildConnector({
      timeout: t.connectMs,
      rejectUnauthorized: this.target.tlsVerify,
      ...(this.target.tlsCa ? { ca: [...rootCertificates, this.target.tlsCa] } : {}),
    });
    const sni = isIP(name) ? undefined : name;
    const connect: buildConnector.connector = (opts, cb) => base({ ...opts, servername: sni }, cb);
    return new u.Pool(this.spec.origin, {
      connections: this.target.limits.maxConcurrency,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      // undici arms the headers timer when the request starts being written, so a write that
      // stalls (the node reads nothing) is cut by it too: send + read bound that phase.
      headersTimeout: t.sendMs + t.readMs,
      bodyTimeout: t.readMs,
      connect,
    });
  }

  send(req: DispatchRequest, sink: ResponseSink | undefined, done: DoneCallback): void {
    const pool = this.pool;
    if (!pool) {
      if (this.closed) done('error', 'CLOSED', 'node closed');
      else this.waiting.push([req, sink, done]);
      return;
    }
    let controller: Dispatcher.DispatchController | undefined;
    let timedOut = false;
    let finished = false;
    let status = 0;
    let received = 0;
    let truncated = false;
    let tooLong = false;
    let headers: Record<string, string | string[] | undefined> = {};
    const kept: Buffer[] | undefined = sink ? [] : undefined;
    // Started only when a kept body goes over the sink's cap: bodies within it cost no hashing.
    let overCapHash: Hash | undefined;
    const keepLimit = sink ? sink.maxBodyBytes : 0;
    const readLimit = sink ? Math.max(SINK_READ_LIMIT_BYTES, keepLimit) : DISCARD_LIMIT_BYTES;
    const deadline = {
      at: this.now() + this.deadlineSpan,
      expire: (): void => {
        timedOut = true;
        controller?.abort(new Error('mirror request deadline (connect + send + read) passed'));
      },
    };
    const finish = (outcome: DispatchOutcome, code?: string, message?: string): void => {
      if (finished) return;
      finished = true;
      this.sweep.delete(deadline);
      done(outcome, code, message);
    };
    this.sweep.add(deadline);
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: (c) => {
        controller = c;
        if (timedOut) c.abort(new Error('mirror request deadline (connect + send + read) passed'));
      },
      onResponseStart: (_c, statusCode, h) => {
        status = statusCode;
        if (sink) headers = h as Record<string, string | string[] | undefined>;
      },
      onResponseData: (c, chunk) => {
        const before = received;
        received += chunk.length;
        if (kept) {
          const room = keepLimit - before;
          if (room > 0) kept.push(room >= chunk.length ? chunk : chunk.subarray(0, room));
          if (received > keepLimit) {
            if (!overCapHash) {
              // The first chunk over the cap: hash what was kept before it, then the whole chunk
              // (kept's last entry is this chunk's start when room > 0).
              overCapHash = createHash('sha256');
              const keptBefore = room > 0 ? kept.length - 1 : kept.length;
              for (let i = 0; i < keptBefore; i++) overCapHash.update(kept[i]!);
            }
            overCapHash.update(chunk);
            truncated = true;
          }
        }
        // Read and throw away, but not forever.
        if (received > readLimit && !tooLong) {
          tooLong = true;
          c.abort(new Error('mirror response over the read limit'));
        }
      },
      onResponseEnd: () => {
        if (sink) {
          sink.onResponse({
            status, headers, body: Buffer.concat(kept!), truncated, bodyBytes: received, bodySha256: overCapHash?.digest('hex'), node: this.spec.label,
          });
        }
        finish(statusClass(status));
      },
      onResponseError: (_c, err) => {
        if (tooLong) {
          // We cut an answer that was too long: the node did answer.
          if (sink) sink.onResponse({ status, headers, body: Buffer.concat(kept!), truncated: true, bodyBytes: undefined, bodySha256: undefined, node: this.spec.label });
          finish(statusClass(status));
          return;
        }
        const code = timedOut ? 'MIRROR_DEADLINE' : errorCode(err);
        const outcome: DispatchOutcome = TIMEOUT_CODES.has(code) ? 'timeout' : 'error';
        sink?.onFailure(outcome, code);
        finish(outcome, code, err instanceof Error ? err.message : String(err));
      },
    };
    // `servername` is a documented dispatch option missing from undici's DispatchOptions type.
    const options = { path: req.uri, method: req.method, headers: flatten(req.headers), body: req.body, servername: this.servername };
    try {
      pool.dispatch(options as Dispatcher.DispatchOptions, handler);
    } catch (err) {
      handler.onResponseError!(undefined as unknown as Dispatcher.DispatchController, err as Error);
    }
  }

  async close(graceMs: number): Promise<void> {
    this.closed = true;
    await this.ready;
    for (const [, sink, done] of this.waiting.splice(0)) {
      sink?.onFailure('error', 'CLOSED');
      done('error', 'CLOSED', 'node closed before undici loaded');
    }
    const pool = this.pool;
    if (!pool) return;
    let timer: NodeJS.Timeout | undefined;
    const graceful = pool.close().then(() => true, () => true);
    const late = new Promise<boolean>((r) => { timer = setTimeout(() => r(false), graceMs); timer.unref(); });
    const closed = await Promise.race([graceful, late]);
    if (timer) clearTimeout(timer);
    if (!closed) await pool.destroy().catch(() => undefined);
  }
}

function flatten(headers: readonly (readonly [string, string])[]): string[] {
  const flat: string[] = [];
  for (const [n, v] of headers) flat.push(n, v);
  return flat;
}
