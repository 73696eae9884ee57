/**
 * The `proxy-mirror` plugin: APISIX's proxy-mirror, run from the plugin runner. It decides in
 * onRequest (sampling, methods, loop marker, body plan), asks APISIX through ExtraInfo only
 * for what a sampled copy needs (body, raw query), and hands the copy to the dispatcher after
 * the reply to APISIX is written, so the real request never waits for a mirror target.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { CallContext, ConfContext, HttpRequest, HttpResponse, Plugin, PluginHost } from '../../plugin-api/index.js';
import {
  grpcMethodAllowed, parseProxyMirrorConf, parseSettings, unknownFields,
  type ProxyMirrorConf, type ProxyMirrorSettings,
} from './conf.js';
import { DispatchEngine, type DispatchTarget, type ResponseSink } from '../../mirror-dispatch/index.js';
import { CompareWiring, type ComparedCopy } from './compare-wiring.js';
import { buildCopy, buildCopyHeaders, copyWithHead, copyWithRaw, encodeArgs, mirrorUri, type MirrorCopy } from './copy-builder.js';
import { copyHeadFromBytes } from '../../mirror-dispatch/copy-head.js';
import { queryOfArgs } from '../../mirror-dispatch/copy-uri.js';
import { rawCallOf, rawHeadersOf } from '../../server/raw-headers.js';
import { createDispatchObserver } from './dispatch-observer.js';
import { GrpcBodyError, splitGrpcMessages } from './grpc.js';
import { LogLimiter } from './log-limiter.js';
import { createMirrorMetrics, type MirrorMetrics, type SkipReason } from './metrics.js';
import { literalArgs, rebuildExactQuery } from './query-rebuild.js';
import { isSampled, type RandomSource } from './sampler.js';
import { proxyMirrorSchema } from './schema.js';

export { proxyMirrorSchema, MAX_FRAME_BODY_BYTES } from './schema.js';
export type { ProxyMirrorConf, ProxyMirrorSettings } from './conf.js';

/** Injectable sources of randomness and time (tests pass seeded ones). */
export interface ProxyMirrorDeps {
  /** Uniform in [0, 1); defaults to Math.random. */
  readonly random?: RandomSource;
  /** Monotonic milliseconds; defaults to performance.now. */
  readonly now?: () => number;
  /** Uniform in [0, 1) for the circuit breakers' retry jitter; defaults to Math.random. */
  readonly jitter?: RandomSource;
  /**
   * Reads the mirror's answer to each copy (the seam for a shadow comparison); without it the
   * answer is read and thrown away.
   */
  readonly responseSink?: (conf: ProxyMirrorConf, req: HttpRequest) => ResponseSink | undefined;
}

/** A parsed conf bound to its (shared, reference-counted) target. */
export interface ProxyMirrorRuntimeConf extends ProxyMirrorConf {
  readonly mirrorTarget: DispatchTarget;
  /** The `compare.secondary` instance's target, when the conf names one. */
  readonly secondaryDispatch: DispatchTarget | undefined;
}

/** The plugin object, with its dispatcher exposed for diagnostics and tests. */
export type ProxyMirrorPlugin = Plugin<ProxyMirrorRuntimeConf> & {
  readonly dispatcher: DispatchEngine;
  readonly settings: ProxyMirrorSettings;
  /** The shadow comparison's wiring (its room is built with the first route that compares). */
  readonly compare: CompareWiring;
};

/** A copy that is not sent (already counted). */
const SKIPPED = Symbol('skipped');

type BodyPlan =
  | { readonly kind: 'none' }
  | { readonly kind: 'empty' }
  | { readonly kind: 'fetch'; readonly declared: boolean }
  | { readonly kind: 'over'; readonly reason: SkipReason };

/** emit's query when the args give it and a worker builds the copy's target from them. */
const FROM_CALL = Symbol('query from the call');

/** Decides how the body is copied without asking APISIX for anything; `cl` is the Content-Length header. */
function planBody(conf: ProxyMirrorConf, req: HttpRequest, cl: string | undefined): BodyPlan {
  if (cl !== undefined && /^\s*\d+\s*$/.test(cl)) {
    const n = Number(cl);
    if (n === 0) return { kind: 'empty' };
    // Asking for a body larger than one frame would make APISIX fail the real request.
    if (n > conf.maxBodySize) return { kind: 'over', reason: 'body_too_large' };
    return { kind: 'fetch', declared: true };
  }
  const grpcCall = conf.target.grpc || (req.header('content-type') ?? '').startsWith('application/grpc');
  if (!grpcCall && req.header('transfer-encoding') === undefined) return { kind: 'none' };
  if (conf.target.grpc && grpcMethodAllowed(conf.grpcMethods, req.path)) return { kind: 'fetch', declared: false };
  return { kind: 'over', reason: conf.target.grpc ? 'grpc_unknown_length' : 'body_unknown_length' };
}

