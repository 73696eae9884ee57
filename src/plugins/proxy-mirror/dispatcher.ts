/**
 * MirrorDispatcher: the only code that talks to mirror targets. One MirrorTarget per distinct
 * target conf, shared by the routes that use it (reference counted), each with its own
 * transport (undici Pool or grpc-js channel), an in-flight cap and a queue bounded by count and
 * bytes. Beyond the queue a copy is dropped and counted, so a slow or dead target holds at most
 * (max_concurrency + max_queue) copies and max_queue_bytes of queued data.
 */
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { Pool, buildConnector, type Dispatcher } from 'undici';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../plugin-api/index.js';
import type { MirrorTargetSpec, ProxyMirrorSettings } from './conf.js';
import type { MirrorCopy } from './copy-builder.js';
import { GrpcMirrorTransport } from './grpc.js';
import type { LogLimiter } from './log-limiter.js';
import type { MirrorMetrics, MirrorOutcome } from './metrics.js';

/** A copy as the dispatcher takes it; gRPC copies carry their messages already split. */
export type DispatchCopy = MirrorCopy & { readonly grpcMessages?: readonly Buffer[] };

/** What `submit` did with a copy. */
export type SubmitResult = 'started' | 'queued' | 'dropped' | 'closed';

interface MirrorTransport {
  send(copy: DispatchCopy): Promise<MirrorOutcome>;
  close(graceMs: number): Promise<void>;
}

const TIMEOUT_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
]);

function errorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof e.code === 'string') return e.code;
    if (e.name === 'AbortError' || e.name === 'TimeoutError') return 'ABORT_TIMEOUT';
    if (e.cause) return errorCode(e.cause);
  }
  return 'UNKNOWN';
}

/** A copy in flight, for the deadline sweep. */
interface InFlight {
  readonly deadline: number;
  controller: Dispatcher.DispatchController | undefined;
  timedOut: boolean;
}

/** How much of a mirror target's answer is read (and thrown away) before it is cut off. */
const DISCARD_LIMIT_BYTES = 1024 * 1024;

function statusClass(status: number): MirrorOutcome {
  const cls = Math.floor(status / 100);
  return cls >= 1 && cls <= 5 ? (`${cls}xx` as MirrorOutcome) : 'error';
}

/** HTTP/1.1 copies over a keep-alive undici Pool. */
class HttpMirrorTransport implements MirrorTransport {
  private readonly pool: Pool;
  /** TLS name checked on the target's certificate: the target's host, never the copied Host. */
  private readonly servername: string;
  lastError: { code: string; message: string } | undefined;
  private readonly inflight = new Set<InFlight>();
  private sweep: NodeJS.Timeout | undefined;

  constructor(private readonly spec: MirrorTargetSpec, tlsCa: string | undefined) {
    const t = spec.timeouts;
    const hostname = new URL(spec.origin).hostname.replace(/^\[|\]$/g, '');
    this.servername = hostname;
    // undici derives SNI and the certificate name from the request's Host header (the client's
    // host here) and reconnects whenever it changes; a fixed servername per target avoids both.
    // For an IP target no SNI is sent (RFC 6066) and the certificate is checked against the IP.
    const base = buildConnector({
      timeout: t.connectMs,
      rejectUnauthorized: spec.tlsVerify,
      ...(tlsCa ? { ca: [...rootCertificates, tlsCa] } : {}),
    });
    const sni = isIP(hostname) ? undefined : hostname;
    const connect: buildConnector.connector = (opts, cb) => base({ ...opts, servername: sni }, cb);
    this.pool = new Pool(spec.origin, {
      connections: spec.limits.maxConcurrency,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: t.readMs,
      bodyTimeout: t.readMs,
      connect,
    });
  }

