/**
 * One HTTP/1.1 node of a target: its keep-alive connections (the mirror's own client in h1/)
 * and its circuit breaker. Requests handed over in the same event-loop turn share a connection
 * and a write, up to `pipelining` per connection; answers are read and thrown away unless a
 * sink asks for them.
 *
 * Why not undici: with undici every copy cost one write syscall of its own plus a request
 * object, a parser callback chain and a timer, about 35-45 µs of CPU per copy on this kind of
 * machine (docs/performance.md); the target for the whole mirrored request was 25 µs.
 * Copies are fire-and-forget requests with a fixed shape, which a small client can write in
 * batches.
 */
import { createHash, type Hash } from 'node:crypto';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { CircuitBreaker, CONNECT_FAILURE_CODES } from './circuit-breaker.js';
import { H1Connection, type ConnectionOptions, type ConnectionOwner, type Exchange } from './h1/connection.js';
import { headOfRawCopy } from './copy-head.js';
import { InvalidRequestError, requestHead } from './h1/request-head.js';
import { drainWithin } from './drain.js';
import type { DispatchOutcome, DispatchRequest, NodeSpec, ResponseSink, TargetSpec } from './types.js';

/** How much of an answer nobody reads is taken off the socket before it is cut off. */
const DISCARD_LIMIT_BYTES = 1024 * 1024;
/**
 * How much of an answer a sink reads (hashing what is over its cap, keeping only the cap), so
 * a body over the cap can still be compared by length and hash: as much as one ext-plugin
 * frame can carry, the most APISIX can hand the runner of the real answer (RespBody).
 */
const SINK_READ_LIMIT_BYTES = 16 * 1024 * 1024;
/**
 * Requests written on one connection before its first answer (HTTP/1.1 pipelining). As many
 * as the default in-flight limit (max_concurrency 32): the copies of one event-loop turn fit one
 * write. Copies are pipelined behind others only when handed over in the same turn, or when
 * every connection is busy and there are max_concurrency of them (dispatch below), so a slow
 * answer holds at most the copies of its own turn. 32 instead of 8 cost the RPC thread about
 * 1.5 µs less per mirrored request in the closed loop (fewer writes and reads, each copy's
 * share of the write smaller; docs/performance.md, "Mirror dispatch, eleventh pass").
 */
export const DEFAULT_PIPELINING = 32;
/** Idle keep-alive connections are closed after this, or a second before the server's own `Keep-Alive: timeout`. */
const IDLE_MS = 4000;
/** How often a node with requests in flight checks their timeouts. */
const SWEEP_BUSY_MS = 50;

const TIMEOUT_CODES: ReadonlySet<string> = new Set(['CONNECT_TIMEOUT', 'SEND_TIMEOUT', 'READ_TIMEOUT', 'MIRROR_DEADLINE']);
/** RFC 9110 section 9.2.2. */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

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

/**
 * Where a node that counts outcomes (a worker's ring copies, NodeTransport.sendCounted) reports
 * them, in batches: `n` requests ended with `outcome`, their durations in microseconds at
 * `micros[first]` to `micros[first + n - 1]` (read before returning). A failure (`code`) is
 * reported after the outcomes before it, one request at a time, except when a worker thread
 * dies: then every counted request in flight on the node comes in one report, with `micros`
 * undefined (their durations are not known; the latency histogram leaves them out).
 */
export type CountedOutcomes = (
  outcome: DispatchOutcome, n: number, micros: ArrayLike<number> | undefined, first: number, code: string | undefined, message: string | undefined,
) => void;

/** The transport of one node, HTTP or gRPC. */
export interface NodeTransport {
  readonly spec: NodeSpec;
  readonly breaker: CircuitBreaker;
  send(req: DispatchRequest, sink: ResponseSink | undefined, done: DoneCallback): void;
  /**
   * Optional: sends a request whose answer is thrown away and whose outcome goes to the node's
   * CountedOutcomes (no callback per request); false when it cannot, and the caller uses send.
   */
  sendCounted?(req: DispatchRequest): boolean;
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

/** One copy on its way: the request's bytes and what is read of its answer. */
class Copy implements Exchange {
  retries = 0;
  private status = 0;
  private received = 0;
  private headers: Record<string, string | string[] | undefined> = {};
  private readonly kept: Buffer[] | undefined;
  /** Started only when a kept body goes over the sink's cap: bodies within it cost no hashing. */
  private overCapHash: Hash | undefined;
  private truncated = false;
  private settled = false;
  /** Bytes of the answer read before it is cut off. */
  private readonly readLimit: number;

