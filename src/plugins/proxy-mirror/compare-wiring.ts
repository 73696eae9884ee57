/**
 * proxy-mirror's side of the shadow comparison (docs/compare.md): the glue between the two
 * ext-plugin phases, the dispatch engine and the compare room (src/mirror-compare).
 *
 *  - pre-req (a sampled copy): reads `$request_id` (one ExtraInfo round trip) and tells the
 *    room a copy is coming; the engine's response sink hands the room the target's answer.
 *  - post-resp: when the route has pairs waiting, reads `$request_id` (one round trip) and,
 *    only when the route compares bodies and a pair waits for this request, the body
 *    (ExtraInfo RespBody); the room gets the real answer after the reply to APISIX, so the
 *    real answer never waits for the mirror and is never changed.
 *
 * The route name both phases file a request under is `compare.route`, or what precedes the
 * phase in APISIX's conf key. APISIX builds that key with core.lrucache.plugin_ctx_id
 * (apisix/core/lrucache.lua: conf type # conf id # extra key # conf version; the extra key is
 * the phase, apisix/plugins/ext-plugin/init.lua), so `route#1#ext-plugin-pre-req#3` and
 * `route#1#ext-plugin-post-resp#4` both give `route#1`: no round trip, and the name survives
 * route updates (a name per version would fill the room's route table).
 */
import { performance } from 'node:perf_hooks';
import type { CallContext, HttpRequest, HttpResponse, Logger, PluginHost } from '../../plugin-api/index.js';
import type { DispatchOutcome, DispatchResponse, DispatchTarget, DispatchRequest, ResponseSink } from '../../mirror-dispatch/index.js';
import type {
  AnswerHeaders, CompareConf, MirrorFailure, MirrorOutcome, ShadowComparison, DiffLogWriter,
} from '../../mirror-compare/index.js';
import { mountMetricsPage } from '../../observability/metrics.js';
import type { LogLimiter } from './log-limiter.js';

/** The nginx variable both phases read to pair the two calls of one client request. */
export const REQUEST_ID_VAR = 'request_id';

const PHASE_SEGMENT = /#ext-plugin-(?:pre-req|post-req|post-resp)(?=#|$)/;

/** The route name of a compare block in a phase whose conf key is `routeKey`. */
export function compareRouteName(conf: CompareConf, routeKey: string): string {
  if (conf.route !== undefined) return conf.route;
  const phase = routeKey.search(PHASE_SEGMENT);
  return phase < 0 ? routeKey : routeKey.slice(0, phase);
}

/** Engine codes for a copy that never left: counted `primary_only` by the room. */
const NOT_SENT_CODES = new Set(['TARGET_DOWN', 'CLOSED', 'SHUTDOWN']);

function failureOf(outcome: DispatchOutcome, code: string, durationMs: number): MirrorFailure {
  if (outcome === 'dropped' || NOT_SENT_CODES.has(code)) return { failure: 'not_sent', code };
  return { failure: outcome === 'timeout' ? 'timeout' : 'error', code, durationMs };
}

function headerPairs(headers: DispatchResponse['headers']): AnswerHeaders {
  const out: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (Array.isArray(value)) for (const v of value) out.push([name, v]);
    else if (value !== undefined) out.push([name, value]);
  }
  return out;
}

/** What the pre-req side decided for one sampled copy. */
export interface ComparedCopy {
  readonly route: string;
  readonly key: string;
}

export class CompareWiring {
  private comparison: ShadowComparison | undefined;
  private diffLog: DiffLogWriter | undefined;
  private closed = false;