  /**
   * Sends one copy with `dispatch` and a small handler (no body stream, no promise chain per
   * copy inside undici) and counts its status class; the response body is read and dropped.
   * undici has connect, headers and body timeouts but none for a stalled write, so each copy
   * also gets an overall deadline of connect + send + read, enforced by one sweep per target
   * rather than a timer (AbortSignal.timeout) per copy.
   */
  send(copy: DispatchCopy): Promise<MirrorOutcome> {
    const t = this.spec.timeouts;
    const flat: string[] = [];
    for (const [n, v] of copy.headers) flat.push(n, v);
    return new Promise<MirrorOutcome>((resolve) => {
      const flight: InFlight = { deadline: performance.now() + t.connectMs + t.sendMs + t.readMs, controller: undefined, timedOut: false };
      let status = 0;
      let received = 0;
      let tooLong = false;
      const done = (outcome: MirrorOutcome): void => {
        this.inflight.delete(flight);
        resolve(outcome);
      };
      this.inflight.add(flight);
      this.ensureSweep();
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: (controller) => {
          flight.controller = controller;
        },
        onResponseStart: (_c, statusCode) => {
          status = statusCode;
        },
        onResponseData: (controller, chunk) => {
          received += chunk.length;
          // Read and throw away, but not forever: past 1 MiB the answer is cut off.
          if (received > DISCARD_LIMIT_BYTES && !tooLong) {
            tooLong = true;
            controller.abort(new Error('mirror response over the discard limit'));
          }
        },
        onResponseEnd: () => done(statusClass(status)),
        onResponseError: (_c, err) => {
          if (tooLong) {
            done(statusClass(status));
            return;
          }
          const code = flight.timedOut ? 'MIRROR_DEADLINE' : errorCode(err);
          this.lastError = { code, message: err instanceof Error ? err.message : String(err) };
          done(flight.timedOut || TIMEOUT_CODES.has(code) || code === 'ABORT_TIMEOUT' ? 'timeout' : 'error');
        },
      };
      // `servername` is a documented dispatch option missing from undici's DispatchOptions type.
      const options = { path: copy.uri, method: copy.method, headers: flat, body: copy.body, servername: this.servername };
      try {
        this.pool.dispatch(options, handler);
      } catch (err) {
        handler.onResponseError!(undefined as unknown as Dispatcher.DispatchController, err as Error);
      }
    });
  }

  /** Aborts copies past their overall deadline; runs only while copies are in flight. */
  private ensureSweep(): void {
    if (this.sweep) return;
    const t = this.spec.timeouts;
    const every = Math.max(10, Math.min(1000, Math.floor((t.connectMs + t.sendMs + t.readMs) / 4)));
    this.sweep = setInterval(() => {
      const now = performance.now();
      for (const f of this.inflight) {
        if (f.deadline <= now && !f.timedOut) {
          f.timedOut = true;
          f.controller?.abort(new Error('mirror copy deadline (connect + send + read) passed'));
        }
      }
      if (this.inflight.size === 0 && this.sweep) {
        clearInterval(this.sweep);
        this.sweep = undefined;
      }
    }, every);
    this.sweep.unref();
  }

  async close(graceMs: number): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
    let timer: NodeJS.Timeout | undefined;
    const graceful = this.pool.close().then(() => true, () => true);
    const late = new Promise<boolean>((r) => { timer = setTimeout(() => r(false), graceMs); timer.unref(); });
    const closed = await Promise.race([graceful, late]);
    if (timer) clearTimeout(timer);
    if (!closed) await this.pool.destroy().catch(() => undefined);
  }
}

/** One mirror target: transport, in-flight cap and bounded queue. */
export class MirrorTarget {
  refs = 0;
  private inflight = 0;
  private readonly queue: DispatchCopy[] = [];
  private queuedBytes = 0;
  private closed = false;
  private readonly transport: MirrorTransport;
  private readonly droppedKey: string;

  constructor(
    readonly key: string,
    readonly spec: MirrorTargetSpec,
    private readonly deps: DispatcherDeps,
    private readonly onIdleUnreferenced: (t: MirrorTarget) => void,
  ) {
    this.droppedKey = `${spec.host}:dropped`;
    this.transport = spec.grpc
      ? new GrpcMirrorTransport(spec, deps.settings.tlsCa)
      : new HttpMirrorTransport(spec, deps.settings.tlsCa);
  }

  /** Copies in flight and queued (for tests and diagnostics). */
  get load(): { inflight: number; queued: number; queuedBytes: number } {
    return { inflight: this.inflight, queued: this.queue.length, queuedBytes: this.queuedBytes };
  }

  /**
   * Whether a copy of about `sizeBytes` would be started or queued now. The plugin asks
   * before fetching a body or raw query from APISIX, so that a saturated target costs the
   * real request no ExtraInfo round trip for a copy that would only be dropped.
   */
  admits(sizeBytes: number): boolean {
    if (this.closed) return false;
    const lim = this.spec.limits;
    return this.inflight < lim.maxConcurrency || (this.queue.length < lim.maxQueue && this.queuedBytes + sizeBytes <= lim.maxQueueBytes);
  }

  /** Counts a copy that was refused before it was built (see admits). */
  drop(): void {
    if (this.closed) {
      this.deps.metrics.skipped(this.spec.host, 'closed');
      return;
    }
    this.deps.metrics.finished(this.spec.host, 'dropped');
    this.deps.limiter.warn(this.droppedKey, () => ({ target: this.spec.host, inflight: this.inflight, queued: this.queue.length }),
      'proxy-mirror: queue full, copy dropped');
  }