  constructor(
    readonly head: string | Buffer,
    readonly body: Buffer | undefined,
    readonly isHead: boolean,
    readonly idempotent: boolean,
    readonly startedAt: number,
    private readonly sink: ResponseSink | undefined,
    private readonly done: DoneCallback,
    private readonly nodeLabel: string,
  ) {
    this.kept = sink ? [] : undefined;
    this.readLimit = sink ? Math.max(SINK_READ_LIMIT_BYTES, sink.maxBodyBytes) : DISCARD_LIMIT_BYTES;
  }

  get wantsHeaders(): boolean {
    return this.sink !== undefined;
  }

  onHead(status: number, headers: string[] | undefined): void {
    this.status = status;
    if (headers) {
      const h: Record<string, string | string[] | undefined> = {};
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i]!;
        const value = headers[i + 1]!;
        const prev = h[name];
        if (prev === undefined) h[name] = value;
        else if (Array.isArray(prev)) prev.push(value);
        else h[name] = [prev, value];
      }
      this.headers = h;
    }
  }

  onBody(chunk: Buffer): boolean {
    const before = this.received;
    this.received += chunk.length;
    const kept = this.kept;
    if (kept) {
      const keepLimit = this.sink!.maxBodyBytes;
      const room = keepLimit - before;
      // Copied: the chunk is a view into the socket's buffer.
      if (room > 0) kept.push(Buffer.from(room >= chunk.length ? chunk : chunk.subarray(0, room)));
      if (this.received > keepLimit) {
        if (!this.overCapHash) {
          // The first chunk over the cap: hash what was kept before it, then the whole chunk
          // (kept's last entry is this chunk's start when room > 0).
          this.overCapHash = createHash('sha256');
          const keptBefore = room > 0 ? kept.length - 1 : kept.length;
          for (let i = 0; i < keptBefore; i++) this.overCapHash.update(kept[i]!);
        }
        this.overCapHash.update(chunk);
        this.truncated = true;
      }
    }
    // Read and throw away, but not forever.
    return this.received <= this.readLimit;
  }

  onEnd(cut: boolean): void {
    if (this.settled) return;
    this.settled = true;
    const sink = this.sink;
    if (sink) {
      sink.onResponse({
        status: this.status,
        headers: this.headers,
        body: Buffer.concat(this.kept!),
        truncated: cut || this.truncated,
        bodyBytes: cut ? undefined : this.received,
        bodySha256: cut ? undefined : this.overCapHash?.digest('hex'),
        node: this.nodeLabel,
      });
    }
    this.done(statusClass(this.status));
  }

  onFail(code: string, message: string): void {
    if (this.settled) return;
    this.settled = true;
    const outcome: DispatchOutcome = TIMEOUT_CODES.has(code) ? 'timeout' : 'error';
    this.sink?.onFailure(outcome, code);
    this.done(outcome, code, message);
  }
}

export class HttpNode implements NodeTransport, ConnectionOwner {
  private readonly connections: H1Connection[] = [];
  /** Requests waiting for room on a connection (every connection full). */
  private readonly waiting: Exchange[] = [];
  private shut = false;
  private readonly connOptions: ConnectionOptions;
  private readonly maxConnections: number;
  private readonly pipelining: number;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepAt = Infinity;
  private drained: (() => void) | undefined;

  constructor(
    readonly spec: NodeSpec,
    target: TargetSpec,
    readonly breaker: CircuitBreaker,
    private readonly now: () => number,
    /** Name to verify TLS against when the node is an address resolved from a host name. */
    tlsName?: string,
  ) {
    const t = target.timeouts;
    const name = tlsName ?? spec.hostname;
    this.pipelining = Math.max(1, target.pipelining ?? DEFAULT_PIPELINING);
    this.maxConnections = Math.max(1, target.limits.maxConcurrency);
    this.connOptions = {
      host: spec.hostname,
      port: spec.port,
      // The certificate is checked against the node's name, never the copied Host; for an IP
      // no SNI is sent (RFC 6066) and the certificate is checked against the IP.
      tls: target.tls
        ? { servername: isIP(name) ? undefined : name, rejectUnauthorized: target.tlsVerify, ca: target.tlsCa ? [...rootCertificates, target.tlsCa] : undefined }
        : undefined,
      connectMs: t.connectMs,
      sendMs: t.sendMs,
      readMs: t.readMs,
      deadlineMs: t.connectMs + t.sendMs + t.readMs,
      idleMs: IDLE_MS,
    };
  }