/** Builds the proxy-mirror plugin for a runner host. */
export function createProxyMirrorPlugin(host: PluginHost, deps: ProxyMirrorDeps = {}): ProxyMirrorPlugin {
  const random = deps.random ?? Math.random;
  const now = deps.now ?? (() => performance.now());
  const settings = parseSettings(host.settings('proxy-mirror'));
  const logger = host.logger.child({ plugin: 'proxy-mirror' });
  const metrics: MirrorMetrics = createMirrorMetrics(host.metrics);
  const limiter = new LogLimiter(logger, settings.logIntervalMs, now);
  const observer = createDispatchObserver(metrics, limiter, logger);
  const dispatcher = new DispatchEngine({
    observer, now, random: deps.jitter ?? Math.random, closeGraceMs: settings.closeGraceMs, threads: settings.mirrorThreads,
    threadNice: settings.mirrorThreadNice,
  });
  const compare = new CompareWiring(host, settings.diffLog, logger, limiter, now);
  // Copies still in flight at shutdown end (and reach the room) before the room stops.
  host.onClose(async () => {
    await dispatcher.close();
    await compare.close();
  });

  const skip = (conf: ProxyMirrorConf, reason: SkipReason): undefined => {
    metrics.skipped(conf.target.host, reason);
    return undefined;
  };

  /**
   * The decision is synchronous for every request that is not mirrored (no promise, no
   * ExtraInfo); only sampled requests go on to copy() and its round trips.
   */
  function onRequest(conf: ProxyMirrorRuntimeConf, req: HttpRequest, ctx: CallContext): Promise<void> | undefined {
    if (conf.methods && !conf.methods.has(req.method)) return skip(conf, 'method');
    if (conf.markHeader && req.header(conf.markHeader) !== undefined) return skip(conf, 'loop');
    let sampled: boolean | Promise<boolean>;
    try {
      sampled = isSampled(conf.sampleRatio, conf.sampleKey, req, random);
    } catch (err) {
      return skipOnExtraInfoError(conf, ctx, err);
    }
    if (sampled === true) return sampledCopy(conf, req, ctx);
    if (sampled === false) return skip(conf, 'not_sampled');
    return sampled.then(
      (yes) => (yes ? sampledCopy(conf, req, ctx) : skip(conf, 'not_sampled')),
      (err: unknown) => skipOnExtraInfoError(conf, ctx, err),
    );
  }

  /**
   * A saturated target would drop the copy anyway, and a dead one (every node's circuit
   * breaker open) would not be tried: refuse it before anything is fetched from APISIX,
   * synchronously, so the real request pays neither a round trip nor a promise. The target
   * counts the refusal (dropped, or skipped target_down / closed).
   */
  function sampledCopy(conf: ProxyMirrorRuntimeConf, req: HttpRequest, ctx: CallContext): Promise<void> | undefined {
    const target = conf.mirrorTarget;
    // A target full by count or down is refused before the headers are even decoded.
    if (!target.admit(0)) return undefined;
    const cl = req.header('content-length');
    const declared = Number(cl ?? 0);
    if (Number.isFinite(declared) && declared > 0 && !target.admit(declared)) return undefined;
    return copy(conf, req, ctx, cl);
  }

  function skipOnExtraInfoError(conf: ProxyMirrorConf, ctx: CallContext, err: unknown): undefined {
    const target = conf.target.host;
    limiter.warn(`${target}:extra_info`, { target, route: ctx.routeKey, err: err instanceof Error ? err.message : String(err) },
      'proxy-mirror: could not read the request from APISIX; copy skipped');
    skip(conf, 'extra_info_error');
    return undefined;
  }

  /**
   * A sampled request's copy: built at once (no promise) when nothing has to be asked of
   * APISIX (no body to fetch, a query the args give exactly, no comparison), which is the
   * common GET; otherwise after the ExtraInfo round trips.
   */
  function copy(conf: ProxyMirrorRuntimeConf, req: HttpRequest, ctx: CallContext, cl: string | undefined): Promise<void> | undefined {
    const plan = planBody(conf, req, cl);
    if (plan.kind !== 'fetch' && !conf.compare && conf.mirrorTarget.sendsFromWorker && queryFromCall(conf, req)) {
      // From a worker the copy's target is built there, from the call's path and args: this
      // thread neither decodes them nor rebuilds the query (copy-uri.ts uriOfCall).
      const body = plan.kind === 'empty' ? Buffer.alloc(0) : plan.kind === 'over' ? bodyOverLimit(conf, req, ctx, plan.reason) : undefined;
      if (body !== SKIPPED) emit(conf, req, body, FROM_CALL, undefined);
      return undefined;
    }
    const args = req.argEntries();
    // `auto`: rebuilt from the args when that is exact (query-rebuild.ts), otherwise `raw`:
    // the query as the client sent it, one ExtraInfo round trip, cached per call like the
    // body. `rebuilt` always saves the round trip but re-encodes the args and loses the
    // order of different names (APISIX does not keep it).
    let rawQuery: string | undefined;
    let queryKnown = true;
    if (args.length > 0) {
      rawQuery = conf.query === 'auto' ? rebuildExactQuery(args) : undefined;
      if (rawQuery === undefined && conf.query === 'rebuilt') rawQuery = encodeArgs(args);
      queryKnown = rawQuery !== undefined;
    }
    if (plan.kind === 'fetch' || !queryKnown || conf.compare) return copyAfterAsking(conf, req, ctx, plan, rawQuery, queryKnown);
    const body = plan.kind === 'empty' ? Buffer.alloc(0) : plan.kind === 'over' ? bodyOverLimit(conf, req, ctx, plan.reason) : undefined;
    if (body !== SKIPPED) emit(conf, req, body, rawQuery, undefined);
    return undefined;
  }

  /**
   * Whether a worker can build the copy's query from the call's args as this thread would:
   * no plugin edited the path or the args, and they give the query (no args; `rebuilt`; or
   * `auto` with args rebuildExactQuery takes, checked on their bytes by literalArgs).
   */
  function queryFromCall(conf: ProxyMirrorConf, req: HttpRequest): boolean {
    const call = rawCallOf(req);
    if (!call) return false;
    const spans = call.argSpans;
    if (spans.length === 0 || conf.query === 'rebuilt') return true;
    return conf.query === 'auto' && literalArgs(call.bytes, spans);
  }

  /** A body over the limit or of unknown length: SKIPPED (counted), or an empty body (counted as omitted). */
  function bodyOverLimit(conf: ProxyMirrorRuntimeConf, req: HttpRequest, ctx: CallContext, over: SkipReason): Buffer | typeof SKIPPED {
    const target = conf.target.host;
    if (over === 'grpc_unknown_length') {
      // Counting alone hides why a gRPC target gets nothing: say it, once per interval.
      limiter.warn(`${target}:grpc_unknown_length`, () => ({ target, route: ctx.routeKey, method: req.path }),
        'proxy-mirror: gRPC call with a body of unknown length not copied; list its method in grpc_methods if it is unary or client-streaming');
    }
    if (conf.target.grpc || conf.bodyOverLimit === 'skip') {
      skip(conf, over);
      return SKIPPED;
    }
    metrics.bodyOmitted(target, over);
    return Buffer.alloc(0);
  }

  async function copyAfterAsking(
    conf: ProxyMirrorRuntimeConf, req: HttpRequest, ctx: CallContext, plan: BodyPlan, knownQuery: string | undefined, queryKnown: boolean,
  ): Promise<void> {
    const target = conf.target.host;
    let body: Buffer | undefined | typeof SKIPPED;
    let rawQuery = knownQuery;
    let compared: ComparedCopy | undefined;
    try {
      let over: SkipReason | undefined;
      if (plan.kind === 'empty') body = Buffer.alloc(0);
      else if (plan.kind === 'over') over = plan.reason;
      else if (plan.kind === 'fetch') {
        // req.body() is cached per call: several targets on one route fetch it once.
        const fetched = (await req.body()) ?? Buffer.alloc(0);
        if (fetched.length > conf.maxBodySize) over = 'body_too_large';
        else body = fetched;
      }
      if (over !== undefined) body = bodyOverLimit(conf, req, ctx, over);
      if (body === SKIPPED) return;
      if (!queryKnown) rawQuery = (await req.var('args')) ?? encodeArgs(req.argEntries());
      if (conf.compare) compared = await compare.expect(conf.compare, target, req, ctx);
    } catch (err) {
      skipOnExtraInfoError(conf, ctx, err);
      return;
    }
    emit(conf, req, body, rawQuery, compared);
  }

  /**
   * Builds the copy and hands it over once the reply to APISIX is written. `rawQuery` is the
   * copy's query, or FROM_CALL: the args give it (queryFromCall), and a worker builds it.
   */
  function emit(
    conf: ProxyMirrorRuntimeConf, req: HttpRequest, body: Buffer | undefined, rawQuery: string | undefined | typeof FROM_CALL, compared: ComparedCopy | undefined,
  ): void {
    const target = conf.target.host;
    // The call's header bytes, before the correlation id below edits the real request's headers.
    const raw = conf.target.grpc || compared ? undefined : rawHeadersOf(req);
    let correlationId: string | undefined;
    if (conf.correlationHeader) {
      correlationId = req.header(conf.correlationHeader);
      if (!correlationId) {
        correlationId = randomUUID();
        req.setHeader(conf.correlationHeader, correlationId);
      }
    }

    const sink = compared ? undefined : deps.responseSink?.(conf, req);
    // From a worker: the call's bytes go there, and the head (and, FROM_CALL, the target) is
    // built there. Otherwise straight from the bytes here when that gives the same head
    // (copy-head.ts), else as strings.
    const fromWorker = raw !== undefined && !sink && conf.mirrorTarget.sendsFromWorker;
    let uri = '';
    if (conf.target.grpc) uri = mirrorUri({ path: undefined, pathConcatMode: 'replace' }, req.path, undefined);
    else if (rawQuery !== FROM_CALL) uri = mirrorUri(conf, req.path, rawQuery);
    else if (!fromWorker) uri = mirrorUri(conf, req.path, queryOfArgs(conf, req.argEntries()));
    let copy: MirrorCopy | undefined;
    if (fromWorker) {
      const uriRule = uri === '' ? conf : undefined;
      copy = copyWithRaw(req.method, uri, { bytes: raw.bytes, spans: raw.spans, edits: conf, correlationId, uriRule }, body);
    } else {
      const headerCtx = { bodyLength: conf.target.grpc ? undefined : body?.length, correlationId };
      const head = raw && !sink ? copyHeadFromBytes(raw, req.method, uri, conf, headerCtx) : undefined;
      copy = head
        ? copyWithHead(req.method, uri, head, body)
        : buildCopy(req.method, uri, buildCopyHeaders(req.headerEntries(), conf, headerCtx), body);
    }
    const grpcEncoding = conf.target.grpc ? req.header('grpc-encoding') : undefined;

    req.afterReply(() => {
      if (compared && conf.compare) {
        compare.submit(compared, target, conf.mirrorTarget, copy, conf.compare, conf.secondaryDispatch);
        return;
      }
      if (!conf.target.grpc) {
        conf.mirrorTarget.submit(copy, sink);
        return;
      }
      try {
        const grpcMessages = splitGrpcMessages(copy.body ?? Buffer.alloc(0), grpcEncoding);
        conf.mirrorTarget.submit({ ...copy, grpcMessages }, sink);
      } catch (err) {
        // GrpcBodyError for a malformed body, a zlib error for a bad compressed message.
        const code = err instanceof GrpcBodyError ? err.code : 'A6_ERR_MIRROR_GRPC_DECOMPRESS';
        limiter.warn(`${target}:grpc_bad_body`, { target, code, err: err instanceof Error ? err.message : String(err) },
          'proxy-mirror: gRPC body not copied');
        skip(conf, 'grpc_bad_body');
      }
    });
  }

  return {
    name: 'proxy-mirror',
    confSchema: proxyMirrorSchema,
    failurePolicy: 'open',
    settings,
    dispatcher,
    compare,
    parseConf(value: unknown, ctx: ConfContext): ProxyMirrorRuntimeConf {
      const conf = parseProxyMirrorConf(value, settings);
      const unknown = unknownFields(value);
      if (unknown.length > 0) {
        ctx.logger.warn({ route: ctx.routeKey, index: ctx.index, fields: unknown }, 'proxy-mirror: unknown conf fields ignored');
      }
      return {
        ...conf,
        mirrorTarget: dispatcher.acquire(conf.target),
        secondaryDispatch: conf.secondaryTarget ? dispatcher.acquire(conf.secondaryTarget) : undefined,
      };
    },
    onRequest,
    // ext-plugin-post-resp: the real answer of a compared request (nothing else is done there).
    onResponse(conf: ProxyMirrorRuntimeConf, res: HttpResponse, ctx: CallContext): Promise<void> | undefined {
      return conf.compare ? compare.onResponse(conf.compare, res, ctx) : undefined;
    },
    releaseConf(conf: ProxyMirrorRuntimeConf): void {
      dispatcher.release(conf.mirrorTarget);
      if (conf.secondaryDispatch) dispatcher.release(conf.secondaryDispatch);
    },
  };
}