  constructor(
    private readonly host: PluginHost,
    private readonly diffLogPath: string | undefined,
    private readonly logger: Logger,
    private readonly limiter: LogLimiter,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The room; only after the first compared copy has built it (see `openRoom`). */
  get room(): ShadowComparison {
    if (!this.comparison) throw new Error('proxy-mirror: the compare room is built with the first compared copy');
    return this.comparison;
  }

  /**
   * The room, built when the first copy of a route that compares is filed (a runner without one
   * registers no compare metrics and serves no report); its pages go on the metrics listener.
   * The comparison code (diffs, report page, diff log) is imported here, not at start: a runner
   * whose routes never compare does not hold it in memory (docs/performance.md, idle RSS).
   */
  private async openRoom(): Promise<ShadowComparison | undefined> {
    if (this.comparison) return this.comparison;
    const { createCompareHttpHandler, DiffLogWriter, ShadowComparison } = await import('../../mirror-compare/index.js');
    // Another call may have built it while the import was pending; or the runner closed.
    if (this.comparison || this.closed) return this.comparison;
    const path = this.diffLogPath;
    if (path) {
      this.diffLog = new DiffLogWriter(path, {
        onError: (err) => this.logger.error({ file: path, err: err.message }, 'proxy-mirror: cannot write the diff log (--mirror-diff-log); differences are no longer logged to it until SIGHUP reopens it'),
      });
      // Rotated like --log-file: logrotate moves the file, then `kill -HUP` (cli.ts reopens the log).
      process.on('SIGHUP', this.reopenDiffLog);
    }
    const room = new ShadowComparison({
      registry: this.host.metrics,
      diffLog: this.diffLog,
      onError: (err) => this.limiter.warn('compare:error', { err: err.message }, 'proxy-mirror: a comparison failed; the pair is counted skipped (compare_error)'),
    });
    room.start(1000);
    mountMetricsPage(this.host.metrics, createCompareHttpHandler(room));
    this.comparison = room;
    return room;
  }

  /** Whether the room exists (tests, shutdown). */
  get started(): boolean {
    return this.comparison !== undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.comparison?.stop();
    process.off('SIGHUP', this.reopenDiffLog);
    await this.diffLog?.close();
  }

  private readonly reopenDiffLog = (): void => {
    if (!this.diffLog || this.closed) return;
    this.diffLog.reopen();
    this.logger.info({ file: this.diffLog.path }, 'diff log reopened (SIGHUP)');
  };

  /**
   * Pre-req, for a sampled copy: reads `$request_id` and files the pair. Undefined when the
   * request is not compared (no id, or the room refused it: too many routes).
   */
  async expect(conf: CompareConf, target: string, req: HttpRequest, ctx: CallContext): Promise<ComparedCopy | undefined> {
    const key = await req.var(REQUEST_ID_VAR);
    if (!key) {
      this.limiter.warn(`${target}:no_request_id`, { target, route: ctx.routeKey },
        'proxy-mirror: APISIX gave no $request_id; the copy is sent but not compared');
      return undefined;
    }
    const route = compareRouteName(conf, ctx.routeKey);
    const room = await this.openRoom();
    return room?.expect(key, { route, target, method: req.method, path: req.path, conf }) ? { route, key } : undefined;
  }

  /**
   * Sends a compared copy (after the reply to APISIX): the answer, or why there is none, goes
   * to the room; so does the secondary's when the conf names one.
   */
  submit(copy: ComparedCopy, target: string, mirror: DispatchTarget, req: DispatchRequest, conf: CompareConf, secondary: DispatchTarget | undefined): void {
    this.send(copy, target, mirror, req, conf, 'mirror');
    if (secondary) this.send(copy, target, secondary, req, conf, 'secondary');
  }

  private send(copy: ComparedCopy, target: string, to: DispatchTarget, req: DispatchRequest, conf: CompareConf, side: 'mirror' | 'secondary'): void {
    const room = this.room;
    const record = (outcome: MirrorOutcome): void => {
      if (side === 'mirror') room.recordMirror(copy.route, copy.key, target, outcome);
      else room.recordSecondary(copy.route, copy.key, target, outcome);
    };
    const started = this.now();
    // Bodies not compared: the status and headers are enough, the body is thrown away.
    const sink: ResponseSink = {
      maxBodyBytes: conf.body?.maxBytes ?? 0,
      onResponse: (r) => record({
        status: r.status, headers: headerPairs(r.headers), body: r.body, truncated: r.truncated,
        bodyBytes: r.bodyBytes, bodySha256: r.bodySha256, durationMs: this.now() - started,
      }),
      onFailure: (outcome, code) => record(failureOf(outcome, code, this.now() - started)),
    };
    const result = to.submit(req, sink);
    // Dropped (queue full) or refused (closed) copies never reach the sink.
    if (result === 'dropped' || result === 'refused') record({ failure: 'not_sent', code: result.toUpperCase() });
  }

  /**
   * Post-resp: hands the room the real answer when a pair waits for it. Never changes the
   * answer; the room gets it after the reply. Synchronous (no round trip) when nothing waits
   * on the route.
   */
  onResponse(conf: CompareConf, res: HttpResponse, ctx: CallContext): Promise<void> | undefined {
    if (!this.comparison) return undefined;
    const route = compareRouteName(conf, ctx.routeKey);
    if (this.comparison.pending(route).count === 0) return undefined;
    return this.readPrimary(this.comparison, route, res, ctx);
  }

  private async readPrimary(room: ShadowComparison, route: string, res: HttpResponse, ctx: CallContext): Promise<void> {
    try {
      const key = await res.var(REQUEST_ID_VAR);
      if (!key) return;
      const status = res.upstreamStatus;
      const wanted = room.awaitedPrimary(route, key, status);
      if (wanted === 'none') return;
      const body = wanted === 'body' ? ((await res.body()) ?? Buffer.alloc(0)) : Buffer.alloc(0);
      const headers = res.headerEntries().map((h) => [h.name, h.value ?? ''] as const);
      res.afterReply(() => {
        room.recordPrimary(route, key, { status, headers, body, truncated: false, bodyFetched: wanted === 'body' });
      });
    } catch (err) {
      // The real answer goes on untouched; the pair expires as mirror_timeout or no_primary.
      this.limiter.warn(`compare:${route}:extra_info`, { route: ctx.routeKey, err: err instanceof Error ? err.message : String(err) },
        'proxy-mirror: could not read the real answer from APISIX; this request is not compared');
    }
  }
}