  send(req: DispatchRequest, sink: ResponseSink | undefined, done: DoneCallback): void {
    if (this.shut) {
      sink?.onFailure('error', 'CLOSED');
      done('error', 'CLOSED', 'node closed');
      return;
    }
    let head: string | Buffer;
    if (req.head) {
      this.sendHead(req.head, req.method, req.body, sink, done);
      return;
    }
    try {
      head = req.raw
        ? headOfRawCopy(req.raw, req.method, req.uri, req.body?.length, this.spec.authority)
        : requestHead(req.method, req.uri, req.headers, req.body?.length, this.spec.authority);
    } catch (err) {
      const code = err instanceof InvalidRequestError ? err.code : errorCode(err);
      sink?.onFailure('error', code);
      done('error', code, err instanceof Error ? err.message : String(err));
      return;
    }
    this.sendHead(head, req.method, req.body, sink, done);
  }

  /** Sends a request whose head was built (and checked) already, e.g. on the RPC thread. */
  sendHead(head: string | Buffer, method: string, body: Buffer | undefined, sink: ResponseSink | undefined, done: DoneCallback): void {
    if (this.shut) {
      sink?.onFailure('error', 'CLOSED');
      done('error', 'CLOSED', 'node closed');
      return;
    }
    this.dispatch(new Copy(head, body, method === 'HEAD', IDEMPOTENT.has(method), this.now(), sink, done, this.spec.label));
  }

  /** Puts a request on a connection: one being written this turn, an idle one, a new one, or the least busy. */
  private dispatch(ex: Exchange): void {
    const conns = this.connections;
    const depth = this.pipelining;
    let idle: H1Connection | undefined;
    let least: H1Connection | undefined;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i]!;
      if (!c.usable) continue;
      const n = c.inflight;
      if (n >= depth) continue;
      if (c.batching) {
        c.send(ex);
        return;
      }
      if (n === 0) {
        if (!idle || (c.connected && !idle.connected)) idle = c;
      } else if (!least || n < least.inflight) {
        least = c;
      }
    }
    let conn = idle;
    if (!conn && conns.length < this.maxConnections) {
      conn = new H1Connection(this.connOptions, this, this.now());
      conns.push(conn);
    }
    conn ??= least;
    if (!conn) {
      this.waiting.push(ex);
      return;
    }
    conn.send(ex);
    this.armSweep(SWEEP_BUSY_MS);
  }

  resend(exchanges: Exchange[]): void {
    for (const ex of exchanges) {
      if (this.shut) ex.onFail('CLOSED', 'node closed');
      else this.dispatch(ex);
    }
  }

  freed(_conn: H1Connection): void {
    while (this.waiting.length > 0 && !this.shut) {
      const before = this.waiting.length;
      this.dispatch(this.waiting.shift()!);
      if (this.waiting.length >= before) break;
    }
    if (this.drained && this.busy === 0) this.drained();
  }

  closed(conn: H1Connection): void {
    const i = this.connections.indexOf(conn);
    if (i >= 0) this.connections.splice(i, 1);
    // A request that waited for room can now have a new connection.
    if (this.waiting.length > 0 && !this.shut) this.freed(conn);
    if (this.drained && this.busy === 0) this.drained();
  }

  /** Requests on connections or waiting. */
  private get busy(): number {
    let n = this.waiting.length;
    for (const c of this.connections) n += c.inflight;
    return n;
  }

  /** Runs the timeout checks every SWEEP_BUSY_MS while requests are in flight, and idle closes. */
  private armSweep(inMs: number): void {
    const at = this.now() + inMs;
    if (this.sweepTimer && this.sweepAt <= at) return;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepAt = at;
    this.sweepTimer = setTimeout(() => this.sweep(), inMs);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    this.sweepTimer = undefined;
    this.sweepAt = Infinity;
    const now = this.now();
    for (const c of [...this.connections]) c.check(now);
    if (this.connections.length === 0) return;
    let busy = false;
    let nextIdle = Infinity;
    for (const c of this.connections) {
      if (c.inflight > 0 || !c.connected) busy = true;
      else nextIdle = Math.min(nextIdle, c.idleDeadline - now);
    }
    this.armSweep(busy ? SWEEP_BUSY_MS : Math.max(SWEEP_BUSY_MS, Math.ceil(nextIdle) + 1));
  }

  async close(graceMs: number): Promise<void> {
    this.shut = true;
    if (this.busy > 0 && graceMs > 0) await drainWithin(graceMs, (d) => { this.drained = d; });
    for (const ex of this.waiting.splice(0)) ex.onFail('CLOSED', 'node closed');
    for (const c of [...this.connections]) c.destroy('CLOSED', 'node closed');
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }
}