  /** Starts the copy, queues it, or drops it when the queue is full; never throws. */
  submit(copy: DispatchCopy): SubmitResult {
    const { metrics } = this.deps;
    const target = this.spec.host;
    if (this.closed) {
      metrics.skipped(target, 'closed');
      return 'closed';
    }
    const lim = this.spec.limits;
    if (this.inflight < lim.maxConcurrency) {
      this.start(copy);
      return 'started';
    }
    if (this.queue.length < lim.maxQueue && this.queuedBytes + copy.sizeBytes <= lim.maxQueueBytes) {
      this.queue.push(copy);
      this.queuedBytes += copy.sizeBytes;
      metrics.queued(target, 1, copy.sizeBytes);
      return 'queued';
    }
    this.drop();
    return 'dropped';
  }

  private start(copy: DispatchCopy): void {
    const { metrics, now } = this.deps;
    const target = this.spec.host;
    this.inflight++;
    metrics.inflight(target, 1);
    metrics.sent(target);
    const startedAt = now();
    void this.transport.send(copy).then((outcome) => {
      metrics.finished(target, outcome, Math.max(0, now() - startedAt) / 1000);
      if (outcome === 'timeout' || outcome === 'error') {
        const last = this.transport instanceof HttpMirrorTransport ? this.transport.lastError : undefined;
        this.deps.limiter.warn(`${target}:${outcome}`, { target, outcome, ...(last ? { code: last.code, err: last.message } : {}) },
          `proxy-mirror: copy to ${target} failed (${outcome})`);
      }
    }, () => metrics.finished(target, 'error')).finally(() => {
      this.inflight--;
      metrics.inflight(target, -1);
      this.pump();
    });
  }

  private pump(): void {
    while (!this.closed && this.inflight < this.spec.limits.maxConcurrency && this.queue.length > 0) {
      const next = this.queue.shift()!;
      this.queuedBytes -= next.sizeBytes;
      this.deps.metrics.queued(this.spec.host, -1, -next.sizeBytes);
      this.start(next);
    }
    if (this.refs === 0 && this.inflight === 0 && this.queue.length === 0) this.onIdleUnreferenced(this);
  }

  /** True when nothing is queued or in flight. */
  get idle(): boolean {
    return this.inflight === 0 && this.queue.length === 0;
  }

  /** Drops the queue (counted) and closes the transport after a grace period. */
  async close(graceMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.queue.splice(0)) {
      this.deps.metrics.queued(this.spec.host, -1, -c.sizeBytes);
      this.deps.metrics.finished(this.spec.host, 'dropped');
    }
    this.queuedBytes = 0;
    await this.transport.close(graceMs);
  }
}

/** What the dispatcher needs from the plugin. */
export interface DispatcherDeps {
  readonly metrics: MirrorMetrics;
  readonly limiter: LogLimiter;
  readonly logger: Logger;
  readonly settings: ProxyMirrorSettings;
  /** Milliseconds, monotonic. */
  readonly now: () => number;
}

/** Targets keyed by everything that shapes their transport and limits. */
export class MirrorDispatcher {
  private readonly targets = new Map<string, MirrorTarget>();
  private closed = false;

  constructor(private readonly deps: DispatcherDeps) {}

  /** Takes a reference on the target of a conf (created on first use). */
  acquire(spec: MirrorTargetSpec): MirrorTarget {
    const key = JSON.stringify([spec.scheme, spec.authority, spec.tlsVerify, spec.timeouts, spec.limits]);
    let t = this.targets.get(key);
    if (!t) {
      t = new MirrorTarget(key, spec, this.deps, (idle) => this.closeUnreferenced(idle));
      // After shutdown a late PrepareConf still gets a target, but a closed one (copies skipped).
      if (this.closed) void t.close(0);
      else this.targets.set(key, t);
    }
    t.refs++;
    return t;
  }

  /** Drops a reference; an unreferenced target closes once it has nothing in flight. */
  release(target: MirrorTarget): void {
    target.refs = Math.max(0, target.refs - 1);
    if (target.refs === 0 && target.idle) this.closeUnreferenced(target);
  }

  private closeUnreferenced(target: MirrorTarget): void {
    if (this.targets.get(target.key) === target) this.targets.delete(target.key);
    void target.close(this.deps.settings.closeGraceMs);
  }

  /** Number of live targets (for tests and diagnostics). */
  get size(): number {
    return this.targets.size;
  }

  /** Closes every target: queued copies are dropped, in-flight ones get the grace period. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.targets.values()];
    this.targets.clear();
    await Promise.all(all.map((t) => t.close(this.deps.settings.closeGraceMs)));
  }
}
